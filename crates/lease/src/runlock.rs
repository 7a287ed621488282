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
use std::os::unix::io::{AsRawFd, IntoRawFd};
use std::path::Path;

pub(crate) fn try_flock(f: &File) -> io::Result<bool> {
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err)
}

/// Creates `path`, locks it and returns the raw descriptor, without
/// close-on-exec so a spawned body inherits it. The caller closes its copy
/// once the body is spawned.
pub fn create_run_lock(path: &Path) -> io::Result<i32> {
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    if !try_flock(&f)? {
        return Err(io::Error::new(io::ErrorKind::WouldBlock, format!("run lock {} is already held", path.display())));
    }
    let fd = f.into_raw_fd();
    // std opens with O_CLOEXEC; the body must inherit this one.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            let err = io::Error::last_os_error();
            libc::close(fd);
            return Err(err);
        }
    }
    Ok(fd)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_until_every_copy_of_its_descriptor_is_closed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fire.lock");
        assert!(!run_lock_held(&p).unwrap());
        let fd = create_run_lock(&p).unwrap();
        assert!(run_lock_held(&p).unwrap());
        let dup = unsafe { libc::dup(fd) };
        unsafe { libc::close(fd) };
        assert!(run_lock_held(&p).unwrap(), "a duplicate (as a forked body holds) keeps it");
        unsafe { libc::close(dup) };
        assert!(!run_lock_held(&p).unwrap());
        assert!(create_run_lock(&p).is_ok());
    }
}
