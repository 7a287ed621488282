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
 * Appends an event to a Gas City event log under its writers' lock, with
 * the next seq and Gas City's fields; returns the record as written.
 */
export function appendEvent(path: string, input: PublishInput, env: NodeJS.ProcessEnv = process.env): CityEvent {
  const actor = input.actor ?? env.GC_ALIAS ?? env.GC_AGENT ?? env.GC_SESSION_ID ?? 'orderly';
  const body: Omit<CityEvent, 'seq'> = { type: input.type, ts: localIsoNow(), actor };
  if (input.subject) body.subject = input.subject;
  if (input.message) body.message = input.message;
  if (input.payload !== undefined) body.payload = input.payload;
  const seq = appendCityEvent(path, JSON.stringify(body));
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

/**
 * Follows a Gas City event log: each `poll()` returns the complete records
 * appended since the last one. A log that was rotated (a new file under the
 * name) or truncated is read again from its start; records at or below the
 * highest seq already returned are not returned twice. The first poll also
 * reads the rotated archives (`events.jsonl.archive-*-seq-<a>-<b>.gz`)
 * holding records past `after`, as Gas City's reader does.
 */
export class EventLogFollower {
  readonly path: string;
  #offset = 0;
  #ino: number | undefined;
  #partial = '';
  #head: number;
  #first = true;
  readonly #after: number;

  constructor(path: string, after = 0) {
    this.path = path;
    this.#after = after;
    this.#head = after;
  }

  /** The highest seq seen. */
  get head(): number {
    return this.#head;
  }

  poll(): CityEvent[] {
    const out: CityEvent[] = [];
    if (this.#first) {
      this.#first = false;
      for (const archive of archivesAfter(this.path, this.#after)) this.#take(gunzipSync(readFileSync(archive)).toString('utf8'), out, true);
    }
    const st = statSync(this.path, { throwIfNoEntry: false });
    if (st === undefined) return out;
    if (this.#ino !== st.ino || st.size < this.#offset) {
      this.#ino = st.ino;
      this.#offset = 0;
      this.#partial = '';
    }
    if (st.size === this.#offset) return out;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      this.#take(this.#partial + buf.subarray(0, n).toString('utf8'), out, false);
    } finally {
      closeSync(fd);
    }
    return out;
  }

  #take(text: string, out: CityEvent[], whole: boolean): void {
    const lines = text.split('\n');
    // The last piece has no newline yet: a record still being written.
    this.#partial = whole ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      const e = parseEvent(line);
      if (e === undefined || e.seq <= this.#head) continue;
      this.#head = e.seq;
      out.push(e);
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
