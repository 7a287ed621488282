// Run files are reused: a fire takes a slot (runs/s<n>.lock, .out, .exit)
// whose files stay from run to run (no inode allocated or freed, nothing
// renamed per fire), except when a process of the run still holds its lock.
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, type ControllerEvent, JsonlSink, parseOrderFile } from '../../src/index.js';
import { SimDisk } from '../../src/testing.js';
import { isSlotName, RunSlots } from '../../src/dispatcher/run-slots.js';
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

const inodes = (state: string) => readdirSync(join(state, 'runs')).map((n) => ({ name: n, ino: statSync(join(state, 'runs', n)).ino }));

describe('run files', () => {
  it('a later run gets the files of a settled one, and only its own output in them', async () => {
    const state = dir();
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(BODY)}\n`, '/virtual/inodes.toml');
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false });
    try {
      const first = await fireOnce(c, state);
      expect(first.out).toBeGreaterThan(0);
      expect(first.lock).toBeGreaterThan(0);
      const files = inodes(state);
      expect(files.map((f) => f.name).sort()).toEqual(['s0.exit', 's0.lock', 's0.out']);
      expect(files.map((f) => f.ino)).toContain(first.out);
      // The slot comes back as soon as the run is settled: the next fire, at once, gets it.
      for (let i = 0; i < 2; i++) {
        const next = await fireOnce(c, state);
        expect([next.out, next.lock]).toEqual([first.out, first.lock]);
        // Only this run's own output: nothing of the first run's.
        expect(next.lines).toBe(2);
      }
      expect(inodes(state)).toEqual(files);
      expect(files.every((f) => (statSync(join(state, 'runs', f.name)).mode & 0o077) === 0)).toBe(true);
    } finally {
      await c.stop(2_000);
    }
  }, 30_000);

  it("a no-op's slot goes to the very next fire, its relaxed release not yet synced: a wave creates no file per fire", async () => {
    const state = dir();
    const seen = join(state, 'inodes.log');
    // A no-op leaves no audit record: the body notes its files' inodes itself.
    const body = `echo "$(stat -L -c %i /proc/$$/fd/1) $(stat -L -c %i /proc/$$/fd/3)" >> ${seen}; exit 100`;
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n`, '/virtual/inodes.toml');
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false, store: { flushIntervalMs: 10_000 } });
    try {
      for (let i = 0; i < 4; i++) expect((await c.fire('inodes')).outcome).toBe('no-op');
      const lines = readFileSync(seen, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(4);
      expect(new Set(lines).size).toBe(1);
      expect(readdirSync(join(state, 'runs')).sort()).toEqual(['s0.exit', 's0.lock', 's0.out']);
    } finally {
      await c.stop(2_000);
    }
    expect(existsSync(join(state, 'audit.jsonl')) ? readFileSync(join(state, 'audit.jsonl'), 'utf8') : '').toBe('');
  }, 20_000);

  it('a slot whose lock a leftover process still holds is retired: its files are removed, never reused', async () => {
    const state = dir();
    // The daemon keeps fd 3 (the run lock) and the output: it outlives the body's group.
    const body = `${BODY}; setsid sleep 5 & exit 0`;
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n`, '/virtual/inodes.toml');
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false });
    try {
      const first = await fireOnce(c, state);
      expect(first.lock).toBeGreaterThan(0);
      await sleep(3_500);
      expect(inodes(state)).toEqual([]);
      const second = await fireOnce(c, state);
      expect(second.lock).not.toBe(first.lock);
      // A slot of its own, retired in turn (this body leaves a daemon too).
      expect(readdirSync(join(state, 'runs')).filter((n) => n.startsWith('s0.'))).toEqual([]);
    } finally {
      await c.stop(2_000);
    }
  }, 20_000);

  it('a slot whose lock cannot be made fails its run with the reason, is not handed out again, and the next fire goes on', async () => {
    const state = dir();
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(BODY)}\n`, '/virtual/inodes.toml');
    const warnings: string[] = [];
    const onEvent = (e: ControllerEvent) => void (e.type === 'warning' && warnings.push(`${e.code}: ${e.message}`));
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false, onEvent });
    try {
      // A file where the runs directory was: neither the lock nor the directory can be made.
      rmSync(join(state, 'runs'), { recursive: true, force: true });
      writeFileSync(join(state, 'runs'), 'not a directory');
      const failed = await c.fire('inodes');
      expect(failed.outcome).toBe('failed');
      const record = () => readFileSync(join(state, 'audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { fireId: string; labels: { reason?: string } });
      for (let i = 0; i < 100 && !record().some((r) => r.fireId === failed.fireId); i++) await sleep(50);
      expect(record().find((r) => r.fireId === failed.fireId)?.labels.reason).toMatch(/^could not start the body: cannot create the run lock \S*\/runs\/s0\.lock: Not a directory/);
      // Nor can it be told whether a process holds the lock: taken as held, said once, and the fire is settled, not thrown.
      expect(warnings).toEqual([expect.stringMatching(/^WARN_RUN_LOCK_UNREADABLE: cannot tell whether a process still holds the run lock: cannot check the run lock \S*\/runs\/s0\.lock: Not a directory/)]);
      rmSync(join(state, 'runs'));
      expect((await c.fire('inodes')).outcome).toBe('did-work');
      // s0 was not handed out again.
      expect(readdirSync(join(state, 'runs')).sort()).toEqual(['s1.exit', 's1.lock', 's1.out']);
    } finally {
      await c.stop(2_000);
    }
  });

  it('a runs directory replaced by a file while a body runs: the run is settled with its exit code, never thrown, and the controller goes on', async () => {
    const state = dir();
    const order = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = "sleep 0.6; exit 0"\n`, '/virtual/inodes.toml');
    const warnings: string[] = [];
    const onEvent = (e: ControllerEvent) => void (e.type === 'warning' && warnings.push(e.code));
    const c = await Controller.start({ state, orders: [order], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false, onEvent });
    try {
      const fired = c.fire('inodes');
      await sleep(200);
      rmSync(join(state, 'runs'), { recursive: true, force: true });
      writeFileSync(join(state, 'runs'), 'not a directory');
      expect((await fired).outcome).toBe('did-work');
      expect(warnings).toEqual(['WARN_RUN_LOCK_UNREADABLE']);
      // Past a sweep, which must not throw on the file either.
      await sleep(1_500);
      rmSync(join(state, 'runs'));
      expect((await c.fire('inodes')).outcome).toBe('did-work');
    } finally {
      await c.stop(2_000);
    }
  });
});

describe('run files deleted after a run', () => {
  /** A retired slot (the daemon keeps its lock) has its files deleted, with nothing later in the log to order that after its release. */
  const retiring = (daemonSeconds: number) =>
    parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(`${BODY}; setsid sleep ${daemonSeconds} & sleep 0.5; exit 100`)}\n`, '/virtual/inodes.toml');
  const slotFiles = (state: string) => readdirSync(join(state, 'runs')).filter((n) => n.startsWith('s0.')).sort();

  it('wait for the release to be synced, however long the configured flush interval', async () => {
    const state = dir();
    const c = await Controller.start({ state, orders: [retiring(12)], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false, store: { flushIntervalMs: 3_000 } });
    try {
      expect((await c.fire('inodes')).outcome).toBe('no-op');
      await sleep(2_000);
      // The release waits for its sync (3 s after it): its run's output and exit status stay.
      expect(slotFiles(state)).toEqual(['s0.exit', 's0.out']);
      for (let i = 0; i < 60 && slotFiles(state).length > 0; i++) await sleep(100);
      expect(slotFiles(state)).toEqual([]);
    } finally {
      await c.stop(2_000);
    }
  }, 20_000);

  it('wait for the release to be synced while the disk stalls, however long that takes', async () => {
    const state = dir();
    const disk = new SimDisk();
    const c = await Controller.start({ state, orders: [retiring(15)], audit: new JsonlSink(join(state, 'audit.jsonl')), schedule: false, store: { storage: disk } });
    try {
      const fired = c.fire('inodes');
      // The acquire is synced at once; the body runs 0.5 s, and the sync of its release takes 6 s.
      await sleep(200);
      disk.setSyncLatency(6_000);
      expect((await fired).outcome).toBe('no-op');
      // Well past the 2 s that used to be enough, and past the flush interval many times over.
      await sleep(4_000);
      expect(slotFiles(state)).toEqual(['s0.exit', 's0.out']);
      // Syncs after the stalled one (due at ~6.6 s) are quick again.
      disk.setSyncLatency(0);
      for (let i = 0; i < 60 && slotFiles(state).length > 0; i++) await sleep(100);
      expect(slotFiles(state)).toEqual([]);
    } finally {
      await c.stop(2_000);
    }
  }, 25_000);
});

describe('RunSlots', () => {
  it('hands out the most recently freed slot, never one twice, and keeps no more than its cap', () => {
    const slots = new RunSlots(2);
    expect([slots.take(), slots.take(), slots.take()]).toEqual(['s0', 's1', 's2']);
    expect(slots.give('s1')).toBe(true);
    expect(slots.give('s1')).toBe(true);
    expect(slots.give('s0')).toBe(true);
    expect(slots.give('s2')).toBe(false);
    expect(slots.size).toBe(2);
    expect([slots.take(), slots.take(), slots.take()]).toEqual(['s0', 's1', 's3']);
  });

  it('numbers new slots above those a restarted controller still finds in use', () => {
    const slots = new RunSlots();
    slots.reserve('s41');
    slots.reserve('../x');
    expect(slots.take()).toBe('s42');
    expect([isSlotName('s7'), isSlotName('s'), isSlotName('s1/../x'), isSlotName(7)]).toEqual([true, false, false, false]);
  });
});
