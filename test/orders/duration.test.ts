import { describe, expect, it } from 'vitest';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/orders/duration.js';
import { OrderFileError } from '../../src/orders/errors.js';

const UNITS = '(units: ns, us, ms, s, m, h)';

function durationError(text: string, field = 'interval'): OrderFileError {
  try {
    parseDuration(text, field);
  } catch (err) {
    expect(err).toBeInstanceOf(OrderFileError);
    return err as OrderFileError;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('parseDuration', () => {
  it.each([
    ['300ms', 300],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['2h45m30s', 9_930_000],
    ['1m30.5s', 90_500],
    ['0.1s', 100],
    ['.5s', 500],
    ['1.s', 1000],
    ['1s500ms', 1500],
    ['+10s', 10_000],
    ['0', 0],
    ['0s', 0],
    ['0ms', 0],
    ['  30s\t', 30_000],
    ['\n5m\n', 300_000],
    ['1500us', 2], // 1.5 ms rounds to nearest
    ['1400us', 1],
    ['2500000ns', 3],
    ['1us', 1], // never rounds a non-zero duration down to 0
    ['1µs', 1], // micro sign U+00B5
    ['1μs', 1], // Greek mu U+03BC
    ['1ns', 1],
    ['999999ns', 1],
    ['24h', 86_400_000],
    ['2562047h', 2_562_047 * 3_600_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text, 'interval')).toBe(ms);
  });

  it.each([
    ['', 'empty'],
    ['   ', 'empty'],
    ['-5s', 'durations cannot be negative'],
    ['-0s', 'durations cannot be negative'],
    ['30', 'missing unit after 30 (did you mean "30s"?)'],
    ['1h30', 'missing unit after 30'],
    ['1.5', 'missing unit after 1.5'],
    ['5d', 'unknown unit "d"'],
    ['5 m', 'spaces are not allowed inside a duration'],
    ['1h 30m', 'spaces are not allowed inside a duration'],
    ['5M', 'unknown unit "M"'],
    ['5sec', 'unknown unit "sec"'],
    ['1e3s', 'unknown unit "e"'],
    ['abc', 'expected a number at "abc"'],
    ['.s', 'expected a number at ".s"'],
    ['+', 'no number'],
    ['s', 'expected a number at "s"'],
    ['1.2.3s', 'missing unit after 1.2'],
    ['2562048h', 'out of range'],
    ['9'.repeat(400) + 's', 'out of range'],
  ])('%j is rejected: %s', (text, reason) => {
    const err = durationError(text);
    expect(err.code).toBe('ERR_ORDER_FILE');
    expect(err.field).toBe('interval');
    expect(err.file).toBeUndefined();
    expect(err.message).toContain(`interval: invalid duration ${JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text)}: ${reason}`);
    expect(err.message).toContain(UNITS);
  });

  it('names the field it was given', () => {
    expect(durationError('30', 'timeout').message).toBe(
      'timeout: invalid duration "30": missing unit after 30 (did you mean "30s"?); expected a Go duration such as "30s", "5m" or "1h30m" (units: ns, us, ms, s, m, h)',
    );
  });

  it('allows up to Go\'s limit and no further', () => {
    expect(parseDuration('2562047h47m16.854s', 'x')).toBe(MAX_DURATION_MS);
    expect(() => parseDuration('2562047h47m16.855s', 'x')).toThrow(/out of range/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [1, '1ms'],
    [300, '300ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [1005, '1.005s'],
    [30_000, '30s'],
    [90_500, '1m30.5s'],
    [300_000, '5m'],
    [3_600_000, '1h'],
    [3_600_500, '1h0.5s'],
    [5_400_000, '1h30m'],
    [9_930_000, '2h45m30s'],
    [86_400_000, '24h'],
    [-1500, '-1.5s'],
    [1499.6, '1.5s'],
  ])('%d ms is %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('refuses non-finite input', () => {
    expect(() => formatDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => formatDuration(Number.NaN)).toThrow(RangeError);
  });
});
