// How the controller's costs grow with the number of orders: one controller
// per (kind, N), fresh state each, each in its own process (RSS is per
// process and never shrinks back); the process holds nothing per order
// besides the specs it passes to the controller.
//
// Per cell:
//   define   defineOrder for N orders (validation, parsing of intervals)
//   start    Controller.start: open + recover the lease store, validate and
//            schedule every order (the timer heap)
//   wave     from start until every order fired once: all are due at boot
//            (cooldown orders with no last run), the cold-start burst
//   lateness fired.at - due over a steady window (from 3 s + half the wave's
//            time after the wave, when its backlog is worked off): `active`
//            orders fire every 1-5 s, the other N - active wait an hour or
//            two in the timer heap (what grows with N is the heap and the
//            state, not the load)
//   RSS      the cell's process (bench/lib/scale-cell.mjs runs each cell in
//            its own), max sampled over the cell
//   reload   controller.reload(the same N specs, each with a new interval)
//   CPU/fire process CPU over the steady window / fires in it
//   wave CPU the process's CPU from start to the wave's last fire, and its
//            body processes' (reaped by then, from /proc/self/stat): on C
//            cores no wave ends before body CPU / C
//   wave threads  the process's wave CPU by thread: the JS thread, V8's and
//            libuv's helpers, and the lane's native threads (lane, spawn,
//            reaper, wal)
//   spawn wait  wall time the controller's thread spent in the native
//            spawner's start in the wave: queuing each body for the
//            spawning threads (posix_spawn, which waits for the child's
//            exec, runs there), or spawning it itself after a 5 ms lull
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { childrenCpuUs } from './children-cpu.mjs';
import { percentile, Samples } from './stats.mjs';
import { scratchDir } from './scratch.mjs';
import { timeSpawns } from './spawn-wait.mjs';
import { cpuByRole, threadCpu } from './thread-cpu.mjs';

function countingSink() {
  return { url: 'memory:bench', async open() {}, async write(records) { return { inserted: records.length }; }, async ping() {}, async close() {} };
}

/**
 * N orders: the first `active` fire every 1-5 s (the steady load, the same
 * whatever N), the rest every 1-2 h (scheduled, in the timer heap, due
 * again only after the run). `shift` changes every interval (a reload that
 * touches every order).
 */
function specs(lib, kind, n, active, shift = 0) {
  return Array.from({ length: n }, (_, i) => {
    const interval = (i < active ? 1_000 + Math.round((i * 4_000) / Math.max(1, active - 1)) : 3_600_000 + (i % 3_600) * 1_000) + shift;
    const name = `${kind}-${String(i).padStart(6, '0')}`;
    return kind === 'exec'
      ? lib.defineOrder({ name, trigger: 'cooldown', interval, timeout: '30s', exec: 'exit 100' })
      : lib.defineOrder({ name, trigger: 'cooldown', interval, timeout: '30s', run: async () => ({ didWork: false }) });
  });
}

