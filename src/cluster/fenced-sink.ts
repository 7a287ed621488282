import { appendFileSync, closeSync, fsyncSync, openSync } from 'node:fs';
import type { AuditRecord, AuditSink, HistoryQuery, PruneOptions } from '../audit/record.js';
import type { ClusterEngine } from './engine.js';

/**
 * A cluster member's audit sink: a record is stored only if the shard epoch
 * it was fired under is still current, so a deposed owner's late record is
 * never stored beside the new owner's. A refused record is not lost: it goes
 * to `fenced.jsonl` in the state directory (fsync'd before the batch counts
 * as written) and is reported.
 *
 * With a PostgreSQL engine and the audit in the same database the check and
 * the insert are one statement (PostgresSink's `fence` option), and this
 * wrapper only routes. Elsewhere (etcd, another database) the check is a
 * read of the engine just before the insert: a claim landing between the
 * two is the one window, as wide as that insert.
 */
export class FencedSink implements AuditSink {
  readonly url: string;
  readonly #inner: AuditSink;
  readonly #engine: () => ClusterEngine;
  readonly #journal: string;
  readonly #onFenced: (records: AuditRecord[]) => void;
  readonly #atomic: boolean;

  constructor(inner: AuditSink, opts: { engine: () => ClusterEngine; journal: string; onFenced: (records: AuditRecord[]) => void; atomic: boolean }) {
    this.#inner = inner;
    this.url = inner.url;
    this.#engine = opts.engine;
    this.#journal = opts.journal;
    this.#onFenced = opts.onFenced;
    this.#atomic = opts.atomic;
  }

  open(): Promise<void> {
    return this.#inner.open();
  }

  async write(records: readonly AuditRecord[]): Promise<{ inserted: number }> {
    if (this.#atomic) {
      const r = (await this.#inner.write(records)) as { inserted: number; fenced?: AuditRecord[] };
      if (r.fenced && r.fenced.length > 0) this.#onFenced(r.fenced);
      return { inserted: r.inserted };
    }
    const claimed = records.map((r) => epochOf(r));
    const checks = claimed.flatMap((c) => (c ? [c] : []));
    const current = checks.length > 0 ? await this.#engine().current(checks) : [];
    const keep: AuditRecord[] = [];
    const refused: AuditRecord[] = [];
    let i = 0;
    records.forEach((r, n) => {
      if (!claimed[n]) keep.push(r);
      else (current[i++] ? keep : refused).push(r);
    });
    if (refused.length > 0) {
      this.#journalize(refused);
      this.#onFenced(refused);
    }
    return keep.length > 0 ? this.#inner.write(keep) : { inserted: 0 };
  }

  #journalize(records: AuditRecord[]): void {
    const fd = openSync(this.#journal, 'a', 0o600);
    try {
      appendFileSync(fd, records.map((r) => `${JSON.stringify({ ...r, fencedAt: Date.now() })}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  ping(): Promise<void> {
    return this.#inner.ping();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  history(q: HistoryQuery): Promise<AuditRecord[]> {
    return this.#inner.history ? this.#inner.history(q) : Promise.resolve([]);
  }

  prune(p: PruneOptions): Promise<number> {
    return this.#inner.prune ? this.#inner.prune(p) : Promise.resolve(0);
  }
}

/** The shard and epoch a cluster member's record was fired under (labels the controller sets). */
export function epochOf(r: AuditRecord): { shard: number; epoch: number } | undefined {
  const shard = r.labels['cluster.shard'];
  const epoch = r.labels['cluster.epoch'];
  return shard !== undefined && epoch !== undefined ? { shard: Number(shard), epoch: Number(epoch) } : undefined;
}
