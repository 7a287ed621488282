//! Directories the fuzzer (fuzz/fuzz_targets) found mishandled, reduced to
//! the bytes that matter. Segments are built by hand here, checksums
//! included, because each case is one a correct writer never produces.

use std::path::Path;
use std::time::Duration;

use orderly_wal::{Wal, WalError, WalOptions};

mod common;
use common::payloads;

const LOG: u32 = 1;
const COUNTER_LIMIT: u64 = 1 << 63;

fn opts(repair: bool) -> WalOptions {
    WalOptions { segment_bytes: 4096, flush_interval: Duration::from_millis(5), repair, preallocate: false }
}

/// A segment header as frame.rs lays it out, with a valid checksum.
fn header(kind: u32, seq: u64, salt: u64, base_lsn: u64) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[0..8].copy_from_slice(b"ORDLYWAL");
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..32].copy_from_slice(&salt.to_le_bytes());
    b[32..40].copy_from_slice(&base_lsn.to_le_bytes());
    reseal_header(&mut b);
    b
}

fn reseal_header(b: &mut [u8]) {
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// A record frame with a valid checksum for segment `seq` of log `salt`;
/// `pad` fills the alignment padding (a correct writer uses zeros).
fn frame(seq: u64, salt: u64, lsn: u64, synced_through: u32, payload: &[u8], pad: u8) -> Vec<u8> {
    let total = (24 + payload.len() + 7) & !7;
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&lsn.to_le_bytes());
    f.extend_from_slice(&synced_through.to_le_bytes());
    f.extend_from_slice(&[1, 0, 0, 0]);
    f.extend_from_slice(payload);
    f.resize(total, pad);
    let mut seed = crc32fast::Hasher::new();
    seed.update(&salt.to_le_bytes());
    seed.update(&seq.to_le_bytes());
    let mut h = crc32fast::Hasher::new_with_initial(seed.finalize());
    h.update(&f[4..]);
    let crc = h.finalize();
    f[0..4].copy_from_slice(&crc.to_le_bytes());
    f
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

fn expect_corrupt(dir: &Path, says: &str) {
    match Wal::open(dir, opts(false)) {
        Err(e @ WalError::Corrupt { .. }) => assert!(e.to_string().contains(says), "{e}"),
        Err(e) => panic!("expected a corrupt-log error, got {e}"),
        Ok(w) => panic!("opened with {} records; expected a corrupt-log error", w.records().len()),
    }
}

fn append_durably(wal: &Wal, payload: &[u8]) -> u64 {
    let lsn = wal.append(payload).unwrap();
    wal.wait_durable(lsn).unwrap();
    lsn
}


/// Fuzz input: one file, `0000000000000001.wal`, whose valid header said
/// segment 5930961983049433088. Frames are seeded with the header's number
/// but new frames with the name's, so records appended after the open
/// failed their checksums on the next open and were cut off as a torn tail:
/// acknowledged records lost (G5). Here the same happens to a real segment
/// renamed by hand.
#[test]
fn a_segment_whose_header_names_another_segment_is_refused_not_appended_to() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    append_durably(&wal, b"first");
    wal.close().unwrap();
    std::fs::rename(d.path().join(segment_name(1)), d.path().join(segment_name(2))).unwrap();

    expect_corrupt(d.path(), "renamed or copied");

    // Repair drops the segment; what is acknowledged afterwards survives.
    let wal = Wal::open(d.path(), opts(true)).unwrap();
    assert!(wal.records().is_empty());
    append_durably(&wal, b"second");
    wal.close().unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    assert_eq!(payloads(&wal), vec![b"second".to_vec()]);
}

/// A header starting at LSN 0 left the log with "LSN -1" durable: an
/// overflow panic in debug builds, and in release a durable LSN of u64::MAX,
/// which acknowledges every later append before its sync.
#[test]
fn a_segment_starting_at_lsn_zero_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(segment_name(1)), header(LOG, 1, 7, 0)).unwrap();
    expect_corrupt(d.path(), "out of range");
}

/// A segment numbered u64::MAX opened fine, and the first roll-over
/// overflowed `seq + 1` on the writer thread (a panic that left every waiter
/// blocked); one starting at LSN u64::MAX overflowed the scan's `lsn + 1`.
#[test]
fn segment_numbers_and_lsns_past_the_limit_are_refused() {
    for (seq, base_lsn) in [(u64::MAX, 1), (COUNTER_LIMIT, 1), (1, u64::MAX), (1, COUNTER_LIMIT)] {
        let d = tempfile::tempdir().unwrap();
        let mut seg = header(LOG, seq, 7, base_lsn);
        seg.extend(frame(seq, 7, base_lsn, 64, b"x", 0));
        std::fs::write(d.path().join(segment_name(seq)), seg).unwrap();
        expect_corrupt(d.path(), "out of range");
    }
}

