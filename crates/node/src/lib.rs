//! napi-rs binding for orderly. It converts JS values to Rust values and Rust
//! errors to JS errors with a stable `code`; anything that decides something
//! belongs in a core crate.

#![deny(clippy::all)]

mod error;
mod events;
mod lease;
mod options;
mod sim;
mod wal;

pub use lease::{create_run_lock, inspect_store, run_lock_held, NativeLeaseStore};
pub use sim::SimDisk;
pub use wal::NativeWal;
