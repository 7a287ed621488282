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
/// JS side of a no-op. `nums` holds `FIELDS` numbers per report (see
/// `SLOT`; NaN where a value is absent), `strs` each report's strings, in
/// report order: its message, start error and next fire id, those its flags
/// say it has. src/dispatcher/fire-lane.ts unpacks them.
#[napi(object, object_from_js = false)]
pub struct JsLaneBatch {
    pub nums: Float64Array,
    pub strs: Vec<String>,
}

/// `kind`, by its number in slot `kind`.
mod kind {
    pub const STARTED: f64 = 0.0;
    pub const RAN: f64 = 1.0;
    pub const HELD: f64 = 2.0;
    pub const GATE_FULL: f64 = 3.0;
    pub const STORE_FAILED: f64 = 4.0;
}

/// Numbers per report in `JsLaneBatch::nums`.
const FIELDS: usize = 14;

/// The packing of `JsLaneBatch`, for src/dispatcher/fire-lane.ts to read
/// by name: `pack` writes by these same constants, so the layout is stated
/// once, and a slot or bit JS names that is not here fails its type check.
#[napi(object, object_from_js = false)]
pub struct JsReportLayout {
    /// Numbers per report.
    pub fields: u32,
    /// Kind names, by the number in slot `kind`.
    pub kinds: Vec<String>,
    pub slots: JsReportSlots,
    pub flags: JsReportFlags,
}

/// Where each number of a report is, from the report's first.
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

const SLOT: JsReportSlots = JsReportSlots {
    kind: 0,
    tag: 1,
    token: 2,
    acquired_at: 3,
    expires_at: 4,
    pid: 5,
    started_at: 6,
    ended_at: 7,
    duration_ms: 8,
    code: 9,
    signal: 10,
    flags: 11,
    term_sent_at: 12,
    next_due_at: 13,
};

/// Bits of slot `flags`.
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

const FLAG: JsReportFlags = JsReportFlags {
    lock_error: 1,
    group_empty: 2,
    timed_out: 4,
    kill_sent: 8,
    settled: 16,
    message: 32,
    start_error: 64,
    next_fire: 128,
};

#[napi(catch_unwind)]
pub fn report_layout() -> JsReportLayout {
    let named = [(kind::STARTED, "started"), (kind::RAN, "ran"), (kind::HELD, "held"), (kind::GATE_FULL, "gate-full"), (kind::STORE_FAILED, "store-failed")];
    let mut kinds = vec![String::new(); named.len()];
    for (k, name) in named {
        kinds[k as usize] = name.into();
    }
    JsReportLayout { fields: FIELDS as u32, kinds, slots: SLOT, flags: FLAG }
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
        let mut nums = Vec::with_capacity(reports.len() * FIELDS);
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

/// One report's numbers, NaN where a value is absent.
struct Packed([f64; FIELDS]);

impl Packed {
    fn set(&mut self, slot: u32, value: f64) {
        self.0[slot as usize] = value;
    }

    fn lease(&mut self, token: u64, acquired_at: u64, expires_at: u64) {
        self.set(SLOT.token, token as f64);
        self.set(SLOT.acquired_at, acquired_at as f64);
        self.set(SLOT.expires_at, expires_at as f64);
    }
}

fn pack(r: Report, nums: &mut Vec<f64>, strs: &mut Vec<String>) {
    let mut p = Packed([f64::NAN; FIELDS]);
    p.set(SLOT.tag, f64::from(r.tag()));
    let mut flags = 0;
    let mut text = |flags: &mut u32, bit: u32, s: String| {
        *flags |= bit;
        strs.push(s);
    };
    match r {
        Report::Refused { held, .. } => p.set(SLOT.kind, if held { kind::HELD } else { kind::GATE_FULL }),
        Report::Started { token, acquired_at, expires_at, pid, .. } => {
            p.set(SLOT.kind, kind::STARTED);
            p.lease(token, acquired_at, expires_at);
            p.set(SLOT.pid, f64::from(pid));
        }
        Report::StoreFailed { message, .. } => {
            p.set(SLOT.kind, kind::STORE_FAILED);
            text(&mut flags, FLAG.message, message);
        }
        Report::Ran(r) => {
            p.set(SLOT.kind, kind::RAN);
            p.lease(r.token, r.acquired_at, r.expires_at);
            match r.start {
                Ok(pid) => p.set(SLOT.pid, f64::from(pid)),
                Err(e) => {
                    if e.lock {
                        flags |= FLAG.lock_error;
                    }
                    text(&mut flags, FLAG.message, e.message);
                    text(&mut flags, FLAG.start_error, e.code.into());
                }
            }
            p.set(SLOT.started_at, r.started_at);
            p.set(SLOT.ended_at, r.ended_at);
            p.set(SLOT.duration_ms, r.duration_ms);
            p.set(SLOT.code, r.code.map_or(f64::NAN, f64::from));
            p.set(SLOT.signal, r.signal.map_or(f64::NAN, f64::from));
            for (yes, bit) in [(r.group_empty, FLAG.group_empty), (r.timed_out, FLAG.timed_out), (r.kill_sent, FLAG.kill_sent), (r.settled, FLAG.settled)] {
                if yes {
                    flags |= bit;
                }
            }
            p.set(SLOT.term_sent_at, r.term_sent_at);
            if let Some(next) = r.next {
                text(&mut flags, FLAG.next_fire, next.fire_id);
                p.set(SLOT.next_due_at, next.due_at);
            }
        }
    }
    p.set(SLOT.flags, f64::from(flags));
    nums.extend_from_slice(&p.0);
}
