//! EIO and ENOSPC on the n-th write, sync, rename, directory sync or create:
//! the log is poisoned with a typed error, a failed sync is never retried, and
//! reopening recovers every acknowledged record.

mod common;

use std::path::Path;
use std::sync::Arc;

use orderly_wal::sim::{Fault, Op, SimRng, SimStorage};
use orderly_wal::{DurableEvent, Wal, WalError};

/// `lead`: the appending thread writes and syncs its records itself (see `Wal::lead`).
fn run(op: Op, nth: u64, fault: Fault, lead: bool) -> bool {
    let dir = Path::new("/state/wal");
    let o = common::opts(4096, nth % 2 == 0);
    let sim = SimStorage::new();
    let wal = Wal::open_with_storage(dir, o.clone(), Arc::new(sim.clone())).unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    wal.add_listener(move |e| ev.lock().unwrap().push(e));
    sim.fail_nth(op, nth, fault);

    // Durability is a watermark: an acknowledged record covers every record
    // issued before it, so "acknowledged" is a prefix length of `issued`.
    let mut acked = 0usize;
    let mut issued: Vec<Vec<u8>> = Vec::new();
    let mut failure = None;
    // A checkpoint that failed midway may or may not have taken effect.
    let mut unfinished_checkpoint: Option<Vec<Vec<u8>>> = None;
    for i in 0..120u64 {
        let p = common::payload(i, 90 + (i as usize % 7) * 40);
        let leader = lead.then(|| wal.lead());
        let appended = if i % 3 == 0 { wal.append_relaxed(&p) } else { wal.append(&p) };
        let lsn = match appended {
            Ok(l) => l,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        issued.push(p.clone());
        if i % 3 != 0 {
            let waited = match &leader {
                Some(l) => l.wait_durable(lsn),
                None => wal.wait_durable(lsn),
            };
            match waited {
                Ok(()) => acked = issued.len(),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if i % 40 == 39 {
            // Exercise the checkpoint path's renames and directory syncs too.
            let live: Vec<Vec<u8>> = issued.iter().rev().take(5).rev().cloned().collect();
            match wal.checkpoint(live.clone()).and_then(|t| wal.wait_durable(t)) {
                Ok(()) => {
                    acked = live.len();
                    issued = live;
                }
                Err(e) => {
                    unfinished_checkpoint = Some(live);
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let hit = failure.is_some();
    if let Some(err) = failure {
        assert_eq!(err.code(), "ERR_WAL_POISONED", "{op:?} #{nth}: {err}");
        assert!(matches!(err, WalError::Poisoned { .. }));
        assert!(err.to_string().contains(match fault {
            Fault::Eio => "Input/output error",
            Fault::Enospc => "No space left",
        }), "{err}");
        assert!(wal.stats().poisoned);
        assert_eq!(wal.append(b"later").unwrap_err().code(), "ERR_WAL_POISONED");
        assert_eq!(wal.append_relaxed(b"later").unwrap_err().code(), "ERR_WAL_POISONED");
        assert!(events.lock().unwrap().iter().any(|e| matches!(e, DurableEvent::Poisoned(_))));
    }
    wal.close().unwrap();
    assert_eq!(sim.syncs_after_failure(), 0, "{op:?} #{nth}: a failed fsync was retried");

    // Reopen after a plain restart and after a power cut: every acknowledged
    // record is there, and nothing but issued records, in order.
    for (label, storage) in [("restart", sim.restart()), ("power loss", sim.power_loss(&mut SimRng::new(nth)))] {
        let again = Wal::open_with_storage(dir, o.clone(), Arc::new(storage))
            .unwrap_or_else(|e| panic!("{op:?} #{nth} {label}: reopen failed: {e}"));
        let got = common::payloads(&again);
        if unfinished_checkpoint.as_ref() == Some(&got) {
            again.close().unwrap();
            continue;
        }
        assert!(got.len() >= acked, "{op:?} #{nth} {label}: {} records back, {acked} were acknowledged", got.len());
        assert!(issued.starts_with(&got), "{op:?} #{nth} {label}: recovered records that were never issued, or out of order");
        again.close().unwrap();
    }
    hit
}

#[test]
fn an_io_error_poisons_the_log_and_reopen_recovers_everything_acknowledged() {
    let mut hits = 0;
    for op in [Op::Write, Op::Sync, Op::Rename, Op::SyncDir, Op::Create] {
        for fault in [Fault::Eio, Fault::Enospc] {
            for nth in 1..=25 {
                hits += run(op, nth, fault, false) as u32;
                hits += run(op, nth, fault, true) as u32;
            }
        }
    }
    // Each write/sync fault point is reached by this workload.
    assert!(hits >= 2 * 2 * 2 * 25, "only {hits} injected faults were hit");
}
