//! `NativeLane`: the JS face of `orderly_lane::Lane`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Env;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::Status;
use napi_derive::napi;
use orderly_lane::{Armed, Lane, LaneOptions, Repeat, Report, RunFiles};
use orderly_spawn::Command;

use crate::error::{from_napi, Result};
use crate::lease::NativeLeaseStore;
use crate::spawn::{c_string, spawn_error};

/// One exec fire, prepared ahead of its due time.
#[napi(object)]
pub struct JsArmed {
    pub tag: u32,
    pub key: String,
    /// From now; 0 or less: at once.
    pub in_ms: f64,
    pub ttl_ms: f64,
    pub group: Option<String>,
    pub meta: String,
    pub fire_id: String,
    pub program: String,
    /// argv, argv[0] included.
    pub args: Vec<String>,
    /// `NAME=value` each, laid over `setBaseEnv`'s; `ORDERLY_FENCE=` and `ORDERLY_FIRED_AT=` are filled from the lease.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub lock: String,
    pub output: String,
    pub exit: String,
    pub status: String,
    /// Infinity: none.
    pub timeout_ms: f64,
    pub grace_ms: f64,
    pub no_op_exit_codes: Vec<i32>,
    pub no_op_when_silent: bool,
    /// A plain no-op that ran this long or longer is told at once, not with the next batch.
    pub urgent_after_ms: f64,
    /// A cooldown order's interval: a plain no-op is followed by its next
    /// fire, armed natively under the same tag (see `nextFireId`).
    pub repeat_ms: Option<f64>,
    /// Up to this much later, drawn per fire.
    pub jitter_ms: Option<f64>,
}

/// `kind`: `held` or `gate-full` (not acquired), `store-failed` (with
/// `message`), `started` (its body runs: `pid`, and the lease's figures), or
/// `ran`: acquired, with how its body went. A `settled` run
/// was a plain no-op whose lease is released; any other is still held.
#[derive(Default)]
#[napi(object, object_from_js = false)]
pub struct JsLaneReport {
    pub tag: u32,
    pub kind: String,
    pub message: Option<String>,
    pub token: f64,
    pub acquired_at: f64,
    pub expires_at: f64,
    pub pid: Option<i32>,
    /// Not started: the errno's name, and whether it was the run lock that failed.
    pub start_error: Option<String>,
    pub lock_error: bool,
    pub started_at: f64,
    pub ended_at: f64,
    pub duration_ms: f64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub group_empty: bool,
    pub timed_out: bool,
    pub term_sent_at: f64,
    pub kill_sent: bool,
    pub settled: bool,
    /// Set when the lane armed the order's next fire itself: its fire id and due time (epoch ms).
    pub next_fire_id: Option<String>,
    pub next_due_at: f64,
}

/// `onReady()`: weak, unbounded; called when reports wait for `take`.
type ReadyFn = ThreadsafeFunction<(), UnknownReturnValue, (), Status, false, true, 0>;

#[napi]
pub struct NativeLane {
    lane: Option<Lane>,
    ready: Arc<ReadyFn>,
}

