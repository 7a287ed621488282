// bench:cluster — the write economy of cluster mode: the idle example city on
// three controllers sharing it, for BENCH_CLUSTER_MINUTES of real time, and
// pg-boss 10 running the same 21 orders across three worker processes beside
// it. The goal (the cluster issue's acceptance): database writes per minute
// that do not depend on how often orders fire, 0 per no-op fire.
//
// Cells (design × did-work rate), each on servers of its own, so every
// server-wide counter is that cell's alone:
//   orderly-postgres  3 × `node dist/cli.js run examples/city --state <m_i>
//                     --cluster <pg> --audit <pg> --json`: ownership by
//                     advisory locks, one epoch row per ownership change
//   orderly-etcd      the same with --cluster etcd://… (leases), the audit
//                     still in a PostgreSQL of the cell's own
//   pg-boss           3 × bench/baselines/pg-boss/worker.mjs: a queue per
//                     order, cron schedules and throttled sends, work() on
//                     every queue in every process; pg-boss's defaults
// The bodies are the city's own scripts (lib/sweep.sh): ORDERLY_DEMO_WORK_PERCENT
// of the fires do work (exit 0), the rest find nothing to do (exit 100). At 0%
// every fire is a no-op, the idle city; did-work fires are random, so each
// cell's count is its own (they are counted, not assumed).
//
// Counting, from outside the processes that write (bench/lib/db-stats.mjs):
//   writing tx    PostgreSQL transaction ids assigned (pg_snapshot_xmax):
//                 only a transaction that writes takes one; server-wide.
//                 Autovacuum is left on (the server's default: a design
//                 whose rows churn pays for it), and its ANALYZE takes one;
//                 pg_waldump over the window tells those apart (they write
//                 pg_statistic and pg_class only) and names the tables the
//                 design's own writing transactions wrote
//   etcd revs     the etcd store's revision: +1 per write transaction (a
//                 put, a delete, a txn that wrote); lease keep-alives and
//                 reads leave it alone
//   writes        the design's: writing tx − ANALYZE + etcd revs
//   statements    pg_stat_statements calls in the cell's database, reads
//                 included (orderly's members confirm ownership with a read
//                 every 2 s, pg-boss's workers poll each queue every 2 s):
//                 exact at any instant
//   commits       pg_stat_database.xact_commit, reads included, for the
//                 record: PostgreSQL 15 flushes a backend's commit count only
//                 with other statistics or at exit, so sessions that read no
//                 table show up there late
//   WAL           bytes of WAL generated (insert LSN delta)
//   fires         each member's completed events (orderly: `run --json`;
//                 pg-boss: the worker's handler), counted by completion time
// The window opens BENCH_CLUSTER_WARMUP_SECONDS after the last member said
// it started, so joins, first claims, the hand-over to later joiners and
// schema creation are outside it; they are reported as start-up writes (from
// the server's quiet baseline to the window's start).
//
// Prints the tables on stdout (progress on stderr) and writes
// bench/results/cluster.json (cluster.partial.json for a narrowed run).
// Knobs: BENCH_CLUSTER_MINUTES (10), BENCH_CLUSTER_WARMUP_SECONDS (60),
// BENCH_CLUSTER_CELLS (pg-boss,orderly-postgres,orderly-etcd),
// BENCH_CLUSTER_RATES (did-work percentages, 0,5), BENCH_CLUSTER_MEMBERS (3),
// BENCH_CLUSTER_PARALLEL (cells at once; default all: every cell has its own
// servers, and the counts do not depend on the neighbours), BENCH_TMPDIR.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { envList, envNumber } from './lib/config.mjs';
import { postgresProbe, settle } from './lib/db-stats.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { loadOrderlyDist, repoRoot } from './lib/orderly.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const DESIGNS = ['pg-boss', 'orderly-postgres', 'orderly-etcd'];
const DEFAULTS = { minutes: 10, warmupSeconds: 60, members: 3, rates: [0, 5] };
/** How long a member may take from spawn to its "started" line (schema creation, joining). */
const START_TIMEOUT_MS = 120_000;
/** orderly waits up to its --grace (30 s) for running bodies; pg-boss's stop waits 10 s here. */
const STOP_TIMEOUT_MS = 45_000;
/** Two fires of one order closer than this share of its interval are a double fire. */
const DOUBLE_FIRE_SHARE = 0.5;
const BENCH_DB = 'orderly';

const log = (...args) => console.error(...args);
const config = {
  minutes: envNumber('BENCH_CLUSTER_MINUTES', DEFAULTS.minutes),
  warmupSeconds: envNumber('BENCH_CLUSTER_WARMUP_SECONDS', DEFAULTS.warmupSeconds),
  members: Math.max(1, Math.round(envNumber('BENCH_CLUSTER_MEMBERS', DEFAULTS.members))),
  designs: envList('BENCH_CLUSTER_CELLS', DESIGNS),
  rates: envList('BENCH_CLUSTER_RATES', DEFAULTS.rates.map(String)).map(Number),
  parallel: null,
};
config.parallel = Math.max(1, Math.round(envNumber('BENCH_CLUSTER_PARALLEL', config.designs.length * config.rates.length)));
for (const d of config.designs) if (!DESIGNS.includes(d)) throw new Error(`BENCH_CLUSTER_CELLS: unknown cell ${d} (${DESIGNS.join(', ')})`);
for (const r of config.rates) if (!(r >= 0 && r <= 100)) throw new Error(`BENCH_CLUSTER_RATES: ${r} is not a percentage`);
if (!(config.minutes > 0)) throw new Error('BENCH_CLUSTER_MINUTES must be > 0');
const partial =
  config.designs.length < DESIGNS.length ||
  DEFAULTS.rates.some((r) => !config.rates.includes(r)) ||
  config.minutes < DEFAULTS.minutes ||
  config.members !== DEFAULTS.members;

