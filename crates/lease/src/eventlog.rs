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
/// Enough tail to hold the last line of any sane event.
const TAIL_BYTES: u64 = 256 * 1024;

/// Appends `body`, a JSON object without `seq`, as the next record; returns
/// its seq. `body` must start with `{`.
pub fn append_event(path: &Path, body: &str) -> io::Result<u64> {
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
    let seq = latest_seq_of(&mut f, path)? + 1;
    let rest = rest.trim_start();
    let line = if rest.starts_with('}') { format!("{{\"seq\":{seq}}}\n") } else { format!("{{\"seq\":{seq},{rest}\n") };
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

fn latest_seq_of(f: &mut File, path: &Path) -> io::Result<u64> {
    let len = f.metadata()?.len();
    let from = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::with_capacity((len - from) as usize);
    f.read_to_end(&mut tail)?;
    let newest = tail.split(|&b| b == b'\n').rev().find_map(seq_of_line);
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
        assert_eq!(append_event(&log, r#"{"type":"bead.closed","actor":"human"}"#).unwrap(), 1);
        assert_eq!(append_event(&log, "{}").unwrap(), 2);
        // Another writer (Gas City) appended meanwhile.
        fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{\"seq\":41,\"type\":\"x\",\"ts\":\"t\",\"actor\":\"gc\"}\n").unwrap();
        assert_eq!(append_event(&log, r#"{"type":"y"}"#).unwrap(), 42);
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().next().unwrap(), r#"{"seq":1,"type":"bead.closed","actor":"human"}"#);
        assert_eq!(text.lines().nth(1).unwrap(), r#"{"seq":2}"#);
        // Rotated away: the archives' names carry on the numbering.
        fs::rename(&log, d.path().join(".gc").join("events.jsonl.rotating")).unwrap();
        fs::write(d.path().join(".gc").join("events.jsonl.archive-20260101T000000Z-seq-1-57.gz"), b"").unwrap();
        assert_eq!(append_event(&log, r#"{"type":"z"}"#).unwrap(), 58);
        assert!(append_event(&log, "[1]").is_err());
        assert!(append_event(&log, "{\"a\":\n1}").is_err());
    }

    #[test]
    fn a_held_lock_is_waited_for_then_reported() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("events.jsonl");
        let holder = File::create(&log).unwrap();
        assert!(try_flock(&holder).unwrap());
        let err = append_event(&log, "{}").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(holder);
        assert_eq!(append_event(&log, "{}").unwrap(), 1);
    }
}
