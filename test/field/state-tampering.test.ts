// A cleanup job deletes the lease log's segment under a running
// controller: it fails closed within seconds (no order fires, doctor FAIL
// naming the file) instead of acknowledging records into an unlinked file.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sleep, startController, waitUntil } from '../crash/support.js';
import { cli, scratch, writeTree } from '../gascity/fixtures.js';

const fresh = scratch('field-tamper');

describe('state files removed under a running controller', () => {
  it('poison the store within seconds: an error event names the file, orders are skipped, doctor says FAIL', async () => {
    const base = fresh();
    const orders = writeTree(join(base, 'orders'), { 'tick.toml': '[order]\ntrigger = "cooldown"\ninterval = "1s"\nexec = "exit 100"\n' });
    const state = join(base, 'state');
    const run = startController(orders, state);
    expect(await waitUntil(() => run.events.filter((e) => e.type === 'completed').length >= 2, 10_000), run.stderr()).toBe(true);
    const leases = join(state, 'leases');
    const segment = readdirSync(leases).find((f) => f.endsWith('.wal'))!;
    rmSync(join(leases, segment));
    const removedAt = Date.now();
    expect(await waitUntil(() => run.events.some((e) => e.type === 'error' && e.code === 'ERR_WAL_POISONED'), 5_000), run.stderr()).toBe(true);
    expect(Date.now() - removedAt).toBeLessThan(4_000);
    const error = run.events.find((e) => e.type === 'error' && e.code === 'ERR_WAL_POISONED')!;
    expect(error.message).toContain(`segment ${join(leases, segment)} was deleted while the log was open`);
    await sleep(1_500);
    expect(run.events.some((e) => e.type === 'skipped' && e.reason === 'store-poisoned')).toBe(true);
    const doctor = spawnSync(process.execPath, [cli, 'doctor', '--state', state, '--json', '--min-free-mb', '0'], { encoding: 'utf8' });
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'poisoned')).toMatchObject({ status: 'FAIL', detail: expect.stringContaining(segment) as string });
    run.child.kill('SIGTERM');
    await run.exited;
  }, 30_000);

  it('a log whose segments were deleted while stopped is refused, repaired with fences above every earlier one, and runs again', async () => {
    const base = fresh();
    const orders = writeTree(join(base, 'orders'), { 'tick.toml': '[order]\ntrigger = "cooldown"\ninterval = "1s"\nexec = "exit 0"\n' });
    const state = join(base, 'state');
    const first = startController(orders, state);
    expect(await waitUntil(() => first.events.filter((e) => e.type === 'completed').length >= 3, 10_000), first.stderr()).toBe(true);
    first.child.kill('SIGTERM');
    await first.exited;
    const fences = first.events.filter((e) => e.type === 'fired').map((e) => Number(e.fence));
    const leases = join(state, 'leases');
    for (const f of readdirSync(leases)) if (f.endsWith('.wal')) rmSync(join(leases, f));

    const refused = spawnSync(process.execPath, [cli, 'run', orders, '--state', state, '--for', '1s'], { encoding: 'utf8' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/was lost or replaced: it holds tokens up to 0, but tokens up to \d+ were reserved beside it.*run `orderly-dispatch repair`/);
    const doctor = spawnSync(process.execPath, [cli, 'doctor', '--state', state, '--json', '--min-free-mb', '0'], { encoding: 'utf8' });
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'wal lost')).toMatchObject({ status: 'FAIL', detail: expect.stringContaining(`run orderly-dispatch repair --state ${state}`) as string });

    const repair = spawnSync(process.execPath, [cli, 'repair', '--state', state, '--json'], { encoding: 'utf8' });
    expect(repair.status, repair.stderr).toBe(0);
    const report = JSON.parse(repair.stdout) as { repaired: boolean; tokensContinueAbove: number };
    expect(report.repaired).toBe(true);
    expect(report.tokensContinueAbove).toBeGreaterThan(Math.max(...fences));

    const again = startController(orders, state);
    expect(await waitUntil(() => again.events.some((e) => e.type === 'fired'), 10_000), again.stderr()).toBe(true);
    again.child.kill('SIGTERM');
    await again.exited;
    const fence = Number(again.events.find((e) => e.type === 'fired')!.fence);
    expect(fence).toBeGreaterThan(Math.max(...fences));
    expect(JSON.parse(spawnSync(process.execPath, [cli, 'repair', '--state', state, '--json'], { encoding: 'utf8' }).stdout)).toMatchObject({ repaired: false, reason: 'healthy' });
  }, 40_000);

  it('a log damaged before its tail is refused; repair keeps the records before the damage and the next run sends their audit records', async () => {
    const base = fresh();
    const orders = writeTree(join(base, 'orders'), {
      'work.toml': '[order]\ntrigger = "manual"\nexec = "echo worked"\n',
      'idle.toml': '[order]\ntrigger = "cooldown"\ninterval = "1s"\nexec = "exit 100"\n',
    });
    const state = join(base, 'state');
    const down = 'postgres://orderly@127.0.0.1:1/audit';
    const first = startController(orders, state, ['--grace', '1s'], { audit: down });
    expect(await waitUntil(() => first.events.some((e) => e.type === 'started'), 10_000), first.stderr()).toBe(true);
    for (let i = 0; i < 2; i++) spawnSync(process.execPath, [cli, 'fire', 'work', '--state', state], { encoding: 'utf8' });
    // Then more records after the two waiting audit records: no-op fires of idle.
    expect(await waitUntil(() => first.events.filter((e) => e.type === 'completed' && e.scopedName === 'idle').length >= 3, 10_000)).toBe(true);
    first.child.kill('SIGTERM');
    await first.exited;

    // Damage a record well before the tail: the last mention of "idle" but one.
    const leases = join(state, 'leases');
    const segment = join(leases, readdirSync(leases).find((f) => f.endsWith('.wal'))!);
    const bytes = readFileSync(segment);
    const at = bytes.lastIndexOf('idle', bytes.lastIndexOf('idle') - 1);
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(segment, bytes);

    const refused = spawnSync(process.execPath, [cli, 'run', orders, '--state', state, '--for', '1s'], { encoding: 'utf8' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(segment);
    const doctor = spawnSync(process.execPath, [cli, 'doctor', '--state', state, '--json', '--min-free-mb', '0'], { encoding: 'utf8' });
    expect((JSON.parse(doctor.stdout) as { checks: Array<{ name: string; detail: string }> }).checks.find((c) => c.name === 'wal')?.detail).toContain(`run orderly-dispatch repair --state ${state}`);

    const repair = spawnSync(process.execPath, [cli, 'repair', '--state', state, '--json'], { encoding: 'utf8' });
    expect(repair.status, repair.stderr).toBe(0);
    const report = JSON.parse(repair.stdout) as { repaired: boolean; bytesCut: number; kept: { outbox: number } };
    expect(report.repaired).toBe(true);
    expect(report.bytesCut).toBeGreaterThan(0);
    expect(report.kept.outbox).toBe(2);

    // The database is back: the next run sends both.
    const audit = join(base, 'audit.jsonl');
    const again = spawnSync(process.execPath, [cli, 'run', orders, '--state', state, '--for', '1500ms', '--audit', `jsonl:${audit}`], { encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    const rows = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { scopedName: string; outcome: string });
    expect(rows.filter((r) => r.scopedName === 'work').map((r) => r.outcome)).toEqual(['did-work', 'did-work']);
  }, 60_000);

  it('an older copy of the log restored over the newer one, or the runs directory removed while running: fences never repeat, nothing crashes', async () => {
    const base = fresh();
    const orders = writeTree(join(base, 'orders'), { 'tick.toml': '[order]\ntrigger = "cooldown"\ninterval = "1s"\nexec = "exit 100"\n' });
    const state = join(base, 'state');
    const fences: number[] = [];
    const runFor = async (until: (events: Array<Record<string, unknown>>) => boolean, during?: () => void): Promise<Array<Record<string, unknown>>> => {
      const run = startController(orders, state);
      expect(await waitUntil(() => run.events.some((e) => e.type === 'fired'), 10_000), run.stderr()).toBe(true);
      during?.();
      expect(await waitUntil(() => until(run.events), 10_000), run.stderr()).toBe(true);
      run.child.kill('SIGTERM');
      const end = await run.exited;
      expect(end.code, run.stderr()).toBe(0);
      fences.push(...run.events.filter((e) => e.type === 'fired').map((e) => Number(e.fence)));
      return run.events;
    };
    await runFor((ev) => ev.filter((e) => e.type === 'completed').length >= 2);
    const copy = join(base, 'old-leases');
    spawnSync('cp', ['-a', join(state, 'leases'), copy]);
    // The runs directory removed by a cleanup job under a running controller: the next fires go on.
    const during = await runFor((ev) => ev.filter((e) => e.type === 'completed').length >= 3, () => rmSync(join(state, 'runs'), { recursive: true, force: true }));
    expect(during.filter((e) => e.type === 'completed' && e.outcome === 'no-op').length).toBeGreaterThanOrEqual(2);
    // The log's segments put back from the older copy (its reservation, TOKENS, stays the newer one).
    for (const f of readdirSync(join(state, 'leases'))) if (f.endsWith('.wal')) rmSync(join(state, 'leases', f));
    for (const f of readdirSync(copy)) if (f.endsWith('.wal')) spawnSync('cp', ['-a', join(copy, f), join(state, 'leases', f)]);
    // Every start reserved a new block, so the older log is far behind: refused, then repaired.
    const refused = spawnSync(process.execPath, [cli, 'run', orders, '--state', state, '--for', '1s'], { encoding: 'utf8' });
    expect([refused.status, refused.stderr]).toEqual([1, expect.stringContaining('was lost or replaced') as string]);
    expect(spawnSync(process.execPath, [cli, 'repair', '--state', state], { encoding: 'utf8' }).status).toBe(0);
    const before = Math.max(...fences);
    const after = await runFor((ev) => ev.filter((e) => e.type === 'completed').length >= 1);
    const first = Number(after.find((e) => e.type === 'fired')!.fence);
    expect(first).toBeGreaterThan(before);
    expect(new Set(fences).size).toBe(fences.length);
  }, 60_000);
});

