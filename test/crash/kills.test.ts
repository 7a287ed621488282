// The crash harness in its CI size (`npm test`) and, with CRASH_KILLS=10000,
// the soak (`npm run test:soak`): see harness.ts for what is checked.
//
// Knobs: CRASH_KILLS random kills (default 200), CRASH_LANES campaigns side by
// side on separate state directories (default 1), CRASH_POINT_HITS per point
// (default 5), CRASH_GAP_TOLERANCE_MS (default 300), CRASH_PG_KILLS (default
// 40), CRASH_REPORT=<file> also writes the table there, ORDERLY_KEEP_TMP=1
// keeps everything for a post-mortem.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startPostgres } from '../support/servers.mjs';
import { tempDir } from '../helpers.js';
import { type AuditRow, type CampaignResult, CRASH_POINTS, formatTable, INVARIANTS, mergeResults, runCampaign } from './harness.js';

const KILLS = Math.max(1, Number(process.env.CRASH_KILLS ?? 200) || 200);
const LANES = Math.max(1, Number(process.env.CRASH_LANES ?? 1) || 1);
const HITS = Math.max(1, Number(process.env.CRASH_POINT_HITS ?? 5) || 5);
const PG_KILLS = Math.max(1, Number(process.env.CRASH_PG_KILLS ?? 40) || 40);
const GAP_TOLERANCE_MS = Number(process.env.CRASH_GAP_TOLERANCE_MS ?? 300);
/** Segments of 64 KiB, checkpoints every 8 KiB of dead records: a few segments plus run files. */
const STATE_BOUND_BYTES = 2 << 20;

const tmp = tempDir('kills');
afterAll(() => tmp.remove());

const SELECT = 'SELECT fire_id, scoped_name, outcome, fence, exit_code FROM orderly_audit';
type Row = { fire_id: string; scoped_name: string; outcome: string; fence: string | number; exit_code: number | null };
const toAudit = (r: Row): AuditRow => ({ fireId: r.fire_id, scopedName: r.scoped_name, outcome: r.outcome, fence: String(r.fence), exitCode: r.exit_code });

function sqliteAudit(path: string) {
  return {
    url: `sqlite:${path}`,
    read: async () => {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare(SELECT).all() as Row[]).map(toAudit);
      } finally {
        db.close();
      }
    },
  };
}

function report(title: string, r: CampaignResult): void {
  const table = formatTable(title, r);
  console.log(table);
  for (const i of INVARIANTS) if (r.violations[i].length) console.log(`${i} violations (first 20):\n  ${r.violations[i].slice(0, 20).join('\n  ')}`);
  if (process.env.CRASH_REPORT) writeFileSync(process.env.CRASH_REPORT, `${table}\n`);
}

function expectClean(r: CampaignResult, points: readonly string[], minHits: number): void {
  for (const i of INVARIANTS) expect(r.violations[i], `${i} violations`).toEqual([]);
  for (const p of points) expect(r.hits[p], `crash point ${p} hit ${r.hits[p]} times in ${r.attempts[p]} tries`).toBeGreaterThanOrEqual(minHits);
}

describe('kill -9 under load', () => {
  it(
    `SQLite audit: ${KILLS} random kills and every crash point hit ${HITS}+ times, zero violations`,
    async () => {
      const lanes = await Promise.all(
        Array.from({ length: LANES }, (_, lane) =>
          runCampaign({
            root: join(tmp.path, `sqlite-${lane}`),
            audit: sqliteAudit(join(tmp.path, `sqlite-${lane}.db`)),
            randomKills: Math.ceil(KILLS / LANES),
            points: CRASH_POINTS,
            hitsPerPoint: HITS,
            gapToleranceMs: GAP_TOLERANCE_MS,
            stateBoundBytes: STATE_BOUND_BYTES,
            progress: (line) => console.log(`[lane ${lane}] ${line}`),
          }),
        ),
      );
      const r = mergeResults(lanes);
      report(
        `kill -9 harness, SQLite audit, ${new Date().toISOString().slice(0, 10)}: \`CRASH_KILLS=${KILLS}${LANES > 1 ? ` CRASH_LANES=${LANES}` : ''} npx vitest run test/crash/kills.test.ts\``,
        r,
      );
      expectClean(r, CRASH_POINTS, HITS);
      expect(r.randomKills).toBeGreaterThanOrEqual(KILLS);
    },
    (30 + KILLS * 8) * 1000,
  );

  it(
    `PostgreSQL audit: ${PG_KILLS} random kills and the audit crash points, zero violations`,
    async () => {
      const server = await startPostgres();
      try {
        const points = ['fire:acquired', 'fire:completed', 'audit:committed', 'audit:acked'] as const;
        const r = await runCampaign({
          root: join(tmp.path, 'postgres'),
          audit: {
            url: server.url,
            read: async () => {
              const client = new pg.Client({ connectionString: server.url });
              await client.connect();
              try {
                return (await client.query<Row>(SELECT)).rows.map(toAudit);
              } finally {
                await client.end();
              }
            },
          },
          randomKills: PG_KILLS,
          points,
          hitsPerPoint: HITS,
          gapToleranceMs: GAP_TOLERANCE_MS,
          stateBoundBytes: STATE_BOUND_BYTES,
        });
        report(`kill -9 harness, PostgreSQL audit`, r);
        expectClean(r, points, HITS);
      } finally {
        await server.stop();
      }
    },
    (60 + PG_KILLS * 8) * 1000,
  );
});
