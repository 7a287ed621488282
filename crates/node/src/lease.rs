//! `NativeLeaseStore`: the JS face of `orderly_lease::LeaseStore`.
//!
//! The hot calls (`acquire`, `release`, `complete`) return a small status and
//! write numbers into a caller-owned `Float64Array`, so no JS object is built
//! per call; the TypeScript layer shapes the results.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, BigInt, Buffer, Either, Env, Float64Array, Float64ArraySlice, Object, Task, Uint8Array, Uint8ArraySlice};
use napi_derive::napi;
use orderly_lease::{Acquired, LeaseInfo, LeaseStore, OutboxEntry, StoreOptions, SystemClock};
use orderly_wal::sim::SimStorage;
use orderly_wal::ListenerId;

use crate::error::{from_panic, into_task_error, invalid_arg, lease_error, Code, Error, Result};
use crate::events::{forward_events_when, ref_events, unref_events, want, EventFn};
use crate::options::{gates_option, integer_option, whole_number};
use crate::sim::storage_option;
use crate::wal::{bytes, wal_options_from};

/// `acquire` results.
const GRANTED: u32 = 0;
const HELD: u32 = 1;
const GATE_FULL: u32 = 2;
/// Where no LSN applies (in-memory store, relaxed record).
const NO_LSN: f64 = -1.0;

fn store_options(options: Option<&Object>) -> Result<StoreOptions> {
    let defaults = StoreOptions::default();
    let mut opts = StoreOptions { wal: wal_options_from(options, defaults.wal.clone())?, ..defaults };
    let Some(options) = options else {
        return Ok(opts);
    };
    if let Some(ttl) = integer_option(options, "defaultTtlMs")? {
        opts.default_ttl_ms = ttl;
    }
    if let Some(bytes) = integer_option(options, "compactAfterBytes")? {
        opts.compact_after_bytes = bytes;
    }
    opts.gates = gates_option(options, "gates")?;
    Ok(opts)
}

fn lsn_number(lsn: Option<u64>) -> f64 {
    lsn.map_or(NO_LSN, |l| l as f64)
}

fn out_slots<'a>(out: &'a mut Float64ArraySlice, n: usize) -> Result<&'a mut [f64]> {
    // SAFETY: the JS thread is blocked in this call; nothing else touches the array.
    let slots = unsafe { out.as_mut() };
    if slots.len() < n {
        return Err(invalid_arg(format!("result array needs {n} slots")));
    }
    Ok(slots)
}

#[napi(object, object_from_js = false)]
pub struct JsLeaseInfo {
    pub key: String,
    pub token: BigInt,
    pub acquired_at: f64,
    pub expires_at: f64,
    pub group: Option<String>,
    pub meta: Option<Buffer>,
}

