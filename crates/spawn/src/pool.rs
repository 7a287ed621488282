//! Spawning off the caller's thread.
//!
//! posix_spawn holds the thread that calls it until the child has begun its
//! exec, and on a busy machine that is until the scheduler gets round to the
//! child. A controller spawning on its one event-loop thread waited there
//! ~0.6 ms per body in a 10,000-body cold-start wave, three quarters of the
//! wave, with a core idle. A few threads take the requests instead; the
//! caller only queues them.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::reaper::Reaper;

/// What a pool thread runs on the spawn's result, before it takes another
/// request and before the child's exit can be reported: whatever must
/// happen after the child exists and before anyone is told (the caller
/// closes its copy of an inherited descriptor here).
pub type Then = Box<dyn FnOnce(io::Result<i32>) + Send>;

pub struct Job {
    pub cmd: Command,
    /// Carried to the child's exit report (`Reaper::spawn_then`).
    pub tag: u64,
    pub then: Then,
}

/// A request that comes this long after the one before is better spawned
/// on the caller's thread (`inline_turn`): handing it over costs a thread
/// wake-up here and a report back, which at a few fires a second cost the
/// process more CPU than the caller's wait for one exec.
pub const INLINE_AFTER: Duration = Duration::from_millis(5);

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    last_request: Option<Instant>,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    reaper: Arc<Reaper>,
}

pub struct SpawnPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl SpawnPool {
    /// `threads` spawning threads (at least one), each watching its children with `reaper`.
    pub fn start(reaper: Arc<Reaper>, threads: usize) -> io::Result<SpawnPool> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue { jobs: VecDeque::new(), closed: false, last_request: None }), ready: Condvar::new(), reaper });
        let mut pool = SpawnPool { shared, threads: Vec::new() };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            // posix_spawn runs the child's first steps on a stack of its own: 64 KiB is plenty here.
            let t = std::thread::Builder::new().name(format!("orderly-spawn-{i}")).stack_size(64 * 1024).spawn(move || work(&shared))?;
            pool.threads.push(t);
        }
        Ok(pool)
    }

    /// Queues `job`; it comes back when the pool is closing.
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return Err(Box::new(job));
        }
        q.jobs.push_back(job);
        q.last_request = Some(Instant::now());
        drop(q);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Whether the caller should spawn this request itself (with the
    /// reaper, `Reaper::spawn_then`): nothing is queued and the last request
    /// came `INLINE_AFTER` ago or more. Counts as a request either way.
    pub fn inline_turn(&self) -> bool {
        let now = Instant::now();
        let mut q = lock(&self.shared.queue);
        let quiet = !q.closed && q.jobs.is_empty() && q.last_request.is_none_or(|t| now.duration_since(t) >= INLINE_AFTER);
        q.last_request = Some(now);
        quiet
    }

    /// The reaper the pool's children are watched by.
    pub fn reaper(&self) -> &Reaper {
        &self.shared.reaper
    }

    /// Requests not yet taken by a thread.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).jobs.len()
    }
}

impl Drop for SpawnPool {
    /// Requests still queued are not started: each `then` gets ECANCELED.
    fn drop(&mut self) {
        let left: Vec<Job> = {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            q.jobs.drain(..).collect()
        };
        self.shared.ready.notify_all();
        for job in left {
            (job.then)(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        shared.reaper.spawn_then(&job.cmd, job.tag, job.then);
    }
}

fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