const cliEntry = path.join(repoRoot, 'dist', 'cli.js');
const cityDir = path.join(repoRoot, 'examples', 'city');
const pgBossWorker = fileURLToPath(new URL('./baselines/pg-boss/worker.mjs', import.meta.url));

// ---------------------------------------------------------------- the city

/** examples/city's scoped orders, with what a non-orderly runner needs to run their bodies the same way. */
async function loadTheCity(orderly) {
  const city = await orderly.loadCity(cityDir);
  if (city.problems.length) throw new Error(`examples/city: ${city.problems.map((p) => p.message).join('; ')}`);
  const scoped = orderly.validateScoped(city.orders, city.rigs);
  const ctx = city.city;
  const orders = scoped.map((o) => {
    const { spec } = o;
    if (spec.trigger !== 'cooldown' || !spec.exec) throw new Error(`examples/city: ${o.scopedName} is not a cooldown exec order; bench:cluster runs those only`);
    const rig = o.rig ?? null;
    const rigPath = rig && ctx?.rigs[rig]?.path ? path.resolve(ctx.dir, ctx.rigs[rig].path) : null;
    // The variables the city's scripts read (PACK_DIR finds lib/sweep.sh,
    // GC_RIG names the rig), where orderly runs them: the rig's directory
    // for a rig order, else the city's. The pg-boss handler runs the same
    // command there with the same variables.
    const env = { ...(spec.packDir ? { PACK_DIR: spec.packDir, GC_PACK_DIR: spec.packDir } : {}), ...(spec.file ? { ORDER_DIR: path.dirname(spec.file) } : {}), GC_RIG: rig ?? '', ...(ctx ? { GC_CITY: ctx.dir, GC_CITY_PATH: ctx.dir } : {}) };
    return {
      scopedName: o.scopedName,
      // pg-boss queue names take letters, digits, _ and -: the scoped name's ':' become '_'.
      queue: o.scopedName.replace(/[^\w-]/g, '_'),
      intervalMs: spec.intervalMs,
      command: spec.exec,
      cwd: rigPath ?? ctx?.dir ?? cityDir,
      env,
    };
  });
  return { rigs: city.rigs, orders };
}

/** Fires a drift-free clock makes in a window of `ms` that starts at an arbitrary point of each cadence: on average, */
const expectedFires = (orders, ms) => orders.reduce((n, o) => n + ms / o.intervalMs, 0);
/** and at least and at most (a short window holds a 5-minute order's fire or not). */
const firesRange = (orders, ms) => [orders.reduce((n, o) => n + Math.floor(ms / o.intervalMs), 0), orders.reduce((n, o) => n + Math.ceil(ms / o.intervalMs), 0)];

// ---------------------------------------------------------------- members

/**
 * One member process: its stdout is JSON lines (orderly's `run --json`, or
 * the pg-boss worker's), kept as events with the time they were read.
 */
function spawnMember({ label, args, env }) {
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const member = {
    label,
    pid: child.pid,
    completed: [],
    cluster: [],
    skipped: new Map(),
    errors: [],
    summary: null,
    startedAt: null,
    stderrTail: '',
    exit: null,
  };
  let onStarted;
  let onFailed;
  member.started = new Promise((resolve, reject) => {
    onStarted = resolve;
    onFailed = reject;
  });
  member.started.catch(() => undefined);
  createInterface({ input: child.stdout }).on('line', (line) => {
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    if (e.type === 'completed') member.completed.push({ at: e.at, startedAt: e.startedAt, scopedName: e.scopedName, outcome: e.outcome });
    else if (e.type === 'started') {
      member.startedAt = Date.now();
      onStarted(member.startedAt);
    } else if (e.type === 'cluster') member.cluster.push({ seenAt: Date.now(), change: e.change, message: e.message });
    else if (e.type === 'skipped') member.skipped.set(e.reason, (member.skipped.get(e.reason) ?? 0) + 1);
    else if (e.type === 'error') member.errors.push({ at: e.at ?? Date.now(), code: e.code, message: e.message });
    else if (e.type === 'summary') member.summary = e;
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    member.stderrTail = `${member.stderrTail}${line}\n`.slice(-4096);
    log(`  [${label}] ${line}`);
  });
  member.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      member.exit = { code, signal };
      onFailed(new Error(`${label} exited (code ${code}, signal ${signal}) before it started:\n${member.stderrTail}`));
      resolve(member.exit);
    }),
  );
  member.stop = async () => {
    if (member.exit) return member.exit;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const how = await member.exited;
    clearTimeout(timer);
    return how;
  };
  return member;
}

function memberArgs(design, i, { pg, etcd, stateDir, spec }) {
  if (design === 'pg-boss') return [pgBossWorker, JSON.stringify({ ...spec, url: pg.url, member: `m${i}` })];
  const cluster = design === 'orderly-etcd' ? etcd.url : pg.url;
  return [cliEntry, 'run', cityDir, '--state', path.join(stateDir, `m${i}`), '--cluster', cluster, '--audit', pg.url, '--json'];
}

// ---------------------------------------------------------------- counters

