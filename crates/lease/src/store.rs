//! The durable lease store: the lease map made durable by a write-ahead log.
//!
//! Acquire inserts into the map, then appends an ACQUIRE record the caller
//! waits to see durable; if the log refuses, the insert is rolled back.
//! Completion appends a durable COMPLETE record (the audit outbox); ack and
//! release append relaxed records. lastRun and the token high-water mark are
//! rebuilt from the records, and a checkpoint rewrites the log as the live
//! set once dead records outweigh it, so disk use follows the live set (G7).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use orderly_wal::{FsStorage, Inspection, OpenReport, Record, Storage, Wal, WalError, WalOptions, WalStats};

use crate::clock::{Clock, SystemClock};
use crate::error::{LeaseError, Result};
use crate::map::{check_cap, AcquireOptions, Acquired, LeaseInfo, LeaseMap, TOKEN_LIMIT};
use crate::record::{acquire_bytes, Rec};
use crate::tokens;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub default_ttl_ms: u64,
    pub gates: Vec<(String, u64)>,
    pub wal: WalOptions,
    /// Dead bytes that trigger a checkpoint (and at least twice the live set).
    pub compact_after_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            default_ttl_ms: 10 * 60 * 1000,
            gates: Vec::new(),
            // Small segments: each checkpoint writes (and preallocates) one,
            // and a reopen replays at most the dead bytes since the last.
            wal: WalOptions { segment_bytes: 1 << 20, ..WalOptions::default() },
            compact_after_bytes: 2 << 20,
        }
    }
}

/// A completed run waiting for its audit record to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The lease's fencing token: unique, so the id of the fire's record.
    pub id: u64,
    pub key: String,
    pub token: u64,
    pub completed_at: u64,
    pub outcome: Vec<u8>,
}

/// What the log held at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Leases acquired and not released before the store was last closed or
    /// crashed. They stay held until the caller releases them.
    pub held: Vec<LeaseInfo>,
    /// Completions never acknowledged by the audit sink.
    pub outbox: Vec<OutboxEntry>,
    pub last_run: Vec<(String, u64)>,
    /// Event cursors per key, sorted by key.
    pub cursors: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub held: u64,
    pub outbox: u64,
    pub checkpoints: u64,
    pub high_water: u64,
    pub wal: Option<WalStats>,
}

pub struct LeaseStore {
    map: LeaseMap,
    wal: Option<Wal>,
    outbox: papaya::HashMap<u64, Arc<OutboxEntry>>,
    /// Event cursors: few keys, written once per event-triggered fire, so a
    /// plain lock is enough.
    cursors: Mutex<HashMap<String, u64>>,
    recovered: Recovered,
    default_ttl_ms: u64,
    compact_after: u64,
    /// Appends hold it shared and a checkpoint exclusively, so no record can
    /// land between the snapshot being taken and the log being replaced by it.
    snapshot: RwLock<()>,
    compacting: AtomicBool,
    since_checkpoint: AtomicU64,
    live_estimate: AtomicU64,
    checkpoints: AtomicU64,
    closed: AtomicBool,
    /// The token reservation file's storage and directory (durable stores).
    tokens: Option<(Arc<dyn Storage>, std::path::PathBuf)>,
    reserved: AtomicU64,
    reserving: Mutex<()>,
    repair: RepairReport,
}

/// What an open had to mend: what the log cut (a torn tail, or with
/// `repair` the damage and all after it) and, where the log was lost,
/// the tokens it skipped so no fence is handed out twice.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    pub wal: Option<OpenReport>,
    /// (the log's highest token, the reservation tokens now continue above).
    pub lost_tokens: Option<(u64, u64)>,
}

fn tokens_io(op: &'static str, dir: &Path, e: std::io::Error) -> LeaseError {
    LeaseError::Wal(WalError::Io { op, path: tokens::path(dir), message: e.to_string(), kind: e.kind() })
}

/// What the log says, before it is loaded into the concurrent maps.
#[derive(Default)]
struct Replayed {
    held: HashMap<String, (LeaseInfo, bool)>,
    outbox: BTreeMap<u64, OutboxEntry>,
    last_run: HashMap<String, u64>,
    cursors: HashMap<String, u64>,
    high_water: u64,
    records: u64,
    bytes: u64,
}

