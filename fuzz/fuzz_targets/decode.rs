//! The decoders that see bytes from disk: the segment header, the record
//! frame, the segment scan behind `inspect`, and the lease record. None may
//! panic or allocate beyond the input's size, whatever the bytes; whatever
//! decodes must re-encode to the bytes it came from, so no two encodings
//! mean the same thing and no byte is silently ignored.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use orderly_fuzz::frame::{decode_frame, encode_frame, frame_seed, FrameKind, SegmentHeader, SEGMENT_HEADER_LEN};
use orderly_lease::Rec;
use orderly_wal::sim::SimStorage;
use orderly_wal::{Record, Storage};

fuzz_target!(|data: &[u8]| {
    lease_record(data);
    let walked = segment(data);
    scan_agrees(data, walked);
});

fn lease_record(b: &[u8]) {
    if let Ok(rec) = Rec::decode(b) {
        assert_eq!(rec.encode(), b, "lease record {rec:?} decoded from bytes it does not encode to");
    }
}

/// Walks the frames the way recovery does and returns the records of the
/// valid, in-sequence prefix (None when the header does not validate).
fn segment(data: &[u8]) -> Option<Vec<Record>> {
    let header = SegmentHeader::decode(data);
    if let Ok(h) = &header {
        assert_eq!(h.encode()[..], data[..SEGMENT_HEADER_LEN], "segment header {h:?} decoded from bytes it does not encode to");
    }
    if data.len() < SEGMENT_HEADER_LEN {
        return None;
    }
    // Seeded from the header's fields even when its checksum is bad, so the
    // frames of a mutated header are still decoded past their checksums.
    let seq = u64::from_le_bytes(data[16..24].try_into().expect("8 bytes"));
    let salt = u64::from_le_bytes(data[24..32].try_into().expect("8 bytes"));
    let seed = frame_seed(salt, seq);
    let mut expected = header.as_ref().map_or(1, |h| h.base_lsn);
    let mut in_sequence = true;
    let mut records = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while let Ok(f) = decode_frame(data, off, seed) {
        assert!(f.end > off && f.end <= data.len() && f.end % 8 == 0, "frame at {off} ends at {}", f.end);
        let payload = &data[f.payload_start..f.payload_start + f.payload_len];
        let mut again = Vec::new();
        encode_frame(&mut again, seed, f.lsn, f.synced_through, f.kind, payload);
        assert_eq!(again[..], data[off..f.end], "frame at {off} decoded from bytes it does not encode to");
        lease_record(payload);
        in_sequence &= f.lsn == expected;
        if in_sequence {
            expected = expected.wrapping_add(1);
            if f.kind == FrameKind::Record {
                records.push(Record { lsn: f.lsn, payload: payload.to_vec() });
            }
        }
        off = f.end;
    }
    header.ok().map(|_| records)
}

/// The same bytes as the only segment of a log: the scan must not panic,
/// and when it accepts the segment it must return exactly the frames a
/// plain walk decodes.
fn scan_agrees(data: &[u8], walked: Option<Vec<Record>>) {
    let seq = data.get(16..24).map_or(1, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let dir = Path::new("/fuzz/decode");
    let sim = SimStorage::new();
    sim.create_dir_all(dir).expect("sim mkdir");
    let mut f = sim.create(&dir.join(format!("{seq:016x}.wal"))).expect("sim create");
    f.write_at(0, data).expect("sim write");
    if let Ok(seen) = orderly_wal::inspect(&sim, dir) {
        let walked = walked.expect("inspect accepted a segment whose header does not decode");
        assert_eq!(seen.records, walked, "inspect and a plain frame walk disagree");
        assert!(seen.bytes == data.len() as u64 && seen.segments == 1);
    }
}
