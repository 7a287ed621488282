import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serveControl } from '../src/cli/control.js';
import { doctor, type Check } from '../src/doctor.js';
import { Controller, JsonlSink, parseOrderFile } from '../src/index.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((f) => f()));

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanups.push(d.remove);
  return d.path;
}

const noop = parseOrderFile('[order]\ntrigger = "manual"\nexec = "exit 100"\n', '/virtual/noop.toml');

function byName(checks: Check[]): Record<string, Check> {
  return Object.fromEntries(checks.map((c) => [c.name, c]));
}

async function healthyState(): Promise<string> {
  const state = dir('doctor');
  const c = await Controller.start({ state, orders: [noop], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false });
  await c.fire('noop');
  await c.stop();
  writeFileSync(join(state, 'controller.json'), JSON.stringify({ audit: `jsonl:${join(state, 'audit.jsonl')}` }));
  return state;
}

describe('orderly-dispatch doctor', () => {
  it('says OK on a healthy state', async () => {
    const checks = await doctor({ state: await healthyState(), minFreeBytes: 1 });
    expect(checks.filter((c) => c.status === 'FAIL')).toEqual([]);
    const c = byName(checks);
    expect(c.wal!.detail).toMatch(/segment/);
    expect(c.audit!.status).toBe('OK');
    expect(c.lock!.status).toBe('OK');
  });

  it('fails when free disk is below the threshold', async () => {
    const c = byName(await doctor({ state: await healthyState(), minFreeBytes: Number.MAX_SAFE_INTEGER }));
    expect(c.disk!.status).toBe('FAIL');
    expect(c.disk!.detail).toMatch(/free .*threshold/);
  });

  it('fails when the audit sink cannot be reached', async () => {
    const state = await healthyState();
    const c = byName(await doctor({ state, minFreeBytes: 1, audit: 'jsonl:/nonexistent/dir/audit.jsonl' }));
    expect(c.audit!.status).toBe('FAIL');
    expect(c.audit!.detail).toContain('/nonexistent/dir/audit.jsonl');
  });

  it('fails when the lock is held but its recorded holder is dead', async () => {
    const state = await healthyState();
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    const lock = join(state, 'leases', 'LOCK');
    writeFileSync(lock, dead);
    // Another process holds the flock, as a child that inherited it would.
    const holder = spawn('flock', ['-n', lock, 'sleep', '30'], { stdio: 'ignore' });
    cleanups.unshift(() => holder.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 300));
    const checks = await doctor({ state, minFreeBytes: 1 });
    const c = byName(checks);
    expect(c.lock!.status).toBe('FAIL');
    expect(c.lock!.detail).toContain(`pid ${dead}`);
    holder.kill('SIGKILL');
  });

  it('fails, naming the file, when the store\'s lock file cannot be read, instead of throwing', async () => {
    const state = await healthyState();
    const lock = join(state, 'leases', 'LOCK');
    rmSync(lock);
    mkdirSync(lock);
    const c = byName(await doctor({ state, minFreeBytes: 1 }));
    expect(c.lock!.status).toBe('FAIL');
    expect(c.lock!.detail).toContain(lock);
    expect(c.lock!.detail).toMatch(/EISDIR/);
    expect(c.lock!.detail).not.toMatch(/run lock/);
  });

  const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
  it.skipIf(!canMount)('fails when the running controller has a poisoned log', async () => {
    const mnt = dir('doctor-full');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    if (m.status !== 0) {
      console.warn(`SKIPPED poisoned-log doctor test: mount failed: ${m.stderr}`);
      return;
    }
    cleanups.unshift(() => spawnSync('umount', ['-l', mnt]));
    const state = join(mnt, 'state');
    const c = await Controller.start({ state, orders: [noop], audit: new JsonlSink(join(mnt, 'audit.jsonl')), schedule: false, store: { segmentBytes: 4096 } });
    const server = serveControl(state, async (req) => (req.cmd === 'status' ? { ...c.stats(), pid: process.pid } : { entries: c.feed() }));
    spawnSync('sh', ['-c', `dd if=/dev/zero of=${join(mnt, 'filler')} bs=4k 2>/dev/null; true`]);
    for (let i = 0; i < 40 && !c.stats().poisoned; i++) await c.fire('noop');
    expect(c.stats().poisoned).toBe(true);
    const checks = byName(await doctor({ state, minFreeBytes: 1 }));
    expect(checks.controller!.detail).toMatch(/running/);
    expect(checks.poisoned!.status).toBe('FAIL');
    // The filesystem really is full, and doctor says so too.
    expect(checks.disk!.status).toBe('FAIL');
    server.close();
    await c.stop();
  });
});
