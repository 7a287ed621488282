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
export async function closedLoop({ inFlight, seconds, warmupSeconds, op, onMeasureStart, onMeasureEnd }) {
  const samples = new Samples();
  let measuring = false;
  let stopped = false;
  let completed = 0;

  async function writer(id) {
    while (!stopped) {
      const startedInside = measuring;
      const t0 = performance.now();
      await op(id);
      const t1 = performance.now();
      if (measuring && !stopped) {
        completed++;
        if (startedInside) samples.push(t1 - t0);
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
