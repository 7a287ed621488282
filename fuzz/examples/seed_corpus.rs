//! Writes the committed seed corpus: real segments and directories produced
//! by the log and the lease store themselves, so the fuzzer starts from the
//! shapes recovery meets (several segments, a checkpoint with its superseded
//! predecessors, a torn tail, preallocated zeros, leftovers) instead of
//! having to discover the magic, the CRCs and the lease record layout.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`
//!
//! Segment salts are random, so a rerun rewrites every file; keep it to when
//! the format changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orderly_fuzz::{
    file_name, segment_name_byte, DirImage, DIR, FLAG_CHECKPOINT, FLAG_EAGER_COMPACT, FLAG_FIX_CHECKSUMS, FLAG_PREALLOCATE, FLAG_REPAIR,
};
use orderly_lease::{Acquired, LeaseInfo, LeaseStore, ManualClock, Rec, StoreOptions};
use orderly_wal::sim::SimStorage;
use orderly_wal::{Storage, Wal, WalOptions};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decode = root.join("decode");
    let recover = root.join("recover");
    for d in [&decode, &recover] {
        std::fs::create_dir_all(d).expect("corpus dir");
        // Only our own seeds: what libFuzzer added is left alone.
        for e in std::fs::read_dir(d).expect("read corpus dir") {
            let p = e.expect("entry").path();
            if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                std::fs::remove_file(&p).expect("remove old seed");
            }
        }
    }
    let dir = Path::new(DIR);

    // A lease store's log: every record type, in one segment.
    let store_sim = SimStorage::new();
    lease_history(&store_sim, dir, false);
    let store_files = files(&store_sim, dir);
    let seg = &store_files[0].1;
    write(&decode, "seed-lease-segment", seg);
    write(&recover, "seed-lease-store", &image(FLAG_FIX_CHECKSUMS | FLAG_EAGER_COMPACT, 255, 0x0b, &store_files));
    write(&recover, "seed-lease-store-raw", &image(0, 0, 0x02, &store_files));

    // The same history in a preallocated segment, torn mid-frame: the tail
    // a power cut leaves (zeros after the cut, as preallocation reads).
    let torn_sim = SimStorage::new();
    lease_history(&torn_sim, dir, true);
    let mut torn = files(&torn_sim, dir);
    let end = torn[0].1.iter().rposition(|&b| b != 0).expect("data") + 1;
    torn[0].1[end - 20..].iter_mut().for_each(|b| *b = 0);
    write(&decode, "seed-torn-tail", &torn[0].1);
    write(&recover, "seed-torn-tail-prealloc", &image(FLAG_PREALLOCATE | FLAG_FIX_CHECKSUMS, 255, 0x11, &torn));

    // The same store compacted: a checkpoint segment carrying the live set,
    // with the HIGH_WATER and LAST_RUN records only a checkpoint writes.
    let compacted_sim = SimStorage::new();
    lease_history(&compacted_sim, dir, false);
    let store = LeaseStore::open_with(Some(dir), store_options(false), Arc::new(compacted_sim.clone()), Arc::new(ManualClock::new(1_700_000_100_000)))
        .expect("reopen store");
    let lsn = store.compact().expect("compact").expect("durable store");
    store.wal().expect("durable store").wait_durable(lsn).expect("durable");
    store.close().expect("close store");
    let compacted = files(&compacted_sim, dir);
    write(&decode, "seed-lease-checkpoint", &compacted[0].1);
    write(&recover, "seed-lease-store-compacted", &image(FLAG_FIX_CHECKSUMS, 255, 0x2c, &compacted));

    // Several segments (4 KiB each), then a checkpoint; the copy taken before
    // the checkpoint deleted them is what a crash at that step leaves.
    let multi = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(multi.clone());
    let opts = WalOptions { segment_bytes: 4096, flush_interval: Duration::from_millis(5), repair: false, preallocate: false };
    let wal = Wal::open_with_storage(dir, opts.clone(), storage.clone()).expect("open");
    let mut last = 0;
    for i in 0..24u8 {
        last = wal.append(&vec![i; 150 + usize::from(i) * 7]).expect("append");
    }
    wal.wait_durable(last).expect("durable");
    wal.close().expect("close");
    let before = files(&multi, dir);
    write(&recover, "seed-multi-segment", &image(FLAG_FIX_CHECKSUMS | FLAG_CHECKPOINT, 255, 0x1a, &before));
    let wal = Wal::open_with_storage(dir, opts, storage).expect("reopen");
    let live: Vec<Vec<u8>> = (0..3u8).map(|i| vec![0xc0 | i; 40]).collect();
    let lsn = wal.checkpoint(live).expect("checkpoint");
    wal.wait_durable(lsn).expect("durable");
    wal.close().expect("close");
    let after = files(&multi, dir);
    write(&decode, "seed-checkpoint-segment", &after[0].1);
    let mut crashed = before.clone();
    crashed.extend(after.iter().cloned());
    // A half-written segment creation and a file that is none of the log's.
    crashed.push((0x1b, vec![0xaa; 100]));
    crashed.push((0x0e, b"operator notes".to_vec()));
    assert_eq!(file_name(0x1b), "0000000000000002.wal.tmp");
    write(&recover, "seed-checkpoint-leftovers", &image(FLAG_FIX_CHECKSUMS | FLAG_REPAIR, 255, 0x23, &crashed));

    // Lease records on their own, for the record decoder.
    for (name, rec) in [
        ("acquire", Rec::Acquire(lease("orders/sweep", 7, Some("maintenance"), Some(b"pid=42".to_vec())))),
        ("complete", Rec::Complete { key: "orders/sweep".into(), token: 7, completed_at: 1_700_000_005_000, outcome: b"did-work".to_vec() }),
        ("last-run", Rec::LastRun { key: "orders/health".into(), at: 1_700_000_000_000 }),
    ] {
        write(&decode, &format!("seed-rec-{name}"), &rec.encode());
    }
}

