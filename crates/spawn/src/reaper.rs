//! One thread that reaps every child: a pidfd per child in one epoll set.
//!
//! A thread per child (or a blocking wait per child on the libuv pool)
//! would cost a stack and a context switch per body; SIGCHLD would fight
//! Node's own handler for the signal. A pidfd becomes readable when its
//! process exits and names exactly one child, so reaping it with
//! `waitpid(pid)` never takes a child of anyone else in this process
//! (libuv waits for its own children by pid too).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::command::{spawn, Command};

/// How a child ended: `code` when it exited, `signal` when a signal killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The child led its own process group and, once it was reaped, nothing
    /// (not even a zombie) was left in that group. False when unknown.
    pub group_empty: bool,
    /// What the caller gave `spawn_then` (0 otherwise): a pid can be reused
    /// before its exit has reached the caller, a tag need not be.
    pub tag: u64,
}

/// epoll data of the wake-up eventfd and of the deadline timer; children use their pid (always > 0).
const WAKE: u64 = 0;
const TIMER: u64 = u64::MAX;
const BATCH: usize = 64;

struct Shared {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// A timerfd armed for the earliest deadline (`Children::armed`): set by
    /// whichever thread adds or removes a deadline, without waking this one.
    timer: OwnedFd,
    stop: AtomicBool,
    /// The children being watched, until reaped.
    watched: Mutex<Children>,
    on_exit: Box<dyn Fn(Exit) + Send + Sync>,
    on_overdue: Box<dyn Fn(i32, u64) + Send + Sync>,
}

#[derive(Default)]
struct Children {
    by_pid: HashMap<i32, Watched>,
    /// Children with an `overdue_after`, by when; a child leaves it when it
    /// is reaped, so the thread wakes only for a child still running then.
    due: BTreeSet<(Instant, i32)>,
    /// What the timer is set to.
    armed: Option<Instant>,
}

struct Watched {
    pidfd: OwnedFd,
    leads_group: bool,
    tag: u64,
    overdue_at: Option<Instant>,
}

