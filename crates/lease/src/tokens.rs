//! The fencing-token reservation: a small file beside the log, `TOKENS`,
//! holding a number no token has reached yet. It is raised a block ahead of
//! the tokens handed out (one extra fsync per `BLOCK` acquires), written to
//! a temporary name, synced, renamed and its directory synced, so it
//! survives what the log may not: a cleanup job deleting segments, a log
//! replaced by an older copy. An open that finds the log far behind it
//! knows records were lost, and a repair continues tokens above it, so no
//! fence is ever handed out twice (G8).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orderly_wal::Storage;

pub(crate) const TOKENS_FILE: &str = "TOKENS";
const TOKENS_TMP: &str = "TOKENS.tmp";
/// Tokens reserved at a time.
pub(crate) const BLOCK: u64 = 1024;

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(TOKENS_FILE)
}

/// The reservation, or 0 where there is none yet (a new store, or one from
/// before the file existed).
pub(crate) fn read(storage: &Arc<dyn Storage>, dir: &Path) -> io::Result<u64> {
    let bytes = match storage.read(&path(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    let value = text.trim().strip_prefix("orderly tokens ").and_then(|n| n.parse::<u64>().ok());
    value.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{} does not hold a token reservation ({:?})", path(dir).display(), text.trim())))
}

/// Replaces the reservation, durably.
pub(crate) fn write(storage: &Arc<dyn Storage>, dir: &Path, reserved: u64) -> io::Result<()> {
    let tmp = dir.join(TOKENS_TMP);
    let mut f = storage.create(&tmp)?;
    let text = format!("orderly tokens {reserved}\n");
    f.write_at(0, text.as_bytes())?;
    f.sync_data()?;
    drop(f);
    storage.rename(&tmp, &path(dir))?;
    storage.sync_dir(dir)
}

/// Records were lost when the log is empty although tokens were reserved
/// (a reservation is written only after a record is durable), or its
/// highest token is more than a block behind the reservation.
pub(crate) fn log_lost(reserved: u64, log_records: u64, log_high_water: u64) -> bool {
    reserved > 0 && (log_records == 0 || log_high_water + BLOCK + 1 < reserved)
}
