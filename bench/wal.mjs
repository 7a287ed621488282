// bench:wal — durable appends/s and ack latency of orderly's Wal against the
// floor this disk sets: a raw write + fdatasync per record (crates/fsync-floor).
// A log that syncs every record cannot beat that floor; group commit is what
// lets orderly go past it once appends overlap. better-sqlite3 (WAL mode,
// synchronous=FULL) and node's own fs calls are the alternatives a user would
// otherwise reach for.
//
// Acceptance (ratios to the single-writer floor measured in the same run):
//   1 in flight  >= 0.9x   — one waiting append costs about one fdatasync
//   64 in flight >= 20x    — concurrent appends share syncs
//   event-loop delay p99 < 1 ms while appending — syncs never run on the JS thread
//
// Prints the table on stdout (progress on stderr) and writes
// bench/results/wal.json, or wal.partial.json for a narrowed run.
// Knobs: BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_REPEATS, BENCH_INFLIGHT,
// BENCH_SUBJECTS (floor, floor-prealloc, orderly, orderly-prealloc, sqlite,
// node-fs), BENCH_TMPDIR, FSYNC_FLOOR_BIN, ORDERLY_ENTRY (a module exporting Wal).
import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchConfig } from './lib/config.mjs';
import { floorBinary, runFloor } from './lib/floor.mjs';
import { closedLoop, syncRoundRobin } from './lib/load.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { median, medianOfRuns } from './lib/stats.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const RECORD_BYTES = 128;
const PREALLOCATE_BYTES = 64 * 1024 * 1024; // etcd's segment size; outlasts a 60 s cell at the floor's rate
const TARGET_AT_1 = 0.9;
const TARGET_AT_64 = 20;
const TARGET_EVENT_LOOP_P99_MS = 1;

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const config = benchConfig();
const log = (...args) => console.error(...args);

// A pool of distinct, never-mutated records shared by every subject, so no
// subject pays for allocation in its loop and a binding that keeps a
// reference to a buffer until it is durable still sees the right bytes.
const records = Array.from({ length: 1024 }, (_, i) => {
  const record = Buffer.alloc(RECORD_BYTES, '.');
  record.write(`record ${i}\n`);
  return record;
});

// ---------------------------------------------------------------- subjects

function floorSubject(id, label, preallocate) {
  return {
    id,
    label,
    note: preallocate
      ? `file zero-filled (${PREALLOCATE_BYTES >> 20} MiB) and fsync'd first, as orderly preallocates; pwrite + fdatasync per record`
      : 'W threads, each write() + fdatasync() per record on one shared O_APPEND fd',
    setup() {
      floorBinary();
    },
    async run(inFlight) {
      const dir = scratchDir(id);
      try {
        const r = await runFloor({
          file: path.join(dir.path, 'floor.log'),
          writers: inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          recordBytes: RECORD_BYTES,
          preallocate: preallocate ? PREALLOCATE_BYTES : 0,
        });
        return { ops: r.ops, seconds: r.seconds, opsPerSec: r.opsPerSec, p50us: r.p50us, p99us: r.p99us };
      } finally {
        dir.remove();
      }
    },
  };
}

async function loadOrderly() {
  if (process.env.ORDERLY_ENTRY) return import(pathToFileURL(path.resolve(process.env.ORDERLY_ENTRY)).href);
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  try {
    // Self-reference: resolves through the package's own "exports", exactly
    // as a user's `import { Wal } from 'orderly'` would.
    return await import(pkg.name);
  } catch (err) {
    const entry = path.join(repoRoot, pkg.main ?? 'dist/index.js');
    if (!existsSync(entry)) throw new Error(`cannot import ${pkg.name} (${err.code ?? err.message}) and ${entry} does not exist; build the package first`);
    return import(pathToFileURL(entry).href);
  }
}

function orderlySubject(id, preallocate) {
  let Wal;
  return {
    id,
    label: `orderly Wal (preallocate: ${preallocate})`,
    note: 'N async loops, each awaiting append() (durable ack) before the next',
    async setup() {
      const mod = await loadOrderly();
      Wal = mod.Wal ?? mod.default?.Wal;
      if (typeof Wal?.open !== 'function') throw new Error('the package root does not export Wal with a static open()');
    },
    async run(inFlight) {
      const dir = scratchDir(id);
      const wal = await Wal.open(dir.path, { preallocate });
      try {
        let seq = 0;
        let before;
        let after;
        const r = await closedLoop({
          inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          op: () => wal.append(records[seq++ & 1023]),
          onMeasureStart: () => (before = wal.stats()),
          onMeasureEnd: () => (after = wal.stats()),
        });
        if (after.poisoned) throw new Error('the Wal reports poisoned after the run');
        const syncs = Number(after.syncs) - Number(before.syncs);
        return { ...r, appendsPerSync: syncs > 0 ? (Number(after.appends) - Number(before.appends)) / syncs : null };
      } finally {
        await wal.close();
        dir.remove();
      }
    },
  };
}

