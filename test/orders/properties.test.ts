import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/orders/duration.js';
import { OrderFileError } from '../../src/orders/errors.js';
import { parseOrderFile } from '../../src/orders/load.js';
import { ORDER_FILE_KEYS } from '../../src/orders/spec.js';

const FILE = '/city/pack/orders/fuzz.toml';
const quiet = { warn: (): void => {} };

/** Runs `f`; passes if it returns or throws an OrderFileError, fails on anything else. */
function onlyOrderFileError(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (err) {
    if (err instanceof OrderFileError && err.code === 'ERR_ORDER_FILE') return true;
    throw err;
  }
}

describe('durations (properties)', () => {
  it('parseDuration(formatDuration(ms)) === ms', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 10 * 86_400_000 }), fc.integer({ min: 0, max: MAX_DURATION_MS })), (ms) => {
        expect(parseDuration(formatDuration(ms), 'interval')).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  const durationish = fc.string({ unit: fc.constantFrom('0', '1', '5', '9', '.', 'h', 'm', 's', 'u', 'n', 'µ', 'μ', '-', '+', ' ', 'd', 'e'), maxLength: 12 });

  it('any string parses to a finite, non-negative whole number of ms or throws OrderFileError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string(), durationish), (text) => {
        let ms: number;
        try {
          ms = parseDuration(text, 'interval');
        } catch (err) {
          expect(err).toBeInstanceOf(OrderFileError);
          expect((err as OrderFileError).message).toContain('interval: invalid duration');
          expect((err as OrderFileError).message).toContain('(units: ns, us, ms, s, m, h)');
          return;
        }
        expect(Number.isSafeInteger(ms)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(0);
        expect(ms).toBeLessThanOrEqual(MAX_DURATION_MS);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('order files (properties)', () => {
  it('arbitrary text never throws anything but OrderFileError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string(), fc.string({ unit: 'binary-ascii' })), (text) =>
        onlyOrderFileError(() => parseOrderFile(text, FILE, quiet)),
      ),
      { numRuns: 2000 },
    );
  });

  it('arbitrary text after an [order] header never throws anything but OrderFileError', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => onlyOrderFileError(() => parseOrderFile(`[order]\n${text}`, FILE, quiet))),
      { numRuns: 1000 },
    );
  });

  // Well-formed TOML with known and unknown keys bound to values of every type:
  // reaches the field validation that random text rarely gets past the parser to.
  const tomlString = fc.string({ unit: 'binary', maxLength: 20 }).map((s) => JSON.stringify(s));
  const scalar = fc.oneof(
    tomlString,
    fc.constantFrom('"30s"', '"1h30m"', '"0 3 * * *"', '"@daily"', '"cooldown"', '"cron"', '"condition"', '"event"', '"manual"', '"rig"', '"once"', '"UTC"', '"Mars/Base"', '"-5s"', '"30"'),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Number.isInteger(d) ? d.toFixed(1) : String(d)).replace('e+', 'e')),
    fc.constantFrom('true', 'false', 'inf', '-inf', 'nan', '1979-05-27T07:32:00Z', '1979-05-27', '07:32:00'),
  );
  const value = fc.oneof(
    { weight: 4, arbitrary: scalar },
    fc.array(scalar, { maxLength: 4 }).map((xs) => `[${xs.join(', ')}]`),
    fc.array(fc.tuple(fc.constantFrom('A', 'B', 'PATH', '"x y"'), scalar), { maxLength: 3 }).map((kvs) => `{ ${[...new Map(kvs)].map(([k, v]) => `${k} = ${v}`).join(', ')} }`),
  );
  const key = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...ORDER_FILE_KEYS) }, fc.constantFrom('intervall', 'colour', '__proto__', 'constructor', 'toString'));
  // A valid order of each trigger, then up to three keys set to arbitrary values or removed.
  const base = fc.constantFrom<Record<string, string>>(
    { exec: '"x"', gate: '"cooldown"', interval: '"30s"' },
    { formula: '"mol"', pool: '"dog"', trigger: '"cron"', schedule: '"0 3 * * *"', tz: '"UTC"' },
    { exec: '"x"', trigger: '"condition"', interval: '"1m"', check: '"true"' },
    { exec: '"x"', trigger: '"event"', on: '"bead.closed"' },
    { exec: '"x"', trigger: '"manual"', scope: '"rig"', no_op_exit_codes: '[100, 3]', env: '{ A = "1" }' },
  );
  const orderTable = fc.tuple(base, fc.array(fc.tuple(key, fc.option(value)), { maxLength: 3 })).map(([fields, edits]) => {
    const table = new Map(Object.entries(fields));
    for (const [k, v] of edits) {
      if (v === null) table.delete(k);
      else table.set(k, v);
    }
    return `[order]\n${[...table].map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  });

  it('any [order] table of known and unknown keys loads or throws OrderFileError with file and field or line', () => {
    fc.assert(
      fc.property(orderTable, (text) => {
        try {
          const spec = parseOrderFile(text, FILE, quiet);
          expect(spec.file).toBe(FILE);
          expect(Number.isSafeInteger(spec.timeoutMs) && spec.timeoutMs > 0).toBe(true);
          expect(spec.noOpExitCodes.every((c) => Number.isInteger(c) && c >= 1 && c <= 255)).toBe(true);
        } catch (err) {
          if (!(err instanceof OrderFileError)) throw err;
          expect(err.file).toBe(FILE);
          expect(err.message.startsWith(FILE)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
