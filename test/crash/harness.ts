// The crash harness: real `orderly-dispatch run` controllers as child processes, killed
// with SIGKILL at random moments and at named crash points, restarted on the
// same state again and again; then the invariants are checked from evidence
// orderly does not write: each body's own O_APPEND log, the audit rows read
// from the database directly, the process table, the state directory's size.
//
// I1 never two bodies of one scoped order at once
// I2 no body starts before its cooldown since the previous start
// I3 every run that ended did-work/failed/timeout has exactly one record with
//    its real outcome; a fire cut off by a kill has exactly one (interrupted)
// I4 no record for a no-op run
// I5 the state directory stays bounded
// I6 fences strictly increase per order and across every restart
import { chmodSync, closeSync, type Dirent, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Controller, loadCity, sinkFromUrl } from '../../src/index.js';
import { type BodyRun, type ControllerRun, readBodyLogs, sleep, startController, uniform, writeOrder } from './support.js';

/** Points the controller kills itself at (ORDERLY_CRASH_POINT), plus `body:running`, a kill by the harness while a body runs. */
export const CRASH_POINTS = [
  'fire:acquired',
  'fire:spawned',
  'body:running',
  'fire:body-exited',
  'fire:completed',
  'audit:committed',
  'audit:acked',
  'checkpoint:written',
  'checkpoint:synced',
  'checkpoint:renamed',
  'checkpoint:dir-synced',
  'checkpoint:deleted',
] as const;
export type CrashPointName = (typeof CRASH_POINTS)[number];

export const INVARIANTS = ['I1', 'I2', 'I3', 'I4', 'I5', 'I6', 'harness'] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface AuditRow {
  fireId: string;
  scopedName: string;
  outcome: string;
  fence: string;
  exitCode: number | null;
}

export interface CampaignOptions {
  /** Where orders, logs and state go (a fresh directory). */
  root: string;
  /** Audit sink URL for `orderly-dispatch run --audit`, and how to read its rows straight from the database. */
  audit: { url: string; read: () => Promise<AuditRow[]> };
  /** Kills at random moments. */
  randomKills: number;
  /** Crash points to hit, each at least `hitsPerPoint` times. */
  points: readonly CrashPointName[];
  hitsPerPoint: number;
  /** I2 tolerance: the spawn delay of the earlier run shortens a logged gap (see below). */
  gapToleranceMs: number;
  /** Lease-store sizes, small so checkpoints happen every few seconds. */
  segmentBytes?: number;
  compactAfterBytes?: number;
  /** I5: the state directory's size must stay under this. */
  stateBoundBytes: number;
  /** Called after every kill with a one-line status, for long runs. */
  progress?: (line: string) => void;
}

export interface CampaignResult {
  hits: Record<string, number>;
  attempts: Record<string, number>;
  randomKills: number;
  /** Crash-point runs that did not reach their point in time, killed by the harness instead. */
  fallbackKills: number;
  controllers: number;
  bodies: number;
  outcomes: Record<string, number>;
  auditRecords: number;
  recordsChecked: number;
  adopted: number;
  interruptedRecords: number;
  maxStateBytes: number;
  minGapSlackMs: number;
  maxSpawnDelayMs: number;
  violations: Record<Invariant, string[]>;
  seconds: number;
}

// ------------------------------------------------------------ the workload

/**
 * Logs `start`/`end` lines (one `>>` echo is one O_APPEND write), sleeps a
 * random time and exits 0 (did work), 100 (no-op) or 1 (failed); with
 * probability $4 % it overruns to $5 ms so the controller times it out and
 * kills its process group (then no `end` line is written).
 */
const BODY = `#!/bin/sh
logdir="$1"; min_ms="$2"; max_ms="$3"; overrun_pct="$4"; overrun_ms="$5"
log="$logdir/$ORDERLY_SCOPED_NAME.log"
echo "start $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N) $ORDERLY_FIRED_AT" >> "$log"
set -- $(od -An -N6 -tu2 /dev/urandom)
ms=$(( min_ms + $1 % (max_ms - min_ms + 1) ))
if [ $(( $3 % 100 )) -lt "$overrun_pct" ]; then ms=$overrun_ms; fi
sleep "$(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 )))"
case $(( $2 % 3 )) in
  0) code=0 ;;
  1) code=100 ;;
  *) code=1 ;;
esac
echo "end $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N) $code" >> "$log"
exit $code
`;

