//! `NativeLane`: the JS face of `orderly_lane::Lane`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Env, Float64Array};
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

/// The reports `take` hands out, packed: building a JS object of twenty
/// named properties through N-API cost more per fire than the rest of the
/// JS side of a no-op. `nums` holds `REPORT_FIELDS` numbers per report (see
/// `pack`; NaN where a value is absent), `strs` each report's strings, in
/// report order: its message, start error and next fire id, those its flags
/// say it has. src/dispatcher/fire-lane.ts unpacks them.
#[napi(object, object_from_js = false)]
pub struct JsLaneBatch {
    pub nums: Float64Array,
    pub strs: Vec<String>,
}

/// Numbers per report in `JsLaneBatch::nums`.
#[napi]
pub const REPORT_FIELDS: u32 = 14;

/// `kind`, by its number in slot 0.
mod kind {
    pub const STARTED: f64 = 0.0;
    pub const RAN: f64 = 1.0;
    pub const HELD: f64 = 2.0;
    pub const GATE_FULL: f64 = 3.0;
    pub const STORE_FAILED: f64 = 4.0;
}

/// Bits of slot 11.
mod flag {
    pub const LOCK_ERROR: u32 = 1;
    pub const GROUP_EMPTY: u32 = 2;
    pub const TIMED_OUT: u32 = 4;
    pub const KILL_SENT: u32 = 8;
    pub const SETTLED: u32 = 16;
    pub const MESSAGE: u32 = 32;
    pub const START_ERROR: u32 = 64;
    pub const NEXT_FIRE: u32 = 128;
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
    pub fn take(&self) -> JsLaneBatch {
        let reports = self.lane.as_ref().map_or_else(Vec::new, |l| l.take());
        let mut nums = Vec::with_capacity(reports.len() * REPORT_FIELDS as usize);
        let mut strs = Vec::new();
        for r in reports {
            pack(r, &mut nums, &mut strs);
        }
        JsLaneBatch { nums: Float64Array::new(nums), strs }
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

/// Slots: 0 kind, 1 tag, 2 token, 3 acquiredAt, 4 expiresAt, 5 pid,
/// 6 startedAt, 7 endedAt, 8 durationMs, 9 code, 10 signal, 11 flags,
/// 12 termSentAt, 13 nextDueAt.
fn pack(r: Report, nums: &mut Vec<f64>, strs: &mut Vec<String>) {
    let mut slots = [f64::NAN; REPORT_FIELDS as usize];
    slots[1] = f64::from(r.tag());
    let mut flags = 0;
    let mut text = |flags: &mut u32, bit: u32, s: String| {
        *flags |= bit;
        strs.push(s);
    };
    match r {
        Report::Refused { held, .. } => slots[0] = if held { kind::HELD } else { kind::GATE_FULL },
        Report::Started { token, acquired_at, expires_at, pid, .. } => {
            slots[0] = kind::STARTED;
            (slots[2], slots[3], slots[4], slots[5]) = (token as f64, acquired_at as f64, expires_at as f64, f64::from(pid));
        }
        Report::StoreFailed { message, .. } => {
            slots[0] = kind::STORE_FAILED;
            text(&mut flags, flag::MESSAGE, message);
        }
        Report::Ran(r) => {
            slots[0] = kind::RAN;
            (slots[2], slots[3], slots[4]) = (r.token as f64, r.acquired_at as f64, r.expires_at as f64);
            match r.start {
                Ok(pid) => slots[5] = f64::from(pid),
                Err(e) => {
                    if e.lock {
                        flags |= flag::LOCK_ERROR;
                    }
                    text(&mut flags, flag::MESSAGE, e.message);
                    text(&mut flags, flag::START_ERROR, e.code.into());
                }
            }
            (slots[6], slots[7], slots[8]) = (r.started_at, r.ended_at, r.duration_ms);
            slots[9] = r.code.map_or(f64::NAN, f64::from);
            slots[10] = r.signal.map_or(f64::NAN, f64::from);
            for (yes, bit) in [(r.group_empty, flag::GROUP_EMPTY), (r.timed_out, flag::TIMED_OUT), (r.kill_sent, flag::KILL_SENT), (r.settled, flag::SETTLED)] {
                if yes {
                    flags |= bit;
                }
            }
            slots[12] = r.term_sent_at;
            if let Some(next) = r.next {
                text(&mut flags, flag::NEXT_FIRE, next.fire_id);
                slots[13] = next.due_at;
            }
        }
    }
    slots[11] = f64::from(flags);
    nums.extend_from_slice(&slots);
}
