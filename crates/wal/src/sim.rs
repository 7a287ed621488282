//! A fault-injecting in-memory filesystem, after SQLite's crash-test VFS.
//!
//! Every file has the bytes the process sees and the bytes that would survive
//! a power cut. `sync_data` makes the first the second; directory entries
//! (create, rename, remove) become durable only with `sync_dir`. A power cut
//! ([`SimStorage::power_loss`]) keeps the durable state and, for bytes written
//! since the last sync, keeps or drops each 512-byte sector at random, so
//! writes tear at sector granularity; of the unsynced directory operations a
//! random prefix survives. Errors (EIO, ENOSPC) can be injected on the n-th
//! write, sync, rename, directory sync or create, and [`SimStorage::halt_after`]
//! freezes the filesystem after a given number of mutating operations, which
//! is how a test stops a process at an exact step. [`SimDisk`] is the machine
//! around it: it outlives the processes that open it, and a power cut leaves
//! the next process only what survived while the dead one's handle fails.
//!
//! A failed sync behaves as Linux does after fsyncgate: the dirty pages it
//! failed to write are dropped from what a later sync can persist, so a log
//! that retried the sync would believe in data that is gone.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::storage::{LockError, LockGuard, Storage, StorageFile};

pub const SECTOR: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Write,
    Sync,
    Rename,
    SyncDir,
    Create,
    Remove,
    SetLen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Eio,
    Enospc,
}

impl Fault {
    fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Fault::Eio => libc::EIO,
            Fault::Enospc => libc::ENOSPC,
        })
    }
}

#[derive(Default, Clone)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written since the last successful sync.
    dirty: BTreeSet<usize>,
    /// Sectors whose write-back failed: a later sync cannot persist them.
    lost: BTreeSet<usize>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

#[derive(Default)]
struct State {
    next_id: u64,
    files: HashMap<u64, FileData>,
    live_names: HashMap<PathBuf, u64>,
    durable_names: HashMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    pending_dir_ops: Vec<DirOp>,
    counts: HashMap<Op, u64>,
    faults: Vec<(Op, u64, Fault)>,
    mutating_ops: u64,
    halt_after: Option<u64>,
    halted: bool,
    locks: BTreeSet<PathBuf>,
    syncs_after_failure: u64,
    sync_failed: bool,
    sync_latency: Duration,
}

/// Shared handle to one simulated filesystem.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

/// A small deterministic generator so power-loss outcomes replay from a seed.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

