// What `orderly-dispatch run` does with a state directory it must not use: one another
// controller holds, or one written by a newer orderly.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { sleep, startController, waitUntil, writeOrder } from './support.js';

const tmp = tempDir('state-dir');
afterAll(() => tmp.remove());

function setup(name: string) {
  const root = join(tmp.path, name);
  const ordersDir = join(root, 'orders');
  writeOrder(ordersDir, 'quiet', { exec: 'exit 100', intervalMs: 60_000, timeoutMs: 5_000 });
  return { ordersDir, state: join(root, 'state') };
}

/** Path → sha256 of every file under `dir`. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}

describe('a state directory orderly must not use', () => {
  it('a second controller on the same state exits at once, naming the holder pid', async () => {
    const { ordersDir, state } = setup('two');
    const first = startController(ordersDir, state);
    expect(await waitUntil(() => first.events.some((e) => e.type === 'started'), 10_000), first.stderr()).toBe(true);
    const t0 = Date.now();
    const second = startController(ordersDir, state);
    const status = await second.exited;
    const tookMs = Date.now() - t0;
    expect(status.code, second.stderr()).not.toBe(0);
    expect(second.stderr()).toContain(String(first.child.pid));
    expect(second.stderr()).toMatch(/ERR_WAL_LOCKED|locked|held/i);
    expect(second.events.filter((e) => e.type === 'fired')).toEqual([]);
    expect(tookMs, 'the second controller must not wait for the lock').toBeLessThan(5_000);
    // The first one is unaffected.
    expect(first.child.exitCode).toBe(null);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
  }, 30_000);

  it('a log written by a newer format version is refused with a clear error, and nothing is touched', async () => {
    const { ordersDir, state } = setup('newer');
    const first = startController(ordersDir, state);
    expect(await waitUntil(() => first.events.some((e) => e.type === 'completed'), 10_000), first.stderr()).toBe(true);
    first.child.kill('SIGTERM');
    await first.exited;
    const leases = join(state, 'leases');
    const segments = readdirSync(leases).filter((f) => f.endsWith('.wal')).sort();
    expect(segments.length).toBeGreaterThan(0);
    // The header's format version (bytes 8..12) of the newest segment, as a future orderly would write it.
    const seg = join(leases, segments[segments.length - 1]!);
    const bytes = readFileSync(seg);
    bytes.writeUInt32LE(7, 8);
    writeFileSync(seg, bytes);
    const before = snapshot(state);
    await sleep(10);
    const second = startController(ordersDir, state);
    const status = await second.exited;
    expect(status.code, second.stderr()).not.toBe(0);
    expect(second.stderr()).toMatch(/version 7/);
    expect(second.stderr()).toContain(leases);
    expect(second.events.filter((e) => e.type === 'fired')).toEqual([]);
    // Every file as it was, but the lock file: taking the lock (which names
    // its holder's pid) comes before reading any segment.
    const after = snapshot(state);
    const lock = join(leases, 'LOCK');
    expect({ ...after, [lock]: '' }).toEqual({ ...before, [lock]: '' });
  }, 30_000);
});