/// Applies the log's records in order. Tokens make it order-insensitive: a
/// release or completion only touches the lease carrying its token.
fn replay(records: Vec<Record>) -> Result<Replayed> {
    let mut r = Replayed::default();
    for rec in records {
        r.records += 1;
        r.bytes += framed(rec.payload.len());
        match Rec::decode(&rec.payload).map_err(|detail| LeaseError::Malformed { lsn: rec.lsn, detail })? {
            Rec::Acquire(info) => {
                r.high_water = r.high_water.max(info.token);
                bump(&mut r.last_run, &info.key, info.acquired_at);
                // A higher token took over; a lower one is an old, replaced lease.
                if r.held.get(&info.key).is_none_or(|(h, _)| h.token < info.token) {
                    r.held.insert(info.key.clone(), (info, false));
                }
            }
            Rec::Release { key, token } => {
                if r.held.get(&key).is_some_and(|(h, _)| h.token == token) {
                    r.held.remove(&key);
                }
            }
            Rec::Complete { key, token, completed_at, outcome } => {
                r.high_water = r.high_water.max(token);
                if let Some((h, done)) = r.held.get_mut(&key) {
                    if h.token == token {
                        *done = true;
                    }
                }
                r.outbox.insert(token, OutboxEntry { id: token, key, token, completed_at, outcome });
            }
            Rec::Ack { token } => {
                r.outbox.remove(&token);
            }
            Rec::LastRun { key, at } => bump(&mut r.last_run, &key, at),
            Rec::HighWater { token } => r.high_water = r.high_water.max(token),
            Rec::Cursor { key, seq } => bump(&mut r.cursors, &key, seq),
        }
    }
    Ok(r)
}

fn bump(runs: &mut HashMap<String, u64>, key: &str, at: u64) {
    match runs.get_mut(key) {
        Some(t) => *t = (*t).max(at),
        None => {
            runs.insert(key.to_owned(), at);
        }
    }
}

/// Record size as the log stores it (frame header and padding included).
fn framed(len: usize) -> u64 {
    (24 + len as u64 + 7) & !7
}

impl LeaseStore {
    /// Opens a durable store in `dir`, or an in-memory one when `dir` is None.
    pub fn open(dir: Option<&Path>, opts: StoreOptions) -> Result<LeaseStore> {
        Self::open_with(dir, opts, Arc::new(FsStorage), Arc::new(SystemClock))
    }

