import fc from 'fast-check';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LeaseStore, OrderlyError } from '../src/index.js';
import { MemoryLeases } from '../src/memory-leases.js';
import { repoRoot } from './helpers.js';

const { NativeLeaseStore } = createRequire(import.meta.url)(join(repoRoot, 'index.cjs')) as typeof import('../index.cjs');

type Op =
  | { kind: 'acquire'; key: number; group: number | null; ttl: number }
  | { kind: 'release' | 'renew' | 'complete'; key: number; back: number }
  | { kind: 'ack'; back: number }
  | { kind: 'setGate'; group: number; cap: number }
  | { kind: 'bad'; which: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('acquire' as const), key: fc.integer({ min: 0, max: 5 }), group: fc.option(fc.integer({ min: 0, max: 1 })), ttl: fc.constantFrom(60_000, 0, -1, 3_600_000) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('release' as const, 'renew' as const, 'complete' as const), key: fc.integer({ min: 0, max: 5 }), back: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ack' as const), back: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('setGate' as const), group: fc.integer({ min: 0, max: 1 }), cap: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bad' as const), which: fc.integer({ min: 0, max: 2 }) }) },
);

type Backend = Pick<MemoryLeases, 'acquire' | 'release' | 'renew' | 'complete' | 'ack' | 'setGate' | 'inFlight' | 'holder'>;

function outcome(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (err) {
    const e = OrderlyError.from(err);
    return { code: e.code, message: e.message };
  }
}

function step(b: Backend, o: Op, tokens: number[][]): unknown {
  const out = new Float64Array(4);
  switch (o.kind) {
    case 'acquire':
      return outcome(() => {
        const status = b.acquire(`k${o.key}`, o.ttl, o.group === null ? undefined : `g${o.group}`, undefined, out);
        if (status === 0) tokens[o.key]!.push(out[0]!);
        return status === 0 ? [status, out[0]] : [status];
      });
    case 'ack': {
      const all = tokens.flat().sort((a, c) => c - a);
      return outcome(() => b.ack(all[o.back] ?? 999));
    }
    case 'setGate':
      return outcome(() => b.setGate(`g${o.group}`, o.cap));
    case 'bad':
      return outcome(() => (o.which === 0 ? b.acquire('', 1, undefined, undefined, out) : o.which === 1 ? b.acquire('x'.repeat(1025), 1, undefined, undefined, out) : b.release('k0', 10_000, false)));
    default: {
      const list = tokens[o.key]!;
      const token = list[list.length - 1 - o.back] ?? 1;
      const key = `k${o.key}`;
      if (o.kind === 'release') return outcome(() => b.release(key, token, false));
      if (o.kind === 'renew') return outcome(() => typeof b.renew(key, token, 60_000));
      return outcome(() => (b.complete(key, token, 'x', out), 'done'));
    }
  }
}

describe('the in-memory lease store', () => {
  it('behaves exactly like the native store on random operations (differential)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 80 }), async (ops) => {
        const native = await NativeLeaseStore.open(null, undefined, () => undefined);
        const memory = new MemoryLeases();
        const tn: number[][] = Array.from({ length: 6 }, () => []);
        const tm: number[][] = Array.from({ length: 6 }, () => []);
        try {
          for (const o of ops) {
            expect(step(memory, o, tm), JSON.stringify(o)).toEqual(step(native as unknown as Backend, o, tn));
            for (const g of ['g0', 'g1', undefined]) expect(memory.inFlight(g)).toBe(native.inFlight(g));
            for (let k = 0; k < 6; k++) expect(memory.holder(`k${k}`)?.token).toEqual(native.holder(`k${k}`)?.token);
          }
        } finally {
          await native.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('grants exactly the cap to 50 concurrent acquirers and takes over expired leases with a higher token', async () => {
    const store = await LeaseStore.open(null, { gates: { sweeps: 3 } });
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => store.acquire(`o${i}`, { group: 'sweeps', ttlMs: 20 })));
    expect(got.filter(Boolean)).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 40));
    // Expired leases free their slots when the gate is next checked.
    const again = await Promise.all(Array.from({ length: 50 }, (_, i) => store.acquire(`o${i}`, { group: 'sweeps' })));
    const granted = again.filter((l) => l !== null);
    expect(granted).toHaveLength(3);
    const maxOld = got.reduce((m, l) => (l && l.token > m ? l.token : m), 0n);
    expect(granted.every((l) => l!.token > maxOld)).toBe(true);
    for (const old of got.filter((l) => l !== null)) {
      if (granted.some((l) => l!.key === old!.key)) expect(() => store.release(old!)).toThrow(/no longer held/);
    }
    await store.close();
  });
});
