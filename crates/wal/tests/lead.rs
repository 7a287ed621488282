//! A lead: the thread that waits for its own records writes and syncs them
//! itself when the writer thread is idle, and a relaxed record appended under
//! a lead is written when the lead ends, never left for later.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use orderly_wal::sim::{Op, SimStorage};
use orderly_wal::{DurableEvent, Wal};

fn open(sim: &SimStorage) -> Wal {
    Wal::open_with_storage(Path::new("/state/wal"), common::opts(1 << 20, true), Arc::new(sim.clone())).unwrap()
}

/// Which thread reported each durable LSN.
fn durable_threads(wal: &Wal) -> Arc<Mutex<Vec<(u64, ThreadId)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    wal.add_listener(move |e| {
        if let DurableEvent::Durable(lsn) = e {
            s.lock().unwrap().push((lsn, std::thread::current().id()));
        }
    });
    seen
}

#[test]
fn a_leader_syncs_its_own_records_when_the_writer_is_idle() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    let seen = durable_threads(&wal);
    let me = std::thread::current().id();
    let syncs = sim.count(Op::Sync);
    // The writer thread may be mid-turn (its link check, or preempted on a busy
    // machine) now and then: then the lead waits for it. So count until 15 waits
    // were synced here; with the leader's turn replaced by a wake, none ever is.
    let (mut mine, mut rounds) = (0u32, 0u64);
    while mine < 15 && rounds < 400 {
        let lead = wal.lead();
        let a = wal.append(&common::payload(rounds, 100)).unwrap();
        let b = wal.append(&common::payload(rounds + 1000, 100)).unwrap();
        lead.wait_durable(b).unwrap();
        assert!(wal.durable_lsn() >= a.max(b));
        drop(lead);
        mine += seen.lock().unwrap().iter().any(|&(lsn, t)| lsn >= b && t == me) as u32;
        rounds += 1;
    }
    assert!(mine >= 15, "only {mine} of {rounds} waits were synced on the waiting thread");
    let used = sim.count(Op::Sync) - syncs;
    // One sync per wait synced here; a wait the writer thread interleaved with may take two.
    let bound = mine as u64 + 2 * (rounds - mine as u64);
    assert!(used <= bound, "{used} syncs for {rounds} waits of two records each ({mine} synced by the waiter)");

    // Without a lead, the writer thread does it.
    seen.lock().unwrap().clear();
    let lsn = wal.append(b"plain").unwrap();
    wal.wait_durable(lsn).unwrap();
    // The writer wakes waiters before it tells listeners, so the report may trail the wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    let by = loop {
        let by = seen.lock().unwrap().iter().find(|&&(l, _)| l >= lsn).map(|&(_, t)| t);
        if by.is_some() || Instant::now() > deadline {
            break by;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(by.is_some_and(|t| t != me), "no durable report from the writer thread: {by:?}");
    wal.close().unwrap();
}

#[test]
fn a_relaxed_record_under_a_lead_is_written_when_the_lead_ends() {
    for i in 0..50u64 {
        let sim = SimStorage::new();
        let wal = open(&sim);
        let p = common::payload(i, 60);
        {
            let _lead = wal.lead();
            wal.append_relaxed(&p).unwrap();
        }
        // kill -9 now: what was written survives in the page cache.
        let after = open(&sim.restart());
        assert_eq!(common::payloads(&after), vec![p], "round {i}: the relaxed record was not written when the lead ended");
        after.close().unwrap();
        drop(wal);
    }
}

#[test]
fn another_thread_s_records_are_not_stranded_by_a_lead() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    let lead = wal.lead();
    let other = wal.clone();
    let t = std::thread::spawn(move || {
        let started = Instant::now();
        let lsn = other.append(b"from another thread").unwrap();
        other.wait_durable(lsn).unwrap();
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(100));
    // The lead ends without waiting: the other thread's durable record is synced then, by this thread.
    drop(lead);
    assert!(wal.durable_lsn() >= 1, "the lead ended with another thread's durable record unsynced");
    let waited = t.join().unwrap();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    wal.close().unwrap();
    let after = open(&sim.power_loss(&mut orderly_wal::sim::SimRng::new(7)));
    assert_eq!(common::payloads(&after), vec![b"from another thread".to_vec()]);
    after.close().unwrap();
}

#[test]
fn a_lead_held_while_the_log_closes_hands_over_cleanly() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    let lead = wal.lead();
    let lsn = wal.append(b"before close").unwrap();
    wal.close().unwrap();
    // Closing syncs what was queued; the lead has nothing left to do.
    assert!(lead.wait_durable(lsn).is_ok());
    drop(lead);
    let after = open(&sim.power_loss(&mut orderly_wal::sim::SimRng::new(3)));
    assert_eq!(common::payloads(&after), vec![b"before close".to_vec()]);
    after.close().unwrap();
}

#[test]
fn a_relaxed_record_a_lead_left_unsynced_is_synced_by_the_sleeping_writer_within_the_flush_interval() {
    let sim = SimStorage::new();
    let opts = orderly_wal::WalOptions { flush_interval: Duration::from_millis(100), ..common::opts(1 << 20, true) };
    let wal = Wal::open_with_storage(Path::new("/state/wal"), opts, Arc::new(sim.clone())).unwrap();
    for round in 0..5 {
        // The writer thread is asleep until its link check, a second away.
        std::thread::sleep(Duration::from_millis(50));
        let lsn = {
            let _lead = wal.lead();
            wal.append_relaxed(&common::payload(round, 40)).unwrap()
        };
        let written = Instant::now();
        assert!(wal.durable_lsn() < lsn, "round {round}: synced when the lead ended, not within the flush interval");
        while wal.durable_lsn() < lsn {
            assert!(written.elapsed() < Duration::from_millis(700), "round {round}: still unsynced {:?} after the lead wrote it", written.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    wal.close().unwrap();
}