impl SimStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other user of the sim.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the `nth` (1-based, counted from now) operation of kind `op`.
    pub fn fail_nth(&self, op: Op, nth: u64, fault: Fault) {
        let mut s = self.lock_state();
        let at = s.counts.get(&op).copied().unwrap_or(0) + nth;
        s.faults.push((op, at, fault));
    }

    /// Let `n` more mutating operations through, then fail every later one
    /// without applying it, as if the process had died at that instant.
    pub fn halt_after(&self, n: u64) {
        let mut s = self.lock_state();
        s.halt_after = Some(s.mutating_ops + n);
    }

    pub fn halted(&self) -> bool {
        self.lock_state().halted
    }

    /// Makes every file and directory sync take this long, as a real disk's
    /// does: appends that arrive meanwhile wait for the next one, and a power
    /// cut can land between a write and the sync that would have kept it.
    pub fn set_sync_latency(&self, latency: Duration) {
        self.lock_state().sync_latency = latency;
    }

    /// The latency first, outside the lock, so that a power cut during it
    /// fails the sync (the filesystem is halted by then) and writes can
    /// proceed meanwhile.
    fn sync_wait(&self) {
        let latency = self.lock_state().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
    }

    pub fn count(&self, op: Op) -> u64 {
        self.lock_state().counts.get(&op).copied().unwrap_or(0)
    }

    pub fn mutating_ops(&self) -> u64 {
        self.lock_state().mutating_ops
    }

    /// Syncs attempted after a sync had failed (fsyncgate: must stay 0).
    pub fn syncs_after_failure(&self) -> u64 {
        self.lock_state().syncs_after_failure
    }

    /// The bytes the process currently sees at `path`.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock_state();
        s.live_names.get(path).map(|id| s.files[id].live.clone())
    }

    /// Overwrites a file's bytes (visible and durable), for corruption tests.
    pub fn poke(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.lock_state();
        if let Some(&id) = s.live_names.get(path) {
            let f = s.files.get_mut(&id).expect("file");
            f.live = bytes.clone();
            f.durable = bytes;
            f.dirty.clear();
        }
    }

    /// Names visible in `dir`.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.list(dir).unwrap_or_default()
    }

    /// What survives a power cut now: a fresh filesystem holding the durable
    /// state plus a random choice among the writes that were not synced.
    pub fn power_loss(&self, rng: &mut SimRng) -> SimStorage {
        survivor(&self.lock_state(), rng).0
    }

    /// Cuts the power of the machine using this filesystem: in one step it
    /// stops applying anything (every later operation through this handle
    /// fails, as it would for a process on a dead machine) and returns what
    /// survived, with what was lost. Nothing written after the cut can leak
    /// into the survivor.
    pub fn cut_power(&self, rng: &mut SimRng) -> (SimStorage, PowerLossReport) {
        let mut s = self.lock_state();
        s.halted = true;
        survivor(&s, rng)
    }

    /// A clean restart (kill -9 without power loss): everything the process
    /// wrote stays, locks are released, faults are cleared.
    pub fn restart(&self) -> SimStorage {
        let s = self.lock_state();
        let mut out = State { dirs: s.dirs.clone(), next_id: s.next_id, sync_latency: s.sync_latency, ..State::default() };
        for (path, id) in &s.live_names {
            let f = &s.files[id];
            out.files.insert(*id, FileData { live: f.live.clone(), durable: f.durable.clone(), dirty: f.dirty.clone(), lost: f.lost.clone() });
            out.live_names.insert(path.clone(), *id);
        }
        out.durable_names = s.durable_names.clone();
        out.pending_dir_ops = s.pending_dir_ops.clone();
        for (_, id) in out.durable_names.iter() {
            if !out.files.contains_key(id) {
                let f = &s.files[id];
                out.files.insert(*id, FileData { live: f.live.clone(), durable: f.durable.clone(), dirty: f.dirty.clone(), lost: f.lost.clone() });
            }
        }
        SimStorage { state: Arc::new(Mutex::new(out)) }
    }
}

/// What a power cut destroyed: evidence that a test's workload really lost
/// unsynced data at the cut, rather than being merely stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Bytes written since their file's last sync, counted in whole sectors.
    pub unsynced_bytes: u64,
    /// Of those, bytes that did not survive as written: reverted to their
    /// synced content, cut off by the file's surviving length, or in a file
    /// whose name did not survive.
    pub dropped_bytes: u64,
    /// Files of which some unsynced sectors survived and others did not: a
    /// write torn at sector granularity.
    pub torn_files: u64,
    /// Creations, renames and removals not yet made durable by a directory sync.
    pub dir_ops: u64,
    /// Of those, the ones lost.
    pub dir_ops_dropped: u64,
}

fn survivor(s: &State, rng: &mut SimRng) -> (SimStorage, PowerLossReport) {
    let mut report = PowerLossReport { dir_ops: s.pending_dir_ops.len() as u64, ..PowerLossReport::default() };
    let mut names = s.durable_names.clone();
    let keep_ops = rng.below(s.pending_dir_ops.len() as u64 + 1) as usize;
    report.dir_ops_dropped = (s.pending_dir_ops.len() - keep_ops) as u64;
    for op in &s.pending_dir_ops[..keep_ops] {
        match op {
            DirOp::Link(p, id) => {
                names.insert(p.clone(), *id);
            }
            DirOp::Unlink(p) => {
                names.remove(p);
            }
        }
    }
    let mut out = State { dirs: s.dirs.clone(), sync_latency: s.sync_latency, ..State::default() };
    let mut survived = BTreeSet::new();
    for (path, id) in names {
        let f = &s.files[&id];
        // A file reachable under two surviving names is one file: count its loss once.
        let data = surviving_bytes(f, rng, survived.insert(id).then_some(&mut report));
        out.next_id += 1;
        let nid = out.next_id;
        out.files.insert(nid, FileData { live: data.clone(), durable: data, ..FileData::default() });
        out.live_names.insert(path.clone(), nid);
        out.durable_names.insert(path, nid);
    }
    let visible: BTreeSet<u64> = s.live_names.values().copied().collect();
    for id in visible.difference(&survived) {
        let f = &s.files[id];
        let lost = dirty_bytes(f);
        report.unsynced_bytes += lost;
        report.dropped_bytes += lost;
    }
    (SimStorage { state: Arc::new(Mutex::new(out)) }, report)
}