fn lease(key: &str, token: u64, group: Option<&str>, meta: Option<Vec<u8>>) -> LeaseInfo {
    LeaseInfo {
        key: key.into(),
        token,
        acquired_at: 1_700_000_000_000,
        expires_at: 1_700_000_060_000,
        ttl_ms: 60_000,
        group: group.map(str::to_owned),
        meta,
    }
}

/// Acquires in and out of a gated group, a completion that is acked and one
/// left in the outbox, releases, and one lease still held at the end.
fn lease_history(sim: &SimStorage, dir: &Path, preallocate: bool) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = LeaseStore::open_with(Some(dir), store_options(preallocate), Arc::new(sim.clone()), clock.clone()).expect("open store");
    let wal = store.wal().expect("durable").clone();
    let grant = |key: &str, group: Option<&str>| -> LeaseInfo {
        let (got, lsn) = store.acquire(key, None, group.map(str::to_owned), Some(b"pid=42".to_vec())).expect("acquire");
        wal.wait_durable(lsn.expect("lsn")).expect("durable");
        match got {
            Acquired::Granted(info) => (*info).clone(),
            other => panic!("{key}: {other:?}"),
        }
    };
    let sweep = grant("orders/sweep", Some("maintenance"));
    let health = grant("orders/health", None);
    let backup = grant("orders/backup", Some("maintenance"));
    clock.advance(1_500);
    let (entry, lsn) = store.complete("orders/sweep", sweep.token, b"did-work".to_vec()).expect("complete");
    wal.wait_durable(lsn.expect("lsn")).expect("durable");
    store.ack(entry.id).expect("ack");
    store.release("orders/sweep", sweep.token, true).expect("release");
    let (_, lsn) = store.complete("orders/backup", backup.token, b"failed: exit 3".to_vec()).expect("complete");
    wal.wait_durable(lsn.expect("lsn")).expect("durable");
    let lsn = store.release("orders/health", health.token, true).expect("release");
    wal.wait_durable(lsn.expect("lsn")).expect("durable");
    store.close().expect("close store");
}

fn store_options(preallocate: bool) -> StoreOptions {
    StoreOptions {
        default_ttl_ms: 60_000,
        gates: vec![("maintenance".into(), 2)],
        wal: WalOptions { segment_bytes: 4096, flush_interval: Duration::from_millis(5), repair: false, preallocate },
        compact_after_bytes: 1 << 30,
    }
}

/// The files of `dir` as (name byte, contents), segments in order.
fn files(sim: &SimStorage, dir: &Path) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    for name in sim.names(dir) {
        let seq = name.strip_suffix(".wal").and_then(|h| u64::from_str_radix(h, 16).ok()).expect("only segments");
        out.push((segment_name_byte(seq), sim.contents(&dir.join(&name)).expect("contents")));
    }
    out
}

fn image(flags: u8, fix_limit: u8, extra: u8, files: &[(u8, Vec<u8>)]) -> Vec<u8> {
    DirImage { flags, fix_limit, extra, files: files.to_vec() }.to_bytes()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
    println!("{:>6} bytes  {}", bytes.len(), dir.join(name).display());
}
