import { DurabilityWaiters } from './durability.js';
import { OrderlyError } from './errors.js';
import { MemoryLeases } from './memory-leases.js';
import { NativeLeaseStore, type SimDisk } from './native.js';

export interface LeaseInfo {
  readonly key: string;
  /** Fencing token: strictly increasing over the store's whole life (G8). */
  readonly token: bigint;
  /** Wall-clock ms when acquired. */
  readonly acquiredAt: number;
  /** Wall-clock ms when the lease expires unless renewed (expiry itself runs on a monotonic clock). */
  readonly expiresAt: number;
  readonly group?: string;
  readonly meta?: Buffer;
}

/** A lease this handle holds. */
export type Lease = LeaseInfo;

export interface OutboxEntry {
  /** The lease's token: unique, so it identifies the fire's audit record. */
  readonly id: bigint;
  readonly key: string;
  readonly token: bigint;
  readonly completedAt: number;
  readonly outcome: Buffer;
}

export interface LeaseStoreOptions {
  /** TTL of leases acquired without one; default 10 minutes. */
  defaultTtlMs?: number;
  /** Concurrency caps by group; changeable later with `setGate`. */
  gates?: Record<string, number>;
  /** Log segment size in bytes (durable stores). */
  segmentBytes?: number;
  /** Longest time a relaxed record (release, ack) waits for a sync. */
  flushIntervalMs?: number;
  /** Dead log bytes that trigger a checkpoint (and at least twice the live set); default 2 MiB. */
  compactAfterBytes?: number;
  /**
   * Open a damaged or lost log anyway (`orderly-dispatch repair`): keep every valid
   * record before the damage, cut the rest, and continue fencing tokens
   * above the reservation kept beside the log. See `repairReport()`.
   */
  repair?: boolean;
  /**
   * Internal, for crash tests only: keep the log on this simulated disk
   * (`dir` is then a path on it) so a test can cut the power. Nothing on it
   * outlives the process. See `src/testing.ts`.
   */
  storage?: SimDisk;
}

export interface AcquireOptions {
  ttlMs?: number;
  group?: string;
  meta?: string | Uint8Array;
}

export interface Recovered {
  /** Leases acquired and not released before the last close or crash: still held, for the caller to adopt or release. */
  readonly held: LeaseInfo[];
  /** Completions whose audit record was never acknowledged. */
  readonly outbox: OutboxEntry[];
  /** Acquire time of the latest lease, per key. */
  readonly lastRun: Record<string, number>;
  /** Event cursors, per key (`setCursor`). */
  readonly cursors: Record<string, bigint>;
}

export interface LeaseStoreStats {
  held: number;
  outbox: number;
  checkpoints: number;
  walSegments: number;
  walBytes: number;
  walSyncs: number;
  poisoned: boolean;
  /** Why the log refused a write, once it has. */
  poisonReason?: string | null;
}

const GRANTED = 0;
const NO_LSN = -1;

function closedError(): OrderlyError {
  return new OrderlyError('ERR_STORE_CLOSED', 'lease store is closed');
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new OrderlyError('ERR_INVALID_ARG', 'lease key must be a string');
}

function checkLease(lease: unknown, what = 'lease'): asserts lease is LeaseInfo {
  const l = lease as Partial<LeaseInfo> | null;
  if (typeof l !== 'object' || l === null || typeof l.key !== 'string' || typeof l.token !== 'bigint') {
    throw new OrderlyError('ERR_INVALID_ARG', `unknown ${what}: expected an object from this store`);
  }
}

