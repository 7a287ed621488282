//! Single-flight leases for periodic orders: a lock-free map from key to
//! lease, per-group concurrency gates, fencing tokens, and a durable store
//! that keeps all of it across crashes through `orderly-wal`.
//!
//! Guarantees (DESIGN.md G1, G2, G7, G8):
//! - A key has at most one holder; acquire succeeds only if the key is free
//!   or its lease expired, in one atomic step.
//! - A lease in a gated group holds exactly one slot; a refused acquire and a
//!   release leave no trace.
//! - Tokens strictly increase over the store's whole life, across restarts
//!   and checkpoints; the holder of a stale token cannot complete, renew or
//!   release.
//! - A durable acquire is acknowledged only once its record is synced; leases
//!   held at a crash are held again after it, and lastRun never moves back.
//!
//! Why papaya: acquire, release and renew are each a single `compute` on one
//! key, which papaya performs without locks (readers never block, writers
//! retry a CAS), so worker threads hammering hot keys never queue behind a
//! mutex and a stalled thread cannot block the others. A sharded
//! `Mutex<HashMap>` (dashmap) would serialise every operation on a shard.

mod clock;
mod error;
mod eventlog;
mod gate;
mod map;
mod peercred;
mod record;
mod registry;
mod runlock;
mod store;
mod tokens;
mod trim;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{LeaseError, Result};
pub use eventlog::{append_event, latest_seq};
pub use map::{AcquireOptions, Acquired, LeaseInfo, LeaseMap, MAX_GROUP_BYTES, MAX_KEY_BYTES, MAX_META_BYTES, MAX_TTL_MS, TOKEN_LIMIT};
pub use record::Rec;
pub use peercred::peer_uid;
pub use registry::open_shared;
pub use runlock::{create_run_lock, record_fire, record_started_body, run_lock_held, run_lock_held_fd, RUN_RECORD_BYTES};
pub use trim::trim_head;
pub use store::{inspect, LeaseStore, OutboxEntry, Recovered, RepairReport, StoreInspection, StoreOptions, StoreStats};