    pub fn open_with(dir: Option<&Path>, opts: StoreOptions, storage: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Result<LeaseStore> {
        crate::map::check_ttl(opts.default_ttl_ms)?;
        for (g, cap) in &opts.gates {
            check_cap(g, *cap)?;
        }
        let wal = match dir {
            Some(d) => Some(Wal::open_with_storage(d, opts.wal.clone(), storage.clone())?),
            None => None,
        };
        let replayed = match &wal {
            Some(w) => replay(w.take_records())?,
            None => Replayed::default(),
        };
        let mut repair = RepairReport { wal: wal.as_ref().map(|w| w.open_report()), lost_tokens: None };
        let reserved = match dir {
            Some(d) => tokens::read(&storage, d).map_err(|e| tokens_io("read", d, e))?,
            None => 0,
        };
        let mut high_water = replayed.high_water;
        if tokens::log_lost(reserved, replayed.records, replayed.high_water) {
            if !opts.wal.repair {
                return Err(LeaseError::Lost { dir: dir.map(|d| d.display().to_string()).unwrap_or_default(), log_high_water: replayed.high_water, reserved });
            }
            repair.lost_tokens = Some((replayed.high_water, reserved));
        }
        // Every open continues above the reservation, not above the log: a log that lost
        // its newest records (a segment deleted, an older copy restored) cannot be told from
        // one whose last fences were never handed out, and a fence must never come twice (G8).
        high_water = high_water.max(reserved.min(TOKEN_LIMIT - 1));
        let map = LeaseMap::with_capacity(clock, replayed.held.len(), replayed.last_run.len());
        for (g, cap) in &opts.gates {
            map.set_gate(g, *cap)?;
        }
        map.raise_high_water(high_water);
        let mut held: Vec<(LeaseInfo, bool)> = replayed.held.into_values().collect();
        held.sort_by_key(|(h, _)| h.token);
        let mut last_run: Vec<(String, u64)> = replayed.last_run.into_iter().collect();
        last_run.sort();
        let mut cursors: Vec<(String, u64)> = replayed.cursors.iter().map(|(k, s)| (k.clone(), *s)).collect();
        cursors.sort();
        let recovered = Recovered {
            held: held.iter().map(|(h, _)| h.clone()).collect(),
            outbox: replayed.outbox.values().cloned().collect(),
            last_run: last_run.clone(),
            cursors,
        };
        let live_records = (held.len() + recovered.outbox.len() + last_run.len() + recovered.cursors.len() + 1) as u64;
        map.restore(held);
        map.restore_last_runs(last_run);
        let outbox = papaya::HashMap::with_capacity(replayed.outbox.len());
        {
            let pinned = outbox.pin();
            for (id, e) in replayed.outbox {
                pinned.insert(id, Arc::new(e));
            }
        }
        // Live bytes, estimated from the share of records still live.
        let live_estimate = replayed.bytes * live_records.min(replayed.records) / replayed.records.max(1);
        let store = LeaseStore {
            map,
            wal,
            outbox,
            cursors: Mutex::new(replayed.cursors),
            recovered,
            default_ttl_ms: opts.default_ttl_ms,
            compact_after: opts.compact_after_bytes,
            snapshot: RwLock::new(()),
            compacting: AtomicBool::new(false),
            since_checkpoint: AtomicU64::new(replayed.bytes),
            live_estimate: AtomicU64::new(live_estimate),
            checkpoints: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            tokens: dir.map(|d| (storage.clone(), d.to_path_buf())),
            reserved: AtomicU64::new(reserved),
            reserving: Mutex::new(()),
            repair,
        };
        if let (Some(w), Some(d)) = (&store.wal, dir) {
            // The jump is durable in the log before the new reservation is written: a reservation
            // exists only once a record is durable, so an empty log beside one means a lost log.
            let lsn = w.append(&Rec::HighWater { token: high_water }.encode())?;
            w.wait_durable(lsn)?;
            let next = (high_water + tokens::BLOCK).min(TOKEN_LIMIT - 1);
            tokens::write(&storage, d, next).map_err(|e| tokens_io("write", d, e))?;
            store.reserved.store(next, Ordering::Release);
        }
        store.maybe_compact();
        Ok(store)
    }

    fn usable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LeaseError::Closed);
        }
        Ok(())
    }

    fn append(&self, bytes: &[u8], durable: bool) -> Result<Option<u64>> {
        let Some(wal) = &self.wal else { return Ok(None) };
        self.since_checkpoint.fetch_add(framed(bytes.len()), Ordering::Relaxed);
        let lsn = if durable { wal.append(bytes)? } else { wal.append_relaxed(bytes)? };
        Ok(Some(lsn))
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `key` if it is free or expired and its group has room. A granted
    /// lease comes with the LSN to wait for before acting on it (durable
    /// stores); if that wait fails, call [`LeaseStore::rollback`].
    pub fn acquire(&self, key: &str, ttl_ms: Option<u64>, group: Option<String>, meta: Option<Vec<u8>>) -> Result<(Acquired, Option<u64>)> {
        self.usable()?;
        // A key whose release was lost to the poison still looks held: say
        // why nothing can be acquired rather than "held".
        if let Some(err) = self.wal.as_ref().and_then(|w| w.poison_error()) {
            return Err(err.into());
        }
        let ttl_ms = ttl_ms.unwrap_or(self.default_ttl_ms);
        let result = {
            let _shared = self.shared();
            let got = self.map.acquire(key, AcquireOptions { ttl_ms, group, meta })?;
            if let Acquired::Granted(info) = &got {
                if let Err(e) = self.reserve(info.token) {
                    self.map.rollback(key, info.token);
                    return Err(e);
                }
            }
            let lsn = match &got {
                Acquired::Granted(info) => match self.append(&acquire_bytes(info), true) {
                    Ok(lsn) => lsn,
                    Err(e) => {
                        self.map.rollback(key, info.token);
                        return Err(e);
                    }
                },
                _ => None,
            };
            (got, lsn)
        };
        self.maybe_compact();
        Ok(result)
    }

    /// Keeps the reservation ahead of `token`: one durable write per block.
    fn reserve(&self, token: u64) -> Result<()> {
        let Some((storage, dir)) = &self.tokens else { return Ok(()) };
        if token <= self.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.reserving.lock().unwrap_or_else(|p| p.into_inner());
        if token <= self.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let next = (token + tokens::BLOCK).min(TOKEN_LIMIT - 1);
        tokens::write(storage, dir, next).map_err(|e| tokens_io("write", dir, e))?;
        self.reserved.store(next, Ordering::Release);
        Ok(())
    }

    /// What the open mended (cut bytes, lost tokens skipped).
    pub fn repair_report(&self) -> &RepairReport {
        &self.repair
    }

    /// Undoes a granted acquire whose record never became durable.
    pub fn rollback(&self, key: &str, token: u64) {
        self.map.rollback(key, token);
    }

    pub fn renew(&self, key: &str, token: u64, ttl_ms: Option<u64>) -> Result<LeaseInfo> {
        self.usable()?;
        Ok((*self.map.renew(key, token, ttl_ms.unwrap_or(self.default_ttl_ms))?).clone())
    }

    /// Records the run's outcome durably (the audit outbox) before anything
    /// is sent to the database.
    pub fn complete(&self, key: &str, token: u64, outcome: Vec<u8>) -> Result<(OutboxEntry, Option<u64>)> {
        self.usable()?;
        let result = {
            let _shared = self.shared();
            self.map.complete(key, token)?;
            let entry = OutboxEntry { id: token, key: key.to_owned(), token, completed_at: self.map.clock().wall_ms(), outcome };
            self.outbox.pin().insert(token, Arc::new(entry.clone()));
            let rec = Rec::Complete { key: entry.key.clone(), token, completed_at: entry.completed_at, outcome: entry.outcome.clone() };
            match self.append(&rec.encode(), true) {
                Ok(lsn) => (entry, lsn),
                Err(e) => {
                    self.outbox.pin().remove(&token);
                    return Err(e);
                }
            }
        };
        self.maybe_compact();
        Ok(result)
    }

    /// The audit sink committed this entry; acknowledging twice is harmless.
    pub fn ack(&self, id: u64) -> Result<()> {
        self.usable()?;
        if id == 0 || id > self.map.high_water() {
            return Err(LeaseError::InvalidArg(format!("unknown outbox entry {id}")));
        }
        {
            let _shared = self.shared();
            if self.outbox.pin().remove(&id).is_some() {
                self.append(&Rec::Ack { token: id }.encode(), false)?;
            }
        }
        self.maybe_compact();
        Ok(())
    }

    /// Frees the key. The record is relaxed unless `durable`; the LSN to wait
    /// for is returned either way for durable stores.
    pub fn release(&self, key: &str, token: u64, durable: bool) -> Result<Option<u64>> {
        self.usable()?;
        let lsn = {
            let _shared = self.shared();
            self.map.release(key, token)?;
            self.append(&Rec::Release { key: key.to_owned(), token }.encode(), durable)?
        };
        self.maybe_compact();
        Ok(lsn)
    }

    /// Raises `key`'s event cursor to `seq` (a lower or equal `seq` changes
    /// nothing and writes nothing). The record is relaxed unless `durable`;
    /// the LSN to wait for is returned when a record was written.
    pub fn set_cursor(&self, key: &str, seq: u64, durable: bool) -> Result<Option<u64>> {
        self.usable()?;
        let lsn = {
            let _shared = self.shared();
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            if cursors.get(key).is_some_and(|&at| at >= seq) {
                return Ok(None);
            }
            // Appended under the map lock so two raises reach the log in the
            // order they reach the map; replay keeps the largest anyway.
            let lsn = self.append(&Rec::Cursor { key: key.to_owned(), seq }.encode(), durable)?;
            cursors.insert(key.to_owned(), seq);
            lsn
        };
        self.maybe_compact();
        Ok(lsn)
    }

    /// Raises `key`'s lastRun to `at` (an order renamed keeps its cadence);
    /// returns the LSN that makes it durable.
    pub fn carry_last_run(&self, key: &str, at: u64) -> Result<Option<u64>> {
        self.usable()?;
        let lsn = {
            let _shared = self.shared();
            self.map.note_last_run(key, at);
            self.append(&Rec::LastRun { key: key.to_owned(), at }.encode(), true)?
        };
        self.maybe_compact();
        Ok(lsn)
    }

    pub fn cursor(&self, key: &str) -> Option<u64> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }

    pub fn holder(&self, key: &str) -> Option<LeaseInfo> {
        self.map.holder(key)
    }

    pub fn in_flight(&self, group: Option<&str>) -> u64 {
        self.map.in_flight(group)
    }

    pub fn set_gate(&self, group: &str, cap: u64) -> Result<()> {
        self.map.set_gate(group, cap)
    }

    pub fn gate_cap(&self, group: &str) -> Option<u64> {
        self.map.gate_cap(group)
    }

    pub fn last_run(&self, key: &str) -> Option<u64> {
        self.map.last_run(key)
    }

    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    pub fn outbox(&self) -> Vec<OutboxEntry> {
        let mut v: Vec<OutboxEntry> = self.outbox.pin().iter().map(|(_, e)| (**e).clone()).collect();
        v.sort_by_key(|e| e.id);
        v
    }

    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    pub fn is_durable(&self) -> bool {
        self.wal.is_some()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            held: self.map.in_flight(None),
            outbox: self.outbox.len() as u64,
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            high_water: self.map.high_water(),
            wal: self.wal.as_ref().map(|w| w.stats()),
        }
    }

    /// The live set as log records: everything recovery needs, nothing else.
    fn snapshot_records(&self) -> Vec<Vec<u8>> {
        let mut v = vec![Rec::HighWater { token: self.map.high_water() }.encode()];
        let mut held = self.map.held();
        held.sort_by_key(|h| h.token);
        v.extend(held.iter().map(acquire_bytes));
        for e in self.outbox() {
            v.push(Rec::Complete { key: e.key, token: e.token, completed_at: e.completed_at, outcome: e.outcome }.encode());
        }
        let mut runs = self.map.last_runs();
        runs.sort();
        v.extend(runs.into_iter().map(|(key, at)| Rec::LastRun { key, at }.encode()));
        let mut cursors: Vec<(String, u64)> = self.cursors.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, s)| (k.clone(), *s)).collect();
        cursors.sort();
        v.extend(cursors.into_iter().map(|(key, seq)| Rec::Cursor { key, seq }.encode()));
        v
    }

    /// Rewrites the log as the live set once dead records outweigh it.
    fn maybe_compact(&self) {
        let Some(wal) = &self.wal else { return };
        let since = self.since_checkpoint.load(Ordering::Relaxed);
        if since < self.compact_after || since < 2 * self.live_estimate.load(Ordering::Relaxed) {
            return;
        }
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let _exclusive = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
            let live = self.snapshot_records();
            let size: u64 = live.iter().map(|r| framed(r.len())).sum();
            if wal.checkpoint(live).is_ok() {
                self.since_checkpoint.store(0, Ordering::Relaxed);
                self.live_estimate.store(size, Ordering::Relaxed);
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.compacting.store(false, Ordering::Release);
    }

    /// Forces a checkpoint now; returns the LSN that makes it durable.
    pub fn compact(&self) -> Result<Option<u64>> {
        self.usable()?;
        let Some(wal) = &self.wal else { return Ok(None) };
        let _exclusive = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let live = self.snapshot_records();
        let size: u64 = live.iter().map(|r| framed(r.len())).sum();
        let lsn = wal.checkpoint(live)?;
        self.since_checkpoint.store(0, Ordering::Relaxed);
        self.live_estimate.store(size, Ordering::Relaxed);
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(Some(lsn))
    }

    /// Syncs the log and releases the directory. Leases still held stay
    /// held in the log: the next open reports them.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(w) = &self.wal {
            w.close()?;
        }
        Ok(())
    }
}

