//! A cooldown order's next fire, made by the lane when a fire settles.
//!
//! A plain no-op changes nothing JS keeps but counters, so the order's next
//! fire is the same fire with a new id, due one interval (plus its jitter)
//! after this one's acquire on the monotonic clock, as JS times its own.
//! JS hears of both in one report, in a batch, and may take the next back.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::armed::Armed;

#[derive(Clone, Debug)]
pub struct Repeat {
    pub every: Duration,
    /// Up to this much later, drawn anew for each fire.
    pub jitter: Duration,
}

/// The next fire, made from this one's template in place: every occurrence
/// of its fire id (in the lease's meta, the body's environment and the
/// status file's name) replaced by a new one. None if no random id could be
/// drawn: JS then schedules it.
pub fn next_fire(mut next: Armed, acquired: Instant) -> Option<Armed> {
    let repeat = next.repeat.as_ref()?;
    let mut random = [0u8; 24];
    fill_random(&mut random)?;
    let fire_id = uuid_v4(random[..16].try_into().expect("16 bytes"));
    let jitter = match repeat.jitter.as_nanos() as u64 {
        0 => 0,
        span => u64::from_le_bytes(random[16..].try_into().expect("8 bytes")) % span,
    };
    next.due = acquired + repeat.every + Duration::from_nanos(jitter);
    let old = std::mem::replace(&mut next.fire_id, fire_id);
    let (old, new) = (old.as_bytes(), next.fire_id.as_bytes());
    next.meta = replace(&next.meta, old, new);
    for entry in &mut next.cmd.env {
        if find(entry.as_bytes(), old).is_some() {
            // A UUID holds no NUL, and the entry held none.
            *entry = CString::new(replace(entry.as_bytes(), old, new)).ok()?;
        }
    }
    next.files.status = PathBuf::from(OsString::from_vec(replace(next.files.status.as_os_str().as_bytes(), old, new)));
    Some(next)
}

fn fill_random(buf: &mut [u8]) -> Option<()> {
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n == buf.len() as isize).then_some(())
}

/// As `crypto.randomUUID()` spells one: lowercase, version 4, RFC 4122 variant.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace(hay: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(at) = find(rest, old) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(new);
        rest = &rest[at + old.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::armed::RunFiles;
    use orderly_spawn::Command;

    const OLD: &str = "0b6d3f0e-8a4c-4d2e-9f3a-5c1b2a3d4e5f";

    fn armed(jitter_ms: u64) -> Armed {
        let c = |s: String| CString::new(s).unwrap();
        Armed {
            tag: 7,
            key: "city/o".into(),
            due: Instant::now(),
            ttl_ms: 1000,
            group: None,
            meta: format!("{{\"fireId\":\"{OLD}\",\"order\":\"o\",\"slot\":\"s3\"}}").into_bytes(),
            fire_id: OLD.into(),
            cmd: Command {
                program: c("/bin/sh".into()),
                args: vec![c("/bin/sh".into()), c("-c".into()), c("exit 100".into())],
                env: vec![c(format!("ORDERLY_FIRE_ID={OLD}")), c(format!("ORDERLY_EXIT_TAG={OLD}")), c(format!("ORDERLY_STATUS_FILE=/runs/{OLD}.status")), c("ORDERLY_FENCE=".into()), c("A=b".into())],
                cwd: None,
                output: None,
                inherit: Vec::new(),
                new_group: true,
                overdue_after: None,
            },
            files: RunFiles { lock: "/runs/s3.lock".into(), output: "/runs/s3.out".into(), exit: "/runs/s3.exit".into(), status: format!("/runs/{OLD}.status").into() },
            timeout_ms: 1000.0,
            grace: Duration::from_millis(500),
            no_op_codes: vec![100],
            no_op_when_silent: false,
            urgent_after: Duration::ZERO,
            repeat: Some(Repeat { every: Duration::from_secs(60), jitter: Duration::from_millis(jitter_ms) }),
        }
    }

    #[test]
    fn the_next_fire_is_the_same_fire_under_a_new_id() {
        let a = armed(0);
        let acquired = Instant::now();
        let n = next_fire(a.clone(), acquired).unwrap();
        let id = n.fire_id.clone();
        assert_ne!(id, OLD);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert!("89ab".contains(&id[19..20]), "RFC 4122 variant: {id}");
        assert_eq!(String::from_utf8(n.meta.clone()).unwrap(), format!("{{\"fireId\":\"{id}\",\"order\":\"o\",\"slot\":\"s3\"}}"));
        let env: Vec<&str> = n.cmd.env.iter().map(|e| e.to_str().unwrap()).collect();
        let want = [format!("ORDERLY_FIRE_ID={id}"), format!("ORDERLY_EXIT_TAG={id}"), format!("ORDERLY_STATUS_FILE=/runs/{id}.status"), "ORDERLY_FENCE=".into(), "A=b".into()];
        assert_eq!(env, want);
        assert_eq!(n.files.status, PathBuf::from(format!("/runs/{id}.status")));
        assert_eq!(n.files.lock, a.files.lock, "the slot is kept");
        assert_eq!(n.due, acquired + Duration::from_secs(60), "one interval after the acquire, no jitter asked");
        assert_eq!((n.tag, &n.key), (a.tag, &a.key));
        // The next one is made from this one: its id, not the first, is what is replaced.
        let n2 = next_fire(n.clone(), acquired).unwrap();
        assert_ne!(n2.fire_id, id, "a new id each time");
        assert_eq!(String::from_utf8(n2.meta).unwrap(), format!("{{\"fireId\":\"{}\",\"order\":\"o\",\"slot\":\"s3\"}}", n2.fire_id));
        assert_eq!(n2.files.status, PathBuf::from(format!("/runs/{}.status", n2.fire_id)));
    }

    #[test]
    fn jitter_is_drawn_within_its_span() {
        let a = armed(1000);
        let acquired = Instant::now();
        let delays: Vec<Duration> = (0..200).map(|_| next_fire(a.clone(), acquired).unwrap().due - acquired - Duration::from_secs(60)).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_secs(1)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(500)) && delays.iter().any(|d| *d < Duration::from_millis(500)), "{delays:?}");
    }

    #[test]
    fn a_fire_without_repeat_has_no_next() {
        let a = Armed { repeat: None, ..armed(0) };
        assert!(next_fire(a, Instant::now()).is_none());
    }
}
