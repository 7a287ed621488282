//! Recovery on open: torn tails are cut, corruption is refused, repair salvages.

mod common;

use common::*;
use orderly_wal::{Wal, WalError, WalOptions};

const HEADER: usize = 64;

fn frame_bounds(items: &[Vec<u8>]) -> Vec<(usize, usize)> {
    let mut off = HEADER;
    items
        .iter()
        .map(|p| {
            let len = (24 + p.len() + 7) & !7;
            let b = (off, off + len);
            off += len;
            b
        })
        .collect()
}

#[test]
fn records_survive_reopen_in_lsn_order() {
    let d = tempfile::tempdir().unwrap();
    let items: Vec<Vec<u8>> = (0..100).map(|i| payload(i, (i % 50) as usize)).collect();
    let lsns = write_durably(d.path(), &opts(1 << 20, false), &items);
    assert_eq!(lsns, (1..=100).collect::<Vec<u64>>());
    let wal = Wal::open(d.path(), opts(1 << 20, false)).unwrap();
    assert_eq!(payloads(&wal), items);
    assert_eq!(wal.open_report().bytes_truncated, 0);
    assert_eq!(wal.open_report().reason, None);
    // LSNs continue after the recovered ones.
    assert_eq!(wal.append(b"next").unwrap(), 101);
}

#[test]
fn truncation_at_every_offset_of_the_last_three_records_yields_the_valid_prefix() {
    for preallocate in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let o = opts(64 << 10, preallocate);
        let items: Vec<Vec<u8>> = (0..10).map(|i| payload(i, 40 + i as usize * 3)).collect();
        write_durably(d.path(), &o, &items);
        let seg = segment_files(d.path()).pop().unwrap();
        let original = std::fs::read(&seg).unwrap();
        let bounds = frame_bounds(&items);
        let data_end = bounds.last().unwrap().1;
        for cut in bounds[7].0..data_end {
            let case = tempfile::tempdir().unwrap();
            copy_dir(d.path(), case.path());
            let target = case.path().join(seg.file_name().unwrap());
            let mut bytes = original.clone();
            if preallocate {
                // A preallocated segment keeps its length: the lost bytes read as zeros.
                bytes[cut..].iter_mut().for_each(|b| *b = 0);
            } else {
                bytes.truncate(cut);
            }
            std::fs::write(&target, &bytes).unwrap();
            let wal = Wal::open(case.path(), o.clone()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            // Frames whose bytes are all still there (zeroing a zero byte changes nothing).
            let whole = bounds.iter().take_while(|(s, e)| bytes.len() >= *e && bytes[*s..*e] == original[*s..*e]).count();
            assert_eq!(payloads(&wal), items[..whole].to_vec(), "cut at {cut} (preallocate {preallocate})");
            // Counted up to the last non-zero byte: zero padding is not data.
            let prefix_end = bounds[..whole].last().map_or(HEADER, |b| b.1);
            let partial = bytes[prefix_end..].iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            assert_eq!(wal.open_report().bytes_truncated, partial as u64, "cut at {cut}");
            assert_eq!(wal.open_report().reason.is_some(), partial > 0);
            // The next record lands where the cut one was and reads back.
            let lsn = wal.append(b"after").unwrap();
            wal.wait_durable(lsn).unwrap();
            wal.close().unwrap();
            let again = Wal::open(case.path(), o.clone()).unwrap();
            let mut expect = items[..whole].to_vec();
            expect.push(b"after".to_vec());
            assert_eq!(payloads(&again), expect);
        }
    }
}

#[test]
fn every_bit_flip_in_the_last_three_records_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(64 << 10, false);
    let items: Vec<Vec<u8>> = (0..8).map(|i| payload(i, 33)).collect();
    write_durably(d.path(), &o, &items);
    let seg = segment_files(d.path()).pop().unwrap();
    let original = std::fs::read(&seg).unwrap();
    let bounds = frame_bounds(&items);
    let (mut refused, mut cut) = (0, 0);
    for (idx, &(start, end)) in bounds.iter().enumerate().skip(5) {
        for bit in start * 8..end * 8 {
            let case = tempfile::tempdir().unwrap();
            copy_dir(d.path(), case.path());
            let mut bytes = original.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(case.path().join(seg.file_name().unwrap()), &bytes).unwrap();
            match Wal::open(case.path(), o.clone()) {
                Err(WalError::Corrupt { segment, offset, .. }) => {
                    // Records after it were synced later and vouch for it:
                    // this is damage to acknowledged data, never a torn tail.
                    assert!(idx < items.len() - 1, "bit {bit}: the last record has no witness");
                    assert_eq!(offset as usize, start);
                    assert_eq!(segment, case.path().join(seg.file_name().unwrap()).to_str().unwrap());
                    refused += 1;
                }
                Ok(wal) => {
                    // Only the last record can be mistaken for a torn write;
                    // it is cut and reported, never returned altered.
                    assert_eq!(idx, items.len() - 1, "bit {bit} in record {idx} was not refused");
                    assert_eq!(payloads(&wal), items[..idx].to_vec());
                    assert!(wal.open_report().bytes_truncated > 0);
                    cut += 1;
                }
                Err(e) => panic!("bit {bit}: unexpected {e}"),
            }
        }
    }
    assert!(refused > 0 && cut > 0);
}

