//! Power loss at random points of random workloads: every acknowledged record
//! is read back, nothing unacknowledged is read as garbage, and a power cut
//! never makes the log look corrupt.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::model::{Model, Op, Rec};
use orderly_wal::sim::{SimRng, SimStorage};
use orderly_wal::{Wal, WalOptions};

const CASES: u64 = 3000;

fn recs(wal: &Wal) -> Vec<Rec> {
    wal.records().into_iter().map(|r| (r.lsn, r.payload)).collect()
}

/// Runs a random workload until it ends, the storage halts, or the power is
/// cut at op `cut_at` while the writer is running. Returns the acknowledged
/// frontier and what survived the power cut.
fn workload(wal: &Wal, sim: &SimStorage, model: &mut Model, rng: &mut SimRng, ops: u64, cut_at: Option<u64>) -> (u64, SimStorage) {
    let relaxed_heavy = rng.chance(50);
    // A third of the ops run under a lead: this thread writes and syncs them itself.
    let mut lead = None;
    for i in 0..ops {
        if rng.chance(33) {
            lead = if lead.is_some() { None } else { Some(wal.lead()) };
        }
        if cut_at == Some(i) {
            // Read the frontier first: what was acknowledged before the cut must survive it.
            let frontier = wal.durable_lsn();
            let survived = sim.power_loss(rng);
            drop(lead);
            let _ = wal.close();
            return (frontier, survived);
        }
        let roll = if relaxed_heavy && rng.chance(95) { 60 } else { rng.below(100) };
        // Records over a sector are what a power cut can tear in the middle.
        let max = if rng.chance(25) { 3000 } else { 200 };
        let len = rng.below(max) as usize;
        let p: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let result = if roll < 55 {
            wal.append(&p).map(|lsn| {
                model.ops.push(Op::Append(lsn, p));
                if rng.chance(50) {
                    let _ = match &lead {
                        Some(l) => l.wait_durable(lsn),
                        None => wal.wait_durable(lsn),
                    };
                }
            })
        } else if roll < 85 {
            wal.append_relaxed(&p).map(|lsn| model.ops.push(Op::Append(lsn, p)))
        } else if roll < 92 {
            wal.request_sync().map(|t| {
                let _ = wal.wait_durable(t);
            })
        } else {
            let current = model.current();
            let keep: Vec<Vec<u8>> = current.iter().filter(|_| rng.chance(40)).map(|(_, p)| p.clone()).collect();
            wal.checkpoint(keep.clone()).map(|last| {
                let first = last + 1 - keep.len() as u64;
                let live = keep.into_iter().enumerate().map(|(i, p)| (first + i as u64, p)).collect();
                model.ops.push(Op::Checkpoint { last, live });
                if rng.chance(50) {
                    let _ = wal.wait_durable(last);
                }
            })
        };
        if result.is_err() {
            break;
        }
    }
    drop(lead);
    let _ = wal.close();
    (wal.durable_lsn(), sim.power_loss(rng))
}

#[derive(Default, Debug)]
struct Coverage {
    torn_tails: u64,
    lost_unacknowledged: u64,
    acknowledged: u64,
    checkpoints: u64,
}

fn run_case(seed: u64, cov: &mut Coverage) {
    let mut rng = SimRng::new(seed);
    let dir = Path::new("/state/wal");
    let opts = WalOptions {
        segment_bytes: [4096, 8192, 65536][rng.below(3) as usize],
        // Half the cases leave relaxed records unsynced for long, so a power
        // cut finds whole unsynced batches to tear.
        flush_interval: Duration::from_millis(if rng.chance(50) { 1 + rng.below(3) } else { 1000 }),
        repair: false,
        preallocate: rng.chance(50),
    };
    let mut sim = SimStorage::new();
    let mut model = Model::default();
    for round in 0..2 {
        let wal = Wal::open_with_storage(dir, opts.clone(), Arc::new(sim.clone()))
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: open failed after power loss: {e}"));
        model.base = recs(&wal);
        model.ops.clear();
        let ops = 10 + rng.below(70);
        let cut_at = if rng.chance(50) {
            Some(rng.below(ops))
        } else {
            // The writer batches eagerly, so a workload is only a few dozen
            // storage operations: halt within that range.
            if rng.chance(85) {
                sim.halt_after(rng.below(30));
            }
            None
        };
        let (frontier, survived) = workload(&wal, &sim, &mut model, &mut rng, ops, cut_at);
        sim = survived;
        let after = Wal::open_with_storage(dir, opts.clone(), Arc::new(sim.clone()))
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: power loss made the log unreadable: {e}"));
        let got = recs(&after);
        cov.torn_tails += (after.open_report().bytes_truncated > 0) as u64;
        cov.lost_unacknowledged += (got != model.current()) as u64;
        cov.acknowledged += frontier;
        cov.checkpoints += model.ops.iter().filter(|o| matches!(o, Op::Checkpoint { .. })).count() as u64;
        assert!(
            model.explains(&got, frontier),
            "seed {seed} round {round}: recovered {:?} is no prefix of history covering acknowledged LSN {frontier}\nmodel: {:?}",
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            model.ops.iter().map(Op::end).collect::<Vec<_>>()
        );
        after.close().unwrap();
        sim = sim.restart();
    }
}

#[test]
fn acknowledged_records_survive_power_loss_at_random_points() {
    let base = std::env::var("WAL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC0FFEE);
    let cases = std::env::var("WAL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CASES);
    let mut cov = Coverage::default();
    for i in 0..cases {
        run_case(base + i, &mut cov);
    }
    eprintln!("power loss: {cases} cases x 2 rounds: {cov:?}");
    // The workload must actually reach the cases it claims to test.
    assert!(cov.torn_tails > cases / 40, "{cov:?}");
    assert!(cov.lost_unacknowledged > cases / 10, "{cov:?}");
    assert!(cov.acknowledged > cases * 10 && cov.checkpoints > cases / 2, "{cov:?}");
}
