//! The in-memory lease map: one atomic step per acquire, release or renew.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use papaya::{Compute, Operation};

use crate::clock::Clock;
use crate::error::{LeaseError, Result};
use crate::gate::Gates;

/// Longest key, in bytes. Keys are scoped order names; this is generous.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest group name, in bytes.
pub const MAX_GROUP_BYTES: usize = 256;
/// Largest metadata blob carried by a lease.
pub const MAX_META_BYTES: usize = 64 << 10;
/// Longest TTL: about 10 years; anything longer is a unit mistake.
pub const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;
/// Tokens are issued below this. 2^63 acquires outlast any store, and the
/// bound keeps the token arithmetic from overflowing on a crafted log.
pub const TOKEN_LIMIT: u64 = 1 << 63;
/// Expiry of a lease recovered after a restart: it stays held until the
/// dispatcher decides (adopt or interrupt), never silently freed by time.
pub const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub key: String,
    /// Fencing token: strictly increasing over the store's whole life.
    pub token: u64,
    /// Wall-clock ms when acquired.
    pub acquired_at: u64,
    /// Wall-clock ms when it expires (informational; expiry runs on a monotonic clock).
    pub expires_at: u64,
    pub ttl_ms: u64,
    pub group: Option<String>,
    pub meta: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Entry {
    info: Arc<LeaseInfo>,
    expires_mono: u64,
    completed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AcquireOptions {
    pub ttl_ms: u64,
    pub group: Option<String>,
    pub meta: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Granted(Arc<LeaseInfo>),
    /// Held by someone else and not expired.
    Held,
    /// The group's gate is at its cap.
    GateFull,
}

pub struct LeaseMap {
    leases: papaya::HashMap<String, Entry>,
    gates: Gates,
    next_token: AtomicU64,
    held: AtomicU64,
    last_run: papaya::HashMap<String, u64>,
    clock: Arc<dyn Clock>,
}

pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(LeaseError::InvalidArg("lease key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(LeaseError::InvalidArg(format!("lease key is {} bytes; the limit is {MAX_KEY_BYTES}", key.len())));
    }
    Ok(())
}

pub fn check_ttl(ttl_ms: u64) -> Result<()> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(LeaseError::InvalidArg(format!("ttlMs must be between 1 and {MAX_TTL_MS}, got {ttl_ms}")));
    }
    Ok(())
}

pub fn check_cap(group: &str, cap: u64) -> Result<()> {
    if group.is_empty() || group.len() > MAX_GROUP_BYTES {
        return Err(LeaseError::InvalidArg(format!("group name must be 1 to {MAX_GROUP_BYTES} bytes")));
    }
    if cap < 1 {
        return Err(LeaseError::InvalidArg(format!("gate cap for group {group:?} must be at least 1, got {cap}")));
    }
    Ok(())
}

