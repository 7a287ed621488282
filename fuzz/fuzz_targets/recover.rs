//! Recovery on arbitrary directory contents (see `DirImage` for the input
//! layout), on the in-memory `SimStorage`.
//!
//! Properties, beyond "no panic, no hang, only typed errors":
//! - `inspect` and an open agree: the same records, the same bytes to cut,
//!   and an open refuses (without repair) exactly what `inspect` refuses.
//! - Recovery is idempotent: a log an open accepted (repairing or not) opens
//!   again without repair, with the same records and nothing left to cut.
//! - Acknowledged means durable (G5): records appended (and a checkpoint
//!   taken) after recovery are all there, in order, on the next open.
//! - The lease store on the same directory opens to the same recovered state
//!   twice (even when the first open compacted), and a lease acquired after
//!   that survives a reopen with a token above every recovered one (G8).

#![no_main]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use orderly_fuzz::frame::COUNTER_LIMIT;
use orderly_fuzz::{DirImage, DIR, FLAG_CHECKPOINT, FLAG_EAGER_COMPACT, FLAG_PREALLOCATE, FLAG_REPAIR};
use orderly_lease::{Acquired, LeaseError, LeaseInfo, LeaseStore, ManualClock, OutboxEntry, Rec, StoreOptions};
use orderly_wal::sim::SimStorage;
use orderly_wal::{Record, Storage, Wal, WalError, WalOptions};

fuzz_target!(|data: &[u8]| {
    let img = DirImage::parse(data);
    let dir = Path::new(DIR);
    let sim = SimStorage::new();
    img.install(&sim, dir);
    // An untouched copy for the lease store: the log's open rewrites the directory.
    let for_store = sim.restart();
    // The store opens the log with the same options, so it recovers the same
    // records; when the log refuses or a record is not a lease record, the
    // store can only pass that error on, and its three opens (a writer
    // thread each) would be spent on nothing.
    if let Some(records) = wal(&img, sim, dir) {
        if records.iter().all(|r| Rec::decode(&r.payload).is_ok()) {
            lease_store(&img, for_store, dir);
        }
    }
});

fn wal_options(img: &DirImage, repair: bool) -> WalOptions {
    WalOptions {
        segment_bytes: img.segment_bytes(),
        flush_interval: Duration::from_millis(10),
        repair,
        preallocate: img.flags & FLAG_PREALLOCATE != 0,
    }
}

fn open(storage: &Arc<dyn Storage>, dir: &Path, opts: WalOptions, what: &str) -> Wal {
    Wal::open_with_storage(dir, opts, storage.clone()).unwrap_or_else(|e| panic!("{what}: reopen refused: {e}"))
}

/// The log fails closed (G6) rather than start a segment at an LSN past
/// COUNTER_LIMIT, which it could not reopen; only a crafted header puts the
/// LSNs this close to it.
fn ran_out(e: &WalError, lsn: u64) -> bool {
    matches!(e, WalError::Poisoned { .. }) && lsn >= COUNTER_LIMIT - (1 << 20)
}

