//! The lane's thread, its running runs, and the reaper's callbacks.

use std::cmp::Reverse;
use std::ffi::CString;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orderly_lease::{create_run_lock, record_fire, record_started_body, trim_head, Acquired, LeaseInfo, LeaseStore};
use orderly_spawn::{errno_name, Exit, Job, Reaper, SpawnPool};
use orderly_wal::crash_point;

use crate::armed::{Armed, Next, Ran, Report, RunFiles, StartError};
use crate::repeat::next_fire;
use crate::settle::{fill_env, plain_no_op, with_base, Ended};

#[derive(Clone, Debug)]
pub struct LaneOptions {
    /// Spawning threads for fires that come due together (a cold start).
    pub spawn_threads: usize,
    /// Bytes of a running body's output kept on disk (the head is freed).
    pub keep_output: u64,
    pub trim_every: Duration,
    /// How long the start of a run still going, or the end of one JS is
    /// to follow with the order's next fire, may wait for JS to take it
    /// before it is woken for it. Until then a manual fire of the order
    /// cannot be told it is held, and the order's next fire is not armed.
    pub flush_after: Duration,
    /// How long settled runs the lane itself followed with the order's next
    /// fire may wait, when nothing else does: JS only counts them, and a
    /// second rather than `flush_after` saves a JS wake per ~20 no-ops at 20
    /// fires per second.
    pub chained_flush_after: Duration,
}

impl Default for LaneOptions {
    fn default() -> Self {
        LaneOptions { spawn_threads: 4, keep_output: 128 * 1024, trim_every: Duration::from_millis(500), flush_after: Duration::from_millis(400), chained_flush_after: Duration::from_secs(1) }
    }
}

/// Fires taken in one turn: acquired together, made durable by one sync.
const BATCH: usize = 256;
/// Spawn requests queued for the spawning threads at most. Each holds its
/// run lock open, and every child copies the controller's descriptor table
/// when it is cloned and closes each one at its exec: with hundreds queued
/// in a cold start, a body cost ~25% more CPU.
const QUEUE_MAX: usize = 8;
const QUEUE_WAIT: Duration = Duration::from_millis(1);

struct State {
    due: BinaryHeap<Reverse<(Instant, u32)>>,
    armed: HashMap<u32, Armed>,
    /// SIGKILL deadlines of timed-out bodies, by tag.
    kills: Vec<(Instant, u32)>,
    reports: Vec<Report>,
    /// `flush_after` from the first report in `reports` JS must act on: a
    /// start still without its end, or an end not followed by a next fire.
    soon_due: Option<Instant>,
    /// `chained_flush_after` from the first chained end in `reports`.
    chained_due: Option<Instant>,
    /// Tags whose start is in `reports` and whose end is not: `take` drops a
    /// start followed by its end, which then needs telling no sooner than the end.
    open_starts: HashSet<u32>,
    /// Ends in `reports` not followed by a next fire.
    unchained_ends: usize,
    /// JS was woken and has not taken the reports since.
    notified: bool,
    /// While the thread waits: until when. An earlier deadline wakes it.
    sleeping_until: Option<Instant>,
    /// Every report is urgent (`set_eager`).
    eager: bool,
    closed: bool,
    /// Tags `disarm` found running: their run is not followed by another fire.
    stopped: HashSet<u32>,
}

/// A run whose lease is held and whose shell is not yet reaped.
struct Running {
    lease: Arc<LeaseInfo>,
    fire_id: String,
    pid: i32,
    files: RunFiles,
    started_at: f64,
    started: Instant,
    grace: Duration,
    no_op_codes: Vec<i32>,
    no_op_when_silent: bool,
    urgent_after: Duration,
    timed_out: bool,
    term_sent_at: f64,
    kill_sent: bool,
    /// The fire as armed, to make the order's next one from (`Armed::repeat`).
    repeat: Option<Box<Armed>>,
    /// When its lease was granted: the next fire counts its interval from here.
    acquired: Instant,
}

