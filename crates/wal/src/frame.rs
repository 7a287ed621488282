//! On-disk encoding: the segment header and the record frame.
//!
//! Segment header (64 bytes): magic, format version, kind, sequence number,
//! per-log salt, LSN of the first frame, CRC of the header.
//!
//! Frame (8-byte aligned): `crc u32 | len u32 | lsn u64 | synced_through u32 |
//! kind u8 | 3 zero bytes | payload | zero padding`. The CRC covers everything
//! after itself (padding included) and is seeded with the log's salt and the
//! segment's sequence number, so a frame validates only in the segment and the
//! log it was written for. `synced_through` is the segment offset that was
//! known durable when the frame was written: a later valid frame that vouches
//! for an earlier damaged one proves corruption rather than a torn write.

pub const SEGMENT_MAGIC: [u8; 8] = *b"ORDLYWAL";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 64;
pub const FRAME_HEADER_LEN: usize = 24;
pub const FRAME_ALIGN: usize = 8;
/// Largest payload one record may carry.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Segment numbers and the LSNs that start segments stay below this. Counted
/// up by one per segment or record from 1, no log comes near it, so a header
/// beyond it was not written by this log; and with every start below it, the
/// `+ 1`s of recovery and the writer cannot overflow.
pub const COUNTER_LIMIT: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Ordinary log segment.
    Log = 1,
    /// Written by a checkpoint: every segment with a lower number is superseded.
    Checkpoint = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub kind: SegmentKind,
    pub seq: u64,
    pub salt: u64,
    pub base_lsn: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    Short,
    BadMagic,
    BadChecksum,
    BadKind(u32),
    /// Checked before the checksum so a future format is named as such.
    Version(u32),
    /// Bytes this version writes as zeros are not: whatever wrote them, it
    /// was not this format, and reading past them would give two encodings
    /// one meaning.
    Reserved,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        b[32..40].copy_from_slice(&self.base_lsn.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(HeaderError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        if crc32fast::hash(&b[..60]) != u32_at(b, 60) {
            return Err(HeaderError::BadChecksum);
        }
        let kind = match u32_at(b, 12) {
            1 => SegmentKind::Log,
            2 => SegmentKind::Checkpoint,
            k => return Err(HeaderError::BadKind(k)),
        };
        if b[40..60].iter().any(|&x| x != 0) {
            return Err(HeaderError::Reserved);
        }
        Ok(SegmentHeader { version, kind, seq: u64_at(b, 16), salt: u64_at(b, 24), base_lsn: u64_at(b, 32) })
    }

    /// CRC state every frame of this segment starts from.
    pub fn frame_seed(&self) -> u32 {
        frame_seed(self.salt, self.seq)
    }
}

pub fn frame_seed(salt: u64, seq: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.finalize()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Record = 1,
    /// First frame of a checkpoint segment; carries no user data.
    CheckpointMarker = 2,
}

pub fn frame_len(payload_len: usize) -> usize {
    align_up(FRAME_HEADER_LEN + payload_len)
}

pub fn align_up(n: usize) -> usize {
    (n + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Appends one encoded frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, seed: u32, lsn: u64, synced_through: u32, kind: FrameKind, payload: &[u8]) {
    let start = out.len();
    let total = frame_len(payload.len());
    out.reserve(total);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&synced_through.to_le_bytes());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(payload);
    out.resize(start + total, 0);
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&out[start + 4..start + total]);
    let crc = h.finalize();
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub lsn: u64,
    pub kind: FrameKind,
    pub synced_through: u32,
    pub payload_start: usize,
    pub payload_len: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The 24 header bytes are all zero: where a preallocated segment ends.
    Zero,
    /// Fewer bytes remain than the header or the stated length needs.
    Truncated,
    BadLength,
    BadKind,
    BadChecksum,
    /// The zero bytes after the kind or after the payload are not zero,
    /// under a valid checksum: not written by this format's encoder.
    Reserved,
}

impl FrameError {
    pub fn describe(self) -> &'static str {
        match self {
            FrameError::Zero => "zeroed frame header",
            FrameError::Truncated => "frame runs past the end of the segment",
            FrameError::BadLength => "frame length out of range",
            FrameError::BadKind => "unknown frame kind",
            FrameError::BadChecksum => "checksum mismatch",
            FrameError::Reserved => "non-zero reserved or padding bytes",
        }
    }
}

/// Decodes the frame at `off`, validating length, kind and checksum.
pub fn decode_frame(buf: &[u8], off: usize, seed: u32) -> Result<Frame, FrameError> {
    let rest = buf.len().saturating_sub(off);
    if rest < FRAME_HEADER_LEN {
        if buf[off.min(buf.len())..].iter().all(|&b| b == 0) {
            return Err(FrameError::Zero);
        }
        return Err(FrameError::Truncated);
    }
    let hdr = &buf[off..off + FRAME_HEADER_LEN];
    if hdr.iter().all(|&b| b == 0) {
        return Err(FrameError::Zero);
    }
    let len = u32_at(hdr, 4) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::BadLength);
    }
    let kind = match hdr[20] {
        1 => FrameKind::Record,
        2 => FrameKind::CheckpointMarker,
        _ => return Err(FrameError::BadKind),
    };
    let total = frame_len(len);
    if total > rest {
        return Err(FrameError::Truncated);
    }
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&buf[off + 4..off + total]);
    if h.finalize() != u32_at(hdr, 0) {
        return Err(FrameError::BadChecksum);
    }
    if hdr[21..24] != [0, 0, 0] || buf[off + FRAME_HEADER_LEN + len..off + total].iter().any(|&b| b != 0) {
        return Err(FrameError::Reserved);
    }
    Ok(Frame {
        lsn: u64_at(hdr, 8),
        kind,
        synced_through: u32_at(hdr, 16),
        payload_start: off + FRAME_HEADER_LEN,
        payload_len: len,
        end: off + total,
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_is_bound_to_its_segment() {
        let seed = frame_seed(42, 7);
        let mut buf = Vec::new();
        encode_frame(&mut buf, seed, 9, 128, FrameKind::Record, b"hello");
        assert_eq!(buf.len(), frame_len(5));
        assert_eq!(buf.len() % FRAME_ALIGN, 0);
        let f = decode_frame(&buf, 0, seed).unwrap();
        assert_eq!((f.lsn, f.synced_through, f.kind), (9, 128, FrameKind::Record));
        assert_eq!(&buf[f.payload_start..f.payload_start + f.payload_len], b"hello");
        assert_eq!(decode_frame(&buf, 0, frame_seed(42, 8)), Err(FrameError::BadChecksum));
        assert_eq!(decode_frame(&buf, 0, frame_seed(43, 7)), Err(FrameError::BadChecksum));
    }

    #[test]
    fn every_bit_of_a_frame_is_covered() {
        let seed = frame_seed(1, 1);
        let mut buf = Vec::new();
        encode_frame(&mut buf, seed, 3, 0, FrameKind::Record, b"abc");
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&b, 0, seed).is_err(), "bit {bit} flip went unnoticed");
        }
    }

    #[test]
    fn header_round_trips_and_names_future_versions() {
        let h = SegmentHeader { version: FORMAT_VERSION, kind: SegmentKind::Checkpoint, seq: 5, salt: 99, base_lsn: 17 };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        let mut future = b;
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&future), Err(HeaderError::Version(2)));
        let mut flipped = b;
        flipped[33] ^= 4;
        assert_eq!(SegmentHeader::decode(&flipped), Err(HeaderError::BadChecksum));
    }
}
