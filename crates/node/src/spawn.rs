//! The native body spawner: JS strings to C strings, exits to a JS callback.

use std::ffi::CString;

use napi::bindgen_prelude::Env;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::Status;
use napi_derive::napi;
use orderly_spawn::{Command, Exit, Reaper};

use crate::error::{from_napi, invalid_arg, Code, Error, Result};

#[napi(object)]
pub struct JsSpawnOptions {
    /// `/bin/sh` by default in the caller; a bare name is looked up on PATH.
    pub program: String,
    /// argv, argv[0] included.
    pub args: Vec<String>,
    /// `NAME=value` each: the child's whole environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// stdout + stderr file (created or truncated, 0600); absent: /dev/null.
    pub output: Option<String>,
    /// Become fd 3, 4, … in the child.
    pub inherit_fds: Option<Vec<i32>>,
}

#[napi(object, object_from_js = false)]
pub struct JsExit {
    pub pid: i32,
    /// The exit status, or null when a signal ended the child.
    pub code: Option<i32>,
    /// The signal number that ended it, or null.
    pub signal: Option<i32>,
    /// Its process group was empty once it was reaped: nothing it started is left.
    pub group_empty: bool,
}

/// `onExit(exit)`: weak (the caller refs it while children are pending),
/// unbounded so the reaper thread never waits on JS.
type ExitFn = ThreadsafeFunction<JsExit, UnknownReturnValue, JsExit, Status, false, true, 0>;

/// Starts bodies with posix_spawn and reports every exit from one reaping thread.
#[napi]
pub struct NativeSpawner {
    reaper: Option<Reaper>,
    exits: std::sync::Arc<ExitFn>,
}

#[napi]
impl NativeSpawner {
    #[napi(constructor, catch_unwind, ts_args_type = "onExit: (exit: JsExit) => void")]
    pub fn new(on_exit: ExitFn) -> Result<Self> {
        let exits = std::sync::Arc::new(on_exit);
        let forward = std::sync::Arc::clone(&exits);
        let reaper = Reaper::start(move |e: Exit| {
            // Fails only once the environment is going away; nobody is left to tell.
            let _ = forward.call(JsExit { pid: e.pid, code: e.code, signal: e.signal, group_empty: e.group_empty }, ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(|e| spawn_error(&e, "start the reaper thread"))?;
        Ok(Self { reaper: Some(reaper), exits })
    }

    /// Starts a child; its exit arrives through `onExit`. Throws with `code`
    /// = the errno name (ENOENT, EACCES, …) when it cannot start.
    #[napi(catch_unwind)]
    pub fn spawn(&self, options: JsSpawnOptions) -> Result<i32> {
        let reaper = self.reaper.as_ref().ok_or_else(|| invalid_arg("the spawner is closed"))?;
        let cmd = Command {
            program: c_string(options.program, "program")?,
            args: options.args.into_iter().map(|a| c_string(a, "args")).collect::<Result<_>>()?,
            env: options.env.into_iter().map(|a| c_string(a, "env")).collect::<Result<_>>()?,
            cwd: options.cwd.map(|c| c_string(c, "cwd")).transpose()?,
            output: options.output.map(|c| c_string(c, "output")).transpose()?,
            inherit: options.inherit_fds.unwrap_or_default(),
            new_group: true,
        };
        reaper.spawn(&cmd).map_err(|e| spawn_error(&e, "spawn"))
    }

    /// Children started and not yet reported.
    #[napi(getter, catch_unwind)]
    pub fn pending(&self) -> u32 {
        self.reaper.as_ref().map_or(0, |r| r.pending() as u32)
    }

    /// Keeps the process alive while children are pending.
    #[napi(catch_unwind, js_name = "ref")]
    pub fn ref_exits(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), self.exits.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        let status = unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), self.exits.raw()) };
        napi::check_status!(status).map_err(from_napi)
    }

    /// Stops the reaping thread; running children are left alone.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        self.reaper = None;
    }
}

fn c_string(s: String, field: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid_arg(format!("{field} holds a NUL byte")))
}

/// `err.code` is the errno's name, as Node's own spawn errors have it.
fn spawn_error(e: &std::io::Error, what: &str) -> Error {
    let name = e.raw_os_error().map(errno_name).unwrap_or("ERR_SPAWN");
    napi::Error::new(Code::from_static(name), format!("{what}: {name}: {e}"))
}

fn errno_name(n: i32) -> &'static str {
    match n {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOEXEC => "ENOEXEC",
        libc::EPERM => "EPERM",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::E2BIG => "E2BIG",
        libc::ETXTBSY => "ETXTBSY",
        _ => "ERR_SPAWN",
    }
}
