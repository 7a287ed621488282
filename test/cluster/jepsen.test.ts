// Three `orderly-dispatch run` members on one PostgreSQL, then on one etcd,
// under a nemesis: kill -9 of a member (kept dead long enough to check the
// failover bound, then restarted on its state), SIGSTOP of a member for
// longer than the lease (the stale owner), a restart of the engine, and one
// more kill -9. The checks are in jepsen.ts; the evidence is the bodies' own
// log and the database's rows, never orderly's word.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresSink } from '../../src/audit/postgres.js';
import { LEASE_MS, RETRY_MS } from '../../src/cluster/engine.js';
import { PostgresEngine } from '../../src/cluster/postgres.js';
import { repoRoot, tempDir } from '../helpers.js';
import { startEtcd, startPostgres } from '../support/servers.mjs';
import { observeCluster } from '../../src/cluster/observe.js';
import { installInsertNote, INTERVAL_MS, ORDERS, longRunner, type Member, readBodies, readFencedJournals, readRecords, startMember, stopMember, verify, writeCity, type Evidence } from './jepsen.js';

const tmp = tempDir('jepsen');
afterAll(() => tmp.remove());
const CLI = join(repoRoot, 'dist', 'cli.js');
/** Lease + one interval, plus one round to notice the death and a second of slack for a loaded box. */
const FAILOVER_BOUND_MS = LEASE_MS + INTERVAL_MS + RETRY_MS + 1_000;

interface Campaign {
  name: string;
  clusterUrl: string;
  auditUrl: string;
  restartEngine: () => Promise<void>;
  epochCurrent: (e: Evidence) => (r: Evidence['records'][number]) => boolean;
}

async function campaign(c: Campaign): Promise<void> {
  const dir = join(tmp.path, c.name);
  const log = join(dir, 'bodies.log');
  const orders = writeCity(dir, log);
  const members: Member[] = [0, 1, 2].map((index) => ({ index, state: join(dir, `m${index}`), out: join(dir, `m${index}.out`) }));
  const deaths: number[] = [];
  const nemesis: string[] = [];
  const note = (what: string): void => {
    nemesis.push(`${new Date().toISOString()} ${what}`);
  };
  try {
    for (const m of members) startMember(m, CLI, orders, c.clusterUrl, c.auditUrl);
    // The failover bound is about a death, not a cold start: wait until the three members have
    // split the shards and every order has started since (no handoff of the cold start pending).
    const settled = await settle(c.clusterUrl, log);
    note(settled ? 'settled: 3 members own all 64 shards, every order started since' : 'not settled after 60 s (going on)');

    // A member dies and stays dead: every order must start again within the bound.
    await stopMember(members[0]!, 'SIGKILL');
    deaths.push(Date.now());
    note('kill -9 m0');
    await sleep(FAILOVER_BOUND_MS + 2_000);
    startMember(members[0]!, CLI, orders, c.clusterUrl, c.auditUrl);
    note('restart m0');
    await sleep(8_000);

    // The stale owner: frozen past the lease while it runs the long body, which must not overlap the new owner's.
    let frozen: Member | undefined;
    // Frozen just after its long body started, so that body would outlive the takeover unless killed.
    for (let i = 0; i < 240 && !frozen; i++) {
      const pid = longRunner(log);
      frozen = members.find((m) => m.child?.pid === pid && pid !== undefined);
      if (!frozen) await sleep(250);
    }
    frozen ??= members[1]!;
    frozen.child!.kill('SIGSTOP');
    note(`SIGSTOP m${frozen.index}`);
    await sleep(LEASE_MS + 15_000);
    frozen.child!.kill('SIGCONT');
    note(`SIGCONT m${frozen.index}`);
    await sleep(6_000);

    await c.restartEngine();
    note('engine restarted');
    await sleep(15_000);

    const victim = members[Math.floor(Math.random() * 3)]!;
    await stopMember(victim, 'SIGKILL');
    note(`kill -9 m${victim.index}`);
    await sleep(2_000);
    startMember(victim, CLI, orders, c.clusterUrl, c.auditUrl);
    note(`restart m${victim.index}`);
    await sleep(12_000);
  } finally {
    await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
  }
  note('stopped');
  const bodies = readBodies(log);
  const rows = await readRecords(c.auditUrl);
  const evidence: Evidence = { ...bodies, ...rows, records: [...rows.records, ...readFencedJournals(members.map((m) => m.state))] };
  const verdict = verify(evidence, deaths, FAILOVER_BOUND_MS, c.epochCurrent(evidence));
  console.log(
    `jepsen ${c.name}: ${verdict.runs} runs (${verdict.didWork} did work), ${verdict.records} rows (${verdict.fenced} fenced), ${verdict.killedAfterEnd} no-op(s) killed after their end line, longest gap between starts of one order ${verdict.longestGapMs} ms, ` +
      `${verdict.violations.length} violation(s)\n  ${nemesis.join('\n  ')}${verdict.violations.length ? `\n  ${verdict.violations.slice(0, 20).join('\n  ')}` : ''}`,
  );
  expect(verdict.runs).toBeGreaterThan(50);
  expect(verdict.didWork).toBeGreaterThan(5);
  expect(verdict.violations).toEqual([]);
}

