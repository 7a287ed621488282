// The throwaway database servers later integration tests and benchmarks run
// against: each starts on loopback, answers real queries, and leaves nothing
// behind (no listening port, no data directory) once stopped.
import { existsSync, statSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { portOpen, startMariadb, startPostgres, type DatabaseServer } from './servers.mjs';

const TIMEOUT = 60_000;

const started: DatabaseServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
}, TIMEOUT);

async function expectGone(server: DatabaseServer): Promise<void> {
  expect(await portOpen(server.port)).toBe(false);
  expect(existsSync(server.dataDir)).toBe(false);
  expect(existsSync(server.root)).toBe(false);
}

describe('startPostgres', () => {
  it(
    'serves database orderly on 127.0.0.1 through the pg client, durably configured, and cleans up on stop',
    async () => {
      const server = await startPostgres({ settings: { max_connections: '50' } });
      started.push(server);
      expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/orderly`);
      expect(statSync(server.dataDir).isDirectory()).toBe(true);
      expect(await portOpen(server.port)).toBe(true);

      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
        const settings = await client.query(
          "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'listen_addresses', 'max_connections') ORDER BY name",
        );
        expect(Object.fromEntries(settings.rows.map((r: { name: string; setting: string }) => [r.name, r.setting]))).toEqual({
          fsync: 'on',
          listen_addresses: '127.0.0.1',
          max_connections: '50',
          synchronous_commit: 'on',
        });
        expect((await client.query('SELECT current_database() AS db')).rows[0].db).toBe('orderly');

        await client.query('CREATE TABLE leases (key text PRIMARY KEY, token bigint NOT NULL)');
        const first = await client.query('INSERT INTO leases VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', ['a', 1]);
        const again = await client.query('INSERT INTO leases VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', ['a', 2]);
        expect([first.rowCount, again.rowCount]).toEqual([1, 0]);
        expect((await client.query('SELECT key, token FROM leases')).rows).toEqual([{ key: 'a', token: '1' }]);
      } finally {
        await client.end();
      }
      // The CLI helper sees the same database.
      expect(await server.sql('SELECT count(*) FROM leases')).toBe('1');

      await server.stop();
      await server.stop(); // idempotent
      await expectGone(server);
    },
    TIMEOUT,
  );
});

describe('startMariadb', () => {
  it(
    'serves database orderly on 127.0.0.1 through the mariadb client, durably configured, and cleans up on stop',
    async () => {
      const server = await startMariadb();
      started.push(server);
      expect(server.url).toBe(`mysql://root@127.0.0.1:${server.port}/orderly`);
      expect(statSync(server.dataDir).isDirectory()).toBe(true);
      expect(await portOpen(server.port)).toBe(true);

      // server.sql goes over TCP to 127.0.0.1:port, as root without password.
      expect(await server.sql('SELECT 1')).toBe('1');
      expect(await server.sql('SELECT DATABASE(), @@port, @@bind_address, @@innodb_flush_log_at_trx_commit, @@sync_binlog')).toBe(
        `orderly\t${server.port}\t127.0.0.1\t1\t0`,
      );
      await server.sql('CREATE TABLE leases (`key` VARCHAR(200) PRIMARY KEY, token BIGINT NOT NULL) ENGINE=InnoDB');
      await server.sql("INSERT INTO leases VALUES ('a', 1)");
      await expect(server.sql("INSERT INTO leases VALUES ('a', 2)")).rejects.toThrow(/Duplicate entry/);
      expect(await server.sql('SELECT `key`, token FROM leases')).toBe('a\t1');

      await server.stop();
      await expectGone(server);
    },
    TIMEOUT,
  );
});

describe('both at once', () => {
  it(
    'run side by side on distinct ports and directories',
    async () => {
      const [a, b] = await Promise.all([startPostgres(), startMariadb()]);
      started.push(a, b);
      expect(a.port).not.toBe(b.port);
      expect(a.root).not.toBe(b.root);
      expect(await a.sql('SELECT 2')).toBe('2');
      expect(await b.sql('SELECT 3')).toBe('3');
      await Promise.all([a.stop(), b.stop()]);
      await expectGone(a);
      await expectGone(b);
    },
    TIMEOUT,
  );
});