impl From<LeaseInfo> for JsLeaseInfo {
    fn from(l: LeaseInfo) -> Self {
        JsLeaseInfo {
            key: l.key,
            token: BigInt::from(l.token),
            acquired_at: l.acquired_at as f64,
            expires_at: l.expires_at as f64,
            group: l.group,
            meta: l.meta.map(Buffer::from),
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct JsOutboxEntry {
    pub id: BigInt,
    pub key: String,
    pub token: BigInt,
    pub completed_at: f64,
    pub outcome: Buffer,
}

impl From<OutboxEntry> for JsOutboxEntry {
    fn from(e: OutboxEntry) -> Self {
        JsOutboxEntry { id: BigInt::from(e.id), key: e.key, token: BigInt::from(e.token), completed_at: e.completed_at as f64, outcome: e.outcome.into() }
    }
}

/// Recovered leases as columns: building one JS object per lease through
/// napi costs about a microsecond each, and a store may recover 10,000.
#[napi(object, object_from_js = false)]
pub struct JsHeldColumns {
    pub keys: Vec<String>,
    pub tokens: Float64Array,
    pub acquired_at: Float64Array,
    pub expires_at: Float64Array,
    pub groups: Vec<Option<String>>,
    /// All metas back to back; lease i's is `meta[metaStart[i]..metaStart[i+1]]`,
    /// absent where `hasMeta[i]` is 0.
    pub meta: Buffer,
    pub meta_start: Float64Array,
    pub has_meta: Uint8Array,
}

#[napi(object, object_from_js = false)]
pub struct JsRecovered {
    pub held: JsHeldColumns,
    pub outbox: Vec<JsOutboxEntry>,
    pub last_run_keys: Vec<String>,
    pub last_run_at: Float64Array,
    pub cursor_keys: Vec<String>,
    pub cursor_seqs: Vec<BigInt>,
}

#[napi(object, object_from_js = false)]
pub struct JsRepairReport {
    pub records: f64,
    pub bytes_truncated: f64,
    pub reason: Option<String>,
    pub lost_log_high_water: Option<f64>,
    pub lost_reserved: Option<f64>,
}

#[napi(object, object_from_js = false)]
pub struct JsStoreStats {
    pub held: f64,
    pub outbox: f64,
    pub checkpoints: f64,
    pub wal_segments: f64,
    pub wal_bytes: f64,
    pub wal_syncs: f64,
    pub poisoned: bool,
    /// Why the log refused, once it has.
    pub poison_reason: Option<String>,
}

pub struct OpenStoreTask {
    dir: Option<String>,
    options: StoreOptions,
    storage: Option<SimStorage>,
    events: Arc<EventFn>,
    wanted: Arc<AtomicBool>,
}

impl Task for OpenStoreTask {
    type Output = std::result::Result<(Arc<LeaseStore>, Option<ListenerId>), Error>;
    type JsValue = NativeLeaseStore;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let open = AssertUnwindSafe(|| {
            let opts = std::mem::take(&mut self.options);
            let store = match (&self.dir, self.storage.take()) {
                // A simulated disk is private to its opener: no sharing by path.
                (Some(dir), Some(sim)) => Arc::new(LeaseStore::open_with(Some(Path::new(dir)), opts, Arc::new(sim), Arc::new(SystemClock)).map_err(lease_error)?),
                (Some(dir), None) => orderly_lease::open_shared(Path::new(dir), opts).map_err(lease_error)?,
                (None, _) => Arc::new(LeaseStore::open(None, opts).map_err(lease_error)?),
            };
            let listener = store.wal().map(|w| w.add_listener(forward_events_when(self.events.clone(), self.wanted.clone())));
            Ok((store, listener))
        });
        Ok(catch_unwind(open).unwrap_or_else(|panic| Err(from_panic(panic))))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeLeaseStore> {
        match output {
            Ok((store, listener)) => Ok(NativeLeaseStore { store: Some(store), listener, events: Some(self.events.clone()), wanted: self.wanted.clone() }),
            Err(err) => Err(into_task_error(&env, err)),
        }
    }
}

pub struct CloseStoreTask {
    store: Option<Arc<LeaseStore>>,
    listener: Option<ListenerId>,
    events: Option<Arc<EventFn>>,
}

impl Task for CloseStoreTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let close = AssertUnwindSafe(|| {
            if let Some(store) = self.store.take() {
                if let (Some(w), Some(l)) = (store.wal(), self.listener.take()) {
                    w.remove_listener(l);
                }
                // The last handle of this process closes the log (sync + join).
                drop(store);
            }
            self.events = None;
        });
        let _ = catch_unwind(close);
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

/// One thread's handle to a lease store; every thread opening the same
/// directory shares one store.
#[napi]
pub struct NativeLeaseStore {
    store: Option<Arc<LeaseStore>>,
    listener: Option<ListenerId>,
    events: Option<Arc<EventFn>>,
    /// JS waits on a watermark: only then are they sent (a poisoned log always is).
    wanted: Arc<AtomicBool>,
}

impl NativeLeaseStore {
    pub(crate) fn store(&self) -> Result<&Arc<LeaseStore>> {
        self.store.as_ref().ok_or_else(|| lease_error(orderly_lease::LeaseError::Closed))
    }
}

#[napi]
impl NativeLeaseStore {
    #[napi(
        catch_unwind,
        ts_args_type = "dir: string | null, options: { defaultTtlMs?: number; gates?: Record<string, number>; segmentBytes?: number; flushIntervalMs?: number; compactAfterBytes?: number; repair?: boolean; storage?: SimDisk } | undefined | null, onEvent: (err: Error | null, durableLsn: bigint) => void",
        ts_return_type = "Promise<NativeLeaseStore>"
    )]
    pub fn open(dir: Option<String>, options: Option<Object>, on_event: EventFn) -> Result<AsyncTask<OpenStoreTask>> {
        let storage = options.as_ref().map(storage_option).transpose()?.flatten();
        if dir.is_none() && storage.is_some() {
            return Err(invalid_arg("options.storage needs a directory (on that disk) to open the store in"));
        }
        let options = store_options(options.as_ref())?;
        Ok(AsyncTask::new(OpenStoreTask { dir, options, storage, events: Arc::new(on_event), wanted: Arc::new(AtomicBool::new(false)) }))
    }

    /// JS waits on a watermark: the process is kept alive and watermarks are
    /// sent until `unref`. Read `durableLsn` again after this call: a sync
    /// that ended just before it was not told.
    #[napi(catch_unwind, js_name = "ref")]
    pub fn ref_events(&self, env: Env) -> Result<()> {
        want(&self.wanted, true);
        ref_events(&env, self.events.as_deref())
    }

    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        want(&self.wanted, false);
        unref_events(&env, self.events.as_deref())
    }

