//! Rust errors to JS errors with a stable `code`.

use std::any::Any;
use std::borrow::Cow;

use napi::bindgen_prelude::{Env, JsError, Status};
use orderly_lease::LeaseError;
use orderly_wal::WalError;

/// The JS `err.code` of everything this addon throws: the core's stable code
/// (`ERR_WAL_*`, `ERR_INVALID_ARG`), or napi's own status name when napi itself
/// fails (argument conversion, a closing thread-safe function).
pub struct Code(Cow<'static, str>);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Code {
    pub fn from_static(code: &'static str) -> Self {
        Code(Cow::Borrowed(code))
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Self {
        Code(Cow::Owned(status.as_ref().to_owned()))
    }
}

pub type Error = napi::Error<Code>;
pub type Result<T> = napi::Result<T, Code>;

pub fn wal_error(err: WalError) -> Error {
    napi::Error::new(Code(Cow::Borrowed(err.code())), err.to_string())
}

pub fn lease_error(err: LeaseError) -> Error {
    napi::Error::new(Code(Cow::Borrowed(err.code())), err.to_string())
}

pub fn invalid_arg(message: impl Into<String>) -> Error {
    napi::Error::new(Code(Cow::Borrowed("ERR_INVALID_ARG")), message.into())
}

/// napi's own failures keep their status as the code, so JS still sees why.
pub fn from_napi(err: napi::Error) -> Error {
    napi::Error::new(Code::from(err.status), err.reason)
}

/// A panic must never unwind across FFI; on a worker thread it becomes an
/// ordinary error, as `#[napi(catch_unwind)]` does on the JS thread.
pub fn from_panic(payload: Box<dyn Any + Send>) -> Error {
    from_napi(napi::bindgen_prelude::panic_to_error(payload))
}

/// An `AsyncTask` can only reject with `napi::Error<Status>`, whose status
/// would become the JS `code`. Building the JS error here (on the JS thread)
/// and handing napi the object itself keeps our code intact.
pub fn into_task_error(env: &Env, err: Error) -> napi::Error {
    napi::Error::from(JsError::from(err).into_unknown(*env))
}
