//! The writer: the only code that writes segment files.
//!
//! Appenders put payloads into a shared arena and return at once. The writer
//! takes everything queued, writes it with one `pwrite`, and when anyone waits
//! for durability issues one `fdatasync` for the whole batch; whatever arrives
//! while that sync runs goes into the next batch (group commit). Relaxed
//! records are written immediately (they survive kill -9 from the page cache)
//! and synced within the flush interval.
//!
//! The writer runs on its own thread, or on the thread of a leader (see
//! [`crate::Lead`]): a thread about to wait for its own records takes the
//! writer's turn itself when the writer is idle, which saves the two
//! thread wake-ups of handing the sync over and back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::alarm::Alarm;
use crate::error::WalError;
use crate::frame::{encode_frame, frame_len, frame_seed, FrameKind, SegmentHeader, SegmentKind, COUNTER_LIMIT, FORMAT_VERSION, SEGMENT_HEADER_LEN};
use crate::recovery::Tail;
use crate::segment::{create_segment, segment_path};
use crate::storage::Storage;
use crate::wal::{DurableEvent, WalOptions};

pub(crate) type Listener = Arc<dyn Fn(DurableEvent) + Send + Sync>;

/// One queued item, in LSN order.
pub(crate) enum Entry {
    Rec { lsn: u64, start: usize, len: usize },
    /// Followed in the queue by `count` `Rec` entries: the live set.
    Checkpoint { marker_lsn: u64, count: usize },
}

pub(crate) struct Queue {
    pub next_lsn: u64,
    pub arena: Vec<u8>,
    pub entries: Vec<Entry>,
    /// Highest LSN someone is waiting to see durable.
    pub sync_wanted: u64,
    pub poisoned: Option<WalError>,
    pub closing: bool,
    pub writer_done: bool,
    /// Threads holding a [`crate::Lead`]: while any does, appends leave the
    /// writer thread asleep, for a leader writes them.
    pub leading: usize,
    /// The writer's own, copied at the end of each turn for the writer
    /// thread to sleep by without taking the writer.
    pub unsynced_since: Option<Instant>,
    pub linked_checked: Instant,
    /// When the sleeping writer thread will wake by itself (None while
    /// awake): its alarm's timer is set for it.
    pub writer_sleeps_until: Option<Instant>,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub opts: WalOptions,
    pub queue: Mutex<Queue>,
    pub alarm: Alarm,
    pub wake_waiters: Condvar,
    pub durable: AtomicU64,
    pub listeners: Mutex<Vec<(u64, Listener)>>,
    pub next_listener: AtomicU64,
    pub appends: AtomicU64,
    pub syncs: AtomicU64,
    pub segments: AtomicU64,
    pub bytes: AtomicU64,
    /// Set the moment a write or sync fails (stats, new appends).
    pub poisoned: AtomicBool,
    /// Set once every listener has heard of the poison; waiters wake only then.
    pub poison_announced: AtomicBool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wake_writer(&self) {
        self.alarm.ring();
    }

    /// When the writer thread must act unasked: a link check, or the flush
    /// of a relaxed record written and not yet synced.
    fn writer_deadline(&self, q: &Queue) -> Instant {
        let check = q.linked_checked + LINK_CHECK;
        q.unsynced_since.map_or(check, |since| check.min(since + self.opts.flush_interval))
    }

    fn emit(&self, event: DurableEvent) {
        let listeners: Vec<Listener> = self.listeners.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, l)| l.clone()).collect();
        for l in listeners {
            l(event.clone());
        }
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    salt: u64,
    tail: Tail,
    /// Offset of the tail segment known to be on stable storage.
    synced_offset: u64,
    written_lsn: u64,
    durable_lsn: u64,
    segments: BTreeMap<u64, u64>,
    unsynced_since: Option<Instant>,
    buf: Vec<u8>,
    /// When the open segment was last checked to still be the file at its path.
    linked_checked: Instant,
    /// The batch being written, swapped with the queue's to keep both allocations.
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

