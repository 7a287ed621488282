// The etcd cluster engine against a real throwaway etcd: one owner per
// shard, epochs that only grow, no etcd write while ownership is held (a
// keepalive is not a revision), a silent member's shards freed by its lease's
// expiry, leases that survive an etcd crash, a clean close that frees at once,
// and calls to an unreachable etcd that fail within the coordinator's round.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdEngine, parseEtcdUrl } from '../../src/cluster/etcd.js';
import { RETRY_MS } from '../../src/cluster/engine.js';
import { freePort, startEtcd, type EtcdServer } from '../support/servers.mjs';

let server: EtcdServer;
const engines: EtcdEngine[] = [];

beforeAll(async () => {
  server = await startEtcd();
}, 60_000);

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  await server?.stop();
}, 60_000);

async function member(id: string, cluster: string, leaseMs?: number, url = server.url): Promise<EtcdEngine> {
  const e = new EtcdEngine(url, { cluster, ...(leaseMs ? { leaseMs } : {}) });
  engines.push(e);
  await e.join({ id, host: 'h', pid: 1, state: `/s/${id}`, since: Date.now() });
  return e;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const got = await probe();
      if (got !== undefined) return got;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ids = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);

describe('parseEtcdUrl', () => {
  it('maps endpoints to client hosts and keeps credentials out of the printable URL', () => {
    const t = parseEtcdUrl('etcd://root:p%40ss@10.0.0.1:2380,etcd-b');
    expect(t.hosts).toEqual(['http://10.0.0.1:2380', 'http://etcd-b:2379']);
    expect(t.auth).toEqual({ username: 'root', password: 'p@ss' });
    expect(t.url).toBe('etcd://10.0.0.1:2380,etcd-b:2379');
    expect(parseEtcdUrl('etcds://[::1]:1234/').hosts).toEqual(['https://[::1]:1234']);
    expect(new EtcdEngine('etcd://u:secret@h:1', { cluster: 'x' }).url).not.toContain('secret');
  });

  it('refuses other forms without echoing a password', () => {
    expect(() => parseEtcdUrl('etcd://u:secret@')).toThrow(expect.objectContaining({ code: 'ERR_CLUSTER', message: expect.not.stringContaining('secret') }));
    expect(() => parseEtcdUrl('etcd://h:1/some/path')).toThrow(/etcd:\/\//);
    expect(() => parseEtcdUrl('http://h:2379')).toThrow(/etcd:\/\//);
    expect(() => parseEtcdUrl('etcd://h:1,h 2:3')).toThrow(/endpoint/);
  });
});

describe('EtcdEngine', () => {
  it('gives a shard to one member at a time, with an epoch that grows per claim', async () => {
    const b = await member('b-2-bb', 'one');
    const a = await member('a-1-aa', 'one');
    expect((await b.members()).map((m) => m.id)).toEqual(['a-1-aa', 'b-2-bb']);
    expect((await a.members())[0]).toMatchObject({ id: 'a-1-aa', host: 'h', pid: 1, state: '/s/a-1-aa' });
    expect((await a.claim(3))?.epoch).toBe(1);
    expect(await b.claim(3)).toBeNull();
    expect((await a.claim(10))?.epoch).toBe(1);
    expect(ids(await a.confirm())).toEqual([3, 10]);
    expect(ids(await b.confirm())).toEqual([]);
    await b.release(3); // not b's: a no-op
    expect(ids(await a.confirm())).toEqual([3, 10]);
    await a.release(3);
    expect(ids(await a.confirm())).toEqual([10]);
    expect((await b.claim(3))?.epoch).toBe(2);
    expect(await a.claim(3)).toBeNull();
    await b.release(3);
    expect((await a.claim(3))?.epoch).toBe(3);
    expect(await a.shards()).toEqual([
      { shard: 3, epoch: 3, owner: 'a-1-aa' },
      { shard: 10, epoch: 1, owner: 'a-1-aa' },
    ]);
    // Another cluster's keys are its own.
    const other = await member('c-3-cc', 'two');
    expect((await other.members()).map((m) => m.id)).toEqual(['c-3-cc']);
    expect((await other.claim(3))?.epoch).toBe(1);
  });

  it('writes nothing to confirm or read, one revision per claim or release', async () => {
    const a = await member('a-1-aa', 'revisions');
    const b = await member('b-2-bb', 'revisions');
    expect((await a.claim(0))?.epoch).toBe(1);
    const before = await server.revision();
    for (let i = 0; i < 20; i++) expect(ids(await a.confirm())).toEqual([0]);
    await a.members();
    await a.shards();
    await a.current([{ shard: 0, epoch: 1 }]);
    expect(await b.claim(0)).toBeNull(); // a claim that finds an owner writes nothing either
    expect(await server.revision()).toBe(before);
    expect((await a.claim(1))?.epoch).toBe(1);
    expect(await server.revision()).toBe(before + 1);
    // Claiming what it holds already (a claim whose answer was lost) gives the same epoch and writes nothing.
    expect((await a.claim(1))?.epoch).toBe(1);
    expect(await server.revision()).toBe(before + 1);
    await a.release(1);
    expect(await server.revision()).toBe(before + 2);
    expect((await b.claim(1))?.epoch).toBe(2);
    expect(await server.revision()).toBe(before + 3);
  });

  it('never hands out an epoch twice, however claims and releases interleave', async () => {
    const racers = await Promise.all(['a-1-aa', 'b-2-bb', 'c-3-cc'].map((id) => member(id, 'race')));
    const got: number[] = [];
    await Promise.all(
      racers.map(async (e) => {
        for (let i = 0; i < 40; i++) {
          const claim = await e.claim(20);
          if (claim === null) continue;
          got.push(claim.epoch);
          expect(claim.waitMs).toBe(0);
          await e.release(20, claim.epoch);
        }
      }),
    );
    expect(got.length).toBeGreaterThan(20);
    // Every successful claim got the next epoch: none twice, none skipped.
    expect([...got].sort((x, y) => x - y)).toEqual(got.map((_, i) => i + 1));
    expect(await racers[0]!.shards()).toEqual([{ shard: 20, epoch: got.length }]);
  });

  it('says whether (shard, epoch) is still the current ownership', async () => {
    const a = await member('a-1-aa', 'current');
    const b = await member('b-2-bb', 'current');
    expect((await a.claim(5))?.epoch).toBe(1);
    await a.release(5);
    expect((await b.claim(5))?.epoch).toBe(2);
    expect(await a.current([{ shard: 5, epoch: 2 }, { shard: 5, epoch: 1 }, { shard: 6, epoch: 1 }, { shard: 6, epoch: 0 }])).toEqual([true, false, false, false]);
  });

  it("frees a silent member's shards when its lease expires, and then refuses its confirmation", async () => {
    const a = await member('a-1-aa', 'expiry', 2000);
    const b = await member('b-2-bb', 'expiry');
    expect((await a.claim(1))?.epoch).toBe(1);
    expect((await a.claim(2))?.epoch).toBe(1);
    expect(ids(await a.confirm())).toEqual([1, 2]);
    const silentSince = Date.now();
    // a stops confirming: nothing renews its lease.
    const freedAfter = await until(
      "a's keys gone",
      async () => {
        const shards = await b.shards();
        const members = (await b.members()).map((m) => m.id);
        return shards.every((s) => s.owner === undefined) && !members.includes('a-1-aa') ? Date.now() - silentSince : undefined;
      },
      15_000,
    );
    // Not before its TTL (2 s; etcd checks expiries every 500 ms).
    expect(freedAfter).toBeGreaterThanOrEqual(1500);
    expect(await b.shards()).toEqual([
      { shard: 1, epoch: 1 },
      { shard: 2, epoch: 1 },
    ]);
    expect((await b.claim(1))?.epoch).toBe(2);
    expect((await b.claim(2))?.epoch).toBe(2);
    await expect(a.confirm()).rejects.toMatchObject({ message: expect.stringMatching(/expired/), sessionLost: true });
    // For good: the lease cannot come back.
    await expect(a.confirm()).rejects.toThrow(/expired/);
    await expect(a.claim(3)).rejects.toMatchObject({ sessionLost: true });
    expect((await b.shards()).find((s) => s.shard === 3)).toBeUndefined();
  });

  it('keeps members and their shards across an etcd crash and restart', async () => {
    const a = await member('a-1-aa', 'restart', 5000);
    const b = await member('b-2-bb', 'restart', 5000);
    expect((await a.claim(4))?.epoch).toBe(1);
    expect((await a.claim(8))?.epoch).toBe(1);
    expect((await b.claim(9))?.epoch).toBe(1);
    expect(ids(await a.confirm())).toEqual([4, 8]);
    const pid = server.pid;
    await server.restart();
    expect(server.pid).not.toBe(pid);
    // The clients reconnect on their own; etcd restored the leases with a fresh TTL.
    const backAfter = Date.now();
    const held = await until('a confirms again', () => a.confirm(), 4000);
    expect(Date.now() - backAfter).toBeLessThan(4000);
    expect(ids(held)).toEqual([4, 8]);
    expect(ids(await until('b confirms again', () => b.confirm(), 4000))).toEqual([9]);
    expect(await b.shards()).toEqual([
      { shard: 4, epoch: 1, owner: 'a-1-aa' },
      { shard: 8, epoch: 1, owner: 'a-1-aa' },
      { shard: 9, epoch: 1, owner: 'b-2-bb' },
    ]);
    expect(await b.claim(4)).toBeNull();
    expect((await b.members()).map((m) => m.id)).toEqual(['a-1-aa', 'b-2-bb']);
    // And they stay alive while they keep confirming, past the 5-s TTL.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, RETRY_MS));
      expect(ids(await a.confirm())).toEqual([4, 8]);
      expect(ids(await b.confirm())).toEqual([9]);
    }
  }, 60_000);

  it('fails over to a live endpoint when another one is down', async () => {
    const dead = await freePort();
    const url = `etcd://127.0.0.1:${dead},127.0.0.1:${server.port}`;
    const a = await member('a-1-aa', 'failover', undefined, url);
    // Endpoints are tried in a random order: enough calls that the dead one comes first many times.
    for (let i = 0; i < 10; i++) {
      expect((await a.claim(i))?.epoch).toBe(1);
      expect((await a.confirm()).has(i)).toBe(true);
      expect((await a.members()).map((m) => m.id)).toEqual(['a-1-aa']);
    }
  });

  it('frees the shards at once on close()', async () => {
    const a = await member('a-1-aa', 'close');
    const b = await member('b-2-bb', 'close');
    expect((await a.claim(7))?.epoch).toBe(1);
    expect(await b.claim(7)).toBeNull();
    await a.close();
    expect((await b.claim(7))?.epoch).toBe(2);
    expect((await b.members()).map((m) => m.id)).toEqual(['b-2-bb']);
    await expect(a.confirm()).rejects.toThrow(/not joined/);
    await a.close(); // twice: harmless
  });
});

describe('EtcdEngine with etcd unreachable', () => {
  const budget = RETRY_MS + 1000;

  it('fails a join to a closed port within the round', async () => {
    const port = await freePort();
    const e = new EtcdEngine(`etcd://127.0.0.1:${port}`, { cluster: 'down' });
    const t0 = Date.now();
    await expect(e.join({ id: 'a-1-aa', host: 'h', pid: 1, state: '/s', since: 0 })).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(budget);
    await e.close();
  });

  it('fails a join to an etcd that never answers within the round', async () => {
    // Accepts connections and says nothing: a hung host or a black hole.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const e = new EtcdEngine(`etcd://127.0.0.1:${port}`, { cluster: 'down' });
      const t0 = Date.now();
      await expect(e.join({ id: 'a-1-aa', host: 'h', pid: 1, state: '/s', since: 0 })).rejects.toThrow();
      expect(Date.now() - t0).toBeLessThan(budget);
      await e.close();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('rejects confirm() within the round and closes without throwing once etcd is gone', async () => {
    const lone = await startEtcd();
    let e: EtcdEngine | undefined;
    try {
      e = await member('a-1-aa', 'gone', undefined, lone.url);
      expect((await e.claim(1))?.epoch).toBe(1);
      expect(ids(await e.confirm())).toEqual([1]);
    } finally {
      await lone.stop();
    }
    const t0 = Date.now();
    await expect(e.confirm()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(budget);
    await expect(e.claim(2)).rejects.toThrow();
    const t1 = Date.now();
    await e.close();
    expect(Date.now() - t1).toBeLessThan(budget);
  }, 60_000);
});
