import { performance } from 'node:perf_hooks';
import { MAX_TIMER_MS } from './long-timeout.js';

/**
 * Exact due times from a binary heap and one Node timer for the earliest:
 * an order fires at its due time, not on the next tick of a polling patrol
 * (Gas City's 30 s patrol stretched periods by 20-100%).
 *
 * Two kinds of due time. A `mono` entry (cooldowns, retries, condition
 * checks) is a span of real time: it runs on the monotonic clock, so a step
 * of the wall clock neither stretches nor shortens it. A `wall` entry (cron)
 * is a wall-clock moment: it is re-checked against the wall clock at least
 * every WALL_RECHECK_MS, so after a step it fires at the stepped clock's
 * moment (once: the caller schedules the next from now).
 */
interface Entry {
  /** Wall-clock ms as given. */
  due: number;
  /** Monotonic deadline (performance.now() ms): the heap's order. */
  mono: number;
  clock: 'wall' | 'mono';
  /** Both clocks when it was set: a later difference between them is a wall-clock step. */
  setWall: number;
  setMono: number;
  key: string;
  seq: number;
}

const WALL_RECHECK_MS = 60_000;
const ARM_MARGIN_MS = 1;
/** The two clocks drifting apart by more than this is a step of the wall clock, not timer jitter. */
export const STEP_MS = 1_000;

export interface Clocks {
  wall: () => number;
  mono: () => number;
}

const SYSTEM: Clocks = { wall: Date.now, mono: () => performance.now() };

/**
 * A heap whose due entries may be taken early, in batches: it wakes at
 * most once per `minGapMs` and then takes every entry due within
 * `horizonMs`, each at least `horizonMs - minGapMs` ahead of its time (for
 * the fire lane, which fires them natively at their exact time). Mono
 * entries only.
 */
export interface Batching {
  horizonMs: number;
  minGapMs: number;
}

export class TimerHeap {
  readonly #heap: Entry[] = [];
  /** Current entry per key; stale heap entries are skipped lazily. */
  readonly #current = new Map<string, Entry>();
  /** Keys of current wall entries: rechecked against the wall clock every WALL_RECHECK_MS. */
  readonly #wall = new Set<string>();
  /** `inMs`: how long until it is due on the monotonic clock (0 or less: now). */
  readonly #onDue: (key: string, due: number, inMs: number) => void;
  /** A wall entry whose clock was stepped back: its moment must be worked out again from the clock as it is now. */
  readonly #onStep: ((key: string) => void) | undefined;
  readonly #clocks: Clocks;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;
  #seq = 0;
  #stopped = false;

  readonly #batching: Batching | undefined;
  #lastFire = -Infinity;

  constructor(onDue: (key: string, due: number, inMs: number) => void, clocks: Clocks = SYSTEM, onStep?: (key: string) => void, batching?: Batching) {
    this.#onDue = onDue;
    this.#clocks = clocks;
    this.#onStep = onStep;
    this.#batching = batching;
  }

  /** Schedules (or moves) `key` to fire at `due` (epoch ms), measured on `clock`. */
  set(key: string, due: number, clock: 'wall' | 'mono' = 'mono'): void {
    const setWall = this.#clocks.wall();
    const setMono = this.#clocks.mono();
    const e: Entry = { due, mono: setMono + (due - setWall), clock, setWall, setMono, key, seq: ++this.#seq };
    this.#current.set(key, e);
    if (clock === 'wall') this.#wall.add(key);
    else this.#wall.delete(key);
    this.#push(e);
    this.#arm();
  }

  delete(key: string): void {
    this.#current.delete(key);
    this.#wall.delete(key);
  }

  /** When `key` fires, as a wall-clock time (for a mono entry after a step: now plus what is left of its span). */
  due(key: string): number | undefined {
    const e = this.#current.get(key);
    if (!e) return undefined;
    const stepped = Math.abs(this.#clocks.wall() - e.setWall - (this.#clocks.mono() - e.setMono)) > STEP_MS;
    return e.clock === 'wall' || !stepped ? e.due : this.#clocks.wall() + (e.mono - this.#clocks.mono());
  }

  get size(): number {
    return this.#current.size;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#dropStale();
    const top = this.#heap[0];
    if (!top) return;
    if (this.#timer && top.mono >= this.#armedFor) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedFor = top.mono;
    const now = this.#clocks.mono();
    const b = this.#batching;
    let delay = Math.max(0, b ? Math.max(top.mono - b.horizonMs - now, this.#lastFire + b.minGapMs - now) : top.mono - now);
    if (this.#wall.size > 0) delay = Math.min(delay, WALL_RECHECK_MS);
    // Node counts a timer in whole milliseconds from the loop's cached time, so one armed for
    // exactly the span often fired up to a millisecond early: the heap found nothing due and
    // armed again, a second wake-up (and event-loop turn) for every fire. Rounded up, plus
    // one, it fires once, at or just after the due time.
    this.#timer = setTimeout(() => this.#fire(), Math.min(delay > 0 ? Math.ceil(delay) + ARM_MARGIN_MS : 0, MAX_TIMER_MS));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const mono = this.#clocks.mono();
    const wall = this.#clocks.wall();
    this.#lastFire = mono;
    const reach = mono + (this.#batching?.horizonMs ?? 0);
    const ready: Entry[] = [];
    const later: Entry[] = [];
    const rework: string[] = [];
    for (;;) {
      this.#dropStale();
      const top = this.#heap[0];
      if (!top || top.mono > reach) break;
      this.#pop();
      if (top.clock === 'wall' && top.due > wall) {
        const stepped = Math.abs(wall - top.setWall - (mono - top.setMono)) > STEP_MS;
        if (stepped && this.#onStep) {
          // Stepped back: its moment (the next cron minute) is another one on the clock as it is now.
          this.delete(top.key);
          rework.push(top.key);
        } else {
          later.push({ ...top, mono: mono + (top.due - wall) });
        }
        continue;
      }
      this.delete(top.key);
      ready.push(top);
    }
    // Wall entries whose moment came early on a clock stepped forward, found by the periodic recheck.
    for (const key of [...this.#wall]) {
      const e = this.#current.get(key)!;
      if (e.due <= wall) {
        this.delete(key);
        ready.push(e);
      }
    }
    for (const e of later) {
      this.#current.set(e.key, e);
      this.#wall.add(e.key);
      this.#push(e);
    }
    for (const e of ready) this.#onDue(e.key, e.due, e.mono - mono);
    for (const key of rework) this.#onStep!(key);
    this.#arm();
  }

  #dropStale(): void {
    while (this.#heap.length > 0 && this.#current.get(this.#heap[0]!.key) !== this.#heap[0]) this.#pop();
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.mono < b.mono || (a.mono === b.mono && a.seq < b.seq);
}
