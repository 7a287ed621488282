//! The native body spawner: JS strings to C strings, exits to a JS callback.

use std::ffi::CString;

use napi::bindgen_prelude::Env;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::Status;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

use orderly_spawn::{errno_name, Command, Exit, Job, Reaper, SpawnPool, Then};

use crate::error::{from_napi, invalid_arg, Code, Error, Result};

#[napi(object)]
pub struct JsSpawnOptions {
    /// `/bin/sh` by default in the caller; a bare name is looked up on PATH.
    pub program: String,
    /// argv, argv[0] included.
    pub args: Vec<String>,
    /// `NAME=value` each: the child's whole environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// stdout + stderr file (created or truncated, 0600); absent: /dev/null.
    pub output: Option<String>,
    /// Become fd 3, 4, … in the child.
    pub inherit_fds: Option<Vec<i32>>,
    /// Reported as overdue (an event with `overdue`) once it has run this
    /// long; absent, zero or not finite: never.
    pub timeout_ms: Option<f64>,
}

/// The lock the body inherits, handed over with the request: once the child
/// exists its record is written (`pgid`, deadline) and this copy closed, on
/// the spawning thread.
#[napi(object)]
pub struct JsRunLock {
    pub fd: i32,
    pub fire_id: String,
    /// The body's timeout; the deadline is counted from its start. Infinity: none.
    pub timeout_ms: f64,
}

/// The reports of a request, in this order: `started` (with `pid`, or
/// `error`), then for a started child at most one `overdue` (it ran past its
/// `timeoutMs`), then its exit.
#[napi(object, object_from_js = false)]
pub struct JsSpawnEvent {
    pub tag: u32,
    pub started: bool,
    /// Still running at its `timeoutMs`; its exit follows later.
    pub overdue: bool,
    pub pid: Option<i32>,
    /// Exit: the exit status, or null when a signal ended the child.
    pub code: Option<i32>,
    /// Exit: the signal number that ended it, or null.
    pub signal: Option<i32>,
    /// Exit: its process group was empty once it was reaped: nothing it started is left.
    pub group_empty: bool,
    /// Not started: the errno's name (ENOENT, EACCES, …), as Node's spawn errors have it.
    pub error: Option<String>,
    pub message: Option<String>,
}

/// `onEvent(event)`: weak (the caller refs it while requests are pending),
/// unbounded so no spawning or reaping thread ever waits on JS.
type EventFn = ThreadsafeFunction<JsSpawnEvent, UnknownReturnValue, JsSpawnEvent, Status, false, true, 0>;

/// Spawning threads: posix_spawn waits for the child's exec, which on a
/// loaded machine is a wait for the scheduler; a few threads keep both
/// cores busy while the event loop goes on.
const SPAWN_THREADS: usize = 4;

/// Starts bodies with posix_spawn on a few threads of its own and reports
/// every exit from one reaping thread.
#[napi]
pub struct NativeSpawner {
    pool: Option<SpawnPool>,
    reaper: Option<Arc<Reaper>>,
    events: Arc<EventFn>,
}

