//! The lane against a real durable store and real children.

use std::collections::HashSet;
use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderly_lane::{Armed, Lane, LaneOptions, Ran, Repeat, Report, RunFiles};
use orderly_lease::{LeaseStore, StoreOptions};
use orderly_spawn::Command;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<LeaseStore>,
    lane: Lane,
    notified: Arc<AtomicUsize>,
}

fn fixture(flush_after: Duration) -> Fixture {
    fixture_with(LaneOptions { flush_after, chained_flush_after: flush_after, ..LaneOptions::default() })
}

fn fixture_with(opts: LaneOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("runs")).unwrap();
    let store = Arc::new(LeaseStore::open(Some(&dir.path().join("leases")), StoreOptions::default()).unwrap());
    let notified = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&notified);
    let lane = Lane::start(Arc::clone(&store), opts, move || {
        n.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    Fixture { dir, store, lane, notified }
}

fn armed(runs: &Path, tag: u32, key: &str, body: &str, in_ms: u64) -> Armed {
    let fire_id = format!("fire-{tag}");
    let slot = format!("s{tag}");
    let files = RunFiles { lock: runs.join(format!("{slot}.lock")), output: runs.join(format!("{slot}.out")), exit: runs.join(format!("{slot}.exit")), status: runs.join(format!("{fire_id}.status")) };
    let env = vec![c("PATH=/usr/bin:/bin"), c("ORDERLY_FENCE="), c("ORDERLY_FIRED_AT="), c(&format!("ORDERLY_STATUS_FILE={}", files.status.display()))];
    Armed {
        tag,
        key: key.into(),
        due: Instant::now() + Duration::from_millis(in_ms),
        ttl_ms: 60_000,
        group: None,
        meta: format!("{{\"fireId\":\"{fire_id}\",\"slot\":\"{slot}\"}}").into_bytes(),
        fire_id,
        cmd: Command { program: c("/bin/sh"), args: vec![c("/bin/sh"), c("-c"), c(body)], env, cwd: None, output: Some(c(files.output.to_str().unwrap())), inherit: vec![], new_group: true, overdue_after: None },
        files,
        timeout_ms: f64::INFINITY,
        grace: Duration::from_millis(200),
        no_op_codes: vec![100],
        no_op_when_silent: false,
        urgent_after: Duration::from_secs(3600),
        repeat: None,
    }
}

/// Reports (but `Started`, counted in `started`) until `n` have come, or panics after 10 s.
fn wait_reports_counting(lane: &Lane, n: usize, started: &mut usize) -> Vec<Report> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} reports: {got:?}", got.len());
        for r in lane.take() {
            if matches!(r, Report::Started { .. }) {
                *started += 1;
            } else {
                got.push(r);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

fn wait_reports(lane: &Lane, n: usize) -> Vec<Report> {
    wait_reports_counting(lane, n, &mut 0)
}

fn ran(r: &Report) -> &Ran {
    match r {
        Report::Ran(r) => r,
        other => panic!("not a run: {other:?}"),
    }
}

#[test]
fn a_no_op_is_settled_and_released_without_waking_js_at_once() {
    let f = fixture(Duration::from_millis(300));
    let runs = f.dir.path().join("runs");
    let t0 = Instant::now();
    assert!(f.lane.arm(armed(&runs, 1, "city/a", "test \"$ORDERLY_FENCE\" -gt 0 && test \"$ORDERLY_FIRED_AT\" -gt 0 && exit 100", 30)));
    let got = wait_reports(&f.lane, 1);
    let r = ran(&got[0]);
    assert!(t0.elapsed() >= Duration::from_millis(30), "fired before its due time");
    assert_eq!(r.code, Some(100), "the fence and fire time were filled in: {r:?}");
    assert!(r.settled, "{r:?}");
    assert!(f.store.holder("city/a").is_none(), "released");
    assert_eq!(f.store.last_run("city/a"), Some(r.acquired_at));
    // The lock names the fire and its body, as an adopter reads it.
    let lock = std::fs::read_to_string(runs.join("s1.lock")).unwrap();
    assert!(lock.starts_with(&format!("{{\"fireId\":\"fire-1\",\"pgid\":{},\"timeoutAt\":null}}", r.start.as_ref().unwrap())), "{lock}");
    // A settled run is told with the batch, not at once.
    assert_eq!(f.notified.load(Ordering::SeqCst), 0);
    let t1 = Instant::now();
    assert!(f.lane.arm(armed(&runs, 2, "city/a", "exit 100", 0)));
    let told = first_notified(&f, t1);
    assert!(told >= Duration::from_millis(300), "told before flush_after: {told:?}");
}

/// How long after `since` JS was first woken (panics after 5 s).
fn first_notified(f: &Fixture, since: Instant) -> Duration {
    while f.notified.load(Ordering::SeqCst) == 0 {
        assert!(since.elapsed() < Duration::from_secs(5), "never told");
        std::thread::sleep(Duration::from_millis(5));
    }
    since.elapsed()
}

#[test]
fn chained_no_ops_wait_for_their_own_deadline_and_whatever_js_must_act_on_does_not() {
    let opts = LaneOptions { flush_after: Duration::from_millis(150), chained_flush_after: Duration::from_millis(900), ..LaneOptions::default() };
    // A no-op the lane follows with the order's next fire: its start and its end are
    // both queued before the start's deadline, so JS waits for the chained one's.
    let f = fixture_with(opts.clone());
    let runs = f.dir.path().join("runs");
    let t0 = Instant::now();
    assert!(f.lane.arm(repeated(armed(&runs, 1, "city/quick", "exit 100", 0), 60_000)));
    let told = first_notified(&f, t0);
    assert!(told >= Duration::from_millis(900), "told before chained_flush_after: {told:?}");
    let got = f.lane.take();
    assert_eq!(got.len(), 1, "the start is left out: {got:?}");
    assert!(ran(&got[0]).settled && ran(&got[0]).next.is_some(), "{got:?}");
    assert!(f.lane.disarm(1));
    // A no-op JS is to follow with the next fire itself: told by flush_after.
    let f = fixture_with(opts.clone());
    let t1 = Instant::now();
    assert!(f.lane.arm(armed(&runs, 2, "city/once", "exit 100", 0)));
    let told = first_notified(&f, t1);
    assert!(told < Duration::from_millis(600), "an unchained end waited for the chained deadline: {told:?}");
    assert!(ran(&f.lane.take()[0]).settled);
    // A body still running: its start is told by flush_after, even behind a chained end.
    let f = fixture_with(opts);
    assert!(f.lane.arm(repeated(armed(&runs, 3, "city/quick", "exit 100", 0), 60_000)));
    std::thread::sleep(Duration::from_millis(50));
    let t2 = Instant::now();
    assert!(f.lane.arm(armed(&runs, 4, "city/slow", "sleep 2; exit 100", 0)));
    let told = first_notified(&f, t2);
    assert!(told < Duration::from_millis(600), "the start waited for the chained deadline: {told:?}");
    let got = f.lane.take();
    assert!(got.iter().any(|r| matches!(r, Report::Started { tag: 4, .. })), "{got:?}");
    assert!(got.iter().any(|r| matches!(r, Report::Ran(Ran { tag: 3, .. }))), "{got:?}");
    f.lane.disarm(3);
}

#[test]
fn anything_but_a_plain_no_op_is_handed_back_at_once_with_the_lease_held() {
    let f = fixture(Duration::from_secs(30));
    let runs = f.dir.path().join("runs");
    f.lane.arm(armed(&runs, 1, "city/work", "exit 0", 0));
    f.lane.arm(armed(&runs, 2, "city/fail", "exit 3", 0));
    f.lane.arm(armed(&runs, 3, "city/status", "echo did-work > \"$ORDERLY_STATUS_FILE\"; exit 100", 0));
    f.lane.arm(armed(&runs, 4, "city/leftover", "sleep 5 & exit 100", 0));
    let mut got = wait_reports(&f.lane, 4);
    got.sort_by_key(|r| r.tag());
    for (r, key) in got.iter().zip(["city/work", "city/fail", "city/status", "city/leftover"]) {
        assert!(!ran(r).settled, "{key}: {r:?}");
        assert_eq!(f.store.holder(key).map(|l| l.token), Some(ran(r).token), "{key} is still held for JS to finish");
    }
    assert!(!ran(&got[3]).group_empty);
    assert!(f.notified.load(Ordering::SeqCst) >= 1, "JS is woken for them without waiting for flush_after");
    unsafe { libc::kill(-*ran(&got[3]).start.as_ref().unwrap(), libc::SIGKILL) };
}

#[test]
fn a_held_key_is_refused_and_a_disarmed_fire_never_runs() {
    let f = fixture(Duration::from_millis(50));
    let runs = f.dir.path().join("runs");
    let (taken, _) = f.store.acquire("city/busy", None, None, None).unwrap();
    assert!(matches!(taken, orderly_lease::Acquired::Granted(_)));
    f.lane.arm(armed(&runs, 1, "city/busy", "exit 100", 0));
    f.lane.arm(armed(&runs, 2, "city/later", "touch ran; exit 100", 100));
    assert!(f.lane.disarm(2));
    assert!(!f.lane.disarm(2), "taken back once");
    let got = wait_reports(&f.lane, 1);
    assert!(matches!(got[0], Report::Refused { tag: 1, held: true }), "{got:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.lane.take().is_empty());
    assert!(f.store.last_run("city/later").is_none());
    assert_eq!(f.lane.pending(), 0);
}

#[test]
fn a_body_past_its_timeout_gets_sigterm_then_sigkill_after_the_grace() {
    let f = fixture(Duration::from_millis(50));
    let runs = f.dir.path().join("runs");
    let mut a = armed(&runs, 1, "city/slow", "trap '' TERM; sleep 5", 0);
    a.cmd.overdue_after = Some(Duration::from_millis(100));
    a.timeout_ms = 100.0;
    let t0 = Instant::now();
    f.lane.arm(a);
    let got = wait_reports(&f.lane, 1);
    let r = ran(&got[0]);
    assert!(r.timed_out && r.kill_sent, "{r:?}");
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert!(t0.elapsed() >= Duration::from_millis(300) && t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(!r.settled);
}

#[test]
fn fires_due_together_share_one_sync() {
    let f = fixture(Duration::from_millis(20));
    let runs = f.dir.path().join("runs");
    let before = f.store.stats().wal.unwrap().syncs;
    // One due time for all: arming them one by one on a loaded machine must not spread them over several turns.
    let due = Instant::now() + Duration::from_millis(300);
    for tag in 0..40 {
        let mut a = armed(&runs, tag, &format!("city/o{tag}"), "exit 100", 0);
        a.due = due;
        f.lane.arm(a);
    }
    let mut started = 0;
    let got = wait_reports_counting(&f.lane, 40, &mut started);
    started += f.lane.take().len();
    assert!(started <= 40, "a run's start is told at most once, and not beside its end");
    // Not all settled: a body spawned meanwhile holds another run's lock between its clone and its exec, and a lock seen held goes to JS.
    assert!(got.iter().all(|r| ran(r).code == Some(100)), "{got:?}");
    let syncs = f.store.stats().wal.unwrap().syncs - before;
    assert!(syncs <= 3, "{syncs} syncs for 40 acquires due together");
}

#[test]
fn a_long_run_is_told_as_started_before_it_ends_with_the_shared_environment_under_its_own() {
    let f = fixture(Duration::from_millis(50));
    let runs = f.dir.path().join("runs");
    f.lane.set_base_env(vec![c("SHARED=yes"), c("PATH=/nowhere")]);
    f.lane.arm(armed(&runs, 1, "city/long", "test \"$SHARED\" = yes && test \"$PATH\" = /usr/bin:/bin && sleep 0.5 && exit 100", 0));
    let t0 = Instant::now();
    let started = loop {
        assert!(t0.elapsed() < Duration::from_secs(5), "never told as started");
        if let Some(r) = f.lane.take().into_iter().next() {
            break r;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(started, Report::Started { tag: 1, pid, .. } if pid > 0), "{started:?}");
    assert!(t0.elapsed() < Duration::from_millis(450), "told while it runs");
    let got = wait_reports(&f.lane, 1);
    assert!(ran(&got[0]).settled, "the base's PATH lost to the fire's own, SHARED came through: {got:?}");
}

fn repeated(a: Armed, every_ms: u64) -> Armed {
    Armed { repeat: Some(Repeat { every: Duration::from_millis(every_ms), jitter: Duration::ZERO }), ..a }
}

#[test]
fn a_repeated_no_op_arms_the_order_s_next_fire_itself_until_taken_back() {
    let f = fixture(Duration::from_millis(20));
    let runs = f.dir.path().join("runs");
    let ids = f.dir.path().join("ids");
    let mut a = armed(&runs, 1, "city/r", &format!("echo \"$ORDERLY_FIRE_ID $ORDERLY_STATUS_FILE\" >> {}; exit 100", ids.display()), 0);
    a.cmd.env.push(c("ORDERLY_FIRE_ID=fire-1"));
    assert!(f.lane.arm(repeated(a, 150)));
    let got = wait_reports(&f.lane, 4);
    let runs_seen: Vec<&Ran> = got.iter().map(ran).collect();
    assert!(runs_seen.iter().all(|r| r.settled && r.next.is_some()), "{got:?}");
    for w in runs_seen.windows(2) {
        assert!(w[1].acquired_at + 1 >= w[0].acquired_at + 150, "never early: {} then {}", w[0].acquired_at, w[1].acquired_at);
        assert!(w[0].next.as_ref().unwrap().due_at + 1.0 >= w[0].acquired_at as f64 + 150.0);
    }
    let next_ids: Vec<String> = runs_seen.iter().map(|r| r.next.as_ref().unwrap().fire_id.clone()).collect();
    let mut want: Vec<String> = vec!["fire-1".into()];
    want.extend(next_ids[..3].iter().cloned());
    let lines: Vec<String> = std::fs::read_to_string(&ids).unwrap().lines().take(4).map(String::from).collect();
    let expected: Vec<String> = want.iter().map(|id| format!("{id} {}", runs.join(format!("{id}.status")).display())).collect();
    assert_eq!(lines, expected, "each fire has its own id, in its variables and its status file's name");
    assert_eq!(next_ids.iter().collect::<HashSet<_>>().len(), 4);
    // Taken back between fires, or while one runs: either way nothing follows it.
    let armed_now = f.lane.disarm(1);
    std::thread::sleep(Duration::from_millis(400));
    let rest = f.lane.take();
    let ended: Vec<&Ran> = rest.iter().filter_map(|r| if let Report::Ran(r) = r { Some(r) } else { None }).collect();
    if armed_now {
        assert!(ended.iter().all(|r| r.next.is_some()), "reports from before the disarm only: {rest:?}");
    } else {
        assert!(ended.last().is_some_and(|r| r.next.is_none()), "the run in progress ends the chain: {rest:?}");
    }
    let count = std::fs::read_to_string(&ids).unwrap().lines().count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(std::fs::read_to_string(&ids).unwrap().lines().count(), count, "no fire after the disarm");
    assert_eq!(f.lane.pending(), 0);
}

#[test]
fn a_repeat_taken_back_while_it_runs_ends_with_that_run() {
    let f = fixture(Duration::from_millis(20));
    let runs = f.dir.path().join("runs");
    assert!(f.lane.arm(repeated(armed(&runs, 2, "city/slow", "sleep 0.3; exit 100", 0), 50)));
    let t0 = Instant::now();
    while !f.lane.take().iter().any(|r| matches!(r, Report::Started { .. })) {
        assert!(t0.elapsed() < Duration::from_secs(5), "never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!f.lane.disarm(2), "it runs: not taken back");
    let got = wait_reports(&f.lane, 1);
    assert!(ran(&got[0]).settled && ran(&got[0]).next.is_none(), "{got:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.lane.take().is_empty());
    assert_eq!(f.lane.pending(), 0);
}