    #[napi(getter, catch_unwind)]
    pub fn durable(&self) -> Result<bool> {
        Ok(self.store()?.is_durable())
    }

    #[napi(catch_unwind)]
    pub fn durable_lsn(&self) -> Result<u64> {
        Ok(self.store()?.wal().map_or(0, |w| w.durable_lsn()))
    }

    /// The last record appended so far; 0 for a store without a log.
    #[napi(catch_unwind)]
    pub fn appended_lsn(&self) -> Result<u64> {
        Ok(self.store()?.wal().map_or(0, |w| w.appended_lsn()))
    }

    #[napi(catch_unwind)]
    pub fn recovered(&self) -> Result<JsRecovered> {
        let r = self.store()?.recovered();
        let mut meta = Vec::new();
        let mut meta_start = Vec::with_capacity(r.held.len() + 1);
        let mut has_meta = Vec::with_capacity(r.held.len());
        for h in &r.held {
            meta_start.push(meta.len() as f64);
            has_meta.push(h.meta.is_some() as u8);
            meta.extend_from_slice(h.meta.as_deref().unwrap_or_default());
        }
        meta_start.push(meta.len() as f64);
        let column = |f: &dyn Fn(&LeaseInfo) -> f64| Float64Array::new(r.held.iter().map(f).collect());
        Ok(JsRecovered {
            held: JsHeldColumns {
                keys: r.held.iter().map(|h| h.key.clone()).collect(),
                tokens: column(&|h| h.token as f64),
                acquired_at: column(&|h| h.acquired_at as f64),
                expires_at: column(&|h| h.expires_at as f64),
                groups: r.held.iter().map(|h| h.group.clone()).collect(),
                meta: meta.into(),
                meta_start: Float64Array::new(meta_start),
                has_meta: Uint8Array::new(has_meta),
            },
            outbox: r.outbox.iter().cloned().map(Into::into).collect(),
            last_run_keys: r.last_run.iter().map(|(k, _)| k.clone()).collect(),
            last_run_at: Float64Array::new(r.last_run.iter().map(|(_, at)| *at as f64).collect()),
            cursor_keys: r.cursors.iter().map(|(k, _)| k.clone()).collect(),
            cursor_seqs: r.cursors.iter().map(|(_, s)| BigInt::from(*s)).collect(),
        })
    }