struct Shared {
    store: Arc<LeaseStore>,
    state: Mutex<State>,
    wake: Condvar,
    running: Mutex<HashMap<u32, Running>>,
    notify: Box<dyn Fn() + Send + Sync>,
    opts: LaneOptions,
    /// What every body inherits (`set_base_env`); a fire's own variables are laid over it.
    base_env: Mutex<Arc<Vec<CString>>>,
}

/// Fires exec orders at the due times JS armed them for, on threads of its
/// own: JS is not woken per fire, only for batches of reports.
pub struct Lane {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    pool: Option<Arc<SpawnPool>>,
}

impl Lane {
    /// `notify` runs (on a lane thread) when reports wait for `take`: at once
    /// for one JS must act on, after `flush_after` for settled ones.
    pub fn start(store: Arc<LeaseStore>, opts: LaneOptions, notify: impl Fn() + Send + Sync + 'static) -> std::io::Result<Lane> {
        let shared = Arc::new(Shared {
            store,
            state: Mutex::new(State { due: BinaryHeap::new(), armed: HashMap::new(), kills: Vec::new(), reports: Vec::new(), soon_due: None, chained_due: None, open_starts: HashSet::new(), unchained_ends: 0, notified: false, sleeping_until: None, eager: false, closed: false, stopped: HashSet::new() }),
            wake: Condvar::new(),
            running: Mutex::new(HashMap::new()),
            notify: Box::new(notify),
            opts,
            base_env: Mutex::new(Arc::new(Vec::new())),
        });
        let (on_exit, on_overdue) = (Arc::clone(&shared), Arc::clone(&shared));
        let reaper = Reaper::start_with_overdue(move |e| exited(&on_exit, e), move |pid, tag| overdue(&on_overdue, pid, tag as u32))?;
        let pool = Arc::new(SpawnPool::start(Arc::new(reaper), shared.opts.spawn_threads)?);
        let (looping, spawning) = (Arc::clone(&shared), Arc::clone(&pool));
        let thread = std::thread::Builder::new().name("orderly-lane".into()).stack_size(256 * 1024).spawn(move || run(&looping, &spawning))?;
        Ok(Lane { shared, thread: Some(thread), pool: Some(pool) })
    }