interface WorkOrder {
  name: string;
  intervalMs: number;
  timeoutMs: number;
  sleep: [number, number];
  overrunPct: number;
  overrunMs: number;
}

/**
 * Ten orders, 0.5–2 s cooldowns, bodies of 20–900 ms. Two time out now and
 * then, with a timeout longer than their cooldown so that single flight (not
 * the cooldown) is what keeps the next run from starting.
 */
const ORDERS: WorkOrder[] = [
  ...[800, 900, 1_000, 1_100, 1_200, 1_400, 1_600, 2_000].map((intervalMs, i) => ({
    name: `work-${i}`,
    intervalMs,
    timeoutMs: 5_000,
    sleep: [20, 900] as [number, number],
    overrunPct: 0,
    overrunMs: 0,
  })),
  ...[500, 700].map((intervalMs, i) => ({
    name: `overrun-${i}`,
    intervalMs,
    timeoutMs: 900,
    sleep: [20, 400] as [number, number],
    overrunPct: 30,
    overrunMs: 2_500,
  })),
];

function writeWorkload(ordersDir: string, logDir: string): void {
  mkdirSync(ordersDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const body = join(ordersDir, 'body.sh');
  writeFileSync(body, BODY);
  chmodSync(body, 0o755);
  for (const o of ORDERS) writeOrder(ordersDir, o.name, { ...o, exec: `${body} ${logDir} ${o.sleep[0]} ${o.sleep[1]} ${o.overrunPct} ${o.overrunMs}` });
}

// ------------------------------------------------------------ evidence

/** Bytes of every file under `dir` (apparent size: preallocated segments count in full). */
function dirBytes(dir: string): number {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else {
      try {
        total += statSync(p).size;
      } catch {
        // Removed between the listing and the stat.
      }
    }
  }
  return total;
}

/** Pids of live processes whose command line mentions `needle` (the bodies: their path is under the orders dir). */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // A zombie has finished its work; PID 1 reaps it in its own time.
      if (cmd.includes(needle) && stat.split(') ')[1]?.[0] !== 'Z') out.push(Number(pid));
    } catch {
      // Gone.
    }
  }
  return out;
}

/** Size of each body log. */
function sizesOf(logDir: string): Map<string, number> {
  return new Map(readdirSync(logDir).map((f) => [f, statSync(join(logDir, f)).size]));
}

/** Whether a body log grew by a `start` line since `before` was taken. */
function newStartLogged(logDir: string, before: Map<string, number>): boolean {
  for (const [f, size] of sizesOf(logDir)) {
    const was = before.get(f) ?? 0;
    if (size <= was) continue;
    const buf = Buffer.alloc(size - was);
    const fd = openSync(join(logDir, f), 'r');
    try {
      readSync(fd, buf, 0, buf.length, was);
    } finally {
      closeSync(fd);
    }
    if (buf.toString('utf8').includes('start ')) return true;
  }
  return false;
}

