//! `fsync-floor`: the rate at which this disk acknowledges durable appends
//! when every record pays for its own `fdatasync`.
//!
//! It is the baseline `bench/wal.mjs` measures orderly's WAL against: a log
//! that syncs once per record cannot beat it, so any speed-up over it is the
//! group commit's doing. With `--writers W`, W threads share one fd and each
//! does write + fdatasync per record, which is what "W appends in flight"
//! means for a log without group commit (the kernel may still merge
//! concurrent syncs of one inode; that is part of the floor, not cheating).
//!
//! Prints one JSON object on stdout:
//! `{"ops","seconds","opsPerSec","p50us","p99us","writers","recordBytes","preallocate"}`
//! where `preallocate` is `null`, `"zero"` or `"fallocate"`.

use std::ffi::CString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: fsync-floor --file PATH [--writers W] [--seconds T] [--ops N] \
[--warmup-seconds S] [--record-bytes B] [--preallocate BYTES] \
[--prealloc-method zero|fallocate] [--keep]

Appends B-byte records (default 128) to PATH with write() + fdatasync() per
record from W threads (default 1) sharing one fd. Runs S seconds of warm-up
(default 0.5), then measures for T seconds (default 2) or until N acknowledged
records, whichever comes first. --preallocate BYTES first fills the file with
zeros (or fallocates it, --prealloc-method fallocate) and fsyncs it, then
writes with pwrite() at increasing offsets, so fdatasync need not persist a
size change. The file is removed at exit unless --keep.";

struct Args {
    file: String,
    writers: usize,
    seconds: f64,
    ops: Option<u64>,
    warmup_seconds: f64,
    record_bytes: usize,
    preallocate: Option<u64>,
    prealloc_method: Prealloc,
    keep: bool,
}

/// How `--preallocate` reserves the file.
#[derive(Clone, Copy)]
enum Prealloc {
    /// Write zeros: every block is allocated and initialised.
    Zero,
    /// fallocate(2): blocks reserved as unwritten extents.
    Fallocate,
}

impl std::str::FromStr for Prealloc {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "zero" => Ok(Prealloc::Zero),
            "fallocate" => Ok(Prealloc::Fallocate),
            _ => Err(()),
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        file: String::new(),
        writers: 1,
        seconds: 2.0,
        ops: None,
        warmup_seconds: 0.5,
        record_bytes: 128,
        preallocate: None,
        prealloc_method: Prealloc::Zero,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            args.keep = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        const VALUE_FLAGS: [&str; 8] = [
            "--file",
            "--writers",
            "--seconds",
            "--ops",
            "--warmup-seconds",
            "--record-bytes",
            "--preallocate",
            "--prealloc-method",
        ];
        if !VALUE_FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag}"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--file" => args.file = value,
            "--writers" => args.writers = parse(&flag, &value)?,
            "--seconds" => args.seconds = parse(&flag, &value)?,
            "--ops" => args.ops = Some(parse(&flag, &value)?),
            "--warmup-seconds" => args.warmup_seconds = parse(&flag, &value)?,
            "--record-bytes" => args.record_bytes = parse(&flag, &value)?,
            "--preallocate" => args.preallocate = Some(parse(&flag, &value)?),
            "--prealloc-method" => args.prealloc_method = parse(&flag, &value)?,
            _ => unreachable!("every flag in VALUE_FLAGS has an arm"),
        }
    }
    if args.file.is_empty() {
        return Err("--file is required".into());
    }
    if args.writers == 0
        || args.record_bytes == 0
        || args.seconds.is_nan()
        || args.seconds <= 0.0
        || args.warmup_seconds < 0.0
    {
        return Err("--writers, --record-bytes and --seconds must be positive".into());
    }
    Ok(args)
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: cannot parse {value:?}"))
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A file descriptor shared by all writer threads, closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by open() and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

fn open_file(path: &str, preallocate: Option<u64>, method: Prealloc) -> Result<Fd, String> {
    let c_path = CString::new(path).map_err(|_| "file path contains NUL".to_string())?;
    let mut flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
    if preallocate.is_none() {
        flags |= libc::O_APPEND;
    }
    // SAFETY: c_path is a valid NUL-terminated string.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(os_error(&format!("open {path}")));
    }
    let fd = Fd(fd);
    if let Some(bytes) = preallocate {
        match method {
            Prealloc::Zero => {
                // Real blocks, as orderly's segments are preallocated: a later
                // fdatasync writes data blocks only, no size or extent change.
                let zeros = vec![0u8; 1 << 20];
                let mut done = 0u64;
                while done < bytes {
                    let n = (bytes - done).min(zeros.len() as u64) as usize;
                    // SAFETY: zeros is a live buffer of at least n bytes; fd is open.
                    let rc = unsafe {
                        libc::pwrite(fd.0, zeros.as_ptr().cast(), n, done as libc::off_t)
                    };
                    if rc <= 0 {
                        return Err(os_error("zero-fill"));
                    }
                    done += rc as u64;
                }
            }
            Prealloc::Fallocate => {
                // Unwritten extents (etcd's way): cheaper to create, but the
                // first write into each block is an extent conversion the
                // filesystem must journal on fdatasync.
                // SAFETY: fd is open for writing.
                if unsafe { libc::fallocate(fd.0, 0, 0, bytes as libc::off_t) } != 0 {
                    return Err(os_error("fallocate"));
                }
            }
        }
        // SAFETY: fd is open.
        if unsafe { libc::fsync(fd.0) } != 0 {
            return Err(os_error("fsync after preallocating"));
        }
    }
    Ok(fd)
}

