// One cell of bench:city (a design on a database at a did-work rate) in a
// process of its own, forked by bench/city.mjs: process.cpuUsage() then holds
// this design's CPU alone (its threads included: orderly's WAL writer, the
// SQLite worker), not the orchestrator's or another cell's.
//
// Protocol (IPC messages):
//   parent → { type: 'prepare', cell }   create the schema, before anything is measured
//   child  → { type: 'ready' }           the parent reads the database's counters now
//   parent → { type: 'go' }
//   child  → { type: 'started', t0 }     the simulated clock's origin (epoch ms)
//   child  → { type: 'done', result }    every commit of the run is made and its
//                                        connections are closed
//   parent → { type: 'exit' }
//
// Bodies are in-process no-ops: `run` returns at once, did-work or not by a
// seeded hash of (seed, scoped order, fire number), so every design sees the
// same sequence of did-work fires for as long as their fire counts agree.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { openStore, prepareStore, TrackingBeadDispatcher } from '../baselines/tracking-bead/index.mjs';
import { percentile, Samples } from './stats.mjs';

/** 32-bit FNV-1a then murmur3's finalizer: a well-mixed hash of a short string. */
function hash32(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Whether fire number `n` of `scoped` did work, at `pct` percent. */
function didWorkFor(seed, scoped, n, pct) {
  return hash32(`${seed}\0${scoped}\0${n}`) / 2 ** 32 < pct / 100;
}

/** Epoch ms with sub-ms precision (Date.now() has whole ms). */
const nowMs = () => performance.timeOrigin + performance.now();

/** The bodies, counting fires per scoped order and per simulated minute. */
function makeBodies(cell, clock) {
  const fired = new Map();
  const minutes = Array.from({ length: Math.ceil(cell.simMinutes) }, () => ({ fires: 0, didWork: 0 }));
  const counts = { fires: 0, didWork: 0 };
  return {
    counts,
    minutes,
    run(scoped) {
      const n = fired.get(scoped) ?? 0;
      fired.set(scoped, n + 1);
      const didWork = didWorkFor(cell.seed, scoped, n, cell.didWorkPct);
      counts.fires++;
      if (didWork) counts.didWork++;
      const m = minutes[Math.min(minutes.length - 1, Math.floor(clock.simMinute()))];
      if (m) {
        m.fires++;
        if (didWork) m.didWork++;
      }
      return { didWork };
    },
  };
}

/**
 * What orderly's WAL writer thread handed to write() so far (its own
 * /proc/self/task/<tid>/io: the lease log and nothing else) and what it sent
 * to the block device; null if the thread is not found.
 */
function walWriterIo() {
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      if (!readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('orderly-wal')) continue;
      const io = Object.fromEntries(
        readFileSync(`/proc/self/task/${tid}/io`, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(':').map((x) => x.trim()))
          .map(([k, v]) => [k, Number(v)]),
      );
      return { wchar: io.wchar, writeBytes: io.write_bytes, syscw: io.syscw };
    }
  } catch {
    // not Linux
  }
  return null;
}

async function loadOrderly(entry) {
  return import(pathToFileURL(entry).href);
}

// ------------------------------------------------------------ designs

function orderlyDesign(cell) {
  let orderly;
  let controller;
  let ioAtStart;
  let syncsAtStart;
  const due = new Map();
  return {
    async prepare() {
      orderly = await loadOrderly(cell.orderlyEntry);
      // The audit schema is created now, so the run's own sink.open() costs two reads and no write.
      const sink = orderly.sinkFromUrl(cell.url);
      await sink.open();
      await sink.close();
    },
    async start({ bodies, latency }) {
      const seen = new Map();
      for (const o of cell.orders) seen.set(`${o.scope}\0${o.name}`, o);
      const specs = [...seen.values()].map((o) =>
        orderly.defineOrder({
          name: o.name,
          trigger: 'cooldown',
          interval: o.intervalMs,
          scope: o.scope,
          timeout: '60s',
          run: async (ctx) => bodies.run(ctx.scopedName),
        }),
      );
      controller = await orderly.Controller.start({
        state: cell.stateDir,
        orders: specs,
        rigs: cell.rigs,
        audit: orderly.sinkFromUrl(cell.url),
        onEvent: (e) => {
          if (e.type === 'fired') due.set(e.fireId, e.due ?? e.at);
          else if (e.type === 'completed') {
            const d = due.get(e.fireId);
            due.delete(e.fireId);
            if (d !== undefined) latency.push(nowMs() - d);
          }
        },
      });
      ioAtStart = walWriterIo();
      syncsAtStart = controller.stats().walSyncs;
      const mine = cell.orders.map((o) => o.scopedName).sort();
      const theirs = controller.orders.map((o) => o.scopedName).sort();
      if (mine.join('\n') !== theirs.join('\n')) throw new Error(`orderly scoped the orders differently: ${theirs.join(', ')}`);
    },
    commits: () => controller.stats().audit.transactions,
    async stop() {
      // Read before stop(): the writer thread ends with the store, and its counters with it.
      const io = walWriterIo();
      const syncs = controller.stats().walSyncs;
      await controller.stop();
      const s = controller.stats();
      return {
        walWritten: io && ioAtStart ? io.wchar - ioAtStart.wchar : null,
        walDeviceBytes: io && ioAtStart ? io.writeBytes - ioAtStart.writeBytes : null,
        walWriteCalls: io && ioAtStart ? io.syscw - ioAtStart.syscw : null,
        walSyncsInRun: syncs - syncsAtStart,
        skipped: s.skipped,
        failures: s.failed + s.timeouts + s.audit.failures,
        clientCommits: s.audit.transactions,
        auditRecords: s.audit.records,
        auditInserted: s.audit.inserted,
        walFileBytes: s.walBytes,
        walSyncs: s.walSyncs,
        controllerFires: s.fires,
      };
    },
  };
}