// ------------------------------------------------------------ the campaign

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = Date.now();
  const ordersDir = join(o.root, 'orders');
  const logDir = join(o.root, 'logs');
  const state = join(o.root, 'state');
  writeWorkload(ordersDir, logDir);
  const intervalOf = new Map(ORDERS.map((w) => [w.name, w]));
  const args = [
    '--grace', '15s',
    '--retention-days', '0',
    '--store-segment-bytes', String(o.segmentBytes ?? 65_536),
    '--store-compact-after', String(o.compactAfterBytes ?? 8_192),
  ];
  const violations = Object.fromEntries(INVARIANTS.map((i) => [i, [] as string[]])) as Record<Invariant, string[]>;
  const hits: Record<string, number> = Object.fromEntries(o.points.map((p) => [p, 0]));
  const attempts: Record<string, number> = Object.fromEntries(o.points.map((p) => [p, 0]));
  const bodyKills: Array<{ gen: number; at: number }> = [];
  let logSizes = new Map<string, number>();
  const runs: ControllerRun[] = [];
  let randomKills = 0;
  let fallbackKills = 0;
  let maxStateBytes = 0;

  const pending = () => o.points.filter((p) => hits[p]! < o.hitsPerPoint && attempts[p]! < o.hitsPerPoint * 8);
  for (let cycle = 0; randomKills < o.randomKills || pending().length > 0; cycle++) {
    const todo = pending();
    // Alternate while both kinds remain, so random kills see the state crash points leave and vice versa.
    const point = todo.length > 0 && (randomKills >= o.randomKills || cycle % 2 === 1) ? todo[Math.floor(Math.random() * todo.length)]! : undefined;
    const armed = point && point !== 'body:running' ? `${point}@${point.startsWith('checkpoint:') ? 1 : 1 + Math.floor(Math.random() * 3)}` : undefined;
    const gen = runs.length;
    if (point === 'body:running') logSizes = sizesOf(logDir);
    const run = startController(ordersDir, state, args, { audit: o.audit.url, ...(armed ? { crashPoint: armed } : {}) });
    runs.push(run);
    const exited = run.exited.then(() => true);
    if (!point) {
      // A random moment: booting (node start-up is ~0.2 s), recovering, or with bodies in flight.
      const died = await Promise.race([sleep(uniform(150, 1_500)).then(() => false), exited]);
      if (died) violations.harness.push(`controller ${gen} exited on its own: ${run.stderr().slice(-500)}`);
      randomKills++;
    } else if (point === 'body:running') {
      attempts[point]!++;
      // Kill soon after a body of this controller logs `start`.
      const deadline = Date.now() + 8_000;
      while (!newStartLogged(logDir, logSizes) && Date.now() < deadline && run.child.exitCode === null) await sleep(5);
      await sleep(uniform(0, 100));
      bodyKills.push({ gen, at: Date.now() });
    } else {
      attempts[point]!++;
      const died = await Promise.race([sleep(point.startsWith('checkpoint:') ? 15_000 : 6_000).then(() => false), exited]);
      if (died) {
        const status = await run.exited;
        if (status.signal === 'SIGKILL') hits[point]!++;
        else violations.harness.push(`controller ${gen} (armed ${armed}) exited ${JSON.stringify(status)}: ${run.stderr().slice(-500)}`);
      } else fallbackKills++;
    }
    run.child.kill('SIGKILL');
    await run.exited;
    if (point === 'body:running') {
      // A hit only if some body provably ran at the kill: it logged `start` before and no `end` until after.
      const at = bodyKills[bodyKills.length - 1]!.at;
      if ([...readBodyLogs(logDir).values()].flat().some((r) => r.start <= at && (r.end === undefined || r.end > at))) hits[point]!++;
    }
    maxStateBytes = Math.max(maxStateBytes, dirBytes(state));
    if (cycle % 25 === 24) {
      const pts = o.points.map((p) => `${p}=${hits[p]}`).join(' ');
      o.progress?.(`${runs.length} controllers, ${randomKills} random kills, state ${(maxStateBytes / 1024).toFixed(0)} KiB max; ${pts}`);
    }
  }

  // ------------------------------------------------ a clean run, SIGTERM
  const last = startController(ordersDir, state, args, { audit: o.audit.url });
  runs.push(last);
  await sleep(4_000);
  last.child.kill('SIGTERM');
  const lastStatus = await last.exited;
  if (lastStatus.code !== 0) violations.harness.push(`the clean run exited ${JSON.stringify(lastStatus)}: ${last.stderr().slice(-500)}`);

  // Bodies outlive their controllers; the process table says when they are all gone.
  const bodyDeadline = Date.now() + 30_000;
  while (processesMentioning(ordersDir).length > 0 && Date.now() < bodyDeadline) await sleep(100);
  const stragglers = processesMentioning(ordersDir);
  if (stragglers.length > 0) violations.harness.push(`bodies still running 30 s after the last controller stopped: pids ${stragglers.join(', ')}`);

  // G3 holds "once the controller has run again": one more boot without timers records what ran past the last one.
  const { orders } = await loadCity(ordersDir);
  const final = await Controller.start({ state, orders, schedule: false, audit: sinkFromUrl(o.audit.url), store: { segmentBytes: o.segmentBytes ?? 65_536 } });
  await final.stop(10_000);
  maxStateBytes = Math.max(maxStateBytes, dirBytes(state));

  // ------------------------------------------------------ the evidence
  const logs = readBodyLogs(logDir);
  const all: BodyRun[] = [...logs.values()].flat();
  const audit = await o.audit.read();
  const events = runs.flatMap((r) => r.events);

  for (const [i, r] of runs.entries()) {
    for (const [j, e] of r.events.entries()) {
      // Only the last line of a killed controller can be cut.
      if (e.type === 'unparsed' && j !== r.events.length - 1) violations.harness.push(`controller ${i}: cut line ${String(e.line)}`);
      if (e.type === 'error') violations.harness.push(`controller ${i}: ${String(e.code)} ${String(e.message)}`);
    }
  }
  if (logs.size !== ORDERS.length) violations.harness.push(`only ${logs.size} of ${ORDERS.length} orders ever ran`);

  // I1 single flight; I2 cadence; I6 per order.
  let minGapSlackMs = Infinity;
  for (const [name, rs] of logs) {
    const w = intervalOf.get(name)!;
    for (let i = 1; i < rs.length; i++) {
      const prev = rs[i - 1]!;
      const cur = rs[i]!;
      if (prev.end !== undefined && cur.start < prev.end) violations.I1.push(`${name}: ${cur.fireId} started at ${cur.start} while ${prev.fireId} ran [${prev.start}, ${prev.end}]`);
      const gap = cur.start - prev.start;
      // The cooldown runs from the earlier fire's acquire (its lastRun), which
      // its body logs (ORDERLY_FIRED_AT). The body's own clock bounds that
      // stamp: it cannot be later than the `start` line. A fire before its
      // cooldown is then a start line earlier than that acquire + interval;
      // no tolerance is needed, however late an overloaded machine spawns.
      if (prev.firedAt === undefined || cur.firedAt === undefined) {
        violations.harness.push(`${name}: ${prev.firedAt === undefined ? prev.fireId : cur.fireId} logged no ORDERLY_FIRED_AT`);
        continue;
      }
      if (prev.firedAt > prev.start) violations.I2.push(`${name}: ${prev.fireId} says it was acquired at ${prev.firedAt}, after its body started at ${prev.start}`);
      const slack = cur.start - (prev.firedAt + w.intervalMs);
      minGapSlackMs = Math.min(minGapSlackMs, slack);
      if (slack < 0 || cur.firedAt < prev.firedAt + w.intervalMs) {
        violations.I2.push(`${name}: ${cur.fireId} acquired ${cur.firedAt - prev.firedAt} ms and started ${cur.start - prev.firedAt} ms after ${prev.fireId} was acquired (cooldown ${w.intervalMs} ms; start lines ${gap} ms apart)`);
      }
      if (cur.fence <= prev.fence) violations.I6.push(`${name}: fence ${cur.fence} after ${prev.fence}`);
    }
  }
  // I1 for bodies killed at their timeout (no `end` line): the kill comes at
  // spawn + timeout, so the next run may not start before that; the body's
  // `start` line trails its spawn by up to the tolerance.
  for (const [name, rs] of logs) {
    const w = intervalOf.get(name)!;
    for (let i = 1; i < rs.length; i++) {
      const prev = rs[i - 1]!;
      if (prev.end === undefined && rs[i]!.start < prev.start + w.timeoutMs - o.gapToleranceMs) {
        violations.I1.push(`${name}: ${rs[i]!.fireId} started ${rs[i]!.start - prev.start} ms after ${prev.fireId}, which never ended and had a ${w.timeoutMs} ms timeout`);
      }
    }
  }

  // I6 across restarts: every fence a controller hands out exceeds every fence handed out before it started.
  const fenceOf = new Map(all.map((r) => [r.fireId, r.fence]));
  let before = -1n;
  for (const [gen, r] of runs.entries()) {
    const mine = r.events.filter((e) => e.type === 'fired').map((e) => fenceOf.get(String(e.fireId)) ?? BigInt(String(e.fence)));
    if (mine.length === 0) continue;
    const lo = mine.reduce((a, b) => (a < b ? a : b));
    const hi = mine.reduce((a, b) => (a > b ? a : b));
    if (lo <= before) violations.I6.push(`controller ${gen} handed out fence ${lo}, not above ${before} from before it started`);
    if (hi > before) before = hi;
  }
  const fenceSeen = new Map<bigint, string>();
  for (const r of all) {
    const other = fenceSeen.get(r.fence);
    if (other) violations.I6.push(`fence ${r.fence} used by ${other} and ${r.fireId}`);
    fenceSeen.set(r.fence, r.fireId);
  }

  // I3 / I4 from the audit rows.
  const rowsOf = new Map<string, AuditRow[]>();
  for (const r of audit) rowsOf.set(r.fireId, [...(rowsOf.get(r.fireId) ?? []), r]);
  let recordsChecked = 0;
  for (const r of all) {
    const rows = rowsOf.get(r.fireId) ?? [];
    const w = intervalOf.get(r.scopedName)!;
    const row = rows[0];
    if (rows.length > 1) violations.I3.push(`${r.fireId}: ${rows.length} records`);
    if (row && row.fence !== String(r.fence)) violations.I3.push(`${r.fireId}: record fence ${row.fence}, body fence ${r.fence}`);
    // A run that reached its timeout: the controller's kill can land between
    // the body's `end` line and its exit (recorded `timeout`), and kill the
    // status-writing wrapper with it; if that controller then dies before
    // recording, the next one finds no status (recorded `interrupted`).
    const nearTimeout = r.end !== undefined && r.end - r.start >= w.timeoutMs - 100;
    const cutAtTimeout = (outcome: string) => nearTimeout && (outcome === 'timeout' || outcome === 'interrupted');
    if (r.end === undefined) {
      // Killed at its timeout (the only way a body here dies): timeout, or interrupted when its wrapper died with it before a controller could see the end.
      if (rows.length !== 1 || !['timeout', 'interrupted'].includes(row!.outcome)) violations.I3.push(`${r.scopedName} ${r.fireId} killed at its timeout: ${rows.map((x) => x.outcome).join(',') || 'no record'}`);
    } else if (r.code === 0 || r.code === 1) {
      const want = r.code === 0 ? 'did-work' : 'failed';
      if (rows.length !== 1) violations.I3.push(`${r.scopedName} ${r.fireId} exit ${r.code}: ${rows.length} records`);
      else if (row!.outcome !== want && !cutAtTimeout(row!.outcome)) violations.I3.push(`${r.scopedName} ${r.fireId} exit ${r.code}: recorded ${row!.outcome}`);
    } else if (r.code === 100) {
      if (rows.length > 0 && !cutAtTimeout(row!.outcome)) violations.I4.push(`${r.scopedName} ${r.fireId} no-op: recorded ${row!.outcome}`);
    } else violations.harness.push(`${r.fireId}: exit code ${r.code}`);
    recordsChecked += rows.length;
  }
  // A fire killed between its acquire and its spawn has no body: exactly one `interrupted` record.
  const started = new Set(all.map((r) => r.fireId));
  const orphans = audit.filter((r) => !started.has(r.fireId));
  for (const r of orphans) if (r.outcome !== 'interrupted') violations.I3.push(`${r.fireId}: ${r.outcome} recorded for a fire whose body never started`);
  recordsChecked += orphans.length;
  if ((hits['fire:acquired'] ?? 0) > orphans.length) violations.I3.push(`${hits['fire:acquired']} kills right after an acquire but only ${orphans.length} interrupted records for bodies that never started`);

  // I5
  if (maxStateBytes > o.stateBoundBytes) violations.I5.push(`state directory reached ${maxStateBytes} bytes (bound ${o.stateBoundBytes})`);

  const fired = new Map(events.filter((e) => e.type === 'fired').map((e) => [String(e.fireId), Number(e.at)]));
  const spawnDelays = all.filter((r) => fired.has(r.fireId)).map((r) => r.start - fired.get(r.fireId)!);
  const outcomes: Record<string, number> = {};
  for (const r of all) {
    const k = r.end === undefined ? 'killed at timeout' : `exit ${r.code}`;
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  }
  return {
    hits,
    attempts,
    randomKills,
    fallbackKills,
    controllers: runs.length,
    bodies: all.length,
    outcomes,
    auditRecords: audit.length,
    recordsChecked,
    adopted: events.filter((e) => e.type === 'recovered' && e.action === 'adopted').length,
    interruptedRecords: audit.filter((r) => r.outcome === 'interrupted').length,
    maxStateBytes,
    minGapSlackMs,
    maxSpawnDelayMs: spawnDelays.length ? Math.max(...spawnDelays) : NaN,
    violations,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Sums lanes run side by side into one result. */
export function mergeResults(results: CampaignResult[]): CampaignResult {
  const sum = (f: (r: CampaignResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const add = (pick: (r: CampaignResult) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(pick(r))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const violations = Object.fromEntries(INVARIANTS.map((i) => [i, results.flatMap((r) => r.violations[i])])) as Record<Invariant, string[]>;
  return {
    hits: add((r) => r.hits),
    attempts: add((r) => r.attempts),
    randomKills: sum((r) => r.randomKills),
    fallbackKills: sum((r) => r.fallbackKills),
    controllers: sum((r) => r.controllers),
    bodies: sum((r) => r.bodies),
    outcomes: add((r) => r.outcomes),
    auditRecords: sum((r) => r.auditRecords),
    recordsChecked: sum((r) => r.recordsChecked),
    adopted: sum((r) => r.adopted),
    interruptedRecords: sum((r) => r.interruptedRecords),
    maxStateBytes: Math.max(...results.map((r) => r.maxStateBytes)),
    minGapSlackMs: Math.min(...results.map((r) => r.minGapSlackMs)),
    maxSpawnDelayMs: Math.max(...results.map((r) => r.maxSpawnDelayMs)),
    violations,
    seconds: Math.max(...results.map((r) => r.seconds)),
  };
}

/** The table the harness prints (and the README shows). */
export function formatTable(title: string, r: CampaignResult): string {
  const kills = r.randomKills + r.fallbackKills + Object.values(r.hits).reduce((a, b) => a + b, 0);
  const lines = [
    `${title}`,
    '',
    '| crash point | hits |',
    '|---|---:|',
    ...Object.entries(r.hits).map(([p, n]) => `| \`${p}\` | ${n} |`),
    '',
    '| | |',
    '|---|---:|',
    `| controllers started | ${r.controllers} |`,
    `| kills (SIGKILL) | ${kills} (${r.randomKills} at random moments, ${kills - r.randomKills - r.fallbackKills} at crash points, ${r.fallbackKills} crash-point runs killed at their deadline) |`,
    `| runs (bodies started) | ${r.bodies} (${Object.entries(r.outcomes).map(([k, v]) => `${v} ${k}`).join(', ')}) |`,
    `| bodies adopted after a kill | ${r.adopted} |`,
    `| audit records checked | ${r.recordsChecked} of ${r.auditRecords} (${r.interruptedRecords} interrupted) |`,
    `| state directory, largest seen | ${(r.maxStateBytes / 1024).toFixed(0)} KiB |`,
    `| smallest cooldown slack (I2) / largest fired→body start | ${r.minGapSlackMs} ms / ${r.maxSpawnDelayMs} ms |`,
    `| violations | ${INVARIANTS.map((i) => `${i} ${r.violations[i].length}`).join(', ')} |`,
    `| wall time | ${r.seconds.toFixed(0)} s |`,
  ];
  return lines.join('\n');
}