struct Shared {
    fd: Fd,
    record_bytes: usize,
    prealloc: bool,
    next_offset: AtomicU64,
    /// Set by the main thread when warm-up ends; only records acknowledged
    /// after it (and before `stop`) count.
    measuring: AtomicBool,
    stop: AtomicBool,
    measured_ops: AtomicU64,
    op_limit: u64,
}

/// What one writer saw inside the measured window.
struct WriterReport {
    /// Records acknowledged inside the window: the throughput count.
    completed: u64,
    /// Latencies (ns) of the records that both started and finished inside it.
    latencies: Vec<u64>,
}

/// One writer: write + fdatasync per record until told to stop.
fn writer(shared: Arc<Shared>, id: usize) -> Result<WriterReport, String> {
    let mut record = vec![b'.'; shared.record_bytes];
    let mut report = WriterReport {
        completed: 0,
        latencies: Vec::with_capacity(1 << 16),
    };
    let mut seq: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let started_inside = shared.measuring.load(Ordering::Acquire);
        // Distinct records, so nothing below the page cache can dedupe them;
        // a stamp longer than the record is simply truncated.
        let _ = writeln!(&mut record[..], "{id}:{seq}");
        seq += 1;

        let start = Instant::now();
        // SAFETY: record is a live buffer of record.len() bytes; fd is open.
        let written = unsafe {
            if shared.prealloc {
                let offset = shared
                    .next_offset
                    .fetch_add(record.len() as u64, Ordering::Relaxed);
                libc::pwrite(
                    shared.fd.0,
                    record.as_ptr().cast(),
                    record.len(),
                    offset as libc::off_t,
                )
            } else {
                libc::write(shared.fd.0, record.as_ptr().cast(), record.len())
            }
        };
        if written < 0 {
            return Err(os_error("write"));
        }
        if written as usize != record.len() {
            return Err(format!("short write: {written} of {} bytes", record.len()));
        }
        // SAFETY: fd is open.
        if unsafe { libc::fdatasync(shared.fd.0) } != 0 {
            return Err(os_error("fdatasync"));
        }
        let elapsed = start.elapsed();

        if shared.measuring.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
            report.completed += 1;
            if started_inside {
                report.latencies.push(elapsed.as_nanos() as u64);
            }
            let done = shared.measured_ops.fetch_add(1, Ordering::Relaxed) + 1;
            if done >= shared.op_limit {
                shared.stop.store(true, Ordering::Release);
            }
        }
    }
    Ok(report)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run(args: &Args) -> Result<String, String> {
    let shared = Arc::new(Shared {
        fd: open_file(&args.file, args.preallocate, args.prealloc_method)?,
        record_bytes: args.record_bytes,
        prealloc: args.preallocate.is_some(),
        next_offset: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        measured_ops: AtomicU64::new(0),
        op_limit: args.ops.unwrap_or(u64::MAX),
    });

    let handles: Vec<_> = (0..args.writers)
        .map(|id| {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("writer-{id}"))
                .stack_size(256 * 1024)
                .spawn(move || writer(shared, id))
                .map_err(|e| format!("spawn writer: {e}"))
        })
        .collect::<Result<_, _>>()?;

    thread::sleep(Duration::from_secs_f64(args.warmup_seconds));
    let started = Instant::now();
    shared.measuring.store(true, Ordering::Release);
    let deadline = started + Duration::from_secs_f64(args.seconds);
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
    shared.stop.store(true, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();

    let mut ops = 0;
    let mut latencies = Vec::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(mut report)) => {
                ops += report.completed;
                latencies.append(&mut report.latencies);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some("writer thread panicked".into())),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    latencies.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(format!(
        "{{\"ops\":{ops},\"seconds\":{seconds:.6},\"opsPerSec\":{:.1},\"p50us\":{:.1},\"p99us\":{:.1},\
\"writers\":{},\"recordBytes\":{},\"preallocate\":{}}}",
        ops as f64 / seconds,
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        args.writers,
        args.record_bytes,
        match (args.preallocate, args.prealloc_method) {
            (None, _) => "null",
            (Some(_), Prealloc::Zero) => "\"zero\"",
            (Some(_), Prealloc::Fallocate) => "\"fallocate\"",
        },
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fsync-floor: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = run(&args);
    if !args.keep {
        let _ = std::fs::remove_file(&args.file);
    }
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fsync-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