    /// Returns 0 granted, 1 held, 2 gate full. When granted, `out` receives
    /// `[token, acquiredAt, expiresAt, lsn]` (lsn -1 for in-memory stores).
    #[napi(catch_unwind)]
    pub fn acquire(
        &self,
        key: String,
        ttl_ms: Option<f64>,
        group: Option<String>,
        meta: Option<Either<Uint8ArraySlice, String>>,
        mut out: Float64ArraySlice,
    ) -> Result<u32> {
        let ttl = ttl_ms.map(|t| whole_number("ttlMs", t)).transpose()?;
        let meta = meta.as_ref().map(|m| bytes(m).to_vec());
        let (got, lsn) = self.store()?.acquire(&key, ttl, group, meta).map_err(lease_error)?;
        match got {
            Acquired::Granted(l) => {
                let slots = out_slots(&mut out, 4)?;
                slots[0] = l.token as f64;
                slots[1] = l.acquired_at as f64;
                slots[2] = l.expires_at as f64;
                slots[3] = lsn_number(lsn);
                Ok(GRANTED)
            }
            Acquired::Held => Ok(HELD),
            Acquired::GateFull => Ok(GATE_FULL),
        }
    }

    /// Undoes a granted acquire whose record did not become durable.
    #[napi(catch_unwind)]
    pub fn rollback(&self, key: String, token: f64) -> Result<()> {
        self.store()?.rollback(&key, whole_number("token", token)?);
        Ok(())
    }

    /// Returns the new expiresAt.
    #[napi(catch_unwind)]
    pub fn renew(&self, key: String, token: f64, ttl_ms: Option<f64>) -> Result<f64> {
        let ttl = ttl_ms.map(|t| whole_number("ttlMs", t)).transpose()?;
        let info = self.store()?.renew(&key, whole_number("token", token)?, ttl).map_err(lease_error)?;
        Ok(info.expires_at as f64)
    }