function toBuffer(b: string | Uint8Array): Buffer {
  return typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function fromNative(l: { key: string; token: bigint; acquiredAt: number; expiresAt: number; group?: string | null; meta?: Buffer | null }): LeaseInfo {
  return Object.freeze({
    key: l.key,
    token: l.token,
    acquiredAt: l.acquiredAt,
    expiresAt: l.expiresAt,
    ...(l.group != null ? { group: l.group } : {}),
    ...(l.meta != null ? { meta: l.meta } : {}),
  });
}

/**
 * Single-flight leases: at most one holder per key, per-group concurrency
 * gates, fencing tokens. With a directory it is durable: `acquire` and
 * `complete` resolve once their record is synced, and leases held at a crash
 * are held again at the next open (`recovered`). Every thread of a process
 * that opens the same directory shares one store. With `null` it lives in
 * memory, in this thread only, and writes nothing.
 */
export class LeaseStore {
  readonly recovered: Recovered;

  readonly #native: NativeLeaseStore | MemoryLeases;
  readonly #waiters: DurabilityWaiters | undefined;
  readonly #out = new Float64Array(4);
  #closing: Promise<void> | undefined;
  readonly #onPoisoned: ((err: OrderlyError) => void)[] = [];
  #poisonTold = false;

  private constructor(native: NativeLeaseStore | MemoryLeases) {
    this.#native = native;
    if (native instanceof MemoryLeases) {
      this.#waiters = undefined;
      this.recovered = Object.freeze({ held: [], outbox: [], lastRun: Object.freeze({}), cursors: Object.freeze({}) });
      return;
    }
    this.#waiters = new DurabilityWaiters(native);
    const r = native.recovered();
    const h = r.held;
    const held: LeaseInfo[] = h.keys.map((key, i) =>
      fromNative({
        key,
        token: BigInt(h.tokens[i]!),
        acquiredAt: h.acquiredAt[i]!,
        expiresAt: h.expiresAt[i]!,
        group: h.groups[i],
        meta: h.hasMeta[i] ? h.meta.subarray(h.metaStart[i]!, h.metaStart[i + 1]!) : undefined,
      }),
    );
    const lastRun: Record<string, number> = {};
    r.lastRunKeys.forEach((key, i) => (lastRun[key] = r.lastRunAt[i]!));
    const cursors: Record<string, bigint> = {};
    r.cursorKeys.forEach((key, i) => (cursors[key] = r.cursorSeqs[i]!));
    this.recovered = Object.freeze({
      held,
      outbox: r.outbox.map((e) => Object.freeze({ ...e })),
      lastRun: Object.freeze(lastRun),
      cursors: Object.freeze(cursors),
    });
  }

  static async open(dir: string | null, options?: LeaseStoreOptions): Promise<LeaseStore> {
    if (dir !== null && (typeof dir !== 'string' || dir === '')) {
      throw new OrderlyError('ERR_INVALID_ARG', 'dir must be a non-empty string, or null for an in-memory store');
    }
    let store: LeaseStore | undefined;
    try {
      if (dir === null) {
        if (options?.storage) throw new OrderlyError('ERR_INVALID_ARG', 'options.storage needs a directory (on that disk) to open the store in');
        return new LeaseStore(new MemoryLeases(options));
      }
      const native = await NativeLeaseStore.open(dir, options, (err, durableLsn) => {
        if (!store) return;
        store.#waiters?.onEvent(err, durableLsn);
        if (err) store.#tellPoisoned(OrderlyError.from(err));
      });
      store = new LeaseStore(native);
      return store;
    } catch (err) {
      throw OrderlyError.from(err);
    }
  }

  /**
   * Takes `key` if it is free or its lease expired and its group has room.
   * Resolves with the lease once that is durable, or with null when the key
   * is held and fresh or the group's gate is full.
   */
  acquire(key: string, options?: AcquireOptions): Promise<Lease | null> {
    try {
      this.#ensureOpen();
      checkKey(key);
      const out = this.#out;
      const group = options?.group;
      const meta = options?.meta;
      if (this.#native.acquire(key, options?.ttlMs, group, meta, out) !== GRANTED) return Promise.resolve(null);
      const lease: Lease = Object.freeze({
        key,
        token: BigInt(out[0]!),
        acquiredAt: out[1]!,
        expiresAt: out[2]!,
        ...(group !== undefined ? { group } : {}),
        ...(meta !== undefined ? { meta: toBuffer(meta) } : {}),
      });
      const lsn = out[3]!;
      if (lsn === NO_LSN || !this.#waiters) return Promise.resolve(lease);
      return this.#waiters.whenDurable(BigInt(lsn)).then(
        () => lease,
        (err: unknown) => {
          // Not durable, so not held: nobody may act on it.
          this.#native.rollback(key, Number(lease.token));
          throw OrderlyError.from(err);
        },
      );
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** The native store, for the fire lane (which acquires and releases on threads of its own); undefined in memory. */
  get native(): NativeLeaseStore | undefined {
    return this.#native instanceof NativeLeaseStore ? this.#native : undefined;
  }

  /** Extends the lease; ERR_LEASE_STALE if it was released or taken over. */
  renew(lease: Lease, ttlMs?: number): void {
    this.#ensureOpen();
    checkLease(lease);
    this.#call(() => this.#native.renew(lease.key, Number(lease.token), ttlMs));
  }

  /** Records the run's outcome durably: the audit outbox entry, resolved once synced. */
  complete(lease: Lease, outcome: string | Uint8Array): Promise<OutboxEntry> {
    try {
      this.#ensureOpen();
      checkLease(lease);
      if (typeof outcome !== 'string' && !(outcome instanceof Uint8Array)) {
        throw new OrderlyError('ERR_INVALID_ARG', 'outcome must be a string or a Uint8Array');
      }
      const out = this.#out;
      this.#native.complete(lease.key, Number(lease.token), outcome, out);
      const entry: OutboxEntry = Object.freeze({ id: lease.token, key: lease.key, token: lease.token, completedAt: out[0]!, outcome: toBuffer(outcome) });
      const lsn = out[1]!;
      if (lsn === NO_LSN || !this.#waiters) return Promise.resolve(entry);
      return this.#waiters.whenDurable(BigInt(lsn)).then(() => entry);
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** The audit sink committed this entry. Acknowledging twice is harmless. */
  ack(entry: OutboxEntry): void {
    this.#ensureOpen();
    checkLease(entry, 'outbox entry');
    this.#call(() => this.#native.ack(Number(entry.id)));
  }

  /**
   * Frees the key at once. The record is relaxed (durable with the next
   * sync); with `{ durable: true }` the returned promise resolves once it is synced.
   */
  release(lease: Lease): void;
  release(lease: Lease, options: { durable: true }): Promise<void>;
  release(lease: Lease, options?: { durable?: boolean }): void | Promise<void>;
  release(lease: Lease, options?: { durable?: boolean }): void | Promise<void> {
    this.#ensureOpen();
    checkLease(lease);
    const durable = options?.durable === true;
    const lsn = this.#call(() => this.#native.release(lease.key, Number(lease.token), durable));
    if (!durable) return;
    if (lsn === NO_LSN || !this.#waiters) return Promise.resolve();
    return this.#waiters.whenDurable(BigInt(lsn));
  }

  holder(key: string): LeaseInfo | undefined {
    this.#ensureOpen();
    checkKey(key);
    const h = this.#call(() => this.#native.holder(key));
    return h ? fromNative(h) : undefined;
  }

  /** Leases held in `group`, or in the whole store. */
  inFlight(group?: string): number {
    this.#ensureOpen();
    return this.#call(() => this.#native.inFlight(group));
  }

  setGate(group: string, cap: number): void {
    this.#ensureOpen();
    if (typeof group !== 'string' || typeof cap !== 'number') {
      throw new OrderlyError('ERR_INVALID_ARG', 'setGate(group: string, cap: number)');
    }
    this.#call(() => this.#native.setGate(group, cap));
  }

  /** Acquire time (wall-clock ms) of the latest lease on `key`, across restarts. */
  lastRun(key: string): number | undefined {
    this.#ensureOpen();
    checkKey(key);
    return this.#call(() => this.#native.lastRun(key)) ?? undefined;
  }

  /**
   * Raises `key`'s event cursor to `seq` (never lowers it): how far an
   * event-triggered order has read its stream. Resolves once durable, so a
   * restart neither re-reads nor skips what was acknowledged.
   */
  setCursor(key: string, seq: bigint): Promise<void> {
    try {
      this.#ensureOpen();
      checkKey(key);
      if (typeof seq !== 'bigint' || seq < 0n) throw new OrderlyError('ERR_INVALID_ARG', 'seq must be a non-negative bigint');
      const lsn = this.#native.setCursor(key, seq, true);
      if (lsn === NO_LSN || !this.#waiters) return Promise.resolve();
      return this.#waiters.whenDurable(BigInt(lsn));
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /**
   * Raises `key`'s lastRun to `at` (wall-clock ms), durably: an order that
   * was renamed keeps the cadence of its old name.
   */
  carryLastRun(key: string, at: number): Promise<void> {
    try {
      this.#ensureOpen();
      checkKey(key);
      const lsn = this.#native.carryLastRun(key, at);
      if (lsn === NO_LSN || !this.#waiters) return Promise.resolve();
      return this.#waiters.whenDurable(BigInt(lsn));
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** `key`'s event cursor, across restarts; undefined if never set. */
  cursor(key: string): bigint | undefined {
    this.#ensureOpen();
    checkKey(key);
    return this.#call(() => this.#native.cursor(key)) ?? undefined;
  }

  /** What the open mended: bytes cut from the log (and why), tokens skipped over a lost log. */
  repairReport(): { records: number; bytesTruncated: number; reason?: string | null; lostLogHighWater?: number | null; lostReserved?: number | null } {
    this.#ensureOpen();
    if (this.#native instanceof MemoryLeases) return { records: 0, bytesTruncated: 0 };
    const native = this.#native;
    return this.#call(() => native.repairReport());
  }

  /** Completions not yet acknowledged. */
  outbox(): OutboxEntry[] {
    this.#ensureOpen();
    return this.#call(() => this.#native.outbox()).map((e) => Object.freeze({ ...e }));
  }

  /**
   * Where the log ends now. Every record appended so far, relaxed ones
   * included, is on stable storage once `isSynced(mark)` says so: what must
   * wait for a relaxed release (deleting the files that could settle its run
   * after a power cut) waits for that, not for a time. 0n for the in-memory store.
   */
  syncMark(): bigint {
    this.#ensureOpen();
    if (this.#native instanceof MemoryLeases) return 0n;
    const native = this.#native;
    return this.#call(() => native.appendedLsn());
  }

  /** Whether everything appended up to `mark` (see syncMark) is durable; false once the handle is closing. */
  isSynced(mark: bigint): boolean {
    if (this.#native instanceof MemoryLeases) return true;
    if (this.#closing) return false;
    const native = this.#native;
    return this.#call(() => native.durableLsn()) >= mark;
  }

  stats(): LeaseStoreStats {
    this.#ensureOpen();
    return this.#call(() => this.#native.stats());
  }

  /**
   * Calls `f` once, as soon as the log is poisoned (a failed write or sync,
   * its segment deleted under it), or at once if it already is: the log
   * tells, so nobody has to poll for it. A store in memory never is.
   */
  onPoisoned(f: (err: OrderlyError) => void): void {
    this.#onPoisoned.push(f);
    if (!this.#waiters || this.#closing) return;
    const s = this.stats();
    if (s.poisoned) queueMicrotask(() => this.#tellPoisoned(new OrderlyError('ERR_WAL_POISONED', s.poisonReason ?? 'a write or sync failed')));
  }

  #tellPoisoned(err: OrderlyError): void {
    if (this.#poisonTold) return;
    this.#poisonTold = true;
    for (const f of this.#onPoisoned) f(err);
  }

  /**
   * Waits for pending promises, then releases this handle; the last handle
   * in the process syncs and closes the log. Held leases stay held in the
   * log. Idempotent; later calls fail with ERR_STORE_CLOSED.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#waiters?.drained();
      if (!(this.#native instanceof MemoryLeases)) await this.#native.close();
    })();
    return this.#closing;
  }

  #ensureOpen(): void {
    if (this.#closing) throw closedError();
  }

  #call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw OrderlyError.from(err);
    }
  }
}
