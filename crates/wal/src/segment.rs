//! Segment files: names, and creating one atomically.

use std::path::{Path, PathBuf};

use crate::frame::{SegmentHeader, SEGMENT_HEADER_LEN};
use crate::storage::{Storage, StorageFile};

pub const SEGMENT_SUFFIX: &str = ".wal";
pub const TEMP_SUFFIX: &str = ".wal.tmp";
pub const LOCK_FILE: &str = "LOCK";

pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

pub fn temp_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{TEMP_SUFFIX}"))
}

/// `0000000000000003.wal` → 3; anything else → None.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(SEGMENT_SUFFIX)?;
    if !is_seq_hex(hex) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub fn is_temp_name(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX).is_some_and(is_seq_hex)
}

/// Exactly the digits [`segment_name`] writes. Segments are read, opened and
/// removed by the name formatted from their number, so a look-alike such as
/// `000000000000000A.wal` must not count as segment 10: the log would read
/// and write `000000000000000a.wal` in its place.
fn is_seq_hex(hex: &str) -> bool {
    hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The steps of writing a new segment, for crash points and tests.
pub struct NewSegment {
    pub file: Box<dyn StorageFile>,
    pub len: u64,
    pub write_offset: u64,
}

/// Writes a complete segment under a temporary name, syncs it, renames it into
/// place and syncs the directory: a crash at any step leaves either no
/// segment `seq` or a whole one. `body` is written right after the header.
pub fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    header: &SegmentHeader,
    body: &[u8],
    preallocate_to: u64,
    crash_prefix: &str,
) -> std::io::Result<NewSegment> {
    let tmp = temp_path(dir, header.seq);
    let mut file = storage.create(&tmp)?;
    let mut data = Vec::with_capacity(SEGMENT_HEADER_LEN + body.len());
    data.extend_from_slice(&header.encode());
    data.extend_from_slice(body);
    let write_offset = data.len() as u64;
    file.write_at(0, &data)?;
    let mut len = write_offset;
    if preallocate_to > len {
        // Allocated ahead of use: a later fdatasync then never has to journal
        // a file-size change.
        file.allocate(len, preallocate_to)?;
        len = preallocate_to;
    }
    crate::crash_point(&format!("{crash_prefix}:written"));
    file.sync_data()?;
    crate::crash_point(&format!("{crash_prefix}:synced"));
    storage.rename(&tmp, &segment_path(dir, header.seq))?;
    crate::crash_point(&format!("{crash_prefix}:renamed"));
    storage.sync_dir(dir)?;
    crate::crash_point(&format!("{crash_prefix}:dir-synced"));
    Ok(NewSegment { file, len, write_offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_look_alikes() {
        assert_eq!(parse_segment_name(&segment_name(0x2a)), Some(0x2a));
        assert_eq!(parse_segment_name("2a.wal"), None);
        assert_eq!(parse_segment_name("000000000000002g.wal"), None);
        assert_eq!(parse_segment_name("000000000000002A.wal"), None);
        assert!(is_temp_name("000000000000002a.wal.tmp"));
        assert!(!is_temp_name("notes.wal.tmp"));
    }
}
