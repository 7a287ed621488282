// bench:audit — audit records/s and transactions per 1,000 records through
// orderly's AuditWriter (group commit: everything arriving while a
// transaction runs goes into the next one) against one commit per record (a
// sink.write([record]) per completion, what a controller without a single
// writer does), for each database sink at 1, 20 and 40 concurrent
// completions (seeds/beads-load-analysis.md: 20-40 concurrent per-write
// flushes were 5-16x slower than batched writes).
//
// A completion is a closed loop: make a record, hand it over, wait until it
// is committed, repeat. Modes:
//   per-record  sink.write([r]) per completion; SQL pools get one connection per loop
//   writer      AuditWriter with its defaults (maxDelayMs 20: the first record of a
//               batch waits up to 20 ms for company)
//   writer-0ms  AuditWriter with maxDelayMs 0: batches only what arrives while a
//               transaction is in flight
// Sinks: sqlite (better-sqlite3 in its worker, WAL, synchronous=FULL, a file in
// bench/.tmp), postgres and mariadb (throwaway servers from
// test/support/servers.mjs with their data in bench/.tmp; fsync on,
// innodb_flush_log_at_trx_commit=1). Each cell writes into a fresh database.
//
// Also measured: the event-loop delay of a 500-record batch commit with the
// SQLite connection on the JS thread (thread: 'main') and in its worker
// (the default), the figure that decided where the connection runs.
//
// The sinks and the writer are bundled from src/ with esbuild (they are not
// exported from the package root), so the figures are those of the sources.
//
// Prints the tables on stdout (progress on stderr) and writes
// bench/results/audit.json, or audit.partial.json for a narrowed run.
// Knobs: BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_REPEATS, BENCH_INFLIGHT
// (default 1,20,40), BENCH_SUBJECTS (sqlite, postgres, mariadb, sqlite-eventloop),
// BENCH_TMPDIR.
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchConfig } from './lib/config.mjs';
import { closedLoop } from './lib/load.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { median, medianOfRuns } from './lib/stats.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const config = benchConfig({ inFlight: [1, 20, 40] });
const log = (...args) => console.error(...args);
const MODES = ['per-record', 'writer', 'writer-0ms'];
const EVENT_LOOP_BATCH = 500;
const EVENT_LOOP_COMMITS = 30;

// ---------------------------------------------------------------- loading

