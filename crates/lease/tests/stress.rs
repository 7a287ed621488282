//! Many threads on hot keys, checked by counters independent of the map.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orderly_lease::{Acquired, LeaseStore, StoreOptions};

#[test]
fn eight_threads_on_hot_keys_never_double_hold_and_fill_the_gate_exactly() {
    const THREADS: usize = 8;
    const KEYS: usize = 5;
    const CAP: u64 = 3;
    let store = Arc::new(LeaseStore::open(None, StoreOptions { gates: vec![("g".into(), CAP)], ..StoreOptions::default() }).unwrap());
    let holders: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let active = Arc::new(AtomicU64::new(0));
    let max_active = Arc::new(AtomicU64::new(0));
    let granted = Arc::new(AtomicU64::new(0));
    let last_token = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, holders, active, max_active, granted, last_token) =
                (store.clone(), holders.clone(), active.clone(), max_active.clone(), granted.clone(), last_token.clone());
            std::thread::spawn(move || {
                let mut x = t as u64 + 1;
                for _ in 0..30_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = (x % KEYS as u64) as usize;
                    let key = format!("order-{k}");
                    let (got, _) = store.acquire(&key, Some(60_000), Some("g".into()), None).unwrap();
                    let Acquired::Granted(lease) = got else { continue };
                    // Tokens strictly increase in each thread's view.
                    assert!(lease.token > last_token[t].swap(lease.token, Ordering::SeqCst));
                    assert_eq!(holders[k].fetch_add(1, Ordering::SeqCst), 0, "two holders of {key}");
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= CAP, "{now} in flight over cap {CAP}");
                    max_active.fetch_max(now, Ordering::SeqCst);
                    // Hold across a reschedule, so on two cores other threads
                    // really run while this one holds.
                    for _ in 0..(x % 3) {
                        std::thread::yield_now();
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                    holders[k].fetch_sub(1, Ordering::SeqCst);
                    granted.fetch_add(1, Ordering::SeqCst);
                    store.release(&key, lease.token, false).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(max_active.load(Ordering::SeqCst), CAP, "demand exceeded the cap, so it must be reached");
    assert_eq!(store.in_flight(Some("g")), 0, "release leaves no trace");
    assert_eq!(store.in_flight(None), 0);
    // Enough grants that the run was not vacuous. How many of the 240,000 tries win depends on how
    // the scheduler interleaves eight threads on two shared cores: a loaded machine gave under 10,000.
    assert!(granted.load(Ordering::SeqCst) > 1_000, "only {} grants", granted.load(Ordering::SeqCst));
}
