// (c) The database goes away for 30 s while orders keep firing (a Controller
// whose did-work code orders fire every ~200 ms between them), then comes
// back on the same data directory: nothing is lost. Every did-work run is in
// the database exactly once, and the writer reported failures meanwhile
// (records waited in the outbox). ORDERLY_AUDIT_OUTAGE_MS shortens the
// outage for local runs; CI runs the full 30 s. Postgres and MariaDB run
// concurrently, each on a server of its own.
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { sinkFromUrl } from '../../src/audit/url.js';
import { Controller, defineOrder, type ControllerEvent } from '../../src/index.js';
import { tempDir } from '../helpers.js';
import { startMariadb, startPostgres, type DatabaseServer } from '../support/servers.mjs';

const OUTAGE_MS = Number(process.env.ORDERLY_AUDIT_OUTAGE_MS || 30_000);
/** The writer backs off up to 30 s between attempts (AuditWriter's maxRetryMs), so catching up may take that long. */
const CATCH_UP_MS = 45_000;
const ORDER_INTERVAL_MS = 400; // two orders: a fire every ~200 ms
const work = tempDir('audit-outage');
afterAll(() => work.remove());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function storedIds(server: DatabaseServer): Promise<string[]> {
  if (server.kind === 'postgres') {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      return (await c.query('SELECT fire_id FROM orderly_audit')).rows.map((r) => r.fire_id as string);
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection({ uri: server.url });
  try {
    const [rows] = await c.query('SELECT fire_id FROM orderly_audit');
    return (rows as Array<{ fire_id: string }>).map((r) => r.fire_id);
  } finally {
    await c.end();
  }
}

describe.concurrent(`the database down for ${OUTAGE_MS / 1000} s while orders keep firing`, () => {
  for (const kind of ['postgres', 'mariadb'] as const) {
    it(
      `${kind}: every did-work run stored exactly once after it returns; failures counted meanwhile`,
      async () => {
        const server = kind === 'postgres' ? await startPostgres() : await startMariadb();
        let controller: Controller | undefined;
        try {
          const didWork = new Set<string>();
          let sinkErrors = 0;
          const onEvent = (e: ControllerEvent): void => {
            if (e.type === 'completed' && e.audited) didWork.add(e.fireId);
            if (e.type === 'error' && e.code === 'ERR_AUDIT_SINK') sinkErrors++;
          };
          const orders = ['tick-a', 'tick-b'].map((name) =>
            defineOrder({ name, trigger: 'cooldown', interval: ORDER_INTERVAL_MS, run: async () => ({ didWork: true }) }),
          );
          controller = await Controller.start({ state: join(work.path, kind), orders, audit: sinkFromUrl(server.url), onEvent });
          const c = controller;

          // Healthy: records arrive as they are made.
          await sleep(2_000);
          const healthy = new Set(didWork);
          expect(healthy.size).toBeGreaterThan(0);
          await waitFor(async () => {
            const stored = await storedIds(server);
            return [...healthy].every((id) => stored.includes(id)) && stored.every((id) => didWork.has(id));
          }, 10_000);
          expect(c.stats().audit.failures).toBe(0);

          // Outage: the server shut down, its data directory kept.
          const pidBefore = server.pid;
          await server.pause();
          expect(server.isRunning()).toBe(false);
          const firedBefore = didWork.size;
          const t0 = Date.now();
          await sleep(OUTAGE_MS);
          const during = c.stats();
          const firedDuring = didWork.size - firedBefore;
          expect(during.audit.failures).toBeGreaterThan(0);
          expect(sinkErrors).toBeGreaterThan(0);
          // Orders kept firing (no-op-free: every run did work and waits in the outbox).
          expect(firedDuring).toBeGreaterThanOrEqual(Math.floor((OUTAGE_MS / ORDER_INTERVAL_MS) * 2 * 0.5));
          expect(during.audit.backlog).toBeGreaterThan(0);

          // Back on the same data directory and port.
          await server.resume();
          expect(server.isRunning()).toBe(true);
          expect(server.pid).not.toBe(pidBefore);
          const resumedAt = Date.now();
          await waitFor(() => c.stats().audit.backlog === 0, CATCH_UP_MS);
          const caughtUpMs = Date.now() - resumedAt;
          await c.stop();
          controller = undefined;
          const after = c.stats();

          const ids = await storedIds(server);
          expect(ids.length).toBe(new Set(ids).size);
          expect(new Set(ids)).toEqual(didWork);
          expect(after.audit.backlog).toBe(0);
          console.log(
            `[audit] ${kind} outage ${Math.round((resumedAt - t0) / 1000)} s: ${didWork.size} did-work runs (${firedDuring} during the outage), ` +
              `${after.audit.failures} failed attempt(s), ${after.audit.transactions} transaction(s), caught up ${caughtUpMs} ms after the server returned`,
          );
        } finally {
          await controller?.stop().catch(() => undefined);
          await server.stop();
        }
      },
      OUTAGE_MS + CATCH_UP_MS + 120_000,
    );
  }
});