/** src/audit bundled into one ES module under bench/.tmp (drivers stay external, resolved from node_modules). */
async function loadAudit() {
  const esbuild = await import('esbuild');
  const dir = path.join(scratchRoot(), `audit-bundle-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, 'audit.mjs');
  await esbuild.build({
    stdin: {
      contents: [
        "export { AuditWriter } from './src/audit/writer.js';",
        "export { SqliteSink } from './src/audit/sqlite.js';",
        "export { PostgresSink } from './src/audit/postgres.js';",
        "export { MysqlSink } from './src/audit/mysql.js';",
      ].join('\n'),
      resolveDir: repoRoot,
      loader: 'ts',
      sourcefile: 'bench-audit-entry.ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'silent',
  });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return import(pathToFileURL(outfile).href);
}

// ---------------------------------------------------------------- records

let seq = 0;
const OUTPUT = 'line of output from the body\n'.repeat(7); // ~200 bytes, a typical summary
function record(loop) {
  const now = Date.now();
  seq++;
  return {
    fireId: randomUUID(),
    order: `order-${loop}`,
    scopedName: `order-${loop}`,
    rig: null,
    trigger: 'cooldown',
    outcome: 'did-work',
    exitCode: 0,
    signal: null,
    startedAt: now - 120,
    endedAt: now,
    durationMs: 120,
    fence: String(seq),
    outputTail: OUTPUT,
    labels: {},
  };
}

// ---------------------------------------------------------------- subjects

/** A sink subject: `open(inFlight, mode)` gives a fresh, opened sink on a fresh database. */
function sqliteSubject(audit) {
  return {
    id: 'sqlite',
    label: 'sqlite (better-sqlite3 in a worker; WAL, synchronous=FULL)',
    async setup() {},
    async open() {
      const dir = scratchDir('audit-sqlite');
      const sink = new audit.SqliteSink(path.join(dir.path, 'audit.db'));
      await sink.open();
      return { sink, cleanup: async () => dir.remove() };
    },
    async teardown() {},
  };
}

function serverSubject(audit, id) {
  let server;
  let dbs = 0;
  const isPg = id === 'postgres';
  return {
    id,
    label: isPg ? 'postgres (pg; fsync=on, synchronous_commit=on)' : 'mariadb (mysql2; innodb_flush_log_at_trx_commit=1)',
    async setup() {
      const { startPostgres, startMariadb } = await import('../test/support/servers.mjs');
      const max = Math.max(...config.inFlight) + 20;
      server = isPg
        ? await startPostgres({ baseDir: scratchRoot(), settings: { max_connections: String(Math.max(100, max)) } })
        : await startMariadb({ baseDir: scratchRoot(), settings: { max_connections: String(Math.max(151, max)) } });
      log(`${id}: ${server.url} (data ${server.dataDir})`);
    },
    async open(inFlight, mode) {
      const name = `bench_${++dbs}`;
      await server.sql(`CREATE DATABASE ${name}`);
      const url = server.url.replace(/\/orderly$/, `/${name}`);
      const poolSize = mode === 'per-record' ? inFlight : 2;
      const sink = isPg ? new audit.PostgresSink(url, { poolSize }) : new audit.MysqlSink(url, { poolSize });
      await sink.open();
      return { sink, cleanup: async () => server.sql(`DROP DATABASE ${name}`).catch(() => undefined) };
    },
    async teardown() {
      await server?.stop();
    },
  };
}

async function runCell(audit, subject, inFlight, mode) {
  const { sink, cleanup } = await subject.open(inFlight, mode);
  let writer;
  try {
    let op;
    let before;
    let after;
    let count = () => ({ transactions: 0, records: 0 });
    if (mode === 'per-record') {
      let writes = 0;
      op = async (loop) => {
        await sink.write([record(loop)]);
        writes++;
      };
      count = () => ({ transactions: writes, records: writes });
    } else {
      const waiting = new Map();
      writer = new audit.AuditWriter(sink, {
        ...(mode === 'writer-0ms' ? { maxDelayMs: 0 } : {}),
        onCommitted: (ids) => {
          for (const id of ids) {
            waiting.get(id)?.();
            waiting.delete(id);
          }
        },
      });
      let nextId = 0n;
      op = (loop) =>
        new Promise((resolve) => {
          const id = ++nextId;
          waiting.set(id, resolve);
          writer.enqueue(id, record(loop));
        });
      count = () => writer.stats();
    }
    const r = await closedLoop({
      inFlight,
      seconds: config.seconds,
      warmupSeconds: config.warmupSeconds,
      op,
      onMeasureStart: () => (before = { ...count() }),
      onMeasureEnd: () => (after = { ...count() }),
    });
    if (writer && writer.stats().failures > 0) throw new Error(`writer failures: ${writer.stats().lastError}`);
    const records = after.records - before.records;
    const transactions = after.transactions - before.transactions;
    return {
      recordsPerSec: r.opsPerSec,
      p50ms: r.p50us / 1000,
      p99ms: r.p99us / 1000,
      txPer1000: records > 0 ? (transactions / records) * 1000 : null,
      recordsPerTx: transactions > 0 ? records / transactions : null,
      eventLoopDelayP99ms: r.eventLoopDelayP99ms,
    };
  } finally {
    await writer?.close(10_000);
    await sink.close();
    await cleanup();
  }
}

/** Event-loop delay of 500-record batch commits, SQLite connection on the JS thread vs in its worker. */
async function sqliteEventLoop(audit) {
  const out = [];
  // The machine's own noise: the same loop with the records made and no sink (each "commit" a 6 ms sleep).
  {
    const batches = Array.from({ length: EVENT_LOOP_COMMITS }, () => Array.from({ length: EVENT_LOOP_BATCH }, (_, j) => record(j)));
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    for (let i = 0; i < batches.length; i++) {
      await new Promise((r) => setTimeout(r, 6));
      await new Promise((r) => setTimeout(r, 5));
    }
    delay.disable();
    const excess = (ns) => Math.max(0, ns / 1e6 - 1);
    out.push({
      thread: 'none (idle baseline)',
      batch: EVENT_LOOP_BATCH,
      commits: 0,
      commitP50ms: null,
      commitMaxMs: null,
      eventLoopDelayP50ms: excess(delay.percentile(50)),
      eventLoopDelayP99ms: excess(delay.percentile(99)),
      eventLoopDelayMaxMs: excess(delay.max),
    });
  }
  for (const thread of ['main', 'worker']) {
    const dir = scratchDir(`audit-el-${thread}`);
    const sink = new audit.SqliteSink(path.join(dir.path, 'audit.db'), { thread });
    await sink.open();
    try {
      // Warm up: statement cache, file growth.
      for (let i = 0; i < 3; i++) await sink.write(Array.from({ length: EVENT_LOOP_BATCH }, (_, j) => record(j)));
      const commits = [];
      // Records made up front: the delay measured is the sink's alone.
      const batches = Array.from({ length: EVENT_LOOP_COMMITS }, () => Array.from({ length: EVENT_LOOP_BATCH }, (_, j) => record(j)));
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      for (const batch of batches) {
        const t0 = performance.now();
        await sink.write(batch);
        commits.push(performance.now() - t0);
        // Let the delay monitor's timer tick between commits.
        await new Promise((r) => setTimeout(r, 5));
      }
      delay.disable();
      commits.sort((a, b) => a - b);
      const excess = (ns) => Math.max(0, ns / 1e6 - 1);
      out.push({
        thread,
        batch: EVENT_LOOP_BATCH,
        commits: EVENT_LOOP_COMMITS,
        commitP50ms: commits[Math.floor(commits.length / 2)],
        commitMaxMs: commits[commits.length - 1],
        eventLoopDelayP50ms: excess(delay.percentile(50)),
        eventLoopDelayP99ms: excess(delay.percentile(99)),
        eventLoopDelayMaxMs: excess(delay.max),
      });
    } finally {
      await sink.close();
      dir.remove();
    }
  }
  return out;
}

// ---------------------------------------------------------------- driver

async function main() {
  const audit = await loadAudit();
  const wanted = (id) => !config.subjects || config.subjects.includes(id);
  const candidates = [sqliteSubject(audit), serverSubject(audit, 'postgres'), serverSubject(audit, 'mariadb')].filter((s) => wanted(s.id));
  const subjects = [];
  const skipped = [];
  for (const s of candidates) {
    try {
      await s.setup();
      subjects.push(s);
    } catch (err) {
      log(`skipping ${s.label}: ${err.message}`);
      skipped.push({ subject: s.id, reason: err.message });
    }
  }

  let eventLoop = null;
  if (wanted('sqlite-eventloop')) {
    log('sqlite: event-loop delay of 500-record batch commits, JS thread vs worker');
    eventLoop = await sqliteEventLoop(audit);
    for (const e of eventLoop) log(`  thread ${e.thread}: commit p50 ${num(e.commitP50ms, 2)} ms, event-loop delay max ${num(e.eventLoopDelayMaxMs, 2)} ms`);
  }

  const cells = subjects.flatMap((subject) => config.inFlight.flatMap((inFlight) => MODES.map((mode) => ({ subject, inFlight, mode, runs: [], errors: [] }))));
  log(`bench:audit — ${cells.length} cells × ${config.repeats} runs, ${config.warmupSeconds}s warm-up + ${config.seconds}s each, data under ${scratchRoot()}`);
  // Repeats interleaved, so a noisy minute on a shared machine spreads over all cells.
  for (let rep = 1; rep <= config.repeats; rep++) {
    for (const cell of cells) {
      const tag = `[${rep}/${config.repeats}] ${cell.subject.id} @${cell.inFlight} ${cell.mode}`;
      try {
        const loadAvg1 = os.loadavg()[0];
        const r = { ...(await runCell(audit, cell.subject, cell.inFlight, cell.mode)), loadAvg1 };
        cell.runs.push(r);
        log(`${tag}: ${num(r.recordsPerSec)} records/s, ${num(r.txPer1000, 1)} tx/1000, p50 ${num(r.p50ms, 2)} ms`);
      } catch (err) {
        cell.errors.push(err.message);
        log(`${tag}: FAILED ${err.stack ?? err.message}`);
      }
    }
  }
  for (const s of subjects) await s.teardown();

  const rows = cells.map((cell) => {
    const m = cell.runs.length ? medianOfRuns(cell.runs) : {};
    const base = cells.find((c) => c.subject === cell.subject && c.inFlight === cell.inFlight && c.mode === 'per-record');
    const baseRate = median(base?.runs.map((r) => r.recordsPerSec) ?? []);
    const baseTx = median(base?.runs.map((r) => r.txPer1000) ?? []);
    return {
      sink: cell.subject.id,
      inFlight: cell.inFlight,
      mode: cell.mode,
      recordsPerSec: m.recordsPerSec ?? null,
      p50ms: m.p50ms ?? null,
      p99ms: m.p99ms ?? null,
      txPer1000: m.txPer1000 ?? null,
      recordsPerTx: m.recordsPerTx ?? null,
      eventLoopDelayP99ms: m.eventLoopDelayP99ms ?? null,
      ratioToPerRecord: m.recordsPerSec && baseRate ? m.recordsPerSec / baseRate : null,
      txRatioToPerRecord: m.txPer1000 && baseTx ? baseTx / m.txPer1000 : null,
      runs: cell.runs,
      errors: cell.errors,
    };
  });

  if (eventLoop) {
    console.log('SQLite, 500-record batch commit: JS thread vs worker');
    console.log(
      formatTable(
        [
          { key: 'thread', title: 'connection on' },
          { key: 'commitP50ms', title: 'commit p50 ms', format: (v) => num(v, 2) },
          { key: 'commitMaxMs', title: 'commit max ms', format: (v) => num(v, 2) },
          { key: 'eventLoopDelayP99ms', title: 'EL delay p99 ms', format: (v) => num(v, 2) },
          { key: 'eventLoopDelayMaxMs', title: 'EL delay max ms', format: (v) => num(v, 2) },
        ],
        eventLoop,
      ),
    );
    console.log('');
  }
  console.log(
    formatTable(
      [
        { key: 'sink', title: 'sink' },
        { key: 'inFlight', title: 'concurrent' },
        { key: 'mode', title: 'mode' },
        { key: 'recordsPerSec', title: 'records/s', format: (v) => num(v) },
        { key: 'p50ms', title: 'p50 ms', format: (v) => num(v, 2) },
        { key: 'p99ms', title: 'p99 ms', format: (v) => num(v, 2) },
        { key: 'txPer1000', title: 'tx/1000 rec', format: (v) => num(v, 1) },
        { key: 'ratioToPerRecord', title: 'x per-record rec/s', format: (v) => ratio(v) },
        { key: 'txRatioToPerRecord', title: 'x fewer tx', format: (v) => ratio(v, 1) },
        { key: 'eventLoopDelayP99ms', title: 'EL p99 ms', format: (v) => num(v, 2) },
      ],
      rows,
    ),
  );
  console.log(
    `\nmedians of ${config.repeats} runs; ${config.seconds}s measured after ${config.warmupSeconds}s warm-up. concurrent = closed loops, ` +
      'each handing over one record and waiting for its commit; p50/p99 = handover to commit. x per-record = records/s over ' +
      'one-commit-per-record at the same concurrency; x fewer tx = transactions per 1,000 records, per-record over this mode.',
  );
  for (const s of skipped) console.log(`  skipped ${s.subject}: ${s.reason}`);

  const partial = config.subjects !== null || Boolean(process.env.BENCH_INFLIGHT);
  const file = writeResults(partial ? 'audit.partial' : 'audit', {
    benchmark: 'audit',
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machineInfo(scratchRoot()),
    config: { ...config, modes: MODES, outputTailBytes: OUTPUT.length },
    subjects: subjects.map((s) => ({ id: s.id, label: s.label })),
    skipped,
    sqliteEventLoop: eventLoop,
    results: rows,
  });
  log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

let finished = false;
process.on('exit', (code) => {
  if (!finished) log(`bench:audit exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