/**
 * pg_stat_statements counts every statement when it ends, in shared memory:
 * exact at any instant, where pg_stat_database.xact_commit is not. PostgreSQL
 * 15 holds a backend's commit count back until the backend has other
 * statistics to flush (a table it read or wrote) or exits, so a session that
 * only reads pg_locks every 2 s, as an orderly member confirming its
 * ownership does, shows up in xact_commit late, mostly at its exit. Both are
 * printed; statements/min is the exact one.
 */
const PG_SETTINGS = {
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.max': 10000,
  // The window's WAL is read back with pg_waldump after the window: a
  // checkpoint inside it must not recycle the segments it starts in. Keeping
  // segments changes what the server keeps on disk, not what it writes.
  wal_keep_size: '1GB',
};

/**
 * The cell's counters at one instant. Everything is read over the probes'
 * own connections to the `postgres` database, so nothing they do counts in
 * the bench database they read.
 */
async function sampler(pgServer, etcd) {
  const { default: pg } = await import('pg');
  const probe = await postgresProbe(pgServer);
  const stats = new pg.Client({ connectionString: pgServer.url.replace(/\/[^/]*$/, '/postgres'), application_name: 'bench-probe' });
  await stats.connect();
  // Before the baseline, in the probes' database: its own writes are not the cell's.
  await stats.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  return {
    probe,
    async sample() {
      const s = await probe.sample();
      const db = (
        await stats.query(
          `SELECT d.xact_commit::text AS commits, d.xact_rollback::text AS rollbacks,
                  (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements(false) s WHERE s.dbid = d.datid)::text AS statements,
                  (SELECT dealloc FROM pg_stat_statements_info)::text AS evictions
             FROM pg_stat_database d WHERE d.datname = $1`,
          [BENCH_DB],
        )
      ).rows[0];
      return {
        at: Date.now(),
        xids: s.commits,
        walBytes: s.bytes,
        lsn: s.lsn,
        xactCommit: Number(db?.commits ?? 0),
        xactRollback: Number(db?.rollbacks ?? 0),
        statements: Number(db?.statements ?? 0),
        statementEvictions: Number(db?.evictions ?? 0),
        etcdRevision: etcd ? await etcd.revision() : null,
        serverCpuMs: s.serverCpuMs,
      };
    },
    async close() {
      await probe.close().catch(() => undefined);
      await stats.end().catch(() => undefined);
    },
  };
}

function diff(a, b) {
  return {
    seconds: (b.at - a.at) / 1000,
    xids: b.xids - a.xids,
    walBytes: b.walBytes - a.walBytes,
    xactCommit: b.xactCommit - a.xactCommit,
    xactRollback: b.xactRollback - a.xactRollback,
    statements: b.statements - a.statements,
    statementEvictions: b.statementEvictions - a.statementEvictions,
    etcdRevisions: a.etcdRevision === null ? null : b.etcdRevision - a.etcdRevision,
    serverCpuMs: a.serverCpuMs != null && b.serverCpuMs != null ? b.serverCpuMs - a.serverCpuMs : null,
  };
}

/**
 * What autovacuum's ANALYZE writes under its transaction id: pg_statistic
 * (its TOAST table and indexes resolve to it) and the table's pg_class row.
 * Neither design runs ANALYZE, and a design's DDL writes more catalogs than
 * these two, so a transaction that wrote pg_statistic and nothing else but
 * pg_class is autovacuum's.
 */
const ANALYZE_FOOTPRINT = new Set(['pg_catalog.pg_statistic', 'pg_catalog.pg_class']);
const isAnalyze = (tables) => {
  const bare = tables.map((t) => t.replace(/^[^:]*:/, ''));
  return bare.includes('pg_catalog.pg_statistic') && bare.every((t) => ANALYZE_FOOTPRINT.has(t));
};

/**
 * Who wrote the WAL between two positions: every writing transaction of
 * the window, named by the tables its records touched (pg_waldump; indexes
 * and TOAST tables resolve to their table). It separates the server's own
 * transactions, autovacuum's ANALYZE (which takes a transaction id to
 * rewrite pg_statistic, after a design's rows changed enough), from the
 * design's, and says which tables the design's writes went to. Records
 * without a transaction (checkpoints, the standby snapshot, vacuum, page
 * pruning) are the server's too, and are only summed.
 */