pub struct Reaper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the reaping thread; `on_exit` runs on it, once per child, in
    /// the order the children end.
    pub fn start<F>(on_exit: F) -> io::Result<Reaper>
    where
        F: Fn(Exit) + Send + Sync + 'static,
    {
        Self::start_with_overdue(on_exit, |_, _| {})
    }

    /// `start`, and `on_overdue(pid, tag)` runs on the same thread for a
    /// child still running `overdue_after` after it was started (once; never
    /// after its exit was reported). A child whose end and deadline are seen
    /// in the same wake-up is reported as ended only.
    pub fn start_with_overdue<F, G>(on_exit: F, on_overdue: G) -> io::Result<Reaper>
    where
        F: Fn(Exit) + Send + Sync + 'static,
        G: Fn(i32, u64) + Send + Sync + 'static,
    {
        // Fails here, not at the first body, on a kernel without pidfds or an old C library.
        crate::command::supported()?;
        drop(pidfd_open(std::process::id() as i32)?);
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let wake = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        epoll_add(epoll.as_raw_fd(), wake.as_raw_fd(), WAKE)?;
        let timer = owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) })?;
        epoll_add(epoll.as_raw_fd(), timer.as_raw_fd(), TIMER)?;
        let shared = Arc::new(Shared {
            epoll,
            wake,
            timer,
            stop: AtomicBool::new(false),
            watched: Mutex::new(Children::default()),
            on_exit: Box::new(on_exit),
            on_overdue: Box::new(on_overdue),
        });
        let looping = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("orderly-reaper".into()).stack_size(64 * 1024).spawn(move || reap_loop(&looping))?;
        Ok(Reaper { shared, thread: Some(thread) })
    }

    /// Starts `cmd` and watches it. If it cannot be watched it is killed
    /// (its whole group) and reaped here, and the error returned: a child
    /// nobody would ever hear of must not run.
    pub fn spawn(&self, cmd: &Command) -> io::Result<i32> {
        let pid = spawn(cmd)?;
        let overdue_at = overdue_at(cmd);
        if let Err(err) = pidfd_open(pid).and_then(|fd| self.watch_fd(pid, fd, cmd.new_group, 0, overdue_at)) {
            kill_and_reap(pid, cmd.new_group);
            return Err(err);
        }
        Ok(pid)
    }

    /// `spawn`, with `tag` carried to the child's `Exit` and `started` run
    /// on this thread once the child exists and before it is watched:
    /// whatever `started` reports is out before the child's exit can be, so
    /// a caller that hears both through one queue always hears the start
    /// first. A child that cannot be watched after that is killed and
    /// reported as ended here.
    pub fn spawn_then(&self, cmd: &Command, tag: u64, started: impl FnOnce(io::Result<i32>)) {
        let pid = match spawn(cmd) {
            Ok(pid) => pid,
            Err(err) => return started(Err(err)),
        };
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(err) => {
                kill_and_reap(pid, cmd.new_group);
                return started(Err(err));
            }
        };
        // Taken before `started`, which writes the run lock's deadline from the same start.
        let overdue_at = overdue_at(cmd);
        started(Ok(pid));
        if self.watch_fd(pid, pidfd, cmd.new_group, tag, overdue_at).is_err() {
            let status = kill_and_reap(pid, cmd.new_group);
            (self.shared.on_exit)(Exit { tag, ..exit_of(pid, status) });
        }
    }

    /// Reports `pid` (a child of this process not yet reaped) when it ends.
    pub fn watch(&self, pid: i32) -> io::Result<()> {
        self.watch_fd(pid, pidfd_open(pid)?, false, 0, None)
    }

    fn watch_fd(&self, pid: i32, fd: OwnedFd, leads_group: bool, tag: u64, overdue_at: Option<Instant>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        // In the map before epoll can report it: the thread looks it up there.
        let mut children = lock(&self.shared.watched);
        children.by_pid.insert(pid, Watched { pidfd: fd, leads_group, tag, overdue_at });
        if let Some(at) = overdue_at {
            children.due.insert((at, pid));
            rearm(&self.shared, &mut children);
        }
        drop(children);
        if let Err(err) = epoll_add(self.shared.epoll.as_raw_fd(), raw, pid as u64) {
            let mut children = lock(&self.shared.watched);
            children.by_pid.remove(&pid);
            if let Some(at) = overdue_at {
                children.due.remove(&(at, pid));
                rearm(&self.shared, &mut children);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Children started and not yet reported.
    pub fn pending(&self) -> usize {
        lock(&self.shared.watched).by_pid.len()
    }
}

impl Drop for Reaper {
    /// Stops the thread. Children still running are left alone (a body
    /// outlives its controller by design); nobody reaps them here any more.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        unsafe { libc::write(self.shared.wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reap_loop(shared: &Shared) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
    loop {
        let n = unsafe { libc::epoll_wait(shared.epoll.as_raw_fd(), events.as_mut_ptr(), BATCH as i32, -1) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        for ev in &events[..n as usize] {
            let data = ev.u64;
            if data == WAKE {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            if data == TIMER {
                // Read, so that level-triggered epoll does not report it again; `overdue` below re-arms it.
                drain(shared.timer.as_raw_fd());
                lock(&shared.watched).armed = None;
                continue;
            }
            let pid = data as i32;
            if !lock(&shared.watched).by_pid.contains_key(&pid) {
                continue;
            }
            let Some(mut exit) = reap(pid) else { continue };
            let Some(watched) = ({
                let mut children = lock(&shared.watched);
                let watched = children.by_pid.remove(&pid);
                if let Some(at) = watched.as_ref().and_then(|w| w.overdue_at) {
                    children.due.remove(&(at, pid));
                    rearm(shared, &mut children);
                }
                watched
            }) else {
                continue;
            };
            // Out of the epoll set before the pidfd closes. Closing alone is
            // not enough: a child being spawned holds a copy of every open
            // descriptor until it execs, which keeps the registration (and its
            // level-triggered readiness) alive. The loop then saw this pid
            // again and again: millions of spurious exits under a burst of
            // spawns, and a wrong one for a new child that got the pid.
            unsafe { libc::epoll_ctl(shared.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, watched.pidfd.as_raw_fd(), std::ptr::null_mut()) };
            // Asked here, where it costs one syscall, so the caller need not
            // scan /proc (or raise an exception in JS) for every body that left nothing behind.
            exit.tag = watched.tag;
            if watched.leads_group {
                exit.group_empty = unsafe { libc::kill(-pid, 0) } < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            }
            drop(watched);
            (shared.on_exit)(exit);
        }
        // After this wake-up's exits: a child that ended by now is not overdue.
        for (pid, tag) in overdue(shared) {
            (shared.on_overdue)(pid, tag);
        }
    }
}

/// When a child of `cmd` started just now is overdue (None: never, or past what an Instant holds).
fn overdue_at(cmd: &Command) -> Option<Instant> {
    cmd.overdue_after.and_then(|d| Instant::now().checked_add(d))
}

/// Children whose deadline has passed, each out of the deadline set (reported once).
fn overdue(shared: &Shared) -> Vec<(i32, u64)> {
    let now = Instant::now();
    let mut children = lock(&shared.watched);
    let mut out = Vec::new();
    while let Some(&(at, pid)) = children.due.first() {
        if at > now {
            break;
        }
        children.due.pop_first();
        if let Some(w) = children.by_pid.get(&pid) {
            out.push((pid, w.tag));
        }
    }
    // Also after a timer that went off for a child since reaped (`armed` was cleared).
    rearm(shared, &mut children);
    out
}

/// Sets the timer for the earliest deadline, or disarms it; a syscall only when that changed.
fn rearm(shared: &Shared, children: &mut Children) {
    let want = children.due.first().map(|&(at, _)| at);
    if want == children.armed {
        return;
    }
    let left = want.map_or(Duration::ZERO, |at| at.saturating_duration_since(Instant::now()));
    // A zero it_value disarms: a deadline already past is set a nanosecond ahead.
    let left = if want.is_some() && left.is_zero() { Duration::from_nanos(1) } else { left };
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long },
    };
    // Fails only for a bad descriptor or value, neither possible here.
    unsafe { libc::timerfd_settime(shared.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    children.armed = want;
}

/// Reads a counter descriptor (timerfd) empty.
fn drain(fd: RawFd) {
    let mut n: u64 = 0;
    unsafe { libc::read(fd, &mut n as *mut u64 as *mut libc::c_void, 8) };
}

fn lock(m: &Mutex<Children>) -> MutexGuard<'_, Children> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reaps `pid`, which its pidfd says has ended.
fn reap(pid: i32) -> Option<Exit> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // 0: not ended after all (a stopped child does not make a pidfd readable,
        // so this is not expected); ECHILD: reaped by someone else, its status is lost.
        return if r == 0 { None } else { Some(Exit { pid, code: None, signal: None, group_empty: false, tag: 0 }) };
    }
    Some(exit_of(pid, status))
}

fn exit_of(pid: i32, status: libc::c_int) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit { pid, code: None, signal: Some(libc::WTERMSIG(status)), group_empty: false, tag: 0 }
    } else {
        Exit { pid, code: Some(libc::WEXITSTATUS(status)), signal: None, group_empty: false, tag: 0 }
    }
}

/// Kills a child nobody would hear of (its whole group) and reaps it; its wait status.
fn kill_and_reap(pid: i32, leads_group: bool) -> libc::c_int {
    let mut status = 0;
    unsafe {
        libc::kill(if leads_group { -pid } else { pid }, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    status
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(fd as libc::c_int)
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn epoll_add(epoll: RawFd, fd: RawFd, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: data };
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
