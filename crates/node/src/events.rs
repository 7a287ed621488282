//! Durability events from a writer thread to JS.

use std::sync::Arc;

use napi::bindgen_prelude::Env;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use orderly_wal::DurableEvent;

use crate::error::{from_napi, wal_error, Code, Result};

/// `onEvent(err, durableLsn)`: error-first, weak (it keeps the process alive
/// only while JS holds a `ref()`), unbounded queue so the writer thread never
/// blocks on JS.
pub type EventFn = ThreadsafeFunction<u64, UnknownReturnValue, u64, Code, true, true, 0>;

/// Forwards durability watermarks to JS from the writer thread. NonBlocking:
/// the writer thread must never wait on the JS thread (group commit would
/// stall behind a busy event loop).
pub fn forward_events(events: Arc<EventFn>) -> impl Fn(DurableEvent) + Send + Sync + 'static {
    move |event| {
        let value = match event {
            DurableEvent::Durable(lsn) => Ok(lsn),
            DurableEvent::Poisoned(err) => Err(wal_error(err)),
        };
        // Only fails once the environment is shutting down; nobody is left to tell.
        let _ = events.call(value, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Keeps the process alive for event delivery while JS waits on one.
/// (`refer`/`unref` on the wrapper need `&mut`; the raw calls do not.)
pub fn ref_events(env: &Env, events: Option<&EventFn>) -> Result<()> {
    if let Some(events) = events {
        let status = unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), events.raw()) };
        napi::check_status!(status).map_err(from_napi)?;
    }
    Ok(())
}

pub fn unref_events(env: &Env, events: Option<&EventFn>) -> Result<()> {
    if let Some(events) = events {
        let status = unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), events.raw()) };
        napi::check_status!(status).map_err(from_napi)?;
    }
    Ok(())
}
