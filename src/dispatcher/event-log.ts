import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { appendCityEvent } from '../native.js';

/** One record of a Gas City event log (`<city>/.gc/events.jsonl`), as Gas City writes it. */
export interface CityEvent {
  seq: number;
  type: string;
  ts?: string;
  actor?: string;
  subject?: string;
  message?: string;
  payload?: unknown;
}

export interface PublishInput {
  /** Event type, e.g. `bead.closed`; event orders whose `on` equals it fire. */
  type: string;
  payload?: unknown;
  subject?: string;
  message?: string;
  /** Default: `$GC_ALIAS`, `$GC_AGENT`, `$GC_SESSION_ID`, then `orderly` (Gas City's `gc event emit` order, with our name last). */
  actor?: string;
}

/**
 * Appends an event to a Gas City event log under an exclusive lock (as
 * Gas City's recorder takes one), with the next seq (past `floor`, the
 * highest seq the caller has consumed) and Gas City's fields; returns the
 * record as written.
 */
export function appendEvent(path: string, input: PublishInput, env: NodeJS.ProcessEnv = process.env, floor = 0): CityEvent {
  const actor = input.actor ?? env.GC_ALIAS ?? env.GC_AGENT ?? env.GC_SESSION_ID ?? 'orderly';
  const body: Omit<CityEvent, 'seq'> = { type: input.type, ts: localIsoNow(), actor };
  if (input.subject) body.subject = input.subject;
  if (input.message) body.message = input.message;
  if (input.payload !== undefined) body.payload = input.payload;
  const seq = appendCityEvent(path, JSON.stringify(body), floor);
  return { seq, ...body };
}

