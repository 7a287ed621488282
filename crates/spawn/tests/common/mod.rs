//! What several test files start: `sh -c script` in a group of its own, PATH only.

use std::ffi::CString;

use orderly_spawn::Command;

pub fn sh(script: &str) -> Command {
    Command {
        program: CString::new("/bin/sh").unwrap(),
        args: vec![CString::new("sh").unwrap(), CString::new("-c").unwrap(), CString::new(script).unwrap()],
        env: vec![CString::new("PATH=/usr/bin:/bin").unwrap()],
        cwd: None,
        output: None,
        inherit: vec![],
        new_group: true,
        overdue_after: None,
    }
}