#[napi]
impl NativeLane {
    #[napi(constructor, catch_unwind, ts_args_type = "store: NativeLeaseStore, onReady: () => void")]
    pub fn new(store: &NativeLeaseStore, on_ready: ReadyFn) -> Result<Self> {
        let ready = Arc::new(on_ready);
        let call = Arc::clone(&ready);
        let lane = Lane::start(Arc::clone(store.store()?), LaneOptions::default(), move || {
            // Fails only once the environment is going away; nobody is left to tell.
            let _ = call.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(|e| spawn_error(&e, "start the fire lane"))?;
        Ok(Self { lane: Some(lane), ready })
    }

    /// False once closed.
    #[napi(catch_unwind)]
    pub fn arm(&self, fire: JsArmed) -> Result<bool> {
        let Some(lane) = self.lane.as_ref() else { return Ok(false) };
        let timeout = Some(fire.timeout_ms).filter(|ms| ms.is_finite() && *ms > 0.0);
        let armed = Armed {
            tag: fire.tag,
            key: fire.key,
            due: Instant::now() + Duration::from_secs_f64(fire.in_ms.max(0.0) / 1000.0),
            ttl_ms: fire.ttl_ms.max(1.0) as u64,
            group: fire.group,
            meta: fire.meta.into_bytes(),
            fire_id: fire.fire_id,
            cmd: Command {
                program: c_string(fire.program, "program")?,
                args: fire.args.into_iter().map(|a| c_string(a, "args")).collect::<Result<_>>()?,
                env: fire.env.into_iter().map(|a| c_string(a, "env")).collect::<Result<_>>()?,
                cwd: fire.cwd.map(|d| c_string(d, "cwd")).transpose()?,
                output: Some(c_string(fire.output.clone(), "output")?),
                inherit: Vec::new(),
                new_group: true,
                overdue_after: timeout.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()),
            },
            files: RunFiles { lock: fire.lock.into(), output: fire.output.into(), exit: fire.exit.into(), status: fire.status.into() },
            timeout_ms: timeout.unwrap_or(f64::INFINITY),
            grace: Duration::from_secs_f64(fire.grace_ms.max(0.0) / 1000.0),
            no_op_codes: fire.no_op_exit_codes,
            no_op_when_silent: fire.no_op_when_silent,
            urgent_after: Duration::from_secs_f64(fire.urgent_after_ms.max(0.0) / 1000.0),
            repeat: fire.repeat_ms.filter(|ms| ms.is_finite() && *ms > 0.0).map(|ms| Repeat {
                every: Duration::from_secs_f64(ms / 1000.0),
                jitter: Duration::from_secs_f64(fire.jitter_ms.filter(|j| j.is_finite()).unwrap_or(0.0).max(0.0) / 1000.0),
            }),
        };
        Ok(lane.arm(armed))
    }

    /// `NAME=value` each: what every body inherits, under the `env` of fires armed from now on.
    #[napi(catch_unwind)]
    pub fn set_base_env(&self, env: Vec<String>) -> Result<()> {
        let Some(lane) = self.lane.as_ref() else { return Ok(()) };
        let env = env.into_iter().map(|e| c_string(e, "env")).collect::<Result<_>>()?;
        lane.set_base_env(env);
        Ok(())
    }

    /// True: every report wakes JS at once; false: settled runs wait for a batch.
    #[napi(catch_unwind)]
    pub fn set_eager(&self, eager: bool) {
        if let Some(lane) = self.lane.as_ref() {
            lane.set_eager(eager);
        }
    }

    /// True: taken back before its fire; false: it fired (a report follows,
    /// with no next fire after it) or was never armed.
    #[napi(catch_unwind)]
    pub fn disarm(&self, tag: u32) -> bool {
        self.lane.as_ref().is_some_and(|l| l.disarm(tag))
    }

    #[napi(catch_unwind)]
    pub fn take(&self) -> Vec<JsLaneReport> {
        self.lane.as_ref().map_or_else(Vec::new, |l| l.take().into_iter().map(js_report).collect())
    }

    /// Keeps the process alive while fires are armed or running.
    #[napi(catch_unwind, js_name = "ref")]
    pub fn ref_ready(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), self.ready.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), self.ready.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    /// Stops the lane's threads; running bodies are left for the next start to adopt.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        self.lane = None;
    }
}

fn js_report(r: Report) -> JsLaneReport {
    let mut out = JsLaneReport { tag: r.tag(), ..JsLaneReport::default() };
    match r {
        Report::Refused { held, .. } => out.kind = if held { "held" } else { "gate-full" }.into(),
        Report::Started { token, acquired_at, expires_at, pid, .. } => {
            out.kind = "started".into();
            out.token = token as f64;
            out.acquired_at = acquired_at as f64;
            out.expires_at = expires_at as f64;
            out.pid = Some(pid);
        }
        Report::StoreFailed { message, .. } => {
            out.kind = "store-failed".into();
            out.message = Some(message);
        }
        Report::Ran(r) => {
            out.kind = "ran".into();
            out.token = r.token as f64;
            out.acquired_at = r.acquired_at as f64;
            out.expires_at = r.expires_at as f64;
            match r.start {
                Ok(pid) => out.pid = Some(pid),
                Err(e) => {
                    out.start_error = Some(e.code.into());
                    out.lock_error = e.lock;
                    out.message = Some(e.message);
                }
            }
            out.started_at = r.started_at;
            out.ended_at = r.ended_at;
            out.duration_ms = r.duration_ms;
            out.code = r.code;
            out.signal = r.signal;
            out.group_empty = r.group_empty;
            out.timed_out = r.timed_out;
            out.term_sent_at = r.term_sent_at;
            out.kill_sent = r.kill_sent;
            out.settled = r.settled;
            if let Some(next) = r.next {
                out.next_fire_id = Some(next.fire_id);
                out.next_due_at = next.due_at;
            }
        }
    }
    out
}
