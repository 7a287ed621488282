import { OrderlyError } from './errors.js';

/** What a waiter queue needs from a native handle that reports durability. */
export interface DurabilitySource {
  durableLsn(): bigint;
  ref(): void;
  unref(): void;
}

interface Waiter {
  lsn: bigint;
  resolve: () => void;
  reject: (err: OrderlyError) => void;
}

/** Past this many settled waiters the queue array is compacted, keeping memory bound by what is pending (G7). */
const COMPACT_AFTER = 1024;
/**
 * Most waiters settled in one macrotask. Each settlement runs its caller's
 * continuation (often the next append) before timers get a turn; at hundreds
 * of thousands of appends a second one group commit covers hundreds of them,
 * so the rest continue after a setImmediate and the event loop stays
 * responsive (bench/wal.mjs: p99 delay 23 ms at 256 in flight without this).
 */
const SETTLE_PER_TURN = 64;

/**
 * Promises that settle when the writer thread's fdatasync watermark covers
 * their LSN (G5). LSNs are pushed in non-decreasing order per JS thread (a
 * sync target or checkpoint ticket covers everything appended before it), so
 * one watermark settles a prefix; `#head` makes that O(1).
 */
export class DurabilityWaiters {
  readonly #source: DurabilitySource;
  #waiters: Waiter[] = [];
  #head = 0;
  #durable: bigint;
  #poison: OrderlyError | undefined;
  #drained: (() => void) | undefined;
  #settleScheduled = false;

  constructor(source: DurabilitySource) {
    this.#source = source;
    this.#durable = source.durableLsn();
  }

  get poison(): OrderlyError | undefined {
    return this.#poison;
  }

  pending(): number {
    return this.#waiters.length - this.#head;
  }

  /** Resolves once every waiter pending now has settled. */
  drained(): Promise<void> {
    if (this.pending() === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  whenDurable(lsn: bigint): Promise<void> {
    if (this.#poison) return Promise.reject(this.#poison);
    if (lsn <= this.#durable) return Promise.resolve();
    // A target may already be covered by a sync whose event is still queued,
    // or whose watermark predates it; no new event would come for it.
    const durable = this.#source.durableLsn();
    if (durable > this.#durable) this.#durable = durable;
    if (lsn <= this.#durable) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ lsn, resolve, reject });
      // The event callback is weak so an idle log never keeps the process
      // alive; it must while a promise waits on it.
      if (this.pending() === 1) {
        this.#source.ref();
        // A source may send watermarks only while something waits: one that came just before ref() was not sent.
        const now = this.#source.durableLsn();
        if (now > this.#durable) {
          this.#durable = now;
          queueMicrotask(() => {
            if (!this.#poison) this.#settle();
          });
        }
      }
    });
  }

  /** The native `onEvent(err, durableLsn)` callback. */
  onEvent(err: Error | null, durableLsn: bigint): void {
    if (err) {
      this.#failAll(OrderlyError.from(err));
      return;
    }
    if (durableLsn > this.#durable) this.#durable = durableLsn;
    this.#settle();
  }

  #settle(): void {
    const waiters = this.#waiters;
    let n = 0;
    while (this.#head < waiters.length && waiters[this.#head]!.lsn <= this.#durable) {
      if (n++ === SETTLE_PER_TURN) {
        if (!this.#settleScheduled) {
          this.#settleScheduled = true;
          setImmediate(() => {
            this.#settleScheduled = false;
            if (!this.#poison) this.#settle();
          });
        }
        break;
      }
      const waiter = waiters[this.#head]!;
      waiters[this.#head++] = undefined as unknown as Waiter;
      waiter.resolve();
    }
    this.#afterSettle();
  }

  /** G6: after a failed write or sync nothing pending can become durable. */
  #failAll(err: OrderlyError): void {
    this.#poison ??= err;
    const waiters = this.#waiters;
    while (this.#head < waiters.length) {
      const waiter = waiters[this.#head]!;
      waiters[this.#head++] = undefined as unknown as Waiter;
      waiter.reject(err);
    }
    this.#afterSettle();
  }

  #afterSettle(): void {
    if (this.#head === 0) return;
    if (this.#head === this.#waiters.length) {
      this.#waiters = [];
      this.#head = 0;
      this.#source.unref();
      const drained = this.#drained;
      this.#drained = undefined;
      drained?.();
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
  }
}
