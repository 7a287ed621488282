/**
 * Exact due times from a binary heap and one Node timer for the earliest:
 * an order fires at its due time, not on the next tick of a polling patrol
 * (Gas City's 30 s patrol stretched periods by 20-100%).
 */
interface Entry {
  due: number;
  key: string;
  seq: number;
}

export class TimerHeap {
  readonly #heap: Entry[] = [];
  /** Current entry per key; stale heap entries are skipped lazily. */
  readonly #current = new Map<string, Entry>();
  readonly #onDue: (key: string, due: number) => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;
  #seq = 0;
  #stopped = false;

  constructor(onDue: (key: string, due: number) => void, now: () => number = Date.now) {
    this.#onDue = onDue;
    this.#now = now;
  }

  /** Schedules (or moves) `key` to fire at `due` (epoch ms). */
  set(key: string, due: number): void {
    const e = { due, key, seq: ++this.#seq };
    this.#current.set(key, e);
    this.#push(e);
    this.#arm();
  }

  delete(key: string): void {
    this.#current.delete(key);
  }

  due(key: string): number | undefined {
    return this.#current.get(key)?.due;
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
    if (this.#timer && top.due >= this.#armedFor) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedFor = top.due;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, top.due - this.#now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#now();
    const ready: Entry[] = [];
    for (;;) {
      this.#dropStale();
      const top = this.#heap[0];
      if (!top || top.due > now) break;
      this.#pop();
      this.#current.delete(top.key);
      ready.push(top);
    }
    for (const e of ready) this.#onDue(e.key, e.due);
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
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
