// What a cluster looks like from outside and from a member's API, against
// real members (`orderly-dispatch run --cluster` child processes) on a
// throwaway PostgreSQL: `cluster status` reads the engine without joining,
// the doctor checks the engine, /v0/orders says which orders this member fires.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf, shardsFor } from '../../src/cluster/shards.js';
import { cli, scratch, writeTree } from '../gascity/fixtures.js';
import { call, startController, type Controller } from '../http/support.js';
import { startEtcd, startPostgres, type DatabaseServer } from '../support/servers.mjs';

const fresh = scratch('cluster-status');
let server: DatabaseServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startPostgres();
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await server?.stop();
}, 60_000);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a child process, without blocking the members' output pipes (spawnSync would). */
function orderly(args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

function member(orders: string, state: string, cluster: string, engine = server.url): { child: ChildProcess; out: () => string } {
  // --for: a member outlives no crashed test by long.
  const child = spawn(process.execPath, [cli, 'run', orders, '--state', state, '--cluster', engine, '--cluster-name', cluster, '--for', '60s', '--json', '--grace', '1s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

interface StatusJson {
  ok: boolean;
  cluster: string;
  kind: string;
  engine: string;
  live: number;
  members: Array<{ id: string; host: string; pid: number; since: string | null; listed: boolean; shards: Array<{ shard: number; epoch: number }> }>;
  owned: number;
  total: number;
  unowned: Array<{ shard: number; epoch: number }>;
  local?: { memberId: string; confirmedMsAgo: number | null; leaving: number[]; owned: Array<{ shard: number; epoch: number; ready: boolean }>; members: string[] };
}

describe('orderly-dispatch cluster status', () => {
  it('lists the live members and who owns every shard, the doctor checks the engine, and with the members killed none is live', async () => {
    const root = fresh();
    const orders = writeTree(join(root, 'orders'), {
      'sweep-a.toml': '[order]\ngate = "cooldown"\ninterval = "2s"\nexec = "exit 100"\n',
      'sweep-b.toml': '[order]\ngate = "cooldown"\ninterval = "2s"\nexec = "exit 100"\n',
    });
    const state1 = join(root, 'state1');
    const state2 = join(root, 'state2');
    const a = member(orders, state1, 'status-test');
    const b = member(orders, state2, 'status-test');

    // Until both have joined and the handoff is done: the first member claims everything, then gives the second its half.
    const s = await until(
      'two members owning all 64 shards',
      async () => {
        const r = await orderly(['cluster', 'status', '--state', state1, '--json']);
        if (r.code !== 0) return undefined;
        const j = JSON.parse(r.stdout) as StatusJson;
        const ids = j.members.map((m) => m.id);
        // Settled: every member holds exactly its rendezvous share, so nothing moves while the test reads.
        const split = j.members.every((m) => m.shards.map((x) => x.shard).join() === [...shardsFor(m.id, ids)].sort((x, y) => x - y).join());
        return j.live === 2 && j.owned === 64 && split && j.local?.members.length === 2 && j.local.leaving.length === 0 ? j : undefined;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nmember 1:\n${a.out().slice(-2000)}\nmember 2:\n${b.out().slice(-2000)}`);
    });
    expect(s).toMatchObject({ ok: true, cluster: 'status-test', kind: 'postgres', total: 64, unowned: [] });
    expect(s.engine).toBe(server.url);
    expect(s.members.map((m) => m.pid).sort()).toEqual([a.child.pid, b.child.pid].sort());
    for (const m of s.members) {
      expect(m).toMatchObject({ listed: true, host: expect.any(String), since: expect.stringMatching(/^\d{4}-/) });
      for (const sh of m.shards) expect(sh.epoch).toBeGreaterThanOrEqual(1);
    }
    const shards = s.members.flatMap((m) => m.shards.map((x) => x.shard)).sort((x, y) => x - y);
    expect(shards).toEqual(Array.from({ length: 64 }, (_, i) => i));
    // The member on --state speaks for itself too.
    expect(s.members.map((m) => m.id)).toContain(s.local!.memberId);
    expect(s.local!.confirmedMsAgo).toBeLessThan(10_000);
    expect(s.local!.members).toHaveLength(2);

    // Looking joined nothing: still two members, and the named engine gives the same answer without a state.
    const named = await orderly(['cluster', 'status', '--cluster', server.url, '--cluster-name', 'status-test', '--state', join(root, 'none'), '--json']);
    expect(named.code).toBe(0);
    const n = JSON.parse(named.stdout) as StatusJson;
    expect([n.live, n.owned, n.local]).toEqual([2, 64, undefined]);

    const human = await orderly(['cluster', 'status', '--state', state1]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('cluster status-test on ');
    expect(human.stdout).toContain('2 member(s) live, 64 of 64 shard(s) owned');
    expect(human.stdout).toContain('unowned: none');
    expect(human.stdout).toMatch(new RegExp(`this state's member ${s.local!.memberId}: confirmed \\d+ ms ago`));

    const doc = await orderly(['doctor', '--state', state1, '--json']);
    const check = (JSON.parse(doc.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks.find((c) => c.name === 'cluster');
    expect(check).toMatchObject({ status: 'OK', detail: expect.stringContaining('2 member(s) live, 64 of 64 shard(s) owned') });

    await Promise.all([kill(a.child), kill(b.child)]);
    // The server ends a killed member's session (and frees its locks) once it sees the socket closed.
    const gone = await until('no member left', async () => {
      const r = await orderly(['cluster', 'status', '--state', state1, '--json']);
      return r.code === 1 ? r : undefined;
    });
    const g = JSON.parse(gone.stdout) as StatusJson;
    expect(g).toMatchObject({ ok: false, live: 0, owned: 0, members: [] });
    expect(g.unowned).toHaveLength(64);
    for (const u of g.unowned) expect(u.epoch).toBeGreaterThanOrEqual(1);
    const humanGone = await orderly(['cluster', 'status', '--state', state1]);
    expect(humanGone.code).toBe(1);
    expect(humanGone.stdout).toContain('no member is live');
  }, 90_000);

  it('refuses a state that names no cluster and an engine that does not answer', async () => {
    const root = fresh();
    const none = await orderly(['cluster', 'status', '--state', root]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('names no cluster');
    expect((await orderly(['cluster'])).code).toBe(2);
    expect((await orderly(['cluster', 'status', '--cluster', server.url, '--state', root])).code).toBe(2);
    const down = await orderly(['cluster', 'status', '--cluster', 'postgres://orderly@127.0.0.1:1/orderly', '--cluster-name', 'x', '--state', root]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cluster x on postgres://orderly@127.0.0.1:1/orderly: ');
  });
});

describe('orderly-dispatch cluster status on etcd', () => {
  it('reads members and shards without taking a lease of its own', async () => {
    const etcd = await startEtcd();
    try {
      const root = fresh();
      const orders = writeTree(join(root, 'orders'), { 'sweep.toml': '[order]\ngate = "cooldown"\ninterval = "2s"\nexec = "exit 100"\n' });
      const state = join(root, 'state');
      const m = member(orders, state, 'etcd-status', etcd.url);
      const s = await until('the member to own all 64 shards', async () => {
        const r = await orderly(['cluster', 'status', '--state', state, '--json']);
        const j = r.code === 0 ? (JSON.parse(r.stdout) as StatusJson) : undefined;
        return j?.owned === 64 ? j : undefined;
      }).catch((err: Error) => {
        throw new Error(`${err.message}\nmember:\n${m.out().slice(-2000)}`);
      });
      expect(s).toMatchObject({ ok: true, kind: 'etcd', engine: etcd.url, live: 1, unowned: [] });
      expect(s.members).toMatchObject([{ pid: m.child.pid, listed: true, shards: expect.any(Array) }]);
      // Looking wrote nothing: the store's revision stands still across a status.
      const before = await etcd.revision();
      expect((await orderly(['cluster', 'status', '--state', state, '--json'])).code).toBe(0);
      expect(await etcd.revision()).toBe(before);
      await kill(m.child);
    } finally {
      await etcd.stop();
    }
  }, 90_000);
});

describe('the HTTP API of a cluster member', () => {
  it("gives each order its shard, and this member only for the orders it fires; /v0/status has the member's shards", async () => {
    const root = fresh();
    // One manual order per shard (they never fire on their own): each member surely owns some of them and not others.
    const files: Record<string, string> = {};
    const byShard = new Map<number, string>();
    for (let i = 0; byShard.size < 64; i++) if (!byShard.has(shardOf(`o${i}`))) byShard.set(shardOf(`o${i}`), `o${i}`);
    for (const name of byShard.values()) files[`${name}.toml`] = '[order]\ntrigger = "manual"\nexec = "exit 100"\n';
    const orders = writeTree(join(root, 'orders'), files);
    let c: Controller | undefined;
    try {
      // No --for: its timer would hold the process up to its end after the SIGTERM of stop().
      c = await startController([orders, '--state', join(root, 'state1'), '--cluster', server.url, '--cluster-name', 'http-owner', '--http', '127.0.0.1:0', '--grace', '1s']);
      children.push(c.child);
      const url = c.url;
      const alone = await until('the member to own every shard', async () => {
        const st = await call(url, 'GET', '/v0/status', '/v0/status');
        return st.body.cluster?.owned.length === 64 && st.body.cluster.owned.every((o: { ready: boolean }) => o.ready) ? st.body.cluster : undefined;
      });
      const all = await call(url, 'GET', '/v0/orders', '/v0/orders');
      for (const o of all.body.orders) expect(o.owner).toEqual({ shard: shardOf(o.scoped_name), epoch: 1, member: alone.member });

      member(orders, join(root, 'state2'), 'http-owner');
      // Read twice around the orders, so a change of ownership in between makes the probe retry rather than fail.
      const [status, list] = await until('the second member to take its half', async () => {
        const before = (await call(url, 'GET', '/v0/status', '/v0/status')).body.cluster;
        const l = await call(url, 'GET', '/v0/orders', '/v0/orders');
        const after = (await call(url, 'GET', '/v0/status', '/v0/status')).body.cluster;
        const settled = after.members.length === 2 && after.leaving.length === 0 && after.owned.length < 64 && JSON.stringify(before.owned) === JSON.stringify(after.owned);
        return settled ? ([after, l.body.orders] as const) : undefined;
      }, 30_000);
      const mine = new Map<number, number>(status.owned.filter((o: { ready: boolean }) => o.ready).map((o: { shard: number; epoch: number }) => [o.shard, o.epoch]));
      expect(mine.size).toBeGreaterThan(0);
      for (const o of list) {
        const shard = shardOf(o.scoped_name);
        expect(o.owner).toEqual(mine.has(shard) ? { shard, epoch: mine.get(shard), member: status.member } : { shard, member: null });
      }
      expect(list.filter((o: { owner: { member: string | null } }) => o.owner.member === null).length).toBe(64 - mine.size);
    } finally {
      await c?.stop();
    }
  }, 90_000);
});
