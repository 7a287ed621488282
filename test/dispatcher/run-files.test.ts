// Run files are reused: a settled run's files are emptied into runs/.spare
// and renamed into place for a later run (no inode allocated or freed per
// fire), except when a process of the run still holds its lock.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, JsonlSink, parseOrderFile } from '../../src/index.js';
import { SpareFiles } from '../../src/dispatcher/spare-files.js';
import { tempDir } from '../helpers.js';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((f) => f()));

function dir(): string {
  const d = tempDir('run-files');
  cleanups.push(d.remove);
  return d.path;
}

/** Inode of the body's own stdout (its output file) and of its fd 3 (its run lock). */
const BODY = 'stat -L -c %i /proc/$$/fd/1; stat -L -c %i /proc/$$/fd/3';

/** Fires the order (exit 0: did work, so its record keeps the output) and reads both inodes from its record. */
async function fireOnce(c: Controller, state: string): Promise<{ out: number; lock: number; lines: number }> {
  const r = await c.fire('inodes');
  const find = () =>
    (existsSync(join(state, 'audit.jsonl')) ? readFileSync(join(state, 'audit.jsonl'), 'utf8') : '')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { fireId: string; outputTail: string })
      .find((x) => x.fireId === r.fireId);
  for (let i = 0; i < 100 && !find(); i++) await sleep(50);
  const record = find()!;
  const lines = record.outputTail.trim().split('\n');
  return { out: Number(lines[0]), lock: Number(lines[1]), lines: lines.length };
}

describe('run files', () => {
  it('a later run gets the emptied files of a settled one', async () => {
    const state = dir();
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(BODY)}\n`, '/virtual/inodes.toml');
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false });
    try {
      const first = await fireOnce(c, state);
      expect(first.out).toBeGreaterThan(0);
      expect(first.lock).toBeGreaterThan(0);
      // The output lingers until the release is surely synced, then is emptied into the spares.
      await sleep(3_500);
      const spare = join(state, 'runs', '.spare');
      const kept = readdirSync(spare).map((n) => statSync(join(spare, n)));
      expect(kept.map((s) => s.ino)).toContain(first.out);
      expect(kept.map((s) => s.ino)).toContain(first.lock);
      expect(kept.every((s) => s.size === 0 && (s.mode & 0o077) === 0)).toBe(true);
      const second = await fireOnce(c, state);
      expect([first.out, first.lock]).toContain(second.out);
      // Only this run's own output: nothing of the first run's.
      expect(second.lines).toBe(2);
    } finally {
      await c.stop(2_000);
    }
  }, 20_000);

  it('files of a run whose lock a leftover process still holds are removed, never reused', async () => {
    const state = dir();
    // The daemon keeps fd 3 (the run lock) and the output: it outlives the body's group.
    const body = `${BODY}; setsid sleep 5 & exit 0`;
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n`, '/virtual/inodes.toml');
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false });
    try {
      const first = await fireOnce(c, state);
      expect(first.lock).toBeGreaterThan(0);
      await sleep(3_500);
      const spare = join(state, 'runs', '.spare');
      const kept = readdirSync(spare).map((n) => statSync(join(spare, n)).ino);
      expect(kept).not.toContain(first.out);
      expect(kept).not.toContain(first.lock);
    } finally {
      await c.stop(2_000);
    }
  }, 20_000);
});

describe('SpareFiles', () => {
  it('hands out what it was given, emptied, and keeps no more than its cap', async () => {
    const d = dir();
    const { writeFileSync } = await import('node:fs');
    const spares = new SpareFiles(join(d, '.spare'), 2);
    expect(spares.take(join(d, 'a'))).toBe(false);
    for (const name of ['x', 'y', 'z']) {
      writeFileSync(join(d, name), 'old contents');
      spares.give(join(d, name));
    }
    expect(spares.size).toBe(2);
    expect(existsSync(join(d, 'z'))).toBe(false);
    // A restarted controller finds them again.
    const again = new SpareFiles(join(d, '.spare'), 2);
    expect(again.take(join(d, 'b'))).toBe(true);
    expect(readFileSync(join(d, 'b'), 'utf8')).toBe('');
    expect(again.size).toBe(1);
  });
});
