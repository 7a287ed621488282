// A Jepsen-style campaign against a three-member cluster: real `orderly-
// dispatch run` processes on one engine, a nemesis that kills members with
// SIGKILL, freezes one with SIGSTOP for longer than the lease, and restarts
// the engine itself; then a check of what happened from evidence orderly does
// not write.
//
// Evidence:
//   - the bodies' own log: every body takes a kernel flock on a file of its
//     order before anything else, and writes `overlap` if it cannot (two
//     bodies of one order at once, across the whole cluster), then `start`
//     and `end` lines with the fence and epoch orderly gave it;
//   - the database: the audit rows and the refused (fenced) rows, and a
//     trigger the test installs that notes, inside each audit insert, the
//     shard's epoch at that moment (PostgreSQL engine); for etcd, a watch the
//     test keeps on the epochs.
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export const INTERVAL_MS = 3_000;
export const ORDERS = 8;
/**
 * Cadence is judged on the fire times orderly hands each body
 * (ORDERLY_FIRED_AT: the acquire, when the cooldown starts), checked against
 * the body's own clock: a fire time after the body started, or long before
 * it, is a violation too. Same host, same wall clock for every member.
 */
const SPAWN_LATENCY_MAX_MS = 1_000;

export interface Member {
  index: number;
  state: string;
  child?: ChildProcess;
  out: string;
}

export function writeCity(dir: string, log: string): string {
  const orders = join(dir, 'orders');
  mkdirSync(orders, { recursive: true });
  const body = join(dir, 'body.sh');
  writeFileSync(
    body,
    `#!/bin/sh
# The lock is the kernel's: held while this shell or its sleep lives, gone when they are killed.
exec 9>>"${dir}/lock.$ORDERLY_SCOPED_NAME"
now() { date +%s%3N; }
if ! flock -n 9; then echo "overlap $ORDERLY_SCOPED_NAME $ORDERLY_FENCE $ORDERLY_EPOCH $(now)" >> "${log}"; exit 1; fi
echo "start $ORDERLY_SCOPED_NAME $ORDERLY_FENCE $ORDERLY_EPOCH $(now) $ORDERLY_FIRED_AT $ORDERLY_MEMBER" >> "${log}"
r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
ms=$((r % 2500 + 100))
# The long order outlives any takeover: only killing it keeps a frozen owner's run from overlapping the next.
[ "$ORDERLY_SCOPED_NAME" = long ] && ms=40000
sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
case $((r % 10)) in
  0|1|2) code=0 ;;
  3) code=1 ;;
  *) code=100 ;;
esac
echo "end $ORDERLY_SCOPED_NAME $ORDERLY_FENCE $code $(now)" >> "${log}"
[ "$code" = 0 ] && echo "did work"
exit $code
`,
  );
  chmodSync(body, 0o755);
  for (let i = 1; i <= ORDERS; i++) {
    writeFileSync(join(orders, `sweep-${i}.toml`), `[order]\ngate = "cooldown"\ninterval = "${INTERVAL_MS / 1000}s"\ntimeout = "30s"\nexec = "${body}"\n`);
  }
  writeFileSync(join(orders, 'long.toml'), `[order]\ngate = "cooldown"\ninterval = "${INTERVAL_MS / 1000}s"\ntimeout = "120s"\nexec = "${body}"\n`);
  return orders;
}