    /// `out` receives `[completedAt, lsn]`.
    #[napi(catch_unwind)]
    pub fn complete(&self, key: String, token: f64, outcome: Either<Uint8ArraySlice, String>, mut out: Float64ArraySlice) -> Result<()> {
        let (entry, lsn) = self.store()?.complete(&key, whole_number("token", token)?, bytes(&outcome).to_vec()).map_err(lease_error)?;
        let slots = out_slots(&mut out, 2)?;
        slots[0] = entry.completed_at as f64;
        slots[1] = lsn_number(lsn);
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn ack(&self, id: f64) -> Result<()> {
        self.store()?.ack(whole_number("entry id", id)?).map_err(lease_error)
    }

    /// Returns the LSN to wait for when `durable`, else -1.
    #[napi(catch_unwind)]
    pub fn release(&self, key: String, token: f64, durable: bool) -> Result<f64> {
        let lsn = self.store()?.release(&key, whole_number("token", token)?, durable).map_err(lease_error)?;
        Ok(if durable { lsn_number(lsn) } else { NO_LSN })
    }

    /// Raises `key`'s event cursor; returns the LSN to wait for when
    /// `durable` and a record was written, else -1.
    #[napi(catch_unwind)]
    pub fn set_cursor(&self, key: String, seq: BigInt, durable: bool) -> Result<f64> {
        let (negative, seq, lossless) = seq.get_u64();
        if negative || !lossless {
            return Err(invalid_arg("seq must be a non-negative integer below 2^64"));
        }
        let lsn = self.store()?.set_cursor(&key, seq, durable).map_err(lease_error)?;
        Ok(if durable { lsn_number(lsn) } else { NO_LSN })
    }

    /// What the open mended: bytes the log cut, and tokens skipped over a lost log.
    #[napi(catch_unwind)]
    pub fn repair_report(&self) -> Result<JsRepairReport> {
        let r = self.store()?.repair_report();
        Ok(JsRepairReport {
            records: r.wal.as_ref().map_or(0.0, |w| w.records as f64),
            bytes_truncated: r.wal.as_ref().map_or(0.0, |w| w.bytes_truncated as f64),
            reason: r.wal.as_ref().and_then(|w| w.reason.clone()),
            lost_log_high_water: r.lost_tokens.map(|(h, _)| h as f64),
            lost_reserved: r.lost_tokens.map(|(_, t)| t as f64),
        })
    }

    /// Raises `key`'s lastRun; returns the LSN to wait for (-1 in memory).
    #[napi(catch_unwind)]
    pub fn carry_last_run(&self, key: String, at: f64) -> Result<f64> {
        let lsn = self.store()?.carry_last_run(&key, whole_number("at", at)?).map_err(lease_error)?;
        Ok(lsn_number(lsn))
    }

    #[napi(catch_unwind)]
    pub fn cursor(&self, key: String) -> Result<Option<BigInt>> {
        Ok(self.store()?.cursor(&key).map(BigInt::from))
    }

    #[napi(catch_unwind)]
    pub fn holder(&self, key: String) -> Result<Option<JsLeaseInfo>> {
        Ok(self.store()?.holder(&key).map(Into::into))
    }

    #[napi(catch_unwind)]
    pub fn in_flight(&self, group: Option<String>) -> Result<f64> {
        Ok(self.store()?.in_flight(group.as_deref()) as f64)
    }

    #[napi(catch_unwind)]
    pub fn set_gate(&self, group: String, cap: f64) -> Result<()> {
        self.store()?.set_gate(&group, whole_number("cap", cap)?).map_err(lease_error)
    }

    #[napi(catch_unwind)]
    pub fn last_run(&self, key: String) -> Result<Option<f64>> {
        Ok(self.store()?.last_run(&key).map(|t| t as f64))
    }

    #[napi(catch_unwind)]
    pub fn outbox(&self) -> Result<Vec<JsOutboxEntry>> {
        Ok(self.store()?.outbox().into_iter().map(Into::into).collect())
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> Result<JsStoreStats> {
        let s = self.store()?.stats();
        let w = s.wal.unwrap_or_default();
        Ok(JsStoreStats {
            held: s.held as f64,
            outbox: s.outbox as f64,
            checkpoints: s.checkpoints as f64,
            wal_segments: w.segments as f64,
            wal_bytes: w.bytes as f64,
            wal_syncs: w.syncs as f64,
            poisoned: w.poisoned,
            poison_reason: self.store()?.wal().and_then(|w| w.poison_error()).map(|e| e.to_string()),
        })
    }

    /// Releases this handle off the JS thread; the last handle in the process
    /// syncs and closes the log. Idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close(&mut self) -> AsyncTask<CloseStoreTask> {
        AsyncTask::new(CloseStoreTask { store: self.store.take(), listener: self.listener.take(), events: self.events.take() })
    }
}

impl Drop for NativeLeaseStore {
    /// Collected without `close()`: unhook from the writer thread and let the
    /// last handle's final sync happen off the JS thread (this runs in a GC finalizer).
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            if let (Some(w), Some(l)) = (store.wal(), self.listener.take()) {
                w.remove_listener(l);
            }
            let _ = std::thread::Builder::new().name("orderly-lease-drop".into()).spawn(move || drop(store));
        }
    }
}

/// Creates and locks a fire's run lock; returns the descriptor for the body to
/// inherit (the caller closes its own copy after spawning).
#[napi(catch_unwind)]
pub fn create_run_lock(path: String) -> Result<i32> {
    orderly_lease::create_run_lock(Path::new(&path)).map_err(|e| run_lock_error("create", &path, e))
}

/// Whether a body still holds the run lock at `path`.
#[napi(catch_unwind)]
pub fn run_lock_held(path: String) -> Result<bool> {
    orderly_lease::run_lock_held(Path::new(&path)).map_err(|e| run_lock_error("check", &path, e))
}

/// Whether a body still holds the run lock open at `fd` (this process's own
/// descriptor of the lock file): right even once the file was removed.
#[napi(catch_unwind)]
pub fn run_lock_held_fd(fd: i32, path: String) -> Result<bool> {
    orderly_lease::run_lock_held_fd(fd).map_err(|e| run_lock_error("check", &path, e))
}

