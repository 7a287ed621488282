//! The public handle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::alarm::Alarm;
use crate::error::{Result, WalError};
use crate::frame::MAX_PAYLOAD;
use crate::recovery::recover;
use crate::segment::LOCK_FILE;
use crate::storage::{FsStorage, LockError, LockGuard, Storage};
use crate::writer::{Entry, Queue, Shared, Writer};

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
    /// Longest time a relaxed append stays unsynced.
    pub flush_interval: Duration,
    /// Salvage the valid prefix instead of refusing a corrupt log.
    pub repair: bool,
    /// Zero-fill each new segment to `segment_bytes` before use. On by
    /// default: a sync then never has to journal a file-size change, which
    /// measured 1.3-1.6x more durable appends/s on ext4 (bench/wal.mjs).
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { segment_bytes: 4 << 20, flush_interval: Duration::from_millis(100), repair: false, preallocate: true }
    }
}

pub const MIN_SEGMENT_BYTES: u64 = 4096;
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Longest flush interval: relaxed records unsynced for longer than this
/// would make "durable soon" meaningless.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// What the last open found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records recovered.
    pub records: u64,
    /// Bytes cut off: a torn tail, or what `repair` dropped.
    pub bytes_truncated: u64,
    /// Why bytes were cut, naming segment and offset.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    pub segments: u64,
    pub bytes: u64,
    pub appends: u64,
    pub syncs: u64,
    pub poisoned: bool,
}

