//! Run locks: how a restarted controller knows whether a fire's body still runs.
//!
//! Before spawning a body the controller takes an exclusive `flock` on a file
//! named for the fire and hands the locked descriptor to the body, which
//! inherits it across fork/exec. flock belongs to the open file description,
//! so the lock lives exactly as long as some process (the body, or anything
//! it forked that kept the descriptor) holds it: when the controller dies the
//! lock stays; when the body dies it goes. No pid files, no pid reuse.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Records in a run lock are rewritten in place, never truncated (freeing
/// and allocating a block costs more than the write): each is JSON padded
/// with spaces to at least this length, as the controller's own are.
pub const RUN_RECORD_BYTES: usize = 160;

/// Writes over the lock's record what a controller that adopts the body
/// after a crash needs to time it out: its fire, its process group and its
/// deadline (ms since the epoch, from now; null for a body with no timeout).
pub fn record_started_body(fd: RawFd, fire_id: &str, pgid: i32, timeout_ms: f64) -> io::Result<()> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64);
    let deadline = now_ms + timeout_ms;
    let timeout_at = if deadline.is_finite() { format!("{deadline}") } else { "null".to_string() };
    write_record(fd, format!("{{\"fireId\":{},\"pgid\":{pgid},\"timeoutAt\":{timeout_at}}}", json_string(fire_id)))
}

/// Writes over the lock's record the fire that holds it, before its body is
/// spawned: from then on the lock names its fire.
pub fn record_fire(fd: RawFd, fire_id: &str) -> io::Result<()> {
    write_record(fd, format!("{{\"fireId\":{}}}", json_string(fire_id)))
}

fn write_record(fd: RawFd, mut record: String) -> io::Result<()> {
    while record.len() < RUN_RECORD_BYTES {
        record.push(' ');
    }
    let n = unsafe { libc::pwrite(fd, record.as_ptr().cast(), record.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != record.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write of the run lock record"));
    }
    Ok(())
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn try_flock(f: &File) -> io::Result<bool> {
    try_flock_fd(f.as_raw_fd())
}

fn try_flock_fd(fd: RawFd) -> io::Result<bool> {
    let rc = unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err)
}

/// Creates `path`, locks it and returns the raw descriptor, close-on-exec:
/// the spawner puts it in place in the body (dup2 clears the flag there),
/// and nothing else the controller starts meanwhile (a check, another body
/// still waiting for a spawning thread) inherits it and keeps the lock held.
/// The caller closes its copy once the body is spawned.
pub fn create_run_lock(path: &Path) -> io::Result<i32> {
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    if !try_flock(&f)? {
        return Err(io::Error::new(io::ErrorKind::WouldBlock, format!("run lock {} is already held", path.display())));
    }
    Ok(f.into_raw_fd())
}

/// True while some process holds the run lock at `path`; false if it is free
/// or the file does not exist.
pub fn run_lock_held(path: &Path) -> io::Result<bool> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // Taking it proves nobody holds it; dropping `f` releases it again.
    Ok(!try_flock(&f)?)
}

/// `run_lock_held` through a descriptor of the lock file opened earlier
/// (not the body's own): still right once the file is unlinked or its
/// directory removed, for a lock is held on the file, not on its name.
pub fn run_lock_held_fd(fd: RawFd) -> io::Result<bool> {
    if !try_flock_fd(fd)? {
        return Ok(true);
    }
    // Free: give it back at once, as dropping the file does in run_lock_held.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_opened_before_its_file_was_removed_still_tells_whether_it_is_held() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("runs").join("s0.lock");
        std::fs::create_dir(p.parent().unwrap()).unwrap();
        let body = create_run_lock(&p).unwrap();
        let watch = File::open(&p).unwrap();
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
        assert!(!run_lock_held(&p).unwrap(), "by its name it looks free: the file is gone");
        assert!(run_lock_held_fd(watch.as_raw_fd()).unwrap(), "the body still holds it");
        assert!(run_lock_held_fd(watch.as_raw_fd()).unwrap(), "asking does not take it");
        unsafe { libc::close(body) };
        assert!(!run_lock_held_fd(watch.as_raw_fd()).unwrap());
        assert!(!run_lock_held_fd(watch.as_raw_fd()).unwrap(), "asking gave it back");
    }

    #[test]
    fn a_lock_is_held_until_every_copy_of_its_descriptor_is_closed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fire.lock");
        assert!(!run_lock_held(&p).unwrap());
        let fd = create_run_lock(&p).unwrap();
        assert!(run_lock_held(&p).unwrap());
        assert_ne!(unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC, 0, "only the body it is handed to inherits it");
        let dup = unsafe { libc::dup(fd) };
        unsafe { libc::close(fd) };
        assert!(run_lock_held(&p).unwrap(), "a duplicate (as a forked body holds) keeps it");
        unsafe { libc::close(dup) };
        assert!(!run_lock_held(&p).unwrap());
        assert!(create_run_lock(&p).is_ok());
    }

    #[test]
    fn a_started_body_record_is_padded_json_written_over_the_last_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fire.lock");
        let fd = create_run_lock(&p).unwrap();
        let before = format!("{:RUN_RECORD_BYTES$}", r#"{"fireId":"before the spawn"}"#);
        assert_eq!(unsafe { libc::pwrite(fd, before.as_ptr().cast(), before.len(), 0) }, before.len() as isize);
        record_started_body(fd, "f\"1\\\n", 4242, 1000.0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.len(), RUN_RECORD_BYTES);
        let first = text.split('}').next().unwrap();
        assert!(first.starts_with(r#"{"fireId":"f\"1\\\u000a","pgid":4242,"timeoutAt":"#), "{first}");
        let at: f64 = first.rsplit(':').next().unwrap().parse().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as f64;
        assert!(at > now && at <= now + 1000.0, "{at} vs {now}");
        record_started_body(fd, "f", 1, f64::INFINITY).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().starts_with(r#"{"fireId":"f","pgid":1,"timeoutAt":null}   "#));
        unsafe { libc::close(fd) };
    }
}
