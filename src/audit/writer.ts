import type { AuditRecord, AuditSink } from './record.js';

export interface AuditWriterOptions {
  /** Most records in one transaction. */
  maxBatch?: number;
  /**
   * How long the first record of a batch waits for company; default 0.
   * Group commit needs no wait (what arrives during a transaction goes into
   * the next); a wait only pays where each commit is dear (Dolt).
   */
  maxDelayMs?: number;
  /** Backoff after a failed transaction: starts here, doubles, capped at maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Called with the outbox ids of a committed batch (the caller acks them). */
  onCommitted: (ids: readonly bigint[]) => void;
  onError?: (err: unknown, attempt: number) => void;
}

export interface AuditWriterStats {
  transactions: number;
  records: number;
  inserted: number;
  failures: number;
  backlog: number;
  /** Records deleted by retention. */
  pruned?: number;
  lastError?: string;
}

interface Pending {
  id: bigint;
  record: AuditRecord;
}

/**
 * The single owner of audit writes for a controller. Records that arrive
 * while a transaction is in flight go into the next one (group commit), so
 * forty completions at once cost a transaction or two, not forty
 * (seeds/beads-load-analysis.md: per-write flushing made 20 concurrent
 * writers 16x slower). A failed transaction is retried with capped backoff;
 * records stay queued (and durable in the outbox) meanwhile.
 */
export class AuditWriter {
  readonly #sink: AuditSink;
  readonly #opts: Required<Omit<AuditWriterOptions, 'onError'>> & Pick<AuditWriterOptions, 'onError'>;
  readonly #queue = new Map<string, Pending>();
  #running: Promise<void> | undefined;
  #closed = false;
  #backingOff = false;
  #pruning = false;
  #retention: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  readonly #stats: AuditWriterStats = { transactions: 0, records: 0, inserted: 0, failures: 0, backlog: 0 };

  constructor(sink: AuditSink, opts: AuditWriterOptions) {
    this.#sink = sink;
    // Retries are capped at 5 s so a database that returns is caught up with quickly.
    this.#opts = { maxBatch: 500, maxDelayMs: 0, retryMs: 200, maxRetryMs: 5_000, ...opts };
  }

  get sink(): AuditSink {
    return this.#sink;
  }

  stats(): AuditWriterStats {
    return { ...this.#stats, backlog: this.backlog };
  }

  /** Records waiting to be written (stats().backlog without the copy). */
  get backlog(): number {
    return this.#queue.size;
  }

  /** Queues a record; the same fire queued twice is written once. */
  enqueue(id: bigint, record: AuditRecord): void {
    if (this.#closed) return;
    this.#queue.set(record.fireId, { id, record });
    this.#kick();
  }

  #kick(): void {
    if (this.#running || this.#closed) return;
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
      // Something may have arrived between the loop's last check and here.
      if (this.#queue.size > 0) this.#kick();
    });
  }

  /** Resolves when the queue is empty, or rejects after `timeoutMs`. */
  async flush(timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.size > 0 && Date.now() < deadline) {
      // Cut the batching window short, never a backoff: a database that is down gets the same
      // spaced retries at shutdown as during the run, not one every 5 ms for the whole grace.
      if (!this.#backingOff) this.#wake?.();
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.#queue.size === 0;
  }

  /**
   * Retention: every `everyMs`, when nothing waits to be written, deletes
   * records older than `days` but keeps `keepPerOrder` per order, `batch`
   * rows per transaction. Never in the hot path: it skips a turn while a
   * batch is queued or being written.
   */
  scheduleRetention(r: { days: number; keepPerOrder: number; everyMs?: number; batch?: number }, onPruned?: (deleted: number) => void): void {
    const prune = this.#sink.prune?.bind(this.#sink);
    if (!prune) return;
    const run = async (): Promise<void> => {
      if (this.#closed || this.#pruning || this.#running || this.#queue.size > 0) return;
      this.#pruning = true;
      try {
        const deleted = await prune({ olderThanMs: r.days * 86_400_000, keepPerOrder: r.keepPerOrder, batch: r.batch ?? 1000 });
        this.#stats.pruned = (this.#stats.pruned ?? 0) + deleted;
        onPruned?.(deleted);
      } catch (err) {
        this.#opts.onError?.(err, 0);
      } finally {
        this.#pruning = false;
      }
    };
    this.#retention = setInterval(() => void run(), r.everyMs ?? 3_600_000).unref();
    setTimeout(() => void run(), 1_000).unref();
  }

  /** Stops writing; what is queued stays in the outbox for the next start. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.#retention) clearInterval(this.#retention);
    await this.flush(timeoutMs);
    this.#closed = true;
    this.#wake?.();
    await this.#running;
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (this.#queue.size > 0 && !this.#closed) {
      if (attempt === 0 && this.#opts.maxDelayMs > 0 && this.#queue.size < this.#opts.maxBatch) await this.#sleep(this.#opts.maxDelayMs);
      const batch = [...this.#queue.values()].slice(0, this.#opts.maxBatch);
      try {
        const { inserted } = await this.#sink.write(batch.map((p) => p.record));
        this.#stats.transactions++;
        this.#stats.records += batch.length;
        this.#stats.inserted += inserted;
        delete this.#stats.lastError;
        for (const p of batch) this.#queue.delete(p.record.fireId);
        attempt = 0;
        this.#opts.onCommitted(batch.map((p) => p.id));
      } catch (err) {
        attempt++;
        this.#stats.failures++;
        this.#stats.lastError = err instanceof Error ? err.message : String(err);
        this.#opts.onError?.(err, attempt);
        this.#backingOff = true;
        await this.#sleep(Math.min(this.#opts.retryMs * 2 ** (attempt - 1), this.#opts.maxRetryMs));
        this.#backingOff = false;
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.#wake = done;
    });
  }
}
