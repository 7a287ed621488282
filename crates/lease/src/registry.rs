//! One store per directory per process, shared by every thread.
//!
//! Worker threads each load the addon and open "the same" directory; the
//! log's lock would refuse the second open, and two maps would break single
//! flight. So opens go through this registry keyed by the directory's real
//! path and hand out the same `Arc`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::{LeaseError, Result};
use crate::store::{LeaseStore, StoreOptions};

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<LeaseStore>>> {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, Weak<LeaseStore>>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Opens the store in `dir`, or joins the one this process already has open
/// there. A joining open applies its `gates`; its other options are ignored.
pub fn open_shared(dir: &Path, opts: StoreOptions) -> Result<Arc<LeaseStore>> {
    // Owner only, whatever the umask (the WAL creates its files 0600 too).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir).map_err(|e| io_error("create directory", dir, &e))?;
    let real = std::fs::canonicalize(dir).map_err(|e| io_error("resolve", dir, &e))?;
    let mut stores = registry().lock().unwrap_or_else(|p| p.into_inner());
    stores.retain(|_, s| s.strong_count() > 0);
    if let Some(store) = stores.get(&real).and_then(Weak::upgrade).filter(|s| !s.is_closed()) {
        for (g, cap) in &opts.gates {
            store.set_gate(g, *cap)?;
        }
        return Ok(store);
    }
    let store = Arc::new(LeaseStore::open(Some(&real), opts)?);
    stores.insert(real, Arc::downgrade(&store));
    Ok(store)
}

fn io_error(op: &'static str, path: &Path, e: &std::io::Error) -> LeaseError {
    LeaseError::Wal(orderly_wal::WalError::Io { op, path: path.to_path_buf(), message: e.to_string(), kind: e.kind() })
}
