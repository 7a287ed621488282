//! Starting and reaping order bodies without Node's `child_process`.
//!
//! Node forks (copying the page tables of a large process) and keeps pipes,
//! handles and a JS object per child; a controller firing thousands of exec
//! orders spends most of its time there. Here a body is started with
//! `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `posix_spawn` does but on a
//! stack the spawning thread keeps: nothing is copied, and the parent is
//! held only until the child has exec'd. Every child is then watched
//! through a pidfd on one epoll thread, whatever their number.
//!
//! Linux only: pidfd_open needs 5.3 and close_range 5.9, both checked at
//! start so that an older kernel falls back to Node's spawn.

mod command;
mod pool;
mod reaper;
mod vfork;

pub use command::{errno_name, spawn, supported, Command};
pub use pool::{Job, SpawnPool, Then, INLINE_AFTER};
pub use reaper::{Exit, Reaper};
