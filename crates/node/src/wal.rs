//! `NativeWal`: the JS face of `orderly_wal::Wal`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Env, Object, Task, Uint8ArraySlice};
use napi_derive::napi;
use orderly_wal::{ListenerId, Wal, WalOptions};

use crate::error::{from_panic, into_task_error, wal_error, Error, Result};
use crate::events::{forward_events, ref_events, unref_events, EventFn};
use crate::options::{bool_option, integer_option};

pub(crate) fn bytes<'p>(payload: &'p Either<Uint8ArraySlice<'_>, String>) -> &'p [u8] {
    match payload {
        Either::A(bytes) => bytes,
        Either::B(text) => text.as_bytes(),
    }
}

/// Log options shared by `NativeWal.open` and `NativeLeaseStore.open`; the
/// core checks the ranges.
pub(crate) fn wal_options(options: Option<&Object>) -> Result<WalOptions> {
    wal_options_from(options, WalOptions::default())
}

pub(crate) fn wal_options_from(options: Option<&Object>, defaults: WalOptions) -> Result<WalOptions> {
    let mut opts = defaults;
    let Some(options) = options else {
        return Ok(opts);
    };
    if let Some(n) = integer_option(options, "segmentBytes")? {
        opts.segment_bytes = n;
    }
    if let Some(ms) = integer_option(options, "flushIntervalMs")? {
        opts.flush_interval = Duration::from_millis(ms);
    }
    if let Some(repair) = bool_option(options, "repair")? {
        opts.repair = repair;
    }
    if let Some(preallocate) = bool_option(options, "preallocate")? {
        opts.preallocate = preallocate;
    }
    Ok(opts)
}

pub struct OpenTask {
    dir: String,
    options: WalOptions,
    events: Arc<EventFn>,
}

impl Task for OpenTask {
    type Output = std::result::Result<(Wal, ListenerId), Error>;
    type JsValue = NativeWal;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let open = AssertUnwindSafe(|| {
            let wal = Wal::open(&self.dir, std::mem::take(&mut self.options)).map_err(wal_error)?;
            let listener = wal.add_listener(forward_events(self.events.clone()));
            Ok((wal, listener))
        });
        Ok(catch_unwind(open).unwrap_or_else(|panic| Err(from_panic(panic))))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeWal> {
        match output {
            Ok((wal, listener)) => Ok(NativeWal {
                wal,
                listener: Some(listener),
                events: Some(self.events.clone()),
            }),
            Err(err) => Err(into_task_error(&env, err)),
        }
    }
}

pub struct CloseTask {
    wal: Wal,
    listener: Option<ListenerId>,
    events: Option<Arc<EventFn>>,
}

impl Task for CloseTask {
    type Output = std::result::Result<(), Error>;
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let close = AssertUnwindSafe(|| {
            // Close before unhooking the listener so the final sync's watermark
            // still reaches JS; the thread-safe function is released once the
            // last holder (the listener, then us) lets go.
            let closed = self.wal.close().map_err(wal_error);
            if let Some(listener) = self.listener.take() {
                self.wal.remove_listener(listener);
            }
            self.events = None;
            closed
        });
        Ok(catch_unwind(close).unwrap_or_else(|panic| Err(from_panic(panic))))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<()> {
        output.map_err(|err| into_task_error(&env, err))
    }
}

#[napi(object, object_from_js = false)]
pub struct OpenReport {
    pub records: f64,
    pub bytes_truncated: f64,
    pub reason: Option<String>,
}

#[napi(object, object_from_js = false)]
pub struct WalRecord {
    pub lsn: u64,
    pub payload: Buffer,
}

#[napi(object, object_from_js = false)]
pub struct WalStats {
    pub segments: f64,
    pub bytes: f64,
    pub appends: f64,
    pub syncs: f64,
    pub poisoned: bool,
}

