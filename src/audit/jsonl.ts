import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditRecord, AuditSink, HistoryQuery, PruneOptions } from './record.js';
import { checkHistoryQuery, checkPruneOptions, uniqueByFireId } from './schema.js';

/**
 * One JSON line per record, fdatasync'd once per batch. Idempotent on fireId:
 * the ids already in the file are read at open. Suits small controllers and
 * tests; a database sink suits anything that queries history.
 */
export class JsonlSink implements AuditSink {
  readonly url: string;
  readonly #path: string;
  #fd: number | undefined;
  readonly #seen = new Set<string>();

  constructor(path: string) {
    this.#path = path;
    this.url = `jsonl:${path}`;
  }

  async open(): Promise<void> {
    const created = !existsSync(this.#path);
    if (!created) {
      const text = readFileSync(this.#path, 'utf8');
      if (text.length > 0 && !text.endsWith('\n')) {
        // A torn last line from a crash mid-write: cut it off, or the next
        // append would glue a good record onto it and make both unreadable.
        // Its record is still in the outbox and will be re-sent.
        truncateSync(this.#path, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
      }
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          this.#seen.add((JSON.parse(line) as AuditRecord).fireId);
        } catch {
          // A torn last line from a crash mid-write: its record is still in the outbox and will be re-sent.
        }
      }
    }
    this.#fd = openSync(this.#path, 'a', 0o600);
    if (created) {
      const dir = openSync(dirname(this.#path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
  }

  async write(records: readonly AuditRecord[]): Promise<{ inserted: number }> {
    if (this.#fd === undefined) throw new Error(`${this.url} is not open`);
    const fresh = uniqueByFireId(records).filter((r) => !this.#seen.has(r.fireId));
    if (fresh.length > 0) {
      writeSync(this.#fd, fresh.map((r) => JSON.stringify(r) + '\n').join(''));
      fdatasyncSync(this.#fd);
      for (const r of fresh) this.#seen.add(r.fireId);
    }
    return { inserted: fresh.length };
  }

  async ping(): Promise<void> {
    if (this.#fd === undefined) throw new Error(`${this.url} is not open`);
  }

  /** Reads the whole file: fine for the small controllers this sink suits. */
  async history(q: HistoryQuery): Promise<AuditRecord[]> {
    checkHistoryQuery(q);
    if (this.#fd === undefined) throw new Error(`${this.url} is not open`);
    const hits = this.#read()
      .map((r, line) => ({ r, line }))
      .filter(({ r }) => (q.scopedName === undefined || r.scopedName === q.scopedName) && (q.fireId === undefined || r.fireId === q.fireId) && (q.before === undefined || r.endedAt < q.before));
    // Newest first; among equal endedAt, the later line first (as the SQL sinks order by id).
    hits.sort((a, b) => b.r.endedAt - a.r.endedAt || b.line - a.line);
    return hits.slice(0, q.limit).map(({ r }) => r);
  }

  /**
   * Rewrites the file without the pruned records: a temp file, fsync'd, renamed
   * over the old one, then the directory fsync'd, so a crash leaves the old
   * file or the new one. One rewrite is one "transaction", whatever `batch` says.
   */
  async prune(p: PruneOptions): Promise<number> {
    checkPruneOptions(p);
    if (this.#fd === undefined) throw new Error(`${this.url} is not open`);
    const cutoff = Date.now() - p.olderThanMs;
    const records = this.#read();
    const kept = new Set<number>();
    const byOrder = new Map<string, number[]>();
    records.forEach((r, i) => byOrder.set(r.scopedName, [...(byOrder.get(r.scopedName) ?? []), i]));
    for (const lines of byOrder.values()) {
      lines.sort((a, b) => records[b]!.endedAt - records[a]!.endedAt || b - a);
      lines.forEach((i, rank) => {
        if (rank < p.keepPerOrder || records[i]!.endedAt >= cutoff) kept.add(i);
      });
    }
    const survivors = records.filter((_, i) => kept.has(i));
    const removed = records.length - survivors.length;
    if (removed === 0) return 0;
    const tmp = `${this.#path}.prune-${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, survivors.map((r) => JSON.stringify(r) + '\n').join(''));
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, this.#path);
    const dir = openSync(dirname(this.#path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    // The old descriptor points at the replaced file.
    closeSync(this.#fd);
    this.#fd = openSync(this.#path, 'a', 0o600);
    this.#seen.clear();
    for (const r of survivors) this.#seen.add(r.fireId);
    return removed;
  }

  async close(): Promise<void> {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** Every readable record in file order (a torn last line is skipped). */
  #read(): AuditRecord[] {
    if (!existsSync(this.#path)) return [];
    const out: AuditRecord[] = [];
    for (const line of readFileSync(this.#path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as AuditRecord);
      } catch {
        // torn tail: its record is still in the outbox
      }
    }
    return out;
  }
}
