//! What a body is started with, and starting it (the child's side is `vfork`).

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::Duration;

use crate::vfork::{start, Plan};

/// What to start. Strings are C strings already: the caller reports a NUL
/// byte against the field it came from.
#[derive(Debug, Clone)]
pub struct Command {
    /// A path (with a `/`) is run as is; a bare name is looked up on the
    /// parent's PATH, as `execvp` does.
    pub program: CString,
    /// `argv`, `argv[0]` included.
    pub args: Vec<CString>,
    /// The child's whole environment, `NAME=value` each.
    pub env: Vec<CString>,
    pub cwd: Option<CString>,
    /// stdout and stderr both go here (created or truncated, mode 0600);
    /// `None`: /dev/null. stdin is always /dev/null.
    pub output: Option<CString>,
    /// Become the child's fd 3, 4, … (without close-on-exec); every other
    /// descriptor above 2 is closed in the child.
    pub inherit: Vec<RawFd>,
    /// A new process group led by the child (pgid = pid), so that a signal
    /// to `-pid` reaches everything the body started.
    pub new_group: bool,
    /// The reaper reports the child as overdue once it has run this long
    /// (`Reaper::start_with_overdue`): the caller's timeout without a timer
    /// of its own per child.
    pub overdue_after: Option<Duration>,
}

/// Starts `cmd`; returns the child's pid. A program that cannot be run
/// (ENOENT, EACCES), an output file that cannot be opened or a cwd the
/// child cannot enter fails here, with the errno of the step that failed:
/// the child reports it before this returns.
pub fn spawn(cmd: &Command) -> io::Result<i32> {
    let first_free = 3 + cmd.inherit.len() as RawFd;
    // A source below the first free descriptor could be overwritten by an
    // earlier dup2 of the list (or be its own target, where dup2 would keep
    // close-on-exec): such sources are copied out of the way first.
    let mut moved = Moved(Vec::new());
    let mut plan = Plan::new(first_free);
    for &fd in &cmd.inherit {
        if fd < first_free {
            let copy = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free) })?;
            moved.0.push(copy);
            plan.sources.push(copy);
        } else {
            plan.sources.push(fd);
        }
    }
    let candidates = program_paths(&cmd.program);
    plan.paths = candidates.iter().map(|p| p.as_ptr()).collect();
    plan.argv = nul_terminated(&cmd.args);
    plan.envp = nul_terminated(&cmd.env);
    plan.output = cmd.output.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    plan.cwd = cmd.cwd.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    plan.new_group = cmd.new_group;
    let pid = start(&mut plan);
    drop(moved);
    pid
}

/// Where to look for the program: itself when it names a path, else in
/// each directory of this process's PATH, as `posix_spawnp` looks.
fn program_paths(program: &CStr) -> Vec<Cow<'_, CStr>> {
    let name = program.to_bytes();
    if name.contains(&b'/') {
        return vec![Cow::Borrowed(program)];
    }
    let path = std::env::var_os("PATH").map_or_else(|| b"/bin:/usr/bin".to_vec(), |p| p.as_bytes().to_vec());
    path.split(|b| *b == b':')
        .filter_map(|dir| {
            // An empty entry is the current directory.
            let mut full = if dir.is_empty() { Vec::new() } else { [dir, b"/"].concat() };
            full.extend_from_slice(name);
            CString::new(full).ok().map(Cow::Owned)
        })
        .collect()
}

fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(ptr::null())).collect()
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

struct Moved(Vec<RawFd>);

impl Drop for Moved {
    fn drop(&mut self) {
        for &fd in &self.0 {
            unsafe { libc::close(fd) };
        }
    }
}

/// Whether this kernel can start bodies here: `close_range` (5.9) for the
/// child to drop every descriptor it was not given. Pidfds (5.3) are the reaper's to check.
pub fn supported() -> io::Result<()> {
    // A range past any descriptor: nothing is closed, but an old kernel says ENOSYS.
    // ENOSYS before 5.9; EPERM from a container's seccomp profile that predates it.
    if unsafe { libc::syscall(libc::SYS_close_range, libc::c_uint::MAX - 1, libc::c_uint::MAX, 0) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(io::ErrorKind::Unsupported, format!("close_range is not available here (Linux 5.9 or later, and a seccomp profile that allows it): {e}")));
    }
    Ok(())
}

/// The errno's name (ENOENT, EACCES, …), as Node's spawn errors have it.
pub fn errno_name(n: i32) -> &'static str {
    match n {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOEXEC => "ENOEXEC",
        libc::EPERM => "EPERM",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::E2BIG => "E2BIG",
        libc::ETXTBSY => "ETXTBSY",
        _ => "ERR_SPAWN",
    }
}