    /// Fires `a` at its due time (at once if that is past). False once closed.
    pub fn arm(&self, a: Armed) -> bool {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return false;
        }
        let (due, tag) = (a.due, a.tag);
        st.due.push(Reverse((due, tag)));
        st.armed.insert(tag, a);
        if st.sleeping_until.is_some_and(|until| due < until) {
            self.shared.wake.notify_one();
        }
        true
    }

    /// The environment every body inherits, for fires armed from now on
    /// whose `cmd.env` holds only their own variables: sent once, not per fire.
    pub fn set_base_env(&self, env: Vec<CString>) {
        *lock(&self.shared.base_env) = Arc::new(env);
    }

    /// Tells JS of every report at once (it has fires waiting for runs to
    /// start), or of settled runs in batches again.
    pub fn set_eager(&self, eager: bool) {
        let mut st = lock(&self.shared.state);
        st.eager = eager;
        if eager && !st.reports.is_empty() && !st.notified {
            st.notified = true;
            st.clear_flush();
            drop(st);
            (self.shared.notify)();
        }
    }

    /// Takes `tag` back before it fires: true if it had not been taken for
    /// its fire yet. False: it runs, or its report is on the way; either
    /// way it is not followed by a next fire (`Armed::repeat`).
    pub fn disarm(&self, tag: u32) -> bool {
        let mut st = lock(&self.shared.state);
        if st.armed.remove(&tag).is_some() {
            return true;
        }
        st.stopped.insert(tag);
        false
    }

    /// Reports since the last call, in the order they were made; a run's
    /// start is left out when its end is among them.
    pub fn take(&self) -> Vec<Report> {
        let reports = {
            let mut st = lock(&self.shared.state);
            st.notified = false;
            st.clear_flush();
            st.open_starts.clear();
            st.unchained_ends = 0;
            std::mem::take(&mut st.reports)
        };
        // A start is dropped only for an end that follows it: under one tag, a repeated order's next run may start after this one ended.
        let mut ended_later = HashSet::new();
        let mut kept: Vec<Report> = reports
            .into_iter()
            .rev()
            .filter(|r| match r {
                Report::Ran(r) => {
                    ended_later.insert(r.tag);
                    true
                }
                Report::Started { tag, .. } => !ended_later.contains(tag),
                _ => true,
            })
            .collect();
        kept.reverse();
        kept
    }

    /// Fires armed and not yet taken, and runs not yet reaped.
    pub fn pending(&self) -> usize {
        lock(&self.shared.state).armed.len() + lock(&self.shared.running).len()
    }

    /// Stops the threads. Armed fires are dropped; running bodies are left
    /// alone, as a controller that dies leaves them, for the next start to adopt.
    pub fn close(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.pool = None;
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn run(shared: &Arc<Shared>, pool: &SpawnPool) {
    let mut next_trim: Option<Instant> = None;
    loop {
        let mut batch = Vec::new();
        let mut kills = Vec::new();
        let mut flush = false;
        let mut trim = false;
        {
            let mut st = lock(&shared.state);
            loop {
                if st.closed {
                    return;
                }
                let now = Instant::now();
                let crowded = pool.queued() >= QUEUE_MAX;
                while !crowded && batch.len() < BATCH {
                    match st.due.peek() {
                        Some(&Reverse((due, tag))) if due <= now => {
                            st.due.pop();
                            // Absent: disarmed (the heap entry is dropped here, lazily).
                            if let Some(a) = st.armed.remove(&tag) {
                                batch.push(a);
                            }
                        }
                        _ => break,
                    }
                }
                st.kills.retain(|&(at, tag)| {
                    let due = at <= now;
                    if due {
                        kills.push(tag);
                    }
                    !due
                });
                if st.flush_at().is_some_and(|at| at <= now) {
                    st.clear_flush();
                    if !st.reports.is_empty() && !st.notified {
                        st.notified = true;
                        flush = true;
                    }
                }
                if next_trim.is_some_and(|at| at <= now) {
                    next_trim = None;
                    trim = true;
                }
                if !batch.is_empty() || !kills.is_empty() || flush || trim {
                    break;
                }
                let next_due = if crowded { Some(now + QUEUE_WAIT) } else { st.due.peek().map(|r| r.0 .0) };
                let until = [next_due, st.kills.iter().map(|k| k.0).min(), st.flush_at(), next_trim].into_iter().flatten().min();
                st.sleeping_until = Some(until.unwrap_or(now + Duration::from_secs(3600)));
                st = match until {
                    Some(at) => shared.wake.wait_timeout(st, at.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner()).0,
                    None => shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
                st.sleeping_until = None;
            }
        }
        if flush {
            (shared.notify)();
        }
        for tag in kills {
            if let Some(r) = lock(&shared.running).get_mut(&tag) {
                if r.pid > 0 && !r.kill_sent {
                    r.kill_sent = true;
                    unsafe { libc::kill(-r.pid, libc::SIGKILL) };
                }
            }
        }
        if trim {
            trim_outputs(shared);
        }
        if !batch.is_empty() {
            fire(shared, pool, batch);
        }
        if next_trim.is_none() && !lock(&shared.running).is_empty() {
            next_trim = Some(Instant::now() + shared.opts.trim_every);
        }
    }
}

/// A chatty body must not fill the state's filesystem: bodies running
/// longer than one period keep only the tail of their output on disk.
fn trim_outputs(shared: &Shared) {
    let old: Vec<_> = lock(&shared.running).values().filter(|r| r.started.elapsed() >= shared.opts.trim_every).map(|r| r.files.output.clone()).collect();
    for path in old {
        // Gone with its run, or a filesystem without holes: nothing to bound here.
        let _ = trim_head(&path, shared.opts.keep_output);
    }
}

fn fire(shared: &Arc<Shared>, pool: &SpawnPool, batch: Vec<Armed>) {
    let store = &shared.store;
    // This thread waits for the acquires' sync anyway: it does the sync itself.
    let lead = store.wal().map(|w| w.lead());
    let mut granted: Vec<(Armed, Arc<LeaseInfo>, Instant)> = Vec::with_capacity(batch.len());
    let mut last = None;
    for mut a in batch {
        // A repeated fire keeps its meta, to make the next one's from.
        let meta = if a.repeat.is_some() { a.meta.clone() } else { std::mem::take(&mut a.meta) };
        match store.acquire(&a.key, Some(a.ttl_ms), a.group.clone(), Some(meta)) {
            Ok((Acquired::Granted(info), lsn)) => {
                last = last.max(lsn);
                granted.push((a, info, Instant::now()));
            }
            Ok((Acquired::Held, _)) => report(shared, Report::Refused { tag: a.tag, held: true }, true),
            Ok((Acquired::GateFull, _)) => report(shared, Report::Refused { tag: a.tag, held: false }, true),
            Err(e) => report(shared, Report::StoreFailed { tag: a.tag, message: e.to_string() }, true),
        }
    }
    if let (Some(lsn), Some(lead)) = (last, &lead) {
        if let Err(e) = lead.wait_durable(lsn) {
            // Not durable, so not held: nobody may act on them.
            for (a, info, _) in granted {
                store.rollback(&a.key, info.token);
                report(shared, Report::StoreFailed { tag: a.tag, message: e.to_string() }, true);
            }
            return;
        }
    }
    drop(lead);
    // One fire on its own is spawned here: handing it to a thread costs a wake-up more than the wait for its exec.
    let inline = granted.len() == 1 && pool.inline_turn();
    for (a, info, acquired) in granted {
        crash_point("fire:acquired");
        while pool.queued() >= QUEUE_MAX {
            std::thread::sleep(QUEUE_WAIT);
        }
        start(shared, pool, a, info, acquired, inline);
    }
}

fn ran(tag: u32, info: &LeaseInfo, started_at: f64, start: Result<i32, StartError>) -> Ran {
    Ran {
        tag,
        token: info.token,
        acquired_at: info.acquired_at,
        expires_at: info.expires_at,
        start,
        started_at,
        ended_at: started_at,
        duration_ms: 0.0,
        code: None,
        signal: None,
        group_empty: true,
        timed_out: false,
        term_sent_at: 0.0,
        kill_sent: false,
        settled: false,
        next: None,
    }
}

/// The run lock, made again once if the runs directory was removed under us (a cleanup job).
fn open_lock(path: &Path) -> std::io::Result<i32> {
    create_run_lock(path).or_else(|first| {
        let dir = path.parent().ok_or_else(|| std::io::Error::from(first.kind()))?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|_| std::io::Error::new(first.kind(), first.to_string()))?;
        create_run_lock(path).map_err(|_| first)
    })
}

fn start(shared: &Arc<Shared>, pool: &SpawnPool, a: Armed, info: Arc<LeaseInfo>, acquired: Instant, inline: bool) {
    let started_at = now_ms();
    let tag = a.tag;
    let cannot_lock = |e: std::io::Error| {
        let code = e.raw_os_error().map_or("ERR_RUN_LOCK", errno_name);
        Report::Ran(ran(tag, &info, started_at, Err(StartError { lock: true, code, message: format!("could not start the body: {e}") })))
    };
    let fd = match open_lock(&a.files.lock) {
        Ok(fd) => fd,
        Err(e) => return report(shared, cannot_lock(e), true),
    };
    // Before the spawn: once a body holds the lock, the lock names its fire.
    if record_fire(fd, &a.fire_id).is_err() {
        // A full disk (a new slot's first block): an empty lock names no other fire, which is enough to adopt its body.
        if unsafe { libc::ftruncate(fd, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            unsafe { libc::close(fd) };
            return report(shared, cannot_lock(e), true);
        }
    }
    let repeat = a.repeat.is_some().then(|| Box::new(a.clone()));
    let mut cmd = a.cmd;
    let base = Arc::clone(&lock(&shared.base_env));
    cmd.env = with_base(&base, std::mem::take(&mut cmd.env));
    fill_env(&mut cmd.env, info.token, info.acquired_at);
    cmd.inherit.push(fd);
    lock(&shared.running).insert(
        tag,
        Running {
            lease: Arc::clone(&info),
            fire_id: a.fire_id.clone(),
            pid: 0,
            files: a.files,
            started_at,
            started: Instant::now(),
            grace: a.grace,
            no_op_codes: a.no_op_codes,
            no_op_when_silent: a.no_op_when_silent,
            urgent_after: a.urgent_after,
            timed_out: false,
            term_sent_at: 0.0,
            kill_sent: false,
            repeat,
            acquired,
        },
    );
    let (fire_id, timeout_ms, sh) = (a.fire_id, a.timeout_ms, Arc::clone(shared));
    let then = move |result: std::io::Result<i32>| match result {
        Ok(pid) => {
            // A full disk must not fail the run: an adopter just cannot time this body out.
            let _ = record_started_body(fd, &fire_id, pid, timeout_ms);
            unsafe { libc::close(fd) };
            if let Some(r) = lock(&sh.running).get_mut(&tag) {
                r.pid = pid;
            }
            crash_point("fire:spawned");
            report(&sh, Report::Started { tag, token: info.token, acquired_at: info.acquired_at, expires_at: info.expires_at, pid }, false);
        }
        Err(e) => {
            unsafe { libc::close(fd) };
            lock(&sh.running).remove(&tag);
            let code = e.raw_os_error().map_or("ERR_SPAWN", errno_name);
            report(&sh, Report::Ran(ran(tag, &info, started_at, Err(StartError { lock: false, code, message: format!("spawn: {code}: {e}") }))), true);
        }
    };
    if inline {
        pool.reaper().spawn_then(&cmd, u64::from(tag), then);
    } else if let Err(job) = pool.submit(Job { cmd, tag: u64::from(tag), then: Box::new(then) }) {
        (job.then)(Err(std::io::Error::from_raw_os_error(libc::ECANCELED)));
    }
}

/// On the reaping thread: the run's shell has ended.
fn exited(shared: &Shared, e: Exit) {
    let tag = e.tag as u32;
    let Some(r) = lock(&shared.running).remove(&tag) else { return };
    let ended = Ended { code: e.code, signal: e.signal, group_empty: e.group_empty, timed_out: r.timed_out, files: &r.files, no_op_codes: &r.no_op_codes, no_op_when_silent: r.no_op_when_silent };
    let mut settled = false;
    if plain_no_op(&ended) {
        crash_point("fire:body-exited");
        // G4: nothing to audit, and the release is a relaxed local record. If it fails, JS finds out the same way.
        // Written from this thread, rather than waking the writer thread for one relaxed record.
        let _lead = shared.store.wal().map(|w| w.lead());
        settled = shared.store.release(&r.lease.key, r.lease.token, false).is_ok();
    }
    let mut done = Ran {
        ended_at: now_ms(),
        duration_ms: r.started.elapsed().as_secs_f64() * 1000.0,
        code: e.code,
        signal: e.signal,
        group_empty: e.group_empty,
        timed_out: r.timed_out,
        term_sent_at: r.term_sent_at,
        kill_sent: r.kill_sent,
        settled,
        ..ran(tag, &r.lease, r.started_at, Ok(e.pid))
    };
    // Made before the lock: the next fire's copies and its random id are not the lane's to wait for.
    let next = if settled { r.repeat.and_then(|a| next_fire(*a, r.acquired)) } else { None };
    let mut st = lock(&shared.state);
    // In one hold with the report: JS, taking the next fire back, also gets this one's report.
    if let Some(n) = next.filter(|_| !st.stopped.remove(&tag) && !st.closed) {
        let until_due = n.due.saturating_duration_since(Instant::now());
        done.next = Some(Next { fire_id: n.fire_id.clone(), due_at: now_ms() + until_due.as_secs_f64() * 1000.0 });
        if st.sleeping_until.is_some_and(|until| n.due < until) {
            shared.wake.notify_one();
        }
        st.due.push(Reverse((n.due, tag)));
        st.armed.insert(tag, n);
    }
    let urgent = !settled || (done.next.is_none() && r.started.elapsed() >= r.urgent_after);
    report_in(shared, st, Report::Ran(done), urgent);
}

/// On the reaping thread: the run's shell is still running at its timeout.
fn overdue(shared: &Shared, pid: i32, tag: u32) {
    let grace = {
        let mut running = lock(&shared.running);
        let Some(r) = running.get_mut(&tag) else { return };
        // The wrapper wrote this run's exit status: the shell ended in time, its exit is on the way.
        if r.timed_out || exit_recorded(&r.files.exit, &r.fire_id) {
            return;
        }
        r.timed_out = true;
        r.term_sent_at = now_ms();
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        r.grace
    };
    let mut st = lock(&shared.state);
    let at = Instant::now() + grace;
    st.kills.push((at, tag));
    if st.sleeping_until.is_some_and(|until| at < until) {
        shared.wake.notify_one();
    }
}

/// Whether the exit file holds an exit status tagged with this fire.
fn exit_recorded(path: &Path, fire_id: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.split_whitespace().nth(1) == Some(fire_id))
}

fn report(shared: &Shared, r: Report, urgent: bool) {
    report_in(shared, lock(&shared.state), r, urgent);
}

fn report_in(shared: &Shared, mut st: MutexGuard<'_, State>, r: Report, urgent: bool) {
    // The tag's last report: a `disarm` that found it running has nothing left to stop.
    if !matches!(&r, Report::Started { .. } | Report::Ran(Ran { next: Some(_), .. })) {
        st.stopped.remove(&r.tag());
    }
    let chained = match &r {
        Report::Started { tag, .. } => {
            st.open_starts.insert(*tag);
            false
        }
        Report::Ran(ran) => {
            st.open_starts.remove(&ran.tag);
            if ran.next.is_none() {
                st.unchained_ends += 1;
            }
            ran.next.is_some()
        }
        _ => false,
    };
    st.reports.push(r);
    if st.notified {
        return;
    }
    if urgent || st.eager {
        st.notified = true;
        st.clear_flush();
        drop(st);
        (shared.notify)();
        return;
    }
    let was = st.flush_at();
    let now = Instant::now();
    if chained {
        st.chained_due.get_or_insert(now + shared.opts.chained_flush_after);
    } else {
        st.soon_due.get_or_insert(now + shared.opts.flush_after);
    }
    if st.open_starts.is_empty() && st.unchained_ends == 0 {
        st.soon_due = None;
    }
    let at = st.flush_at();
    let sooner = at.is_some_and(|at| was.is_none_or(|was| at < was));
    if sooner && st.sleeping_until.is_some_and(|until| at.is_some_and(|at| at < until)) {
        shared.wake.notify_one();
    }
}

impl State {
    /// When JS is to be woken for reports it has not taken.
    fn flush_at(&self) -> Option<Instant> {
        [self.soon_due, self.chained_due].into_iter().flatten().min()
    }

    fn clear_flush(&mut self) {
        self.soon_due = None;
        self.chained_due = None;
    }
}
