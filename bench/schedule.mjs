// bench:schedule — how late the controller fires, and what a no-op fire costs it.
//
// Scenarios (one controller each, fresh state dir under bench/.tmp):
//   code  1,000 cooldown code orders, in-process bodies returning { didWork: false },
//         intervals spread evenly over 1-5 s (~400 fires/s)
//   code-paced  50 code orders with the exec scenarios' intervals (~20 fires/s):
//         the controller's own fire at that pace, with no body process
//   exec  50 cooldown exec orders whose body is `exit 100` (the no-op exit code),
//         intervals spread over 1-5 s (~20 fires/s), started by the native
//         spawner (posix_spawn, crates/spawn)
//   exec-node  the same, started by Node's child_process.spawn: the baseline
//         of the CPU-per-fire ratio, measured in the same run
//   fire floor (crates/fire-floor) the exec scenarios' pace with no JS: one
//         thread that sleeps to each due time, makes a record durable, starts
//         `sh -c 'exit 100'` and waits for it on a pidfd; what the controller's
//         CPU per exec fire is set against, in the same run
//   scale (bench/lib/scale.mjs) code orders ×1k/10k/100k and exec orders
//         ×1k/10k: define, start (load + recover), cold-start wave, steady
//         lateness, CPU per fire, RSS, reload of all N; BENCH_SCALE=0 skips it
// Figures, over the measured window (after a warm-up that holds the cold-start
// burst, when every order is due at once, reported on its own row):
//   lateness  fired event's `at` minus its `due` (the time the timer meant);
//             `at` is taken after the durable acquire, so lateness includes the
//             acquire's group-commit fdatasync, as a body would see it
//   CPU/fire  process.cpuUsage() delta (user+system, all threads of this
//             process, the WAL writer thread included; children not counted)
//             divided by fires
//   EL        event-loop delay p99, sampled every 1 ms in a 5 s window after
//             the measured one (the sampler's own wake-ups are not the
//             controller's CPU)
//   JS wakes  times the controller's JS thread went to sleep and was woken
//             again (its voluntary context switches), per fire; set against
//             an empty wake of a Node event loop at the same pace
//             (bench/lib/node-wake.mjs, its own process, beside the fire floor)
//   body CPU  the body processes' own CPU (reaped children, /proc/self/stat):
//             not the controller's, reported beside it
//   WAL syncs per fire, audit writes (sink write() calls and records): a no-op
//             must cost zero audit writes (G4)
// Acceptance: code lateness p99 <= 10 ms; audit writes = 0 in both scenarios.
//
// Prints the table on stdout (progress on stderr) and writes
// bench/results/schedule.json (schedule.partial.json for a narrowed run).
// Knobs: BENCH_SECONDS (default 30), BENCH_WARMUP_SECONDS (default 6),
// BENCH_REPEATS (default 1; medians quoted), BENCH_SUBJECTS (code, exec),
// BENCH_CODE_ORDERS (1000), BENCH_EXEC_ORDERS (50), BENCH_TMPDIR, ORDERLY_ENTRY.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { childrenCpuUs } from './lib/children-cpu.mjs';
import { benchConfig } from './lib/config.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { runFireFloor, runNodeWakeFloor } from './lib/floor.mjs';
import { loadOrderlyDist } from './lib/orderly.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { medianOfRuns, percentile, Samples } from './lib/stats.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const TARGET_LATENESS_P99_MS = 10;
const MIN_INTERVAL_MS = 1_000;
const MAX_INTERVAL_MS = 5_000;
const EL_WINDOW_SECONDS = 5;

