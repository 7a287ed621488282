//! Alone in its own test binary: it counts this process's threads.

use std::ffi::CString;
use std::fs;
use std::sync::mpsc;
use std::time::Duration;

use orderly_spawn::{Command, Exit, Reaper};

fn sh(script: &str) -> Command {
    Command {
        program: CString::new("/bin/sh").unwrap(),
        args: vec![CString::new("sh").unwrap(), CString::new("-c").unwrap(), CString::new(script).unwrap()],
        env: vec![],
        cwd: None,
        output: None,
        inherit: vec![],
        new_group: true,
        overdue_after: None,
    }
}

#[test]
fn reaps_many_children_on_one_thread() {
    let (tx, rx) = mpsc::channel::<Exit>();
    let tx = std::sync::Mutex::new(tx);
    let r = Reaper::start(move |e| {
        let _ = tx.lock().unwrap().send(e);
    })
    .unwrap();
    let threads_before = fs::read_dir("/proc/self/task").unwrap().count();
    let mut pids: Vec<i32> = (0..200).map(|i| r.spawn(&sh(&format!("sleep 0.2; exit {}", i % 7))).unwrap()).collect();
    // One reaper thread, however many children.
    assert_eq!(fs::read_dir("/proc/self/task").unwrap().count(), threads_before);
    let mut seen: Vec<Exit> = (0..200).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    seen.sort_by_key(|e| e.pid);
    pids.sort();
    assert_eq!(seen.iter().map(|e| e.pid).collect::<Vec<_>>(), pids);
    for e in &seen {
        assert!(e.code.is_some());
    }
    assert_eq!(r.pending(), 0);
}

