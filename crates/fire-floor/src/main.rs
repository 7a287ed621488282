//! `fire-floor`: what one exec fire costs on this machine when nothing but
//! the work a fire cannot skip runs, at the pace bench:schedule fires.
//!
//! A fire that keeps orderly's promises must make a record durable before
//! its body starts (write + fdatasync), start the body in its own process
//! group, and hear of its exit without a thread per child (a pidfd). One
//! thread does exactly that, paced by an absolute timer, with no JS, no
//! second thread and no bookkeeping; the controller's CPU per fire is
//! measured against it. On a VM, a fire at 20 per second pays mostly for
//! waking up (cold caches, idle exits), which is why the parts are measured
//! in the same paced loop rather than back to back.
//!
//! Prints one JSON object on stdout: `{"rate","seconds","cpuidUs","phases":
//! [{"phase","fires","cpuUsPerFire","childrenCpuUsPerFire"}]}`, one phase per
//! part: `wake` (the timer only), `durable` (+ write and fdatasync), `spawn`
//! (+ spawn and reap, no sync) and `fire` (all of it). `cpuidUs` is what one
//! CPUID instruction costs here (null off x86-64): glibc executes it 68 times
//! as any process starts (2.36, counted by single-stepping `/bin/true`), and
//! where each one traps to a hypervisor that is most of what a body costs.

use std::ffi::CString;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: fire-floor --dir DIR [--rate R] [--seconds T] [--body CMD]

Runs four phases of T/4 seconds each (default T 20), R fires per second
(default 20): wake, durable, spawn, fire. A fire's record is 128 bytes,
pwrite() to a preallocated file in DIR, then fdatasync(); its body is
/bin/sh -c CMD (default 'exit 100') in a process group of its own, stdout
and stderr on /dev/null, this process's environment; its exit is awaited
with poll() on a pidfd, then reaped. Prints this process's CPU per fire
(getrusage, children excluded) and the bodies' own.";

struct Args {
    dir: String,
    rate: f64,
    seconds: f64,
    body: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: String::new(),
        rate: 20.0,
        seconds: 20.0,
        body: "exit 100".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag} must be a positive number, got {v}"))
        };
        match flag.as_str() {
            "--dir" => args.dir = value,
            "--rate" => args.rate = number(&value)?,
            "--seconds" => args.seconds = number(&value)?,
            "--body" => args.body = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.dir.is_empty() {
        return Err("--dir is required".into());
    }
    Ok(args)
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Wake,
    Durable,
    Spawn,
    Fire,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Wake => "wake",
            Phase::Durable => "durable",
            Phase::Spawn => "spawn",
            Phase::Fire => "fire",
        }
    }
    fn syncs(self) -> bool {
        matches!(self, Phase::Durable | Phase::Fire)
    }
    fn spawns(self) -> bool {
        matches!(self, Phase::Spawn | Phase::Fire)
    }
}

/// Microseconds of CPU (user + system) of this process or of its reaped children.
fn cpu_us(who: libc::c_int) -> f64 {
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut r) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(r.ru_utime) + us(r.ru_stime)
}

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A fire's durable record: bench/wal.mjs's record size.
const RECORD_BYTES: usize = 128;
/// The preallocated log, rewritten from its start once full.
const LOG_BYTES: usize = 4 << 20;

struct Log {
    fd: libc::c_int,
    offset: usize,
    record: [u8; RECORD_BYTES],
}

impl Log {
    /// A zero-filled, synced file: appends then need not persist a size change, as orderly's segments.
    fn create(path: &str) -> Result<Log, String> {
        let c = CString::new(path).map_err(|_| "the path has a NUL byte".to_string())?;
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(last_os_error(&format!("open {path}")));
        }
        let zeros = vec![0u8; LOG_BYTES];
        if unsafe { libc::write(fd, zeros.as_ptr().cast(), zeros.len()) } != zeros.len() as isize {
            return Err(last_os_error(&format!("preallocate {path}")));
        }
        if unsafe { libc::fsync(fd) } != 0 {
            return Err(last_os_error(&format!("fsync {path}")));
        }
        Ok(Log {
            fd,
            offset: 0,
            record: [b'r'; RECORD_BYTES],
        })
    }

    fn append_durably(&mut self) -> Result<(), String> {
        if self.offset + RECORD_BYTES > LOG_BYTES {
            self.offset = 0;
        }
        let written = unsafe {
            libc::pwrite(
                self.fd,
                self.record.as_ptr().cast(),
                RECORD_BYTES,
                self.offset as libc::off_t,
            )
        };
        if written != RECORD_BYTES as isize {
            return Err(last_os_error("pwrite"));
        }
        self.offset += RECORD_BYTES;
        if unsafe { libc::fdatasync(self.fd) } != 0 {
            return Err(last_os_error("fdatasync"));
        }
        Ok(())
    }
}

struct Body {
    argv: Vec<CString>,
    devnull: CString,
}

