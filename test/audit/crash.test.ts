// (b) G3 through the real CLI against real databases: `orderly-dispatch run --audit
// <url>` is SIGKILLed between the durable COMPLETE record and the audit
// commit (fire:completed), and between the commit and the ack
// (audit:committed). After a restart (`orderly-dispatch run --for 1s`, or a direct
// `orderly-dispatch fire`, which uses the URL the last run saved), every record is in
// the database exactly once.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../helpers.js';
import { startMariadb, startPostgres, type DatabaseServer } from '../support/servers.mjs';

const cliPath = join(repoRoot, 'dist', 'cli.js');
type Kind = 'jsonl' | 'sqlite' | 'postgres' | 'mariadb';
const KINDS: Kind[] = ['jsonl', 'sqlite', 'postgres', 'mariadb'];
const work = tempDir('audit-crash');
let postgres: DatabaseServer;
let mariadb: DatabaseServer;

beforeAll(async () => {
  [postgres, mariadb] = await Promise.all([startPostgres(), startMariadb()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([postgres?.stop(), mariadb?.stop()]);
  work.remove();
}, 120_000);

interface Cli {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ORDERLY_CRASH_POINT: '', ...env } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`orderly ${args.join(' ')} did not exit within ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return { type: 'unparsed', line: l };
          }
        });
      resolve({ code, signal, lines, stderr: err });
    });
  });
}

let n = 0;
/** An audit URL on a database (or file) of its own, and a reader of the fire ids stored there. */
async function target(kind: Kind): Promise<{ url: string; ids: () => Promise<string[]> }> {
  const name = `c${++n}`;
  switch (kind) {
    case 'jsonl': {
      const file = join(work.path, `${name}.jsonl`);
      return {
        url: `jsonl:${file}`,
        ids: async () =>
          existsSync(file)
            ? readFileSync(file, 'utf8')
                .split('\n')
                .filter(Boolean)
                .map((l) => JSON.parse(l).fireId as string)
            : [],
      };
    }
    case 'sqlite': {
      const file = join(work.path, `${name}.db`);
      return {
        url: `sqlite:${file}`,
        ids: async () => {
          if (!existsSync(file)) return [];
          const db = new Database(file, { readonly: true });
          try {
            return (db.prepare('SELECT fire_id FROM orderly_audit ORDER BY id').all() as Array<{ fire_id: string }>).map((r) => r.fire_id);
          } finally {
            db.close();
          }
        },
      };
    }
    case 'postgres': {
      await postgres.sql(`CREATE DATABASE ${name}`);
      const url = postgres.url.replace(/\/orderly$/, `/${name}`);
      return {
        url,
        ids: async () => {
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          try {
            if (!(await c.query("SELECT to_regclass('orderly_audit') AS t")).rows[0].t) return [];
            return (await c.query('SELECT fire_id FROM orderly_audit ORDER BY id')).rows.map((r) => r.fire_id as string);
          } finally {
            await c.end();
          }
        },
      };
    }
    case 'mariadb': {
      await mariadb.sql(`CREATE DATABASE ${name}`);
      const url = mariadb.url.replace(/\/orderly$/, `/${name}`);
      return {
        url,
        ids: async () => {
          const c = await mysql.createConnection({ uri: url });
          try {
            const [t] = await c.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'orderly_audit'");
            if (!Number((t as Array<{ n: number }>)[0]!.n)) return [];
            const [rows] = await c.query('SELECT fire_id FROM orderly_audit ORDER BY id');
            return (rows as Array<{ fire_id: string }>).map((r) => r.fire_id);
          } finally {
            await c.end();
          }
        },
      };
    }
  }
}

/** One order that does work (exit 0) and fires at start, then not for an hour. */
function writeOrders(dir: string): string {
  const orders = join(dir, 'orders');
  mkdirSync(orders, { recursive: true });
  writeFileSync(join(orders, 'work.toml'), '[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = "echo worked"\n');
  return orders;
}

const POINTS = ['fire:completed', 'audit:committed'] as const;
const RESTARTS = ['run', 'fire'] as const;

describe.each(KINDS)('%s sink: controller killed around the audit commit', (kind) => {
  it.each(POINTS.flatMap((point) => RESTARTS.map((restart) => [point, restart] as const)))(
    'SIGKILL at %s, restarted with orderly %s: every record stored exactly once',
    async (point, restart) => {
      const t = await target(kind);
      const dir = join(work.path, `${kind}-${point.replace(':', '-')}-${restart}`);
      const orders = writeOrders(dir);
      const state = join(dir, 'state');

      const first = await cli(['run', orders, '--state', state, '--audit', t.url, '--json'], { ORDERLY_CRASH_POINT: point });
      expect(first.signal, first.stderr).toBe('SIGKILL');
      const fired = first.lines.filter((l) => l.type === 'fired');
      expect(fired.length).toBe(1);
      const fireId = fired[0]!.fireId as string;
      // What the crash left: no record yet (killed before the commit), or the record (killed before the ack).
      expect(await t.ids()).toEqual(point === 'fire:completed' ? [] : [fireId]);

      if (restart === 'run') {
        const again = await cli(['run', orders, '--state', state, '--audit', t.url, '--json', '--for', '1s']);
        expect(again.code, again.stderr).toBe(0);
        expect(again.lines.some((l) => l.type === 'recovered' && l.action === 'resent')).toBe(true);
        const summary = again.lines.find((l) => l.type === 'summary')!;
        // The re-sent record is new to the database only if the crash came before the commit.
        expect(summary).toMatchObject({ fires: 0, auditWrites: point === 'fire:completed' ? 1 : 0, auditBacklog: 0 });
        expect(await t.ids()).toEqual([fireId]);
      } else {
        // No --audit: `fire` uses the URL the crashed run saved.
        const again = await cli(['fire', 'work', '--state', state, '--json']);
        expect(again.code, again.stderr).toBe(0);
        const result = again.lines.at(-1)!;
        expect(result).toMatchObject({ outcome: 'did-work', via: expect.stringMatching(/direct/) });
        const ids = await t.ids();
        expect(ids.sort()).toEqual([fireId, result.fireId as string].sort());
      }
    },
    60_000,
  );
});
