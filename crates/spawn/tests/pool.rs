//! The spawning pool: requests queued by one thread, started by others.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use orderly_spawn::{Command, Exit, Job, Reaper, SpawnPool};

mod common;
use common::sh;

/// What a job's `then` saw: its tag, the spawn's result, the thread it ran on.
type Started = (u64, io::Result<i32>, Option<String>);

fn pool(threads: usize) -> (SpawnPool, mpsc::Receiver<Exit>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let reaper = Reaper::start(move |e| {
        let _ = tx.lock().unwrap().send(e);
    })
    .unwrap();
    (SpawnPool::start(Arc::new(reaper), threads).unwrap(), rx)
}

fn job(cmd: Command, tag: u64, started: &mpsc::Sender<Started>) -> Job {
    let started = started.clone();
    Job { cmd, tag, then: Box::new(move |r| started.send((tag, r, std::thread::current().name().map(str::to_string))).unwrap()) }
}

const WAIT: Duration = Duration::from_secs(20);

/// A start or an exit, heard through one queue as the binding hears them.
enum Heard {
    Started(u64, i32, Option<String>),
    Ended(Exit),
}

#[test]
fn starts_a_burst_on_its_own_threads_and_reports_each_start_before_its_exit() {
    let (tx, heard) = mpsc::channel();
    let on_exit = std::sync::Mutex::new(tx.clone());
    let reaper = Reaper::start(move |e| {
        let _ = on_exit.lock().unwrap().send(Heard::Ended(e));
    })
    .unwrap();
    let pool = SpawnPool::start(Arc::new(reaper), 4).unwrap();
    let n = 500u64;
    for tag in 1..=n {
        let tx = tx.clone();
        // Bodies that end at once: their exits race their starts' reports.
        let then = Box::new(move |r: io::Result<i32>| tx.send(Heard::Started(tag, r.unwrap(), std::thread::current().name().map(str::to_string))).unwrap());
        pool.submit(Job { cmd: sh(&format!("exit {}", tag % 50)), tag, then }).ok().unwrap();
    }
    let mut pid_of = HashMap::new();
    let mut ended = HashSet::new();
    while ended.len() < n as usize {
        match heard.recv_timeout(WAIT).expect("every child is started and reported") {
            Heard::Started(tag, pid, thread) => {
                assert!(thread.as_deref().is_some_and(|t| t.starts_with("orderly-spawn-")), "started on {thread:?}");
                assert!(pid_of.insert(tag, pid).is_none(), "tag {tag} started twice");
            }
            Heard::Ended(e) => {
                assert_eq!(Some(&e.pid), pid_of.get(&e.tag), "exit of tag {} heard before its start, or with another child's pid", e.tag);
                assert_eq!(e.code, Some((e.tag % 50) as i32));
                assert!(ended.insert(e.tag), "tag {} reported twice", e.tag);
            }
        }
    }
    assert_eq!(pool.queued(), 0);
}

#[test]
fn a_child_that_cannot_start_is_reported_to_its_job_only() {
    let (pool, exits) = pool(2);
    let (tx, started) = mpsc::channel();
    let mut cmd = sh("exit 0");
    cmd.program = CString::new("/nonexistent/sh").unwrap();
    pool.submit(job(cmd, 9, &tx)).ok().unwrap();
    let (tag, r, _) = started.recv_timeout(WAIT).unwrap();
    assert_eq!((tag, r.unwrap_err().raw_os_error()), (9, Some(libc::ENOENT)));
    assert!(exits.recv_timeout(Duration::from_millis(300)).is_err(), "no exit for a child that never ran");
}

#[test]
fn closing_cancels_what_is_still_queued() {
    let (pool, _exits) = pool(1);
    let (tx, started) = mpsc::channel();
    // The one thread is held in the first job's `then` until the others are cancelled.
    let (hold_tx, hold) = mpsc::channel::<()>();
    let first = tx.clone();
    pool.submit(Job {
        cmd: sh("exit 1"),
        tag: 1,
        then: Box::new(move |r| {
            first.send((1, r, None)).unwrap();
            hold.recv_timeout(WAIT).unwrap();
        }),
    })
    .ok()
    .unwrap();
    assert_eq!(started.recv_timeout(WAIT).unwrap().0, 1);
    pool.submit(job(sh("exit 2"), 2, &tx)).ok().unwrap();
    pool.submit(job(sh("exit 3"), 3, &tx)).ok().unwrap();
    assert_eq!(pool.queued(), 2);
    let closing = std::thread::spawn(move || drop(pool));
    for _ in 0..2 {
        let (tag, r, _) = started.recv_timeout(WAIT).unwrap();
        assert!(tag == 2 || tag == 3);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    }
    hold_tx.send(()).unwrap();
    closing.join().unwrap();
    assert!(started.try_recv().is_err(), "a cancelled request was started after all");
}

#[test]
fn a_request_after_a_quiet_spell_is_the_callers_to_spawn() {
    let (pool, exits) = pool(1);
    assert!(pool.inline_turn(), "the first request");
    assert!(!pool.inline_turn(), "one right behind it goes to the threads");
    std::thread::sleep(orderly_spawn::INLINE_AFTER + Duration::from_millis(2));
    assert!(pool.inline_turn(), "after a quiet spell");
    let (tx, started) = mpsc::channel();
    let mut seen = None;
    pool.reaper().spawn_then(&sh("exit 4"), 11, |r| seen = Some(r.unwrap()));
    let pid = seen.expect("`started` ran on this thread before spawn_then returned");
    let e = exits.recv_timeout(WAIT).unwrap();
    assert_eq!((e.pid, e.tag, e.code), (pid, 11, Some(4)));
    pool.submit(job(sh("exit 0"), 12, &tx)).ok().unwrap();
    assert!(!pool.inline_turn(), "a submitted request counts too");
    assert_eq!(started.recv_timeout(WAIT).unwrap().0, 12);
}
