//! Real processes: what the child gets, and how the reaper reports its end.

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use orderly_spawn::{spawn, Command, Exit, Reaper};

fn sh(script: &str) -> Command {
    Command {
        program: CString::new("/bin/sh").unwrap(),
        args: vec![CString::new("sh").unwrap(), CString::new("-c").unwrap(), CString::new(script).unwrap()],
        env: vec![CString::new("GREETING=hello there").unwrap(), CString::new("PATH=/usr/bin:/bin").unwrap()],
        cwd: None,
        output: None,
        inherit: vec![],
        new_group: true,
        overdue_after: None,
    }
}

fn reaper() -> (Reaper, mpsc::Receiver<Exit>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let r = Reaper::start(move |e| {
        let _ = tx.lock().unwrap().send(e);
    })
    .unwrap();
    (r, rx)
}

fn wait(rx: &mpsc::Receiver<Exit>) -> Exit {
    rx.recv_timeout(Duration::from_secs(10)).expect("the reaper reports the child")
}

#[test]
fn reports_exit_codes_and_signals() {
    let (r, rx) = reaper();
    let a = r.spawn(&sh("exit 100")).unwrap();
    assert_eq!(wait(&rx), Exit { pid: a, code: Some(100), signal: None, group_empty: true, tag: 0 });
    let mut b = 0;
    r.spawn_then(&sh("kill -TERM $$"), 7, |started| b = started.unwrap());
    assert_eq!(wait(&rx), Exit { pid: b, code: None, signal: Some(libc::SIGTERM), group_empty: true, tag: 7 });
    assert_eq!(r.pending(), 0);
}

#[test]
fn says_when_the_group_outlives_its_leader() {
    let (r, rx) = reaper();
    // The shell ends at once; the sleep it left behind stays in its group.
    let pid = r.spawn(&sh("sleep 5 & exit 0")).unwrap();
    let exit = wait(&rx);
    assert_eq!((exit.pid, exit.code, exit.group_empty), (pid, Some(0), false));
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}

#[test]
fn gives_the_child_its_env_cwd_output_group_and_inherited_fd() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let lock = fs::File::create(dir.path().join("lock")).unwrap();
    let mut cmd = sh("echo \"$GREETING\"; pwd; echo err >&2; read -r _ _ _ _ pgid _ < /proc/$$/stat; [ \"$pgid\" = $$ ] && echo leader; [ -e /proc/$$/fd/3 ] && readlink /proc/$$/fd/3; [ -e /proc/$$/fd/4 ] || echo no-fd-4; read -r x || echo stdin-empty");
    cmd.cwd = Some(CString::new(dir.path().to_str().unwrap()).unwrap());
    cmd.output = Some(CString::new(out.to_str().unwrap()).unwrap());
    cmd.inherit = vec![lock.as_raw_fd()];
    let (r, rx) = reaper();
    r.spawn(&cmd).unwrap();
    assert_eq!(wait(&rx).code, Some(0));
    let text = fs::read_to_string(&out).unwrap();
    let want = format!("hello there\n{}\nerr\nleader\n{}\nno-fd-4\nstdin-empty\n", dir.path().display(), dir.path().join("lock").display());
    assert_eq!(text, want);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn passes_low_descriptors_to_their_places_and_resets_ignored_signals() {
    // fd 3 of this process as the child's fd 4: the first dup2 must not clobber it.
    let dir = tempfile::tempdir().unwrap();
    let a = fs::File::create(dir.path().join("a")).unwrap();
    let b = fs::File::create(dir.path().join("b")).unwrap();
    let out = dir.path().join("out");
    let mut cmd = sh("readlink /proc/$$/fd/3 /proc/$$/fd/4; grep -E '^SigIgn' /proc/$$/status");
    cmd.inherit = vec![b.as_raw_fd(), a.as_raw_fd()];
    cmd.output = Some(CString::new(out.to_str().unwrap()).unwrap());
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let (r, rx) = reaper();
    r.spawn(&cmd).unwrap();
    assert_eq!(wait(&rx).code, Some(0));
    let text = fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], dir.path().join("b").to_str().unwrap());
    assert_eq!(lines[1], dir.path().join("a").to_str().unwrap());
    // sh itself ignores nothing it was not told to: SIGPIPE is back to its default.
    let ign = u64::from_str_radix(lines[2].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(ign & (1 << (libc::SIGPIPE - 1)), 0, "{text}");
}

