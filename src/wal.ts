import { DurabilityWaiters } from './durability.js';
import { OrderlyError } from './errors.js';
import { NativeWal } from './native.js';

export interface WalOpenOptions {
  /** Segment file size in bytes, 4096 to 1 GiB. */
  segmentBytes?: number;
  /** How long a relaxed append may wait for a sync, 1 to 60000 ms. */
  flushIntervalMs?: number;
  /** Cut the log at the first damaged record instead of refusing to open. */
  repair?: boolean;
  /** Zero-fill each segment file before use (default true: syncs then never journal a size change). */
  preallocate?: boolean;
}

export interface WalOpenReport {
  readonly records: number;
  readonly bytesTruncated: number;
  readonly reason?: string;
}

export interface WalRecord {
  lsn: bigint;
  payload: Buffer;
}

export interface WalStats {
  segments: number;
  bytes: number;
  appends: number;
  syncs: number;
  poisoned: boolean;
}

function closedError(): OrderlyError {
  return new OrderlyError('ERR_WAL_CLOSED', 'WAL is closed');
}

function checkPayload(payload: unknown, what: string): void {
  if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
    throw new OrderlyError('ERR_INVALID_ARG', `${what} must be a Uint8Array or a string`);
  }
}

/**
 * A write-ahead log whose promises resolve only once what they wrote is
 * durable (G5): `append`, `sync` and `checkpoint` settle when the writer
 * thread's fdatasync watermark covers their LSN. Group commit happens on that
 * thread; the JS thread only enqueues.
 */
export class Wal {
  readonly openReport: WalOpenReport;

  readonly #native: NativeWal;
  readonly #waiters: DurabilityWaiters;
  #closing: Promise<void> | undefined;

  private constructor(native: NativeWal) {
    this.#native = native;
    this.#waiters = new DurabilityWaiters(native);
    this.openReport = Object.freeze({ ...native.openReport });
  }

  /** Opens the log in `dir`, recovering it first; recovery runs off the JS thread. */
  static async open(dir: string, options?: WalOpenOptions): Promise<Wal> {
    if (typeof dir !== 'string' || dir === '') {
      throw new OrderlyError('ERR_INVALID_ARG', 'dir must be a non-empty string');
    }
    // Events can only matter once a promise waits on them, and none can
    // before `open` resolves, so events that arrive earlier are dropped.
    let wal: Wal | undefined;
    try {
      const native = await NativeWal.open(dir, options, (err, durableLsn) => {
        if (wal) wal.#waiters.onEvent(err, durableLsn);
      });
      wal = new Wal(native);
      return wal;
    } catch (err) {
      throw OrderlyError.from(err);
    }
  }

  /** Resolves with the record's LSN once it is durable. */
  append(payload: Uint8Array | string): Promise<bigint> {
    try {
      this.#ensureOpen();
      checkPayload(payload, 'payload');
      const lsn = this.#native.append(payload);
      return this.#waiters.whenDurable(lsn).then(() => lsn);
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** Enqueues without waiting: durable with the next sync, or within `flushIntervalMs`. */
  appendRelaxed(payload: Uint8Array | string): bigint {
    this.#ensureOpen();
    checkPayload(payload, 'payload');
    return this.#call(() => this.#native.appendRelaxed(payload));
  }

  /** Resolves once everything appended so far (relaxed appends included) is durable. */
  sync(): Promise<void> {
    try {
      this.#ensureOpen();
      return this.#waiters.whenDurable(this.#native.requestSync());
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** Replaces the whole history with `live`; resolves once the new state is durable. */
  checkpoint(live: Array<Uint8Array | string>): Promise<void> {
    try {
      this.#ensureOpen();
      if (!Array.isArray(live)) throw new OrderlyError('ERR_INVALID_ARG', 'live must be an array');
      live.forEach((payload, i) => checkPayload(payload, `live[${i}]`));
      return this.#waiters.whenDurable(this.#native.checkpoint(live));
    } catch (err) {
      return Promise.reject(OrderlyError.from(err));
    }
  }

  /** The records the log held when it was opened, in LSN order. */
  records(): Iterable<WalRecord> {
    this.#ensureOpen();
    return this.#call(() => this.#native.records());
  }

  stats(): WalStats {
    this.#ensureOpen();
    return this.#call(() => this.#native.stats());
  }

  /**
   * Waits for pending promises to settle, then flushes, syncs and closes off
   * the JS thread and releases the directory lock. Idempotent; every later
   * call fails with ERR_WAL_CLOSED.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#waiters.drained();
    try {
      await this.#native.close();
    } catch (err) {
      throw OrderlyError.from(err);
    }
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
