// The audit sinks against real databases (throwaway servers on loopback):
// schema on first open and nothing on re-open, idempotent batches, history
// and prune, forty concurrent completions through a Controller sharing a
// transaction or two, and Dolt's once-per-batch commit against a stand-in
// DOLT_COMMIT procedure in MariaDB.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonlSink } from '../../src/audit/jsonl.js';
import { MysqlSink } from '../../src/audit/mysql.js';
import { PostgresSink } from '../../src/audit/postgres.js';
import type { AuditRecord, AuditSink } from '../../src/audit/record.js';
import { loadDriver, SCHEMA_VERSION } from '../../src/audit/schema.js';
import { SqliteSink } from '../../src/audit/sqlite.js';
import { sinkFromUrl } from '../../src/audit/url.js';
import { Controller, defineOrder } from '../../src/index.js';
import { tempDir } from '../helpers.js';
import { startMariadb, startPostgres, type DatabaseServer } from '../support/servers.mjs';

const SERVER_TIMEOUT = 120_000;
type Kind = 'jsonl' | 'sqlite' | 'postgres' | 'mariadb';
const KINDS: Kind[] = ['jsonl', 'sqlite', 'postgres', 'mariadb'];

const work = tempDir('audit-sinks');
let postgres: DatabaseServer;
let mariadb: DatabaseServer;
const opened: AuditSink[] = [];

beforeAll(async () => {
  [postgres, mariadb] = await Promise.all([startPostgres(), startMariadb()]);
}, SERVER_TIMEOUT);

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
  await Promise.all([postgres?.stop(), mariadb?.stop()]);
  work.remove();
}, SERVER_TIMEOUT);

// ------------------------------------------------------------ helpers

let seq = 0;
function rec(scopedName: string, endedAt: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  seq++;
  return {
    fireId: `f${seq}-${randomUUID()}`,
    order: scopedName.split(':rig:')[0]!,
    scopedName,
    rig: scopedName.includes(':rig:') ? scopedName.split(':rig:')[1]! : null,
    trigger: 'cooldown',
    outcome: 'did-work',
    exitCode: 0,
    signal: null,
    startedAt: endedAt - 50,
    endedAt,
    durationMs: 50,
    fence: String(seq),
    outputTail: `output ${seq}\n`,
    labels: {},
    ...extra,
  };
}

interface Target {
  kind: Kind;
  url: string;
  sink: AuditSink;
  /** A fresh sink on the same database (a restarted controller). */
  again: () => AuditSink;
  /** Rows of a SQL query on the database itself (not through the sink); `?` placeholders. */
  query: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>;
}

let dbSeq = 0;
/** A sink on a database of its own (a new file, or CREATE DATABASE on the shared server). */
async function target(kind: Kind, options: { dolt?: boolean } = {}): Promise<Target> {
  const name = `t${++dbSeq}`;
  let url: string;
  let query: Target['query'];
  switch (kind) {
    case 'jsonl':
      url = `jsonl:${join(work.path, `${name}.jsonl`)}`;
      query = async () => {
        throw new Error('no SQL on jsonl');
      };
      break;
    case 'sqlite': {
      const file = join(work.path, `${name}.db`);
      url = `sqlite:${file}`;
      query = async (sql, params = []) => {
        const db = new Database(file, { readonly: true });
        try {
          return db.prepare(sql).all(params) as Array<Record<string, unknown>>;
        } finally {
          db.close();
        }
      };
      break;
    }
    case 'postgres': {
      await postgres.sql(`CREATE DATABASE ${name}`);
      url = postgres.url.replace(/\/orderly$/, `/${name}`);
      query = async (sql, params = []) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          let n = 0;
          return (await client.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as Array<Record<string, unknown>>;
        } finally {
          await client.end();
        }
      };
      break;
    }
    case 'mariadb': {
      await mariadb.sql(`CREATE DATABASE ${name}`);
      url = mariadb.url.replace(/\/orderly$/, `/${name}`) + (options.dolt ? '?dolt_commit=1' : '');
      const plain = mariadb.url.replace(/\/orderly$/, `/${name}`);
      query = async (sql, params = []) => {
        const conn = await mysql.createConnection({ uri: plain, supportBigNumbers: true });
        try {
          const [rows] = await conn.query(sql, params);
          return rows as Array<Record<string, unknown>>;
        } finally {
          await conn.end();
        }
      };
      break;
    }
  }
  const make = (): AuditSink => {
    const s = sinkFromUrl(url);
    opened.push(s);
    return s;
  };
  return { kind, url, sink: make(), again: make, query };
}

