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
/// JS side of a no-op. `nums` holds `slot::COUNT` numbers per report (see
/// `slot`; NaN where a value is absent), `strs` each report's strings, in
/// report order: its message, start error and next fire id, those its flags
/// say it has. src/dispatcher/fire-lane.ts unpacks them.
#[napi(object, object_from_js = false)]
pub struct JsLaneBatch {
    pub nums: Float64Array,
    pub strs: Vec<String>,
}

/// Where `pack` puts each number of a report, `COUNT` numbers per report.
mod slot {
    pub const KIND: usize = 0;
    pub const TAG: usize = 1;
    pub const TOKEN: usize = 2;
    pub const ACQUIRED_AT: usize = 3;
    pub const EXPIRES_AT: usize = 4;
    pub const PID: usize = 5;
    pub const STARTED_AT: usize = 6;
    pub const ENDED_AT: usize = 7;
    pub const DURATION_MS: usize = 8;
    pub const CODE: usize = 9;
    pub const SIGNAL: usize = 10;
    pub const FLAGS: usize = 11;
    pub const TERM_SENT_AT: usize = 12;
    pub const NEXT_DUE_AT: usize = 13;
    pub const COUNT: usize = 14;
}

/// `kind`, by its number in slot `KIND`.
mod kind {
    pub const STARTED: f64 = 0.0;
    pub const RAN: f64 = 1.0;
    pub const HELD: f64 = 2.0;
    pub const GATE_FULL: f64 = 3.0;
    pub const STORE_FAILED: f64 = 4.0;
}

/// Bits of slot `FLAGS`.
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

/// The packing of `JsLaneBatch`, for src/dispatcher/fire-lane.ts to read
/// by name: the layout is stated here once, and a slot or bit JS names
/// that is not here fails its type check.
#[napi(object, object_from_js = false)]
pub struct JsReportLayout {
    /// Numbers per report.
    pub fields: u32,
    /// Kind names, by the number in slot `kind`.
    pub kinds: Vec<String>,
    pub slots: JsReportSlots,
    pub flags: JsReportFlags,
}

#[napi(object, object_from_js = false)]
pub struct JsReportSlots {
    pub kind: u32,
    pub tag: u32,
    pub token: u32,
    pub acquired_at: u32,
    pub expires_at: u32,
    pub pid: u32,
    pub started_at: u32,
    pub ended_at: u32,
    pub duration_ms: u32,
    pub code: u32,
    pub signal: u32,
    pub flags: u32,
    pub term_sent_at: u32,
    pub next_due_at: u32,
}

#[napi(object, object_from_js = false)]
pub struct JsReportFlags {
    pub lock_error: u32,
    pub group_empty: u32,
    pub timed_out: u32,
    pub kill_sent: u32,
    pub settled: u32,
    pub message: u32,
    pub start_error: u32,
    pub next_fire: u32,
}

#[napi(catch_unwind)]
pub fn report_layout() -> JsReportLayout {
    let named = [(kind::STARTED, "started"), (kind::RAN, "ran"), (kind::HELD, "held"), (kind::GATE_FULL, "gate-full"), (kind::STORE_FAILED, "store-failed")];
    let mut kinds = vec![String::new(); named.len()];
    for (k, name) in named {
        kinds[k as usize] = name.into();
    }
    let at = |s: usize| s as u32;
    JsReportLayout {
        fields: at(slot::COUNT),
        kinds,
        slots: JsReportSlots {
            kind: at(slot::KIND),
            tag: at(slot::TAG),
            token: at(slot::TOKEN),
            acquired_at: at(slot::ACQUIRED_AT),
            expires_at: at(slot::EXPIRES_AT),
            pid: at(slot::PID),
            started_at: at(slot::STARTED_AT),
            ended_at: at(slot::ENDED_AT),
            duration_ms: at(slot::DURATION_MS),
            code: at(slot::CODE),
            signal: at(slot::SIGNAL),
            flags: at(slot::FLAGS),
            term_sent_at: at(slot::TERM_SENT_AT),
            next_due_at: at(slot::NEXT_DUE_AT),
        },
        flags: JsReportFlags {
            lock_error: flag::LOCK_ERROR,
            group_empty: flag::GROUP_EMPTY,
            timed_out: flag::TIMED_OUT,
            kill_sent: flag::KILL_SENT,
            settled: flag::SETTLED,
            message: flag::MESSAGE,
            start_error: flag::START_ERROR,
            next_fire: flag::NEXT_FIRE,
        },
    }
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
        let mut nums = Vec::with_capacity(reports.len() * slot::COUNT);
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

fn pack(r: Report, nums: &mut Vec<f64>, strs: &mut Vec<String>) {
    let mut slots = [f64::NAN; slot::COUNT];
    slots[slot::TAG] = f64::from(r.tag());
    let mut flags = 0;
    let mut text = |flags: &mut u32, bit: u32, s: String| {
        *flags |= bit;
        strs.push(s);
    };
    let lease = |slots: &mut [f64; slot::COUNT], token: u64, acquired_at: u64, expires_at: u64| {
        slots[slot::TOKEN] = token as f64;
        slots[slot::ACQUIRED_AT] = acquired_at as f64;
        slots[slot::EXPIRES_AT] = expires_at as f64;
    };
    match r {
        Report::Refused { held, .. } => slots[slot::KIND] = if held { kind::HELD } else { kind::GATE_FULL },
        Report::Started { token, acquired_at, expires_at, pid, .. } => {
            slots[slot::KIND] = kind::STARTED;
            lease(&mut slots, token, acquired_at, expires_at);
            slots[slot::PID] = f64::from(pid);
        }
        Report::StoreFailed { message, .. } => {
            slots[slot::KIND] = kind::STORE_FAILED;
            text(&mut flags, flag::MESSAGE, message);
        }
        Report::Ran(r) => {
            slots[slot::KIND] = kind::RAN;
            lease(&mut slots, r.token, r.acquired_at, r.expires_at);
            match r.start {
                Ok(pid) => slots[slot::PID] = f64::from(pid),
                Err(e) => {
                    if e.lock {
                        flags |= flag::LOCK_ERROR;
                    }
                    text(&mut flags, flag::MESSAGE, e.message);
                    text(&mut flags, flag::START_ERROR, e.code.into());
                }
            }
            slots[slot::STARTED_AT] = r.started_at;
            slots[slot::ENDED_AT] = r.ended_at;
            slots[slot::DURATION_MS] = r.duration_ms;
            slots[slot::CODE] = r.code.map_or(f64::NAN, f64::from);
            slots[slot::SIGNAL] = r.signal.map_or(f64::NAN, f64::from);
            for (yes, bit) in [(r.group_empty, flag::GROUP_EMPTY), (r.timed_out, flag::TIMED_OUT), (r.kill_sent, flag::KILL_SENT), (r.settled, flag::SETTLED)] {
                if yes {
                    flags |= bit;
                }
            }
            slots[slot::TERM_SENT_AT] = r.term_sent_at;
            if let Some(next) = r.next {
                text(&mut flags, flag::NEXT_FIRE, next.fire_id);
                slots[slot::NEXT_DUE_AT] = next.due_at;
            }
        }
    }
    slots[slot::FLAGS] = f64::from(flags);
    nums.extend_from_slice(&slots);
}
