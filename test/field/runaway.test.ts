// Bodies that misbehave on a real host: one that prints without end on a
// small disk, one that leaves a daemon behind holding its run lock.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller, JsonlSink, parseOrderFile, type ControllerEvent } from '../../src/index.js';
import { sleep, waitUntil } from '../crash/support.js';
import { scratch } from '../gascity/fixtures.js';

const fresh = scratch('field-runaway');

function smallDisk(path: string, size: string): boolean {
  mkdirSync(path, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]).status === 0;
}

describe('a chatty body on a small state disk', () => {
  it('keeps only a tail of its output on disk: the run completes and the log is not poisoned', async (ctx) => {
    const base = fresh();
    const state = join(base, 'state');
    if (!smallDisk(state, '12m')) return ctx.skip('cannot mount a tmpfs here (not root?)');
    try {
      // 40 MB of output at about 10 MB/s: three times the disk.
      const body = 'i=0; while [ $i -lt 40 ]; do head -c 1000000 /dev/zero | tr "\\\\0" x; sleep 0.1; i=$((i+1)); done; echo done';
      const spec = parseOrderFile(`[order]\ntrigger = "manual"\nexec = ${JSON.stringify(body)}\ntimeout = "60s"\n`, join(base, 'orders/chatty.toml'));
      const events: ControllerEvent[] = [];
      const c = await Controller.start({ state, orders: [spec], schedule: false, audit: new JsonlSink(join(base, 'audit.jsonl')), store: { segmentBytes: 65536 }, onEvent: (e) => events.push(e) });
      const result = await c.fire('chatty');
      const stats = c.stats();
      await c.stop();
      expect(result.outcome).toBe('did-work');
      expect(stats.poisoned).toBe(false);
      const audit = readFileSync(join(base, 'audit.jsonl'), 'utf8');
      expect(audit).toContain('done');
      expect(events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      spawnSync('umount', ['-l', state]);
    }
  }, 60_000);
});

describe('a body that leaves a setsid daemon behind', () => {
  it('at its timeout, the daemon holding the run lock is killed too, so the order is not held forever', async () => {
    const base = fresh();
    const pidFile = join(base, 'daemon.pid');
    const body = `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 120' & sleep 30`;
    const spec = parseOrderFile(`[order]\ntrigger = "manual"\nexec = ${JSON.stringify(body)}\ntimeout = "1s"\n`, join(base, 'orders/leaky.toml'));
    const events: ControllerEvent[] = [];
    const c = await Controller.start({ state: join(base, 'state'), orders: [spec], schedule: false, killGraceMs: 300, audit: new JsonlSink(join(base, 'audit.jsonl')), onEvent: (e) => events.push(e) });
    const result = await c.fire('leaky');
    expect(result.outcome).toBe('timeout');
    expect(existsSync(pidFile)).toBe(true);
    const daemon = Number(readFileSync(pidFile, 'utf8').trim());
    const gone = await waitUntil(() => !existsSync(`/proc/${daemon}`) || readFileSync(`/proc/${daemon}/stat`, 'utf8').split(' ')[2] === 'Z', 3_000);
    expect(gone, `daemon ${daemon} still alive`).toBe(true);
    expect(events.some((e) => e.type === 'warning' && e.code === 'WARN_BODY_DAEMON_KILLED')).toBe(true);
    // Not held: it fires again.
    await sleep(100);
    expect((await c.fire('leaky')).skipped).toBeUndefined();
    await c.stop();
    expect(statSync(join(base, 'state')).isDirectory()).toBe(true);
  }, 30_000);
});
