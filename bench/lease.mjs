// bench:lease — single-flight acquire/release pairs through orderly's
// LeaseStore, against what a user would otherwise build one on.
//
// In memory (LeaseStore.open(null)): a tight loop on one JS thread,
// `const l = await store.acquire(key); store.release(l)` over 1,000 keys,
// against the same await structure on a plain JS Map, so the FFI's cost is
// visible; then where one pair's time goes (bare native calls, the wrapper,
// the await).
//
// Durable: a fresh store in bench/.tmp (the disk of the checkout), N closed
// loops each awaiting a durable acquire then releasing (relaxed), on distinct
// keys so none is refused; against better-sqlite3 (WAL, synchronous=FULL) and
// PostgreSQL (throwaway server from test/support/servers.mjs, fsync=on,
// synchronous_commit=on) doing the same single-flight with INSERT / DELETE,
// each its own autocommit transaction.
//
// Acceptance:
//   in memory: >= 2,000,000 pairs/s
//   durable at 64 in flight: >= 10x better-sqlite3 at 64 in flight (same run)
//
// Prints the tables on stdout (progress on stderr) and writes
// bench/results/lease.json, or lease.partial.json for a narrowed run.
// Knobs: BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_REPEATS, BENCH_INFLIGHT
// (durable levels, default 1,16,64), BENCH_SUBJECTS (orderly-memory, js-map,
// breakdown, orderly, sqlite, postgres), BENCH_TMPDIR, ORDERLY_ENTRY (a module
// exporting LeaseStore).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchConfig } from './lib/config.mjs';
import { closedLoopPairs, syncRoundRobinPairs, tightLoop } from './lib/load.mjs';
import { commandLine, machineInfo } from './lib/machine.mjs';
import { writeResults } from './lib/results.mjs';
import { scratchDir, scratchRoot } from './lib/scratch.mjs';
import { median, medianOfRuns } from './lib/stats.mjs';
import { formatTable, num, ratio } from './lib/table.mjs';

const KEYS = 1000;
const TARGET_MEMORY_PAIRS_PER_SEC = 2_000_000;
const TARGET_DURABLE_VS_SQLITE_AT_64 = 10;
// The breakdown's micro-loops are cheap and steady: a shorter window will do.
const PROBE_SECONDS_MAX = 1;

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const config = benchConfig({ inFlight: [1, 16, 64] });
const log = (...args) => console.error(...args);
const requireHere = createRequire(import.meta.url);

const keys = Array.from({ length: KEYS }, (_, i) => `order-${i}`);
// Durable loops use their own key each, so no acquire is ever refused.
const loopKey = (loop) => `loop-${loop}`;
let sink = 0; // defeats dead-code elimination in the micro-loops

// ---------------------------------------------------------------- loading

async function loadOrderly() {
  if (process.env.ORDERLY_ENTRY) return import(pathToFileURL(path.resolve(process.env.ORDERLY_ENTRY)).href);
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  try {
    // Self-reference: resolves through the package's own "exports", exactly
    // as a user's `import { LeaseStore } from 'orderly'` would.
    return await import(pkg.name);
  } catch (err) {
    const entry = path.join(repoRoot, pkg.module ?? 'dist/index.js');
    if (!existsSync(entry)) throw new Error(`cannot import ${pkg.name} (${err.code ?? err.message}) and ${entry} does not exist; build the package first`);
    return import(pathToFileURL(entry).href);
  }
}

async function loadLeaseStore() {
  const mod = await loadOrderly();
  const LeaseStore = mod.LeaseStore ?? mod.default?.LeaseStore;
  if (typeof LeaseStore?.open !== 'function') throw new Error('the package root does not export LeaseStore with a static open()');
  return LeaseStore;
}

/** The generated napi binding the wrapper sits on, for the breakdown's bare calls. */
function loadBinding() {
  const file = path.join(repoRoot, 'index.cjs');
  if (!existsSync(file)) throw new Error(`${file} does not exist: build the native addon (npm run build:native)`);
  const binding = requireHere(file);
  if (typeof binding.NativeLeaseStore?.open !== 'function') throw new Error('index.cjs does not export NativeLeaseStore');
  return binding;
}

