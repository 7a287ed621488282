//! The fire lane: exec orders fired without waking JS per fire.
//!
//! At 20 fires a second, a controller's JS thread wakes up cold for each
//! fire (its timer), and that wake-up plus the cold JS after it cost more
//! than the whole fire does natively (bench:schedule prices both). Here JS
//! arms a fire ahead of its due time, in a batch, while it is awake anyway;
//! the lane's thread takes it at the due time, acquires its lease (fires due
//! together share one sync), takes its run lock and starts its body; the
//! reaping thread hears its exit. A plain no-op (the body's exit code said
//! so, no status file, nothing left running) is released here too and
//! reported with the next batch. Anything else, and every refusal or
//! failure, is handed back to JS at once, with the lease still held, and JS
//! finishes it as it finishes a run it started itself. A cooldown order's
//! plain no-op is followed by its next fire, armed here (`repeat`): an
//! order that keeps finding nothing to do costs JS a counter per fire.
//!
//! What a fire leaves on disk is the same either way: the lease's meta, the
//! run lock's records and the run files, so a controller restarted after a
//! kill adopts a body the lane started as it adopts any other.

mod armed;
mod lane;
mod repeat;
mod settle;

pub use armed::{Armed, Next, Ran, Report, RunFiles, StartError};
pub use lane::{Lane, LaneOptions};
pub use repeat::Repeat;
