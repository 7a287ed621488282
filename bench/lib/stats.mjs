// Latency samples and the summaries every benchmark quotes: nearest-rank
// percentiles of one run, medians across repeated runs (the machines these
// run on are shared and noisy, so a single run is never quoted).

/** Growable buffer of latency samples in milliseconds, no per-sample allocation. */
export class Samples {
  #values = new Float64Array(1 << 14);
  #length = 0;

  push(ms) {
    if (this.#length === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#length++] = ms;
  }

  get length() {
    return this.#length;
  }

  /** Sorted copy of the samples. */
  sorted() {
    return this.#values.slice(0, this.#length).sort();
  }
}

/** Nearest-rank percentile (p in 0..100) of an ascending array; NaN if empty. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

/** Median of numbers, ignoring null/undefined/NaN; null if none remain. */
export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/**
 * Per-metric median of repeated runs: `runs` are objects with the same
 * numeric keys (objects of them: a median per inner key); other keys
 * are taken from the first run.
 */
export function medianOfRuns(runs) {
  const out = {};
  for (const key of Object.keys(runs[0] ?? {})) {
    const values = runs.map((r) => r[key]);
    const nested = values.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v));
    out[key] = nested ? medianOfRuns(values) : values.some((v) => typeof v === 'number') ? median(values) : values[0];
  }
  return out;
}
