//! A segmented, checksummed write-ahead log with group commit.
//!
//! Guarantees (DESIGN.md G5–G7):
//! - An append is acknowledged (its LSN reported durable) only after the
//!   `fdatasync` that covers it; appends arriving while a sync runs share the
//!   next one, on a dedicated writer thread.
//! - On open, a torn tail (bytes that were never covered by a sync) is cut off
//!   and reported; damage to bytes that a later record proves were synced is
//!   an error ([`WalError::Corrupt`]) unless `repair` is asked for.
//! - Records are bound to the segment and the log they were written in (salt
//!   and segment number are folded into each checksum), so stale bytes from an
//!   older or reused file never validate.
//! - After any write or sync error the log is poisoned: every pending and later
//!   append fails with [`WalError::Poisoned`]; a failed sync is never retried.
//! - [`Wal::checkpoint`] replaces the whole history with a live set: a crash
//!   at any step leaves either the old state or the new one.

mod alarm;
mod crash;
mod error;
mod frame;
mod recovery;
mod segment;
pub mod sim;
mod storage;
mod wal;
mod writer;

pub use crash::crash_point;
pub use error::{Result, WalError};
pub use storage::{FsStorage, Storage, StorageFile};
pub use frame::MAX_PAYLOAD;
pub use recovery::{inspect, Inspection};
pub use wal::{DurableEvent, Lead, ListenerId, OpenReport, Record, Wal, WalOptions, WalStats, MAX_FLUSH_INTERVAL, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
