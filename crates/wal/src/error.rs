use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Every failure a caller of the log can act on, one variant each.
#[derive(Debug, Clone)]
pub enum WalError {
    /// Another handle (this process or another) holds the directory lock.
    Locked { dir: PathBuf, pid: Option<u32> },
    /// A record or segment header before the tail does not validate. Reading
    /// past it would silently skip acknowledged data, so the open is refused.
    Corrupt { segment: String, offset: u64, detail: String },
    /// A write or fsync failed earlier; the log refuses all writes until it is
    /// closed and reopened (a failed fsync is never retried: fsyncgate).
    Poisoned { cause: String },
    /// The handle was closed.
    Closed,
    /// The caller passed something the log cannot accept.
    InvalidArg(String),
    /// The directory holds a format this build does not understand; nothing was touched.
    UnsupportedVersion { segment: String, found: u32, supported: u32 },
    /// An I/O error outside the write path (open, list, read).
    Io { op: &'static str, path: PathBuf, message: String, kind: io::ErrorKind },
}

impl WalError {
    /// Qualifies the segment an error names with the directory it lives in.
    pub(crate) fn in_dir(self, dir: &Path) -> Self {
        let full = |segment: String| dir.join(segment).display().to_string();
        match self {
            WalError::Corrupt { segment, offset, detail } => WalError::Corrupt { segment: full(segment), offset, detail },
            WalError::UnsupportedVersion { segment, found, supported } => WalError::UnsupportedVersion { segment: full(segment), found, supported },
            other => other,
        }
    }

    /// Stable machine-readable code, identical across Rust and JS.
    pub fn code(&self) -> &'static str {
        match self {
            WalError::Locked { .. } => "ERR_WAL_LOCKED",
            WalError::Corrupt { .. } => "ERR_WAL_CORRUPT",
            WalError::Poisoned { .. } => "ERR_WAL_POISONED",
            WalError::Closed => "ERR_WAL_CLOSED",
            WalError::InvalidArg(_) => "ERR_INVALID_ARG",
            WalError::UnsupportedVersion { .. } => "ERR_WAL_VERSION",
            WalError::Io { .. } => "ERR_WAL_IO",
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, err: &io::Error) -> Self {
        WalError::Io { op, path: path.into(), message: err.to_string(), kind: err.kind() }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Locked { dir, pid: Some(pid) } => {
                write!(f, "WAL directory {} is locked by process {pid}", dir.display())
            }
            WalError::Locked { dir, pid: None } => {
                write!(f, "WAL directory {} is locked by another handle", dir.display())
            }
            WalError::Corrupt { segment, offset, detail } => {
                write!(f, "WAL corrupt in segment {segment} at offset {offset}: {detail}")
            }
            WalError::Poisoned { cause } => {
                write!(f, "WAL is poisoned after a failed write or sync ({cause}); close and reopen it")
            }
            WalError::Closed => write!(f, "WAL is closed"),
            WalError::InvalidArg(msg) => write!(f, "{msg}"),
            WalError::UnsupportedVersion { segment, found, supported } => write!(
                f,
                "WAL segment {segment} has format version {found}; this build reads version {supported} only (nothing was modified)"
            ),
            WalError::Io { op, path, message, .. } => {
                write!(f, "WAL {op} failed on {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for WalError {}

pub type Result<T, E = WalError> = std::result::Result<T, E>;