export function startMember(m: Member, cli: string, orders: string, clusterUrl: string, auditUrl: string): void {
  const child = spawn(process.execPath, [cli, 'run', orders, '--state', m.state, '--cluster', clusterUrl, '--cluster-name', 'jepsen', '--audit', auditUrl, '--json', '--grace', '5s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => appendFileSync(m.out, d));
  child.stderr!.on('data', (d: Buffer) => appendFileSync(m.out, d));
  m.child = child;
}

export async function stopMember(m: Member, signal: NodeJS.Signals): Promise<void> {
  const child = m.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

export interface Run {
  order: string;
  fence: bigint;
  epoch: number;
  start: number;
  firedAt: number;
  member: string;
  end?: number;
  code?: number;
}

export interface Evidence {
  runs: Run[];
  overlaps: string[];
  /** Audit rows and fenced rows, by fire. */
  records: Array<{ fireId: string; scopedName: string; outcome: string; exitCode: number | null; signal: string | null; fence: bigint; epoch: number; shard: number; fenced: boolean }>;
  /** PostgreSQL engine: the shard's epoch inside each audit insert (-1: not known to the database). */
  insertEpochs: Map<string, number>;
  /** When each audit row was inserted (the database's clock). */
  storedAt: Map<string, number>;
}

/** The pid of the member whose `long` body started in the last 3 s, from the member id its start line carries. */
export function longRunner(log: string): number | undefined {
  const { runs } = readBodies(log);
  const open = runs.filter((r) => r.order === 'long' && r.end === undefined && Date.now() - r.start < 3_000).sort((a, b) => b.start - a.start)[0];
  const pid = open ? /-(\d+)-[0-9a-f]+$/.exec(open.member)?.[1] : undefined;
  return pid ? Number(pid) : undefined;
}

export function readBodies(log: string): Pick<Evidence, 'runs' | 'overlaps'> {
  const runs = new Map<string, Run>();
  const overlaps: string[] = [];
  if (!existsSync(log)) return { runs: [], overlaps };
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const [kind, order, fence, third, at, firedAt, member] = line.split(' ');
    if (!kind || at === undefined) continue;
    if (kind === 'overlap') {
      overlaps.push(line);
      continue;
    }
    const key = `${order} ${fence}`;
    if (kind === 'start') runs.set(key, { order: order!, fence: BigInt(fence!), epoch: Number(third), start: Number(at), firedAt: Number(firedAt), member: member ?? '' });
    else if (kind === 'end') {
      const r = runs.get(key);
      if (r) {
        r.end = Number(at);
        r.code = Number(third);
      }
    }
  }
  return { runs: [...runs.values()], overlaps };
}

/** Records a member refused because their epoch had moved, kept in its state (sinks other than the engine's database). */
export function readFencedJournals(states: string[]): Evidence['records'] {
  return states.flatMap((state) => {
    const file = join(state, 'fenced.jsonl');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const r = JSON.parse(line) as { fireId: string; scopedName: string; outcome: string; exitCode: number | null; signal: string | null; fence: string; labels: Record<string, string> };
        return { fireId: r.fireId, scopedName: r.scopedName, outcome: r.outcome, exitCode: r.exitCode, signal: r.signal, fence: BigInt(r.fence), epoch: Number(r.labels['cluster.epoch']), shard: Number(r.labels['cluster.shard']), fenced: true };
      });
  });
}

export async function readRecords(auditUrl: string): Promise<Pick<Evidence, 'records' | 'insertEpochs' | 'storedAt'>> {
  const c = new pg.Client({ connectionString: auditUrl });
  await c.connect();
  try {
    const rows = async (table: string, fenced: boolean) =>
      (await c.query<{ fire_id: string; scoped_name: string; outcome: string; exit_code: number | null; signal_name: string | null; fence: string; labels: string }>(`SELECT fire_id, scoped_name, outcome, exit_code, signal_name, fence::text, labels FROM ${table}`)).rows.map((r) => {
        const labels = JSON.parse(r.labels) as Record<string, string>;
        return { fireId: r.fire_id, scopedName: r.scoped_name, outcome: r.outcome, exitCode: r.exit_code, signal: r.signal_name, fence: BigInt(r.fence), epoch: Number(labels['cluster.epoch']), shard: Number(labels['cluster.shard']), fenced };
      });
    const fencedPresent = (await c.query<{ t: string | null }>(`SELECT to_regclass('orderly_audit_fenced')::text AS t`)).rows[0]?.t;
    const records = [...(await rows('orderly_audit', false)), ...(fencedPresent ? await rows('orderly_audit_fenced', true) : [])];
    const notePresent = (await c.query<{ t: string | null }>(`SELECT to_regclass('jepsen_stored')::text AS t`)).rows[0]?.t;
    const insertEpochs = new Map<string, number>();
    const storedAt = new Map<string, number>();
    if (notePresent) {
      for (const r of (await c.query<{ fire_id: string; epoch: string | null; at: Date }>('SELECT fire_id, epoch_at_insert::text AS epoch, stored_at AS at FROM jepsen_stored')).rows) {
        insertEpochs.set(r.fire_id, r.epoch === null ? -1 : Number(r.epoch));
        storedAt.set(r.fire_id, r.at.getTime());
      }
    }
    return { records, insertEpochs, storedAt };
  } finally {
    await c.end();
  }
}

/** The trigger that notes, inside each audit insert, the epoch its shard has at that moment. */
export async function installInsertNote(auditUrl: string, cluster: string, epochInDatabase: boolean): Promise<void> {
  const epoch = epochInDatabase ? `(SELECT epoch FROM orderly_cluster_shards WHERE cluster = '${cluster}' AND shard = (NEW.labels::jsonb->>'cluster.shard')::int)` : 'NULL';
  const c = new pg.Client({ connectionString: auditUrl });
  await c.connect();
  try {
    await c.query(`CREATE TABLE IF NOT EXISTS jepsen_stored (fire_id text PRIMARY KEY, epoch_at_insert bigint, stored_at timestamptz NOT NULL)`);
    await c.query(`CREATE OR REPLACE FUNCTION jepsen_note() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO jepsen_stored VALUES (NEW.fire_id, ${epoch}, clock_timestamp());
        RETURN NEW;
      END $$`);
    await c.query('DROP TRIGGER IF EXISTS jepsen_note ON orderly_audit');
    await c.query('CREATE TRIGGER jepsen_note AFTER INSERT ON orderly_audit FOR EACH ROW EXECUTE FUNCTION jepsen_note()');
  } finally {
    await c.end();
  }
}