/// An open write-ahead log. Every LSN it returns is durable once an `onEvent`
/// watermark (or `durableLsn()`) reaches it.
#[napi]
pub struct NativeWal {
    wal: Wal,
    listener: Option<ListenerId>,
    events: Option<Arc<EventFn>>,
}

#[napi]
impl NativeWal {
    /// Opens (and recovers) the log in `dir` off the JS thread.
    #[napi(
        catch_unwind,
        ts_args_type = "dir: string, options: { segmentBytes?: number; flushIntervalMs?: number; repair?: boolean; preallocate?: boolean } | undefined | null, onEvent: (err: Error | null, durableLsn: bigint) => void",
        ts_return_type = "Promise<NativeWal>"
    )]
    pub fn open(
        dir: String,
        options: Option<Object>,
        on_event: EventFn,
    ) -> Result<AsyncTask<OpenTask>> {
        let options = wal_options(options.as_ref())?;
        Ok(AsyncTask::new(OpenTask {
            dir,
            options,
            events: Arc::new(on_event),
        }))
    }

    /// Keeps the process alive for event delivery while JS waits on one.
    #[napi(catch_unwind, js_name = "ref")]
    pub fn ref_events(&self, env: Env) -> Result<()> {
        ref_events(&env, self.events.as_deref())
    }

    /// Lets the process exit while nothing waits on an event.
    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        unref_events(&env, self.events.as_deref())
    }

    #[napi(catch_unwind)]
    pub fn append(&self, payload: Either<Uint8ArraySlice, String>) -> Result<u64> {
        self.wal.append(bytes(&payload)).map_err(wal_error)
    }

    #[napi(catch_unwind)]
    pub fn append_relaxed(&self, payload: Either<Uint8ArraySlice, String>) -> Result<u64> {
        self.wal.append_relaxed(bytes(&payload)).map_err(wal_error)
    }

    #[napi(catch_unwind)]
    pub fn request_sync(&self) -> Result<u64> {
        self.wal.request_sync().map_err(wal_error)
    }

    #[napi(catch_unwind)]
    pub fn checkpoint(&self, live: Vec<Either<Uint8ArraySlice, String>>) -> Result<u64> {
        let live = live.iter().map(|payload| bytes(payload).to_vec()).collect();
        self.wal.checkpoint(live).map_err(wal_error)
    }

    #[napi(catch_unwind)]
    pub fn durable_lsn(&self) -> u64 {
        self.wal.durable_lsn()
    }

    #[napi(getter, catch_unwind)]
    pub fn open_report(&self) -> OpenReport {
        let report = self.wal.open_report();
        OpenReport {
            records: report.records as f64,
            bytes_truncated: report.bytes_truncated as f64,
            reason: report.reason,
        }
    }

    #[napi(catch_unwind)]
    pub fn records(&self) -> Vec<WalRecord> {
        self.wal
            .records()
            .into_iter()
            .map(|record| WalRecord {
                lsn: record.lsn,
                payload: record.payload.into(),
            })
            .collect()
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> WalStats {
        let stats = self.wal.stats();
        WalStats {
            segments: stats.segments as f64,
            bytes: stats.bytes as f64,
            appends: stats.appends as f64,
            syncs: stats.syncs as f64,
            poisoned: stats.poisoned,
        }
    }

    /// Flushes, syncs and closes off the JS thread, then releases the event
    /// callback so the process can exit. Idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close(&mut self) -> AsyncTask<CloseTask> {
        AsyncTask::new(CloseTask {
            wal: self.wal.clone(),
            listener: self.listener.take(),
            events: self.events.take(),
        })
    }
}

impl Drop for NativeWal {
    /// Collected without `close()`: stop calling into JS, and let the final
    /// sync and thread join of the last handle happen off the JS thread
    /// (this runs inside a GC finalizer).
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            self.wal.remove_listener(listener);
            let wal = self.wal.clone();
            let _ = std::thread::Builder::new()
                .name("orderly-wal-drop".into())
                .spawn(move || drop(wal.close()));
        }
    }
}
