#![allow(dead_code)]
pub mod model;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orderly_wal::{Wal, WalOptions};

pub fn opts(segment_bytes: u64, preallocate: bool) -> WalOptions {
    WalOptions { segment_bytes, flush_interval: Duration::from_millis(5), repair: false, preallocate }
}

pub fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7 + 1) as u8).collect()
}

pub fn payloads(wal: &Wal) -> Vec<Vec<u8>> {
    wal.records().into_iter().map(|r| r.payload).collect()
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// Copies a log directory (without its lock file) so each case starts fresh.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "LOCK" {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Appends each payload durably, one sync per record, so every frame vouches
/// for all frames before it.
pub fn write_durably(dir: &Path, o: &WalOptions, items: &[Vec<u8>]) -> Vec<u64> {
    let wal = Wal::open(dir, o.clone()).unwrap();
    let lsns = items
        .iter()
        .map(|p| {
            let lsn = wal.append(p).unwrap();
            wal.wait_durable(lsn).unwrap();
            lsn
        })
        .collect();
    wal.close().unwrap();
    lsns
}