// ---------------------------------------------------------------- in memory

/**
 * The baseline: the same single-flight contract written in JS over a Map, with
 * the same shapes as LeaseStore (a frozen lease with a bigint fencing token and
 * wall-clock times, a promise from acquire, a token check on release).
 */
class JsLeaseMap {
  #held = new Map();
  #lastToken = 0;
  #ttlMs = 10 * 60 * 1000;

  acquire(key) {
    try {
      return Promise.resolve(this.acquireSync(key));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The bookkeeping of acquire without the promise (for the breakdown). */
  acquireSync(key) {
    if (typeof key !== 'string') throw new TypeError('lease key must be a string');
    const now = Date.now();
    const held = this.#held.get(key);
    if (held !== undefined && held.expiresAt > now) return null;
    const lease = Object.freeze({ key, token: BigInt(++this.#lastToken), acquiredAt: now, expiresAt: now + this.#ttlMs });
    this.#held.set(key, lease);
    return lease;
  }

  release(lease) {
    if (typeof lease?.key !== 'string' || typeof lease.token !== 'bigint') throw new TypeError('unknown lease');
    const held = this.#held.get(lease.key);
    if (held !== undefined && held.token === lease.token) this.#held.delete(lease.key);
  }

  inFlight() {
    return this.#held.size;
  }
}

/** `const l = await store.acquire(key); store.release(l)`, written out inline per chunk. */
function pairChunk(store) {
  return async (n, first) => {
    for (let i = 0; i < n; i++) {
      const l = await store.acquire(keys[(first + i) % KEYS]);
      store.release(l);
    }
  };
}

function memorySubject(id, label, note, open) {
  return {
    id,
    section: 'memory',
    label,
    note,
    levels: [1],
    async setup() {
      await open.setup?.();
    },
    async run() {
      const store = await open.store();
      try {
        const r = await tightLoop({ seconds: config.seconds, warmupSeconds: config.warmupSeconds, chunk: pairChunk(store) });
        if (store.inFlight() !== 0) throw new Error(`${store.inFlight()} leases still held after the loop`);
        return { pairs: r.ops, seconds: r.seconds, pairsPerSec: r.opsPerSec, nsPerPair: r.nsPerOp };
      } finally {
        await store.close?.();
      }
    },
  };
}

let LeaseStore;
const orderlyMemory = memorySubject(
  'orderly-memory',
  'orderly LeaseStore, in memory',
  'LeaseStore.open(null); one JS thread; `const l = await store.acquire(key); store.release(l)` over 1,000 keys',
  {
    setup: async () => (LeaseStore ??= await loadLeaseStore()),
    store: () => LeaseStore.open(null),
  },
);
const jsMap = memorySubject(
  'js-map',
  'JS Map single-flight (baseline)',
  'the same loop on a Map-based single-flight in plain JS (frozen lease, bigint token, Promise.resolve): no FFI',
  { store: () => new JsLeaseMap() },
);

/**
 * Where an in-memory pair's time goes: each probe is a tight loop of one
 * thing, timed per operation.
 */
function breakdownSubject() {
  let binding;
  return {
    id: 'breakdown',
    section: 'breakdown',
    label: 'in-memory pair, piece by piece',
    note: 'ns per operation of each piece, one JS thread, in-memory stores',
    levels: [1],
    async setup() {
      LeaseStore ??= await loadLeaseStore();
      binding = loadBinding();
    },
    async run() {
      const native = await binding.NativeLeaseStore.open(null, undefined, () => {});
      const store = await LeaseStore.open(null);
      const map = new JsLeaseMap();
      const out = new Float64Array(4);
      const resolvedLease = Object.freeze({ key: 'k', token: 1n, acquiredAt: 0, expiresAt: 0 });
      const probes = {
        // The floor of any promise-returning acquire: one await of a settled promise.
        awaitResolved: async (n) => {
          for (let i = 0; i < n; i++) {
            const l = await Promise.resolve(resolvedLease);
            sink += l.acquiredAt;
          }
        },
        // The least a napi method can do: a getter, no arguments, returns a bool.
        nativeGetter: (n) => {
          for (let i = 0; i < n; i++) sink += native.durable ? 1 : 0;
        },
        // A bare napi call that does (almost) nothing (one atomic load in Rust): the FFI's fixed cost.
        nativeInFlight: (n) => {
          for (let i = 0; i < n; i++) sink += native.inFlight();
        },
        // The same through the wrapper (open check, try/catch closure, error mapping).
        wrapperInFlight: (n) => {
          for (let i = 0; i < n; i++) sink += store.inFlight();
        },
        // The two native calls of a pair, no promise, no lease object: the Rust work plus two crossings.
        nativePair: (n, first) => {
          for (let i = 0; i < n; i++) {
            const key = keys[(first + i) % KEYS];
            if (native.acquire(key, undefined, undefined, undefined, out) !== 0) throw new Error(`native acquire of ${key} refused`);
            native.release(key, out[0], false);
          }
        },
        // The JS Map pair without the promise and await: JS bookkeeping alone.
        jsMapPairNoAwait: (n, first) => {
          for (let i = 0; i < n; i++) map.release(map.acquireSync(keys[(first + i) % KEYS]));
        },
        jsMapPair: pairChunk(map),
        wrapperPair: pairChunk(store),
      };
      const probeSeconds = Math.min(PROBE_SECONDS_MAX, config.seconds);
      const result = {};
      try {
        for (const [name, chunk] of Object.entries(probes)) {
          const r = await tightLoop({ seconds: probeSeconds, warmupSeconds: Math.min(0.2, config.warmupSeconds), chunk });
          result[`${name}Ns`] = r.nsPerOp;
        }
        if (native.inFlight() !== 0 || store.inFlight() !== 0) throw new Error('leases still held after the breakdown');
      } finally {
        await store.close();
        await native.close();
      }
      return result;
    },
  };
}

// ---------------------------------------------------------------- durable

function orderlyDurableSubject() {
  return {
    id: 'orderly',
    section: 'durable',
    label: 'orderly LeaseStore, durable',
    note: 'N async loops, each `await store.acquire(key)` (resolves after the fdatasync covering it) then `store.release(lease)` (relaxed)',
    async setup() {
      LeaseStore ??= await loadLeaseStore();
    },
    async run(inFlight) {
      const dir = scratchDir('lease-orderly');
      const store = await LeaseStore.open(dir.path);
      try {
        let before;
        let after;
        const r = await closedLoopPairs({
          inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          acquire: async (loop) => {
            const lease = await store.acquire(loopKey(loop));
            if (lease === null) throw new Error(`acquire of ${loopKey(loop)} refused: the key should be free`);
            return lease;
          },
          release: (_, lease) => store.release(lease),
          onMeasureStart: () => (before = store.stats()),
          onMeasureEnd: () => (after = store.stats()),
        });
        if (after.poisoned) throw new Error('the store reports poisoned after the run');
        const syncs = Number(after.walSyncs) - Number(before.walSyncs);
        return {
          pairs: r.ops,
          seconds: r.seconds,
          pairsPerSec: r.opsPerSec,
          p50us: r.p50us,
          p99us: r.p99us,
          // Syncs over pairs both counted in the window (the stats are read as it opens and closes).
          syncsPerPair: r.ops > 0 ? syncs / r.ops : null,
          checkpoints: Number(after.checkpoints) - Number(before.checkpoints),
          eventLoopDelayP99ms: r.eventLoopDelayP99ms,
        };
      } finally {
        await store.close();
        dir.remove();
      }
    },
  };
}

function sqliteSubject() {
  let Database;
  return {
    id: 'sqlite',
    section: 'durable',
    label: 'better-sqlite3 (WAL, synchronous=FULL)',
    note:
      'INSERT OR FAIL, then DELETE ... WHERE key AND token, each its own (autocommit) transaction; better-sqlite3 is ' +
      'synchronous, so N in flight = N logical acquirers taking turns on the JS thread and an acquire\'s latency ' +
      'includes waiting for the others\' turns; blocks the event loop',
    setup() {
      try {
        Database = requireHere('better-sqlite3');
      } catch (err) {
        throw new Error(`better-sqlite3 is not installed (npm install --save-dev better-sqlite3): ${err.code ?? err.message}`);
      }
    },
    run(inFlight) {
      const dir = scratchDir('lease-sqlite');
      const db = new Database(path.join(dir.path, 'leases.db'));
      try {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.exec('CREATE TABLE leases (key TEXT PRIMARY KEY, token INTEGER NOT NULL, acquired_at INTEGER NOT NULL)');
        const insert = db.prepare('INSERT OR FAIL INTO leases (key, token, acquired_at) VALUES (?, ?, ?)');
        const remove = db.prepare('DELETE FROM leases WHERE key = ? AND token = ?');
        let lastToken = 0;
        const r = syncRoundRobinPairs({
          writers: inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          acquire: (loop) => {
            const token = ++lastToken;
            insert.run(loopKey(loop), token, Date.now()); // throws SQLITE_CONSTRAINT if held
            return token;
          },
          release: (loop, token) => {
            if (remove.run(loopKey(loop), token).changes !== 1) throw new Error(`release of ${loopKey(loop)} deleted nothing`);
          },
        });
        return { pairs: r.ops, seconds: r.seconds, pairsPerSec: r.opsPerSec, p50us: r.p50us, p99us: r.p99us };
      } finally {
        db.close();
        dir.remove();
      }
    },
  };
}

function postgresSubject() {
  let pg;
  let server;
  return {
    id: 'postgres',
    section: 'durable',
    label: 'PostgreSQL (fsync=on, synchronous_commit=on)',
    note:
      'INSERT ... ON CONFLICT (key) DO NOTHING (rowCount must be 1), then DELETE ... WHERE key AND token, each its own ' +
      'autocommit transaction, prepared; N connections (pg Pool), one per async loop; server on 127.0.0.1, data in ' +
      `${path.relative(repoRoot, scratchRoot()) || scratchRoot()}`,
    async setup() {
      try {
        pg = (await import('pg')).default;
      } catch (err) {
        throw new Error(`the pg client is not installed (npm install --save-dev pg): ${err.code ?? err.message}`);
      }
      const { startPostgres } = await import('../test/support/servers.mjs');
      server = await startPostgres({
        baseDir: scratchRoot(),
        settings: { max_connections: String(Math.max(100, Math.max(...config.inFlight) + 10)) },
      });
      log(`postgres: ${server.url} (data ${server.dataDir})`);
    },
    async teardown() {
      await server?.stop();
    },
    async run(inFlight) {
      const pool = new pg.Pool({ connectionString: server.url, max: inFlight });
      // An idle client hearing the server shut down (teardown) is not a failure of the cell.
      pool.on('error', () => undefined);
      const clients = [];
      try {
        // A fresh table per cell: no dead tuples carried over from the last one.
        await pool.query('DROP TABLE IF EXISTS leases');
        await pool.query('CREATE TABLE leases (key text PRIMARY KEY, token bigint NOT NULL, acquired_at bigint NOT NULL)');
        for (let i = 0; i < inFlight; i++) {
          const client = await pool.connect();
          client.on('error', () => undefined);
          clients.push(client);
        }
        let lastToken = 0;
        const r = await closedLoopPairs({
          inFlight,
          seconds: config.seconds,
          warmupSeconds: config.warmupSeconds,
          acquire: async (loop) => {
            const token = ++lastToken;
            const res = await clients[loop].query({
              name: 'lease-acquire',
              text: 'INSERT INTO leases (key, token, acquired_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING',
              values: [loopKey(loop), token, Date.now()],
            });
            if (res.rowCount !== 1) throw new Error(`acquire of ${loopKey(loop)} refused: the key should be free`);
            return token;
          },
          release: async (loop, token) => {
            const res = await clients[loop].query({
              name: 'lease-release',
              text: 'DELETE FROM leases WHERE key = $1 AND token = $2',
              values: [loopKey(loop), token],
            });
            if (res.rowCount !== 1) throw new Error(`release of ${loopKey(loop)} deleted nothing`);
          },
        });
        return {
          pairs: r.ops,
          seconds: r.seconds,
          pairsPerSec: r.opsPerSec,
          p50us: r.p50us,
          p99us: r.p99us,
          eventLoopDelayP99ms: r.eventLoopDelayP99ms,
        };
      } finally {
        for (const c of clients) c.release();
        await pool.end();
      }
    },
  };
}

// ---------------------------------------------------------------- driver

const allSubjects = [orderlyMemory, jsMap, breakdownSubject(), orderlyDurableSubject(), sqliteSubject(), postgresSubject()];

async function main() {
  const loadAvgStart = os.loadavg();
  // The machine may be shared: sample the 1-minute load average through the run.
  const loadSamples = [loadAvgStart[0]];
  const loadTimer = setInterval(() => loadSamples.push(os.loadavg()[0]), 5000).unref();
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

  const cells = subjects.flatMap((s) => (s.levels ?? config.inFlight).map((inFlight) => ({ subject: s, inFlight, runs: [], errors: [] })));
  log(
    `bench:lease — ${cells.length} cells × ${config.repeats} runs, ${config.warmupSeconds}s warm-up + ${config.seconds}s each ` +
      `(breakdown probes ${Math.min(PROBE_SECONDS_MAX, config.seconds)}s), data under ${scratchRoot()}; load average ${loadAvgStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  try {
    // Repeats are interleaved, not back to back, so a noisy minute on a
    // shared machine spreads over all subjects instead of sinking one.
    for (let rep = 1; rep <= config.repeats; rep++) {
      for (const cell of cells) {
        const tag = `[${rep}/${config.repeats}] ${cell.subject.label}${cell.subject.section === 'durable' ? ` @${cell.inFlight}` : ''}`;
        try {
          const loadAvg1 = os.loadavg()[0];
          const r = { ...(await cell.subject.run(cell.inFlight)), loadAvg1 };
          cell.runs.push(r);
          if (cell.subject.section === 'breakdown') {
            log(`${tag}: ${Object.entries(r).filter(([k]) => k.endsWith('Ns')).map(([k, v]) => `${k} ${num(v, 1)}`).join(', ')}`);
          } else {
            const latency = r.p50us !== undefined ? `, acquire p50 ${num(r.p50us)} µs, p99 ${num(r.p99us)} µs` : '';
            log(`${tag}: ${num(r.pairsPerSec)} pairs/s${latency}`);
          }
        } catch (err) {
          cell.errors.push(err.message);
          log(`${tag}: FAILED ${err.stack ?? err.message}`);
        }
      }
    }
  } finally {
    for (const s of subjects) {
      try {
        await s.teardown?.();
      } catch (err) {
        log(`teardown of ${s.label} failed: ${err.message}`);
      }
    }
  }
  const loadAvgEnd = os.loadavg();
  clearInterval(loadTimer);
  loadSamples.push(loadAvgEnd[0]);
  const loadRange = { min: Math.min(...loadSamples), median: median(loadSamples), max: Math.max(...loadSamples), samples: loadSamples.length };

  const summary = (cell) => (cell.runs.length ? medianOfRuns(cell.runs) : {});
  const cellOf = (id, n) => cells.find((c) => c.subject.id === id && (n === undefined || c.inFlight === n));

  // In memory.
  const jsMapPairs = summary(cellOf('js-map') ?? { runs: [] }).pairsPerSec ?? null;
  const memoryRows = cells
    .filter((c) => c.subject.section === 'memory')
    .map((cell) => {
      const m = summary(cell);
      return {
        subject: cell.subject.id,
        label: cell.subject.label,
        pairsPerSec: m.pairsPerSec ?? null,
        nsPerPair: m.nsPerPair ?? null,
        ratioToJsMap: m.pairsPerSec && jsMapPairs ? m.pairsPerSec / jsMapPairs : null,
        loadAvg1: m.loadAvg1 ?? null,
        runs: cell.runs,
        errors: cell.errors,
      };
    });

  // Breakdown.
  const breakdownCell = cellOf('breakdown');
  const b = breakdownCell ? summary(breakdownCell) : {};
  const breakdownRows = breakdownCell
    ? [
        { piece: 'await of a resolved promise (JS)', key: 'awaitResolvedNs' },
        { piece: 'native .durable getter (least napi call: no args, returns a bool)', key: 'nativeGetterNs' },
        { piece: 'native inFlight() (bare napi call, one atomic load in Rust)', key: 'nativeInFlightNs' },
        { piece: 'LeaseStore.inFlight() (wrapper + napi call)', key: 'wrapperInFlightNs' },
        { piece: 'native acquire + release (2 napi calls, no promise, no lease object)', key: 'nativePairNs' },
        { piece: 'JS Map acquire + release, no promise (baseline bookkeeping)', key: 'jsMapPairNoAwaitNs' },
        { piece: 'JS Map pair with await (baseline)', key: 'jsMapPairNs' },
        { piece: 'LeaseStore pair with await (the headline loop)', key: 'wrapperPairNs' },
      ].map((r) => ({ ...r, ns: b[r.key] ?? null, share: b[r.key] && b.wrapperPairNs ? b[r.key] / b.wrapperPairNs : null }))
    : [];

  // Durable.
  const durableRows = cells
    .filter((c) => c.subject.section === 'durable')
    .map((cell) => {
      const m = summary(cell);
      const sqliteSame = summary(cellOf('sqlite', cell.inFlight) ?? { runs: [] }).pairsPerSec;
      return {
        subject: cell.subject.id,
        label: cell.subject.label,
        inFlight: cell.inFlight,
        pairsPerSec: m.pairsPerSec ?? null,
        p50us: m.p50us ?? null,
        p99us: m.p99us ?? null,
        ratioToSqliteSameInFlight: m.pairsPerSec && sqliteSame ? m.pairsPerSec / sqliteSame : null,
        syncsPerPair: m.syncsPerPair ?? null,
        checkpoints: m.checkpoints ?? null,
        eventLoopDelayP99ms: m.eventLoopDelayP99ms ?? null,
        loadAvg1: m.loadAvg1 ?? null,
        runs: cell.runs,
        errors: cell.errors,
      };
    });

  const targets = [];
  const memRow = memoryRows.find((r) => r.subject === 'orderly-memory');
  if (memRow) {
    targets.push({
      subject: 'orderly-memory',
      check: 'in-memory acquire+release pairs/s',
      value: memRow.pairsPerSec,
      goal: `>= ${num(TARGET_MEMORY_PAIRS_PER_SEC)}`,
      pass: memRow.pairsPerSec === null ? null : memRow.pairsPerSec >= TARGET_MEMORY_PAIRS_PER_SEC,
      format: 'count',
    });
  }
  const durable64 = durableRows.find((r) => r.subject === 'orderly' && r.inFlight === 64);
  if (durable64) {
    const v = durable64.ratioToSqliteSameInFlight;
    targets.push({
      subject: 'orderly',
      check: 'durable pairs/s at 64 in flight vs better-sqlite3 at 64',
      value: v,
      goal: `>= ${TARGET_DURABLE_VS_SQLITE_AT_64}x`,
      pass: v === null ? null : v >= TARGET_DURABLE_VS_SQLITE_AT_64,
      format: 'ratio',
    });
  }

  if (memoryRows.length) {
    console.log('in memory — one JS thread, tight loop over 1,000 keys\n');
    console.log(
      formatTable(
        [
          { key: 'label', title: 'subject' },
          { key: 'pairsPerSec', title: 'pairs/s', format: (v) => num(v) },
          { key: 'nsPerPair', title: 'ns/pair', format: (v) => num(v) },
          { key: 'ratioToJsMap', title: 'x JS Map', format: (v) => ratio(v) },
        ],
        memoryRows,
      ),
    );
  }
  if (breakdownRows.length) {
    console.log('\nwhere an in-memory pair goes — ns per operation, each piece its own tight loop\n');
    console.log(
      formatTable(
        [
          { key: 'piece', title: 'piece' },
          { key: 'ns', title: 'ns/op', format: (v) => num(v, 1) },
          { key: 'share', title: 'of pair', format: (v) => (v === null ? '—' : `${Math.round(v * 100)}%`) },
        ],
        breakdownRows,
      ),
    );
  }
  if (durableRows.length) {
    console.log('\ndurable — closed loops, distinct key per acquirer\n');
    console.log(
      formatTable(
        [
          { key: 'label', title: 'subject' },
          { key: 'inFlight', title: 'in flight' },
          { key: 'pairsPerSec', title: 'pairs/s', format: (v) => num(v) },
          { key: 'p50us', title: 'acquire p50 µs', format: (v) => num(v) },
          { key: 'p99us', title: 'p99 µs', format: (v) => num(v) },
          { key: 'ratioToSqliteSameInFlight', title: 'x sqlite@N', format: (v) => ratio(v) },
          { key: 'syncsPerPair', title: 'WAL syncs/pair', format: (v) => num(v, 3) },
        ],
        durableRows,
      ),
    );
  }
  console.log(
    `\nmedians of ${config.repeats} runs; ${config.seconds}s measured after ${config.warmupSeconds}s warm-up. ` +
      'A pair = acquire + release. x sqlite@N = ratio to better-sqlite3 at the same in flight. ' +
      'WAL syncs/pair: orderly fdatasyncs in the window / pairs in it. ' +
      'The SQL subjects commit twice per pair (acquire and release are both durable); orderly\'s release is relaxed. ' +
      `Load average ${loadAvgStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAvgEnd.map((l) => l.toFixed(2)).join(' ')} at end; ` +
      `1-minute load during the run min ${loadRange.min.toFixed(2)} / median ${loadRange.median.toFixed(2)} / max ${loadRange.max.toFixed(2)} ` +
      `on ${os.availableParallelism?.() ?? os.cpus().length} cores (per-run values in the JSON).`,
  );
  for (const s of subjects) console.log(`  ${s.label}: ${s.note}`);
  for (const s of skipped) console.log(`  skipped ${s.subject}: ${s.reason}`);
  if (targets.length) {
    console.log('\ntargets:');
    for (const t of targets) {
      const verdict = t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL';
      const value = t.value === null ? '—' : t.format === 'ratio' ? ratio(t.value) : num(t.value);
      console.log(`  ${verdict}  ${t.subject}: ${t.check} = ${value} (goal ${t.goal})`);
    }
  }

  // A run narrowed by BENCH_SUBJECTS/BENCH_INFLIGHT is not a baseline and
  // must not replace one.
  const partial = config.subjects !== null || Boolean(process.env.BENCH_INFLIGHT);
  const file = writeResults(partial ? 'lease.partial' : 'lease', {
    benchmark: 'lease',
    date: new Date().toISOString(),
    command: commandLine(),
    machine: machineInfo(scratchRoot()),
    loadAvg: { start: loadAvgStart, end: loadAvgEnd, oneMinuteDuringRun: loadRange },
    config: { ...config, keys: KEYS, probeSeconds: Math.min(PROBE_SECONDS_MAX, config.seconds) },
    subjects: subjects.map((s) => ({ id: s.id, section: s.section, label: s.label, note: s.note })),
    skipped,
    baselines: {
      memory: { subject: 'js-map', pairsPerSec: jsMapPairs },
      durable: { subject: 'sqlite', note: 'better-sqlite3 at the same in flight' },
    },
    memory: memoryRows,
    breakdown: breakdownCell ? { pieces: breakdownRows.map(({ piece, key, ns, share }) => ({ piece, key, ns, share })), runs: breakdownCell.runs, errors: breakdownCell.errors } : null,
    durable: durableRows,
    targets: targets.map(({ format, ...t }) => t),
  });
  log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

let finished = false;
process.on('exit', (code) => {
  // Exit code 13 with no output: the event loop emptied while a promise the
  // benchmark awaits was pending, i.e. a subject left an operation pending
  // without keeping the process alive.
  if (!finished) log(`bench:lease exited (code ${code}) before finishing: an awaited operation never settled`);
});
await main();
finished = true;