impl Drop for LeaseStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A read-only look at a store's directory, taken without its lock (doctor).
#[derive(Debug, Clone)]
pub struct StoreInspection {
    pub segments: u64,
    pub bytes: u64,
    pub records: u64,
    /// Records a checkpoint would keep.
    pub live_records: u64,
    pub held: Vec<LeaseInfo>,
    pub outbox: Vec<OutboxEntry>,
    pub last_run: Vec<(String, u64)>,
    pub cursors: Vec<(String, u64)>,
    pub high_water: u64,
    /// Bytes the next open would cut as a torn tail, and why.
    pub would_truncate: u64,
    pub reason: Option<String>,
    pub leftover_files: u64,
    /// The token reservation beside the log, and whether the log fell behind it (records lost).
    pub reserved: u64,
    pub lost: bool,
}

/// Reads `dir` as an open would, changing nothing.
pub fn inspect(dir: &Path) -> Result<StoreInspection> {
    let Inspection { segments, bytes, leftover_files, records, would_truncate, reason } = orderly_wal::inspect(&FsStorage, dir)?;
    let fs: Arc<dyn Storage> = Arc::new(FsStorage);
    let reserved = tokens::read(&fs, dir).map_err(|e| tokens_io("read", dir, e))?;
    let total = records.len() as u64;
    let r = replay(records)?;
    let mut held: Vec<LeaseInfo> = r.held.into_values().map(|(h, _)| h).collect();
    held.sort_by_key(|h| h.token);
    let mut last_run: Vec<(String, u64)> = r.last_run.into_iter().collect();
    last_run.sort();
    let mut cursors: Vec<(String, u64)> = r.cursors.into_iter().collect();
    cursors.sort();
    let outbox: Vec<OutboxEntry> = r.outbox.into_values().collect();
    Ok(StoreInspection {
        segments,
        bytes,
        records: total,
        live_records: (held.len() + outbox.len() + last_run.len() + cursors.len() + 1) as u64,
        held,
        outbox,
        last_run,
        cursors,
        high_water: r.high_water,
        would_truncate,
        reason,
        leftover_files,
        lost: tokens::log_lost(reserved, total, r.high_water),
        reserved,
    })
}
