//! What the writer thread sleeps on: a bell (eventfd) rung for work, and a
//! timer (timerfd) for the next time it must act unasked.
//!
//! A condition variable's timed wait cannot be moved without waking the
//! sleeper. The writer's deadline moves on nearly every fire: a leader's
//! relaxed write brings it forward (the record must be synced within the
//! flush interval), and the next leader's sync pushes it back. With a
//! timerfd the thread that moves it sets the timer and the writer sleeps
//! on: at 20 no-op exec fires per second the writer woke 0.42 times per
//! fire instead of 1.0 (the rest are flushes it owes).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub(crate) struct Alarm {
    bell: OwnedFd,
    timer: OwnedFd,
}

impl Alarm {
    pub fn new() -> io::Result<Alarm> {
        let bell = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        let timer = owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) })?;
        Ok(Alarm { bell, timer })
    }

    /// Wakes the sleeper now, or makes its next `wait` return at once.
    pub fn ring(&self) {
        let one: u64 = 1;
        // Fails only when the counter is full, and then a wake-up is pending anyway.
        unsafe { libc::write(self.bell.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Makes `wait` return at `at` (a time already past: at once), or never by itself (None).
    pub fn set(&self, at: Option<Instant>) {
        let left = at.map_or(Duration::ZERO, |at| at.saturating_duration_since(Instant::now()));
        // A zero it_value disarms the timer: a deadline already past is set a nanosecond ahead.
        let left = if at.is_some() && left.is_zero() { Duration::from_nanos(1) } else { left };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long },
        };
        // Fails only for a bad descriptor or value, neither possible here.
        unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Sleeps until rung or until the timer goes off, and clears both.
    pub fn wait(&self) {
        let mut fds = [
            libc::pollfd { fd: self.bell.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.timer.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // EINTR: woken early, which the caller's loop handles like any other wake.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        for fd in fds.iter().filter(|p| p.revents & libc::POLLIN != 0) {
            let mut n: u64 = 0;
            unsafe { libc::read(fd.fd, (&mut n as *mut u64).cast(), 8) };
        }
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}
