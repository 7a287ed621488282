//! Durability events from a writer thread to JS.

use std::sync::atomic::{fence, AtomicBool, Ordering};
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

/// `forward_events`, but a watermark only while `wanted` (JS waits on one):
/// every sync's event would otherwise wake the JS thread, up to once per
/// fire, for nothing. A poisoned log is always told. JS sets `wanted`
/// before it reads the watermark again (`want`), and the writer stored the
/// watermark before it reads `wanted`: with a fence on each side, one of
/// them sees the other, so no wait is left without its event.
pub fn forward_events_when(events: Arc<EventFn>, wanted: Arc<AtomicBool>) -> impl Fn(DurableEvent) + Send + Sync + 'static {
    move |event| {
        let value = match event {
            DurableEvent::Durable(lsn) => {
                fence(Ordering::SeqCst);
                if !wanted.load(Ordering::SeqCst) {
                    return;
                }
                Ok(lsn)
            }
            DurableEvent::Poisoned(err) => Err(wal_error(err)),
        };
        // Only fails once the environment is shutting down; nobody is left to tell.
        let _ = events.call(value, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// JS waits on a watermark from now on (or no longer): see `forward_events_when`.
pub fn want(wanted: &AtomicBool, yes: bool) {
    wanted.store(yes, Ordering::SeqCst);
    fence(Ordering::SeqCst);
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
