//! A crash at every step of a checkpoint leaves the old state or the new one.

mod common;

use std::path::Path;
use std::sync::Arc;

use orderly_wal::sim::{SimRng, SimStorage};
use orderly_wal::Wal;

fn prepared(preallocate: bool) -> (SimStorage, Wal, Vec<(u64, Vec<u8>)>) {
    let sim = SimStorage::new();
    let wal = Wal::open_with_storage(Path::new("/s/wal"), common::opts(4096, preallocate), Arc::new(sim.clone())).unwrap();
    for i in 0..60 {
        let lsn = wal.append(&common::payload(i, 150)).unwrap();
        wal.wait_durable(lsn).unwrap();
    }
    let old = wal.records();
    assert!(old.is_empty(), "records() is the state at open");
    let old = (0..60).map(|i| (i + 1, common::payload(i, 150))).collect();
    (sim, wal, old)
}

#[test]
fn a_crash_at_any_step_of_a_checkpoint_leaves_old_or_new_state() {
    for preallocate in [false, true] {
        let live: Vec<Vec<u8>> = (0..7).map(|i| common::payload(1000 + i, 200)).collect();
        // Count the storage operations of an uninterrupted checkpoint.
        let (sim, wal, _) = prepared(preallocate);
        let before = sim.mutating_ops();
        let t = wal.checkpoint(live.clone()).unwrap();
        wal.wait_durable(t).unwrap();
        let steps = sim.mutating_ops() - before;
        assert!(steps >= 6, "checkpoint took only {steps} storage operations");
        wal.close().unwrap();

        let (mut saw_old, mut saw_new) = (0, 0);
        for k in 0..=steps {
            for seed in 0..12 {
                let (sim, wal, old) = prepared(preallocate);
                sim.halt_after(k);
                let ticket = wal.checkpoint(live.clone()).unwrap();
                let acked = wal.wait_durable(ticket).is_ok();
                let _ = wal.close();
                let new: Vec<(u64, Vec<u8>)> = live.iter().enumerate().map(|(i, p)| (ticket - live.len() as u64 + 1 + i as u64, p.clone())).collect();
                let after = sim.power_loss(&mut SimRng::new(seed * 1000 + k));
                let reopened = Wal::open_with_storage(Path::new("/s/wal"), common::opts(4096, preallocate), Arc::new(after))
                    .unwrap_or_else(|e| panic!("step {k} seed {seed}: {e}"));
                let got: Vec<(u64, Vec<u8>)> = reopened.records().into_iter().map(|r| (r.lsn, r.payload)).collect();
                if got == new {
                    saw_new += 1;
                } else {
                    assert!(!acked, "step {k} seed {seed}: acknowledged checkpoint lost");
                    assert_eq!(got, old, "step {k} seed {seed}: neither the old state nor the new one");
                    saw_old += 1;
                }
                // Whatever survived, the directory holds only live segments now.
                reopened.close().unwrap();
            }
        }
        assert!(saw_old > 0 && saw_new > 0, "old {saw_old} new {saw_new}");
    }
}
