//! Per-group concurrency gates.
//!
//! A gate is two atomics. Entering is one compare-and-swap that succeeds only
//! below the cap, so a failed check changes nothing, and each lease in a group
//! holds exactly one slot from acquire to release: no stub rows, no second
//! counter to double-count (the concurrency-gate seed's two bugs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const UNLIMITED: u64 = u64::MAX;

#[derive(Debug)]
pub struct Gate {
    cap: AtomicU64,
    in_flight: AtomicU64,
}

impl Gate {
    fn new(cap: u64) -> Self {
        Gate { cap: AtomicU64::new(cap), in_flight: AtomicU64::new(0) }
    }

    pub fn try_enter(&self) -> bool {
        let mut n = self.in_flight.load(Ordering::Acquire);
        loop {
            if n >= self.cap.load(Ordering::Acquire) {
                return false;
            }
            match self.in_flight.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(cur) => n = cur,
            }
        }
    }

    /// Counts a lease that exists already (recovered after a restart), even
    /// past the cap: it is held, and hiding it would let the gate overfill.
    pub fn enter_unchecked(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn cap(&self) -> u64 {
        self.cap.load(Ordering::Acquire)
    }

    pub fn set_cap(&self, cap: u64) {
        self.cap.store(cap, Ordering::Release);
    }
}

/// Gates by group name; a group without a configured cap is unlimited but
/// still counted, so `in_flight(group)` works for every group.
#[derive(Default)]
pub struct Gates {
    by_group: papaya::HashMap<String, Arc<Gate>>,
}

impl Gates {
    pub fn get(&self, group: &str) -> Arc<Gate> {
        let map = self.by_group.pin();
        if let Some(g) = map.get(group) {
            return g.clone();
        }
        map.get_or_insert_with(group.to_owned(), || Arc::new(Gate::new(UNLIMITED))).clone()
    }

    pub fn find(&self, group: &str) -> Option<Arc<Gate>> {
        self.by_group.pin().get(group).cloned()
    }

    pub fn set_cap(&self, group: &str, cap: u64) {
        self.get(group).set_cap(cap);
    }
}
