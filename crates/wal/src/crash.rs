//! Named crash points for system-level kill tests.
//!
//! `ORDERLY_CRASH_POINT=<name>` kills the process with SIGKILL the first time
//! execution reaches [`crash_point`]`("<name>")`; `<name>@<n>` waits for the
//! n-th time. SIGKILL rather than abort: the test wants exactly what `kill -9`
//! leaves behind, with no unwinding, no flushing and no core dump.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn armed() -> &'static Option<(String, u64)> {
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let spec = std::env::var("ORDERLY_CRASH_POINT").ok()?;
        let spec = spec.trim();
        if spec.is_empty() {
            return None;
        }
        Some(match spec.rsplit_once('@') {
            Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1).max(1)),
            None => (spec.to_owned(), 1),
        })
    })
}

/// Kills the process here if the environment armed this point.
pub fn crash_point(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    if let Some((armed_name, nth)) = armed() {
        if armed_name == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *nth {
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            // SIGKILL to ourselves is delivered before kill() returns; this is unreachable.
            std::process::abort();
        }
    }
}