/** RFC 3339 with the local offset, as Gas City's recorder writes `ts`. */
function localIsoNow(): string {
  const d = new Date();
  const off = -d.getTimezoneOffset();
  const pad = (n: number, w = 2): string => String(Math.abs(n)).padStart(w, '0');
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}${zone}`;
}

/**
 * Events an order's own bead wrote (its tracking bead, its run): Gas City
 * does not count them, so an order cannot trigger itself.
 */
export function isOrderMarker(e: CityEvent): boolean {
  const p = e.payload as { labels?: unknown; bead?: { labels?: unknown } } | undefined;
  for (const labels of [p?.labels, p?.bead?.labels]) {
    if (Array.isArray(labels) && labels.some((l) => l === 'order-tracking' || (typeof l === 'string' && l.startsWith('order-run:')))) return true;
  }
  return false;
}

/** Bytes one poll reads at most: a huge log is read across polls, never into one string. */
const POLL_BYTES = 8 * 1024 * 1024;

/**
 * Follows a Gas City event log: each `poll()` returns the complete records
 * appended since the last one, reading at most a few MiB per call (`more`
 * says there is more to read now). A log that was rotated (a new file under
 * the name) or truncated is read again from its start, after the rotated
 * archives (`events.jsonl.archive-*-seq-<a>-<b>.gz`) that hold records past
 * what was read, as Gas City's reader does; the first poll reads the
 * archives holding records past `after`. Records at or below the highest
 * seq already returned are not returned again. What cannot be read (a
 * broken archive, a log whose numbering began again) is in `problems`.
 */
export class EventLogFollower {
  readonly path: string;
  #offset = 0;
  #ino: number | undefined;
  /** Bytes of a record still being written (no newline yet), kept as bytes so a split UTF-8 character survives. */
  #partial: Buffer = Buffer.alloc(0);
  /** The log's first bytes when last read: an inode can be reused at once for a new file under the name. */
  #fingerprint: Buffer = Buffer.alloc(0);
  #head: number;
  #first = true;
  #replaced = false;
  #more = false;
  readonly #after: number;
  problems: string[] = [];

  constructor(path: string, after = 0) {
    this.path = path;
    this.#after = after;
    this.#head = after;
  }

  /** The highest seq seen. */
  get head(): number {
    return this.#head;
  }

  /** The last poll stopped before the end of the log. */
  get more(): boolean {
    return this.#more;
  }

  poll(): CityEvent[] {
    const out: CityEvent[] = [];
    this.problems = [];
    if (this.#first) {
      this.#first = false;
      this.#readArchives(this.#after, out);
    }
    const st = statSync(this.path, { throwIfNoEntry: false });
    this.#more = false;
    if (st === undefined) return out;
    if (this.#ino !== st.ino || st.size < this.#offset || !this.#sameStart()) {
      if (this.#ino !== undefined) {
        // Rotated (or replaced) since the last poll: what was rotated away is in the archives now.
        this.#readArchives(this.#head, out);
        this.#replaced = true;
      }
      this.#ino = st.ino;
      this.#offset = 0;
      this.#partial = Buffer.alloc(0);
      this.#fingerprint = Buffer.alloc(0);
    }
    if (st.size === this.#offset) return out;
    const fd = openSync(this.path, 'r');
    try {
      const want = Math.min(fstatSync(fd).size - this.#offset, POLL_BYTES);
      const buf = Buffer.alloc(want);
      const n = readSync(fd, buf, 0, want, this.#offset);
      if (this.#offset === 0) this.#fingerprint = Buffer.from(buf.subarray(0, Math.min(n, 64)));
      this.#offset += n;
      this.#more = this.#offset < fstatSync(fd).size;
      const bytes = this.#partial.length > 0 ? Buffer.concat([this.#partial, buf.subarray(0, n)]) : buf.subarray(0, n);
      const end = bytes.lastIndexOf(0x0a);
      this.#partial = Buffer.from(bytes.subarray(end + 1));
      if (end >= 0) this.#take(bytes.subarray(0, end).toString('utf8'), out, this.#replaced);
      this.#replaced = false;
    } finally {
      closeSync(fd);
    }
    return out;
  }

  #sameStart(): boolean {
    if (this.#fingerprint.length === 0) return true;
    const now = Buffer.alloc(this.#fingerprint.length);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, now, 0, now.length, 0);
    } finally {
      closeSync(fd);
    }
    return now.equals(this.#fingerprint);
  }

  #readArchives(after: number, out: CityEvent[]): void {
    for (const archive of archivesAfter(this.path, after)) {
      try {
        this.#take(gunzipSync(readFileSync(archive)).toString('utf8'), out, false);
      } catch (err) {
        this.problems.push(`cannot read the rotated event log ${archive}: ${(err as Error).message}`);
      }
    }
  }

  #take(text: string, out: CityEvent[], replaced: boolean): void {
    let stale = 0;
    for (const line of text.split('\n')) {
      const e = parseEvent(line);
      if (e === undefined) continue;
      if (e.seq <= this.#head) {
        stale++;
        continue;
      }
      this.#head = e.seq;
      out.push(e);
    }
    if (replaced && stale > 0) {
      this.problems.push(
        `${this.path} was replaced and numbers its records again from below ${this.#head}: ${stale} record(s) at or below what was already read are ignored (write new events with orderly-dispatch publish, which numbers past them)`,
      );
    }
  }
}

/** A record, or undefined for a malformed line (Gas City's readers skip those too). */
export function parseEvent(line: string): CityEvent | undefined {
  if (line.trim() === '') return undefined;
  try {
    const v = JSON.parse(line) as Partial<CityEvent>;
    if (typeof v !== 'object' || v === null || typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || typeof v.type !== 'string') return undefined;
    return v as CityEvent;
  } catch {
    return undefined;
  }
}

function archivesAfter(path: string, after: number): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.archive-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ n, m: /-seq-(\d+)-(\d+)\.gz$/.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.n.startsWith(prefix) && x.m !== null && Number(x.m[2]) > after)
    .sort((a, b) => Number(a.m[1]) - Number(b.m[1]))
    .map((x) => join(dir, x.n));
}
