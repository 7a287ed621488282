// Knobs every benchmark reads from the environment, with defaults sized for
// a quick but quotable run on a small shared machine.

/** A non-negative number from the environment, or `fallback` when unset or empty. */
export function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return value;
}

/** A comma-separated list from the environment, or `fallback` when unset or empty. */
export function envList(name, fallback) {
  const raw = process.env[name];
  if (!raw) return fallback;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * BENCH_SECONDS (measured seconds per cell), BENCH_WARMUP_SECONDS,
 * BENCH_REPEATS (runs per cell; the median is quoted), BENCH_INFLIGHT
 * (comma list of concurrency levels), BENCH_SUBJECTS (comma list of subject
 * ids to run; default all).
 */
export function benchConfig({ seconds = 2, warmupSeconds = 0.5, repeats = 3, inFlight = [1, 16, 64, 256] } = {}) {
  return {
    seconds: envNumber('BENCH_SECONDS', seconds),
    warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', warmupSeconds),
    repeats: Math.max(1, Math.round(envNumber('BENCH_REPEATS', repeats))),
    inFlight: envList('BENCH_INFLIGHT', inFlight).map(Number),
    subjects: envList('BENCH_SUBJECTS', null),
  };
}