export interface Verdict {
  runs: number;
  didWork: number;
  records: number;
  fenced: number;
  violations: string[];
  longestGapMs: number;
  /** Ended no-ops killed between their end line and their exit (one row each, with the signal). */
  killedAfterEnd: number;
}

/**
 * The invariants:
 *   single flight   no `overlap` line: never two bodies of one order at once;
 *   cadence         consecutive starts of an order at least one interval apart;
 *   fences          each order's fences grow from one start to the next;
 *   one record      a run that ended did-work or failed has exactly one row
 *                   (stored or fenced); an ended no-op has none; a run cut off
 *                   (no end line) has at most one; no fire id has two rows;
 *   epoch           every stored row's epoch was its shard's epoch inside the
 *                   insert (PostgreSQL), or within the window the etcd check
 *                   allows (see the caller);
 *   liveness        after each member's death, every order starts again
 *                   within `failoverBoundMs`.
 */
export function verify(e: Evidence, deaths: number[], failoverBoundMs: number, epochCurrent: (r: Evidence['records'][number]) => boolean): Verdict {
  const violations: string[] = [];
  for (const o of e.overlaps) violations.push(`single flight: ${o}`);
  const byOrder = new Map<string, Run[]>();
  for (const r of e.runs) (byOrder.get(r.order) ?? byOrder.set(r.order, []).get(r.order)!).push(r);
  let longestGapMs = 0;
  for (const [order, runs] of byOrder) {
    runs.sort((a, b) => a.start - b.start);
    for (const r of runs) {
      if (!(r.firedAt <= r.start && r.start - r.firedAt <= SPAWN_LATENCY_MAX_MS)) violations.push(`cadence: ${order} fence ${r.fence} says it fired at ${r.firedAt}, its body started at ${r.start}`);
    }
    for (let i = 1; i < runs.length; i++) {
      const p = runs[i - 1]!;
      const c = runs[i]!;
      if (c.firedAt - p.firedAt < INTERVAL_MS) violations.push(`cadence: ${order} fired ${c.firedAt - p.firedAt} ms after its previous fire (fences ${p.fence}, ${c.fence})`);
      if (c.fence <= p.fence) violations.push(`fences: ${order} fence ${c.fence} after ${p.fence}`);
      longestGapMs = Math.max(longestGapMs, c.start - p.start);
    }
  }
  const rowsByFence = new Map<string, Evidence['records']>();
  const fireIds = new Map<string, number>();
  for (const r of e.records) {
    const k = `${r.scopedName} ${r.fence}`;
    (rowsByFence.get(k) ?? rowsByFence.set(k, []).get(k)!).push(r);
    fireIds.set(r.fireId, (fireIds.get(r.fireId) ?? 0) + 1);
    if (!r.fenced && !epochCurrent(r)) violations.push(`epoch: ${r.fireId} (${r.scopedName}) stored under epoch ${r.epoch} of shard ${r.shard}, not current then (${e.insertEpochs.get(r.fireId)})`);
  }
  for (const [id, n] of fireIds) if (n > 1) violations.push(`one record: fire ${id} has ${n} rows`);
  let didWork = 0;
  let killedAfterEnd = 0;
  for (const r of e.runs) {
    const rows = rowsByFence.get(`${r.order} ${r.fence}`) ?? [];
    if (r.end !== undefined && r.code === 100 && rows.length > 0) {
      // The body logs its end line before `exit`: a deposed member that kills
      // its lost shards' bodies can land in that gap, and the run is then a
      // signal death with one row. Any other row (a written exit status, or
      // an interrupted run: its exit file was lost) is a no-op written down.
      if (rows.length === 1 && rows[0]!.signal !== null) killedAfterEnd++;
      else violations.push(`one record: no-op run ${r.order} fence ${r.fence} has ${rows.length} row(s) (${rows.map((x) => `${x.outcome} exit ${x.exitCode} signal ${x.signal}`).join(', ')})`);
    }
    if (r.end !== undefined && r.code !== 100 && rows.length !== 1) violations.push(`one record: run ${r.order} fence ${r.fence} (exit ${r.code}) has ${rows.length} row(s)`);
    if (r.end === undefined && rows.length > 1) violations.push(`one record: cut-off run ${r.order} fence ${r.fence} has ${rows.length} rows`);
    if (r.code === 0) didWork++;
  }
  for (const death of deaths) {
    for (const [order, runs] of byOrder) {
      // A 40 s body on a surviving member keeps its order busy past any bound.
      if (order === 'long') continue;
      const next = runs.find((r) => r.start > death);
      const bound = death + failoverBoundMs;
      if (!next || next.start > bound) violations.push(`liveness: ${order} did not start within ${failoverBoundMs} ms of a member's death at ${new Date(death).toISOString()} (next start ${next ? `${next.start - death} ms later` : 'never'})`);
    }
  }
  return { runs: e.runs.length, didWork, records: e.records.length, fenced: e.records.filter((r) => r.fenced).length, violations, longestGapMs, killedAfterEnd };
}
