/**
 * Test support, not part of the public API (not exported from the package
 * index): the fault-injecting in-memory disk of `orderly_wal::sim`. Open a
 * store (or a whole Controller, through `store.storage`) on a `SimDisk`, and
 * `disk.powerLoss(seed)` cuts the power: every store already open on it
 * fails its later writes, as a process on a dead machine would, and the
 * next open sees only what survived (synced data plus a seeded random
 * choice of unsynced 512-byte sectors and directory operations).
 */
export { SimDisk } from './native.js';
export type { JsPowerLossReport as PowerLossReport } from '../index.cjs';
