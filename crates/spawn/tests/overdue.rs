//! The reaper's deadlines: a child still running `overdue_after` after its
//! start is reported once, before its exit; one that ended is never reported.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use orderly_spawn::{Command, Reaper};

mod common;

#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Overdue(i32, u64),
    Exit(i32, u64),
}

fn sh(script: &str, overdue_after: Option<Duration>) -> Command {
    Command { overdue_after, ..common::sh(script) }
}

fn reaper() -> (Reaper, mpsc::Receiver<Heard>) {
    let (tx, rx) = mpsc::channel();
    let exits = std::sync::Mutex::new(tx.clone());
    let late = std::sync::Mutex::new(tx);
    let r = Reaper::start_with_overdue(
        move |e| {
            let _ = exits.lock().unwrap().send(Heard::Exit(e.pid, e.tag));
        },
        move |pid, tag| {
            let _ = late.lock().unwrap().send(Heard::Overdue(pid, tag));
        },
    )
    .unwrap();
    (r, rx)
}

fn spawn(r: &Reaper, cmd: &Command, tag: u64) -> i32 {
    let mut pid = 0;
    r.spawn_then(cmd, tag, |started| pid = started.unwrap());
    pid
}

fn next(rx: &mpsc::Receiver<Heard>) -> Heard {
    rx.recv_timeout(Duration::from_secs(10)).expect("the reaper reports")
}

#[test]
fn a_child_past_its_deadline_is_reported_once_then_its_exit() {
    let (r, rx) = reaper();
    let t0 = Instant::now();
    let pid = spawn(&r, &sh("sleep 30", Some(Duration::from_millis(150))), 5);
    assert_eq!(next(&rx), Heard::Overdue(pid, 5));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(150), "reported after {waited:?}, before its deadline");
    // Not reported again while it keeps running.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    assert_eq!(next(&rx), Heard::Exit(pid, 5));
}

#[test]
fn a_child_that_ended_in_time_is_never_overdue() {
    let (r, rx) = reaper();
    let pid = spawn(&r, &sh("exit 100", Some(Duration::from_millis(200))), 9);
    assert_eq!(next(&rx), Heard::Exit(pid, 9));
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "an ended child was reported overdue");
    assert_eq!(r.pending(), 0);
}

#[test]
fn an_earlier_deadline_is_kept_although_a_later_one_was_set_first() {
    let (r, rx) = reaper();
    let slow = spawn(&r, &sh("sleep 30", Some(Duration::from_secs(20))), 1);
    // The timer is set for the 20 s deadline first.
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let quick = spawn(&r, &sh("sleep 30", Some(Duration::from_millis(100))), 2);
    assert_eq!(next(&rx), Heard::Overdue(quick, 2));
    assert!(t0.elapsed() < Duration::from_secs(5), "heard after {:?}: the timer stayed set for the later deadline", t0.elapsed());
    for pid in [slow, quick] {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let mut ends = vec![next(&rx), next(&rx)];
    ends.sort_by_key(|h| match h {
        Heard::Exit(_, tag) | Heard::Overdue(_, tag) => *tag,
    });
    assert_eq!(ends, vec![Heard::Exit(slow, 1), Heard::Exit(quick, 2)]);
}

#[test]
fn without_a_deadline_nothing_is_overdue() {
    let (r, rx) = reaper();
    let pid = spawn(&r, &sh("sleep 0.3", None), 3);
    assert_eq!(next(&rx), Heard::Exit(pid, 3));
}