#[napi]
impl NativeSpawner {
    #[napi(constructor, catch_unwind, ts_args_type = "onEvent: (event: JsSpawnEvent) => void")]
    pub fn new(on_event: EventFn) -> Result<Self> {
        let events = Arc::new(on_event);
        let forward = Arc::clone(&events);
        let late = Arc::clone(&events);
        // Both on the reaping thread, into one queue: an overdue report is never heard after the exit.
        let reaper = Reaper::start_with_overdue(
            move |e: Exit| {
                // Fails only once the environment is going away; nobody is left to tell.
                let _ = forward.call(
                    JsSpawnEvent { tag: e.tag as u32, started: false, overdue: false, pid: Some(e.pid), code: e.code, signal: e.signal, group_empty: e.group_empty, error: None, message: None },
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            },
            move |pid, tag| {
                let _ = late.call(
                    JsSpawnEvent { tag: tag as u32, started: false, overdue: true, pid: Some(pid), code: None, signal: None, group_empty: false, error: None, message: None },
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            },
        )
        .map_err(|e| spawn_error(&e, "start the reaper thread"))?;
        let reaper = Arc::new(reaper);
        let pool = SpawnPool::start(Arc::clone(&reaper), SPAWN_THREADS).map_err(|e| spawn_error(&e, "start the spawning threads"))?;
        Ok(Self { pool: Some(pool), reaper: Some(reaper), events })
    }

    /// Starts a child: here when the last request came `INLINE_AFTER` (5 ms)
    /// ago or more, returning its pid; otherwise on a spawning thread,
    /// returning 0, and `onEvent` reports its start (or why it could not
    /// start, inline failures too). Its exit follows, with `tag`. Throws only
    /// for a request that cannot be made (a NUL byte, a closed spawner), and
    /// then `lock` stays the caller's to close; once this returns, it is the
    /// spawner's.
    #[napi(catch_unwind)]
    pub fn start(&self, tag: u32, options: JsSpawnOptions, lock: Option<JsRunLock>) -> Result<i32> {
        let pool = self.pool.as_ref().ok_or_else(|| invalid_arg("the spawner is closed"))?;
        let cmd = Command {
            program: c_string(options.program, "program")?,
            args: options.args.into_iter().map(|a| c_string(a, "args")).collect::<Result<_>>()?,
            env: options.env.into_iter().map(|a| c_string(a, "env")).collect::<Result<_>>()?,
            cwd: options.cwd.map(|c| c_string(c, "cwd")).transpose()?,
            output: options.output.map(|c| c_string(c, "output")).transpose()?,
            inherit: options.inherit_fds.unwrap_or_default(),
            new_group: true,
            overdue_after: options.timeout_ms.filter(|ms| *ms > 0.0).and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()),
        };
        if pool.inline_turn() {
            let mut started = 0;
            pool.reaper().spawn_then(&cmd, u64::from(tag), |result| {
                hand_back(lock, &result);
                match result {
                    Ok(pid) => started = pid,
                    Err(e) => report_start(&self.events, tag, Err(e)),
                }
            });
            return Ok(started);
        }
        let events = Arc::clone(&self.events);
        let then: Then = Box::new(move |result: std::io::Result<i32>| {
            hand_back(lock, &result);
            report_start(&events, tag, result);
        });
        if let Err(job) = pool.submit(Job { cmd, tag: u64::from(tag), then }) {
            (job.then)(Err(std::io::Error::from_raw_os_error(libc::ECANCELED)));
        }
        Ok(0)
    }

    /// Requests not yet reported as exited (queued, starting or running).
    #[napi(getter, catch_unwind)]
    pub fn pending(&self) -> u32 {
        let queued = self.pool.as_ref().map_or(0, |p| p.queued());
        (queued + self.reaper.as_ref().map_or(0, |r| r.pending())) as u32
    }

    /// Keeps the process alive while requests are pending.
    #[napi(catch_unwind, js_name = "ref")]
    pub fn ref_events(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), self.events.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), self.events.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    /// Stops the threads; queued requests are reported as not started
    /// (ECANCELED), running children are left alone.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        self.pool = None;
        self.reaper = None;
    }
}

/// The lock's started-body record once the child exists, and the spawner's copy closed either way.
fn hand_back(lock: Option<JsRunLock>, result: &std::io::Result<i32>) {
    let Some(lock) = lock else { return };
    if let Ok(pid) = result {
        // A full disk must not fail the run: an adopter just cannot time this body out.
        let _ = orderly_lease::record_started_body(lock.fd, &lock.fire_id, *pid, lock.timeout_ms);
    }
    unsafe { libc::close(lock.fd) };
}

fn report_start(events: &EventFn, tag: u32, result: std::io::Result<i32>) {
    let event = match result {
        Ok(pid) => JsSpawnEvent { tag, started: true, overdue: false, pid: Some(pid), code: None, signal: None, group_empty: false, error: None, message: None },
        Err(e) => {
            let name = e.raw_os_error().map(errno_name).unwrap_or("ERR_SPAWN");
            JsSpawnEvent { tag, started: true, overdue: false, pid: None, code: None, signal: None, group_empty: false, error: Some(name.to_string()), message: Some(format!("spawn: {name}: {e}")) }
        }
    };
    // Fails only once the environment is going away; nobody is left to tell.
    let _ = events.call(event, ThreadsafeFunctionCallMode::NonBlocking);
}

pub(crate) fn c_string(s: String, field: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid_arg(format!("{field} holds a NUL byte")))
}

/// `err.code` is the errno's name, as Node's own spawn errors have it.
pub(crate) fn spawn_error(e: &std::io::Error, what: &str) -> Error {
    let name = e.raw_os_error().map(errno_name).unwrap_or("ERR_SPAWN");
    napi::Error::new(Code::from_static(name), format!("{what}: {name}: {e}"))
}
