//! Which ended runs the lane may settle without JS.
//!
//! Only the plainest: the body said "nothing to do" by its exit code (or
//! by printing nothing, where the order asked for that), wrote no status
//! file, left nothing behind in its group or holding its run lock, and was
//! not timed out. Everything else (a status file to read, output to
//! inspect, leftovers to kill, an audit record to write) goes back to JS,
//! which finishes it exactly as it finishes a run it started itself.

use std::ffi::CString;
use std::path::Path;

use orderly_lease::run_lock_held;

use crate::armed::RunFiles;

/// What the lane knows of a run when its shell has been reaped.
pub struct Ended<'a> {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub group_empty: bool,
    pub timed_out: bool,
    pub files: &'a RunFiles,
    pub no_op_codes: &'a [i32],
    pub no_op_when_silent: bool,
}

pub fn plain_no_op(e: &Ended) -> bool {
    if e.timed_out || e.signal.is_some() || !e.group_empty {
        return false;
    }
    let Some(code) = e.code else { return false };
    let by_code = e.no_op_codes.contains(&code);
    let silent = !by_code && code == 0 && e.no_op_when_silent && size(&e.files.output) == Some(0);
    if !by_code && !silent {
        return false;
    }
    // A status file may turn the no-op into did-work; a held lock means a process of the run lives on.
    !exists(&e.files.status) && matches!(run_lock_held(&e.files.lock), Ok(false))
}

fn exists(path: &Path) -> bool {
    // An lstat that fails for any other reason than absence is left to JS to explain.
    !matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

fn size(path: &Path) -> Option<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

/// The environment shared by every body (`base`) with a fire's own
/// variables laid over it: `over` wins for any name both have.
pub fn with_base(base: &[CString], over: Vec<CString>) -> Vec<CString> {
    let name = |e: &CString| -> Vec<u8> { e.as_bytes().split(|b| *b == b'=').next().unwrap_or_default().to_vec() };
    let mine: std::collections::HashSet<Vec<u8>> = over.iter().map(name).collect();
    let mut env: Vec<CString> = base.iter().filter(|e| !mine.contains(&name(e))).cloned().collect();
    env.extend(over);
    env
}

/// Fills `NAME=` placeholders of `env` with the lease's values.
pub fn fill_env(env: &mut [CString], fence: u64, fired_at: u64) {
    for entry in env.iter_mut() {
        let bytes = entry.as_bytes();
        let value = match bytes {
            b"ORDERLY_FENCE=" => fence,
            b"ORDERLY_FIRED_AT=" => fired_at,
            _ => continue,
        };
        let name = &bytes[..bytes.len() - 1];
        // Digits only: no NUL can appear.
        *entry = CString::new(format!("{}={value}", String::from_utf8_lossy(name))).expect("no NUL in a number");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> RunFiles {
        RunFiles { lock: dir.join("s0.lock"), output: dir.join("s0.out"), exit: dir.join("s0.exit"), status: dir.join("f.status") }
    }

    fn ended<'a>(files: &'a RunFiles, code: Option<i32>) -> Ended<'a> {
        Ended { code, signal: None, group_empty: true, timed_out: false, files, no_op_codes: &[100], no_op_when_silent: false }
    }

    #[test]
    fn only_a_plain_no_op_is_settled_here() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        assert!(plain_no_op(&ended(&f, Some(100))));
        assert!(!plain_no_op(&ended(&f, Some(0))), "did-work is audited");
        assert!(!plain_no_op(&ended(&f, Some(1))), "a failure is audited");
        assert!(!plain_no_op(&ended(&f, None)));
        assert!(!plain_no_op(&Ended { signal: Some(9), ..ended(&f, Some(100)) }));
        assert!(!plain_no_op(&Ended { timed_out: true, ..ended(&f, Some(100)) }));
        assert!(!plain_no_op(&Ended { group_empty: false, ..ended(&f, Some(100)) }), "leftovers are JS's to kill");
        std::fs::write(&f.status, "did-work").unwrap();
        assert!(!plain_no_op(&ended(&f, Some(100))), "a status file is JS's to read");
        std::fs::remove_file(&f.status).unwrap();
        let fd = orderly_lease::create_run_lock(&f.lock).unwrap();
        assert!(!plain_no_op(&ended(&f, Some(100))), "a process of the run still holds its lock");
        unsafe { libc::close(fd) };
        assert!(plain_no_op(&ended(&f, Some(100))));
    }

    #[test]
    fn silence_is_a_no_op_only_when_asked_and_only_with_an_empty_output() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let silent = |f| Ended { no_op_when_silent: true, ..ended(f, Some(0)) };
        assert!(plain_no_op(&silent(&f)), "no output file: nothing printed");
        std::fs::write(&f.output, "").unwrap();
        assert!(plain_no_op(&silent(&f)));
        std::fs::write(&f.output, "\n").unwrap();
        assert!(!plain_no_op(&silent(&f)), "whitespace is JS's to judge");
        assert!(!plain_no_op(&Ended { no_op_when_silent: true, ..ended(&f, Some(3)) }));
    }

    #[test]
    fn a_fire_s_own_variables_win_over_the_shared_ones() {
        let cs = |v: &[&str]| v.iter().map(|s| CString::new(*s).unwrap()).collect::<Vec<_>>();
        let env = with_base(&cs(&["PATH=/bin", "HOME=/root", "LANG=C"]), cs(&["HOME=/tmp", "ORDERLY_FIRE_ID=f", "EMPTY="]));
        let got: Vec<&str> = env.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(got, ["PATH=/bin", "LANG=C", "HOME=/tmp", "ORDERLY_FIRE_ID=f", "EMPTY="]);
    }

    #[test]
    fn placeholders_get_the_lease_values_and_nothing_else_changes() {
        let mut env: Vec<CString> = ["A=1", "ORDERLY_FENCE=", "ORDERLY_FENCE_X=", "ORDERLY_FIRED_AT="].iter().map(|s| CString::new(*s).unwrap()).collect();
        fill_env(&mut env, 42, 1_700_000_000_000);
        let got: Vec<&str> = env.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(got, ["A=1", "ORDERLY_FENCE=42", "ORDERLY_FENCE_X=", "ORDERLY_FIRED_AT=1700000000000"]);
    }
}