/** One (kind, n) cell; `log` reports progress on stderr. */
export async function scaleCell(lib, { kind, n, active, windowSeconds, waveTimeoutSeconds, spawner, log }) {
  const dir = scratchDir(`scale-${kind}-${n}`);
  const firstFire = new Set();
  const steady = new Samples();
  let measuring = false;
  let waveDoneAt;
  /** The wall time the wave's last first fire took its lease (its event's `at`), against when the controller was told (waveDoneAt). */
  let waveLastFiredAt = 0;
  let waveCpu;
  let waveBodyCpuUs;
  let waveSpawnWait;
  let waveThreads;
  // Native spawns only: child_process.spawn does not go through the binding.
  const spawns = kind === 'exec' && spawner !== 'node' ? timeSpawns() : null;
  let rssMax = 0;
  const errors = [];
  const t0 = performance.now();
  const orders = specs(lib, kind, n, active);
  const defineMs = performance.now() - t0;
  const onEvent = (e) => {
    if (e.type === 'fired') {
      if (!firstFire.has(e.scopedName)) {
        firstFire.add(e.scopedName);
        waveLastFiredAt = Math.max(waveLastFiredAt, e.at);
        if (firstFire.size === n) {
          waveDoneAt = performance.now();
          waveCpu = process.cpuUsage(startCpu);
          waveBodyCpuUs = startChildren === null ? null : childrenCpuUs() - startChildren;
          waveSpawnWait = spawns?.calls ? { ...spawns } : null;
          waveThreads = cpuByRole(startThreads, threadCpu());
        }
      } else if (measuring && e.due !== undefined) {
        steady.push(e.at - e.due);
      }
    } else if (e.type === 'error') {
      errors.push(`${e.code}: ${e.message}`);
    }
  };
  const startAt = performance.now();
  const startWall = Date.now();
  const startCpu = process.cpuUsage();
  const startChildren = childrenCpuUs();
  const startThreads = threadCpu();
  const controller = await lib.Controller.start({ state: dir.path, orders, audit: countingSink(), onEvent, cwd: dir.path, ...(spawner ? { spawner } : {}) });
  const startMs = performance.now() - startAt;
  try {
    const deadline = startAt + waveTimeoutSeconds * 1000;
    while (waveDoneAt === undefined && performance.now() < deadline) {
      await sleep(50);
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    const waveMs = waveDoneAt === undefined ? null : waveDoneAt - startAt;
    const waveFiredMs = waveDoneAt === undefined ? null : waveLastFiredAt - startWall;
    // The wave leaves a backlog (the active orders came due again behind it): the window starts once it is worked off.
    await sleep(3_000 + (waveMs ?? 0) / 2);
    const before = { fires: controller.stats().fires, cpu: process.cpuUsage(), t: performance.now() };
    measuring = true;
    const windowEnd = performance.now() + windowSeconds * 1000;
    while (performance.now() < windowEnd) {
      await sleep(200);
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    measuring = false;
    const cpu = process.cpuUsage(before.cpu);
    const fires = controller.stats().fires - before.fires;
    const reloadAt = performance.now();
    controller.reload(specs(lib, kind, n, active, 1));
    const reloadMs = performance.now() - reloadAt;
    const sorted = steady.sorted();
    log(`  ${kind} ×${n}${spawner ? ` (${spawner})` : ''}: define ${defineMs.toFixed(0)} ms, start ${startMs.toFixed(0)} ms, wave ${waveMs === null ? 'not done' : `${waveMs.toFixed(0)} ms (its last fire at ${waveFiredMs.toFixed(0)} ms)`}${waveSpawnWait ? ` (${waveSpawnWait.ms.toFixed(0)} ms of it queuing spawns)` : ''}${waveThreads ? ` (CPU ms: ${Object.entries(waveThreads).map(([r, ms]) => `${r} ${ms.toFixed(0)}`).join(', ')})` : ''}, ${fires} steady fires, lateness p99 ${percentile(sorted, 99)} ms, RSS ${(rssMax / 2 ** 20).toFixed(0)} MiB, reload ${reloadMs.toFixed(0)} ms`);
    return {
      kind,
      orders: n,
      active,
      spawner: kind === 'exec' ? (spawner ?? 'native') : null,
      defineMs,
      startMs,
      waveMs,
      waveFiredMs,
      waveFired: firstFire.size,
      // CPU from start to the wave's last fire: the controller's, and its bodies' (those reaped by then).
      waveCpuMs: waveCpu ? (waveCpu.user + waveCpu.system) / 1000 : null,
      waveBodyCpuMs: typeof waveBodyCpuUs === 'number' ? waveBodyCpuUs / 1000 : null,
      // Wall time the controller's thread spent queuing bodies for the spawning threads during the wave.
      waveSpawnWaitMs: waveSpawnWait ? waveSpawnWait.ms : null,
      // The controller's wave CPU by thread role, ms (thread-cpu.mjs).
      waveThreadsCpuMs: waveThreads ?? null,
      steadySeconds: windowSeconds,
      steadyFires: fires,
      latenessP50ms: percentile(sorted, 50),
      latenessP99ms: percentile(sorted, 99),
      latenessMaxMs: sorted.length ? sorted[sorted.length - 1] : null,
      cpuUsPerFire: fires > 0 ? (cpu.user + cpu.system) / fires : null,
      rssMiB: rssMax / 2 ** 20,
      reloadMs,
      errors,
    };
  } finally {
    await controller.stop(10_000);
    dir.remove();
  }
}
