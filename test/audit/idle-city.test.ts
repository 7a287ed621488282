// G4 at city scale: the seed's idle city, every order answering no-op, run
// for 60 s against real databases, leaves zero rows and zero write
// transactions (read from the database's own statistics), while `orderly
// feed` shows when every order last fired.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startPostgres } from '../support/servers.mjs';
import { repoRoot, tempDir } from '../helpers.js';

const RUN_SECONDS = Number(process.env.ORDERLY_IDLE_CITY_SECONDS ?? 60);
const cli = join(repoRoot, 'dist', 'cli.js');
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const f of cleanups) await f();
});

function runCity(state: string, audit: string) {
  const child = spawn(process.execPath, [cli, 'run', join(repoRoot, 'examples', 'city'), '--state', state, '--audit', audit, '--json', '--for', `${RUN_SECONDS}s`], {
    env: { ...process.env, ORDERLY_DEMO_WORK_PERCENT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  child.stdout.on('data', (c) => {
    buf += c;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const started = new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (lines.some((l) => l.type === 'started')) {
        clearInterval(t);
        resolve();
      }
    }, 50);
    void exited.then(() => reject(new Error(`controller exited early: ${err}`)));
  });
  return { lines, exited, started, stderr: () => err };
}

function feedNow(state: string): { live: boolean; entries: Array<{ scopedName: string; lastFiredAt?: number; status: string }> } {
  const r = spawnSync(process.execPath, [cli, 'feed', '--state', state, '--json'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('the idle city', () => {
  it(`runs ${RUN_SECONDS} s with every order a no-op and writes nothing to PostgreSQL or SQLite`, async () => {
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const pgState = tempDir('idle-pg');
    const liteState = tempDir('idle-lite');
    cleanups.push(pgState.remove, liteState.remove);
    const dbFile = join(liteState.path, 'audit.db');

    const onPg = runCity(pgState.path, pg.url);
    const onLite = runCity(liteState.path, `sqlite:${dbFile}`);
    await Promise.all([onPg.started, onLite.started]);
    // The schema exists now (created at start); from here on, nothing may be written.
    const stats = async () => {
      const out = await pg.sql(
        "SELECT pg_stat_force_next_flush(); SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, pg_snapshot_xmax(pg_current_snapshot()) FROM pg_stat_database WHERE datname = 'orderly'",
      );
      const [xact, ins, upd, del, nextXid] = out.trim().split('\n').pop()!.split('|').map(Number);
      return { xact: xact!, ins: ins!, upd: upd!, del: del!, nextXid: nextXid! };
    };
    // PostgreSQL flushes a backend's statistics lazily (within ~10 s once idle):
    // take the baseline after the start-up schema check has surely landed.
    await new Promise((r) => setTimeout(r, 12_000));
    const before = await stats();
    // SQLite keeps no statistics. In WAL mode every write transaction appends
    // frames to the -wal file: sample both files for the rest of the run.
    // (Closing the sink at exit checkpoints the start-up schema into the main
    // file; that is not a new transaction, so sampling stops at exit.)
    const sqliteFiles = () => `${statSync(dbFile).size}/${statSync(dbFile).mtimeMs}/${existsSync(`${dbFile}-wal`) ? statSync(`${dbFile}-wal`).size : 0}`;
    const liteSamples = [sqliteFiles()];
    let liteRunning = true;
    void onLite.exited.then(() => (liteRunning = false));
    const sampler = setInterval(() => liteRunning && liteSamples.push(sqliteFiles()), 500);

    await new Promise((r) => setTimeout(r, Math.max(0, (RUN_SECONDS - 20) * 1000)));
    const feed = feedNow(pgState.path);
    expect(feed.live).toBe(true);
    expect(feed.entries).toHaveLength(21);
    for (const e of feed.entries) {
      expect(e.lastFiredAt, e.scopedName).toBeGreaterThan(Date.now() - RUN_SECONDS * 1000 - 5000);
      expect(e.status, e.scopedName).toBe('no-op');
    }

    const [pgCode, liteCode] = await Promise.all([onPg.exited, onLite.exited]);
    clearInterval(sampler);
    expect(pgCode, onPg.stderr()).toBe(0);
    expect(liteCode, onLite.stderr()).toBe(0);
    const after = await stats();
    const rows = Number((await pg.sql('SELECT count(*) FROM orderly_audit')).trim().split('\n').pop());
    // Per-table counters of orderly's own tables over the whole run (the
    // controller has exited, which flushed its statistics): the only write
    // ever is the schema version row of the first start.
    const tables = Object.fromEntries(
      (await pg.sql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname LIKE 'orderly_%'"))
        .trim()
        .split('\n')
        .filter((l) => l.includes('|'))
        .map((l) => l.split('|'))
        .map(([name, ...n]) => [name!.trim(), n.map(Number)]),
    );
    const firesPg = onPg.lines.filter((l) => l.type === 'fired').length;
    const summary = onPg.lines.find((l) => l.type === 'summary')!;
    console.log(
      `idle city: ${firesPg} fires on PostgreSQL in ${RUN_SECONDS} s; database delta: ${after.nextXid - before.nextXid} write transaction(s), ` +
        `${after.xact - before.xact} transaction(s) in all (reads: this measurement and orderly-dispatch feed), ` +
        `${after.ins - before.ins} inserted, ${after.upd - before.upd} updated, ${after.del - before.del} deleted; ${rows} audit row(s)`,
    );
    // Every order once at start, and the four gate-sweeps every 30 s.
    expect(firesPg).toBeGreaterThanOrEqual(21 + 4 * Math.floor((RUN_SECONDS - 1) / 30));
    expect(tables.orderly_audit).toEqual([0, 0, 0]);
    expect(tables.orderly_schema).toEqual([1, 0, 0]);
    expect(summary.noOps).toBe(summary.fires);
    expect(summary.auditWrites).toBe(0);
    expect(summary.auditTransactions).toBe(0);
    expect(rows).toBe(0);
    expect(after.ins - before.ins).toBe(0);
    expect(after.upd - before.upd).toBe(0);
    expect(after.del - before.del).toBe(0);
    // A write transaction is assigned a transaction id; a read is not. The
    // next id did not move: not one write transaction, from anyone.
    expect(after.nextXid - before.nextXid).toBe(0);

    expect(liteSamples.length).toBeGreaterThan((RUN_SECONDS - 15) * 2 - 4);
    expect(new Set(liteSamples), 'SQLite files changed while the city ran').toEqual(new Set([liteSamples[0]]));
    expect(onLite.lines.find((l) => l.type === 'summary')!.auditWrites).toBe(0);
  }, (RUN_SECONDS + 90) * 1000);
});