async function storedIds(t: Target): Promise<string[]> {
  if (t.kind === 'jsonl') {
    const file = t.url.slice('jsonl:'.length);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as AuditRecord).fireId);
  }
  return (await t.query('SELECT fire_id FROM orderly_audit ORDER BY id')).map((r) => String(r.fire_id));
}

function waitFor(cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (cond()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - t0 > timeoutMs) {
        clearInterval(poll);
        reject(new Error('timed out waiting'));
      }
    }, 10);
  });
}

const fileHash = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

// ------------------------------------------------------------ URLs and drivers

describe('sinkFromUrl', () => {
  it('maps each scheme to its sink and refuses the rest, naming the forms it knows', () => {
    expect(sinkFromUrl('jsonl:/tmp/a.jsonl')).toBeInstanceOf(JsonlSink);
    const s1 = sinkFromUrl('sqlite:/tmp/a.db');
    expect(s1).toBeInstanceOf(SqliteSink);
    expect((s1 as SqliteSink).path).toBe('/tmp/a.db');
    expect((sinkFromUrl('sqlite:///tmp/b.db') as SqliteSink).path).toBe('/tmp/b.db');
    expect(sinkFromUrl('postgres://u@h/db')).toBeInstanceOf(PostgresSink);
    expect(sinkFromUrl('postgresql://u@h/db')).toBeInstanceOf(PostgresSink);
    const m = sinkFromUrl('mysql://root:secret@h:3306/db?dolt_commit=1');
    expect(m).toBeInstanceOf(MysqlSink);
    expect((m as MysqlSink).doltCommit).toBe(true);
    expect(m.url).not.toContain('secret');
    expect((sinkFromUrl('mysql://root@h/db') as MysqlSink).doltCommit).toBe(false);
    expect(sinkFromUrl('postgres://u:pw@h/db').url).toBe('postgres://u:***@h/db');
    for (const bad of ['', 'sqlite:', 'postgres:nohost', 'redis://h', '/tmp/a.db']) {
      expect(() => sinkFromUrl(bad), bad).toThrow(/unsupported audit URL.*sqlite:<path>.*postgres:\/\/.*mysql:\/\//);
    }
    expect(() => sinkFromUrl('mysql://h/db?dolt_commit=maybe')).toThrow(/dolt_commit must be 1 or 0/);
  });

  it('a missing driver fails with the npm package to install for that scheme', async () => {
    const missing = 'orderly-no-such-driver';
    await expect(loadDriver(missing, 'postgres://', () => import(/* @vite-ignore */ missing))).rejects.toMatchObject({
      code: 'ERR_AUDIT_DRIVER',
      message: expect.stringMatching(/the postgres:\/\/ audit sink needs the npm package "orderly-no-such-driver".*npm install orderly-no-such-driver/),
    });
  });

  it('depends on the default sink\'s driver, and declares the others as optional peer dependencies (and dev dependencies for the tests)', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8'));
    expect(pkg.dependencies['better-sqlite3']).toBeTruthy();
    expect(pkg.peerDependencies['better-sqlite3']).toBeUndefined();
    for (const name of ['pg', 'mysql2']) {
      expect(pkg.peerDependencies[name], name).toBeTruthy();
      expect(pkg.peerDependenciesMeta[name], name).toEqual({ optional: true });
      expect(pkg.devDependencies[name], name).toBeTruthy();
      expect(pkg.dependencies?.[name], name).toBeUndefined();
    }
  });
});

// ------------------------------------------------------------ the contract, per sink

