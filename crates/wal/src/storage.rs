//! The file operations the log performs, behind a trait so tests can swap in
//! [`crate::sim::SimStorage`], which injects I/O errors and power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// A held exclusive lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

#[derive(Debug)]
pub enum LockError {
    /// Someone holds it; the pid recorded in the lock file, if readable.
    Held(Option<u32>),
    Io(io::Error),
}

pub trait Storage: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable (ALICE: a new or
    /// renamed file survives power loss only after this).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock that conflicts with any other holder, in this
    /// process or another, and records our pid in the lock file.
    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>, LockError>;
    /// (device, inode) of the file now at `path`, None if there is none;
    /// storages that cannot tell (the simulated disk) say Ok(None) always.
    fn identity(&self, _path: &Path) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }
}

pub trait StorageFile: Send {
    /// (device, inode, link count, length) of the open file, where the storage can tell.
    fn identity(&self) -> io::Result<Option<(u64, u64, u64, u64)>> {
        Ok(None)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: data and the metadata needed to read it back.
    fn sync_data(&mut self) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Reserves space up to `len` bytes, reading back as zeros. The default
    /// writes zeros; the real filesystem allocates without writing them.
    fn allocate(&mut self, from: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at < len {
            let n = (len - at).min(zeros.len() as u64) as usize;
            self.write_at(at, &zeros[..n])?;
            at += n as u64;
        }
        Ok(())
    }
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

struct FsFile(File);

impl StorageFile for FsFile {
    fn identity(&self) -> io::Result<Option<(u64, u64, u64, u64)>> {
        let m = self.0.metadata()?;
        Ok(Some((m.dev(), m.ino(), m.nlink(), m.len())))
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn allocate(&mut self, from: u64, len: u64) -> io::Result<()> {
        // fallocate reserves the blocks without pushing megabytes of zeros
        // through the page cache (which, at a segment every few tens of ms,
        // starved the JS thread on two cores); the syncs that follow are as
        // cheap as into a zero-filled file.
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, from as libc::off_t, (len - from) as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                let zeros = vec![0u8; 1 << 20];
                let mut at = from;
                while at < len {
                    let n = (len - at).min(zeros.len() as u64) as usize;
                    self.0.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                Ok(())
            }
            _ => Err(err),
        }
    }
}

struct FsLock(#[allow(dead_code)] File);
impl LockGuard for FsLock {}

impl Storage for FsStorage {
    fn identity(&self, path: &Path) -> io::Result<Option<(u64, u64)>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some((m.dev(), m.ino()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some((0, 0))),
            Err(e) => Err(e),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Owner only, whatever the umask: the log holds audit records and leases.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(path)?;
        Ok(Box::new(FsFile(f)))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().read(true).write(true).open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>, LockError> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(LockError::Io)?;
        // flock locks belong to the open file description, so a second open in
        // this same process conflicts too, and the kernel drops the lock when
        // its holder dies: a dead holder never blocks.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let _ = f.read_to_string(&mut s);
                return Err(LockError::Held(s.trim().parse().ok()));
            }
            return Err(LockError::Io(err));
        }
        let write_pid = |f: &mut File| -> io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            write!(f, "{}", std::process::id())
        };
        write_pid(&mut f).map_err(LockError::Io)?;
        Ok(Box::new(FsLock(f)))
    }
}