async function walWriters(pgServer, from, to) {
  // pg_waldump finds no record in an empty range, and says so as an error.
  if (from === to) return { xids: 0, analyze: 0, analyzeBytes: 0, writers: [], untrackedBytes: 0, untracked: '' };
  const { postgresBinDir } = await import('../test/support/servers.mjs');
  const child = spawn(path.join(postgresBinDir(), 'pg_waldump'), ['-p', path.join(pgServer.dataDir, 'pg_wal'), '-s', from, '-e', to], { stdio: ['ignore', 'pipe', 'pipe'] });
  const xids = new Map();
  const untracked = new Map();
  let untrackedBytes = 0;
  let records = 0;
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = `${stderr}${d}`.slice(-2000)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*(\d+), lsn: \S+, prev \S+, desc: (\S+)(.*)$/.exec(line);
    if (!m) return;
    records++;
    const [, rmgr, bytes, tx, kind, rest] = m;
    if (tx === '0') {
      untrackedBytes += Number(bytes);
      untracked.set(`${rmgr} ${kind}`, (untracked.get(`${rmgr} ${kind}`) ?? 0) + 1);
      return;
    }
    let x = xids.get(tx);
    if (!x) xids.set(tx, (x = { rels: new Set(), bytes: 0 }));
    x.bytes += Number(bytes);
    for (const r of rest.matchAll(/rel \d+\/(\d+)\/(\d+)/g)) x.rels.add(`${r[1]}/${r[2]}`);
  });
  const [code] = await new Promise((resolve) => child.once('close', (...a) => resolve(a)));
  // pg_waldump stops with an error at the end of the WAL written so far: what it read is still right.
  if (code !== 0 && records === 0) throw new Error(stderr.trim().split('\n').at(-1));

  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: pgServer.url, application_name: 'bench-probe' });
  await c.connect();
  let names;
  let dbOid;
  let databases;
  try {
    const dbs = (await c.query('SELECT oid::text AS oid, datname, datname = current_database() AS current FROM pg_database')).rows;
    databases = new Map(dbs.map((d) => [d.oid, d.datname]));
    dbOid = dbs.find((d) => d.current).oid;
    const { rows } = await c.query(
      `WITH base AS (
         SELECT pg_relation_filenode(c.oid) AS filenode, COALESCE(i.indrelid, c.oid) AS rel
           FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
       ), owned AS (
         SELECT b.filenode, COALESCE(t.oid, b.rel) AS rel FROM base b LEFT JOIN pg_class t ON t.reltoastrelid = b.rel
       )
       SELECT o.filenode::text AS filenode, n.nspname || '.' || c.relname AS name, c.relisshared AS shared
         FROM owned o JOIN pg_class c ON c.oid = o.rel JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE o.filenode IS NOT NULL`,
    );
    names = new Map(rows.map((r) => [`${r.shared ? '0' : dbOid}/${r.filenode}`, r.name]));
  } finally {
    await c.end();
  }
  // Another database's system catalogs (autovacuum visits template1 and
  // postgres too) have the filenodes they were created with in template1,
  // as the bench database's do: named after those, with the database's name.
  const FIRST_USER_OID = 16384;
  const nameOf = (rel) => {
    const [db, filenode] = rel.split('/');
    if (db === dbOid || db === '0') return (names.get(rel) ?? `relation ${rel}`).replace(/\.j[0-9a-f]{56}$/, '.j<queue>');
    const other = databases.get(db) ?? `database ${db}`;
    return `${other}:${(Number(filenode) < FIRST_USER_OID && names.get(`${dbOid}/${filenode}`)) || `relation ${filenode}`}`;
  };
  const writers = new Map();
  let analyze = 0;
  let analyzeBytes = 0;
  for (const x of xids.values()) {
    const tables = [...new Set([...x.rels].map(nameOf))].sort();
    if (isAnalyze(tables)) {
      analyze++;
      analyzeBytes += x.bytes;
      continue;
    }
    const key = tables.join(' + ') || '(no table: commit or abort only)';
    const w = writers.get(key) ?? { tables: key, xids: 0, bytes: 0 };
    w.xids++;
    w.bytes += x.bytes;
    writers.set(key, w);
  }
  return {
    xids: xids.size,
    analyze,
    analyzeBytes,
    writers: [...writers.values()].sort((a, b) => b.xids - a.xids),
    untrackedBytes,
    untracked: [...untracked].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`).join(', '),
  };
}

// ---------------------------------------------------------------- one cell

async function runCell({ design, pct, orders }) {
  const label = `${design} at ${pct}%`;
  const { startPostgres, startEtcd } = await import('../test/support/servers.mjs');
  const servers = [];
  const members = [];
  const state = design === 'pg-boss' ? null : scratchDir(`cluster-${design}-${pct}`);
  let counters;
  try {
    const pgServer = await startPostgres({ baseDir: scratchRoot(), settings: PG_SETTINGS });
    servers.push(pgServer);
    let etcd = null;
    if (design === 'orderly-etcd') {
      etcd = await startEtcd({ baseDir: scratchRoot() });
      servers.push(etcd);
    }
    log(`${label}: PostgreSQL ${pgServer.url}${etcd ? `, etcd ${etcd.url}` : ''}`);
    counters = await sampler(pgServer, etcd);
    const s = await settle(counters.probe);
    if (!s.settled) log(`${label}: the server did not settle within 10 s; its background writes count as start-up`);
    const base = await counters.sample();

    const env = { ...process.env, ORDERLY_DEMO_WORK_PERCENT: String(pct) };
    const spec = { orders };
    for (let i = 0; i < config.members; i++) {
      members.push(spawnMember({ label: `${design}/${pct}%/m${i}`, args: memberArgs(design, i, { pg: pgServer, etcd, stateDir: state?.path, spec }), env }));
    }
    const startTimeout = sleep(START_TIMEOUT_MS, 'timeout', { ref: false });
    const ready = await Promise.race([Promise.all(members.map((m) => m.started)), startTimeout]);
    if (ready === 'timeout') throw new Error(`${label}: not every member started within ${START_TIMEOUT_MS / 1000} s`);
    const allStarted = Math.max(...members.map((m) => m.startedAt));
    log(`${label}: ${members.length} members started; warm-up ${config.warmupSeconds} s, then ${config.minutes} min measured`);
    await sleep(Math.max(0, allStarted + config.warmupSeconds * 1000 - Date.now()));

    const t0 = await counters.sample();
    const windowMs = config.minutes * 60_000;
    const marks = [t0];
    for (let k = 1; k * 60_000 < windowMs; k++) {
      await sleep(Math.max(0, t0.at + k * 60_000 - Date.now()));
      marks.push(await counters.sample());
      const m = diff(marks.at(-2), marks.at(-1));
      log(`${label}: minute ${k}: ${m.xids} writing tx, ${m.etcdRevisions ?? '—'} etcd revisions, ${m.statements} statements, ${kib(m.walBytes)} KiB WAL`);
    }
    await sleep(Math.max(0, t0.at + windowMs - Date.now()));
    const t1 = await counters.sample();
    marks.push(t1);
    const window = diff(t0, t1);
    const wal = await walWriters(pgServer, t0.lsn, t1.lsn).catch((err) => ({ error: err.message }));
    if (wal.error) log(`${label}: could not attribute the window's WAL: ${wal.error}`);

    // A member that died during the run leaves fewer members than the cell
    // claims to measure, and its shards or queues to the others: not a figure to quote.
    const died = members.filter((m) => m.exit);
    if (died.length) {
      throw new Error(`${label}: ${died.map((m) => `${m.label} exited (code ${m.exit.code}, signal ${m.exit.signal})`).join(', ')} during the run:\n${died.map((m) => m.stderrTail).join('\n')}`);
    }
    log(`${label}: stopping the members`);
    const exits = await Promise.all(members.map((m) => m.stop()));

    const inWindow = (e) => e.at >= t0.at && e.at < t1.at;
    const fires = members.flatMap((m) => m.completed);
    const windowFires = fires.filter(inWindow);
    const perMinute = marks.slice(1).map((mk, i) => {
      const d = diff(marks[i], mk);
      return { minute: i, ...d, fires: fires.filter((e) => e.at >= marks[i].at && e.at < mk.at).length };
    });
    return {
      design,
      didWorkPct: pct,
      members: members.length,
      loadAvg1: os.loadavg()[0],
      window: {
        ...window,
        fires: windowFires.length,
        noOpFires: windowFires.filter((e) => e.outcome === 'no-op').length,
        didWorkFires: windowFires.filter((e) => e.outcome === 'did-work').length,
        failedFires: windowFires.filter((e) => e.outcome !== 'no-op' && e.outcome !== 'did-work').length,
        expectedFires: expectedFires(orders, t1.at - t0.at),
        expectedRange: firesRange(orders, t1.at - t0.at),
        firesByMember: members.map((m) => m.completed.filter(inWindow).length),
        ownershipChanges: members.flatMap((m) => m.cluster.filter((c) => c.seenAt >= t0.at && c.seenAt < t1.at && c.change !== 'joined')).length,
        wal,
      },
      startup: { ...diff(base, t0), fires: fires.filter((e) => e.at < t0.at).length },
      perMinute,
      doubleFires: doubleFires(fires, orders),
      processes: members.map((m, i) => ({
        label: m.label,
        fires: m.completed.length,
        skipped: Object.fromEntries(m.skipped),
        errors: m.errors,
        ownershipChanges: m.cluster,
        summary: m.summary,
        exit: exits[i],
      })),
    };
  } finally {
    await Promise.all(members.map((m) => m.stop().catch(() => undefined)));
    await counters?.close();
    for (const s of servers.reverse()) await s.stop().catch((err) => log(`${label}: stopping a server: ${err.message}`));
    state?.remove();
  }
}

