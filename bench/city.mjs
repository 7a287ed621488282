// bench:city — the seed's idle 3-rig city (seeds/order-dispatch-decouple-
// proposal.txt §2, §6, §11, §13), run for one simulated hour by orderly and by
// today's tracking-bead dispatcher, against SQLite, PostgreSQL and MariaDB,
// counting what each database says it committed and wrote.
//
// The city: examples/city's order files (6 city orders, 5 rig orders × 3
// rigs = 21 scoped orders, ~15.9 fires/min: the seed's "~16 tracking-bead
// lifecycles/min"). Bodies are in-process no-ops (code orders) that report
// did-work for 0%, 5% or 50% of fires, chosen by a seeded hash of (order,
// fire number), so every design sees the same did-work fires.
//
// Designs (each cell in a fresh child process, bench/lib/city-cell.mjs):
//   orderly        Controller with the real audit sink of that database
//                  (sqlite:<file>, postgres://, mysql://)
//   tracking-bead  bench/baselines/tracking-bead: a row per fire, 4 commits
//                  per lifecycle, lastRun read back from the newest row
//   bundle         the same with the §13 bundle: outcome + close in one
//                  transaction, 2 commits per fire
//
// The accelerated clock: every interval is divided by K (CITY_SPEEDUP,
// default 60: the hour takes 60 s). For cooldown orders whose bodies are
// instant that is exactly a clock K times faster, except for what runs on
// the wall clock: a timer firing late delays that order's later fires by as
// much (cooldown runs from a fire's start), 2 ms in 500 at K=60 and in
// 30,000 in real time; which completions meet in one audit transaction
// depends on the milliseconds between them; the servers' own background
// statistics run on wall time (off here, see PG_SETTINGS). A real-time run of
// one pair of cells (CITY_REALTIME_MINUTES, default 2, at K=1) is the check:
// its fires and commits per minute are compared with the same simulated
// minutes of the accelerated cells, and cells that fired less than a
// drift-free clock would have are named.

