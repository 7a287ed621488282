//! napi-rs binding for orderly. It converts JS values to Rust values and Rust
//! errors to JS errors with a stable `code`; anything that decides something
//! belongs in a core crate.

#![deny(clippy::all)]

mod error;
mod events;
mod lane;
mod lease;
mod options;
mod sim;
mod spawn;
mod wal;

pub use lease::{append_city_event, create_run_lock, inspect_store, latest_city_event_seq, run_lock_held, run_lock_held_fd, socket_peer_uid, trim_run_output, NativeLeaseStore};
pub use sim::SimDisk;
pub use lane::{report_layout, NativeLane};
pub use spawn::NativeSpawner;
pub use wal::NativeWal;