impl LeaseMap {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, 0, 0)
    }

    /// Sized up front, so a store recovering many leases does not grow the
    /// tables through repeated resizes.
    pub fn with_capacity(clock: Arc<dyn Clock>, leases: usize, keys: usize) -> Self {
        LeaseMap {
            leases: papaya::HashMap::with_capacity(leases),
            gates: Gates::default(),
            next_token: AtomicU64::new(1),
            held: AtomicU64::new(0),
            last_run: papaya::HashMap::with_capacity(keys),
            clock,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Succeeds only if `key` is free or its lease expired; in a gated group
    /// only if a slot is free. A refusal leaves no trace.
    pub fn acquire(&self, key: &str, opts: AcquireOptions) -> Result<Acquired> {
        check_key(key)?;
        check_ttl(opts.ttl_ms)?;
        if let Some(g) = &opts.group {
            if g.is_empty() || g.len() > MAX_GROUP_BYTES {
                return Err(LeaseError::InvalidArg(format!("group name must be 1 to {MAX_GROUP_BYTES} bytes")));
            }
        }
        if opts.meta.as_ref().is_some_and(|m| m.len() > MAX_META_BYTES) {
            return Err(LeaseError::InvalidArg(format!("lease meta exceeds {MAX_META_BYTES} bytes")));
        }
        let now = self.clock.mono_ms();
        let gate = opts.group.as_deref().map(|g| self.gates.get(g));
        if let Some(g) = &gate {
            if !g.try_enter() {
                // Expired leases hold slots until someone notices; notice now.
                let group = opts.group.as_deref().unwrap_or_default();
                if self.reap_group(group, now).is_empty() || !g.try_enter() {
                    return Ok(Acquired::GateFull);
                }
            }
        }
        // Never past the limit, which a log record cannot carry: the lease
        // could be granted but not recovered. `then`, not `then_some`: `t`
        // is u64::MAX after `raise_high_water(u64::MAX)`.
        let Ok(token) = self.next_token.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| (t < TOKEN_LIMIT).then(|| t + 1)) else {
            if let Some(g) = gate {
                g.leave();
            }
            return Err(LeaseError::InvalidArg(format!("fencing tokens are exhausted: every token below {TOKEN_LIMIT} was issued")));
        };
        let wall = self.clock.wall_ms();
        let info = Arc::new(LeaseInfo {
            key: key.to_owned(),
            token,
            acquired_at: wall,
            expires_at: wall.saturating_add(opts.ttl_ms),
            ttl_ms: opts.ttl_ms,
            group: opts.group,
            meta: opts.meta,
        });
        let entry = Entry { info: info.clone(), expires_mono: now.saturating_add(info.ttl_ms), completed: false };
        let map = self.leases.pin();
        let outcome = map.compute(key.to_owned(), |current| match current {
            Some((_, held)) if held.expires_mono > now => Operation::Abort(()),
            _ => Operation::Insert(entry.clone()),
        });
        match outcome {
            Compute::Inserted(..) => {
                self.held.fetch_add(1, Ordering::AcqRel);
            }
            Compute::Updated { old: (_, old), .. } => self.leave_gate(&old.info),
            Compute::Aborted(()) | Compute::Removed(..) => {
                if let Some(g) = gate {
                    g.leave();
                }
                return Ok(Acquired::Held);
            }
        }
        self.note_last_run(key, wall);
        Ok(Acquired::Granted(info))
    }

    fn leave_gate(&self, info: &LeaseInfo) {
        if let Some(g) = info.group.as_deref().and_then(|g| self.gates.find(g)) {
            g.leave();
        }
    }

    /// Removes expired leases of `group`; returns what was removed.
    pub fn reap_group(&self, group: &str, now: u64) -> Vec<Arc<LeaseInfo>> {
        let map = self.leases.pin();
        let expired: Vec<(String, u64)> = map
            .iter()
            .filter(|(_, e)| e.expires_mono <= now && e.info.group.as_deref() == Some(group))
            .map(|(k, e)| (k.clone(), e.info.token))
            .collect();
        expired.into_iter().filter_map(|(k, token)| self.remove_token(&k, token, Some(now))).collect()
    }

    /// Removes the lease of `key` if it still carries `token` (and, with
    /// `expired_by`, only if it expired by then).
    fn remove_token(&self, key: &str, token: u64, expired_by: Option<u64>) -> Option<Arc<LeaseInfo>> {
        let map = self.leases.pin();
        match map.remove_if(key, |_, e| e.info.token == token && expired_by.is_none_or(|now| e.expires_mono <= now)) {
            Ok(Some((_, e))) => {
                self.held.fetch_sub(1, Ordering::AcqRel);
                self.leave_gate(&e.info);
                Some(e.info.clone())
            }
            _ => None,
        }
    }

    fn check_token(&self, token: u64) -> Result<()> {
        if token == 0 || token >= self.next_token.load(Ordering::Acquire) {
            return Err(LeaseError::InvalidArg(format!("unknown lease: token {token} was never issued by this store")));
        }
        Ok(())
    }

    pub fn release(&self, key: &str, token: u64) -> Result<Arc<LeaseInfo>> {
        check_key(key)?;
        self.check_token(token)?;
        self.remove_token(key, token, None).ok_or_else(|| LeaseError::Stale { key: key.to_owned(), token })
    }

    /// Undoes an acquire whose log record could not be made durable.
    pub fn rollback(&self, key: &str, token: u64) {
        self.remove_token(key, token, None);
    }

    pub fn renew(&self, key: &str, token: u64, ttl_ms: u64) -> Result<Arc<LeaseInfo>> {
        check_key(key)?;
        check_ttl(ttl_ms)?;
        self.check_token(token)?;
        let now = self.clock.mono_ms();
        let wall = self.clock.wall_ms();
        let map = self.leases.pin();
        match map.compute(key.to_owned(), |current| match current {
            Some((_, e)) if e.info.token == token => {
                let info = Arc::new(LeaseInfo { expires_at: wall.saturating_add(ttl_ms), ttl_ms, ..(*e.info).clone() });
                Operation::Insert(Entry { info, expires_mono: now.saturating_add(ttl_ms), completed: e.completed })
            }
            _ => Operation::Abort(()),
        }) {
            Compute::Updated { new: (_, e), .. } => Ok(e.info.clone()),
            _ => Err(LeaseError::Stale { key: key.to_owned(), token }),
        }
    }

    /// Marks the lease completed; a lease completes once.
    pub fn complete(&self, key: &str, token: u64) -> Result<Arc<LeaseInfo>> {
        check_key(key)?;
        self.check_token(token)?;
        let map = self.leases.pin();
        match map.compute(key.to_owned(), |current| match current {
            Some((_, e)) if e.info.token == token && e.completed => Operation::Abort(true),
            Some((_, e)) if e.info.token == token => Operation::Insert(Entry { completed: true, ..e.clone() }),
            _ => Operation::Abort(false),
        }) {
            Compute::Updated { new: (_, e), .. } => Ok(e.info.clone()),
            Compute::Aborted(true) => Err(LeaseError::InvalidArg(format!("lease on {key:?} with token {token} was already completed"))),
            _ => Err(LeaseError::Stale { key: key.to_owned(), token }),
        }
    }

    pub fn holder(&self, key: &str) -> Option<LeaseInfo> {
        self.leases.pin().get(key).map(|e| (*e.info).clone())
    }

    pub fn in_flight(&self, group: Option<&str>) -> u64 {
        match group {
            Some(g) => self.gates.find(g).map_or(0, |g| g.in_flight()),
            None => self.held.load(Ordering::Acquire),
        }
    }

    pub fn set_gate(&self, group: &str, cap: u64) -> Result<()> {
        check_cap(group, cap)?;
        self.gates.set_cap(group, cap);
        Ok(())
    }

    pub fn gate_cap(&self, group: &str) -> Option<u64> {
        self.gates.find(group).map(|g| g.cap()).filter(|&c| c != crate::gate::UNLIMITED)
    }

    pub fn last_run(&self, key: &str) -> Option<u64> {
        self.last_run.pin().get(key).copied()
    }

    /// lastRun only moves forward.
    pub fn note_last_run(&self, key: &str, at: u64) {
        self.last_run.pin().update_or_insert(key.to_owned(), |old| (*old).max(at), at);
    }

    pub fn last_runs(&self) -> Vec<(String, u64)> {
        self.last_run.pin().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn held(&self) -> Vec<LeaseInfo> {
        self.leases.pin().iter().map(|(_, e)| (*e.info).clone()).collect()
    }

    /// Highest token issued so far.
    pub fn high_water(&self) -> u64 {
        self.next_token.load(Ordering::Acquire) - 1
    }

    pub fn raise_high_water(&self, token: u64) {
        self.next_token.fetch_max(token.saturating_add(1), Ordering::AcqRel);
    }

    /// Puts back leases found held in the log after a restart. They count
    /// against their gates and do not expire by themselves.
    pub fn restore(&self, held: impl IntoIterator<Item = (LeaseInfo, bool)>) {
        let map = self.leases.pin();
        for (info, completed) in held {
            if let Some(g) = info.group.as_deref() {
                self.gates.get(g).enter_unchecked();
            }
            self.raise_high_water(info.token);
            let key = info.key.clone();
            if map.insert(key, Entry { info: Arc::new(info), expires_mono: NEVER, completed }).is_none() {
                self.held.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Seeds lastRun from the log (only ever forward).
    pub fn restore_last_runs(&self, runs: impl IntoIterator<Item = (String, u64)>) {
        let map = self.last_run.pin();
        for (key, at) in runs {
            map.update_or_insert(key, |old| (*old).max(at), at);
        }
    }
}
