//! A cleanup job deleting or replacing the open segment (or the lock file)
//! under a running log: the writer notices within about a second and fails
//! closed, instead of acknowledging records into a file the next open never
//! sees.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use orderly_wal::{Wal, WalOptions};

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "wal")).expect("a segment")
}

/// Appends until the log refuses; returns how long that took.
fn refused_within(wal: &Wal, limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Err(e) = wal.append(b"after") {
            return (start.elapsed(), e.to_string());
        }
        sleep(Duration::from_millis(50));
    }
    panic!("still acknowledging appends {limit:?} after the damage");
}

#[test]
fn a_deleted_segment_poisons_the_log_within_seconds() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    wal.append(b"before").unwrap();
    let seg = segment(d.path());
    fs::remove_file(&seg).unwrap();
    let (after, message) = refused_within(&wal, Duration::from_secs(5));
    assert!(after < Duration::from_secs(3), "took {after:?}");
    assert!(wal.poison_error().unwrap().to_string().contains("was deleted while the log was open"), "{message}");
    assert!(wal.poison_error().unwrap().to_string().contains(&seg.display().to_string()));
    assert!(wal.stats().poisoned);
}

#[test]
fn a_replaced_segment_or_a_deleted_lock_file_poisons_it_too() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    wal.append(b"before").unwrap();
    let seg = segment(d.path());
    let copy = d.path().join("copy");
    fs::copy(&seg, &copy).unwrap();
    fs::rename(&copy, &seg).unwrap();
    refused_within(&wal, Duration::from_secs(5));
    assert!(wal.poison_error().unwrap().to_string().contains("was replaced by another file"));

    let d2 = tempfile::tempdir().unwrap();
    let wal2 = Wal::open(d2.path(), WalOptions::default()).unwrap();
    wal2.append(b"before").unwrap();
    fs::remove_file(d2.path().join("LOCK")).unwrap();
    refused_within(&wal2, Duration::from_secs(5));
    assert!(wal2.poison_error().unwrap().to_string().contains("lock file"));
}

#[test]
fn an_untouched_log_stays_healthy_across_checks() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    for _ in 0..5 {
        wal.append(b"x").unwrap();
        sleep(Duration::from_millis(300));
    }
    assert!(!wal.stats().poisoned);
}

#[test]
fn a_segment_truncated_in_place_poisons_the_log() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    wal.append(b"before").unwrap();
    let seg = segment(d.path());
    fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(0).unwrap();
    refused_within(&wal, Duration::from_secs(5));
    assert!(wal.poison_error().unwrap().to_string().contains("was truncated to "), "{}", wal.poison_error().unwrap());
}
