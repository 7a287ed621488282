// bench:http — the controller's HTTP API under load, and what the load costs
// its fires.
//
// One `orderly-dispatch run --http` child process fires 50 exec orders whose
// body is `exit 100` (intervals spread over 1-5 s, ~20 fires/s, one `sh`
// each). This process measures the controller's fire lateness (each fired
// event's `at` minus its `due`, from the controller's --json output) twice in
// the same run: while nothing reads the API (the baseline), then while
// autocannon, here, in a second process, reads the Gas City orders feed at a
// fixed rate (BENCH_RATE, default 1,000 req/s). Repeated BENCH_REPEATS times,
// alternating; medians quoted.
// Acceptance: every request answered 200, the rate reached, and the loaded
// lateness p99 within the schedule goal (10 ms) — the ratio to the baseline is printed.
// Knobs: BENCH_SECONDS (20), BENCH_RATE (1000), BENCH_CONNECTIONS (10), BENCH_REPEATS (3), BENCH_ORDERS (50).
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { envNumber } from './lib/config.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { ensureBuilt, repoRoot } from './lib/orderly.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir } from './lib/scratch.mjs';
import { median, percentile } from './lib/stats.mjs';
import { formatTable, num } from './lib/table.mjs';

const SECONDS = envNumber('BENCH_SECONDS', 20);
const RATE = envNumber('BENCH_RATE', 1000);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 10);
const REPEATS = envNumber('BENCH_REPEATS', 3);
const ORDERS = envNumber('BENCH_ORDERS', 50);
const WARMUP_MS = 6_000;
const GOAL_P99_MS = 10;

ensureBuilt();
const scratch = scratchDir('http');
const city = path.join(scratch.path, 'orders');
mkdirSync(city);
for (let i = 0; i < ORDERS; i++) {
  const ms = 1000 + Math.round((4000 * i) / Math.max(1, ORDERS - 1));
  writeFileSync(path.join(city, `noop-${i}.toml`), `[order]\ntrigger = "cooldown"\ninterval = "${ms}ms"\nexec = "exit 100"\n`);
}

const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'cli.js'), 'run', city, '--state', path.join(scratch.path, 'state'), '--http', '127.0.0.1:0', '--json'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const lateness = [];
let url;
const served = new Promise((resolve) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    const e = JSON.parse(line);
    if (e.type === 'http') resolve((url = e.url));
    if (e.type === 'fired' && typeof e.due === 'number') lateness.push({ at: e.at, ms: Math.max(0, e.at - e.due) });
  });
});
await served;
console.error(`bench:http: controller on ${url}; ${ORDERS} orders; warming up ${WARMUP_MS / 1000} s`);
await sleep(WARMUP_MS);

const feedPath = '/v0/orders/feed?scope_kind=city&scope_ref=orders&limit=50';
function window(fromMs, toMs) {
  const xs = lateness.filter((l) => l.at >= fromMs && l.at < toMs).map((l) => l.ms).sort((a, b) => a - b);
  return { fires: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.at(-1) ?? 0 };
}

const rows = [];
for (let r = 0; r < REPEATS; r++) {
  const quietFrom = Date.now();
  await sleep(SECONDS * 1000);
  const quiet = window(quietFrom, Date.now());
  rows.push({ run: r + 1, phase: 'no API load (baseline)', ...quiet });
  console.error(`bench:http: run ${r + 1}: baseline p99 ${quiet.p99} ms over ${quiet.fires} fires; loading ${RATE} req/s`);

  const loadFrom = Date.now();
  const load = await autocannon({ url: url + feedPath, connections: CONNECTIONS, overallRate: RATE, duration: SECONDS });
  const loaded = window(loadFrom, Date.now());
  rows.push({
    run: r + 1,
    phase: `${RATE} req/s of feed reads`,
    ...loaded,
    reqPerSec: load.requests.average,
    latencyP50: load.latency.p50,
    latencyP99: load.latency.p99,
    non2xx: load.non2xx + load.errors + load.timeouts,
  });
  console.error(`bench:http: run ${r + 1}: loaded p99 ${loaded.p99} ms, ${load.requests.average} req/s, ${load.non2xx + load.errors + load.timeouts} bad answers`);
}
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));

const med = (phase, key) => median(rows.filter((x) => x.phase.startsWith(phase)).map((x) => x[key]));
const summary = {
  baselineP99: med('no API', 'p99'),
  loadedP99: med(`${RATE}`, 'p99'),
  reqPerSec: med(`${RATE}`, 'reqPerSec'),
  latencyP99: med(`${RATE}`, 'latencyP99'),
  bad: rows.reduce((n, x) => n + (x.non2xx ?? 0), 0),
};
summary.ratio = summary.baselineP99 > 0 ? summary.loadedP99 / summary.baselineP99 : null;
summary.pass = summary.bad === 0 && summary.reqPerSec >= RATE * 0.95 && summary.loadedP99 <= GOAL_P99_MS;

console.log(`bench:http — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`${commandLine()}\``);
console.log(`controller: orderly-dispatch run --http, ${ORDERS} exec orders (exit 100, intervals 1-5 s); load: autocannon, ${CONNECTIONS} connections at ${RATE} req/s on GET ${feedPath}, ${SECONDS} s per phase, ${REPEATS} runs alternating`);
console.log('');
console.log(
  formatTable(
    [
      { key: 'run', title: 'run' },
      { key: 'phase', title: 'phase' },
      { key: 'fires', title: 'fires', format: (v) => num(v) },
      { key: 'p50', title: 'lateness p50 ms', format: (v) => num(v) },
      { key: 'p99', title: 'lateness p99 ms', format: (v) => num(v) },
      { key: 'max', title: 'max ms', format: (v) => num(v) },
      { key: 'reqPerSec', title: 'req/s', format: (v) => (v === undefined ? '—' : num(v)) },
      { key: 'latencyP50', title: 'req p50 ms', format: (v) => (v === undefined ? '—' : num(v)) },
      { key: 'latencyP99', title: 'req p99 ms', format: (v) => (v === undefined ? '—' : num(v)) },
      { key: 'non2xx', title: 'not 200', format: (v) => (v === undefined ? '—' : num(v)) },
    ],
    rows,
  ),
);
console.log('');
console.log(
  `medians: lateness p99 ${num(summary.baselineP99)} ms without load, ${num(summary.loadedP99)} ms under ${num(summary.reqPerSec)} req/s` +
    (summary.ratio !== null ? ` (${summary.ratio.toFixed(2)}x the baseline)` : '') +
    `; request p99 ${num(summary.latencyP99)} ms; ${summary.bad} answer(s) not 200. Goal: p99 <= ${GOAL_P99_MS} ms under load, every answer 200: ${summary.pass ? 'met' : 'NOT met'}`,
);
writeResults('http', { date: new Date().toISOString(), command: commandLine(), machine: machineInfo(scratch.path), config: { SECONDS, RATE, CONNECTIONS, REPEATS, ORDERS }, rows, summary });
scratch.remove();
process.exit(summary.pass ? 0 : 1);
