//! Bounding a run's output file while its body writes it: the head of the
//! file is given back to the filesystem (a hole punched in place, size and
//! the writer's offset unchanged), so a chatty body keeps a tail on disk, not
//! everything it ever printed, and cannot fill the state's filesystem.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

const BLOCK: u64 = 4096;

/// Frees all but the last `keep` bytes (rounded to whole blocks) of the file
/// at `path`; returns the bytes freed by this call's range (0 when the file
/// is short, gone, or the filesystem cannot punch holes).
pub fn trim_head(path: &Path, keep: u64) -> io::Result<u64> {
    // Almost every output is under the bound: one stat, not open + fstat + close, says so.
    match std::fs::metadata(path) {
        Ok(m) if m.len().saturating_sub(keep) < BLOCK => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        _ => {}
    }
    let f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    let end = size.saturating_sub(keep) / BLOCK * BLOCK;
    if end == 0 {
        return Ok(0);
    }
    // SAFETY: a plain syscall on a descriptor we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, end as libc::off_t) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(0),
            _ => Err(err),
        };
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn keeps_the_tail_frees_the_head_and_the_writer_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.out");
        let mut w = std::fs::File::create(&p).unwrap();
        for i in 0..256u32 {
            w.write_all(format!("{i:08}{}\n", "x".repeat(4087)).as_bytes()).unwrap();
        }
        let before = std::fs::metadata(&p).unwrap().blocks();
        assert_eq!(trim_head(&p, 64 * 1024).unwrap(), 1024 * 1024 - 64 * 1024);
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 1024 * 1024);
        assert!(m.blocks() < before / 4, "{} blocks of {before} still used", m.blocks());
        w.write_all(b"last line\n").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let mut tail = String::new();
        f.seek(SeekFrom::Start(1024 * 1024 - 4096)).unwrap();
        f.read_to_string(&mut tail).unwrap();
        assert!(tail.starts_with("00000255") && tail.ends_with("last line\n"));
        assert_eq!(trim_head(&d.path().join("gone"), 10).unwrap(), 0);
    }
}