/// The writer is taken by one thread at a time: the writer thread, or a
/// leader that would otherwise wake it and sleep until it is done.
pub(crate) fn lock_io(io: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    io.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often an idle writer checks that its segment and lock file are still
/// the files at their paths: a cleanup job that deletes or replaces them
/// would otherwise leave acknowledged records in an unlinked file, lost at
/// the next open.
const LINK_CHECK: Duration = Duration::from_secs(1);

struct IoFail(String);

fn fail(op: &str, path: &Path, e: std::io::Error) -> IoFail {
    IoFail(format!("{op} of {} failed: {e}", path.display()))
}

impl Writer {
    pub fn new(shared: Arc<Shared>, salt: u64, tail: Tail, last_lsn: u64, segments: BTreeMap<u64, u64>) -> Self {
        let synced_offset = tail.offset;
        let w = Writer { shared, salt, tail, synced_offset, written_lsn: last_lsn, durable_lsn: last_lsn, segments, unsynced_since: None, buf: Vec::new(), linked_checked: Instant::now(), arena: Vec::new(), entries: Vec::new() };
        w.publish_sizes();
        w
    }

    /// The writer thread: a turn whenever something is queued, someone waits
    /// for a sync, a relaxed record's flush interval ends or a link check is
    /// due. Leaders take turns on their own threads between these.
    pub fn run(io: Arc<Mutex<Writer>>, shared: Arc<Shared>) {
        loop {
            {
                let mut q = shared.lock();
                loop {
                    if q.poisoned.is_some() {
                        if q.closing {
                            q.writer_done = true;
                            shared.wake_waiters.notify_all();
                            return;
                        }
                        shared.alarm.set(None);
                        drop(q);
                        shared.alarm.wait();
                        q = shared.lock();
                        continue;
                    }
                    if !q.entries.is_empty() || q.closing || q.sync_wanted > shared.durable.load(Ordering::Acquire) {
                        break;
                    }
                    let deadline = shared.writer_deadline(&q);
                    if Instant::now() >= deadline {
                        break;
                    }
                    // Set under the queue's lock, as the leaders that move it do (`turn`).
                    q.writer_sleeps_until = Some(deadline);
                    shared.alarm.set(Some(deadline));
                    drop(q);
                    shared.alarm.wait();
                    q = shared.lock();
                    q.writer_sleeps_until = None;
                }
            }
            let closing = lock_io(&io).turn(false);
            if closing {
                let mut q = shared.lock();
                q.writer_done = true;
                shared.wake_waiters.notify_all();
                return;
            }
        }
    }

    /// Writes whatever is queued with one `pwrite` and, when `sync` is asked
    /// or anyone waits for durability, one `fdatasync`. Runs on whichever
    /// thread holds the writer. Returns whether the log is closing.
    pub fn turn(&mut self, sync: bool) -> bool {
        let (need_sync, closing) = {
            let mut q = self.shared.lock();
            if q.poisoned.is_some() {
                return q.closing;
            }
            std::mem::swap(&mut self.arena, &mut q.arena);
            std::mem::swap(&mut self.entries, &mut q.entries);
            let flush_due = self.unsynced_since.is_some_and(|t| t.elapsed() >= self.shared.opts.flush_interval);
            (sync || q.sync_wanted > self.durable_lsn || q.closing || flush_due, q.closing)
        };
        let before = self.durable_lsn;
        let mut result = if self.linked_checked.elapsed() >= LINK_CHECK { self.check_linked() } else { Ok(()) };
        if result.is_ok() {
            let (arena, entries) = (std::mem::take(&mut self.arena), std::mem::take(&mut self.entries));
            result = self.write_batch(&arena, &entries);
            (self.arena, self.entries) = (arena, entries);
        }
        if result.is_ok() && need_sync {
            result = self.sync();
        }
        self.arena.clear();
        self.entries.clear();
        match result {
            Ok(()) => {
                {
                    let mut q = self.shared.lock();
                    q.unsynced_since = self.unsynced_since;
                    q.linked_checked = self.linked_checked;
                    if self.durable_lsn > before {
                        self.shared.durable.store(self.durable_lsn, Ordering::Release);
                        self.shared.wake_waiters.notify_all();
                    }
                    // A leader's turn moves the sleeping writer's deadline: earlier for
                    // a relaxed write it left unsynced, later for a sync or a link check.
                    if let Some(until) = q.writer_sleeps_until {
                        let deadline = self.shared.writer_deadline(&q);
                        if deadline != until {
                            q.writer_sleeps_until = Some(deadline);
                            self.shared.alarm.set(Some(deadline));
                        }
                    }
                }
                if self.durable_lsn > before {
                    self.shared.emit(DurableEvent::Durable(self.durable_lsn));
                }
            }
            Err(IoFail(cause)) => self.poison(cause),
        }
        self.publish_sizes();
        closing
    }

    fn publish_sizes(&self) {
        self.shared.segments.store(self.segments.len() as u64, Ordering::Relaxed);
        self.shared.bytes.store(self.segments.values().sum(), Ordering::Relaxed);
    }

    /// New appends are refused and `stats` says poisoned from the first step;
    /// waiters are woken only after the listeners have heard, so whoever sees
    /// the poison through `wait_durable` knows every listener was told.
    fn poison(&mut self, cause: String) {
        let err = WalError::Poisoned { cause };
        {
            let mut q = self.shared.lock();
            q.poisoned = Some(err.clone());
            q.entries.clear();
            q.arena.clear();
            self.shared.poisoned.store(true, Ordering::Release);
        }
        self.shared.emit(DurableEvent::Poisoned(err));
        let _q = self.shared.lock();
        self.shared.poison_announced.store(true, Ordering::Release);
        self.shared.wake_waiters.notify_all();
    }

    /// Fails when the open segment is no longer the file at its path (deleted,
    /// or replaced), or the lock file was: what is written would be lost.
    fn check_linked(&mut self) -> Result<(), IoFail> {
        self.linked_checked = Instant::now();
        let path = self.tail_path();
        let storage = &self.shared.storage;
        if let Some((dev, ino, links, len)) = self.tail.file.identity().map_err(|e| fail("check", &path, e))? {
            // Shorter than this writer made it (preallocated, or written): cut under us. A write
            // since may have grown it again past the cut, but not back to the preallocated length.
            if len < self.tail.len {
                return Err(IoFail(format!(
                    "segment {} was truncated to {len} bytes under the log (it had {}): records in it are lost; run orderly-dispatch repair once the controller is stopped",
                    path.display(),
                    self.tail.len
                )));
            }
            let at_path = storage.identity(&path).map_err(|e| fail("check", &path, e))?;
            if links == 0 || at_path != Some((dev, ino)) {
                let what = if at_path.is_some_and(|id| id != (0, 0)) { "was replaced by another file" } else { "was deleted" };
                return Err(IoFail(format!("segment {} {what} while the log was open: records written to it would be lost; find what removes files in {}, then run orderly-dispatch doctor", path.display(), self.shared.dir.display())));
            }
            let lock = self.shared.dir.join(crate::segment::LOCK_FILE);
            if storage.identity(&lock).map_err(|e| fail("check", &lock, e))? == Some((0, 0)) {
                return Err(IoFail(format!("lock file {} was deleted while the log was open: another process could open the log beside this one", lock.display())));
            }
        }
        Ok(())
    }

    fn tail_path(&self) -> PathBuf {
        segment_path(&self.shared.dir, self.tail.seq)
    }

    fn write_batch(&mut self, arena: &[u8], entries: &[Entry]) -> Result<(), IoFail> {
        let mut seed = frame_seed(self.salt, self.tail.seq);
        let mut i = 0;
        while i < entries.len() {
            match entries[i] {
                Entry::Rec { lsn, start, len } => {
                    // A frame larger than a whole segment gets a segment of its own.
                    let pending = self.tail.offset + self.buf.len() as u64;
                    if pending > SEGMENT_HEADER_LEN as u64 && pending + frame_len(len) as u64 > self.shared.opts.segment_bytes {
                        self.flush_buf()?;
                        self.roll_over(lsn)?;
                        seed = frame_seed(self.salt, self.tail.seq);
                    }
                    encode_frame(&mut self.buf, seed, lsn, self.synced_offset as u32, FrameKind::Record, &arena[start..start + len]);
                    self.written_lsn = lsn;
                    i += 1;
                }
                Entry::Checkpoint { marker_lsn, count } => {
                    self.flush_buf()?;
                    let live = &entries[i + 1..i + 1 + count];
                    self.checkpoint(marker_lsn, arena, live)?;
                    seed = frame_seed(self.salt, self.tail.seq);
                    i += 1 + count;
                }
            }
        }
        self.flush_buf()
    }

    fn flush_buf(&mut self) -> Result<(), IoFail> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.tail_path();
        self.tail.file.write_at(self.tail.offset, &self.buf).map_err(|e| fail("write", &path, e))?;
        self.tail.offset += self.buf.len() as u64;
        self.tail.len = self.tail.len.max(self.tail.offset);
        self.segments.insert(self.tail.seq, self.tail.len);
        self.buf.clear();
        if self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), IoFail> {
        if self.synced_offset == self.tail.offset && self.durable_lsn == self.written_lsn {
            self.unsynced_since = None;
            return Ok(());
        }
        let path = self.tail_path();
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.tail.file.sync_data().map_err(|e| fail("fdatasync", &path, e))?;
        self.synced_offset = self.tail.offset;
        self.durable_lsn = self.written_lsn;
        self.unsynced_since = None;
        Ok(())
    }

    fn prealloc(&self) -> u64 {
        if self.shared.opts.preallocate {
            self.shared.opts.segment_bytes
        } else {
            0
        }
    }

    /// The number of the segment after the tail, which will start at
    /// `base_lsn`. Recovery refuses a header with counters past the limit, so
    /// the log fails closed rather than write one it could not reopen.
    fn next_segment(&self, base_lsn: u64) -> Result<u64, IoFail> {
        let seq = self.tail.seq + 1;
        if seq >= COUNTER_LIMIT || base_lsn >= COUNTER_LIMIT {
            return Err(IoFail(format!("segment number {seq} or LSN {base_lsn} is past the log's limit of {COUNTER_LIMIT}")));
        }
        Ok(seq)
    }

    /// Seals the tail (synced whole, so damage in it is always corruption) and
    /// starts the next segment.
    fn roll_over(&mut self, next_lsn: u64) -> Result<(), IoFail> {
        self.sync()?;
        let seq = self.next_segment(next_lsn)?;
        let header = SegmentHeader { version: FORMAT_VERSION, kind: SegmentKind::Log, seq, salt: self.salt, base_lsn: next_lsn };
        let dir = self.shared.dir.clone();
        let seg = create_segment(&*self.shared.storage, &dir, &header, &[], self.prealloc(), "segment")
            .map_err(|e| fail("create segment", &segment_path(&dir, seq), e))?;
        self.tail = Tail { seq, file: seg.file, offset: seg.write_offset, len: seg.len };
        self.synced_offset = seg.write_offset;
        self.segments.insert(seq, seg.len);
        Ok(())
    }

    /// Writes the live set as a new checkpoint segment, then removes every
    /// older segment. Until the rename is durable the old state is what a
    /// crash recovers; from then on the new one.
    fn checkpoint(&mut self, marker_lsn: u64, arena: &[u8], live: &[Entry]) -> Result<(), IoFail> {
        let seq = self.next_segment(marker_lsn)?;
        let seed = frame_seed(self.salt, seq);
        let mut body = Vec::new();
        encode_frame(&mut body, seed, marker_lsn, 0, FrameKind::CheckpointMarker, &[]);
        let mut last = marker_lsn;
        for e in live {
            if let Entry::Rec { lsn, start, len } = *e {
                encode_frame(&mut body, seed, lsn, 0, FrameKind::Record, &arena[start..start + len]);
                last = lsn;
            }
        }
        let header = SegmentHeader { version: FORMAT_VERSION, kind: SegmentKind::Checkpoint, seq, salt: self.salt, base_lsn: marker_lsn };
        let dir = self.shared.dir.clone();
        let seg = create_segment(&*self.shared.storage, &dir, &header, &body, self.prealloc(), "checkpoint")
            .map_err(|e| fail("write checkpoint", &segment_path(&dir, seq), e))?;
        let old: Vec<u64> = self.segments.keys().copied().collect();
        self.tail = Tail { seq, file: seg.file, offset: seg.write_offset, len: seg.len };
        self.synced_offset = seg.write_offset;
        self.segments.clear();
        self.segments.insert(seq, seg.len);
        for s in old {
            let p = segment_path(&dir, s);
            self.shared.storage.remove(&p).map_err(|e| fail("remove", &p, e))?;
        }
        self.shared.storage.sync_dir(&dir).map_err(|e| fail("sync directory", &dir, e))?;
        crate::crash_point("checkpoint:deleted");
        // Records queued before the checkpoint are superseded by it; those
        // after it are not written yet. The live set itself is synced.
        self.written_lsn = last;
        self.durable_lsn = last;
        Ok(())
    }
}
