export { OrderlyError } from './errors.js';
export { Wal } from './wal.js';
export type { WalOpenOptions, WalOpenReport, WalRecord, WalStats } from './wal.js';
