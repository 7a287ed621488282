export { OrderlyError } from './errors.js';
export { Wal } from './wal.js';
export type { WalOpenOptions, WalOpenReport, WalRecord, WalStats } from './wal.js';
export { LeaseStore } from './lease-store.js';
export type { AcquireOptions, Lease, LeaseInfo, LeaseStoreOptions, LeaseStoreStats, OutboxEntry, Recovered } from './lease-store.js';