/// Not the log's error (ERR_WAL_IO would read as a poisoned store): a run's own file.
fn run_lock_error(op: &str, path: &str, e: std::io::Error) -> Error {
    napi::Error::new(Code::from_static("ERR_RUN_LOCK"), format!("cannot {op} the run lock {path}: {e}"))
}

fn io_error(op: &'static str, path: &str, e: std::io::Error) -> Error {
    lease_error(orderly_lease::LeaseError::Wal(orderly_wal::WalError::Io { op, path: path.into(), message: e.to_string(), kind: e.kind() }))
}

#[napi(object, object_from_js = false)]
pub struct JsStoreInspection {
    pub segments: f64,
    pub bytes: f64,
    pub records: f64,
    pub live_records: f64,
    pub held: Vec<JsLeaseInfo>,
    pub outbox: f64,
    pub last_run_keys: Vec<String>,
    pub last_run_at: Vec<f64>,
    pub cursor_keys: Vec<String>,
    pub cursor_seqs: Vec<BigInt>,
    pub high_water: f64,
    pub would_truncate: f64,
    pub reason: Option<String>,
    pub leftover_files: f64,
    pub reserved: f64,
    pub lost: bool,
}

/// Reads a lease store's directory without taking its lock or changing it.
#[napi(catch_unwind)]
pub fn inspect_store(dir: String) -> Result<JsStoreInspection> {
    let i = orderly_lease::inspect(Path::new(&dir)).map_err(lease_error)?;
    Ok(JsStoreInspection {
        segments: i.segments as f64,
        bytes: i.bytes as f64,
        records: i.records as f64,
        live_records: i.live_records as f64,
        held: i.held.into_iter().map(Into::into).collect(),
        outbox: i.outbox.len() as f64,
        last_run_keys: i.last_run.iter().map(|(k, _)| k.clone()).collect(),
        last_run_at: i.last_run.iter().map(|(_, t)| *t as f64).collect(),
        cursor_keys: i.cursors.iter().map(|(k, _)| k.clone()).collect(),
        cursor_seqs: i.cursors.iter().map(|(_, s)| BigInt::from(*s)).collect(),
        high_water: i.high_water as f64,
        would_truncate: i.would_truncate as f64,
        reason: i.reason,
        leftover_files: i.leftover_files as f64,
        reserved: i.reserved as f64,
        lost: i.lost,
    })
}

/// Appends one event (a JSON object without `seq`) to a Gas City event log
/// under an exclusive lock; returns the seq it was given (past `floor`).
#[napi(catch_unwind)]
pub fn append_city_event(path: String, body: String, floor: f64) -> Result<i64> {
    let seq = orderly_lease::append_event(Path::new(&path), &body, whole_number("floor", floor)?).map_err(|e| io_error("append event to", &path, e))?;
    i64::try_from(seq).map_err(|_| invalid_arg("event seq past 2^63"))
}

/// The newest seq of a Gas City event log (0 when it has none).
#[napi(catch_unwind)]
pub fn latest_city_event_seq(path: String) -> Result<i64> {
    let seq = orderly_lease::latest_seq(Path::new(&path)).map_err(|e| io_error("read event log", &path, e))?;
    i64::try_from(seq).map_err(|_| invalid_arg("event seq past 2^63"))
}

/// The uid of the process on the other end of a connected Unix socket.
#[napi(catch_unwind)]
pub fn socket_peer_uid(fd: i32) -> Result<u32> {
    orderly_lease::peer_uid(fd).map_err(|e| io_error("read the peer of", &format!("socket fd {fd}"), e))
}

/// Frees all but the last `keep` bytes of a run's output file, in place;
/// returns the bytes freed.
#[napi(catch_unwind)]
pub fn trim_run_output(path: String, keep: f64) -> Result<f64> {
    let freed = orderly_lease::trim_head(Path::new(&path), whole_number("keep", keep)?).map_err(|e| io_error("trim run output", &path, e))?;
    Ok(freed as f64)
}
