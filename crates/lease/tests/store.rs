//! The durable store's behaviour across reopen, compaction and misuse.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orderly_lease::{Acquired, LeaseStore, ManualClock, StoreOptions};
use orderly_wal::{FsStorage, WalOptions};

fn granted(store: &LeaseStore, key: &str, group: Option<&str>) -> orderly_lease::LeaseInfo {
    let (got, lsn) = store.acquire(key, Some(60_000), group.map(str::to_owned), Some(b"pid=1".to_vec())).unwrap();
    if let (Some(w), Some(l)) = (store.wal(), lsn) {
        w.wait_durable(l).unwrap();
    }
    match got {
        Acquired::Granted(l) => (*l).clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
fn held_leases_outbox_and_last_run_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let store = LeaseStore::open(Some(d.path()), StoreOptions::default()).unwrap();
    let a = granted(&store, "a", Some("g"));
    let b = granted(&store, "b", None);
    let c = granted(&store, "c", None);
    let (entry, lsn) = store.complete("b", b.token, b"did-work".to_vec()).unwrap();
    store.wal().unwrap().wait_durable(lsn.unwrap()).unwrap();
    store.release("c", c.token, true).unwrap();
    store.close().unwrap();

    let again = LeaseStore::open(Some(d.path()), StoreOptions::default()).unwrap();
    let rec = again.recovered();
    let held: Vec<(String, u64)> = rec.held.iter().map(|h| (h.key.clone(), h.token)).collect();
    assert_eq!(held, vec![("a".into(), a.token), ("b".into(), b.token)]);
    assert_eq!(rec.held[0].meta.as_deref(), Some(&b"pid=1"[..]));
    assert_eq!(rec.outbox, vec![entry.clone()]);
    assert_eq!(again.last_run("c"), Some(c.acquired_at));
    assert_eq!(again.in_flight(Some("g")), 1);
    // Recovered leases are held: the key cannot be taken, even after their TTL.
    assert!(matches!(again.acquire("a", Some(1), None, None).unwrap().0, Acquired::Held));
    // A completed lease cannot complete twice.
    assert_eq!(again.complete("b", b.token, vec![]).unwrap_err().code(), "ERR_INVALID_ARG");
    again.ack(entry.id).unwrap();
    again.ack(entry.id).unwrap();
    again.release("a", a.token, false).unwrap();
    again.close().unwrap();

    let third = LeaseStore::open(Some(d.path()), StoreOptions::default()).unwrap();
    assert!(third.recovered().outbox.is_empty());
    assert_eq!(third.recovered().held.len(), 1);
}

#[test]
fn a_stale_token_cannot_release_renew_or_complete_after_takeover() {
    let clock = Arc::new(ManualClock::new(1_000));
    let store = LeaseStore::open_with(None, StoreOptions::default(), Arc::new(FsStorage), clock.clone()).unwrap();
    let (got, _) = store.acquire("k", Some(100), None, None).unwrap();
    let Acquired::Granted(old) = got else { panic!() };
    assert!(matches!(store.acquire("k", Some(100), None, None).unwrap().0, Acquired::Held));
    clock.advance(100);
    let (got, _) = store.acquire("k", Some(100), None, None).unwrap();
    let Acquired::Granted(new) = got else { panic!("expired lease not taken over") };
    assert!(new.token > old.token);
    for err in [
        store.release("k", old.token, false).unwrap_err(),
        store.renew("k", old.token, None).unwrap_err(),
        store.complete("k", old.token, vec![]).unwrap_err(),
    ] {
        assert_eq!(err.code(), "ERR_LEASE_STALE", "{err}");
    }
    store.release("k", new.token, false).unwrap();
    assert_eq!(store.in_flight(None), 0);
}

#[test]
fn cycles_keep_the_directory_bounded_and_tokens_rise_across_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        wal: WalOptions { segment_bytes: 1 << 20, flush_interval: Duration::from_millis(5), ..WalOptions::default() },
        compact_after_bytes: 1 << 20,
        ..StoreOptions::default()
    };
    let store = LeaseStore::open(Some(d.path()), opts.clone()).unwrap();
    let mut max_bytes = 0;
    let mut last_token = 0;
    for i in 0..300_000u64 {
        let key = format!("order-{}", i % 1000);
        let (got, _) = store.acquire(&key, None, None, None).unwrap();
        let Acquired::Granted(l) = got else { panic!() };
        assert!(l.token > last_token);
        last_token = l.token;
        store.release(&key, l.token, false).unwrap();
        if i % 20_000 == 0 {
            max_bytes = max_bytes.max(dir_bytes(d.path()));
        }
    }
    let stats = store.stats();
    assert!(stats.checkpoints > 10, "{stats:?}");
    // 300k cycles write ~25 MB of records; the directory holds a few MB at most.
    assert!(max_bytes < 4 << 20, "directory grew to {max_bytes} bytes");
    store.close().unwrap();
    let again = LeaseStore::open(Some(d.path()), opts).unwrap();
    assert!(again.recovered().held.is_empty());
    assert_eq!(again.recovered().last_run.len(), 1000);
    let (got, _) = again.acquire("order-1", None, None, None).unwrap();
    let Acquired::Granted(l) = got else { panic!() };
    assert!(l.token > last_token, "token {} after checkpoints and reopen; last was {last_token}", l.token);
}