const config = benchConfig({ seconds: 30, warmupSeconds: 6, repeats: 1 });
const codeOrders = Math.round(Number(process.env.BENCH_CODE_ORDERS ?? 1000));
const execOrders = Math.round(Number(process.env.BENCH_EXEC_ORDERS ?? 50));
const log = (...args) => console.error(...args);
const scaleOn = process.env.BENCH_SCALE !== '0';
/** `active` orders fire every 1-5 s in every cell (code ~200 fires/s, exec ~40): the load stays, the heap grows. */
const SCALE_CELLS = [
  { kind: 'code', n: 1_000, active: 600 },
  { kind: 'code', n: 10_000, active: 600 },
  { kind: 'code', n: 100_000, active: 600 },
  { kind: 'exec', n: 1_000, active: 120 },
  { kind: 'exec', n: 10_000, active: 120 },
];
const SCALE_WINDOW_SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 15);
const TARGET_EXEC_CPU_US = 600;
const TARGET_SPAWN_RATIO = 5;
const TARGET_WAVE_10K_EXEC_MS = 5_000;
const TARGET_RSS_10K_EXEC_MIB = 150;
const TARGET_START_100K_CODE_MS = 2_000;

/** A scale cell in its own process: RSS is per process, and a big cell's heap would stay with the next. */
function runCell(options) {
  const out = execFileSync(process.execPath, [path.join(path.dirname(new URL(import.meta.url).pathname), 'lib', 'scale-cell.mjs'), JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 16 * 2 ** 20,
  });
  return JSON.parse(out.trim().split('\n').pop());
}

/** n intervals spread evenly over [MIN, MAX] ms. */
function intervals(n) {
  return Array.from({ length: n }, (_, i) => Math.round(MIN_INTERVAL_MS + (n > 1 ? (i * (MAX_INTERVAL_MS - MIN_INTERVAL_MS)) / (n - 1) : 0)));
}

/** An AuditSink that stores nothing and counts everything it is asked to store. */
function countingSink() {
  const counts = { writes: 0, records: 0 };
  return {
    counts,
    url: 'memory:bench',
    async open() {},
    async write(records) {
      counts.writes++;
      counts.records += records.length;
      return { inserted: records.length };
    },
    async ping() {},
    async close() {},
  };
}

const scenarios = [
  {
    id: 'code',
    label: `${codeOrders} code orders, no-op`,
    orders: (defineOrder) =>
      intervals(codeOrders).map((interval, i) =>
        defineOrder({ name: `noop-${String(i).padStart(4, '0')}`, trigger: 'cooldown', interval, timeout: '10s', run: async () => ({ didWork: false }) }),
      ),
  },
  {
    // The exec scenarios' orders and pace with the body process taken away:
    // what the controller's own fire (timer, durable acquire, release,
    // events) costs at that rate, under any spawner's share.
    id: 'code-paced',
    label: `${execOrders} code orders, no-op, at the exec pace`,
    orders: (defineOrder) =>
      intervals(execOrders).map((interval, i) =>
        defineOrder({ name: `paced-${String(i).padStart(3, '0')}`, trigger: 'cooldown', interval, timeout: '10s', run: async () => ({ didWork: false }) }),
      ),
  },
  ...['native', 'node'].map((spawner) => ({
    id: spawner === 'native' ? 'exec' : 'exec-node',
    spawner,
    label: `${execOrders} exec orders, \`exit 100\`, ${spawner === 'native' ? 'native spawner' : 'child_process.spawn'}`,
    orders: (defineOrder) =>
      intervals(execOrders).map((interval, i) =>
        defineOrder({ name: `exit100-${String(i).padStart(3, '0')}`, trigger: 'cooldown', interval, timeout: '10s', exec: 'exit 100' }),
      ),
  })),
];

