//! Appending to a Gas City city's event log (`<city>/.gc/events.jsonl`) the
//! way Gas City's own writers do, so `gc`, its controller and orderly can
//! share one stream: one JSON object per line, `seq` first, numbered one
//! past the newest record under an exclusive `flock` on the file, written
//! with one `O_APPEND` write. Like Gas City, the log is not fsynced: it is a
//! notification stream, and the order's cursor (in the lease store) is what
//! must be durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::runlock::try_flock;

/// Gas City gives up on the lock after this long (and drops the event); we
/// report it instead.
const LOCK_WAIT: Duration = Duration::from_millis(250);
const LOCK_RETRY: Duration = Duration::from_millis(5);
/// The tail is read backwards in steps of this size until it holds a whole record.
const TAIL_STEP: u64 = 64 * 1024;

/// Appends `body`, a JSON object without `seq`, as the next record; returns
/// its seq: one past the newest in the log, and past `floor` (the highest
/// seq the caller has already seen, so a log that was deleted and begun
/// again does not reuse numbers its readers have consumed). `body` must
/// start with `{`.
pub fn append_event(path: &Path, body: &str, floor: u64) -> io::Result<u64> {
    let rest = body.trim_start().strip_prefix('{').ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an event must be a JSON object"))?;
    if body.contains('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an event must be one line"));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new().read(true).append(true).create(true).mode(0o644).open(path)?;
    let started = Instant::now();
    while !try_flock(&f)? {
        if started.elapsed() >= LOCK_WAIT {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, format!("{} is locked by another writer for over {} ms", path.display(), LOCK_WAIT.as_millis())));
        }
        sleep(LOCK_RETRY);
    }
    let seq = latest_seq_of(&mut f, path)?.max(floor) + 1;
    let rest = rest.trim_start();
    let mut line = if rest.starts_with('}') { format!("{{\"seq\":{seq}}}\n") } else { format!("{{\"seq\":{seq},{rest}\n") };
    // A writer that died mid-record left a line without its newline: end it
    // there (readers skip it as malformed) rather than glue ours onto it.
    if !ends_with_newline(&mut f)? {
        line.insert(0, '\n');
    }
    // One write with O_APPEND: readers never see half a record from us.
    let n = f.write(line.as_bytes())?;
    if n != line.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write to {}: {n} of {} bytes", path.display(), line.len())));
    }
    Ok(seq)
}

/// The newest seq in the log: its last record's, else (a log just rotated
/// away) the highest in the archives' names, else 0.
pub fn latest_seq(path: &Path) -> io::Result<u64> {
    match File::open(path) {
        Ok(mut f) => latest_seq_of(&mut f, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(archived_seq(path)),
        Err(e) => Err(e),
    }
}

fn ends_with_newline(f: &mut File) -> io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The highest seq among the log's last records: the tail is read backwards
/// until it holds at least one whole record with a seq (a record may be far
/// larger than any fixed window), and every whole record in it counts, so a
/// writer that appended a lower number after a higher one cannot pull the
/// answer down.
fn latest_seq_of(f: &mut File, path: &Path) -> io::Result<u64> {
    let len = f.metadata()?.len();
    let mut from = len;
    let mut tail: Vec<u8> = Vec::new();
    let mut newest = None;
    while from > 0 && newest.is_none() {
        let step = TAIL_STEP.max(tail.len() as u64).min(from);
        from -= step;
        let mut chunk = vec![0u8; step as usize];
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        // Whole records only: everything after the first newline (or all of it, at the file's start).
        let whole = if from == 0 { &tail[..] } else { tail.iter().position(|&b| b == b'\n').map_or(&tail[..0], |at| &tail[at + 1..]) };
        newest = whole.split(|&b| b == b'\n').filter_map(seq_of_line).max();
    }
    Ok(newest.unwrap_or(0).max(archived_seq(path)))
}

/// `"seq":N` in one record; Gas City writes it first, but any position counts.
fn seq_of_line(line: &[u8]) -> Option<u64> {
    let key = b"\"seq\":";
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = line[at..].iter().skip_while(|b| **b == b' ').take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// The highest `<last>` of `events.jsonl.archive-<ts>-seq-<first>-<last>.gz` beside the log.
fn archived_seq(path: &Path) -> u64 {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return 0 };
    let prefix = format!("{name}.archive-");
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".gz"))
        .filter_map(|n| n.trim_end_matches(".gz").rsplit('-').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_records_one_past_the_newest_and_past_archives() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join(".gc").join("events.jsonl");
        assert_eq!(latest_seq(&log).unwrap(), 0);
        assert_eq!(append_event(&log, r#"{"type":"bead.closed","actor":"human"}"#, 0).unwrap(), 1);
        assert_eq!(append_event(&log, "{}", 0).unwrap(), 2);
        // Another writer (Gas City) appended meanwhile.
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{\"seq\":41,\"type\":\"x\",\"ts\":\"t\",\"actor\":\"gc\"}\n").unwrap();
        assert_eq!(append_event(&log, r#"{"type":"y"}"#, 0).unwrap(), 42);
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().next().unwrap(), r#"{"seq":1,"type":"bead.closed","actor":"human"}"#);
        assert_eq!(text.lines().nth(1).unwrap(), r#"{"seq":2}"#);
        // Rotated away: the archives' names carry on the numbering.
        fs::rename(&log, d.path().join(".gc").join("events.jsonl.rotating")).unwrap();
        fs::write(d.path().join(".gc").join("events.jsonl.archive-20260101T000000Z-seq-1-57.gz"), b"").unwrap();
        assert_eq!(append_event(&log, r#"{"type":"z"}"#, 0).unwrap(), 58);
        assert!(append_event(&log, "[1]", 0).is_err());
        assert!(append_event(&log, "{\"a\":\n1}", 0).is_err());
    }

    #[test]
    fn a_huge_last_record_a_lower_seq_after_a_higher_a_torn_tail_and_a_floor() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("events.jsonl");
        let big = format!("{{\"seq\":2,\"type\":\"big\",\"payload\":\"{}\"}}\n", "x".repeat(300 * 1024));
        fs::write(&log, format!("{{\"seq\":1,\"type\":\"a\"}}\n{big}")).unwrap();
        assert_eq!(latest_seq(&log).unwrap(), 2);
        // A stale writer appended a lower number: the highest still counts.
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{\"seq\":5,\"type\":\"b\"}\n{\"seq\":3,\"type\":\"c\"}\n").unwrap();
        assert_eq!(latest_seq(&log).unwrap(), 5);
        // A writer died mid-record: ours starts on a line of its own, numbered past the torn one.
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{\"seq\":6,\"type\":\"sm").unwrap();
        assert_eq!(append_event(&log, r#"{"type":"d"}"#, 0).unwrap(), 7);
        assert!(fs::read_to_string(&log).unwrap().ends_with("{\"seq\":6,\"type\":\"sm\n{\"seq\":7,\"type\":\"d\"}\n"));
        // A log begun again is numbered past what its readers consumed.
        fs::remove_file(&log).unwrap();
        assert_eq!(append_event(&log, "{}", 41).unwrap(), 42);
    }

    #[test]
    fn a_held_lock_is_waited_for_then_reported() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("events.jsonl");
        let holder = File::create(&log).unwrap();
        assert!(try_flock(&holder).unwrap());
        let err = append_event(&log, "{}", 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(holder);
        assert_eq!(append_event(&log, "{}", 0).unwrap(), 1);
    }
}