#[test]
fn damage_in_a_sealed_segment_is_refused_naming_segment_and_offset_and_repair_salvages_the_prefix() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(4096, false);
    let items: Vec<Vec<u8>> = (0..200).map(|i| payload(i, 100)).collect();
    write_durably(d.path(), &o, &items);
    let segs = segment_files(d.path());
    assert!(segs.len() >= 4, "want several segments, got {}", segs.len());
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = HEADER + 3 * 128 + 10;
    bytes[at] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();

    let err = Wal::open(d.path(), o.clone()).unwrap_err();
    assert_eq!(err.code(), "ERR_WAL_CORRUPT");
    let name = victim.file_name().unwrap().to_str().unwrap();
    match &err {
        WalError::Corrupt { segment, offset, .. } => {
            assert_eq!(segment, d.path().join(name).to_str().unwrap());
            assert_eq!(*offset as usize, HEADER + 3 * 128);
        }
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains(name));
    // Nothing was modified by the refused open.
    assert_eq!(segment_files(d.path()), segs);

    let repaired = Wal::open(d.path(), WalOptions { repair: true, ..o.clone() }).unwrap();
    let got = payloads(&repaired);
    let per_segment = (4096 - HEADER) / 128;
    assert_eq!(got, items[..per_segment + 3].to_vec());
    let report = repaired.open_report();
    assert!(report.bytes_truncated > 0);
    assert!(report.reason.as_deref().unwrap().contains(name), "{report:?}");
    repaired.close().unwrap();
    // The repaired log opens cleanly afterwards.
    let again = Wal::open(d.path(), o).unwrap();
    assert_eq!(payloads(&again), items[..per_segment + 3].to_vec());
    assert_eq!(again.open_report().reason, None);
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(4096, false);
    let items: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 100)).collect();
    write_durably(d.path(), &o, &items);
    let segs = segment_files(d.path());
    std::fs::remove_file(&segs[1]).unwrap();
    let err = Wal::open(d.path(), o).unwrap_err();
    assert_eq!(err.code(), "ERR_WAL_CORRUPT", "{err}");
}

#[test]
fn a_segment_from_another_log_never_validates() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let o = opts(4096, false);
    let items: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 100)).collect();
    write_durably(a.path(), &o, &items);
    write_durably(b.path(), &o, &items);
    // Same names, same LSNs, same payloads: only the salt differs.
    let seg = segment_files(b.path())[1].clone();
    std::fs::copy(&seg, a.path().join(seg.file_name().unwrap())).unwrap();
    let err = Wal::open(a.path(), o).unwrap_err();
    assert_eq!(err.code(), "ERR_WAL_CORRUPT", "{err}");
}

#[test]
fn a_newer_format_version_is_refused_and_nothing_is_touched() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(4096, false);
    write_durably(d.path(), &o, &[b"x".to_vec()]);
    std::fs::write(d.path().join("00000000000000ff.wal.tmp"), b"leftover").unwrap();
    let seg = segment_files(d.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(d.path(), o).unwrap_err();
    assert_eq!(err.code(), "ERR_WAL_VERSION", "{err}");
    assert!(err.to_string().contains("version 9"), "{err}");
    assert!(err.to_string().contains(seg.to_str().unwrap()), "names the segment's path: {err}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    assert!(d.path().join("00000000000000ff.wal.tmp").exists());
}

#[test]
fn a_second_open_of_the_directory_fails_naming_the_holder() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    let err = Wal::open(d.path(), WalOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_WAL_LOCKED");
    assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
    wal.close().unwrap();
    Wal::open(d.path(), WalOptions::default()).unwrap();
}

#[test]
fn appends_after_close_fail_and_close_is_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), WalOptions::default()).unwrap();
    let lsn = wal.append_relaxed(b"relaxed").unwrap();
    wal.close().unwrap();
    wal.close().unwrap();
    assert_eq!(wal.append(b"x").unwrap_err().code(), "ERR_WAL_CLOSED");
    // Close synced the relaxed record.
    assert!(wal.durable_lsn() >= lsn);
    let again = Wal::open(d.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&again), vec![b"relaxed".to_vec()]);
}

#[test]
fn relaxed_records_become_durable_within_the_flush_interval() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), opts(1 << 20, false)).unwrap();
    let lsn = wal.append_relaxed(b"r").unwrap();
    let t = std::time::Instant::now();
    wal.wait_durable(lsn).unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(wal.stats().syncs, 1);
}

#[test]
fn invalid_options_are_rejected_by_name() {
    let d = tempfile::tempdir().unwrap();
    let err = Wal::open(d.path(), WalOptions { segment_bytes: 10, ..WalOptions::default() }).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG");
    assert!(err.to_string().contains("segmentBytes"));
}
