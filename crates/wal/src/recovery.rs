//! Opening a log: find the live segments, validate every frame, cut a torn
//! tail, refuse corruption, and leave the tail durable before any new write.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::error::{Result, WalError};
use crate::frame::{decode_frame, FrameError, FrameKind, HeaderError, SegmentHeader, SegmentKind, COUNTER_LIMIT, FORMAT_VERSION, FRAME_ALIGN, SEGMENT_HEADER_LEN};
use crate::segment::{create_segment, is_temp_name, parse_segment_name, segment_name, segment_path, temp_path};
use crate::storage::{Storage, StorageFile};
use crate::wal::{OpenReport, Record, WalOptions};

pub(crate) struct Recovered {
    pub records: Vec<Record>,
    pub report: OpenReport,
    pub salt: u64,
    pub next_lsn: u64,
    pub tail: Tail,
    /// Live segments: sequence number → file length.
    pub segments: BTreeMap<u64, u64>,
}

/// The segment new frames go to.
pub(crate) struct Tail {
    pub seq: u64,
    pub file: Box<dyn StorageFile>,
    /// Where the next frame is written.
    pub offset: u64,
    pub len: u64,
}

/// How the scan of one segment ended.
enum ScanEnd {
    /// Valid frames up to `end`, nothing but zeros after.
    Clean { end: usize },
    /// The frame at `at` is damaged and no later frame proves it was synced:
    /// bytes up to `nonzero_end` were a write cut short by a crash.
    Torn { at: usize, nonzero_end: usize, why: FrameError },
    /// Damage at `at` that cannot be a torn write.
    Corrupt { at: usize, detail: String },
}

struct Scanned {
    seq: u64,
    header: SegmentHeader,
    data: Vec<u8>,
}

fn corrupt(seq: u64, offset: u64, detail: impl Into<String>) -> WalError {
    WalError::Corrupt { segment: segment_name(seq), offset, detail: detail.into() }
}

fn new_salt() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        (t as u64) ^ ((std::process::id() as u64) << 32)
    })
}

/// Everything an open would find, before anything is changed.
struct Scan {
    seqs: Vec<u64>,
    temps: Vec<String>,
    live: Vec<Scanned>,
    stale: Vec<u64>,
    dropped_segments: Vec<u64>,
    /// (live index, cut at, zero up to) for a torn or repaired tail.
    tail_fix: Option<(usize, usize, usize)>,
    last_end: usize,
    records: Vec<Record>,
    notes: Vec<String>,
    bytes_truncated: u64,
    next_lsn: u64,
    salt: u64,
}

fn scan(storage: &dyn Storage, dir: &Path, opts: &WalOptions) -> Result<Scan> {
    // Errors name the segment by its full path: the user has to find it.
    scan_segments(storage, dir, opts).map_err(|e| e.in_dir(dir))
}

