//! Lease records and logs the fuzzer (fuzz/fuzz_targets) found mishandled,
//! reduced to the bytes that matter.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orderly_lease::{LeaseError, LeaseStore, ManualClock, Rec, StoreOptions, TOKEN_LIMIT};
use orderly_wal::{FsStorage, Wal, WalOptions};

fn wal_opts() -> WalOptions {
    WalOptions { segment_bytes: 64 << 10, flush_interval: Duration::from_millis(5), repair: false, preallocate: false }
}

fn open(dir: &Path) -> orderly_lease::Result<LeaseStore> {
    let opts = StoreOptions { wal: wal_opts(), ..StoreOptions::default() };
    LeaseStore::open_with(Some(dir), opts, Arc::new(FsStorage), Arc::new(ManualClock::new(1_700_000_000_000)))
}

/// A log holding exactly these records, as a foreign or damaged writer left it.
fn log_of(dir: &Path, records: &[Rec]) {
    let wal = Wal::open(dir, wal_opts()).unwrap();
    for r in records {
        let lsn = wal.append(&r.encode()).unwrap();
        wal.wait_durable(lsn).unwrap();
    }
    wal.close().unwrap();
}

/// Fuzz input (decode target), verbatim: an ACQUIRE whose group flag is 50.
/// Any flag but 1 decoded as "no group", so the record re-encoded to other
/// bytes; the decoder must take only what the encoder writes.
#[test]
fn a_presence_flag_other_than_0_or_1_is_refused() {
    let input: &[u8] = &[
        1, 7, 0, 0, 0, 0, 0, 68, 0, 0, 104, 229, 207, 139, 1, 0, 0, 96, 234, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 111, 114, 16, 0, 6, 0, 0, 0,
        0, 0, 112, 0, 0, 50,
    ];
    let err = Rec::decode(input).unwrap_err();
    assert!(err.contains("flag 50"), "{err}");
    let mut canonical = input.to_vec();
    *canonical.last_mut().unwrap() = 0;
    assert_eq!(Rec::decode(&canonical).unwrap().encode(), canonical);
}

/// A HIGH_WATER record of u64::MAX overflowed `token + 1` while the store
/// replayed it: a panic in debug builds, and in release a high-water mark
/// wrapped to 0, so tokens already issued were issued again (G8).
#[test]
fn a_token_past_the_limit_in_the_log_is_malformed() {
    for token in [u64::MAX, TOKEN_LIMIT] {
        let d = tempfile::tempdir().unwrap();
        log_of(d.path(), &[Rec::HighWater { token }]);
        match open(d.path()) {
            Err(LeaseError::Malformed { lsn: 1, detail }) => assert!(detail.contains("past the limit"), "{detail}"),
            Err(e) => panic!("expected a malformed-record error, got {e}"),
            Ok(s) => panic!("opened with high water {}", s.stats().high_water),
        }
    }
}

/// At the last token the store refuses to grant rather than issue one that
/// no record can carry, and the log it leaves still opens.
#[test]
fn the_store_refuses_to_issue_a_token_past_the_limit() {
    let d = tempfile::tempdir().unwrap();
    log_of(d.path(), &[Rec::HighWater { token: TOKEN_LIMIT - 1 }]);
    let store = open(d.path()).unwrap();
    let err = store.acquire("orders/sweep", Some(1_000), Some("g".into()), None).unwrap_err();
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert_eq!(store.in_flight(Some("g")), 0, "a refused acquire holds no gate slot");
    store.close().unwrap();
    let store = open(d.path()).unwrap();
    assert_eq!(store.stats().high_water, TOKEN_LIMIT - 1);
    assert!(matches!(store.acquire("orders/sweep", Some(1_000), None, None), Err(LeaseError::InvalidArg(_))));
    assert!(store.holder("orders/sweep").is_none());
}