/// Fuzz input (repair on): `ffffffffffffffff.wal` with an invalid header.
/// Repair dropped it, left no live segment, and numbered the new one
/// `u64::MAX + 1`: an overflow panic inside `Wal::open`.
#[test]
fn repair_after_dropping_the_highest_possible_segment_starts_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let mut bad = header(LOG, u64::MAX, 7, 1);
    bad[61] ^= 1;
    std::fs::write(d.path().join(segment_name(u64::MAX)), bad).unwrap();

    let wal = Wal::open(d.path(), opts(true)).unwrap();
    assert!(wal.open_report().reason.unwrap().contains("dropped"));
    append_durably(&wal, b"kept");
    wal.close().unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    assert_eq!(payloads(&wal), vec![b"kept".to_vec()]);
    assert!(!d.path().join(segment_name(u64::MAX)).exists());
}

/// The last segment number below the limit: the log must not roll over into
/// a segment it would refuse on the next open, so it fails closed (G6) with
/// everything acknowledged before intact.
#[test]
fn the_log_fails_closed_rather_than_number_a_segment_past_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let seq = COUNTER_LIMIT - 1;
    std::fs::write(d.path().join(segment_name(seq)), header(LOG, seq, 7, 1)).unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    let mut acknowledged = Vec::new();
    let err = loop {
        let payload = vec![acknowledged.len() as u8; 500];
        let lsn = wal.append(&payload).unwrap();
        match wal.wait_durable(lsn) {
            Ok(()) => acknowledged.push(payload),
            Err(e) => break e,
        }
        assert!(acknowledged.len() < 100, "never rolled over");
    };
    assert_eq!(err.code(), "ERR_WAL_POISONED", "{err}");
    drop(wal);
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    assert_eq!(payloads(&wal), acknowledged);
}

/// Fuzz input (decode target): a header whose reserved bytes 40..60 were not
/// zero under a valid checksum decoded anyway, so two byte strings meant the
/// same header. Nothing this version writes looks like that.
#[test]
fn a_header_with_reserved_bytes_set_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut seg = header(LOG, 1, 7, 1);
    seg[42] = 0x4c;
    reseal_header(&mut seg);
    seg.extend(frame(1, 7, 1, 64, b"x", 0));
    std::fs::write(d.path().join(segment_name(1)), seg).unwrap();
    expect_corrupt(d.path(), "Reserved");
}

/// The frame counterpart: padding that is not zero under a valid checksum
/// was read as a record. Followed by a frame that vouches it was synced, it
/// is damage to acknowledged data.
#[test]
fn a_frame_with_padding_set_is_not_a_record() {
    let d = tempfile::tempdir().unwrap();
    let mut seg = header(LOG, 1, 7, 1);
    let odd = frame(1, 7, 1, 64, b"odd", 0xee);
    let next_at = (64 + odd.len()) as u32;
    seg.extend(odd);
    seg.extend(frame(1, 7, 2, next_at, b"next", 0));
    std::fs::write(d.path().join(segment_name(1)), seg).unwrap();
    expect_corrupt(d.path(), "padding");
}

/// Fuzz input (repair on): beside the log, `000000000000000A.wal`, a name the
/// log never writes. It counted as segment 10, but the log reads, removes
/// and writes segment 10 as `000000000000000a.wal`: the open failed reading
/// a file that was not there (or, with both names present, handled one and
/// left the other), and after a repair the log could not be reopened.
#[test]
fn an_upper_case_segment_name_is_not_one_of_the_logs_segments() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    append_durably(&wal, b"first");
    wal.close().unwrap();
    let look_alike = d.path().join("000000000000000A.wal");
    std::fs::write(&look_alike, header(LOG, 10, 7, 1)).unwrap();

    let wal = Wal::open(d.path(), opts(false)).unwrap();
    assert_eq!(payloads(&wal), vec![b"first".to_vec()]);
    append_durably(&wal, b"second");
    wal.close().unwrap();
    let wal = Wal::open(d.path(), opts(false)).unwrap();
    assert_eq!(payloads(&wal), vec![b"first".to_vec(), b"second".to_vec()]);
    assert!(look_alike.exists(), "a file that is not the log's is left alone");
}