// Counting: commits and bytes as the database reports them, read from
// outside the cell's process (bench/lib/db-stats.mjs):
//   SQLite      commit frames and frames appended to the -wal file;
//               bytes = frames × (page size + 24)
//   PostgreSQL  transaction ids assigned (pg_snapshot_xmax, read without
//               taking one); bytes = WAL generated (insert LSN delta)
//   MariaDB     read-write transactions (InnoDB's transaction id counter, two
//               numbers per transaction); bytes = Innodb_os_log_written
// and beside them the client's own count (transactions the design committed;
// orderly: audit sink transactions). Each PostgreSQL and MariaDB cell has its
// server to itself while it runs (one server per design, its cells one after
// the other, a fresh database each), so server-wide counters are the cell's.
//
// Scheduling of the matrix: the cells of one did-work rate run at once (9
// processes, 6 servers, one disk; CITY_PARALLEL), the next rate's starting as
// they end; then the real-time pair alone. Counts do not depend on the
// neighbours; CPU a little and latency more do on a 2-core machine (their
// fsyncs share one journal), so those are quoted as measured under that load
// (the printed notes say so, with the load average).
//
// Prints the tables on stdout (progress on stderr) and writes
// bench/results/city.json (city.partial.json for a narrowed run).
// Knobs: CITY_SPEEDUP (60), CITY_SIM_MINUTES (60), CITY_REALTIME_MINUTES (2;
// 0 skips), CITY_REALTIME_CELL (db:pct, default mariadb:50), CITY_RATES
// (0,5,50), CITY_DESIGNS, CITY_DBS, CITY_SEED, CITY_MINUTES_DB (the database
// of the per-minute table), CITY_PARALLEL (cells at once, default 9: one
// did-work rate; 1 runs them one by one, for latency figures free of
// neighbours), CITY_QUICK=1 (10 simulated minutes, 1 real-time minute),
// BENCH_TMPDIR, ORDERLY_ENTRY.
import { fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { envList, envNumber } from './lib/config.mjs';
import { mariadbProbe, postgresProbe, settle, SqliteWalCounter } from './lib/db-stats.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { loadOrderlyDist, repoRoot } from './lib/orderly.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const DESIGNS = ['orderly', 'tracking-bead', 'bundle'];
const DBS = ['sqlite', 'postgres', 'mariadb'];
/** The seed's idle-city figures (§1, §2, §11, §13). */
const SEED = { lifecyclesPerMin: 16, commitsPerMin: 64, commitsPerLifecycle: 4, diskMBPerMin: 5.3, projectedCommitsPerMin: 10, bundleCommitsPerFire: 2 };
/** Tolerances of the PASS lines. */
const PER_FIRE_TOLERANCE = 0.05;
const REALTIME_FIRES_TOLERANCE = 0.02;
const REALTIME_COMMITS_TOLERANCE = 0.1;
const REALTIME_ORDERLY_SLACK = 2;

const log = (...args) => console.error(...args);
const quick = process.env.CITY_QUICK === '1';
const config = {
  speedup: envNumber('CITY_SPEEDUP', 60),
  simMinutes: envNumber('CITY_SIM_MINUTES', quick ? 10 : 60),
  realtimeMinutes: envNumber('CITY_REALTIME_MINUTES', quick ? 1 : 2),
  realtimeCell: process.env.CITY_REALTIME_CELL || 'mariadb:50',
  rates: envList('CITY_RATES', ['0', '5', '50']).map(Number),
  designs: envList('CITY_DESIGNS', DESIGNS),
  dbs: envList('CITY_DBS', DBS),
  seed: process.env.CITY_SEED || 'city',
  minutesDb: process.env.CITY_MINUTES_DB || null,
  parallel: Math.max(1, Math.round(envNumber('CITY_PARALLEL', DESIGNS.length * DBS.length))),
  quick,
};
const partial =
  quick ||
  ['CITY_SPEEDUP', 'CITY_SIM_MINUTES', 'CITY_RATES', 'CITY_DESIGNS', 'CITY_DBS'].some((k) => process.env[k]) ||
  (process.env.CITY_REALTIME_MINUTES !== undefined && Number(process.env.CITY_REALTIME_MINUTES) === 0);
const cellScript = fileURLToPath(new URL('./lib/city-cell.mjs', import.meta.url));

for (const d of config.designs) if (!DESIGNS.includes(d)) throw new Error(`CITY_DESIGNS: unknown design ${d} (${DESIGNS.join(', ')})`);
for (const d of config.dbs) if (!DBS.includes(d)) throw new Error(`CITY_DBS: unknown database ${d} (${DBS.join(', ')})`);
if (!(config.speedup >= 1)) throw new Error('CITY_SPEEDUP must be >= 1');
if (!(config.simMinutes > 0)) throw new Error('CITY_SIM_MINUTES must be > 0');

// ---------------------------------------------------------------- the city

/** examples/city's orders, scoped per rig, with their real intervals. */
async function loadTheCity(orderly) {
  const city = await orderly.loadCity(path.join(repoRoot, 'examples', 'city'));
  const scoped = orderly.validateScoped(city.orders, city.rigs);
  const orders = scoped.map((o) => {
    if (o.spec.trigger !== 'cooldown') throw new Error(`examples/city: ${o.scopedName} is not a cooldown order; the city bench simulates cooldowns only`);
    return { scopedName: o.scopedName, name: o.spec.name, scope: o.spec.scope, rig: o.rig ?? null, intervalMs: o.spec.intervalMs };
  });
  return { rigs: city.rigs, orders };
}

/** The orders with intervals divided by K (whole ms: what the controller schedules). */
function accelerated(orders, speedup) {
  return orders.map((o) => ({ ...o, intervalMs: Math.max(1, Math.round(o.intervalMs / speedup)) }));
}

/** Fires a drift-free clock makes in [0, minutes): ceil(window / interval) per scoped order. */
function idealFires(orders, minutes) {
  return orders.reduce((n, o) => n + Math.ceil((minutes * 60_000) / o.intervalMs), 0);
}

// ---------------------------------------------------------------- servers

// The servers' own background transactions run on the wall clock, not the
// simulated one: autovacuum's ANALYZE (each one takes a transaction id; naptime
// 1 min) and InnoDB's persistent-statistics recalculation (a read-write
// transaction per table, at most every 10 s). Left on, they add commits that
// no design made, K times more per simulated minute in real time than
// accelerated. Off, the database's count is the design's alone (checked against
// the client's count in every cell). The cost is that the baselines' bytes
// leave out the vacuuming their updated and closed rows would need later.
const PG_SETTINGS = { autovacuum: 'off' };
const MARIADB_SETTINGS = { innodb_monitor_enable: 'trx_rw_commits,trx_ro_commits,trx_nl_ro_commits', innodb_stats_auto_recalc: 'OFF' };

async function startServers() {
  const { startPostgres, startMariadb } = await import('../test/support/servers.mjs');
  const servers = new Map();
  const skipped = [];
  const start = async ({ design, db }) => {
    try {
      const server = db === 'postgres' ? await startPostgres({ baseDir: scratchRoot(), settings: PG_SETTINGS }) : await startMariadb({ baseDir: scratchRoot(), settings: MARIADB_SETTINGS });
      const probe = db === 'postgres' ? await postgresProbe(server) : await mariadbProbe(server);
      servers.set(`${design}/${db}`, { server, probe, databases: 0 });
      log(`${design}/${db}: ${server.url} (data ${server.dataDir})`);
    } catch (err) {
      skipped.push({ design, db, reason: err.message.split('\n')[0] });
      log(`skipping ${design} on ${db}: ${err.message}`);
    }
  };
  const wanted = (db) => (config.dbs.includes(db) ? config.designs.map((design) => ({ design, db })) : []);
  // mariadb-install-db instances started together collide on their temporary
  // tables in /tmp: those servers start one after the other.
  await Promise.all([
    Promise.all(wanted('postgres').map(start)),
    (async () => {
      for (const w of wanted('mariadb')) await start(w);
    })(),
  ]);
  return { servers, skipped };
}

// ---------------------------------------------------------------- one cell

/** A forked cell with a mailbox: `next(type)` resolves with the next message of that type. */
function spawnCell() {
  const child = fork(cellScript, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const queue = [];
  const waiting = [];
  let failure;
  const fail = (err) => {
    failure ??= err;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  child.on('message', (m) => {
    if (m.type === 'error') return fail(new Error(`cell: ${m.message}`));
    const i = waiting.findIndex((w) => w.type === m.type);
    if (i >= 0) waiting.splice(i, 1)[0].resolve(m);
    else queue.push(m);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => fail(new Error(`cell exited (code ${code}, signal ${signal})`)));
  return {
    send: (m) => child.send(m),
    next(type) {
      if (failure) return Promise.reject(failure);
      const i = queue.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      return new Promise((resolve, reject) => waiting.push({ type, resolve, reject }));
    },
    async exit() {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          child.send({ type: 'exit' });
        } catch {
          child.kill('SIGKILL');
        }
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Runs `design` on `db` at `pct`% did-work for `simMinutes` simulated minutes
 * at `speedup`: prepare the schema, let the server settle, read its counters,
 * run, read them again (and at every simulated minute on the way).
 */
async function runCell({ design, db, pct, speedup, simMinutes, orders, rigs, servers, orderlyEntry, tag }) {
  const label = `${tag}${design} on ${db} at ${pct}%`;
  const minutes = Math.ceil(simMinutes);
  const minuteMs = 60_000 / speedup;
  const cell = { design, db, didWorkPct: pct, seed: config.seed, speedup, simMinutes, orders: accelerated(orders, speedup), rigs, orderlyEntry };
  const dirs = [];
  let probe;
  let wal;
  let database;
  let host;
  if (db === 'sqlite') {
    const dir = scratchDir(`city-${design}-${pct}`);
    dirs.push(dir);
    cell.file = path.join(dir.path, 'city.db');
    cell.url = `sqlite:${cell.file}`;
  } else {
    host = servers.get(`${design}/${db}`);
    database = `city_${design.replace(/-/g, '_')}_${pct}_${++host.databases}`;
    await host.server.sql(`CREATE DATABASE ${database}`);
    cell.url = host.server.url.replace(/\/orderly$/, `/${database}`);
    probe = host.probe;
  }
  if (design === 'orderly') {
    const state = scratchDir(`city-state-${db}-${pct}`);
    dirs.push(state);
    cell.stateDir = state.path;
  }

  const child = spawnCell();
  const dbAt = [];
  const pending = [];
  let timers = [];
  try {
    child.send({ type: 'prepare', cell });
    await child.next('ready');
    if (db === 'sqlite') {
      wal = new SqliteWalCounter(cell.file);
      probe = { sample: async () => wal.sample() };
    } else {
      if (db === 'postgres') await probe.checkpoint();
      const s = await settle(probe);
      if (!s.settled) log(`${label}: the server did not settle within 10 s; its background writes count in this cell`);
    }
    const before = await probe.sample();
    const detailsBefore = db === 'postgres' ? await probe.details(database) : null;
    child.send({ type: 'go' });
    const { t0 } = await child.next('started');
    log(`${label}: running ${num(simMinutes, simMinutes % 1 ? 1 : 0)} simulated min at K=${speedup} (${num((simMinutes * 60) / speedup, 1)} s)`);
    dbAt[0] = before;
    for (let i = 1; i < minutes; i++) {
      timers.push(
        setTimeout(() => {
          pending.push(probe.sample().then((s) => (dbAt[i] = s)));
        }, t0 + i * minuteMs - Date.now()),
      );
    }
    const { result } = await child.next('done');
    for (const t of timers) clearTimeout(t);
    timers = [];
    await Promise.all(pending);
    const after = await probe.sample();
    dbAt[minutes] = after;
    let detailsAfter = null;
    let maintenance = null;
    let walRecords = null;
    if (db !== 'sqlite') {
      // The cell's connections are closed, but a PostgreSQL backend is counted
      // in its server's CPU only once it has exited and been reaped, and it
      // flushes its statistics as it exits: give them a moment.
      await sleep(500);
      after.serverCpuMs = (await probe.sample()).serverCpuMs;
    }
    if (db === 'postgres') {
      detailsAfter = await probe.details(database);
      maintenance = await probe.maintenance(database);
      // WAL without a single commit is the server's own: say what it was.
      if (after.commits === before.commits && after.bytes > before.bytes) {
        walRecords = await probe.walRecords(before.lsn, after.lsn).catch((err) => `pg_waldump failed: ${err.message.split('\n')[0]}`);
      }
    }
    const perMinute = result.perMinute.map((m, i) => ({
      ...m,
      dbCommits: dbAt[i] && dbAt[i + 1] ? dbAt[i + 1].commits - dbAt[i].commits : null,
      dbBytes: dbAt[i] && dbAt[i + 1] ? dbAt[i + 1].bytes - dbAt[i].bytes : null,
    }));
    const serverCpuMs = before.serverCpuMs != null && after.serverCpuMs != null ? after.serverCpuMs - before.serverCpuMs : null;
    const dbDetail = {};
    for (const k of Object.keys(after)) if (typeof after[k] === 'number' && typeof before[k] === 'number') dbDetail[k] = after[k] - before[k];
    if (detailsBefore && detailsAfter) for (const k of Object.keys(detailsAfter)) dbDetail[`stat_${k}`] = detailsAfter[k] - (detailsBefore[k] ?? 0);
    if (maintenance) Object.assign(dbDetail, maintenance);
    return {
      design,
      db,
      didWorkPct: pct,
      speedup,
      simMinutes,
      loadAvg1: os.loadavg()[0],
      ...result,
      dbCommits: after.commits - before.commits,
      dbBytes: after.bytes - before.bytes,
      serverCpuMs,
      dbDetail,
      walRecords,
      perMinute,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    await child.exit();
    wal?.close();
    if (database) await host.server.sql(`DROP DATABASE ${database}`).catch(() => undefined);
    for (const d of dirs) d.remove();
  }
}

// ---------------------------------------------------------------- figures

function figures(c) {
  const perMin = (v) => (v === null || v === undefined ? null : v / c.simMinutes);
  return {
    design: c.design,
    db: c.db,
    didWorkPct: c.didWorkPct,
    fires: c.fires,
    firesPerMin: perMin(c.fires),
    didWorkFires: c.didWorkFires,
    didWorkPerMin: perMin(c.didWorkFires),
    dbCommits: c.dbCommits,
    dbCommitsPerMin: perMin(c.dbCommits),
    clientCommits: c.clientCommits,
    clientCommitsPerMin: perMin(c.clientCommits),
    commitsPerFire: c.fires > 0 ? c.dbCommits / c.fires : null,
    dbBytes: c.dbBytes,
    dbBytesPerMin: perMin(c.dbBytes),
    walWrittenPerMin: c.walWritten === undefined ? null : perMin(c.walWritten),
    walSyncsPerFire: c.walSyncsInRun === undefined || !c.fires ? null : c.walSyncsInRun / c.fires,
    walFileBytes: c.walFileBytes ?? null,
    cpuMsPerFire: c.fires > 0 ? (c.cpuUserMs + c.cpuSystemMs) / c.fires : null,
    serverCpuMsPerFire: c.serverCpuMs !== null && c.fires > 0 ? c.serverCpuMs / c.fires : null,
    latencyP50ms: c.latencyP50ms,
    latencyP99ms: c.latencyP99ms,
    auditRecords: c.auditRecords ?? null,
  };
}

const pct = (p) => `${p}%`;
const mb = (bytes) => (bytes === null || bytes === undefined ? '—' : bytes >= 1e6 ? `${num(bytes / 1e6, 2)} MB` : bytes >= 1e3 ? `${num(bytes / 1e3, 1)} kB` : `${num(bytes)} B`);
const fewer = (base, v) => (base === null || v === null || base === undefined || v === undefined ? '—' : v === 0 ? (base === 0 ? '—' : 'all') : ratio(base / v, 1));

// ---------------------------------------------------------------- driver

async function main() {
  const started = performance.now();
  const date = new Date().toISOString();
  const orderly = await loadOrderlyDist({ log });
  const orderlyEntry = process.env.ORDERLY_ENTRY ? path.resolve(process.env.ORDERLY_ENTRY) : path.join(repoRoot, 'dist', 'index.js');
  const { rigs, orders } = await loadTheCity(orderly);
  const ideal = idealFires(orders, config.simMinutes);
  log(
    `bench:city — ${orders.length} scoped orders on ${rigs.length} rigs (${num(idealFires(orders, 60) / 60, 2)} fires/min), ` +
      `${config.designs.join('/')} × ${config.dbs.join('/')} × ${config.rates.map(pct).join('/')}, ` +
      `${config.simMinutes} simulated min at K=${config.speedup}, data under ${scratchRoot()}`,
  );

  const { servers, skipped } = await startServers();
  const available = (design, db) => db === 'sqlite' || servers.has(`${design}/${db}`);
  const cells = [];
  const errors = [];
  let realtime = null;
  const common = { orders, rigs, servers, orderlyEntry };
  try {
    // At most config.parallel cells at once, and one cell per server at a
    // time (its counters are server-wide), in table order: with the default,
    // the nine cells of one did-work rate, the next rate's starting as they end.
    const todo = config.rates.flatMap((pct) =>
      config.designs.flatMap((design) => config.dbs.filter((db) => available(design, db)).map((db) => ({ design, db, pct }))),
    );
    const busy = new Set();
    const running = new Set();
    const wake = [];
    const freed = () => new Promise((resolve) => wake.push(resolve));
    while (todo.length > 0 || running.size > 0) {
      const i = todo.findIndex((t) => t.db === 'sqlite' || !busy.has(`${t.design}/${t.db}`));
      if (i < 0 || running.size >= config.parallel) {
        await freed();
        continue;
      }
      const { design, db, pct } = todo.splice(i, 1)[0];
      const key = `${design}/${db}`;
      if (db !== 'sqlite') busy.add(key);
      const p = runCell({ ...common, design, db, pct, speedup: config.speedup, simMinutes: config.simMinutes, tag: '' })
        .then((r) => {
          cells.push(r);
          log(
            `  ${r.design} on ${r.db} at ${r.didWorkPct}%: ${r.fires} fires (${r.didWorkFires} did work), ` +
              `${r.dbCommits} commits (client ${r.clientCommits}), ${mb(r.dbBytes)}, p50 ${num(r.latencyP50ms, 2)} ms`,
          );
        })
        .catch((err) => {
          errors.push({ design, db, didWorkPct: pct, error: err.message });
          log(`${design} on ${db} at ${pct}%: FAILED ${err.stack ?? err.message}`);
        })
        .finally(() => {
          busy.delete(key);
          running.delete(p);
          for (const w of wake.splice(0)) w();
        });
      running.add(p);
    }

    // The real-time check: one pair of cells at K=1, alone on the machine.
    const [rtDb, rtPctText] = config.realtimeCell.split(':');
    const rtPct = Number(rtPctText);
    if (config.realtimeMinutes > 0) {
      const pair = ['orderly', 'tracking-bead'].filter((d) => available(d, rtDb));
      if (!DBS.includes(rtDb) || !Number.isFinite(rtPct)) throw new Error(`CITY_REALTIME_CELL must be <db>:<pct>, got ${config.realtimeCell}`);
      log(`real-time check: ${pair.join(' and ')} on ${rtDb} at ${rtPct}%, ${config.realtimeMinutes} min at K=1`);
      const results = await Promise.all(
        pair.map((design) =>
          runCell({ ...common, design, db: rtDb, pct: rtPct, speedup: 1, simMinutes: config.realtimeMinutes, tag: 'real-time: ' }).catch((err) => {
            errors.push({ design, db: rtDb, didWorkPct: rtPct, realtime: true, error: err.message });
            log(`real-time ${design}: FAILED ${err.stack ?? err.message}`);
            return null;
          }),
        ),
      );
      realtime = { db: rtDb, didWorkPct: rtPct, minutes: config.realtimeMinutes, cells: results.filter(Boolean) };
    }
  } finally {
    for (const { server, probe } of servers.values()) {
      await probe.close().catch(() => undefined);
      await server.stop();
    }
  }

  // ------------------------------------------------------------ report
  const rows = cells.map(figures);
  const find = (design, db, p) => rows.find((r) => r.design === design && r.db === db && r.didWorkPct === p);
  const cellOf = (r) => cells.find((c) => c.design === r.design && c.db === r.db && c.didWorkPct === r.didWorkPct);
  // Ratios against the baselines, on the rows they say something about.
  for (const r of rows) {
    const tb = find('tracking-bead', r.db, r.didWorkPct);
    const bundle = find('bundle', r.db, r.didWorkPct);
    r.fewerThanTrackingBead = r.design === 'tracking-bead' ? '—' : fewer(tb?.dbCommitsPerMin, r.dbCommitsPerMin);
    r.fewerThanBundle = r.design === 'orderly' ? fewer(bundle?.dbCommitsPerMin, r.dbCommitsPerMin) : '—';
  }
  const order = (a, b) => DBS.indexOf(a.db) - DBS.indexOf(b.db) || a.didWorkPct - b.didWorkPct || DESIGNS.indexOf(a.design) - DESIGNS.indexOf(b.design);
  rows.sort(order);

  const m = machineInfo(scratchRoot());
  const command = commandLine({ prefixes: ['BENCH_', 'CITY_'] });
  console.log(`bench:city — ${date.slice(0, 16).replace('T', ' ')} UTC, \`${command}\``);
  console.log(`machine: ${m.cores} cores (${m.cpuModel}), ${Math.round(m.memoryBytes / 2 ** 30)} GiB, ${m.platform}, node ${m.node}${m.dataFilesystem ? `, data on ${m.dataFilesystem.fstype}` : ''}`);
  console.log(
    `city: examples/city, ${orders.length} scoped orders on ${rigs.length} rigs, ${num(idealFires(orders, 60) / 60, 2)} fires/min on a drift-free clock ` +
      `(the seed: ~${SEED.lifecyclesPerMin} lifecycles/min); ${config.simMinutes} simulated min at K=${config.speedup} ` +
      `(${num((config.simMinutes * 60) / config.speedup, 1)} s per cell), did-work seed "${config.seed}"`,
  );
  // Both tables open with the cell they describe.
  const CELL_COLUMNS = [
    { key: 'db', title: 'database' },
    { key: 'didWorkPct', title: 'did work', format: (v) => pct(v) },
    { key: 'design', title: 'design' },
  ];
  console.log('');
  console.log('Commits per simulated minute (counted by the database; client = transactions the design committed)');
  console.log(
    formatTable(
      [
        ...CELL_COLUMNS,
        { key: 'fires', title: 'fires', format: (v) => num(v) },
        { key: 'firesPerMin', title: 'fires/min', format: (v) => num(v, 2) },
        { key: 'didWorkPerMin', title: 'did-work/min', format: (v) => num(v, 2) },
        { key: 'dbCommitsPerMin', title: 'commits/min', format: (v) => num(v, 2) },
        { key: 'clientCommitsPerMin', title: 'client/min', format: (v) => num(v, 2) },
        { key: 'commitsPerFire', title: 'commits/fire', format: (v) => num(v, 3) },
        { key: 'fewerThanTrackingBead', title: 'x fewer than tracking-bead' },
        { key: 'fewerThanBundle', title: 'x fewer than bundle' },
      ],
      rows,
    ),
  );
  console.log('');
  console.log('Bytes and time (bytes per simulated minute; CPU and latency per fire)');
  console.log(
    formatTable(
      [
        ...CELL_COLUMNS,
        { key: 'dbBytesPerMin', title: 'db bytes/min', format: (v) => mb(v) },
        { key: 'walWrittenPerMin', title: 'orderly WAL/min', format: (v) => mb(v) },
        { key: 'walSyncsPerFire', title: 'WAL syncs/fire', format: (v) => num(v, 2) },
        { key: 'cpuMsPerFire', title: 'CPU ms/fire', format: (v) => num(v, 3) },
        { key: 'serverCpuMsPerFire', title: 'db server CPU ms/fire', format: (v) => num(v, 2) },
        { key: 'latencyP50ms', title: 'fire→done p50 ms', format: (v) => num(v, 2) },
        { key: 'latencyP99ms', title: 'p99 ms', format: (v) => num(v, 2) },
      ],
      rows,
    ),
  );

  // Per simulated minute, for one database.
  const minutesDb = config.minutesDb ?? ['postgres', 'mariadb', 'sqlite'].find((db) => cells.some((c) => c.db === db));
  const minuteCells = cells.filter((c) => c.db === minutesDb).sort(order);
  if (minuteCells.length) {
    const columns = [{ key: 'minute', title: 'sim min' }];
    const ref = minuteCells.find((c) => c.design === 'orderly') ?? minuteCells[0];
    columns.push({ key: 'fires', title: 'fires', format: (v) => num(v) });
    for (const p of config.rates.filter((p) => p > 0)) columns.push({ key: `dw${p}`, title: `did-work ${p}%`, format: (v) => num(v) });
    for (const c of minuteCells) columns.push({ key: `${c.design}/${c.didWorkPct}`, title: `${c.design} ${c.didWorkPct}%`, format: (v) => num(v) });
    const minuteRows = ref.perMinute.map((_, i) => {
      const row = { minute: i, fires: ref.perMinute[i].fires };
      for (const p of config.rates.filter((p) => p > 0)) row[`dw${p}`] = minuteCells.find((c) => c.didWorkPct === p)?.perMinute[i]?.didWork ?? null;
      for (const c of minuteCells) row[`${c.design}/${c.didWorkPct}`] = c.perMinute[i]?.dbCommits ?? null;
      return row;
    });
    console.log('');
    console.log(`Per simulated minute on ${minutesDb}: fires (orderly's cell), did-work fires, and commits counted by the database`);
    console.log(formatTable(columns, minuteRows));
    console.log('  Fires count in the minute they start, commits in the minute the database counts them: a cell whose fires take long');
    console.log("  (see its p99) shows some of a minute's commits in the next one.");
  }

  // The real-time check against the same simulated minutes of the accelerated
  // cells. Counts per minute come from the cell itself (fires bucketed by when
  // they fired, commits read at each minute's boundary on the cell's own
  // timer, before any fire due at that instant), so a window ends exactly
  // where it should; the database's totals agree with them (checked below).
  const checks = [];
  const check = (pass, subject, detail) => checks.push({ pass, subject, detail });
  const realtimeRows = [];
  if (realtime) {
    const window = Math.floor(realtime.minutes);
    const sum = (c, key) => c.perMinute.slice(0, window).reduce((s, mm) => (s === null || mm[key] === null ? null : s + mm[key]), 0);
    for (const rt of realtime.cells) {
      const acc = cells.find((c) => c.design === rt.design && c.db === rt.db && c.didWorkPct === rt.didWorkPct);
      const row = { design: rt.design, db: rt.db, didWorkPct: rt.didWorkPct, window };
      if (window >= 1) {
        for (const [prefix, c] of [['rt', rt], ['acc', acc]]) {
          if (!c) continue;
          row[`${prefix}Fires`] = sum(c, 'fires');
          row[`${prefix}DidWork`] = sum(c, 'didWork');
          row[`${prefix}Commits`] = sum(c, 'clientCommits');
          row[`${prefix}FiresPerMin`] = row[`${prefix}Fires`] / window;
          row[`${prefix}DidWorkPerMin`] = row[`${prefix}DidWork`] / window;
          row[`${prefix}CommitsPerMin`] = row[`${prefix}Commits`] === null ? null : row[`${prefix}Commits`] / window;
        }
      }
      row.firesRatio = row.accFires ? row.rtFires / row.accFires : null;
      row.commitsRatio = row.accCommits ? row.rtCommits / row.accCommits : row.rtCommits === 0 && row.accCommits === 0 ? 1 : null;
      row.accFiresPerMinHour = acc ? acc.fires / acc.simMinutes : null;
      row.accCommitsPerMinHour = acc ? acc.dbCommits / acc.simMinutes : null;
      row.rtCpuMsPerFire = (rt.cpuUserMs + rt.cpuSystemMs) / rt.fires;
      row.accCpuMsPerFire = acc ? (acc.cpuUserMs + acc.cpuSystemMs) / acc.fires : null;
      row.rtLatencyP50ms = rt.latencyP50ms;
      row.accLatencyP50ms = acc?.latencyP50ms ?? null;
      realtimeRows.push(row);
      if (row.firesRatio === null || row.rtCommits === null || row.accCommits === null) continue;
      const firesOk = Math.abs(row.rtFires - row.accFires) <= Math.max(1, REALTIME_FIRES_TOLERANCE * row.accFires);
      const head =
        `first ${window} min at K=1 against K=${config.speedup}: ${num(row.rtFiresPerMin, 2)} vs ${num(row.accFiresPerMin, 2)} fires/min (${ratio(row.firesRatio, 3)}), ` +
        `${num(row.rtCommitsPerMin, 2)} vs ${num(row.accCommitsPerMin, 2)} commits/min (${ratio(row.commitsRatio, 3)})`;
      if (rt.design === 'orderly') {
        // Which completions meet in one audit transaction is a matter of
        // milliseconds, at any speed: a commit or two either way is timing,
        // not acceleration. The did-work fires themselves must be the same.
        const slack = Math.max(REALTIME_ORDERLY_SLACK, REALTIME_COMMITS_TOLERANCE * row.accCommits);
        check(
          firesOk && row.rtDidWork === row.accDidWork && Math.abs(row.rtCommits - row.accCommits) <= slack,
          `acceleration, orderly on ${rt.db} at ${rt.didWorkPct}%`,
          `${head}; did-work fires ${row.rtDidWork} vs ${row.accDidWork}; goal: fires within ±${REALTIME_FIRES_TOLERANCE * 100}% (or 1), ` +
            `the same did-work fires, commits within ±${REALTIME_ORDERLY_SLACK} or ±${REALTIME_COMMITS_TOLERANCE * 100}%`,
        );
      } else {
        const perFire = (c, f) => (f ? c / f : null);
        const rtPer = perFire(row.rtCommits, row.rtFires);
        const accPer = perFire(row.accCommits, row.accFires);
        check(
          firesOk && rtPer !== null && accPer !== null && Math.abs(rtPer - accPer) <= PER_FIRE_TOLERANCE,
          `acceleration, ${rt.design} on ${rt.db} at ${rt.didWorkPct}%`,
          `${head}; ${num(rtPer, 3)} vs ${num(accPer, 3)} commits/fire; goal: fires within ±${REALTIME_FIRES_TOLERANCE * 100}% (or 1), commits/fire within ±${PER_FIRE_TOLERANCE}`,
        );
      }
    }
    console.log('');
    console.log(
      `Real time against accelerated: ${realtime.cells.map((c) => c.design).join(' and ')} on ${realtime.db} at ${realtime.didWorkPct}%, ` +
        `${realtime.minutes} min at K=1 against the same first ${window} simulated min of the K=${config.speedup} cells (and their whole run)`,
    );
    console.log(
      formatTable(
        [
          { key: 'design', title: 'design' },
          { key: 'rtFiresPerMin', title: 'fires/min K=1', format: (v) => num(v, 2) },
          { key: 'accFiresPerMin', title: `K=${config.speedup}`, format: (v) => num(v, 2) },
          { key: 'firesRatio', title: 'ratio', format: (v) => ratio(v, 3) },
          { key: 'rtDidWorkPerMin', title: 'did-work/min K=1', format: (v) => num(v, 2) },
          { key: 'accDidWorkPerMin', title: `K=${config.speedup}`, format: (v) => num(v, 2) },
          { key: 'rtCommitsPerMin', title: 'commits/min K=1', format: (v) => num(v, 2) },
          { key: 'accCommitsPerMin', title: `K=${config.speedup}`, format: (v) => num(v, 2) },
          { key: 'commitsRatio', title: 'ratio', format: (v) => ratio(v, 3) },
          { key: 'accFiresPerMinHour', title: 'whole run fires/min', format: (v) => num(v, 2) },
          { key: 'accCommitsPerMinHour', title: 'commits/min', format: (v) => num(v, 2) },
          { key: 'rtCpuMsPerFire', title: 'CPU ms/fire K=1', format: (v) => num(v, 3) },
          { key: 'accCpuMsPerFire', title: `K=${config.speedup}`, format: (v) => num(v, 3) },
          { key: 'rtLatencyP50ms', title: 'p50 ms K=1', format: (v) => num(v, 2) },
          { key: 'accLatencyP50ms', title: `K=${config.speedup}`, format: (v) => num(v, 2) },
        ],
        realtimeRows,
      ),
    );
    console.log(
      '  The first minutes hold the start-up burst (all 21 orders due at once) and the first 15 m / 30 m fires, so their rates are above the\n' +
        "  hour's. CPU/fire at K=1 carries the controller's idle cost (timers, flush thread, pool keep-alives) over ~16 fires/min; at\n" +
        `  K=${config.speedup} the same cost is spread over ${config.speedup}x as many fires per second, so it shows the marginal cost of a fire.`,
    );
  }

  // ------------------------------------------------------------ acceptance
  for (const db of config.dbs) {
    const o0 = find('orderly', db, 0);
    if (o0) {
      check(
        o0.dbCommits === 0 && o0.clientCommits === 0,
        `orderly, 0% did work, ${db}`,
        `${num(o0.dbCommitsPerMin, 2)} database commits/min (${o0.dbCommits} in ${config.simMinutes} min over ${o0.fires} fires; client ${o0.clientCommits}); ` +
          `${mb(o0.dbBytes)} written to the database${cellOf(o0)?.walRecords ? ` (WAL records the server wrote on its own: ${cellOf(o0).walRecords})` : ''}`,
      );
    }
    for (const p of config.rates) {
      const tb = find('tracking-bead', db, p);
      if (tb) {
        check(
          Math.abs(tb.commitsPerFire - SEED.commitsPerLifecycle) <= PER_FIRE_TOLERANCE,
          `tracking-bead, ${p}%, ${db}`,
          `${num(tb.commitsPerFire, 3)} commits/fire (${tb.dbCommits} / ${tb.fires}; client ${tb.clientCommits}), ${num(tb.dbCommitsPerMin, 1)} commits/min = ` +
            `${ratio(tb.dbCommitsPerMin / SEED.commitsPerMin)} the seed's ${SEED.commitsPerMin}/min; goal ${SEED.commitsPerLifecycle} ± ${PER_FIRE_TOLERANCE}`,
        );
      }
      const b = find('bundle', db, p);
      if (b) {
        check(
          Math.abs(b.commitsPerFire - SEED.bundleCommitsPerFire) <= PER_FIRE_TOLERANCE,
          `bundle, ${p}%, ${db}`,
          `${num(b.commitsPerFire, 3)} commits/fire (${b.dbCommits} / ${b.fires}), ${num(b.dbCommitsPerMin, 1)} commits/min; goal ${SEED.bundleCommitsPerFire} ± ${PER_FIRE_TOLERANCE} (§13)`,
        );
      }
      const o = find('orderly', db, p);
      if (o && p > 0) {
        const cell = cells.find((c) => c.design === 'orderly' && c.db === db && c.didWorkPct === p);
        const shared = cell.auditRecords - cell.clientCommits;
        const atMost = o.dbCommits <= o.didWorkFires;
        const fewerWhenTogether = shared > 0 ? o.dbCommits < o.didWorkFires : true;
        const audited = cell.auditRecords === o.didWorkFires;
        check(
          atMost && fewerWhenTogether && audited,
          `orderly, ${p}%, ${db}`,
          `${num(o.dbCommitsPerMin, 2)} commits/min <= ${num(o.didWorkPerMin, 2)} did-work fires/min (${o.dbCommits} commits, client ${o.clientCommits}, ` +
            `for ${o.didWorkFires} did-work fires = ${cell.auditRecords} audit records, ${shared} of them sharing a transaction with an earlier one); ` +
            `${o.fewerThanTrackingBead} fewer than tracking-bead, ${o.fewerThanBundle} fewer than bundle; ` +
            `the seed projected ${SEED.projectedCommitsPerMin}/min (${ratio(o.dbCommitsPerMin / SEED.projectedCommitsPerMin)})`,
        );
      }
    }
  }
  console.log('\nacceptance:');
  for (const c of checks) console.log(`  ${c.pass ? 'PASS' : 'FAIL'}  ${c.subject}: ${c.detail}`);

  // Where the database and the client disagree, and why.
  const disagreements = cells.filter((c) => c.dbCommits !== c.clientCommits);
  console.log('\ndatabase against client counts:');
  if (disagreements.length === 0) console.log(`  all ${cells.length} cells: the database counted exactly the transactions the design committed`);
  for (const c of disagreements) {
    const d = c.dbCommits - c.clientCommits;
    const why =
      c.db === 'sqlite'
        ? d < 0
          ? 'commit frames overwritten by a WAL restart (after a checkpoint) before the counter read them'
          : 'frames the client did not commit: unexplained'
        : c.db === 'postgres'
          ? `transaction ids taken by something other than the design (autovacuum is off${c.dbDetail.autoanalyze ? `, yet ANALYZE ran ${c.dbDetail.autoanalyze} time(s)` : ''}; the probe takes none)`
          : "transactions the client did not make, or rolled back (a rolled-back read-write transaction takes one number from the id counter, not two)";
    console.log(`  ${c.design} on ${c.db} at ${c.didWorkPct}%${c.speedup === 1 ? ' (real time)' : ''}: database ${c.dbCommits}, client ${c.clientCommits} (${d > 0 ? '+' : ''}${d}): ${why}`);
  }

  // Cadence runs from each fire's start, so a late timer delays every later
  // fire of that order; accelerated, a millisecond late is K ms of simulated
  // time. Cells that fell behind the drift-free count are named here.
  const behind = [...cells, ...(realtime?.cells ?? [])]
    .map((c) => ({ c, short: idealFires(accelerated(orders, c.speedup).map((o) => ({ ...o, intervalMs: o.intervalMs * c.speedup })), c.simMinutes) - c.fires }))
    .filter((x) => x.short !== 0);
  console.log('\nfires against the drift-free count:');
  if (behind.length === 0) console.log(`  every cell fired exactly the drift-free count (${ideal} in ${config.simMinutes} simulated min)`);
  for (const { c, short } of behind) {
    console.log(
      `  ${c.design} on ${c.db} at ${c.didWorkPct}%${c.speedup === 1 ? ' (real time)' : ''}: ${c.fires} fires, ${Math.abs(short)} ${short > 0 ? 'fewer' : 'more'} than drift-free ` +
        `(its fires ran late: p99 fire→done ${num(c.latencyP99ms, 0)} ms = ${num((c.latencyP99ms * c.speedup) / 1000, 1)} simulated s; load average ${num(c.loadAvg1, 1)})`,
    );
  }

  const troubled = [...cells, ...(realtime?.cells ?? [])].filter((c) => c.failures > 0 || c.skipped > 0);
  if (troubled.length) {
    console.log('\nfires that failed or were skipped:');
    for (const c of troubled) {
      console.log(`  ${c.design} on ${c.db} at ${c.didWorkPct}%${c.speedup === 1 ? ' (real time)' : ''}: ${c.failures} failed, ${c.skipped} skipped`);
    }
  }

  const duration = (performance.now() - started) / 1000;
  console.log('');
  console.log(
    [
      `Notes: a fire is one body run; did-work fires are the same in every design (seeded per order and fire number).`,
      `commits/min = the database's count over the ${config.simMinutes} simulated minutes ÷ ${config.simMinutes}; "all" = this design made no commit where the other made some.`,
      'Counted by the database: SQLite = commit frames appended to the -wal file (bytes = frames × (page + 24)); PostgreSQL = transaction ids',
      'assigned (pg_snapshot_xmax, read without taking one; bytes = WAL generated, insert-LSN delta); MariaDB = read-write transactions',
      "(InnoDB's transaction id counter ÷ 2: an id and a commit number each; bytes = Innodb_os_log_written, the redo log). Server statistics",
      'that run on the wall clock are off (PostgreSQL autovacuum, InnoDB statistics recalculation): they would commit transactions of their own.',
      "orderly WAL = bytes its WAL writer thread wrote to the lease log (that thread's /proc io wchar; the baselines have no such log);",
      `controller.stats().walBytes is that log's size on disk, ${mb(rows.find((r) => r.walFileBytes)?.walFileBytes ?? null)} at the end of every run (preallocated segments), not what was written.`,
      'CPU ms/fire = process.cpuUsage() of the cell\'s own process (all its threads) over the run ÷ fires; db server CPU = the server',
      "process tree's CPU (PostgreSQL backends included; SQLite runs inside the cell). fire→done = from the due time to the end of the fire",
      "(orderly: lease released, the outcome durable in its outbox; the audit commit follows asynchronously; baselines: after the last commit",
      'and the lastRun read). PostgreSQL cells start after a CHECKPOINT, MariaDB cells on a settled server; each cell has its server alone.',
      `Matrix: up to ${config.parallel} cells at once (CITY_PARALLEL; one per server; the default runs a did-work rate's nine together) on ${m.cores} cores`,
      'and one disk: counts do not depend on neighbours; CPU does a little, latency does (fsyncs of all cells queue in the same journal).',
      `The real-time pair ran alone. Load average (1 min) during the cells: ${num(Math.min(...cells.map((c) => c.loadAvg1)), 1)}–${num(Math.max(...cells.map((c) => c.loadAvg1)), 1)}. Whole run: ${num(duration / 60, 1)} min.`,
    ].join('\n'),
  );
  for (const s of skipped) console.log(`  skipped ${s.design} on ${s.db}: ${s.reason}`);
  for (const e of errors) console.log(`  error in ${e.design} on ${e.db} at ${e.didWorkPct}%${e.realtime ? ' (real time)' : ''}: ${e.error.split('\n')[0]}`);

  const chart = {
    commitsPerMin: rows.map((r) => ({ design: r.design, db: r.db, didWorkPct: r.didWorkPct, value: round(r.dbCommitsPerMin ?? r.clientCommitsPerMin, 3) })),
    seed: { commitsPerMin: SEED.commitsPerMin, projectedCommitsPerMin: SEED.projectedCommitsPerMin },
  };
  const file = writeResults(partial ? 'city.partial' : 'city', {
    benchmark: 'city',
    date,
    finishedAt: new Date().toISOString(),
    durationSeconds: duration,
    command,
    machine: m,
    config: { ...config, idealFires: ideal, orders, rigs },
    seedFigures: SEED,
    skipped,
    errors,
    results: rows,
    cells,
    realtime: realtime ? { ...realtime, comparison: realtimeRows } : null,
    acceptance: checks,
    chart,
  });
  log(`\nwrote ${path.relative(process.cwd(), file)} in ${num(duration / 60, 1)} min`);
  if (checks.some((c) => !c.pass) || errors.length) process.exitCode = 1;
}

function round(v, digits) {
  if (v === null || v === undefined) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

let finished = false;
process.on('exit', (code) => {
  if (!finished) log(`bench:city exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