/// Bytes of a dirty sector that exist in the file (it may end inside it).
fn sector_bytes(f: &FileData, sector: usize) -> u64 {
    let end = f.live.len().max(f.durable.len());
    end.saturating_sub(sector * SECTOR).min(SECTOR) as u64
}

fn dirty_bytes(f: &FileData) -> u64 {
    f.dirty.iter().map(|&sector| sector_bytes(f, sector)).sum()
}

fn surviving_bytes(f: &FileData, rng: &mut SimRng, report: Option<&mut PowerLossReport>) -> Vec<u8> {
    if f.dirty.is_empty() {
        return f.durable.clone();
    }
    // Length: the durable length, the visible length, or a sector boundary in between.
    let lo = f.durable.len().min(f.live.len());
    let hi = f.durable.len().max(f.live.len());
    let len = match rng.below(3) {
        0 => f.durable.len(),
        1 => f.live.len(),
        _ => {
            let span = (hi - lo) / SECTOR + 1;
            (lo / SECTOR + rng.below(span as u64) as usize) * SECTOR
        }
    }
    .clamp(lo.min(hi), hi);
    let mut out = f.durable.clone();
    out.resize(len, 0);
    let all_or_nothing = rng.below(4);
    let (mut unsynced, mut kept) = (0u64, 0u64);
    let (mut some_kept, mut some_dropped) = (false, false);
    for &sector in &f.dirty {
        let start = sector * SECTOR;
        let bytes = sector_bytes(f, sector);
        unsynced += bytes;
        if start >= len {
            some_dropped |= bytes > 0;
            continue;
        }
        let keep_new = match all_or_nothing {
            0 => true,
            1 => false,
            _ => rng.chance(50),
        };
        let end = (start + SECTOR).min(len).min(f.live.len());
        if keep_new && !f.lost.contains(&sector) && start < end {
            out[start..end].copy_from_slice(&f.live[start..end]);
            kept += (end - start) as u64;
            some_kept = true;
            some_dropped |= ((end - start) as u64) < bytes;
        } else {
            some_dropped |= bytes > 0;
        }
    }
    if let Some(r) = report {
        r.unsynced_bytes += unsynced;
        r.dropped_bytes += unsynced - kept;
        r.torn_files += (some_kept && some_dropped) as u64;
    }
    out
}

/// A machine's disk, which outlives the processes that use it. Each open
/// takes the filesystem as it is now; [`SimDisk::power_loss`] cuts that one
/// off (whoever still holds it fails from then on, as a process on a dead
/// machine would) and puts what survived in its place for the next boot.
#[derive(Default)]
pub struct SimDisk {
    current: Mutex<SimStorage>,
}

impl SimDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// A disk whose syncs take `latency` (see [`SimStorage::set_sync_latency`]),
    /// after power cuts too.
    pub fn with_sync_latency(latency: Duration) -> Self {
        let disk = Self::default();
        disk.storage().set_sync_latency(latency);
        disk
    }

    /// The filesystem the next process to boot sees.
    pub fn storage(&self) -> SimStorage {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Cuts the power: the storage handed out so far is frozen and replaced
    /// by what survived of it.
    pub fn power_loss(&self, rng: &mut SimRng) -> PowerLossReport {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let (survivor, report) = current.cut_power(rng);
        *current = survivor;
        report
    }
}