/// Progress reported to listeners, on the thread that wrote it.
#[derive(Debug, Clone)]
pub enum DurableEvent {
    /// Every LSN up to and including this one is durable.
    Durable(u64),
    /// The log failed a write or sync; nothing more will become durable.
    Poisoned(WalError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerId(u64);

struct Handle {
    shared: Arc<Shared>,
    io: Arc<Mutex<Writer>>,
    report: OpenReport,
    records: Mutex<Option<Vec<crate::Record>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn LockGuard>>>,
    closed: AtomicBool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A write-ahead log in one directory, exclusively locked while open.
#[derive(Clone)]
pub struct Wal {
    h: Arc<Handle>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.h.shared.dir).finish()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` on the real filesystem.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        Self::open_with_storage(dir, opts, Arc::new(FsStorage))
    }

    /// Opens the log on any [`Storage`], e.g. the fault-injecting simulator.
    pub fn open_with_storage(dir: impl AsRef<Path>, opts: WalOptions, storage: Arc<dyn Storage>) -> Result<Wal> {
        let dir: PathBuf = dir.as_ref().to_path_buf();
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&opts.segment_bytes) {
            return Err(WalError::InvalidArg(format!(
                "segmentBytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                opts.segment_bytes
            )));
        }
        if opts.flush_interval < Duration::from_millis(1) || opts.flush_interval > MAX_FLUSH_INTERVAL {
            return Err(WalError::InvalidArg(format!(
                "flushIntervalMs must be between 1 and {}, got {}",
                MAX_FLUSH_INTERVAL.as_millis(),
                opts.flush_interval.as_millis()
            )));
        }
        if storage.list(&dir).is_err() {
            storage.create_dir_all(&dir).map_err(|e| WalError::io("create directory", &dir, &e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                storage.sync_dir(parent).map_err(|e| WalError::io("sync directory", parent, &e))?;
            }
        }
        let lock = match storage.lock(&dir.join(LOCK_FILE)) {
            Ok(l) => l,
            Err(LockError::Held(pid)) => return Err(WalError::Locked { dir, pid }),
            Err(LockError::Io(e)) => return Err(WalError::io("lock", dir.join(LOCK_FILE), &e)),
        };
        let rec = recover(&*storage, &dir, &opts)?;
        let last_lsn = rec.next_lsn - 1;
        let alarm = Alarm::new().map_err(|e| WalError::io("create the writer thread's timer for", &dir, &e))?;
        let shared = Arc::new(Shared {
            dir,
            storage,
            opts,
            queue: Mutex::new(Queue {
                next_lsn: rec.next_lsn,
                arena: Vec::new(),
                entries: Vec::new(),
                sync_wanted: 0,
                poisoned: None,
                closing: false,
                writer_done: false,
                leading: 0,
                unsynced_since: None,
                linked_checked: std::time::Instant::now(),
                writer_sleeps_until: None,
            }),
            alarm,
            wake_waiters: Condvar::new(),
            durable: AtomicU64::new(last_lsn),
            listeners: Mutex::new(Vec::new()),
            next_listener: AtomicU64::new(1),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            poison_announced: AtomicBool::new(false),
        });
        let io = Arc::new(Mutex::new(Writer::new(shared.clone(), rec.salt, rec.tail, last_lsn, rec.segments)));
        let (thread_io, thread_shared) = (io.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("orderly-wal-writer".into())
            .spawn(move || Writer::run(thread_io, thread_shared))
            .map_err(|e| WalError::io("spawn writer thread", &shared.dir, &e))?;
        Ok(Wal {
            h: Arc::new(Handle {
                shared,
                io,
                report: rec.report,
                records: Mutex::new(Some(rec.records)),
                writer: Mutex::new(Some(thread)),
                lock: Mutex::new(Some(lock)),
                closed: AtomicBool::new(false),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.h.shared.dir
    }

    pub fn open_report(&self) -> OpenReport {
        self.h.report.clone()
    }

    /// The records the log held when it was opened, in LSN order.
    pub fn records(&self) -> Vec<Record> {
        self.h.records.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
    }

    /// Hands the recovered records over without copying them; later calls
    /// to [`Wal::records`] return nothing.
    pub fn take_records(&self) -> Vec<Record> {
        self.h.records.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
    }

    /// Queues a record the writer will sync promptly; durable once
    /// [`Wal::durable_lsn`] reaches the returned LSN.
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        self.enqueue(payload, true)
    }

    /// Queues a record that becomes durable with the next sync, or within the
    /// flush interval.
    pub fn append_relaxed(&self, payload: &[u8]) -> Result<u64> {
        self.enqueue(payload, false)
    }

    fn enqueue(&self, payload: &[u8], durable: bool) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD {
            return Err(WalError::InvalidArg(format!("record of {} bytes exceeds the {MAX_PAYLOAD}-byte limit", payload.len())));
        }
        let shared = &self.h.shared;
        let mut q = shared.lock();
        usable(&q)?;
        let lsn = q.next_lsn;
        q.next_lsn += 1;
        let start = q.arena.len();
        q.arena.extend_from_slice(payload);
        q.entries.push(Entry::Rec { lsn, start, len: payload.len() });
        if durable {
            q.sync_wanted = lsn;
        }
        let leader = q.leading > 0;
        drop(q);
        shared.appends.fetch_add(1, Ordering::Relaxed);
        if !leader {
            shared.wake_writer();
        }
        Ok(lsn)
    }

    /// Asks for everything appended so far to be synced; done once
    /// [`Wal::durable_lsn`] reaches the returned LSN.
    pub fn request_sync(&self) -> Result<u64> {
        let shared = &self.h.shared;
        let mut q = shared.lock();
        usable(&q)?;
        let target = q.next_lsn - 1;
        if target > shared.durable.load(Ordering::Acquire) {
            q.sync_wanted = q.sync_wanted.max(target);
            drop(q);
            shared.wake_writer();
        }
        Ok(target)
    }

    /// Replaces everything appended so far with `live`. Done once
    /// [`Wal::durable_lsn`] reaches the returned LSN; records appended after
    /// this call follow the live set.
    pub fn checkpoint(&self, live: Vec<Vec<u8>>) -> Result<u64> {
        let total: usize = live.iter().map(|p| crate::frame::frame_len(p.len())).sum();
        if total as u64 > MAX_SEGMENT_BYTES {
            return Err(WalError::InvalidArg(format!("live set of {total} bytes exceeds the {MAX_SEGMENT_BYTES}-byte checkpoint limit")));
        }
        if let Some(p) = live.iter().find(|p| p.len() > MAX_PAYLOAD) {
            return Err(WalError::InvalidArg(format!("record of {} bytes exceeds the {MAX_PAYLOAD}-byte limit", p.len())));
        }
        let shared = &self.h.shared;
        let mut q = shared.lock();
        usable(&q)?;
        let marker_lsn = q.next_lsn;
        q.entries.push(Entry::Checkpoint { marker_lsn, count: live.len() });
        let mut lsn = marker_lsn;
        for p in &live {
            lsn += 1;
            let start = q.arena.len();
            q.arena.extend_from_slice(p);
            q.entries.push(Entry::Rec { lsn, start, len: p.len() });
        }
        q.next_lsn = lsn + 1;
        q.sync_wanted = lsn;
        drop(q);
        shared.wake_writer();
        Ok(lsn)
    }

    /// LSN of the last record appended (0 before the first): durable once
    /// [`Wal::durable_lsn`] reaches it, whether or not anyone asked for a sync.
    pub fn appended_lsn(&self) -> u64 {
        self.h.shared.lock().next_lsn - 1
    }

    /// Highest LSN such that it and every earlier one are durable.
    pub fn durable_lsn(&self) -> u64 {
        self.h.shared.durable.load(Ordering::Acquire)
    }

    /// Blocks until `lsn` is durable, the log is poisoned, or it is closed.
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        let shared = &self.h.shared;
        let mut q = shared.lock();
        loop {
            if shared.durable.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if shared.poison_announced.load(Ordering::Acquire) {
                return Err(q.poisoned.clone().unwrap_or(WalError::Closed));
            }
            if q.writer_done {
                return Err(WalError::Closed);
            }
            q = shared.wake_waiters.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Lets the calling thread write and sync its own records: see [`Lead`].
    pub fn lead(&self) -> Lead<'_> {
        self.h.shared.lock().leading += 1;
        Lead { wal: self }
    }

    /// Registers `f` for durability progress. It runs on the thread that
    /// made the progress (the writer thread or a leader) and must not block.
    pub fn add_listener(&self, f: impl Fn(DurableEvent) + Send + Sync + 'static) -> ListenerId {
        let shared = &self.h.shared;
        let id = shared.next_listener.fetch_add(1, Ordering::Relaxed);
        shared.listeners.lock().unwrap_or_else(|p| p.into_inner()).push((id, Arc::new(f)));
        ListenerId(id)
    }

    pub fn remove_listener(&self, id: ListenerId) {
        self.h.shared.listeners.lock().unwrap_or_else(|p| p.into_inner()).retain(|(i, _)| *i != id.0);
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.h.shared;
        WalStats {
            segments: s.segments.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            appends: s.appends.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            poisoned: s.poisoned.load(Ordering::Acquire),
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.h.shared.poisoned.load(Ordering::Acquire)
    }

    /// The error every append gets once the log is poisoned.
    pub fn poison_error(&self) -> Option<WalError> {
        if !self.is_poisoned() {
            return None;
        }
        self.h.shared.lock().poisoned.clone()
    }

    /// Syncs what is queued, stops the writer and releases the directory.
    /// Later calls on any clone fail with [`WalError::Closed`].
    pub fn close(&self) -> Result<()> {
        self.h.close()
    }
}

impl Handle {
    /// The writer's turn on this thread, unless another thread has the writer.
    fn try_turn(&self, sync: bool) -> bool {
        match self.io.try_lock() {
            Ok(mut w) => w.turn(sync),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().turn(sync),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        true
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut q = self.shared.lock();
            q.closing = true;
        }
        self.shared.wake_writer();
        if let Some(t) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.records.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.shared.listeners.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }
}

/// A thread that is about to wait for its own records. While any lead is
/// held, appends (from any thread) do not wake the writer thread: the leader
/// writes them, and syncs them in [`Lead::wait_durable`], on its own thread
/// when the writer is idle. Handing a sync to the writer thread and being
/// woken when it is done costs two thread wake-ups, more than the sync
/// itself on a fast disk. When the writer is busy, the lead falls back to
/// waking the writer thread, so no record waits for a lead to end.
///
/// Dropping the lead writes whatever is still queued (and syncs it if anyone
/// asked for durability), so a relaxed record reaches the page cache as soon
/// as it would have from the writer thread.
pub struct Lead<'a> {
    wal: &'a Wal,
}

impl Lead<'_> {
    /// [`Wal::wait_durable`], doing the writer's turn here when it is idle.
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        let h = &self.wal.h;
        loop {
            {
                let q = h.shared.lock();
                if h.shared.durable.load(Ordering::Acquire) >= lsn || q.closing || q.poisoned.is_some() || q.writer_done {
                    break;
                }
            }
            if !h.try_turn(true) {
                // Whoever holds it may have taken its batch before this record came.
                h.shared.wake_writer();
                break;
            }
        }
        self.wal.wait_durable(lsn)
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let h = &self.wal.h;
        let pending = {
            let mut q = h.shared.lock();
            q.leading -= 1;
            q.leading == 0 && !q.closing && q.poisoned.is_none() && (!q.entries.is_empty() || q.sync_wanted > h.shared.durable.load(Ordering::Acquire))
        };
        if !pending {
            return;
        }
        if !h.try_turn(false) {
            h.shared.wake_writer();
        }
    }
}

fn usable(q: &Queue) -> Result<()> {
    if q.closing {
        return Err(WalError::Closed);
    }
    if let Some(e) = &q.poisoned {
        return Err(e.clone());
    }
    Ok(())
}
