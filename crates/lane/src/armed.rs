//! What JS hands the lane ahead of a fire, and what the lane hands back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orderly_spawn::Command;

use crate::repeat::Repeat;

/// A run's files, as the controller names them from the slot in the lease's meta.
#[derive(Clone, Debug)]
pub struct RunFiles {
    pub lock: PathBuf,
    pub output: PathBuf,
    /// Where the wrapper writes the shell's exit status, tagged with the fire id.
    pub exit: PathBuf,
    pub status: PathBuf,
}

/// One fire of an exec order, prepared by JS while it was awake anyway.
#[derive(Clone)]
pub struct Armed {
    /// The caller's name for this fire in every report.
    pub tag: u32,
    /// The lease key (the order's scoped name).
    pub key: String,
    pub due: Instant,
    pub ttl_ms: u64,
    pub group: Option<String>,
    /// The lease's meta: what a restarted controller reads to adopt the run.
    pub meta: Vec<u8>,
    pub fire_id: String,
    /// The wrapper shell and its environment. `ORDERLY_FENCE=` and
    /// `ORDERLY_FIRED_AT=` entries are filled from the lease once it is
    /// granted; the run lock is added as the first inherited descriptor.
    pub cmd: Command,
    pub files: RunFiles,
    /// The body's timeout, for the run lock's deadline; infinite: none.
    pub timeout_ms: f64,
    /// SIGTERM at the timeout, SIGKILL this long after.
    pub grace: Duration,
    pub no_op_codes: Vec<i32>,
    /// Exit 0 with nothing printed is a no-op too.
    pub no_op_when_silent: bool,
    /// A settled run that ended this long after its start or later is told
    /// to JS at once, not with the next batch (the order's next fire is near).
    pub urgent_after: Duration,
    /// Settled as a plain no-op, it is followed by the order's next fire,
    /// armed here (see `repeat`), until `Lane::disarm` takes the chain back.
    pub repeat: Option<Repeat>,
}

/// How a fire the lane took ended, as far as the lane saw it through.
#[derive(Debug)]
pub enum Report {
    /// Not acquired: held by a run still going (`held`), or its group's gate is full.
    Refused { tag: u32, held: bool },
    /// The acquire or its sync failed: nothing ran, no lease is held.
    StoreFailed { tag: u32, message: String },
    /// Its body runs (told with the next batch; a short run's end comes in the same one).
    Started { tag: u32, token: u64, acquired_at: u64, expires_at: u64, pid: i32 },
    /// Acquired; the run is described in `Ran`.
    Ran(Ran),
}

impl Report {
    pub fn tag(&self) -> u32 {
        match self {
            Report::Refused { tag, .. } | Report::StoreFailed { tag, .. } | Report::Started { tag, .. } => *tag,
            Report::Ran(r) => r.tag,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ran {
    pub tag: u32,
    pub token: u64,
    /// Wall-clock ms.
    pub acquired_at: u64,
    pub expires_at: u64,
    /// The body's pid (its process group), or why it could not be started.
    pub start: Result<i32, StartError>,
    /// Wall-clock ms at the spawn and at the exit.
    pub started_at: f64,
    pub ended_at: f64,
    /// Monotonic ms from the spawn to the exit.
    pub duration_ms: f64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub group_empty: bool,
    /// Our timeout fired: SIGTERM went to the group at `term_sent_at` (wall-clock ms).
    pub timed_out: bool,
    pub term_sent_at: f64,
    pub kill_sent: bool,
    /// A plain no-op whose lease the lane has released: nothing is left to do but count it.
    pub settled: bool,
    /// The order's next fire, armed by the lane under the same tag.
    pub next: Option<Next>,
}

#[derive(Debug, Clone)]
pub struct Next {
    pub fire_id: String,
    /// Wall-clock ms, as far as the monotonic due time can say.
    pub due_at: f64,
}

/// Why a body did not start.
#[derive(Debug, Clone)]
pub struct StartError {
    /// The run lock could not be made (the run's slot must not be reused).
    pub lock: bool,
    /// The errno's name (ENOENT, EACCES, …), as Node's spawn errors have it.
    pub code: &'static str,
    pub message: String,
}
