// bench:schedule — how late the controller fires, and what a no-op fire costs it.
//
// Scenarios (one controller each, fresh state dir under bench/.tmp):
//   code  1,000 cooldown code orders, in-process bodies returning { didWork: false },
//         intervals spread evenly over 1-5 s (~400 fires/s)
//   exec  50 cooldown exec orders whose body is `exit 100` (the no-op exit code),
//         intervals spread over 1-5 s (~20 fires/s, one `sh` each)
// Figures, over the measured window (after a warm-up that holds the cold-start
// burst, when every order is due at once, reported on its own row):
//   lateness  fired event's `at` minus its `due` (the time the timer meant);
//             `at` is taken after the durable acquire, so lateness includes the
//             acquire's group-commit fdatasync, as a body would see it
//   CPU/fire  process.cpuUsage() delta (user+system, all threads of this
//             process, the WAL writer thread included; children not counted)
//             divided by fires
//   WAL syncs per fire, audit writes (sink write() calls and records): a no-op
//             must cost zero audit writes (G4)
// Acceptance: code lateness p99 <= 10 ms; audit writes = 0 in both scenarios.
//
// Prints the table on stdout (progress on stderr) and writes
// bench/results/schedule.json (schedule.partial.json for a narrowed run).
// Knobs: BENCH_SECONDS (default 30), BENCH_WARMUP_SECONDS (default 6),
// BENCH_REPEATS (default 1; medians quoted), BENCH_SUBJECTS (code, exec),
// BENCH_CODE_ORDERS (1000), BENCH_EXEC_ORDERS (50), BENCH_TMPDIR, ORDERLY_ENTRY.
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchConfig } from './lib/config.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { loadOrderlyDist } from './lib/orderly.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { medianOfRuns, percentile, Samples } from './lib/stats.mjs';
import { formatTable, num } from './lib/table.mjs';

const TARGET_LATENESS_P99_MS = 10;
const MIN_INTERVAL_MS = 1_000;
const MAX_INTERVAL_MS = 5_000;

const config = benchConfig({ seconds: 30, warmupSeconds: 6, repeats: 1 });
const codeOrders = Math.round(Number(process.env.BENCH_CODE_ORDERS ?? 1000));
const execOrders = Math.round(Number(process.env.BENCH_EXEC_ORDERS ?? 50));
const log = (...args) => console.error(...args);

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
    id: 'exec',
    label: `${execOrders} exec orders, \`exit 100\``,
    orders: (defineOrder) =>
      intervals(execOrders).map((interval, i) =>
        defineOrder({ name: `exit100-${String(i).padStart(3, '0')}`, trigger: 'cooldown', interval, timeout: '10s', exec: 'exit 100' }),
      ),
  },
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
  const controller = await lib.Controller.start({ state: dir.path, orders, audit: sink, onEvent, cwd: dir.path });
  try {
    await sleep(config.warmupSeconds * 1000);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    const before = { stats: controller.stats(), cpu: process.cpuUsage(), t: performance.now(), sink: { ...sink.counts }, audited: auditedCompletions };
    measuring = true;
    delay.enable();
    await sleep(config.seconds * 1000);
    measuring = false;
    delay.disable();
    const after = { stats: controller.stats(), cpu: process.cpuUsage(before.cpu), t: performance.now(), sink: { ...sink.counts }, audited: auditedCompletions };
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
  for (let rep = 1; rep <= config.repeats; rep++) {
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
      'CPU = this process (controller + WAL thread), children excluded. audit writes = sink write() calls over the whole run. EL = event-loop delay.',
  );
  for (const r of rows) console.log(`  ${r.label}: mean CPU user ${num(r.cpuUserUsPerFire)} + system ${num(r.cpuSystemUsPerFire)} µs/fire; load average ${num(r.loadAvg1Start, 2)} → ${num(r.loadAvg1End, 2)}`);
  for (const c of cells) for (const e of c.errors) console.log(`  error in ${c.scenario.id}: ${e}`);

  const targets = [];
  const code = rows.find((r) => r.subject === 'code');
  if (code) targets.push({ subject: 'code', check: 'fire lateness p99 (ms)', value: code.latenessP99ms, goal: `<= ${TARGET_LATENESS_P99_MS} ms`, pass: code.latenessP99ms <= TARGET_LATENESS_P99_MS });
  for (const r of rows) targets.push({ subject: r.subject, check: 'audit writes for no-ops', value: r.auditSinkWritesTotal, goal: '= 0', pass: r.auditSinkWritesTotal === 0 && r.auditedCompletions === 0 });
  console.log('\ntargets:');
  for (const t of targets) console.log(`  ${t.pass ? 'PASS' : 'FAIL'}  ${t.subject}: ${t.check} = ${num(t.value)} (goal ${t.goal})`);

  const partial = config.subjects !== null || process.env.BENCH_CODE_ORDERS !== undefined || process.env.BENCH_EXEC_ORDERS !== undefined;
  const file = writeResults(partial ? 'schedule.partial' : 'schedule', {
    benchmark: 'schedule',
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machineInfo(scratchRoot()),
    config: { ...config, codeOrders, execOrders, intervalMs: [MIN_INTERVAL_MS, MAX_INTERVAL_MS] },
    results: rows,
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
