//! `SimDisk`: the fault-injecting in-memory disk of `orderly_wal::sim`, for
//! crash tests that drive a whole controller in-process and cut its power.
//! Testing only: nothing on it outlives the process.

use napi::bindgen_prelude::{ClassInstance, FromNapiValue, Object, Unknown, ValueType};
use napi_derive::napi;
use orderly_wal::sim::{PowerLossReport, SimRng, SimStorage};

use std::time::Duration;

use crate::error::{from_napi, invalid_arg, Result};
use crate::options::{integer_option, whole_number};

#[napi(object, object_from_js = false)]
pub struct JsPowerLossReport {
    /// Bytes written since their file's last sync, in whole sectors.
    pub unsynced_bytes: f64,
    /// Of those, bytes that did not survive as written.
    pub dropped_bytes: f64,
    /// Files whose unsynced sectors partly survived: torn writes.
    pub torn_files: f64,
    /// Creations, renames and removals not yet made durable.
    pub dir_ops: f64,
    /// Of those, the ones lost.
    pub dir_ops_dropped: f64,
}

impl From<PowerLossReport> for JsPowerLossReport {
    fn from(r: PowerLossReport) -> Self {
        JsPowerLossReport {
            unsynced_bytes: r.unsynced_bytes as f64,
            dropped_bytes: r.dropped_bytes as f64,
            torn_files: r.torn_files as f64,
            dir_ops: r.dir_ops as f64,
            dir_ops_dropped: r.dir_ops_dropped as f64,
        }
    }
}

/// An in-memory disk that outlives the controllers using it (testing only).
/// Pass it as `storage` when opening a lease store; `powerLoss` cuts the
/// power: stores opened so far fail every later write, and the next open
/// sees only what survived (synced data, plus a seeded random choice of
/// unsynced sectors and directory operations). `syncLatencyMs` makes each
/// sync take that long, as a real disk's does, so cuts can land mid-commit.
#[napi]
pub struct SimDisk {
    disk: orderly_wal::sim::SimDisk,
}

#[napi]
impl SimDisk {
    #[napi(constructor, catch_unwind, ts_args_type = "options?: { syncLatencyMs?: number }")]
    pub fn new(options: Option<Object>) -> Result<Self> {
        let latency = match &options {
            Some(o) => integer_option(o, "syncLatencyMs")?.unwrap_or(0),
            None => 0,
        };
        Ok(SimDisk { disk: orderly_wal::sim::SimDisk::with_sync_latency(Duration::from_millis(latency)) })
    }

    /// Makes every later sync take `ms` (one under way keeps its time): a
    /// disk that starts to stall, or recovers, while a store runs on it.
    #[napi(catch_unwind)]
    pub fn set_sync_latency(&self, ms: f64) -> Result<()> {
        self.disk.storage().set_sync_latency(Duration::from_millis(whole_number("ms", ms)?));
        Ok(())
    }

    /// Cuts the power; `seed` picks which unsynced data survives.
    #[napi(catch_unwind)]
    pub fn power_loss(&self, seed: f64) -> Result<JsPowerLossReport> {
        let mut rng = SimRng::new(whole_number("seed", seed)?);
        Ok(self.disk.power_loss(&mut rng).into())
    }
}

/// `options.storage`, if set: the disk a store is opened on instead of the
/// real filesystem. Taken now, on the JS thread, so a power cut that comes
/// while the open runs leaves that store on the dead disk, as it would.
pub fn storage_option(options: &Object) -> Result<Option<SimStorage>> {
    let Some(value) = options.get::<Unknown>("storage").map_err(from_napi)? else {
        return Ok(None);
    };
    match value.get_type().map_err(from_napi)? {
        ValueType::Undefined | ValueType::Null => return Ok(None),
        ValueType::Object => {}
        _ => return Err(invalid_arg("options.storage must be a SimDisk")),
    }
    let disk = ClassInstance::<SimDisk>::from_unknown(value).map_err(|_| invalid_arg("options.storage must be a SimDisk"))?;
    Ok(Some(disk.disk.storage()))
}
