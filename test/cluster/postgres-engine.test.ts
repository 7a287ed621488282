// The PostgreSQL cluster engine and the fenced audit insert, against a real
// throwaway server: one owner per shard, epochs that only grow, no row write
// while ownership is held (confirm is a read), a silent member cut off by the
// server after its lease, and a deposed owner's record kept out of the audit.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresSink } from '../../src/audit/postgres.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { PostgresEngine } from '../../src/cluster/postgres.js';
import { RENEW_DEADLINE_MS } from '../../src/cluster/engine.js';
import { clusterFence, epochOfFence, ownerOf, shardOf, shardsFor } from '../../src/cluster/shards.js';
import { startPostgres, type DatabaseServer } from '../support/servers.mjs';

let server: DatabaseServer;
const engines: PostgresEngine[] = [];

beforeAll(async () => {
  server = await startPostgres();
}, 120_000);

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await server?.stop();
}, 60_000);

async function member(id: string, cluster = 'c1', leaseMs?: number): Promise<PostgresEngine> {
  const e = new PostgresEngine(server.url, { cluster, ...(leaseMs ? { leaseMs } : {}) });
  engines.push(e);
  await e.join({ id, host: 'h', pid: 1, state: '/s', since: Date.now() });
  return e;
}

/** Transactions that wrote (were given an xid), server-wide: the probe itself takes none. */
async function xidNext(): Promise<bigint> {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    const r = await c.query<{ x: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x');
    return BigInt(r.rows[0]!.x);
  } finally {
    await c.end();
  }
}

describe('shards', () => {
  it('spread orders and members evenly and move only what a membership change must', () => {
    const counts = new Map<number, number>();
    for (let i = 0; i < 6400; i++) counts.set(shardOf(`order-${i}`), (counts.get(shardOf(`order-${i}`)) ?? 0) + 1);
    expect(counts.size).toBe(64);
    expect(Math.max(...counts.values())).toBeLessThan(200);
    const three = ['a-1-x', 'b-2-y', 'c-3-z'];
    const sizes = three.map((m) => shardsFor(m, three).size);
    expect(sizes.reduce((a, b) => a + b)).toBe(64);
    expect(Math.min(...sizes)).toBeGreaterThan(10);
    // c leaves: only c's shards move.
    for (let s = 0; s < 64; s++) {
      const before = ownerOf(s, three);
      const after = ownerOf(s, three.slice(0, 2));
      if (before !== 'c-3-z') expect(after).toBe(before);
    }
  });

  it('put the epoch above any local token in a fence', () => {
    expect(clusterFence(2, 5n)).toBeGreaterThan(clusterFence(1, (1n << 40n) - 1n));
    expect(epochOfFence(clusterFence(7, 123n))).toBe(7);
  });
});

describe('PostgresEngine', () => {
  it('gives a shard to one member at a time, with an epoch that grows per claim', async () => {
    const a = await member('a-1-aa');
    const b = await member('b-2-bb');
    expect((await a.members()).map((m) => m.id)).toEqual(['a-1-aa', 'b-2-bb']);
    expect((await a.claim(3))?.epoch).toBe(1);
    expect(await b.claim(3)).toBeNull();
    expect([...(await a.confirm())]).toEqual([3]);
    expect([...(await b.confirm())]).toEqual([]);
    await a.release(3, 1);
    expect((await b.claim(3))?.epoch).toBe(2);
    expect(await b.current([{ shard: 3, epoch: 2 }, { shard: 3, epoch: 1 }])).toEqual([true, false]);
    const states = await a.shards();
    expect(states.find((s) => s.shard === 3)).toMatchObject({ epoch: 2, owner: 'b-2-bb' });
  });

  it('lets the next owner fire at once only after a handover: a lock freed by a session end waits a renew deadline', async () => {
    const a = await member('a-3-aa', 'c5');
    const b = await member('b-4-bb', 'c5');
    expect(await a.claim(2)).toEqual({ epoch: 1, waitMs: 0 });
    await a.release(2, 1);
    expect(await b.claim(2)).toEqual({ epoch: 2, waitMs: 0 });
    // b's session ends without a handover (kill -9, an engine restart): a must wait out b's renew deadline.
    await b.close();
    expect(await a.claim(2)).toEqual({ epoch: 3, waitMs: RENEW_DEADLINE_MS });
    // A release of an epoch that is no longer the member's marks nothing.
    const c = await member('c-5-cc', 'c5');
    await a.release(2, 2);
    expect(await c.claim(2)).toEqual({ epoch: 4, waitMs: RENEW_DEADLINE_MS });
  });

  it('confirms ownership without writing: no transaction id is taken', async () => {
    const a = await member('a-9-aa', 'c2');
    expect((await a.claim(1))?.epoch).toBe(1);
    const before = await xidNext();
    for (let i = 0; i < 20; i++) await a.confirm();
    await a.members();
    await a.shards();
    expect(await xidNext()).toBe(before);
  });

  it('frees a silent member\'s shards after its lease, and its confirm fails', async () => {
    const a = await member('a-5-aa', 'c3', 1500);
    const b = await member('b-6-bb', 'c3');
    expect((await a.claim(7))?.epoch).toBe(1);
    expect(await b.claim(7)).toBeNull();
    await new Promise((r) => setTimeout(r, 2500));
    expect((await b.claim(7))?.epoch).toBe(2);
    await expect(a.confirm()).rejects.toThrow();
    expect((await b.members()).map((m) => m.id)).toEqual(['b-6-bb']);
  });
});

describe('fenced audit insert', () => {
  function rec(shard: number, epoch: number): AuditRecord {
    const now = Date.now();
    return {
      fireId: randomUUID(),
      order: 'o',
      scopedName: 'o',
      rig: null,
      trigger: 'cooldown',
      outcome: 'did-work',
      exitCode: 0,
      signal: null,
      startedAt: now - 5,
      endedAt: now,
      durationMs: 5,
      fence: String(clusterFence(epoch, 1n)),
      outputTail: '',
      labels: { 'cluster.shard': String(shard), 'cluster.epoch': String(epoch) },
    };
  }

  it('stores a record of the current epoch, keeps a stale one apart, and stores a re-send once', async () => {
    const a = await member('a-7-aa', 'c4');
    expect((await a.claim(5))?.epoch).toBe(1);
    const sink = new PostgresSink(server.url, { fence: { cluster: 'c4' } });
    await sink.open();
    const current = rec(5, 1);
    const first = await sink.write([current]);
    expect(first).toEqual({ inserted: 1, fenced: [] });
    await a.release(5, 1);
    const b = await member('b-8-bb', 'c4');
    expect((await b.claim(5))?.epoch).toBe(2);
    const late = rec(5, 1);
    const r = await sink.write([late, current, rec(5, 2)]);
    expect(r.inserted).toBe(1);
    expect(r.fenced!.map((x) => x.fireId)).toEqual([late.fireId]);
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    const audit = await c.query('SELECT fire_id FROM orderly_audit WHERE fire_id = ANY($1)', [[late.fireId, current.fireId]]);
    const fenced = await c.query('SELECT fire_id FROM orderly_audit_fenced WHERE fire_id = ANY($1)', [[late.fireId, current.fireId]]);
    await c.end();
    expect(audit.rows.map((x) => x.fire_id)).toEqual([current.fireId]);
    expect(fenced.rows.map((x) => x.fire_id)).toEqual([late.fireId]);
    await sink.close();
  });
});
