// npm run bench — every benchmark in one run, then the charts,
// docs/benchmarks.md and the README's performance summary (bench/readme.mjs).
//
// Each benchmark runs as its own `node bench/<name>.mjs` (a fresh process:
// no JIT state, open handles or worker threads carried from one subject's
// bench into the next), one after the other, never in parallel: they all
// measure the same disk. The first failure stops the run, so the write-up is
// never regenerated from a mix of new figures and a bench that died.
//
// docs/benchmarks.md's header quotes the disk's fsync floor as measured in
// this very run: bench/wal.mjs measures it as its baseline, and when it is
// not part of the run (BENCH_ONLY) or is narrowed, this script measures it
// once before the first benchmark with the same tool (crates/fsync-floor).
// Machine, floor, command and per-bench durations go to
// bench/results/run.json.
//
// Knobs: BENCH_ONLY=wal,city runs a subset, in the usual order. Everything
// else in the environment reaches each bench unchanged (BENCH_SECONDS,
// BENCH_REPEATS, BENCH_TMPDIR, FSYNC_FLOOR_BIN, ...); note that
// BENCH_SUBJECTS/BENCH_INFLIGHT apply to every bench run and make their
// results partial (<name>.partial.json), which docs/benchmarks.md does not
// show.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchConfig, envList } from './lib/config.mjs';
import { floorBinary, runFloor, walBaselineRow } from './lib/floor.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { resultsDir, writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { median } from './lib/stats.mjs';
import { num } from './lib/table.mjs';

const BENCHES = ['wal', 'lease', 'schedule', 'audit', 'city', 'http', 'cluster'];
const FLOOR_RECORD_BYTES = 128; // bench/wal.mjs's record size, so both floors are the same measurement

const root = fileURLToPath(new URL('../', import.meta.url));
const log = (...args) => console.error(...args);

class Stop extends Error {}

function selected() {
  const wanted = envList('BENCH_ONLY', null);
  if (!wanted) return BENCHES;
  const unknown = wanted.filter((n) => !BENCHES.includes(n));
  if (unknown.length) throw new Stop(`BENCH_ONLY names no benchmark ${unknown.join(', ')}; the benchmarks are ${BENCHES.join(', ')}`);
  return BENCHES.filter((n) => wanted.includes(n));
}

/** Refuses to start a half-hour run that would fail at its first import. */
function checkBuilt(names) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const missing = [pkg.main, pkg.module].filter((f) => f && !existsSync(path.join(root, f)));
  if (missing.length) throw new Stop(`the package is not built (no ${missing.map((f) => path.normalize(f)).join(', ')}). Run \`npm run build\` first.`);
  if (!existsSync(path.join(root, 'index.cjs')) || !readdirSync(root).some((f) => f.endsWith('.node'))) {
    throw new Stop('the native addon (index.cjs and its .node file) is missing. Run `npm run build` first.');
  }
  try {
    createRequire(import.meta.url)(path.join(root, 'index.cjs'));
  } catch (err) {
    throw new Stop(`the native addon does not load (${err.message.split('\n')[0]}). Run \`npm run build\` first.`);
  }
  const absent = names.filter((n) => !existsSync(path.join(root, 'bench', `${n}.mjs`)));
  if (absent.length) throw new Stop(`no ${absent.map((n) => `bench/${n}.mjs`).join(', ')}; nothing was run`);
}

/** One writer, write + fdatasync per record, in the scratch directory the benches write to. */
async function measureFloor(when) {
  const config = benchConfig();
  try {
    floorBinary();
  } catch (err) {
    throw new Stop(err.message);
  }
  const runs = [];
  for (let i = 0; i < config.repeats; i++) {
    const dir = scratchDir('floor');
    try {
      runs.push(await runFloor({ file: path.join(dir.path, 'floor.log'), writers: 1, seconds: config.seconds, warmupSeconds: config.warmupSeconds, recordBytes: FLOOR_RECORD_BYTES }));
    } finally {
      dir.remove();
    }
  }
  return {
    opsPerSec: median(runs.map((r) => r.opsPerSec)),
    p50us: median(runs.map((r) => r.p50us)),
    p99us: median(runs.map((r) => r.p99us)),
    recordBytes: FLOOR_RECORD_BYTES,
    runs: runs.length,
    measuredBy: `bench/all.mjs ${when} (crates/fsync-floor, 1 writer)`,
  };
}

