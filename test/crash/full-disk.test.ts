// A full disk for real: the state directory on a 512 KiB tmpfs that a filler
// file fills while `orderly-dispatch run` fires orders that do work. Evidence as in the
// kill harness: the bodies' own logs and the audit rows read from SQLite (the
// database lives on another filesystem, as it would in production).
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, loadCity, sinkFromUrl } from '../../src/index.js';
import { tempDir } from '../helpers.js';
import { cliPath, readBodyLogs, sleep, startController, waitUntil, writeOrder } from './support.js';

const tmp = tempDir('full-disk');
const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
  tmp.remove();
});

const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
if (!canMount) console.warn('SKIPPED full-disk test: needs root and mount(8) to put the state on a small tmpfs');

describe('orderly-dispatch run on a full disk', () => {
  it.skipIf(!canMount)(
    'stops firing with store-poisoned, loses nothing acknowledged, doctor says FAIL, and recovers after space is freed and a restart',
    async () => {
      const mnt = join(tmp.path, 'mnt');
      mkdirSync(mnt);
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
      expect(m.status, `mount failed: ${m.stderr}`).toBe(0);
      cleanups.unshift(() => spawnSync('umount', ['-l', mnt]));
      const state = join(mnt, 'state');
      const ordersDir = join(tmp.path, 'orders');
      const logDir = join(tmp.path, 'logs');
      const dbPath = join(tmp.path, 'audit.db');
      const audit = `sqlite:${dbPath}`;
      mkdirSync(logDir);
      const body = `sh -c 'echo \\"start $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N)\\" >> ${logDir}/$ORDERLY_SCOPED_NAME.log; sleep 0.05; echo \\"end $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N) 0\\" >> ${logDir}/$ORDERLY_SCOPED_NAME.log'`;
      for (let i = 0; i < 4; i++) writeOrder(ordersDir, `work-${i}`, { exec: body, intervalMs: 300, timeoutMs: 10_000 });
      const args = ['--grace', '5s', '--store-segment-bytes', '16384', '--store-compact-after', '8192'];
      const ended = () => [...readBodyLogs(logDir).values()].flat().filter((r) => r.end !== undefined);
      const rows = () => {
        const db = new Database(dbPath, { readonly: true });
        try {
          return db.prepare('SELECT fire_id, outcome FROM orderly_audit').all() as Array<{ fire_id: string; outcome: string }>;
        } finally {
          db.close();
        }
      };

      // ------------------------------------------------ firing, then full
      const first = startController(ordersDir, state, args, { audit });
      expect(await waitUntil(() => ended().length >= 12, 20_000), first.stderr()).toBe(true);
      expect(await waitUntil(() => rows().length >= 8, 10_000)).toBe(true);
      spawnSync('sh', ['-c', `dd if=/dev/zero of=${join(mnt, 'filler')} bs=4k 2>/dev/null; true`]);
      const filledAt = Date.now();
      const poisoned = () => first.events.filter((e) => e.type === 'skipped' && e.reason === 'store-poisoned');
      expect(await waitUntil(() => poisoned().length >= 4, 20_000), `no fire was skipped as store-poisoned; last events:\n${first.events.filter((e) => Number(e.at) >= filledAt - 200).slice(0, 14).map((e) => JSON.stringify(e)).join('\n')}\n${first.stderr()}`).toBe(true);
      // Once poisoned nothing fires: no body starts a second after the first skip.
      const firstSkipAt = Number(poisoned()[0]!.at);
      await sleep(1_500);
      const lateStarts = [...readBodyLogs(logDir).values()].flat().filter((r) => r.start > firstSkipAt + 1_000);
      expect(lateStarts, 'bodies started after the store was poisoned').toEqual([]);

      const doctor = await new Promise<{ code: number | null; stdout: string }>((resolve) =>
        execFile(process.execPath, [cliPath, 'doctor', '--state', state, '--audit', audit, '--json'], (err, stdout) => resolve({ code: err ? (err.code as number) : 0, stdout })),
      );
      expect(doctor.code, doctor.stdout).toBe(1);
      const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: Array<{ name: string; status: string }> };
      expect(report.checks.filter((c) => c.status === 'FAIL').map((c) => c.name)).toContain('poisoned');

      first.child.kill('SIGTERM');
      await first.exited;

      // Acknowledged before the disk filled: every run that ended then has its record.
      const beforeFull = ended().filter((r) => r.end! < filledAt - 500);
      const recorded = new Map(rows().map((r) => [r.fire_id, r.outcome]));
      expect(beforeFull.filter((r) => recorded.get(r.fireId) !== 'did-work').map((r) => r.fireId)).toEqual([]);

      // ------------------------------------------------ space back, restart
      spawnSync('rm', ['-f', join(mnt, 'filler')]);
      const startsBefore = [...readBodyLogs(logDir).values()].flat().length;
      const second = startController(ordersDir, state, args, { audit });
      expect(await waitUntil(() => [...readBodyLogs(logDir).values()].flat().length >= startsBefore + 8, 20_000), second.stderr()).toBe(true);
      second.child.kill('SIGTERM');
      const status = await second.exited;
      expect(status.code, second.stderr()).toBe(0);
      expect(second.events.filter((e) => e.type === 'skipped' && e.reason === 'store-poisoned')).toEqual([]);
      const { orders } = await loadCity(ordersDir);
      const final = await Controller.start({ state, orders, schedule: false, audit: sinkFromUrl(audit) });
      await final.stop();

      // Every run that ended has exactly one record: its outcome, or
      // interrupted for a run whose completion could not be written to the full disk.
      const all = [...readBodyLogs(logDir).values()].flat();
      const after = new Map(rows().map((r) => [r.fire_id, r.outcome]));
      expect(rows().length).toBe(after.size);
      const missing = all.filter((r) => r.end !== undefined && !['did-work', 'interrupted'].includes(after.get(r.fireId) ?? ''));
      expect(missing.map((r) => `${r.fireId}: ${after.get(r.fireId) ?? 'no record'}`)).toEqual([]);
      const interrupted = all.filter((r) => after.get(r.fireId) === 'interrupted');
      expect(interrupted.every((r) => r.end! >= filledAt - 500), 'only runs that ended once the disk was full may be interrupted').toBe(true);
      for (const runs of readBodyLogs(logDir).values()) {
        for (let i = 1; i < runs.length; i++) expect(runs[i]!.fence > runs[i - 1]!.fence).toBe(true);
      }
    },
    120_000,
  );
});