fn scan_segments(storage: &dyn Storage, dir: &Path, opts: &WalOptions) -> Result<Scan> {
    let names = storage.list(dir).map_err(|e| WalError::io("list", dir, &e))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    seqs.sort_unstable();
    let temps: Vec<String> = names.iter().filter(|n| is_temp_name(n)).cloned().collect();

    // Newest first, down to the newest checkpoint: older segments are
    // superseded leftovers of a checkpoint that crashed before deleting them.
    let mut live: Vec<Scanned> = Vec::new();
    let mut stale: Vec<u64> = Vec::new();
    let mut repair_cut: Option<(u64, String)> = None;
    for (i, &seq) in seqs.iter().enumerate().rev() {
        let path = segment_path(dir, seq);
        let data = storage.read(&path).map_err(|e| WalError::io("read", &path, &e))?;
        match SegmentHeader::decode(&data) {
            // Frames are seeded with the header's segment number but new ones
            // with the file name's: in a renamed or copied segment, frames
            // appended after this open would not validate on the next one and
            // acknowledged records would be cut off as a torn tail.
            Ok(header) if header.seq == seq && counters_in_range(&header) => {
                let is_checkpoint = header.kind == SegmentKind::Checkpoint;
                live.push(Scanned { seq, header, data });
                if is_checkpoint {
                    stale.extend_from_slice(&seqs[..i]);
                    break;
                }
            }
            Err(HeaderError::Version(found)) => {
                return Err(WalError::UnsupportedVersion { segment: segment_name(seq), found, supported: FORMAT_VERSION });
            }
            bad => {
                let detail = match bad {
                    Ok(h) if h.seq != seq => format!("segment header belongs to segment {} (the file was renamed or copied)", segment_name(h.seq)),
                    Ok(h) => format!("segment header out of range (segment {}, first LSN {}): not written by this log", h.seq, h.base_lsn),
                    Err(e) => format!("segment header invalid ({e:?})"),
                };
                if !opts.repair {
                    return Err(corrupt(seq, 0, detail));
                }
                // Everything from here on is unreachable: the prefix ends before it.
                live.clear();
                repair_cut = Some((seq, detail));
            }
        }
    }
    live.reverse();
    let mut dropped_segments: Vec<u64> = match &repair_cut {
        Some((bad, _)) => seqs.iter().copied().filter(|s| s >= bad).collect(),
        None => Vec::new(),
    };

    for pair in live.windows(2) {
        if pair[1].header.salt != pair[0].header.salt {
            return Err(corrupt(pair[1].seq, 0, "segment belongs to another log (salt differs)"));
        }
        if pair[1].seq != pair[0].seq + 1 {
            return Err(corrupt(pair[1].seq, 0, format!("segment {} is missing", segment_name(pair[0].seq + 1))));
        }
    }

    // Scan every live segment in order.
    let mut records = Vec::new();
    let mut expected = live.first().map(|s| s.header.base_lsn).unwrap_or(1);
    let mut bytes_truncated = 0u64;
    let mut notes: Vec<String> = Vec::new();
    let mut tail_fix: Option<(usize, usize, usize)> = None; // (live index, cut at, zero up to)
    let mut keep = live.len();
    let mut last_end = SEGMENT_HEADER_LEN;
    for (i, seg) in live.iter().enumerate() {
        if seg.header.base_lsn != expected {
            let detail = format!("segment starts at LSN {}, expected {expected}", seg.header.base_lsn);
            if !opts.repair {
                return Err(corrupt(seg.seq, 0, detail));
            }
            notes.push(format!("repair: dropped segment {} onwards ({detail})", segment_name(seg.seq)));
            keep = i;
            break;
        }
        let is_last = i + 1 == live.len();
        match scan_segment(seg, &mut expected, &mut records, is_last) {
            ScanEnd::Clean { end } => last_end = end,
            ScanEnd::Torn { at, nonzero_end, why } => {
                let dropped = (nonzero_end - at) as u64;
                bytes_truncated += dropped;
                notes.push(format!(
                    "torn tail cut off in segment {} at offset {at} ({}): {dropped} bytes that no sync had covered were dropped",
                    segment_name(seg.seq),
                    why.describe()
                ));
                tail_fix = Some((i, at, nonzero_end));
            }
            ScanEnd::Corrupt { at, detail } => {
                if !opts.repair {
                    return Err(corrupt(seg.seq, at as u64, detail));
                }
                let nonzero_end = last_nonzero(&seg.data, at);
                let later: u64 = live[i + 1..].iter().map(|s| s.data.len() as u64).sum();
                bytes_truncated += (nonzero_end - at) as u64 + later;
                notes.push(format!(
                    "repair: cut at segment {} offset {at} ({detail}); dropped {} bytes and {} later segment(s)",
                    segment_name(seg.seq),
                    nonzero_end - at,
                    live.len() - i - 1
                ));
                tail_fix = Some((i, at, nonzero_end));
                keep = i + 1;
                break;
            }
        }
    }
    if let Some((seq, detail)) = &repair_cut {
        notes.push(format!("repair: dropped segment {} onwards ({detail})", segment_name(*seq)));
    }
    dropped_segments.extend(live[keep..].iter().map(|s| s.seq));
    live.truncate(keep);
    let salt = live.first().map(|s| s.header.salt).unwrap_or_else(new_salt);
    Ok(Scan { seqs, temps, live, stale, dropped_segments, tail_fix, last_end, records, notes, bytes_truncated, next_lsn: expected, salt })
}

/// What the log in `dir` holds and what opening it would cut, read without
/// taking the lock or changing a byte (for `orderly-dispatch doctor` beside a running
/// controller). A corrupt log is reported as the error an open would give.
pub fn inspect(storage: &dyn Storage, dir: &Path) -> Result<Inspection> {
    let s = scan(storage, dir, &WalOptions::default())?;
    Ok(Inspection {
        segments: s.live.len() as u64,
        bytes: s.live.iter().map(|x| x.data.len() as u64).sum(),
        leftover_files: (s.temps.len() + s.stale.len()) as u64,
        records: s.records,
        would_truncate: s.bytes_truncated,
        reason: if s.notes.is_empty() { None } else { Some(s.notes.join("; ")) },
    })
}

/// A read-only look at a log directory.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub segments: u64,
    pub bytes: u64,
    /// Leftovers an open would delete (interrupted segment creation or checkpoint).
    pub leftover_files: u64,
    pub records: Vec<Record>,
    /// Bytes an open would cut off as a torn tail.
    pub would_truncate: u64,
    pub reason: Option<String>,
}

