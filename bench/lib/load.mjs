// Load generators that measure durable operations the way a caller sees them:
// closed loops (each logical writer issues its next operation only after the
// previous one was acknowledged), a warm-up that is not counted, then a fixed
// measured window. Throughput counts operations acknowledged inside the
// window; latency percentiles use operations that started and ended inside it.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile, Samples } from './stats.mjs';

// monitorEventLoopDelay records the interval between ticks of a timer that
// should fire every RESOLUTION_MS; the delay is what exceeds it.
const RESOLUTION_MS = 1;

function summarize(samples, completed, seconds) {
  const sorted = samples.sorted();
  return {
    ops: completed,
    seconds,
    opsPerSec: completed / seconds,
    p50us: percentile(sorted, 50) * 1000,
    p99us: percentile(sorted, 99) * 1000,
  };
}

/**
 * Runs `inFlight` concurrent async loops, each awaiting `op(writer)` then
 * issuing the next, and watches event-loop delay during the measured window.
 *
 * @param {object} o
 * @param {number} o.inFlight
 * @param {number} o.seconds measured window
 * @param {number} o.warmupSeconds
 * @param {(writer: number) => Promise<unknown>} o.op
 * @param {() => void} [o.onMeasureStart] called as the window opens
 * @param {() => void} [o.onMeasureEnd] called as the window closes
 */
export function closedLoop({ inFlight, seconds, warmupSeconds, op, onMeasureStart, onMeasureEnd }) {
  return runClosedLoop({
    inFlight,
    seconds,
    warmupSeconds,
    onMeasureStart,
    onMeasureEnd,
    async iteration(id) {
      const t0 = performance.now();
      await op(id);
      return performance.now() - t0;
    },
  });
}

/**
 * Like closedLoop, for acquire/release pairs: each of `inFlight` loops awaits
 * `acquire(loop)`, then awaits `release(loop, acquired)`, then starts over.
 * Throughput counts pairs; latency is the acquire's alone (from the call to
 * its resolution), since that is what a caller waits on before acting.
 *
 * @template T
 * @param {object} o
 * @param {number} o.inFlight
 * @param {number} o.seconds measured window
 * @param {number} o.warmupSeconds
 * @param {(loop: number) => Promise<T>} o.acquire
 * @param {(loop: number, acquired: T) => unknown} o.release may return a promise
 * @param {() => void} [o.onMeasureStart]
 * @param {() => void} [o.onMeasureEnd]
 */
export function closedLoopPairs({ inFlight, seconds, warmupSeconds, acquire, release, onMeasureStart, onMeasureEnd }) {
  return runClosedLoop({
    inFlight,
    seconds,
    warmupSeconds,
    onMeasureStart,
    onMeasureEnd,
    async iteration(id) {
      const t0 = performance.now();
      const acquired = await acquire(id);
      const latency = performance.now() - t0;
      await release(id, acquired);
      return latency;
    },
  });
}

/** The closed-loop driver: `iteration(id)` does one unit of work and returns the latency (ms) to sample. */
async function runClosedLoop({ inFlight, seconds, warmupSeconds, iteration, onMeasureStart, onMeasureEnd }) {
  const samples = new Samples();
  let measuring = false;
  let stopped = false;
  let completed = 0;

  async function writer(id) {
    while (!stopped) {
      const startedInside = measuring;
      const latency = await iteration(id);
      if (measuring && !stopped) {
        completed++;
        if (startedInside) samples.push(latency);
      }
    }
  }

  // A failing op stops every writer and ends the run at once, rejecting.
  const done = Promise.all(
    Array.from({ length: inFlight }, (_, i) =>
      writer(i).catch((err) => {
        stopped = true;
        throw err;
      }),
    ),
  );
  await Promise.race([sleep(warmupSeconds * 1000), done]);

  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  onMeasureStart?.();
  delay.enable();
  measuring = true;
  const start = performance.now();
  await Promise.race([sleep(seconds * 1000), done]);
  const elapsed = (performance.now() - start) / 1000;
  stopped = true;
  delay.disable();
  onMeasureEnd?.();
  await done;

  const excess = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  return {
    ...summarize(samples, completed, elapsed),
    eventLoopDelayP99ms: excess(delay.percentile(99)),
    eventLoopDelayMaxMs: excess(delay.max),
  };
}