/** The floor bench/wal.mjs measured as its baseline in this run, if it did. */
function floorFromWal(since) {
  const file = path.join(resultsDir, 'wal.json');
  if (!existsSync(file) || statSync(file).mtimeMs < since) return null;
  const wal = JSON.parse(readFileSync(file, 'utf8'));
  const row = walBaselineRow(wal);
  if (!row) return null;
  return {
    opsPerSec: row.opsPerSec,
    p50us: row.p50us,
    p99us: row.p99us,
    recordBytes: wal.config?.recordBytes ?? null,
    runs: row.runs?.length ?? null,
    measuredBy: 'bench/wal.mjs as its baseline (crates/fsync-floor, 1 writer)',
  };
}

function rustcVersion() {
  try {
    return execFileSync('rustc', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function duration(ms) {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
}

/** Runs `node <script>` with this terminal; resolves to how it ended. */
function runNode(script) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script], { cwd: root, stdio: 'inherit', env: process.env });
    child.on('error', (err) => resolve({ error: err.message }));
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
}

function failure(how) {
  if (how.error) return `could not start (${how.error})`;
  if (how.signal) return `was killed by ${how.signal}`;
  return `exited with code ${how.code}`;
}

/** Which result file a bench wrote during this run, if any. */
function writtenResult(name, since) {
  for (const file of [`${name}.json`, `${name}.partial.json`]) {
    const p = path.join(resultsDir, file);
    if (existsSync(p) && statSync(p).mtimeMs >= since) return path.relative(root, p);
  }
  return null;
}

async function main() {
  const names = selected();
  checkBuilt(names);
  const startedAt = new Date();
  const t0 = Date.now();

  // A full bench:wal measures the floor as its baseline; measuring it here
  // as well would put two slightly different floors in one write-up.
  const walMeasuresFloor = names.includes('wal') && !process.env.BENCH_SUBJECTS && !process.env.BENCH_INFLIGHT;
  let floor = null;
  if (!walMeasuresFloor) {
    log('bench: measuring the fsync floor (1 writer, write + fdatasync per record)');
    floor = await measureFloor('before the first benchmark');
    log(`bench: fsync floor ${num(floor.opsPerSec)} ops/s, p50 ${num(floor.p50us)} µs`);
  }

  const done = [];
  for (const name of names) {
    log(`\nbench: ── ${name} (${done.length + 1}/${names.length}) ── node bench/${name}.mjs`);
    const since = Date.now();
    const how = await runNode(path.join('bench', `${name}.mjs`));
    const ms = Date.now() - since;
    const result = writtenResult(name, since);
    if (how.code !== 0) throw new Stop(`bench/${name}.mjs ${failure(how)} after ${duration(ms)}${stopNote(done)}`);
    if (!result) throw new Stop(`bench/${name}.mjs exited 0 after ${duration(ms)} but wrote no bench/results/${name}.json${stopNote(done)}`);
    done.push({ name, seconds: Math.round(ms / 100) / 10, result });
    console.log(`bench: ${name} done in ${duration(ms)} → ${result}`);
  }

  floor ??= floorFromWal(t0);
  if (!floor) {
    // bench:wal ran but left no usable baseline: measure it now rather than
    // publish a header without the figure every other one is read against.
    log('bench: bench:wal recorded no floor baseline; measuring the fsync floor now');
    floor = await measureFloor('after the benchmarks');
  }

  console.log(`\nbench: ${done.length} benchmark(s) in ${duration(Date.now() - t0)}`);
  for (const d of done) console.log(`  ${d.name.padEnd(9)} ${duration(d.seconds * 1000).padStart(12)}  ${d.result}`);
  console.log(`  fsync floor ${num(floor.opsPerSec)} ops/s (p50 ${num(floor.p50us)} µs), measured by ${floor.measuredBy}`);

  const file = writeResults('run', {
    benchmark: 'run',
    date: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: commandLine(),
    machine: { ...machineInfo(scratchRoot()), rustc: rustcVersion() },
    fsyncFloor: floor,
    benches: done,
  });
  log(`bench: wrote ${path.relative(root, file)}`);

  for (const step of ['charts', 'readme']) {
    const how = await runNode(path.join('bench', `${step}.mjs`));
    if (how.code !== 0) throw new Stop(`bench/${step}.mjs ${failure(how)}; the results in bench/results are new, rerun \`node bench/${step}.mjs\``);
  }
}

function stopNote(done) {
  const kept = done.length ? ` Finished before it: ${done.map((d) => d.name).join(', ')} (results kept in bench/results).` : '';
  return `. Stopped there.${kept} Charts, docs/benchmarks.md and README not regenerated.`;
}

try {
  await main();
} catch (err) {
  if (!(err instanceof Stop)) throw err;
  log(`\nnpm run bench: ${err.message}`);
  process.exitCode = 1;
}
