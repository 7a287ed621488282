//! Crashes at every storage step of random workloads, followed by power loss:
//! acknowledged leases stay held with their tokens, lastRun never moves back,
//! tokens never repeat, acknowledged completions stay in the outbox, and an
//! acknowledged event cursor never moves back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orderly_lease::{Acquired, LeaseStore, ManualClock, StoreOptions};
use orderly_wal::sim::{SimRng, SimStorage};
use orderly_wal::WalOptions;

fn opts() -> StoreOptions {
    StoreOptions {
        default_ttl_ms: 1_000_000,
        gates: vec![("g".into(), 2)],
        wal: WalOptions { segment_bytes: 4096, flush_interval: Duration::from_millis(2), repair: false, preallocate: false },
        // Small, so workloads cross checkpoints too.
        compact_after_bytes: 1500,
    }
}

#[derive(Default, Debug)]
struct Acked {
    /// key → token of an acknowledged acquire not yet released by us.
    held: BTreeMap<String, u64>,
    last_run: BTreeMap<String, u64>,
    max_token: u64,
    outbox: BTreeSet<u64>,
    cursors: BTreeMap<String, u64>,
    /// Releases (relaxed or not) that a later acknowledged record followed:
    /// durable with it, as the log recovers a prefix. The controller hands
    /// a settled run's slot to the next fire on this alone.
    released: Vec<(String, u64)>,
}

fn wait(store: &LeaseStore, lsn: Option<u64>) -> bool {
    match (store.wal(), lsn) {
        (Some(w), Some(l)) => w.wait_durable(l).is_ok(),
        _ => true,
    }
}

/// Runs a workload; returns what was acknowledged.
fn workload(store: &LeaseStore, clock: &ManualClock, seed: u64) -> Acked {
    let mut rng = SimRng::new(seed);
    let mut acked = Acked::default();
    let mut mine: BTreeMap<String, u64> = BTreeMap::new();
    // Releases no acknowledged record has followed yet.
    let mut unconfirmed: Vec<(String, u64)> = Vec::new();
    for _ in 0..40 {
        let key = format!("order-{}", rng.below(5));
        clock.advance(rng.below(1000));
        match rng.below(11) {
            0..=4 => {
                let group = rng.chance(30).then(|| "g".to_string());
                match store.acquire(&key, None, group, Some(vec![1, 2, 3])) {
                    Ok((Acquired::Granted(l), lsn)) => {
                        mine.insert(key.clone(), l.token);
                        if wait(store, lsn) {
                            acked.released.append(&mut unconfirmed);
                            acked.held.insert(key.clone(), l.token);
                            acked.max_token = acked.max_token.max(l.token);
                            let at = acked.last_run.entry(key).or_default();
                            *at = (*at).max(l.acquired_at);
                        } else {
                            store.rollback(&key, l.token);
                            return acked;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return acked,
                }
            }
            5..=6 => {
                if let Some(token) = mine.remove(&key) {
                    if store.release(&key, token, rng.chance(30)).is_err() {
                        return acked;
                    }
                    acked.held.remove(&key);
                    unconfirmed.push((key, token));
                }
            }
            7..=8 => {
                if let Some(&token) = mine.get(&key) {
                    match store.complete(&key, token, b"did-work".to_vec()) {
                        Ok((e, lsn)) => {
                            if wait(store, lsn) {
                                acked.released.append(&mut unconfirmed);
                                acked.outbox.insert(e.id);
                            } else {
                                return acked;
                            }
                        }
                        Err(e) if e.code() == "ERR_INVALID_ARG" => {}
                        Err(_) => return acked,
                    }
                }
            }
            10 => {
                let seq = acked.cursors.get(&key).copied().unwrap_or(0) + 1 + rng.below(3);
                match store.set_cursor(&key, seq, true) {
                    Ok(lsn) if wait(store, lsn) => {
                        acked.released.append(&mut unconfirmed);
                        acked.cursors.insert(key, seq);
                    }
                    _ => return acked,
                }
            }
            _ => {
                if let Some(&id) = acked.outbox.iter().next() {
                    if store.ack(id).is_err() {
                        return acked;
                    }
                    // Relaxed: it may or may not survive; either is correct.
                    acked.outbox.remove(&id);
                }
            }
        }
    }
    acked
}

#[test]
fn crashes_at_every_storage_step_keep_acknowledged_state() {
    let dir = Path::new("/state/leases");
    let mut cases = 0;
    for seed in 0..25u64 {
        // Count the storage operations of the uninterrupted workload.
        let sim = SimStorage::new();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = LeaseStore::open_with(Some(dir), opts(), Arc::new(sim.clone()), clock.clone()).unwrap();
        let start = sim.mutating_ops();
        workload(&store, &clock, seed);
        let steps = sim.mutating_ops() - start;
        drop(store);

        for k in 0..=steps {
            let sim = SimStorage::new();
            let clock = Arc::new(ManualClock::new(1_700_000_000_000));
            let store = LeaseStore::open_with(Some(dir), opts(), Arc::new(sim.clone()), clock.clone()).unwrap();
            sim.halt_after(k);
            let acked = workload(&store, &clock, seed);
            drop(store);
            let after = sim.power_loss(&mut SimRng::new(seed * 7919 + k));
            let clock2 = Arc::new(ManualClock::new(1_700_000_000_000));
            let reopened = LeaseStore::open_with(Some(dir), opts(), Arc::new(after), clock2)
                .unwrap_or_else(|e| panic!("seed {seed} step {k}: reopen failed: {e}"));
            let rec = reopened.recovered();
            for (key, token) in &acked.held {
                assert!(
                    rec.held.iter().any(|h| &h.key == key && h.token == *token),
                    "seed {seed} step {k}: acknowledged lease {key}#{token} not held after the crash: {:?}",
                    rec.held
                );
                assert_eq!(reopened.holder(key).map(|h| h.token), Some(*token));
            }
            for (key, token) in &acked.released {
                assert!(
                    !rec.held.iter().any(|h| &h.key == key && h.token == *token),
                    "seed {seed} step {k}: lease {key}#{token} held again after the crash, though an acknowledged record followed its release"
                );
            }
            for (key, at) in &acked.last_run {
                let got = reopened.last_run(key).unwrap_or(0);
                assert!(got >= *at, "seed {seed} step {k}: lastRun of {key} moved back from {at} to {got}");
            }
            for (key, seq) in &acked.cursors {
                let got = reopened.cursor(key).unwrap_or(0);
                assert!(got >= *seq, "seed {seed} step {k}: cursor of {key} moved back from {seq} to {got}");
                assert!(rec.cursors.iter().any(|(k2, s2)| k2 == key && s2 == &got));
            }
            for id in &acked.outbox {
                assert!(rec.outbox.iter().any(|e| e.id == *id), "seed {seed} step {k}: outbox entry {id} lost");
            }
            // A fresh key: its token must be above every token ever acknowledged.
            let (got, lsn) = reopened.acquire("fresh", None, None, None).unwrap();
            let Acquired::Granted(l) = got else { panic!("fresh key not granted") };
            assert!(l.token > acked.max_token, "seed {seed} step {k}: token {} repeats (max acknowledged {})", l.token, acked.max_token);
            assert!(wait(&reopened, lsn));
            // Gate slots of recovered leases are counted.
            let in_g = rec.held.iter().filter(|h| h.group.as_deref() == Some("g")).count() as u64;
            assert_eq!(reopened.in_flight(Some("g")), in_g);
            cases += 1;
        }
    }
    assert!(cases > 500, "only {cases} crash points");
}
