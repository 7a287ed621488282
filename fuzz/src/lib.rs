//! Shared by the fuzz targets and the seed-corpus generator: how a fuzz input
//! describes a log directory, and the WAL's own frame codec.

use std::path::Path;

use orderly_wal::sim::SimStorage;
use orderly_wal::Storage;

/// The WAL's frame and segment-header codec, compiled from its own source.
/// The module is private to `orderly-wal` and widening its API only for the
/// fuzzer would freeze the on-disk codec as public surface; including the
/// file fuzzes exactly the decoder the log runs, and lets the harness forge
/// checksums with the encoder the log writes them with.
#[allow(dead_code)]
#[path = "../../crates/wal/src/frame.rs"]
pub mod frame;

use frame::{frame_len, frame_seed, FRAME_HEADER_LEN, MAX_PAYLOAD, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

/// Where the targets put the log inside the simulated filesystem.
pub const DIR: &str = "/fuzz/wal";

/// At most this many files per input: enough for a checkpoint with stale
/// segments, a missing one and junk beside them.
pub const MAX_FILES: usize = 8;

/// A log directory as a fuzz input:
///
/// `flags u8 | fix_limit u8 | extra u8 | (name u8 | len u16le | bytes)*`
///
/// A flat layout rather than `arbitrary`'s, so that real segments written by
/// the log become seeds verbatim (examples/seed_corpus.rs) and libFuzzer's
/// byte-level mutations land on segment bytes, not on framing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirImage {
    pub flags: u8,
    /// How many frames per file get their checksum recomputed (255 = all),
    /// when [`FLAG_FIX_CHECKSUMS`] is set.
    pub fix_limit: u8,
    /// Drives what the target does after a successful open (appends, keys).
    pub extra: u8,
    pub files: Vec<(u8, Vec<u8>)>,
}

pub const FLAG_REPAIR: u8 = 1 << 0;
pub const FLAG_PREALLOCATE: u8 = 1 << 1;
/// Without this the fuzzer must forge CRC32s itself (libFuzzer's comparison
/// tracing often can); with it, mutations of lengths, LSNs, salts and
/// `synced_through` reach the recovery logic behind the checksums.
pub const FLAG_FIX_CHECKSUMS: u8 = 1 << 2;
pub const FLAG_CHECKPOINT: u8 = 1 << 3;
pub const FLAG_EAGER_COMPACT: u8 = 1 << 4;

impl DirImage {
    /// Never fails: a truncated last file is kept as far as it goes, so every
    /// input is a directory.
    pub fn parse(data: &[u8]) -> DirImage {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let mut img = DirImage { flags: byte(0), fix_limit: byte(1), extra: byte(2), files: Vec::new() };
        let mut at = 3;
        while at < data.len() && img.files.len() < MAX_FILES {
            let name = data[at];
            let len = u16::from_le_bytes([byte(at + 1), byte(at + 2)]) as usize;
            let start = (at + 3).min(data.len());
            let end = start.saturating_add(len).min(data.len());
            img.files.push((name, data[start..end].to_vec()));
            at = end;
        }
        img
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags, self.fix_limit, self.extra];
        for (name, bytes) in &self.files {
            let len = u16::try_from(bytes.len()).expect("seed files fit the u16 length field");
            out.push(*name);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    pub fn segment_bytes(&self) -> u64 {
        // 4 KiB (the minimum) to 64 KiB: small segments make roll-over and
        // multi-segment recovery reachable within a 64 KiB input.
        4096 << ((self.flags >> 5) % 5)
    }

    /// Writes the files into `dir` of `sim`, durably, as a crash would have
    /// left them.
    pub fn install(&self, sim: &SimStorage, dir: &Path) {
        sim.create_dir_all(dir).expect("sim mkdir");
        for (name, bytes) in &self.files {
            let mut bytes = bytes.clone();
            if self.flags & FLAG_FIX_CHECKSUMS != 0 {
                fix_checksums(&mut bytes, self.fix_limit);
            }
            let mut f = sim.create(&dir.join(file_name(*name))).expect("sim create");
            f.write_at(0, &bytes).expect("sim write");
            f.sync_data().expect("sim sync");
        }
        sim.sync_dir(dir).expect("sim sync dir");
    }
}

/// Names the log writes, names it must ignore or clean up, and look-alikes
/// that must not be mistaken for either.
pub fn file_name(b: u8) -> String {
    let hi = u64::from(b >> 4);
    match b & 0x0f {
        n @ 0..=7 => format!("{:016x}.wal", u64::from(n) + 1),
        8 => format!("{:016x}.wal", hi + 9),
        9 => "0000000000000000.wal".into(),
        10 => format!("{:016x}.wal", u64::MAX - hi % 2),
        11 => format!("{:016x}.wal.tmp", hi + 1),
        // Upper-case hex: the log never writes it, so it must not read it as
        // one of its segments (it would then write to the lower-case name).
        12 => format!("{:016X}.wal", hi + 10),
        13 => "LOCK".into(),
        14 => ["notes.txt", "0000000000000001.wal.bak", "1.wal", "0000000000000001.wal.tmp.tmp"][(hi % 4) as usize].into(),
        _ => format!("{:016x}.wal", hi * 0x1_0000_0001 + 2),
    }
}

/// The `name` byte that [`file_name`] maps to segment `seq` (1 to 8).
pub fn segment_name_byte(seq: u64) -> u8 {
    assert!((1..=8).contains(&seq));
    (seq - 1) as u8
}

/// Recomputes the header checksum and the checksums of the first `limit`
/// well-formed frames (all of them for 255), using the salt and sequence
/// number the header states, whatever the header's own checksum says.
pub fn fix_checksums(seg: &mut [u8], limit: u8) {
    if seg.len() < SEGMENT_HEADER_LEN || seg[..8] != SEGMENT_MAGIC {
        return;
    }
    let crc = crc32fast::hash(&seg[..60]);
    seg[60..64].copy_from_slice(&crc.to_le_bytes());
    let seq = u64::from_le_bytes(seg[16..24].try_into().expect("8 bytes"));
    let salt = u64::from_le_bytes(seg[24..32].try_into().expect("8 bytes"));
    let seed = frame_seed(salt, seq);
    let mut off = SEGMENT_HEADER_LEN;
    let mut fixed = 0u32;
    while off + FRAME_HEADER_LEN <= seg.len() && (limit == 255 || fixed < u32::from(limit)) {
        let hdr = &seg[off..off + FRAME_HEADER_LEN];
        if hdr.iter().all(|&b| b == 0) {
            break;
        }
        let len = u32::from_le_bytes(hdr[4..8].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD || !matches!(hdr[20], 1 | 2) || off + frame_len(len) > seg.len() {
            break;
        }
        let end = off + frame_len(len);
        let mut h = crc32fast::Hasher::new_with_initial(seed);
        h.update(&seg[off + 4..end]);
        seg[off..off + 4].copy_from_slice(&h.finalize().to_le_bytes());
        off = end;
        fixed += 1;
    }
}
