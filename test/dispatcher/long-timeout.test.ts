import { describe, expect, it } from 'vitest';
import { Controller, defineOrder, parseOrderFile, type OrderSpec } from '../../src/index.js';
import { runCheck } from '../../src/dispatcher/check.js';
import { setLongTimeout } from '../../src/dispatcher/long-timeout.js';
import { tempDir } from '../helpers.js';

// Node fires a setTimeout longer than 2^31-1 ms (24.8 days) after 1 ms. An
// order may spell timeouts up to 292 years: none of them may end a run early.

const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

describe('setLongTimeout', () => {
  it('waits out a delay longer than one step, in steps', async () => {
    const t0 = performance.now();
    const at = await new Promise<number>((r) => setLongTimeout(() => r(performance.now()), 120, { stepMs: 25 }));
    expect(at - t0).toBeGreaterThanOrEqual(119);
  });

  it('is cleared between steps, and never fires for Infinity', async () => {
    let fired = 0;
    const t = setLongTimeout(() => fired++, 100, { stepMs: 20 });
    setLongTimeout(() => fired++, Infinity);
    await new Promise((r) => setTimeout(r, 50));
    t.clear();
    await new Promise((r) => setTimeout(r, 120));
    expect(fired).toBe(0);
  });
});

describe('timeouts past 24.8 days', () => {
  /** The outcome of one manual fire of `spec` on a fresh controller. */
  async function fireOnce(spec: OrderSpec, more: { spawner?: 'node' } = {}): Promise<string | undefined> {
    const d = tempDir('long-timeout');
    try {
      const c = await Controller.start({ state: d.path, orders: [spec], ...more });
      const r = await c.fire(spec.name);
      await c.stop();
      return r.outcome;
    } finally {
      d.remove();
    }
  }

  it('a code order with a 30-day timeout runs to its end', async () => {
    const spec = defineOrder({ name: 'slow', trigger: 'manual', timeout: '720h', run: async () => (await new Promise((r) => setTimeout(r, 100)), { didWork: false }) });
    expect(spec.timeoutMs).toBe(THIRTY_DAYS_MS);
    expect(await fireOnce(spec)).toBe('no-op');
  });

  it('an exec body with a 30-day timeout runs to its end on the node spawner', async () => {
    const spec = parseOrderFile('[order]\ntrigger = "manual"\ntimeout = "720h"\nexec = "sleep 0.1; exit 100"\n', '/virtual/slow.toml');
    expect(await fireOnce(spec, { spawner: 'node' })).toBe('no-op');
  });

  it('a condition check with a 30-day timeout is not killed', async () => {
    expect(await runCheck('sleep 0.1; exit 0', { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeoutMs: THIRTY_DAYS_MS })).toBe(true);
  });
});