#[test]
fn memory_mode_needs_no_directory_and_writes_nothing() {
    let store = LeaseStore::open(None, StoreOptions { gates: vec![("g".into(), 1)], ..StoreOptions::default() }).unwrap();
    let (got, lsn) = store.acquire("k", None, Some("g".into()), None).unwrap();
    assert!(lsn.is_none());
    assert!(matches!(got, Acquired::Granted(_)));
    assert!(matches!(store.acquire("k2", None, Some("g".into()), None).unwrap().0, Acquired::GateFull));
    store.set_gate("g", 2).unwrap();
    assert!(matches!(store.acquire("k2", None, Some("g".into()), None).unwrap().0, Acquired::Granted(_)));
    assert!(store.wal().is_none());
}

#[test]
fn shared_opens_of_one_directory_return_one_store() {
    let d = tempfile::tempdir().unwrap();
    let a = orderly_lease::open_shared(d.path(), StoreOptions::default()).unwrap();
    let b = orderly_lease::open_shared(&d.path().join("."), StoreOptions { gates: vec![("g".into(), 4)], ..StoreOptions::default() }).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.gate_cap("g"), Some(4));
    granted(&a, "k", None);
    assert!(matches!(b.acquire("k", None, None, None).unwrap().0, Acquired::Held));
}

#[test]
fn a_poisoned_store_refuses_every_acquire_even_of_a_key_it_still_holds() {
    use orderly_wal::sim::{Fault, Op, SimStorage};
    let sim = Arc::new(SimStorage::new());
    let clock = Arc::new(ManualClock::new(1_000));
    let dir = Path::new("/state/leases");
    let store = LeaseStore::open_with(Some(dir), StoreOptions::default(), sim.clone(), clock).unwrap();
    let held = granted(&store, "held", None);
    // Recording the outcome fails: the log is poisoned and "held" stays held,
    // as the controller leaves a run whose outcome it could not record.
    sim.fail_nth(Op::Sync, 1, Fault::Enospc);
    let (_, lsn) = store.complete("held", held.token, b"did-work".to_vec()).unwrap();
    assert!(store.wal().unwrap().wait_durable(lsn.unwrap()).is_err());
    for key in ["held", "free"] {
        let err = store.acquire(key, Some(60_000), None, None).unwrap_err();
        assert_eq!(err.code(), "ERR_WAL_POISONED", "{key}: {err}");
    }
}

#[test]
fn event_cursors_only_rise_and_survive_reopen_and_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let opts = || StoreOptions { compact_after_bytes: 4096, ..StoreOptions::default() };
    let store = LeaseStore::open(Some(d.path()), opts()).unwrap();
    let lsn = store.set_cursor("on-close", 7, true).unwrap();
    store.wal().unwrap().wait_durable(lsn.unwrap()).unwrap();
    // Lower or equal writes nothing and changes nothing.
    assert_eq!(store.set_cursor("on-close", 7, true).unwrap(), None);
    assert_eq!(store.set_cursor("on-close", 3, true).unwrap(), None);
    assert_eq!(store.cursor("on-close"), Some(7));
    assert_eq!(store.cursor("other"), None);
    // Enough churn for several checkpoints: the cursor is part of the live set.
    for i in 0..300 {
        let l = granted(&store, "churn", None);
        store.release("churn", l.token, false).unwrap();
        if i == 150 {
            store.set_cursor("on-close", 9, false).unwrap();
        }
    }
    assert!(store.stats().checkpoints > 0);
    store.close().unwrap();

    let again = LeaseStore::open(Some(d.path()), opts()).unwrap();
    assert_eq!(again.cursor("on-close"), Some(9));
    assert_eq!(again.recovered().cursors, vec![("on-close".to_string(), 9)]);
    again.close().unwrap();
    let seen = orderly_lease::inspect(d.path()).unwrap();
    assert_eq!(seen.cursors, vec![("on-close".to_string(), 9)]);
}

#[test]
fn a_lost_log_is_refused_and_a_repair_never_reuses_a_fence() {
    let d = tempfile::tempdir().unwrap();
    let store = LeaseStore::open(Some(d.path()), StoreOptions::default()).unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let l = granted(&store, "k", None);
        store.release("k", l.token, true).unwrap();
        last = l.token;
    }
    store.close().unwrap();
    drop(store);
    // A cleanup job deletes the log's segments; the reservation beside them stays.
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "wal") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let err = LeaseStore::open(Some(d.path()), StoreOptions::default()).err().expect("a lost log must not open");
    assert_eq!(err.code(), "ERR_WAL_LOST");
    assert!(err.to_string().contains("orderly-dispatch repair"), "{err}");
    assert!(orderly_lease::inspect(d.path()).unwrap().lost);

    let repair = StoreOptions { wal: WalOptions { repair: true, ..WalOptions::default() }, ..StoreOptions::default() };
    let repaired = LeaseStore::open(Some(d.path()), repair).unwrap();
    let (log_high, reserved) = repaired.repair_report().lost_tokens.expect("reported");
    assert_eq!(log_high, 0);
    assert!(reserved > last);
    let fresh = granted(&repaired, "k", None);
    assert!(fresh.token > reserved, "token {} reused a fence at or below the reservation {reserved}", fresh.token);
    repaired.close().unwrap();
    drop(repaired);
    // Repaired: it opens normally from now on.
    assert!(LeaseStore::open(Some(d.path()), StoreOptions::default()).is_ok());
}
