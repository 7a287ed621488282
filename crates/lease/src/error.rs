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
    /// The log holds far fewer tokens than were reserved beside it: its
    /// records were lost (segments deleted, the log replaced).
    Lost { dir: String, log_high_water: u64, reserved: u64 },
}

impl LeaseError {
    pub fn code(&self) -> &'static str {
        match self {
            LeaseError::InvalidArg(_) => "ERR_INVALID_ARG",
            LeaseError::Stale { .. } => "ERR_LEASE_STALE",
            LeaseError::Closed => "ERR_STORE_CLOSED",
            LeaseError::Malformed { .. } => "ERR_WAL_CORRUPT",
            LeaseError::Wal(e) => e.code(),
            LeaseError::Lost { .. } => "ERR_WAL_LOST",
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
            LeaseError::Lost { dir, log_high_water, reserved } => write!(
                f,
                "the lease log in {dir} was lost or replaced: it holds tokens up to {log_high_water}, but tokens up to {reserved} were reserved beside it; its leases, lastRun and audit outbox may be gone. Nothing was changed: run `orderly-dispatch repair` to open what is left, with fences continuing above {reserved}"
            ),
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