impl Body {
    fn new(cmd: &str) -> Result<Body, String> {
        let argv = ["/bin/sh", "-c", cmd]
            .iter()
            .map(|s| CString::new(*s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the body has a NUL byte".to_string())?;
        Ok(Body {
            argv,
            devnull: CString::new("/dev/null").unwrap(),
        })
    }

    /// Starts the body and waits for it on a pidfd, as orderly's reaper does.
    fn run(&self) -> Result<(), String> {
        let mut argv: Vec<*mut libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr() as *mut libc::c_char)
            .collect();
        argv.push(std::ptr::null_mut());
        extern "C" {
            static environ: *const *mut libc::c_char;
        }
        let mut pid: libc::pid_t = 0;
        unsafe {
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            libc::posix_spawnattr_init(&mut attr);
            libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETPGROUP as libc::c_short);
            libc::posix_spawnattr_setpgroup(&mut attr, 0);
            libc::posix_spawn_file_actions_init(&mut actions);
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                self.devnull.as_ptr(),
                libc::O_WRONLY,
                0,
            );
            libc::posix_spawn_file_actions_adddup2(&mut actions, 1, 2);
            let rc = libc::posix_spawn(&mut pid, argv[0], &actions, &attr, argv.as_ptr(), environ);
            libc::posix_spawn_file_actions_destroy(&mut actions);
            libc::posix_spawnattr_destroy(&mut attr);
            if rc != 0 {
                return Err(format!(
                    "posix_spawn: {}",
                    std::io::Error::from_raw_os_error(rc)
                ));
            }
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
            if pidfd < 0 {
                return Err(last_os_error("pidfd_open"));
            }
            let mut p = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // Only a signal may interrupt the wait; any other failure would spin here.
            while libc::poll(&mut p, 1, -1) < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    libc::close(pidfd);
                    return Err(last_os_error("poll of the pidfd"));
                }
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            libc::close(pidfd);
        }
        Ok(())
    }
}

/// Microseconds per CPUID, the least of five rounds (a round the scheduler interrupted reads high).
#[cfg(target_arch = "x86_64")]
fn cpuid_us() -> Option<f64> {
    const ROUND: u32 = 400;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for i in 0..ROUND {
            // Leaf 4, sub-leaves 0-3 (the cache levels): the leaf glibc's cache probe walks.
            // Safe since Rust 1.87; the block keeps the 1.85 floor building.
            #[allow(unused_unsafe)]
            std::hint::black_box(unsafe { std::arch::x86_64::__cpuid_count(4, i & 3) });
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUND));
    }
    Some(best)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_us() -> Option<f64> {
    None
}

fn now() -> libc::timespec {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t
}

fn add(t: libc::timespec, d: Duration) -> libc::timespec {
    let ns = t.tv_nsec as u64 + d.subsec_nanos() as u64;
    libc::timespec {
        tv_sec: t.tv_sec + d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

fn run_phase(phase: Phase, args: &Args, log: &mut Log, body: &Body) -> Result<String, String> {
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let fires = ((args.seconds / 4.0) * args.rate).round().max(1.0) as u64;
    let (self0, children0) = (cpu_us(libc::RUSAGE_SELF), cpu_us(libc::RUSAGE_CHILDREN));
    let mut due = now();
    for _ in 0..fires {
        // Due times on a fixed grid: a late fire does not push the next one back.
        due = add(due, gap);
        while unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &due,
                std::ptr::null_mut(),
            )
        } == libc::EINTR
        {}
        if phase.syncs() {
            log.append_durably()?;
        }
        if phase.spawns() {
            body.run()?;
        }
    }
    let per = |us: f64| us / fires as f64;
    Ok(format!(
        "{{\"phase\":\"{}\",\"fires\":{fires},\"cpuUsPerFire\":{:.1},\"childrenCpuUsPerFire\":{:.1}}}",
        phase.name(),
        per(cpu_us(libc::RUSAGE_SELF) - self0),
        per(cpu_us(libc::RUSAGE_CHILDREN) - children0)
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fire-floor: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let path = format!("{}/fire-floor.log", args.dir.trim_end_matches('/'));
    let result = (|| {
        let mut log = Log::create(&path)?;
        let body = Body::new(&args.body)?;
        let mut phases = Vec::new();
        for phase in [Phase::Wake, Phase::Durable, Phase::Spawn, Phase::Fire] {
            phases.push(run_phase(phase, &args, &mut log, &body)?);
        }
        Ok::<_, String>(phases)
    })();
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(phases) => {
            let cpuid = cpuid_us().map_or_else(|| "null".to_string(), |us| format!("{us:.2}"));
            println!(
                "{{\"rate\":{},\"seconds\":{},\"cpuidUs\":{cpuid},\"phases\":[{}]}}",
                args.rate,
                args.seconds,
                phases.join(",")
            );
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("fire-floor: {msg}");
            ExitCode::FAILURE
        }
    }
}