function sqliteSubject() {
  let Database;
  return {
    id: 'sqlite',
    label: 'better-sqlite3 (WAL, synchronous=FULL)',
    note:
      'one INSERT (its own transaction) per op; better-sqlite3 is synchronous, so N in flight = N logical ' +
      'writers round-robin on the JS thread, latency includes waiting for the others; blocks the event loop',
    setup() {
      try {
        Database = createRequire(import.meta.url)('better-sqlite3');
      } catch (err) {
        throw new Error(`better-sqlite3 is not installed (npm install --save-dev better-sqlite3): ${err.code ?? err.message}`);
      }
    },
    run(inFlight) {
      const dir = scratchDir('sqlite');
      const db = new Database(path.join(dir.path, 'bench.db'));
      try {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.exec('CREATE TABLE log (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)');
        const insert = db.prepare('INSERT INTO log (payload) VALUES (?)');
        let seq = 0;
        return syncRoundRobin({
          writers: inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          op: () => insert.run(records[seq++ & 1023]),
        });
      } finally {
        db.close();
        dir.remove();
      }
    },
  };
}

function nodeFsSubject() {
  return {
    id: 'node-fs',
    label: 'node fs.writeSync + fs.fdatasyncSync',
    note: 'plain synchronous loop; in flight 1 only: synchronous fs calls cannot overlap',
    levels: [1],
    setup() {},
    run(inFlight) {
      const dir = scratchDir('node-fs');
      const fd = openSync(path.join(dir.path, 'node.log'), 'a');
      try {
        let seq = 0;
        return syncRoundRobin({
          writers: inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          op: () => {
            writeSync(fd, records[seq++ & 1023]);
            fdatasyncSync(fd);
          },
        });
      } finally {
        closeSync(fd);
        dir.remove();
      }
    },
  };
}

// ---------------------------------------------------------------- driver

const allSubjects = [
  floorSubject('floor', 'floor: write + fdatasync (Rust)', false),
  { ...floorSubject('floor-prealloc', 'floor, preallocated file', true), levels: [1] },
  orderlySubject('orderly', false),
  orderlySubject('orderly-prealloc', true),
  sqliteSubject(),
  nodeFsSubject(),
];