/// Returns the records the first open recovered, if it succeeded.
fn wal(img: &DirImage, sim: SimStorage, dir: &Path) -> Option<Vec<Record>> {
    let repair = img.flags & FLAG_REPAIR != 0;
    let seen = orderly_wal::inspect(&sim, dir);
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let wal = match Wal::open_with_storage(dir, wal_options(img, repair), storage.clone()) {
        Ok(w) => w,
        Err(e) => {
            assert!(e.code().starts_with("ERR_"));
            // Repair only changes what a refused scan does, so an open can
            // fail after an accepting `inspect` only in the steps that
            // rewrite the directory, which must not fail on a healthy sim.
            if let Ok(i) = &seen {
                panic!("inspect accepted the log ({} records) but open failed: {e}", i.records.len());
            }
            return None;
        }
    };
    let first = wal.records();
    let report = wal.open_report();
    assert_eq!(report.records, first.len() as u64);
    match &seen {
        Ok(i) => {
            assert_eq!(i.records, first, "inspect and open recovered different records");
            assert_eq!(i.would_truncate, report.bytes_truncated, "inspect and open cut different amounts");
        }
        Err(e) => assert!(repair, "open accepted what inspect refused: {e}"),
    }
    assert!(first.windows(2).all(|w| w[0].lsn < w[1].lsn), "records out of LSN order");
    wal.close().expect("close");

    let again = open(&storage, dir, wal_options(img, false), "after recovery");
    assert_eq!(again.records(), first, "recovery is not idempotent");
    assert_eq!(again.open_report().bytes_truncated, 0, "second open cut more: {:?}", again.open_report().reason);
    let i = orderly_wal::inspect(&sim, dir).expect("inspect after recovery");
    assert_eq!(i.leftover_files, 0, "recovery left leftovers behind");

    let mut expected: Vec<Record> = first.clone();
    if img.flags & FLAG_CHECKPOINT != 0 {
        // Every other record as the live set, so the checkpoint both keeps
        // and drops records.
        let live: Vec<Vec<u8>> = first.iter().step_by(2).map(|r| r.payload.clone()).collect();
        let last = again.checkpoint(live.clone()).expect("checkpoint");
        if let Err(e) = again.wait_durable(last) {
            assert!(ran_out(&e, last), "checkpoint failed: {e}");
            return Some(first);
        }
        let first_lsn = last + 1 - live.len() as u64;
        expected = live.into_iter().enumerate().map(|(k, payload)| Record { lsn: first_lsn + k as u64, payload }).collect();
    }
    let appends = usize::from(img.extra & 7);
    let size = usize::from(img.extra >> 3) * 61;
    let mut last = None;
    for k in 0..appends {
        let payload: Vec<u8> = (0..size + k).map(|j| (j * 31 + k) as u8).collect();
        let lsn = match again.append(&payload) {
            Ok(lsn) => lsn,
            Err(e) => {
                assert!(ran_out(&e, expected.last().map_or(0, |r| r.lsn)), "append failed: {e}");
                return Some(first);
            }
        };
        if let Some(prev) = expected.last() {
            assert!(lsn > prev.lsn, "append got LSN {lsn} after {}", prev.lsn);
        }
        expected.push(Record { lsn, payload });
        last = Some(lsn);
    }
    if let Some(lsn) = last {
        if let Err(e) = again.wait_durable(lsn) {
            assert!(ran_out(&e, lsn), "appended records not durable: {e}");
            return Some(first);
        }
    }
    again.close().expect("close");

    let third = open(&storage, dir, wal_options(img, false), "after appending");
    assert_eq!(third.records(), expected, "acknowledged records lost or changed across a reopen");
    assert_eq!(third.open_report().bytes_truncated, 0);
    third.close().expect("close");
    Some(first)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreState {
    held: Vec<LeaseInfo>,
    outbox: Vec<OutboxEntry>,
    last_run: Vec<(String, u64)>,
    high_water: u64,
}

fn state(s: &LeaseStore) -> StoreState {
    let r = s.recovered();
    let mut held = r.held.clone();
    // Recovered leases come sorted by token only; ties would compare unequal by chance.
    held.sort_by(|a, b| (a.token, &a.key).cmp(&(b.token, &b.key)));
    StoreState { held, outbox: r.outbox.clone(), last_run: r.last_run.clone(), high_water: s.stats().high_water }
}

fn lease_store(img: &DirImage, sim: SimStorage, dir: &Path) {
    let storage: Arc<dyn Storage> = Arc::new(sim);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let opts = |repair| StoreOptions {
        default_ttl_ms: 60_000,
        gates: Vec::new(),
        wal: wal_options(img, repair),
        // 1 byte: compact at every chance, so the live-set rewrite of
        // whatever was recovered is itself recovered by the next open.
        compact_after_bytes: if img.flags & FLAG_EAGER_COMPACT != 0 { 1 } else { 1 << 30 },
    };
    let store = match LeaseStore::open_with(Some(dir), opts(img.flags & FLAG_REPAIR != 0), storage.clone(), clock.clone()) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.code().starts_with("ERR_"));
            return;
        }
    };
    let before = state(&store);
    store.close().expect("close store");

    let again = LeaseStore::open_with(Some(dir), opts(false), storage.clone(), clock.clone()).unwrap_or_else(|e| panic!("store reopen refused: {e}"));
    // Idempotent but for the high water: every open continues fences above the reservation kept
    // beside the log (a block ahead), so it may only rise.
    let again_state = state(&again);
    let again_hw = again_state.high_water;
    assert!(again_state.high_water >= before.high_water, "high water fell from {} to {}", before.high_water, again_state.high_water);
    assert_eq!(StoreState { high_water: 0, ..again_state }, StoreState { high_water: 0, ..before.clone() }, "lease store recovery is not idempotent");

    let key = format!("fuzz/{}", img.extra);
    let (got, lsn) = match again.acquire(&key, Some(30_000), None, Some(vec![img.extra])) {
        Ok(r) => r,
        // Refused rather than issue a token no record could carry (G8).
        Err(LeaseError::InvalidArg(m)) if again_hw == orderly_lease::TOKEN_LIMIT - 1 => {
            assert!(m.contains("exhausted"), "{m}");
            return;
        }
        Err(e) => panic!("acquire: {e}"),
    };
    let granted = match got {
        Acquired::Granted(info) => {
            assert!(info.token > again_hw, "token {} issued again (high water {})", info.token, again_hw);
            again.wal().expect("durable store").wait_durable(lsn.expect("lsn of a durable acquire")).expect("acquire durable");
            Some((*info).clone())
        }
        Acquired::Held => {
            assert!(before.held.iter().any(|h| h.key == key), "{key} refused as held, but no recovered lease holds it");
            None
        }
        Acquired::GateFull => panic!("gate full without a gate"),
    };
    again.close().expect("close store");

    let third = LeaseStore::open_with(Some(dir), opts(false), storage, clock).unwrap_or_else(|e| panic!("store reopen refused: {e}"));
    let after = state(&third);
    let mut want = before.held.clone();
    if let Some(info) = &granted {
        // Recovered leases never expire by themselves: the expiry the log
        // carries is the one computed from the acquire time and TTL.
        // Its token is above every recovered one (asserted above): `want` stays sorted.
        want.push(info.clone());
        assert!(after.high_water >= info.token);
    }
    assert_eq!(after.held, want, "held leases changed across a reopen");
    assert_eq!(after.outbox, before.outbox, "outbox changed across a reopen");
}