/** Fires of one order closer together than half its interval: two members (or workers) firing it at once. */
function doubleFires(fires, orders) {
  const interval = new Map(orders.map((o) => [o.scopedName, o.intervalMs]));
  const byOrder = new Map();
  for (const f of fires) {
    if (!byOrder.has(f.scopedName)) byOrder.set(f.scopedName, []);
    byOrder.get(f.scopedName).push(f.startedAt ?? f.at);
  }
  let n = 0;
  for (const [name, starts] of byOrder) {
    starts.sort((a, b) => a - b);
    for (let i = 1; i < starts.length; i++) if (starts[i] - starts[i - 1] < DOUBLE_FIRE_SHARE * (interval.get(name) ?? 0)) n++;
  }
  return n;
}

// ---------------------------------------------------------------- figures

const kib = (bytes) => (bytes === null || bytes === undefined ? '—' : num(bytes / 1024, 1));

function figures(c) {
  const w = c.window;
  const minutes = w.seconds / 60;
  const perMin = (v) => (v === null || v === undefined ? null : v / minutes);
  // The server's own ANALYZE transactions are no design's writes; etcd
  // revisions are writes as much as PostgreSQL's. Without the WAL
  // attribution every writing transaction counts as the design's.
  const analyze = w.wal?.error ? null : w.wal.analyze;
  const writes = w.xids - (analyze ?? 0) + (w.etcdRevisions ?? 0);
  return {
    design: c.design,
    didWorkPct: c.didWorkPct,
    members: c.members,
    minutes,
    fires: w.fires,
    noOpFires: w.noOpFires,
    didWorkFires: w.didWorkFires,
    firesPerMin: perMin(w.fires),
    expectedFiresPerMin: perMin(w.expectedFires),
    xids: w.xids,
    xidsPerMin: perMin(w.xids),
    analyzeXids: analyze,
    analyzeXidsPerMin: perMin(analyze),
    etcdRevisions: w.etcdRevisions,
    etcdRevisionsPerMin: perMin(w.etcdRevisions),
    writes,
    writesPerMin: perMin(writes),
    statementsPerMin: perMin(w.statements),
    commitsPerMin: perMin(w.xactCommit),
    walKiBPerMin: perMin(w.walBytes / 1024),
    writesPerFire: w.fires > 0 ? writes / w.fires : null,
    // Exact only where every fire was a no-op: with did-work fires in the
    // window, no counter says which writes a no-op fire caused.
    writesPerNoOpFire: w.fires > 0 && w.noOpFires === w.fires ? writes / w.fires : null,
    ownershipChanges: w.ownershipChanges,
    doubleFires: c.doubleFires,
    serverCpuMsPerMin: perMin(w.serverCpuMs),
  };
}