pub(crate) fn recover(storage: &dyn Storage, dir: &Path, opts: &WalOptions) -> Result<Recovered> {
    let Scan { seqs, temps, live, stale, dropped_segments, tail_fix, last_end, records, notes, bytes_truncated, next_lsn: expected, salt } = scan(storage, dir, opts)?;

    // From here on the directory is modified: leftovers of interrupted
    // checkpoints and segment creations go, then the tail is made whole.
    let mut dir_changed = false;
    for name in &temps {
        let p = dir.join(name);
        storage.remove(&p).map_err(|e| WalError::io("remove", &p, &e))?;
        dir_changed = true;
    }
    for seq in stale.iter().chain(dropped_segments.iter()) {
        let p = segment_path(dir, *seq);
        match storage.remove(&p) {
            Ok(()) => dir_changed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(WalError::io("remove", &p, &e)),
        }
    }
    if dir_changed {
        storage.sync_dir(dir).map_err(|e| WalError::io("sync directory", dir, &e))?;
    }

    let mut segments: BTreeMap<u64, u64> = live.iter().map(|s| (s.seq, s.data.len() as u64)).collect();
    let tail = match live.last() {
        Some(last) => {
            let path = segment_path(dir, last.seq);
            let mut file = storage.open_rw(&path).map_err(|e| WalError::io("open", &path, &e))?;
            let mut offset = last_end as u64;
            let mut len = last.data.len() as u64;
            if let Some((i, at, nonzero_end)) = tail_fix {
                debug_assert_eq!(i, live.len() - 1);
                offset = at as u64;
                // The cut bytes are erased, not just ignored: frames written
                // later at this offset must never be followed by stale ones
                // that would still validate.
                if opts.preallocate {
                    file.write_at(at as u64, &vec![0u8; nonzero_end - at]).map_err(|e| WalError::io("erase torn tail", &path, &e))?;
                } else {
                    file.set_len(at as u64).map_err(|e| WalError::io("truncate", &path, &e))?;
                    len = at as u64;
                }
                segments.insert(last.seq, len);
            }
            // What was read may sit in the page cache only (a kill -9 after a
            // relaxed write); new frames will vouch that it is synced, so it
            // must be before they are written.
            file.sync_data().map_err(|e| WalError::io("sync", &path, &e))?;
            Tail { seq: last.seq, file, offset, len }
        }
        None => {
            // Live is empty only when there were no segments or repair dropped
            // every one, and those were removed above: numbering may start over
            // when the highest name leaves no room after it.
            let seq = seqs.last().and_then(|s| s.checked_add(1)).filter(|&s| s < COUNTER_LIMIT).unwrap_or(1);
            let header = SegmentHeader { version: FORMAT_VERSION, kind: SegmentKind::Log, seq, salt, base_lsn: expected };
            let prealloc = if opts.preallocate { opts.segment_bytes } else { 0 };
            let seg = create_segment(storage, dir, &header, &[], prealloc, "segment")
                .map_err(|e| WalError::io("create segment", temp_path(dir, seq), &e))?;
            segments.insert(seq, seg.len);
            Tail { seq, file: seg.file, offset: seg.write_offset, len: seg.len }
        }
    };

    let report = OpenReport {
        records: records.len() as u64,
        bytes_truncated,
        reason: if notes.is_empty() { None } else { Some(notes.join("; ")) },
    };
    Ok(Recovered { records, report, salt, next_lsn: expected, tail, segments })
}

/// LSN 0 means "nothing durable yet" and is never written; counters at or
/// past the limit were never written either (see [`COUNTER_LIMIT`]).
fn counters_in_range(h: &SegmentHeader) -> bool {
    h.seq < COUNTER_LIMIT && (1..COUNTER_LIMIT).contains(&h.base_lsn)
}

fn last_nonzero(data: &[u8], from: usize) -> usize {
    data[from..].iter().rposition(|&b| b != 0).map_or(from, |p| from + p + 1)
}

fn scan_segment(seg: &Scanned, expected: &mut u64, records: &mut Vec<Record>, is_last: bool) -> ScanEnd {
    let data = &seg.data;
    let seed = seg.header.frame_seed();
    let mut off = SEGMENT_HEADER_LEN;
    loop {
        let why = match decode_frame(data, off, seed) {
            Ok(f) if f.lsn == *expected => {
                if f.kind == FrameKind::Record {
                    records.push(Record { lsn: f.lsn, payload: data[f.payload_start..f.payload_start + f.payload_len].to_vec() });
                }
                *expected += 1;
                off = f.end;
                continue;
            }
            Ok(f) => {
                // A well-formed frame out of sequence: not a torn write.
                return ScanEnd::Corrupt { at: off, detail: format!("frame has LSN {}, expected {}", f.lsn, *expected) };
            }
            Err(e) => e,
        };
        let nonzero_end = last_nonzero(data, off);
        if nonzero_end == off {
            return ScanEnd::Clean { end: off };
        }
        if !is_last {
            // A segment is synced whole before the next one is created.
            return ScanEnd::Corrupt { at: off, detail: format!("{} in a sealed segment", why.describe()) };
        }
        let mut cand = off + FRAME_ALIGN;
        while cand + FRAME_ALIGN <= nonzero_end {
            if let Ok(f) = decode_frame(data, cand, seed) {
                if f.synced_through as usize > off {
                    return ScanEnd::Corrupt {
                        at: off,
                        detail: format!(
                            "{}; the frame at offset {cand} (LSN {}) was written after this offset was synced",
                            why.describe(),
                            f.lsn
                        ),
                    };
                }
            }
            cand += FRAME_ALIGN;
        }
        return ScanEnd::Torn { at: off, nonzero_end, why };
    }
}
