import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditRecord, AuditSink } from './record.js';

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
      for (const line of readFileSync(this.#path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          this.#seen.add((JSON.parse(line) as AuditRecord).fireId);
        } catch {
          // A torn last line from a crash mid-write: its record is still in the outbox and will be re-sent.
        }
      }
    }
    this.#fd = openSync(this.#path, 'a');
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
    const fresh = records.filter((r) => !this.#seen.has(r.fireId));
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

  async close(): Promise<void> {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