function trackingBeadDesign(cell) {
  let store;
  let dispatcher;
  return {
    async prepare() {
      await prepareStore(cell.db, cell.db === 'sqlite' ? cell.file : cell.url);
    },
    async start({ bodies, latency }) {
      store = await openStore(cell.db, cell.db === 'sqlite' ? cell.file : cell.url);
      dispatcher = new TrackingBeadDispatcher({
        store,
        variant: cell.design,
        orders: cell.orders.map((o) => ({ scopedName: o.scopedName, intervalMs: o.intervalMs, run: async () => bodies.run(o.scopedName) })),
        onDone: ({ due }) => latency.push(nowMs() - due),
      });
      await dispatcher.start();
    },
    commits: () => store.stats().commits,
    async stop() {
      await dispatcher.stop();
      const s = dispatcher.stats();
      await store.end();
      return {
        skipped: s.skippedHeld,
        failures: s.failures,
        clientCommits: s.commits,
        clientStatements: s.statements,
        clientReads: s.reads,
        controllerFires: s.fires,
      };
    },
  };
}

// ------------------------------------------------------------ the run

async function run(cell, design, send) {
  const minuteMs = 60_000 / cell.speedup;
  const simMs = cell.simMinutes * 60_000;
  let t0;
  const clock = { simMinute: () => Math.max(0, ((Date.now() - (t0 ?? Date.now())) * cell.speedup) / 60_000) };
  const bodies = makeBodies(cell, clock);
  const latency = new Samples();

  // The simulated clock starts when the design has scheduled its first fires
  // (all due at once), not before: opening a store or starting a SQLite
  // worker takes a while, and that time is no part of the simulated hour.
  await design.start({ bodies, latency });
  t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  send({ type: 'started', t0 });

  // Client-side commits at each simulated minute boundary.
  const commitsAt = [];
  const boundaries = [];
  for (let i = 1; i < Math.ceil(cell.simMinutes); i++) {
    boundaries.push(
      setTimeout(() => {
        commitsAt[i] = design.commits();
      }, t0 + i * minuteMs - Date.now()),
    );
  }
  // A fire due exactly at the end belongs to the next hour: stop 1 ms before it.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + simMs / cell.speedup - 1 - Date.now())));
  for (const b of boundaries) clearTimeout(b);
  const stopped = await design.stop();
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  commitsAt[0] = 0;
  commitsAt[Math.ceil(cell.simMinutes)] = stopped.clientCommits;
  const perMinute = bodies.minutes.map((m, i) => {
    const from = commitsAt[i];
    const to = commitsAt[i + 1];
    return { ...m, clientCommits: from === undefined || to === undefined ? null : to - from };
  });
  const sorted = latency.sorted();
  return {
    t0,
    fires: bodies.counts.fires,
    didWorkFires: bodies.counts.didWork,
    ...stopped,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    wallMs,
    latencyP50ms: percentile(sorted, 50),
    latencyP90ms: percentile(sorted, 90),
    latencyP99ms: percentile(sorted, 99),
    latencySamples: sorted.length,
    perMinute,
  };
}

// ------------------------------------------------------------ IPC

const send = (m) => process.send?.(m);
let cell;
let design;
process.on('message', async (msg) => {
  try {
    if (msg.type === 'prepare') {
      cell = msg.cell;
      if (cell.stateDir) mkdirSync(cell.stateDir, { recursive: true });
      if (cell.file) mkdirSync(path.dirname(cell.file), { recursive: true });
      design = cell.design === 'orderly' ? orderlyDesign(cell) : trackingBeadDesign(cell);
      await design.prepare();
      send({ type: 'ready' });
    } else if (msg.type === 'go') {
      send({ type: 'done', result: await run(cell, design, send) });
    } else if (msg.type === 'exit') {
      process.disconnect?.();
      process.exit(0);
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exitCode = 1;
  }
});
process.on('disconnect', () => process.exit(process.exitCode ?? 0));