#[test]
fn fails_synchronously_for_a_missing_program_or_cwd() {
    let mut cmd = sh("true");
    cmd.program = CString::new("/nonexistent/sh").unwrap();
    assert_eq!(spawn(&cmd).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    let mut cmd = sh("true");
    cmd.cwd = Some(CString::new("/nonexistent-dir").unwrap());
    assert_eq!(spawn(&cmd).unwrap_err().raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn the_child_starts_with_no_signal_blocked_and_no_descriptor_it_was_not_given() {
    let dir = tempfile::tempdir().unwrap();
    // Run directly, not through sh, which clears its signal mask itself.
    let run = |argv: &[&str]| -> String {
        let out = dir.path().join("out");
        let mut cmd = sh("");
        cmd.program = CString::new(argv[0]).unwrap();
        cmd.args = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
        cmd.output = Some(CString::new(out.to_str().unwrap()).unwrap());
        let (r, rx) = reaper();
        r.spawn(&cmd).unwrap();
        assert_eq!(wait(&rx).code, Some(0));
        fs::read_to_string(&out).unwrap()
    };
    // This thread blocks SIGTERM and holds a descriptor open without close-on-exec.
    let stray = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let status = run(&["/bin/grep", "-E", "^SigBlk", "/proc/self/status"]);
    let fds = run(&["/bin/ls", "/proc/self/fd"]);
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::close(stray);
    }
    let blocked = u64::from_str_radix(status.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(blocked, 0, "{status}");
    // 0, 1, 2 and the directory ls reads: nothing of this process's.
    assert_eq!(fds.lines().collect::<Vec<_>>(), ["0", "1", "2", "3"], "{fds}");
}

#[test]
fn a_bare_program_name_is_looked_up_on_path_and_a_failing_step_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cmd = sh("echo found");
    cmd.program = CString::new("sh").unwrap();
    cmd.output = Some(CString::new(out.to_str().unwrap()).unwrap());
    let (r, rx) = reaper();
    r.spawn(&cmd).unwrap();
    assert_eq!(wait(&rx).code, Some(0));
    assert_eq!(fs::read_to_string(&out).unwrap(), "found\n");
    let mut missing = sh("true");
    missing.program = CString::new("orderly-no-such-program").unwrap();
    assert_eq!(spawn(&missing).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    let mut unwritable = sh("true");
    unwritable.output = Some(CString::new(dir.path().join("no-dir/out").to_str().unwrap()).unwrap());
    assert_eq!(spawn(&unwritable).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    let mut not_a_program = sh("true");
    not_a_program.program = CString::new(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(spawn(&not_a_program).unwrap_err().raw_os_error(), Some(libc::EACCES));
}

#[test]
fn a_child_outlives_a_dropped_reaper() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let (r, _rx) = reaper();
    let pid = r.spawn(&sh(&format!("sleep 0.3; echo > {}", done.display()))).unwrap();
    drop(r);
    std::thread::sleep(Duration::from_millis(800));
    assert!(done.exists());
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
}

#[test]
fn reports_each_child_once_in_a_burst_of_spawns() {
    // Children exit while others are being spawned: each spawned child holds
    // copies of the reaper's pidfds until it execs.
    let (r, rx) = reaper();
    let n = 1_000;
    let mut pids: Vec<i32> = (0..n).map(|_| r.spawn(&sh("exit 3")).unwrap()).collect();
    let mut seen: Vec<i32> = (0..n).map(|_| wait(&rx).pid).collect();
    // Anything more is a spurious exit.
    std::thread::sleep(Duration::from_millis(300));
    let extra: Vec<Exit> = rx.try_iter().collect();
    assert!(extra.is_empty(), "{} exit(s) reported again, the first {:?}", extra.len(), extra.first());
    seen.sort();
    pids.sort();
    assert_eq!(seen, pids);
}