/** "3× pgboss.j<queue>, 1× pgboss.version": the design's writing transactions by the tables they wrote. */
function writersText(wal, limit = 6) {
  if (!wal || wal.error) return `not attributed (${wal?.error ?? 'no WAL read'})`;
  if (!wal.writers.length) return 'none';
  const shown = wal.writers.slice(0, limit).map((w) => `${w.xids}× ${w.tables}`);
  const rest = wal.writers.slice(limit).reduce((n, w) => n + w.xids, 0);
  return `${shown.join(', ')}${rest ? `, ${rest}× other` : ''}`;
}

// ---------------------------------------------------------------- driver

async function main() {
  const started = performance.now();
  const date = new Date().toISOString();
  const orderly = await loadOrderlyDist({ log });
  const { rigs, orders } = await loadTheCity(orderly);
  const cells = config.rates.flatMap((pct) => config.designs.map((design) => ({ design, pct })));
  log(
    `bench:cluster — ${orders.length} scoped orders on ${rigs.length} rigs (${num(expectedFires(orders, 60_000), 2)} fires/min), ` +
      `${config.members} members per cell, cells ${cells.map((c) => `${c.design}@${c.pct}%`).join(', ')} (${config.parallel} at once), ` +
      `warm-up ${config.warmupSeconds} s + ${config.minutes} min each, data under ${scratchRoot()}`,
  );

  const results = [];
  const errors = [];
  const todo = [...cells];
  const running = new Set();
  while (todo.length || running.size) {
    while (todo.length && running.size < config.parallel) {
      const { design, pct } = todo.shift();
      const p = runCell({ design, pct, orders })
        .then((r) => {
          results.push(r);
          const f = figures(r);
          log(`${design} at ${pct}%: ${f.fires} fires in ${num(f.minutes, 1)} min, ${r.window.xids} writing tx, ${r.window.etcdRevisions ?? '—'} etcd revisions, ${r.window.xactCommit} commits`);
        })
        .catch((err) => {
          errors.push({ design, didWorkPct: pct, error: err.message });
          log(`${design} at ${pct}%: FAILED ${err.stack ?? err.message}`);
        })
        .finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.race(running);
  }

  // ------------------------------------------------------------ report
  const order = (a, b) => a.didWorkPct - b.didWorkPct || DESIGNS.indexOf(a.design) - DESIGNS.indexOf(b.design);
  results.sort(order);
  const rows = results.map(figures);
  const find = (design, pct) => rows.find((r) => r.design === design && r.didWorkPct === pct);

  const m = machineInfo(scratchRoot());
  const command = commandLine({ prefixes: ['BENCH_'] });
  console.log(`bench:cluster — ${date.slice(0, 16).replace('T', ' ')} UTC, \`${command}\``);
  console.log(`machine: ${m.cores} cores (${m.cpuModel}), ${Math.round(m.memoryBytes / 2 ** 30)} GiB, ${m.platform}, node ${m.node}${m.dataFilesystem ? `, data on ${m.dataFilesystem.fstype}` : ''}`);
  console.log(
    `city: examples/city, ${orders.length} scoped orders on ${rigs.length} rigs (${num(expectedFires(orders, 60_000), 2)} fires/min on a drift-free clock), ` +
      `bodies lib/sweep.sh; ${config.members} members per cell; ${config.minutes} min measured after a ${config.warmupSeconds} s warm-up`,
  );
  console.log('');
  console.log(`The measured window: totals, and rates per minute (writes = the design's PostgreSQL writing transactions + etcd revisions)`);
  console.log(
    formatTable(
      [
        { key: 'design', title: 'cell' },
        { key: 'didWorkPct', title: 'did work', format: (v) => `${v}%` },
        { key: 'fires', title: 'fires', format: (v) => num(v) },
        { key: 'noOpFires', title: 'no-op fires', format: (v) => num(v) },
        { key: 'firesPerMin', title: 'fires/min', format: (v) => num(v, 2) },
        { key: 'xidsPerMin', title: 'writing tx/min', format: (v) => num(v, 2) },
        { key: 'analyzeXidsPerMin', title: 'of them ANALYZE/min', format: (v) => num(v, 2) },
        { key: 'etcdRevisionsPerMin', title: 'etcd revs/min', format: (v) => num(v, 2) },
        { key: 'writesPerMin', title: 'writes/min', format: (v) => num(v, 2) },
        { key: 'statementsPerMin', title: 'statements/min', format: (v) => num(v, 1) },
        { key: 'commitsPerMin', title: 'commits/min', format: (v) => num(v, 1) },
        { key: 'walKiBPerMin', title: 'WAL KiB/min', format: (v) => num(v, 1) },
        { key: 'writesPerFire', title: 'writes/fire', format: (v) => num(v, 3) },
        { key: 'writesPerNoOpFire', title: 'writes/no-op fire', format: (v) => num(v, 3) },
        { key: 'ownershipChanges', title: 'ownership changes', format: (v, r) => (r.design === 'pg-boss' ? '—' : num(v)) },
        { key: 'doubleFires', title: 'double fires', format: (v) => num(v) },
      ],
      rows,
    ),
  );
  console.log('  writing tx = transaction ids the server assigned, all of them; "of them ANALYZE" = autovacuum\'s, told apart by their WAL');
  console.log('  (they rewrite pg_statistic only) and not counted in writes; statements = pg_stat_statements calls, reads included (exact);');
  console.log('  commits = pg_stat_database.xact_commit, reads included, but late for sessions that read no table (see the notes).');
  console.log('  writes/no-op fire only where every fire was a no-op.');

  console.log('');
  console.log("What the design's writing transactions in the window wrote (pg_waldump: by the tables their WAL records touched)");
  for (const c of results) console.log(`  ${c.design} at ${c.didWorkPct}%: ${writersText(c.window.wal)}`);

  console.log('');
  console.log('Start-up: from the quiet server to the window (members joining, schema, first claims and fires, warm-up)');
  console.log(
    formatTable(
      [
        { key: 'design', title: 'cell' },
        { key: 'didWorkPct', title: 'did work', format: (v) => `${v}%` },
        { key: 'seconds', title: 'seconds', format: (v) => num(v, 0) },
        { key: 'fires', title: 'fires', format: (v) => num(v) },
        { key: 'xids', title: 'writing tx', format: (v) => num(v) },
        { key: 'etcdRevisions', title: 'etcd revs', format: (v) => num(v) },
        { key: 'statements', title: 'statements', format: (v) => num(v) },
        { key: 'xactCommit', title: 'commits', format: (v) => num(v) },
        { key: 'walBytes', title: 'WAL KiB', format: (v) => kib(v) },
      ],
      results.map((c) => ({ design: c.design, didWorkPct: c.didWorkPct, ...c.startup })),
    ),
  );

  // Minute by minute: writes that follow the fires, or do not.
  if (results.length) {
    const minutes = Math.max(...results.map((c) => c.perMinute.length));
    const columns = [{ key: 'minute', title: 'min' }];
    for (const c of results) {
      columns.push({ key: `${c.design}/${c.didWorkPct}/f`, title: `${c.design} ${c.didWorkPct}% fires`, format: (v) => num(v) });
      columns.push({ key: `${c.design}/${c.didWorkPct}/w`, title: 'tx+revs', format: (v) => num(v) });
    }
    const minuteRows = Array.from({ length: minutes }, (_, i) => {
      const row = { minute: i };
      for (const c of results) {
        const pm = c.perMinute[i];
        row[`${c.design}/${c.didWorkPct}/f`] = pm?.fires ?? null;
        row[`${c.design}/${c.didWorkPct}/w`] = pm ? pm.xids + (pm.etcdRevisions ?? 0) : null;
      }
      return row;
    });
    console.log('');
    console.log('Minute by minute: fires, and writing transactions + etcd revisions as the servers counted them (ANALYZE included)');
    console.log(formatTable(columns, minuteRows));
  }

  console.log('');
  console.log('pg-boss against orderly, writes per minute (pg-boss ÷ orderly; "all" = orderly made none):');
  const ratios = [];
  for (const pct of config.rates) {
    const boss = find('pg-boss', pct);
    for (const design of ['orderly-postgres', 'orderly-etcd']) {
      const o = find(design, pct);
      if (!boss || !o) continue;
      const r = o.writesPerMin > 0 ? boss.writesPerMin / o.writesPerMin : null;
      ratios.push({ didWorkPct: pct, design, pgBossWritesPerMin: boss.writesPerMin, orderlyWritesPerMin: o.writesPerMin, ratio: r });
      console.log(
        `  ${pct}% did work, ${design}: pg-boss ${num(boss.writesPerMin, 2)}/min against ${num(o.writesPerMin, 2)}/min = ${r === null ? (boss.writesPerMin > 0 ? 'all' : '—') : `${ratio(r, 1)} fewer`}` +
          ` (statements: ${num(boss.statementsPerMin, 1)} against ${num(o.statementsPerMin, 1)}/min)`,
      );
    }
  }
  if (!ratios.length) console.log('  — (needs pg-boss and an orderly cell at the same did-work rate)');

  // ------------------------------------------------------------ the goal
  const checks = [];
  for (const design of ['orderly-postgres', 'orderly-etcd']) {
    for (const pct of config.rates) {
      const r = find(design, pct);
      if (!r) continue;
      const w = results.find((x) => x.design === design && x.didWorkPct === pct).window;
      const server = w.wal?.error
        ? `; the WAL could not be attributed (${w.wal.error}), so every writing transaction counts as orderly's`
        : `; the server's own: ${w.wal.analyze} autovacuum ANALYZE transaction(s) and ${kib(w.wal.untrackedBytes)} KiB of WAL without a transaction (${w.wal.untracked || 'none'})`;
      const wrote = w.wal?.error ? '' : `; orderly's writing transactions wrote: ${writersText(w.wal)}`;
      if (pct === 0) {
        checks.push({
          pass: r.fires > 0 && r.writes === 0 && r.doubleFires === 0,
          subject: `${design}, idle city`,
          detail:
            `${r.writes} writes (${r.xids - (r.analyzeXids ?? 0)} PostgreSQL writing transactions of orderly's, ${r.etcdRevisions ?? 0} etcd revisions) over ${r.fires} no-op fires in ${num(r.minutes, 1)} min ` +
            `= ${num(r.writesPerNoOpFire, 3)} per no-op fire; ${r.doubleFires} double fires; ${r.ownershipChanges} ownership changes${wrote}${server}`,
        });
      } else {
        // With did-work fires the audit writes: at most one transaction per
        // did-work fire (group commit may share one), none for the no-ops.
        checks.push({
          pass: r.writes <= r.didWorkFires && r.doubleFires === 0,
          subject: `${design}, ${pct}% did work`,
          detail: `${r.writes} writes for ${r.didWorkFires} did-work and ${r.noOpFires} no-op fires (goal: at most one per did-work fire); ${r.doubleFires} double fires; ${r.ownershipChanges} ownership changes${wrote}${server}`,
        });
      }
    }
  }
  console.log('');
  console.log('goal: 0 writes per no-op fire (writes per minute independent of the number of fires):');
  if (!checks.length) console.log('  not evaluated: no orderly cell ran');
  for (const c of checks) console.log(`  ${c.pass ? 'MET    ' : 'NOT MET'}  ${c.subject}: ${c.detail}`);
  const idle = checks.filter((c) => c.subject.endsWith('idle city'));
  if (idle.length) console.log(`verdict: goal "0 writes per no-op fire" ${idle.every((c) => c.pass) ? 'met' : 'NOT met'} (${idle.map((c) => `${c.subject.split(',')[0]}: ${c.pass ? 'met' : 'not met'}`).join(', ')})`);

  const firesOff = results.filter((c) => c.window.fires < c.window.expectedRange[0] || c.window.fires > c.window.expectedRange[1]);
  const evicted = results.filter((c) => c.window.statementEvictions > 0);
  const duration = (performance.now() - started) / 1000;
  const loads = results.map((c) => c.loadAvg1);
  console.log('');
  console.log(
    [
      'Notes: writing tx = PostgreSQL transaction ids assigned (pg_snapshot_xmax, read without taking one): only a transaction that writes',
      "takes one. Autovacuum is on (the server's default): its ANALYZE takes one to rewrite pg_statistic after a table's rows changed",
      "enough (orderly's start-up claims, pg-boss's job rows); pg_waldump tells those apart, and they are not counted as the design's.",
      'etcd revs = the etcd revision counter (+1 per write; lease keep-alives and reads do not move it).',
      'statements = pg_stat_statements calls in the database (exact, reads included): orderly members confirm ownership with a read',
      "every 2 s; pg-boss's workers poll every queue every 2 s. commits = pg_stat_database.xact_commit (reads included): PostgreSQL 15",
      'flushes a backend\'s commit count only with other statistics (a table read or written) or at its exit, so sessions that read no',
      "table (orderly's confirm reads pg_locks) appear there late; it is printed for the record. WAL = bytes of WAL generated (insert",
      "LSN delta), the server's own records (checkpoints, standby snapshots, vacuum) included.",
      'pg-boss 10 runs with its defaults: schema migration at start, maintenance every 120 s (expire, archive, drop; one instance',
      'at a time), the cron monitor every 30 s feeding its __pgboss__send-it queue, 2 s polling. Orders of whole minutes dividing an',
      'hour are cron schedule()s; shorter ones (30 s) are sendThrottled() from a timer in every worker: one job per 30 s slot. Every',
      'job is a fire; exit 100 and exit 0 both complete it.',
      'Fires are counted by completion time in the window; double fires = two fires of one order less than half its interval apart',
      `(whole run). Each cell has its own servers; ${config.parallel} cell(s) ran at once on ${m.cores} cores` +
        `${loads.length ? ` (load average ${num(Math.min(...loads), 1)}–${num(Math.max(...loads), 1)})` : ''}. Whole run: ${num(duration / 60, 1)} min.`,
    ].join('\n'),
  );
  for (const c of firesOff) {
    const [lo, hi] = c.window.expectedRange;
    console.log(`  ${c.design} at ${c.didWorkPct}%: ${c.window.fires} fires in the window, where a drift-free clock makes ${lo}–${hi} (fires late or missing, or more than the cadence)`);
  }
  for (const c of evicted) console.log(`  ${c.design} at ${c.didWorkPct}%: pg_stat_statements evicted entries ${c.window.statementEvictions} time(s): its statement count is low`);
  // Skips (not-owner during a hand-over) and error events over the whole run: a fenced record or an engine error would show here.
  for (const c of results) {
    const skipped = new Map();
    for (const p of c.processes) for (const [reason, n] of Object.entries(p.skipped)) skipped.set(reason, (skipped.get(reason) ?? 0) + n);
    const events = c.processes.flatMap((p) => p.errors);
    if (!skipped.size && !events.length) continue;
    const what = [...[...skipped].map(([reason, n]) => `${n} skipped (${reason})`), ...(events.length ? [`${events.length} error event(s), the first ${events[0].code}: ${events[0].message}`] : [])];
    console.log(`  ${c.design} at ${c.didWorkPct}%, whole run: ${what.join('; ')}`);
  }
  for (const e of errors) console.log(`  error in ${e.design} at ${e.didWorkPct}%: ${e.error.split('\n')[0]}`);

  const file = writeResults(partial ? 'cluster.partial' : 'cluster', {
    benchmark: 'cluster',
    date,
    finishedAt: new Date().toISOString(),
    durationSeconds: duration,
    command,
    machine: m,
    config: { ...config, orders: orders.map(({ scopedName, intervalMs }) => ({ scopedName, intervalMs })), rigs },
    versions: { pgBoss: createRequire(import.meta.url)('pg-boss/package.json').version },
    errors,
    results: rows,
    cells: results,
    ratios,
    acceptance: checks,
  });
  log(`\nwrote ${path.relative(process.cwd(), file)} in ${num(duration / 60, 1)} min`);
  if (checks.some((c) => !c.pass) || errors.length) process.exitCode = 1;
}

let finished = false;
process.on('exit', (code) => {
  if (!finished) log(`bench:cluster exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