async function main() {
  const wanted = config.subjects ? allSubjects.filter((s) => config.subjects.includes(s.id)) : allSubjects;
  const subjects = [];
  const skipped = [];
  for (const subject of wanted) {
    try {
      await subject.setup();
      subjects.push(subject);
    } catch (err) {
      log(`skipping ${subject.label}: ${err.message}`);
      skipped.push({ subject: subject.id, reason: err.message });
    }
  }

  // The headline baseline (floor at 1 in flight) is measured even if
  // BENCH_INFLIGHT leaves 1 out.
  const levelsOf = (s) => {
    const levels = s.levels ? s.levels.filter((n) => config.inFlight.includes(n)) : config.inFlight;
    return s.id === 'floor' && !levels.includes(1) ? [1, ...levels] : levels;
  };
  const cells = subjects.flatMap((s) => levelsOf(s).map((inFlight) => ({ subject: s, inFlight, runs: [], errors: [] })));

  log(
    `bench:wal — ${cells.length} cells × ${config.repeats} runs, ${config.warmupSeconds}s warm-up + ${config.seconds}s each, ` +
      `data under ${scratchRoot()}`,
  );
  // Repeats are interleaved, not back to back, so a noisy minute on a shared
  // machine spreads over all subjects instead of sinking one.
  for (let rep = 1; rep <= config.repeats; rep++) {
    for (const cell of cells) {
      const tag = `[${rep}/${config.repeats}] ${cell.subject.label} @${cell.inFlight}`;
      try {
        // The 1-minute load average when the run started: on a shared
        // machine it tells a slow subject from a busy neighbour.
        const loadAvg1 = os.loadavg()[0];
        const r = { ...(await cell.subject.run(cell.inFlight)), loadAvg1 };
        cell.runs.push(r);
        log(`${tag}: ${num(r.opsPerSec)} ops/s, p50 ${num(r.p50us)} µs, p99 ${num(r.p99us)} µs`);
      } catch (err) {
        cell.errors.push(err.message);
        log(`${tag}: FAILED ${err.stack ?? err.message}`);
      }
    }
  }

  const floorCell = (n) => cells.find((c) => c.subject.id === 'floor' && c.inFlight === n);
  const floor1 = median(floorCell(1)?.runs.map((r) => r.opsPerSec) ?? []);
  const rows = cells.map((cell) => {
    const m = cell.runs.length ? medianOfRuns(cell.runs) : {};
    const floorSame = median(floorCell(cell.inFlight)?.runs.map((r) => r.opsPerSec) ?? []);
    return {
      subject: cell.subject.id,
      label: cell.subject.label,
      inFlight: cell.inFlight,
      opsPerSec: m.opsPerSec ?? null,
      p50us: m.p50us ?? null,
      p99us: m.p99us ?? null,
      ratioToFloor: m.opsPerSec && floor1 ? m.opsPerSec / floor1 : null,
      ratioToFloorSameInFlight: m.opsPerSec && floorSame ? m.opsPerSec / floorSame : null,
      appendsPerSync: m.appendsPerSync ?? null,
      eventLoopDelayP99ms: m.eventLoopDelayP99ms ?? null,
      runs: cell.runs,
      errors: cell.errors,
    };
  });

  const targets = [];
  for (const id of ['orderly', 'orderly-prealloc']) {
    const at = (n) => rows.find((r) => r.subject === id && r.inFlight === n);
    const check = (name, value, pass, goal) => targets.push({ subject: id, check: name, value, goal, pass: value === null ? null : pass });
    if (at(1)) check('ops/s at 1 in flight vs floor', at(1).ratioToFloor, at(1).ratioToFloor >= TARGET_AT_1, `>= ${TARGET_AT_1}x`);
    if (at(64)) check('ops/s at 64 in flight vs single-writer floor', at(64).ratioToFloor, at(64).ratioToFloor >= TARGET_AT_64, `>= ${TARGET_AT_64}x`);
    for (const r of rows.filter((r) => r.subject === id)) {
      const v = r.eventLoopDelayP99ms;
      check(`event-loop delay p99 (ms) at ${r.inFlight} in flight`, v, v < TARGET_EVENT_LOOP_P99_MS, `< ${TARGET_EVENT_LOOP_P99_MS} ms`);
    }
  }

  console.log(
    formatTable(
      [
        { key: 'label', title: 'subject' },
        { key: 'inFlight', title: 'in flight' },
        { key: 'opsPerSec', title: 'ops/s', format: (v) => num(v) },
        { key: 'p50us', title: 'p50 µs', format: (v) => num(v) },
        { key: 'p99us', title: 'p99 µs', format: (v) => num(v) },
        { key: 'ratioToFloor', title: 'x floor@1', format: (v) => ratio(v) },
        { key: 'ratioToFloorSameInFlight', title: 'x floor@N', format: (v) => ratio(v) },
        { key: 'appendsPerSync', title: 'appends/sync', format: (v) => num(v, 1) },
        { key: 'eventLoopDelayP99ms', title: 'EL p99 ms', format: (v) => num(v, 3) },
      ],
      rows,
    ),
  );
  console.log(
    `\nmedians of ${config.repeats} runs; ${config.seconds}s measured after ${config.warmupSeconds}s warm-up; ` +
      `${RECORD_BYTES}-byte records. x floor@1 = ratio to the single-writer floor (the headline); ` +
      'x floor@N = ratio to the floor with N writer threads; EL = event-loop delay while appending.',
  );
  for (const s of subjects) console.log(`  ${s.label}: ${s.note}`);
  for (const s of skipped) console.log(`  skipped ${s.subject}: ${s.reason}`);
  if (targets.length) {
    console.log('\ntargets:');
    for (const t of targets) {
      const verdict = t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL';
      const value = t.value === null ? '—' : t.check.includes('ms') ? num(t.value, 3) : ratio(t.value);
      console.log(`  ${verdict}  ${t.subject}: ${t.check} = ${value} (goal ${t.goal})`);
    }
  }

  // A run narrowed by BENCH_SUBJECTS/BENCH_INFLIGHT is not a baseline and
  // must not replace one.
  const partial = config.subjects !== null || Boolean(process.env.BENCH_INFLIGHT);
  const file = writeResults(partial ? 'wal.partial' : 'wal', {
    benchmark: 'wal',
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machineInfo(scratchRoot()),
    config: { ...config, recordBytes: RECORD_BYTES, floorPreallocateBytes: PREALLOCATE_BYTES },
    subjects: subjects.map((s) => ({ id: s.id, label: s.label, note: s.note })),
    skipped,
    baseline: { subject: 'floor', inFlight: 1, opsPerSec: floor1 },
    results: rows,
    targets,
  });
  log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

let finished = false;
process.on('exit', (code) => {
  // Exit code 13 with no output: the event loop emptied while a promise the
  // benchmark awaits was pending, i.e. a subject left an operation pending
  // without keeping the process alive.
  if (!finished) log(`bench:wal exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