function latencySummary(samples) {
  const sorted = samples.sorted();
  return {
    n: sorted.length,
    p50ms: percentile(sorted, 50),
    p99ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

async function runScenario(lib, scenario) {
  const dir = scratchDir(`schedule-${scenario.id}`);
  const sink = countingSink();
  const steady = new Samples();
  const cold = new Samples();
  const firstFireSeen = new Set();
  let measuring = false;
  let auditedCompletions = 0;
  const errors = [];
  const onEvent = (e) => {
    if (e.type === 'fired' && e.due !== undefined) {
      const lateness = e.at - e.due;
      if (!firstFireSeen.has(e.scopedName)) {
        firstFireSeen.add(e.scopedName);
        cold.push(lateness);
      } else if (measuring) {
        steady.push(lateness);
      }
    } else if (e.type === 'completed' && e.audited) {
      auditedCompletions++;
    } else if (e.type === 'error') {
      errors.push(`${e.code}: ${e.message}`);
    }
  };
  const orders = scenario.orders(lib.defineOrder);
  const loadAvgStart = os.loadavg()[0];
  const controller = await lib.Controller.start({ state: dir.path, orders, audit: sink, onEvent, cwd: dir.path, ...(scenario.spawner ? { spawner: scenario.spawner } : {}) });
  try {
    await sleep(config.warmupSeconds * 1000);
    const before = { stats: controller.stats(), cpu: process.cpuUsage(), children: childrenCpuUs(), sleeps: jsThreadSleeps(), t: performance.now(), sink: { ...sink.counts }, audited: auditedCompletions };
    measuring = true;
    await sleep(config.seconds * 1000);
    measuring = false;
    const after = { stats: controller.stats(), cpu: process.cpuUsage(before.cpu), children: childrenCpuUs(), sleeps: jsThreadSleeps(), t: performance.now(), sink: { ...sink.counts }, audited: auditedCompletions };
    // The event-loop delay is sampled in a window of its own: a 1 ms sampler
    // wakes this process 1,000 times a second, which cost ~1.2 ms of CPU per
    // exec fire at 20 fires/s when it ran inside the CPU window.
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    await sleep(EL_WINDOW_SECONDS * 1000);
    delay.disable();
    const seconds = (after.t - before.t) / 1000;
    const fires = after.stats.fires - before.stats.fires;
    const noOps = after.stats.noOps - before.stats.noOps;
    const cpuUs = after.cpu.user + after.cpu.system;
    const lateness = latencySummary(steady);
    const coldStart = latencySummary(cold);
    if (after.stats.poisoned) errors.push('the lease store reports poisoned');
    return {
      orders: orders.length,
      seconds,
      fires,
      firesPerSec: fires / seconds,
      noOps,
      latenessSamples: lateness.n,
      latenessP50ms: lateness.p50ms,
      latenessP99ms: lateness.p99ms,
      latenessMaxMs: lateness.maxMs,
      coldStartFires: coldStart.n,
      coldStartP50ms: coldStart.p50ms,
      coldStartP99ms: coldStart.p99ms,
      coldStartMaxMs: coldStart.maxMs,
      cpuUsPerFire: fires > 0 ? cpuUs / fires : null,
      cpuUserUsPerFire: fires > 0 ? after.cpu.user / fires : null,
      cpuSystemUsPerFire: fires > 0 ? after.cpu.system / fires : null,
      cpuPercent: (cpuUs / 1e6 / seconds) * 100,
      bodyCpuUsPerFire: fires > 0 && before.children !== null ? (after.children - before.children) / fires : null,
      jsWakesPerFire: fires > 0 && before.sleeps !== null ? (after.sleeps - before.sleeps) / fires : null,
      walSyncs: after.stats.walSyncs - before.stats.walSyncs,
      walSyncsPerFire: fires > 0 ? (after.stats.walSyncs - before.stats.walSyncs) / fires : null,
      auditSinkWrites: after.sink.writes - before.sink.writes,
      auditRecords: after.sink.records - before.sink.records,
      auditInserted: after.stats.audit.inserted - before.stats.audit.inserted,
      auditedCompletions: after.audited - before.audited,
      // Over the whole run, cold start included: a no-op never reaches the sink.
      auditSinkWritesTotal: sink.counts.writes,
      eventLoopDelayP99ms: Math.max(0, delay.percentile(99) / 1e6 - 1),
      eventLoopDelayMaxMs: Math.max(0, delay.max / 1e6 - 1),
      loadAvg1Start: loadAvgStart,
      loadAvg1End: os.loadavg()[0],
      errors,
    };
  } finally {
    await controller.stop(10_000);
    dir.remove();
  }
}

/**
 * Times the JS thread (this process's main thread, the controller's event
 * loop) has gone to sleep, each followed by a wake-up: its voluntary context
 * switches. null where /proc cannot tell.
 */
function jsThreadSleeps() {
  try {
    const status = readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8');
    return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
  } catch {
    return null;
  }
}

/** Fires per second of the exec scenarios' orders (each fires once per interval). */
function execRate() {
  return intervals(execOrders).reduce((sum, ms) => sum + 1000 / ms, 0);
}

/**
 * A scale cell's runs as one row: the median of each figure (a wave that did
 * not finish in a run counts as the slowest), every run's errors, the runs.
 */
function scaleMedian(runs) {
  const row = medianOfRuns(runs.map(({ errors, ...figures }) => ({ ...figures, waveMs: figures.waveMs ?? Number.POSITIVE_INFINITY })));
  if (!Number.isFinite(row.waveMs)) row.waveMs = null;
  return { ...row, errors: runs.flatMap((r) => r.errors ?? []), ...(runs.length > 1 ? { runs } : {}) };
}

/** One fire-floor run at the exec pace, as long as a scenario's measured window. */
async function fireFloorRun() {
  const dir = scratchDir('fire-floor');
  try {
    const f = await runFireFloor({ dir: dir.path, rate: execRate(), seconds: config.seconds });
    const node = await runNodeWakeFloor({ rate: execRate(), seconds: config.seconds / 2 });
    // The same empty wake 1,000 times a second: what it costs depends on how long the thread slept.
    const busy = await runNodeWakeFloor({ rate: 1000, seconds: 3 });
    return {
      wakeUs: f.wake.cpuUsPerFire,
      durableUs: f.durable.cpuUsPerFire,
      spawnUs: f.spawn.cpuUsPerFire,
      fireUs: f.fire.cpuUsPerFire,
      bodyUs: f.fire.childrenCpuUsPerFire,
      cpuidUs: f.cpuidUs,
      fires: f.fire.fires,
      nodeWakeUs: node.cpuUsPerWake,
      nodeWake1msUs: busy.cpuUsPerWake,
    };
  } finally {
    dir.remove();
  }
}

async function main() {
  const lib = await loadOrderlyDist({ log });
  if (typeof lib.Controller?.start !== 'function' || typeof lib.defineOrder !== 'function') {
    throw new Error('the package does not export Controller and defineOrder');
  }
  const wanted = config.subjects ? scenarios.filter((s) => config.subjects.includes(s.id)) : scenarios;
  log(
    `bench:schedule — ${wanted.length} scenario(s) × ${config.repeats} run(s), ${config.warmupSeconds}s warm-up + ${config.seconds}s each, ` +
      `state under ${scratchRoot()}`,
  );
  const cells = wanted.map((scenario) => ({ scenario, runs: [], errors: [] }));
  const floorRuns = [];
  const floorWanted = wanted.some((s) => s.spawner !== undefined);
  for (let rep = 1; rep <= config.repeats; rep++) {
    if (floorWanted) {
      try {
        floorRuns.push(await fireFloorRun());
        const f = floorRuns.at(-1);
        log(`[${rep}/${config.repeats}] fire floor: ${num(f.fireUs)} µs CPU/fire (wake ${num(f.wakeUs)}, durable write ${num(f.durableUs)}, spawn + reap ${num(f.spawnUs)}), body ${num(f.bodyUs)} µs, CPUID ${num(f.cpuidUs, 1)} µs; an empty Node event-loop wake ${num(f.nodeWakeUs)} µs`);
      } catch (err) {
        log(`[${rep}/${config.repeats}] fire floor: FAILED ${err.message}`);
      }
    }
    for (const cell of cells) {
      const tag = `[${rep}/${config.repeats}] ${cell.scenario.label}`;
      try {
        const r = await runScenario(lib, cell.scenario);
        cell.runs.push(r);
        if (r.errors.length) cell.errors.push(...r.errors);
        log(
          `${tag}: ${num(r.fires)} fires (${num(r.firesPerSec, 1)}/s), lateness p50 ${num(r.latenessP50ms)} / p99 ${num(r.latenessP99ms)} / max ${num(r.latenessMaxMs)} ms, ` +
            `${num(r.cpuUsPerFire)} µs CPU/fire, ${num(r.walSyncsPerFire, 3)} syncs/fire, ${r.auditSinkWritesTotal} audit writes, load ${num(r.loadAvg1Start, 2)}→${num(r.loadAvg1End, 2)}`,
        );
      } catch (err) {
        cell.errors.push(err.message);
        log(`${tag}: FAILED ${err.stack ?? err.message}`);
      }
    }
  }

  const rows = [];
  for (const cell of cells) {
    if (!cell.runs.length) continue;
    const m = medianOfRuns(cell.runs);
    rows.push({ subject: cell.scenario.id, label: cell.scenario.label, phase: 'steady', ...m, runs: cell.runs, errors: cell.errors });
  }
  const table = rows.flatMap((r) => [
    {
      label: r.label,
      phase: `${num(r.seconds)} s window`,
      fires: r.fires,
      p50: r.latenessP50ms,
      p99: r.latenessP99ms,
      max: r.latenessMaxMs,
      cpu: r.cpuUsPerFire,
      cpuPct: r.cpuPercent,
      body: r.bodyCpuUsPerFire,
      wakes: r.jsWakesPerFire,
      syncs: r.walSyncsPerFire,
      audit: r.auditSinkWritesTotal,
      el: r.eventLoopDelayP99ms,
    },
    { label: r.label, phase: 'cold start', fires: r.coldStartFires, p50: r.coldStartP50ms, p99: r.coldStartP99ms, max: r.coldStartMaxMs },
  ]);
  console.log(
    formatTable(
      [
        { key: 'label', title: 'scenario' },
        { key: 'phase', title: 'phase' },
        { key: 'fires', title: 'fires', format: (v) => num(v) },
        { key: 'p50', title: 'late p50 ms', format: (v) => num(v) },
        { key: 'p99', title: 'late p99 ms', format: (v) => num(v) },
        { key: 'max', title: 'late max ms', format: (v) => num(v) },
        { key: 'cpu', title: 'CPU µs/fire', format: (v) => num(v) },
        { key: 'cpuPct', title: 'CPU %', format: (v) => num(v, 1) },
        { key: 'body', title: 'body CPU µs/fire', format: (v) => num(v) },
        { key: 'wakes', title: 'JS wakes/fire', format: (v) => num(v, 2) },
        { key: 'syncs', title: 'WAL syncs/fire', format: (v) => num(v, 3) },
        { key: 'audit', title: 'audit writes', format: (v) => num(v) },
        { key: 'el', title: 'EL p99 ms', format: (v) => num(v, 1) },
      ],
      table,
    ),
  );
  console.log(
    `\n${config.repeats > 1 ? `medians of ${config.repeats} runs` : 'one run'}; ${config.warmupSeconds}s warm-up, then ${config.seconds}s measured. ` +
      'late = fired.at - due (ms resolution; includes the durable acquire). cold start = the first fire of every order, all due at boot. ' +
      'CPU = this process (controller + WAL thread), children excluded; body CPU = the body processes\' own (reaped children, 10 ms ticks). audit writes = sink write() calls over the whole run. EL = event-loop delay.',
  );
  for (const r of rows) console.log(`  ${r.label}: mean CPU user ${num(r.cpuUserUsPerFire)} + system ${num(r.cpuSystemUsPerFire)} µs/fire; load average ${num(r.loadAvg1Start, 2)} → ${num(r.loadAvg1End, 2)}`);
  for (const c of cells) for (const e of c.errors) console.log(`  error in ${c.scenario.id}: ${e}`);

  const exec = rows.find((r) => r.subject === 'exec');
  const execNode = rows.find((r) => r.subject === 'exec-node');
  const spawnRatio = exec && execNode && exec.cpuUsPerFire > 0 ? execNode.cpuUsPerFire / exec.cpuUsPerFire : null;
  if (spawnRatio !== null) console.log(`\nCPU per no-op exec fire: native spawner ${num(exec.cpuUsPerFire)} µs, child_process.spawn ${num(execNode.cpuUsPerFire)} µs: ${ratio(spawnRatio)} less`);
  const paced = rows.find((r) => r.subject === 'code-paced');
  if (exec && paced) {
    console.log(
      `where an exec fire's CPU goes (${execOrders} orders at one pace, this run): the controller's fire with no body process ${num(paced.cpuUsPerFire)} µs (code orders); ` +
        `starting, waiting for and settling the body ${num(exec.cpuUsPerFire - paced.cpuUsPerFire)} µs native` +
        (execNode ? `, ${num(execNode.cpuUsPerFire - paced.cpuUsPerFire)} µs child_process` : '') +
        `; the body process itself (its own CPU, not the controller's) ${num(exec.bodyCpuUsPerFire)} µs`,
    );
  }

  const fireFloor = floorRuns.length ? medianOfRuns(floorRuns) : null;
  if (fireFloor) {
    console.log(
      `the least such a fire costs here (crates/fire-floor: one thread, no JS, ${num(execRate(), 1)} fires/s, this run): ${num(fireFloor.fireUs)} µs; ` +
        `its parts, each alone: waking ${num(fireFloor.wakeUs)}, waking + a durable write ${num(fireFloor.durableUs)}, waking + spawn and reap ${num(fireFloor.spawnUs)} µs` +
        (exec ? `; the controller spends ${num(exec.cpuUsPerFire - fireFloor.fireUs)} µs more` : '') +
        `. The body (\`sh -c 'exit 100'\`) takes ${num(fireFloor.bodyUs)} µs of its own CPU` +
        (fireFloor.cpuidUs != null ? `; one CPUID instruction takes ${num(fireFloor.cpuidUs, 1)} µs here, and glibc's start-up executes it in every process` : ''),
    );
    if (exec?.jsWakesPerFire != null && fireFloor.nodeWakeUs != null) {
      console.log(
        `waking the JS thread: ${num(exec.jsWakesPerFire, 2)} times per exec fire` +
          (paced?.jsWakesPerFire != null ? ` (${num(paced.jsWakesPerFire, 2)} per code fire)` : '') +
          `; an empty wake of Node's event loop costs ${num(fireFloor.nodeWakeUs)} µs of CPU here at the same pace (bench/lib/node-wake.mjs; ${num(fireFloor.nodeWake1msUs)} µs when it sleeps only 1 ms: ` +
          `the longer the thread slept, the more its wake costs), a Rust thread's ${num(fireFloor.wakeUs)} µs: ~${num(exec.jsWakesPerFire * fireFloor.nodeWakeUs)} µs of an exec fire before any of its JS runs`,
      );
    }
  }

  const scale = [];
  if (scaleOn && !config.subjects) {
    log('\nscale:');
    // Every cell once per repeat, in turn (a slow minute on this shared VM hits one run of each, not every run of one cell).
    const runs = SCALE_CELLS.map(() => []);
    for (let rep = 1; rep <= config.repeats; rep++) {
      for (const [i, cell] of SCALE_CELLS.entries()) {
        try {
          runs[i].push(runCell({ ...cell, windowSeconds: SCALE_WINDOW_SECONDS, waveTimeoutSeconds: 120 }));
        } catch (err) {
          log(`  [${rep}/${config.repeats}] ${cell.kind} ×${cell.n}: FAILED ${err.message}`);
        }
      }
    }
    for (const cellRuns of runs) if (cellRuns.length) scale.push(scaleMedian(cellRuns));
    console.log(
      '\n' +
        formatTable(
          [
            { key: 'kind', title: 'orders' },
            { key: 'orders', title: 'N', format: (v) => num(v) },
            { key: 'defineMs', title: 'define ms', format: (v) => num(v) },
            { key: 'startMs', title: 'start ms', format: (v) => num(v) },
            { key: 'waveMs', title: 'wave ms', format: (v) => (v === null ? 'not done' : num(v)) },
            { key: 'steadyFires', title: 'steady fires', format: (v) => num(v) },
            { key: 'latenessP99ms', title: 'late p99 ms', format: (v) => num(v) },
            { key: 'cpuUsPerFire', title: 'CPU µs/fire', format: (v) => num(v) },
            { key: 'rssMiB', title: 'RSS MiB', format: (v) => num(v) },
            { key: 'reloadMs', title: 'reload ms', format: (v) => num(v) },
          ],
          scale,
        ),
    );
    console.log(
      `scale: ${config.repeats > 1 ? `medians of ${config.repeats} runs, ` : ''}one controller per row and run, fresh state; start = Controller.start (open + recover + schedule); wave = start until every order fired once; ` +
        `steady window ${SCALE_WINDOW_SECONDS} s after the wave: 600 code / 120 exec orders fire every 1-5 s, the rest wait 1-2 h in the heap; RSS = the row's own process, max over the row; reload = all N orders with new intervals.`,
    );
    for (const kind of ['code', 'exec']) {
      const cells = scale.filter((c) => c.kind === kind).sort((a, b) => a.orders - b.orders);
      for (let i = 1; i < cells.length; i++) {
        const [a, b] = [cells[i - 1], cells[i]];
        const k = b.orders / a.orders;
        console.log(`  ${kind} ×${num(a.orders)} → ×${num(b.orders)} (${k}x orders): start ${ratio(b.startMs / a.startMs)}, reload ${ratio(b.reloadMs / a.reloadMs)}, RSS ${ratio(b.rssMiB / a.rssMiB)}`);
      }
    }
  }

  const targets = [];
  const code = rows.find((r) => r.subject === 'code');
  if (code) targets.push({ subject: 'code', check: 'fire lateness p99 (ms)', value: code.latenessP99ms, goal: `<= ${TARGET_LATENESS_P99_MS} ms`, pass: code.latenessP99ms <= TARGET_LATENESS_P99_MS });
  for (const r of rows) targets.push({ subject: r.subject, check: 'audit writes for no-ops', value: r.auditSinkWritesTotal, goal: '= 0', pass: r.auditSinkWritesTotal === 0 && r.auditedCompletions === 0 });
  if (exec) {
    targets.push({
      subject: 'exec',
      check: 'controller CPU per no-op exec fire (µs)',
      value: exec.cpuUsPerFire,
      goal: `<= ${TARGET_EXEC_CPU_US} µs`,
      pass: exec.cpuUsPerFire <= TARGET_EXEC_CPU_US,
      ...(paced || fireFloor
        ? {
            context: [
              paced ? `a fire of a code order at the same pace, no body process at all: ${num(paced.cpuUsPerFire)} µs` : '',
              fireFloor ? `the same fire with no JS (crates/fire-floor): ${num(fireFloor.fireUs)} µs` : '',
              fireFloor?.nodeWakeUs != null && exec.jsWakesPerFire != null
                ? `the JS thread woke ${num(exec.jsWakesPerFire, 2)} times per fire, and an empty Node event-loop wake at this pace costs ${num(fireFloor.nodeWakeUs)} µs`
                : '',
            ].filter(Boolean).join('; '),
          }
        : {}),
    });
  }
  if (spawnRatio !== null) {
    targets.push({
      subject: 'exec',
      check: 'CPU per fire, child_process.spawn / native',
      digits: 2,
      value: spawnRatio,
      goal: `>= ${TARGET_SPAWN_RATIO}x`,
      pass: spawnRatio >= TARGET_SPAWN_RATIO,
      ...(fireFloor ? { context: `child_process.spawn's fire over the no-JS floor: ${ratio(execNode.cpuUsPerFire / fireFloor.fireUs)}, the most a native spawner could show here` } : {}),
    });
  }
  const exec10k = scale.find((c) => c.kind === 'exec' && c.orders === 10_000);
  if (exec10k) {
    const cores = os.cpus().length;
    targets.push({
      subject: 'exec ×10k',
      check: 'cold-start wave (ms)',
      value: exec10k.waveMs,
      goal: `<= ${TARGET_WAVE_10K_EXEC_MS} ms`,
      pass: exec10k.waveMs !== null && exec10k.waveMs <= TARGET_WAVE_10K_EXEC_MS,
      ...(exec10k.waveBodyCpuMs !== null && exec10k.waveCpuMs !== null
        ? {
            context:
              `CPU in the wave: the body processes ${num(exec10k.waveBodyCpuMs)} ms (${num((exec10k.waveBodyCpuMs * 1000) / exec10k.orders)} µs each), the controller ${num(exec10k.waveCpuMs)} ms; ` +
              `on ${cores} cores the bodies alone need ${num(exec10k.waveBodyCpuMs / cores)} ms, bodies and controller ${num((exec10k.waveBodyCpuMs + exec10k.waveCpuMs) / cores)} ms` +
              // What makes a body dear on a VM: CPUID traps to the hypervisor, and glibc runs it as every process starts.
              (fireFloor?.cpuidUs != null ? `; one CPUID instruction costs ${num(fireFloor.cpuidUs, 1)} µs here (fire floor), and glibc's start-up executes it in every body` : '') +
              (exec10k.waveThreadsCpuMs
                ? `; the controller's by thread, ms: ${Object.entries(exec10k.waveThreadsCpuMs)
                    .sort((a, b) => b[1] - a[1])
                    .map(([role, ms]) => `${role} ${num(ms)}`)
                    .join(', ')}`
                : '') +
              (exec10k.waveSpawnWaitMs != null
                ? `; the controller's thread spent ${num(exec10k.waveSpawnWaitMs)} ms queuing bodies for the spawning threads (${num((exec10k.waveSpawnWaitMs * 1000) / exec10k.orders)} µs per body)`
                : ''),
          }
        : {}),
    });
    targets.push({ subject: 'exec ×10k', check: 'steady lateness p99 (ms)', value: exec10k.latenessP99ms, goal: `<= ${TARGET_LATENESS_P99_MS} ms`, pass: exec10k.latenessP99ms <= TARGET_LATENESS_P99_MS });
    targets.push({ subject: 'exec ×10k', check: 'RSS (MiB)', value: exec10k.rssMiB, goal: `<= ${TARGET_RSS_10K_EXEC_MIB} MiB`, pass: exec10k.rssMiB <= TARGET_RSS_10K_EXEC_MIB });
  }
  const code100k = scale.find((c) => c.kind === 'code' && c.orders === 100_000);
  if (code100k) {
    targets.push({ subject: 'code ×100k', check: 'start: load + recover (ms)', value: code100k.startMs, goal: `<= ${TARGET_START_100K_CODE_MS} ms`, pass: code100k.startMs <= TARGET_START_100K_CODE_MS });
    targets.push({ subject: 'code ×100k', check: 'steady lateness p99 (ms)', value: code100k.latenessP99ms, goal: `<= ${TARGET_LATENESS_P99_MS} ms`, pass: code100k.latenessP99ms <= TARGET_LATENESS_P99_MS });
  }
  console.log('\ntargets:');
  for (const t of targets) {
    console.log(`  ${t.pass ? 'PASS' : 'FAIL'}  ${t.subject}: ${t.check} = ${num(t.value, t.digits ?? 0)} (goal ${t.goal})`);
    if (t.context) console.log(`        ${t.context}`);
  }

  const partial = config.subjects !== null || process.env.BENCH_CODE_ORDERS !== undefined || process.env.BENCH_EXEC_ORDERS !== undefined;
  const file = writeResults(partial ? 'schedule.partial' : 'schedule', {
    benchmark: 'schedule',
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machineInfo(scratchRoot()),
    config: { ...config, codeOrders, execOrders, intervalMs: [MIN_INTERVAL_MS, MAX_INTERVAL_MS] },
    results: rows,
    ...(spawnRatio !== null ? { spawnRatio } : {}),
    ...(fireFloor ? { fireFloor: { ...fireFloor, runs: floorRuns } } : {}),
    scale,
    targets,
  });
  log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

let finished = false;
process.on('exit', (code) => {
  if (!finished) log(`bench:schedule exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