impl State {
    /// Counts the operation, applies injected faults and the halt point.
    fn gate(&mut self, op: Op) -> io::Result<()> {
        if self.halted {
            return Err(io::Error::other("simulated process halted"));
        }
        if let Some(limit) = self.halt_after {
            if self.mutating_ops >= limit {
                self.halted = true;
                return Err(io::Error::other("simulated process halted"));
            }
        }
        self.mutating_ops += 1;
        let n = {
            let c = self.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        if let Some(i) = self.faults.iter().position(|&(o, at, _)| o == op && at == n) {
            let (_, _, fault) = self.faults.remove(i);
            return Err(fault.error());
        }
        Ok(())
    }

    fn file_mut(&mut self, id: u64) -> io::Result<&mut FileData> {
        self.files.get_mut(&id).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

struct SimFile {
    sim: SimStorage,
    id: u64,
}

impl StorageFile for SimFile {
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut s = self.sim.lock_state();
        s.gate(Op::Write)?;
        let f = s.file_mut(self.id)?;
        let off = offset as usize;
        if f.live.len() < off + buf.len() {
            f.live.resize(off + buf.len(), 0);
        }
        f.live[off..off + buf.len()].copy_from_slice(buf);
        if !buf.is_empty() {
            for sector in off / SECTOR..=(off + buf.len() - 1) / SECTOR {
                f.dirty.insert(sector);
            }
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sim.sync_wait();
        let mut s = self.sim.lock_state();
        if s.sync_failed {
            s.syncs_after_failure += 1;
        }
        if let Err(e) = s.gate(Op::Sync) {
            s.sync_failed = true;
            let f = s.file_mut(self.id)?;
            let dirty = std::mem::take(&mut f.dirty);
            f.lost.extend(dirty);
            return Err(e);
        }
        let f = s.file_mut(self.id)?;
        let mut durable = f.live.clone();
        for &sector in &f.lost {
            let start = sector * SECTOR;
            if start < durable.len() {
                let end = (start + SECTOR).min(durable.len());
                for (i, b) in durable[start..end].iter_mut().enumerate() {
                    *b = f.durable.get(start + i).copied().unwrap_or(0);
                }
            }
        }
        f.durable = durable;
        f.dirty.clear();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.sim.lock_state();
        s.gate(Op::SetLen)?;
        let f = s.file_mut(self.id)?;
        let old = f.live.len();
        f.live.resize(len as usize, 0);
        let (a, b) = (old.min(len as usize), old.max(len as usize));
        if a < b {
            for sector in a / SECTOR..=(b - 1) / SECTOR {
                f.dirty.insert(sector);
            }
        }
        Ok(())
    }
}

struct SimLock {
    sim: SimStorage,
    path: PathBuf,
}
impl LockGuard for SimLock {}
impl Drop for SimLock {
    fn drop(&mut self) {
        self.sim.lock_state().locks.remove(&self.path);
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.lock_state().dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock_state();
        if !s.dirs.contains(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let mut v: Vec<String> = s
            .live_names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        v.sort();
        Ok(v)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.lock_state();
        let id = s.live_names.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(s.files[id].live.clone())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.lock_state();
        s.gate(Op::Create)?;
        s.next_id += 1;
        let id = s.next_id;
        s.files.insert(id, FileData::default());
        s.live_names.insert(path.to_path_buf(), id);
        s.pending_dir_ops.push(DirOp::Link(path.to_path_buf(), id));
        Ok(Box::new(SimFile { sim: self.clone(), id }))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let s = self.lock_state();
        let id = *s.live_names.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(SimFile { sim: self.clone(), id }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock_state();
        s.gate(Op::Rename)?;
        let id = s.live_names.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.live_names.insert(to.to_path_buf(), id);
        s.pending_dir_ops.push(DirOp::Link(to.to_path_buf(), id));
        s.pending_dir_ops.push(DirOp::Unlink(from.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock_state();
        s.gate(Op::Remove)?;
        s.live_names.remove(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.pending_dir_ops.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sync_wait();
        let mut s = self.lock_state();
        s.gate(Op::SyncDir)?;
        let ops = std::mem::take(&mut s.pending_dir_ops);
        let (mine, others): (Vec<DirOp>, Vec<DirOp>) = ops.into_iter().partition(|op| match op {
            DirOp::Link(p, _) | DirOp::Unlink(p) => p.parent() == Some(dir),
        });
        s.pending_dir_ops = others;
        for op in mine {
            match op {
                DirOp::Link(p, id) => {
                    s.durable_names.insert(p, id);
                }
                DirOp::Unlink(p) => {
                    s.durable_names.remove(&p);
                }
            }
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>, LockError> {
        let mut s = self.lock_state();
        if !s.locks.insert(path.to_path_buf()) {
            return Err(LockError::Held(Some(std::process::id())));
        }
        Ok(Box::new(SimLock { sim: self.clone(), path: path.to_path_buf() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_file_and_name_can_vanish_synced_ones_cannot() {
        let sim = SimStorage::new();
        let dir = Path::new("/d");
        sim.create_dir_all(dir).unwrap();
        let p = dir.join("a");
        let mut f = sim.create(&p).unwrap();
        f.write_at(0, &[7u8; 1000]).unwrap();
        f.sync_data().unwrap();
        // The name is not durable until the directory is synced.
        let mut vanished = false;
        for seed in 0..50 {
            vanished |= sim.power_loss(&mut SimRng::new(seed)).contents(&p).is_none();
        }
        assert!(vanished);
        sim.sync_dir(dir).unwrap();
        f.write_at(1000, &[9u8; 1000]).unwrap();
        for seed in 0..50 {
            let after = sim.power_loss(&mut SimRng::new(seed)).contents(&p).unwrap();
            assert!(after.len() >= 1000 && after[..1000] == [7u8; 1000]);
        }
    }

    #[test]
    fn failed_sync_loses_the_dirty_data_even_if_a_later_sync_succeeds() {
        let sim = SimStorage::new();
        let dir = Path::new("/d");
        sim.create_dir_all(dir).unwrap();
        let p = dir.join("a");
        let mut f = sim.create(&p).unwrap();
        sim.sync_dir(dir).unwrap();
        f.write_at(0, &[1u8; 512]).unwrap();
        sim.fail_nth(Op::Sync, 1, Fault::Eio);
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
        assert_eq!(sim.syncs_after_failure(), 1);
        let after = sim.power_loss(&mut SimRng::new(1)).contents(&p).unwrap();
        assert!(after.iter().all(|&b| b == 0), "retried fsync must not resurrect lost pages");
    }

    #[test]
    fn a_power_cut_freezes_the_old_handle_and_reports_what_it_lost() {
        let disk = SimDisk::new();
        let dir = Path::new("/d");
        let p = dir.join("a");
        let before = disk.storage();
        before.create_dir_all(dir).unwrap();
        let mut f = before.create(&p).unwrap();
        before.sync_dir(dir).unwrap();
        f.write_at(0, &[1u8; 1024]).unwrap();
        f.sync_data().unwrap();
        f.write_at(1024, &[2u8; 1024]).unwrap();

        let report = disk.power_loss(&mut SimRng::new(3));
        assert!(before.halted());
        assert!(f.write_at(0, &[9u8; 1]).is_err(), "the dead machine's handle must not write");
        assert!(f.sync_data().is_err());
        let after = disk.storage();
        let got = after.contents(&p).unwrap();
        assert_eq!(got[..1024], [1u8; 1024]);
        assert_eq!(report.unsynced_bytes, 1024);
        let kept = got[1024..].iter().filter(|&&b| b == 2).count() as u64;
        assert_eq!(report.dropped_bytes, 1024 - kept);
        after.open_rw(&p).unwrap().write_at(0, &[5u8; 1]).unwrap();
    }

    #[test]
    fn torn_writes_are_reported() {
        let dir = Path::new("/d");
        let mut torn = 0;
        for seed in 0..50 {
            let disk = SimDisk::new();
            let sim = disk.storage();
            sim.create_dir_all(dir).unwrap();
            let mut f = sim.create(&dir.join("a")).unwrap();
            sim.sync_dir(dir).unwrap();
            f.write_at(0, &[3u8; 4 * SECTOR]).unwrap();
            let r = disk.power_loss(&mut SimRng::new(seed));
            assert_eq!(r.unsynced_bytes, 4 * SECTOR as u64);
            let kept = disk.storage().contents(&dir.join("a")).unwrap().iter().filter(|&&b| b == 3).count() as u64;
            assert_eq!(r.dropped_bytes, r.unsynced_bytes - kept);
            assert_eq!(r.torn_files == 1, kept > 0 && kept < 4 * SECTOR as u64, "seed {seed}");
            torn += r.torn_files;
        }
        assert!(torn > 0);
    }
}