/**
 * Runs `writers` logical writers round-robin on this thread, each calling the
 * synchronous `op(writer)`. A writer's latency runs from its previous
 * acknowledgement to this one, so it includes waiting for the other writers:
 * what N callers sharing one synchronous API actually experience. The event
 * loop is blocked for the whole run.
 *
 * @param {object} o
 * @param {number} o.writers
 * @param {number} o.seconds
 * @param {number} o.warmupSeconds
 * @param {(writer: number) => void} o.op
 */
export function syncRoundRobin({ writers, seconds, warmupSeconds, op }) {
  const samples = new Samples();
  const lastAck = new Float64Array(writers);
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  lastAck.fill(performance.now());
  let now = performance.now();
  for (let i = 0; now < warmupEnd; i = (i + 1) % writers) {
    op(i);
    now = performance.now();
    lastAck[i] = now;
  }

  const start = performance.now();
  const end = start + seconds * 1000;
  // Writers whose previous ack was in the warm-up would report a latency
  // that straddles the window edge; their first op inside is not sampled.
  const sampled = new Uint8Array(writers);
  let completed = 0;
  for (let i = 0; now < end; i = (i + 1) % writers) {
    op(i);
    now = performance.now();
    completed++;
    if (sampled[i]) samples.push(now - lastAck[i]);
    sampled[i] = 1;
    lastAck[i] = now;
  }
  return summarize(samples, completed, (now - start) / 1000);
}

/**
 * syncRoundRobin for acquire/release pairs on a synchronous API: `writers`
 * logical acquirers take turns on this thread, each doing `acquire(w)` then
 * `release(w, acquired)`. Throughput counts pairs. An acquirer's acquire
 * latency runs from its previous release to this acquire's return, so it
 * includes waiting for the other acquirers' turns, as N callers sharing one
 * synchronous connection experience it. Blocks the event loop for the run.
 *
 * @template T
 * @param {object} o
 * @param {number} o.writers
 * @param {number} o.seconds
 * @param {number} o.warmupSeconds
 * @param {(writer: number) => T} o.acquire
 * @param {(writer: number, acquired: T) => void} o.release
 */
export function syncRoundRobinPairs({ writers, seconds, warmupSeconds, acquire, release }) {
  const samples = new Samples();
  const lastRelease = new Float64Array(writers);
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  let now = performance.now();
  for (let i = 0; now < warmupEnd; i = (i + 1) % writers) {
    release(i, acquire(i));
    now = performance.now();
    lastRelease[i] = now;
  }

  const start = performance.now();
  const end = start + seconds * 1000;
  // An acquirer whose previous release was in the warm-up would report a
  // wait that straddles the window edge; its first pair inside is not sampled.
  const sampled = new Uint8Array(writers);
  let completed = 0;
  for (let i = 0; now < end; i = (i + 1) % writers) {
    const acquired = acquire(i);
    const acquiredAt = performance.now();
    release(i, acquired);
    now = performance.now();
    completed++;
    if (sampled[i]) samples.push(acquiredAt - lastRelease[i]);
    sampled[i] = 1;
    lastRelease[i] = now;
  }
  return summarize(samples, completed, (now - start) / 1000);
}

/**
 * Throughput of a tight loop too cheap to time per operation: calls
 * `chunk(n, first)` (which runs operations first..first+n-1 inline, sync or
 * async) repeatedly, reading the clock only between chunks.
 *
 * @param {object} o
 * @param {number} o.seconds measured window
 * @param {number} o.warmupSeconds
 * @param {(n: number, first: number) => unknown} o.chunk may return a promise
 * @param {number} [o.chunkSize] operations per chunk (default 1024)
 */
export async function tightLoop({ seconds, warmupSeconds, chunk, chunkSize = 1024 }) {
  let done = 0;
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  while (performance.now() < warmupEnd) {
    await chunk(chunkSize, done);
    done += chunkSize;
  }
  const start = performance.now();
  const end = start + seconds * 1000;
  let ops = 0;
  let now = start;
  while (now < end) {
    await chunk(chunkSize, done);
    done += chunkSize;
    ops += chunkSize;
    now = performance.now();
  }
  const elapsed = (now - start) / 1000;
  return { ops, seconds: elapsed, opsPerSec: ops / elapsed, nsPerOp: (elapsed * 1e9) / ops };
}