async function settle(clusterUrl: string, log: string): Promise<boolean> {
  const until = Date.now() + 60_000;
  let since: number | undefined;
  while (Date.now() < until) {
    await sleep(500);
    const p = await observeCluster(clusterUrl, 'jepsen').catch(() => undefined);
    const split = p !== undefined && p.members.filter((m) => m.listed && m.shards.length > 0).length === 3 && p.unowned.length === 0;
    if (!split) {
      since = undefined;
      continue;
    }
    since ??= Date.now();
    const started = new Set(readBodies(log).runs.filter((r) => r.start > since!).map((r) => r.order));
    if (started.size === ORDERS + 1) return true;
  }
  return false;
}

describe('cluster under a nemesis', () => {
  it('PostgreSQL: no overlap, no early fire, one record per run, every stored epoch current, failover within lease + one interval', async () => {
    const pg = await startPostgres();
    try {
      // The schema first, so the test's trigger is in place before the first insert.
      const sink = new PostgresSink(pg.url, { fence: { cluster: 'jepsen' } });
      const engine = new PostgresEngine(pg.url, { cluster: 'jepsen' });
      await engine.join({ id: 'setup-0-0', host: 'setup', pid: 0, state: '', since: Date.now() });
      await sink.open();
      await engine.close();
      await sink.close();
      await installInsertNote(pg.url, 'jepsen', true);
      await campaign({
        name: 'postgres',
        clusterUrl: pg.url,
        auditUrl: pg.url,
        restartEngine: async () => {
          await pg.pause();
          await sleep(2_000);
          await pg.resume();
        },
        // Inside the insert, the shard's epoch was the record's.
        epochCurrent: (e) => (r) => e.insertEpochs.get(r.fireId) === r.epoch,
      });
    } finally {
      await pg.stop();
    }
  }, 300_000);

  it('etcd: the same, with the audit in PostgreSQL checked against etcd before each insert', async () => {
    const [pg, etcd] = await Promise.all([startPostgres(), startEtcd()]);
    const history = new Map<number, Array<{ epoch: number; at: number }>>();
    const { Etcd3 } = await import('etcd3');
    const client = new Etcd3({ hosts: etcd.clientUrl });
    try {
      // The epochs as etcd changes them, timed on this host's clock (the database's clock is the same host's).
      const watcher = await client.watch().prefix('orderly/jepsen/epochs/').create();
      watcher.on('put', (kv) => {
        const shard = Number(kv.key.toString().split('/').pop());
        (history.get(shard) ?? history.set(shard, []).get(shard)!).push({ epoch: Number(kv.value.toString().split(' ')[0]), at: Date.now() });
      });
      const sink = new PostgresSink(pg.url);
      await sink.open();
      await sink.close();
      await installInsertNote(pg.url, 'jepsen', false);
      await campaign({
        name: 'etcd',
        clusterUrl: etcd.url,
        auditUrl: pg.url,
        restartEngine: () => etcd.restart(),
        // The check reads etcd just before the insert: the epoch was current within the second before it was stored.
        epochCurrent: (e) => (r) => {
          const at = e.storedAt.get(r.fireId);
          if (at === undefined) return false;
          const changes = history.get(r.shard) ?? [];
          const epochAt = (t: number): number | undefined => changes.filter((x) => x.at <= t).pop()?.epoch;
          return epochAt(at) === r.epoch || epochAt(at - 1_000) === r.epoch;
        },
      });
      await watcher.cancel();
    } finally {
      client.close();
      await Promise.all([pg.stop(), etcd.stop()]);
    }
  }, 300_000);
});