describe.each(KINDS)('%s sink', (kind) => {
  it('creates its schema on first open; opening again changes nothing', async () => {
    const t = await target(kind);
    await t.sink.open();
    await t.sink.ping();
    if (kind === 'jsonl') {
      const file = t.url.slice('jsonl:'.length);
      expect(existsSync(file)).toBe(true);
      await t.sink.close();
      const before = fileHash(file);
      const again = t.again();
      await again.open();
      await again.close();
      expect(fileHash(file)).toBe(before);
      return;
    }
    const schema = await t.query('SELECT version, applied_at FROM orderly_schema');
    expect(schema.map((r) => Number(r.version))).toEqual([SCHEMA_VERSION]);
    expect(await t.query('SELECT count(*) AS n FROM orderly_audit')).toEqual([{ n: kind === 'postgres' ? '0' : 0 }]);
    // The (scoped_name, ended_at) index history reads through.
    const indexes =
      kind === 'sqlite'
        ? (await t.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orderly_audit'")).map((r) => r.name)
        : kind === 'postgres'
          ? (await t.query("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'orderly_audit'")).map((r) => r.name)
          : (await t.query('SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?', ['orderly_audit'])).map(
              (r) => r.name,
            );
    expect(indexes).toEqual(expect.arrayContaining(['orderly_audit_scoped_ended', 'orderly_audit_ended']));
    await t.sink.write([rec('keep', Date.now())]);
    await t.sink.close();

    const file = kind === 'sqlite' ? t.url.slice('sqlite:'.length) : '';
    const before = kind === 'sqlite' ? fileHash(file) : '';
    const again = t.again();
    await again.open();
    await again.ping();
    await again.close();
    // Nothing rewritten: same version row (same applied_at), same data; for SQLite the very same bytes.
    expect(await t.query('SELECT version, applied_at FROM orderly_schema')).toEqual(schema);
    expect((await storedIds(t)).length).toBe(1);
    if (kind === 'sqlite') {
      expect(fileHash(file)).toBe(before);
      expect(existsSync(`${file}-wal`) ? readFileSync(`${file}-wal`).length : 0).toBe(0);
    }
  });

  it('stores a batch once however often it arrives, and says how many were new', async () => {
    const t = await target(kind);
    await t.sink.open();
    const now = Date.now();
    const batch = Array.from({ length: 5 }, (_, i) => rec('idem', now + i));
    expect(await t.sink.write(batch)).toEqual({ inserted: 5 });
    expect(await t.sink.write(batch)).toEqual({ inserted: 0 });
    const more = [batch[0]!, batch[3]!, rec('idem', now + 10), rec('idem', now + 11)];
    expect(await t.sink.write(more)).toEqual({ inserted: 2 });
    // The same fire twice inside one batch counts once.
    const twin = rec('idem', now + 20);
    expect(await t.sink.write([twin, { ...twin }])).toEqual({ inserted: 1 });
    expect(await t.sink.write([])).toEqual({ inserted: 0 });
    // A restarted controller re-sending its outbox to a fresh sink.
    const again = t.again();
    await again.open();
    expect(await again.write([...batch, twin])).toEqual({ inserted: 0 });
    const ids = await storedIds(t);
    expect(ids.length).toBe(8);
    expect(new Set(ids).size).toBe(8);
  });

  it('gives records back as written: nulls, a u64 fence, labels, unicode output', async () => {
    const t = await target(kind);
    await t.sink.open();
    const now = Date.now();
    const records = [
      rec('fidelity:rig:east', now, {
        outcome: 'failed',
        exitCode: 3,
        fence: '18446744073709551615',
        outputTail: 'grüße ✓ 😀\nline "two" \\ \'three\'\n',
        labels: { reason: 'exit 3', 'x-y': 'ü' },
        trigger: 'event:deploy',
      }),
      rec('fidelity:rig:east', now + 1, { outcome: 'interrupted', exitCode: null, signal: null, trigger: 'unknown', outputTail: '' }),
      rec('fidelity:rig:east', now + 2, { outcome: 'timeout', exitCode: null, signal: 'SIGKILL', durationMs: 123456 }),
    ];
    await t.sink.write(records);
    const back = await t.sink.history!({ scopedName: 'fidelity:rig:east', limit: 10 });
    expect(back).toEqual([...records].reverse());
  });

  it('history: newest first, per order or all, limited, paged with before (exclusive)', async () => {
    const t = await target(kind);
    await t.sink.open();
    const base = Date.now() - 60_000;
    const a = Array.from({ length: 6 }, (_, i) => rec('a', base + i * 1000));
    const b = Array.from({ length: 3 }, (_, i) => rec('b', base + i * 1000 + 500));
    // Shuffled arrival: history orders by endedAt, not by arrival.
    await t.sink.write([a[3]!, b[1]!, a[0]!, a[5]!]);
    await t.sink.write([a[1]!, b[0]!, a[4]!, b[2]!, a[2]!]);
    const ids = (rs: AuditRecord[]) => rs.map((r) => r.fireId);
    expect(ids(await t.sink.history!({ scopedName: 'a', limit: 100 }))).toEqual(ids([...a].reverse()));
    expect(ids(await t.sink.history!({ scopedName: 'a', limit: 2 }))).toEqual(ids([a[5]!, a[4]!]));
    expect(ids(await t.sink.history!({ scopedName: 'a', limit: 2, before: a[4]!.endedAt }))).toEqual(ids([a[3]!, a[2]!]));
    expect(ids(await t.sink.history!({ scopedName: 'b', limit: 10, before: b[0]!.endedAt }))).toEqual([]);
    expect(ids(await t.sink.history!({ limit: 4 }))).toEqual(ids([a[5]!, a[4]!, a[3]!, b[2]!]));
    expect(await t.sink.history!({ scopedName: 'nobody', limit: 5 })).toEqual([]);
    expect(await t.sink.history!({ limit: 0 })).toEqual([]);
    await expect(t.sink.history!({ limit: -1 })).rejects.toThrow(/limit/);
  });

  it('prune: drops records older than the cut-off, keeps the newest K per order however old, batch rows at a time', async () => {
    const t = await target(kind);
    await t.sink.open();
    const day = 86_400_000;
    const now = Date.now();
    const old = (i: number) => now - 10 * day - i * 1000;
    const a = Array.from({ length: 10 }, (_, i) => rec('a', old(i))); // a[0] newest
    const b = Array.from({ length: 2 }, (_, i) => rec('b', old(i)));
    const c = Array.from({ length: 5 }, (_, i) => rec('c', now - i * 1000));
    const mixed = [rec('d', now), rec('d', old(1)), rec('d', old(2)), rec('d', old(3))];
    await t.sink.write([...a, ...b, ...c, ...mixed]);
    // a: 10 old, keep 3 -> 7 go; b: 2 old, fewer than 3 -> kept; c: recent -> kept;
    // d: 1 recent + 3 old, keep 3 -> the oldest goes.
    expect(await t.sink.prune!({ olderThanMs: 7 * day, keepPerOrder: 3, batch: 2 })).toBe(8);
    const left = new Set(await storedIds(t));
    expect([...a.slice(0, 3), ...b, ...c, ...mixed.slice(0, 3)].every((r) => left.has(r.fireId))).toBe(true);
    expect(left.size).toBe(3 + 2 + 5 + 3);
    // Idempotent: nothing more to do.
    expect(await t.sink.prune!({ olderThanMs: 7 * day, keepPerOrder: 3, batch: 2 })).toBe(0);
    // keepPerOrder 0: everything past the cut-off goes.
    expect(await t.sink.prune!({ olderThanMs: 7 * day, keepPerOrder: 0, batch: 1000 })).toBe(3 + 2 + 2);
    expect((await storedIds(t)).sort()).toEqual([...c, mixed[0]!].map((r) => r.fireId).sort());
    // Writes still work after a prune (the JSON-lines file was replaced).
    expect(await t.sink.write([rec('e', now)])).toEqual({ inserted: 1 });
    expect(await t.sink.write([c[0]!])).toEqual({ inserted: 0 });
    await expect(t.sink.prune!({ olderThanMs: 0, keepPerOrder: 0, batch: 0 })).rejects.toThrow(/batch/);
  });

  it('(a) forty concurrent did-work completions through a Controller: each stored once, in a few transactions', async () => {
    const t = await target(kind);
    const state = join(work.path, `state-${kind}-40`);
    const orders = Array.from({ length: 40 }, (_, i) => defineOrder({ name: `o${i}`, trigger: 'manual', run: async () => ({ didWork: true }) }));
    const c = await Controller.start({ state, orders, audit: t.sink, schedule: false });
    let stats;
    try {
      const results = await Promise.all(orders.map((o) => c.fire(o.name)));
      expect(results.map((r) => r.outcome)).toEqual(Array(40).fill('did-work'));
      await waitFor(() => c.stats().audit.records >= 40 && c.stats().audit.backlog === 0);
      stats = c.stats().audit;
    } finally {
      await c.stop();
    }
    const ids = await storedIds(t);
    expect(ids.length).toBe(40);
    expect(new Set(ids).size).toBe(40);
    expect(stats.inserted).toBe(40);
    expect(stats.failures).toBe(0);
    console.log(`[audit] ${kind}: 40 concurrent completions -> ${stats.transactions} transaction(s)`);
    // Batched, not one per record: the JSONL sink's fsync per batch lets the batch count drift with
    // machine load (5 to 9 seen across CI runs), so the bound is a third of the per-record count.
    expect(stats.transactions).toBeLessThanOrEqual(13);
  });
});

// ------------------------------------------------------------ Dolt

describe('mysql://…?dolt_commit=1 (Dolt) against a stand-in DOLT_COMMIT procedure in MariaDB', () => {
  /** DOLT_COMMIT as a stored procedure recording each call and how many audit rows its transaction saw. */
  async function doltTarget(): Promise<Target> {
    const t = await target('mariadb', { dolt: true });
    await t.query('CREATE TABLE dolt_calls (n INT AUTO_INCREMENT PRIMARY KEY, flags VARCHAR(64), message TEXT, audit_rows INT)');
    await t.query(
      "CREATE PROCEDURE DOLT_COMMIT(IN flags VARCHAR(64), IN message TEXT) INSERT INTO dolt_calls (flags, message, audit_rows) SELECT flags, message, (SELECT COUNT(*) FROM orderly_audit)",
    );
    // DOLT_ADD stages only orderly's tables; a commit with `-A` would take other apps' changes too.
    await t.query('CREATE TABLE dolt_adds (n INT AUTO_INCREMENT PRIMARY KEY, tables TEXT)');
    await t.query("CREATE PROCEDURE DOLT_ADD(IN a VARCHAR(64), IN b VARCHAR(64)) INSERT INTO dolt_adds (tables) VALUES (CONCAT(a, ',', b))");
    return t;
  }
  const calls = async (t: Target) =>
    (await t.query('SELECT flags, message, audit_rows FROM dolt_calls ORDER BY n')).map((r) => ({
      flags: String(r.flags),
      message: String(r.message),
      audit_rows: Number(r.audit_rows),
    }));

  it('commits the schema once, then exactly once per batch that stored something, after the insert', async () => {
    const t = await doltTarget();
    await t.sink.open();
    expect(await calls(t)).toEqual([{ flags: '-m', message: `orderly: audit schema version ${SCHEMA_VERSION}`, audit_rows: 0 }]);
    const again = t.again();
    await again.open(); // re-open: no DDL, no commit
    await again.close();
    expect((await calls(t)).length).toBe(1);

    const now = Date.now();
    const first = [rec('d1', now), rec('d2', now), rec('d1', now + 1)];
    expect(await t.sink.write(first)).toEqual({ inserted: 3 });
    expect(await t.sink.write([rec('d3', now + 2)])).toEqual({ inserted: 1 });
    // A re-sent batch stores nothing: no Dolt commit (DOLT_COMMIT refuses an empty one).
    expect(await t.sink.write(first)).toEqual({ inserted: 0 });
    const c = await calls(t);
    expect(c.length).toBe(3);
    // Each call saw its own batch's rows: it ran after the insert, in the same transaction.
    expect(c.slice(1).map((x) => [x.flags, x.audit_rows])).toEqual([
      ['-m', 3],
      ['-m', 4],
    ]);
    expect(c[1]!.message).toMatch(/^orderly: 3 audit record\(s\): d1, d2$/);
    const adds = (await t.query('SELECT tables FROM dolt_adds ORDER BY n')).map((r) => String(r.tables));
    expect(adds).toEqual(Array(c.length).fill('orderly_audit,orderly_schema'));

    // Prune: one Dolt commit per delete transaction (batch rows each).
    const old = Date.now() - 30 * 86_400_000;
    await t.sink.write(Array.from({ length: 5 }, (_, i) => rec('p', old - i)));
    expect(await t.sink.prune!({ olderThanMs: 86_400_000, keepPerOrder: 0, batch: 2 })).toBe(5);
    const after = await calls(t);
    expect(after.slice(4).map((x) => x.message)).toEqual(Array(3).fill(expect.stringMatching(/^orderly: pruned [12] audit record\(s\)$/)));
  });

  it('forty concurrent completions: one DOLT_COMMIT per writer transaction', async () => {
    const t = await doltTarget();
    const state = join(work.path, 'state-dolt-40');
    const orders = Array.from({ length: 40 }, (_, i) => defineOrder({ name: `o${i}`, trigger: 'manual', run: async () => ({ didWork: true }) }));
    const c = await Controller.start({ state, orders, audit: t.sink, schedule: false });
    let stats;
    try {
      await Promise.all(orders.map((o) => c.fire(o.name)));
      await waitFor(() => c.stats().audit.records >= 40 && c.stats().audit.backlog === 0);
      stats = c.stats().audit;
    } finally {
      await c.stop();
    }
    const batches = (await calls(t)).slice(1);
    expect((await storedIds(t)).length).toBe(40);
    expect(batches.length).toBe(stats.transactions);
    expect(batches.at(-1)!.audit_rows).toBe(40);
    console.log(`[audit] dolt stand-in: 40 concurrent completions -> ${stats.transactions} transaction(s), ${batches.length} DOLT_COMMIT call(s)`);
  });
});

// ------------------------------------------------------------ SQLite off the JS thread

describe('sqlite sink runs its connection off the JS thread', () => {
  it('a commit waiting on another connection’s lock leaves the event loop free (thread: worker)', async () => {
    const file = join(work.path, 'locked.db');
    const sink = new SqliteSink(file);
    opened.push(sink);
    await sink.open();
    // Another connection on this thread takes the write lock…
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    other.exec('BEGIN IMMEDIATE');
    const t0 = performance.now();
    const write = sink.write([rec('locked', Date.now())]);
    // …and only a timer on this thread can release it: if the sink's commit
    // blocked the event loop, the timer could not fire until busy_timeout.
    const released = await new Promise<number>((resolve) =>
      setTimeout(() => {
        other.exec('COMMIT');
        resolve(performance.now() - t0);
      }, 300),
    );
    expect(await write).toEqual({ inserted: 1 });
    const total = performance.now() - t0;
    other.close();
    expect(released).toBeLessThan(1000);
    expect(total).toBeGreaterThanOrEqual(290);
    expect(total).toBeLessThan(3000);
  });

  it('thread: main runs the same code on the JS thread (for the benchmark)', async () => {
    const file = join(work.path, 'main-thread.db');
    const sink = new SqliteSink(file, { thread: 'main' });
    opened.push(sink);
    await sink.open();
    const batch = Array.from({ length: 500 }, (_, i) => rec('main', Date.now() + i));
    expect(await sink.write(batch)).toEqual({ inserted: 500 });
    expect(await sink.write(batch)).toEqual({ inserted: 0 });
    expect((await sink.history({ scopedName: 'main', limit: 1 }))[0]!.fireId).toBe(batch[499]!.fireId);
    await sink.close();
  });
});
