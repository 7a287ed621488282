use std::fmt;

use orderly_wal::WalError;

/// Every failure a caller of the lease store can act on.
#[derive(Debug, Clone)]
pub enum LeaseError {
    /// Bad input: empty or oversized key, TTL out of range, cap < 1, unknown lease.
    InvalidArg(String),
    /// The caller's token no longer holds the key: released, or taken over
    /// after expiry by a higher token (fencing, G8).
    Stale { key: String, token: u64 },
    /// The store was closed.
    Closed,
    /// A record in the log validated but does not decode: a bug or a foreign writer.
    Malformed { lsn: u64, detail: String },
    /// The log under the store failed (poisoned, corrupt, locked, …).
    Wal(WalError),
}

impl LeaseError {
    pub fn code(&self) -> &'static str {
        match self {
            LeaseError::InvalidArg(_) => "ERR_INVALID_ARG",
            LeaseError::Stale { .. } => "ERR_LEASE_STALE",
            LeaseError::Closed => "ERR_STORE_CLOSED",
            LeaseError::Malformed { .. } => "ERR_WAL_CORRUPT",
            LeaseError::Wal(e) => e.code(),
        }
    }
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseError::InvalidArg(m) => write!(f, "{m}"),
            LeaseError::Stale { key, token } => {
                write!(f, "lease on {key:?} with token {token} is no longer held (released, or taken over by a newer token)")
            }
            LeaseError::Closed => write!(f, "lease store is closed"),
            LeaseError::Malformed { lsn, detail } => write!(f, "lease record at LSN {lsn} is malformed: {detail}"),
            LeaseError::Wal(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LeaseError {}

impl From<WalError> for LeaseError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::InvalidArg(m) => LeaseError::InvalidArg(m),
            e => LeaseError::Wal(e),
        }
    }
}

pub type Result<T, E = LeaseError> = std::result::Result<T, E>;
