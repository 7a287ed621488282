//! Who is on the other end of a Unix socket: the control socket answers
//! only processes of the controller's own user.

use std::io;

/// The uid of the process connected to the Unix socket `fd` (SO_PEERCRED).
pub fn peer_uid(fd: i32) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for the call; the kernel writes at most len bytes.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_pair_sees_its_own_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(peer_uid(a.as_raw_fd()).unwrap(), unsafe { libc::getuid() });
        assert!(peer_uid(-1).is_err());
    }
}
