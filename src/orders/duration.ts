import { OrderFileError, quote } from './errors.js';

/**
 * Go's `time.ParseDuration` units, in ns. Gas City order files are read by Go,
 * so `interval = "1h30m"` must mean here what it means there; the sum is kept
 * in exact integer ns, as Go does, and rounded to ms once at the end.
 */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

export const DURATION_UNITS = 'ns, us, ms, s, m, h';
const EXPECTED = `expected a Go duration such as "30s", "5m" or "1h30m" (units: ${DURATION_UNITS})`;

/** Go's limit (the largest int64 count of ns, 2562047h47m16.854775807s) in whole ms. */
export const MAX_DURATION_MS = 9_223_372_036_854;

/**
 * Parses a Go duration (`300ms`, `30s`, `1h30m`, `1.5h`, `1us`) into whole ms.
 * Surrounding whitespace is ignored; a bare `0` is allowed, as in Go. Sub-ms
 * parts are rounded to the nearest ms, except that a non-zero duration never
 * rounds down to 0 (1 ms instead), so `1ns` cannot silently mean "no delay".
 *
 * Throws an OrderFileError naming `field` for empty, negative, unit-less
 * (`"30"`), unknown-unit and out-of-range input: never any other error.
 */
export function parseDuration(text: string, field: string): number {
  const fail = (reason: string): never => {
    throw new OrderFileError({ field, problem: `invalid duration ${quote(text)}: ${reason}; ${EXPECTED}` });
  };
  let s = text.trim();
  if (s === '') return fail('empty');
  if (s[0] === '-') return fail('durations cannot be negative');
  if (s[0] === '+') s = s.slice(1);
  if (s === '0') return 0;
  if (s === '') return fail('no number');

  let totalNs = 0n;
  let i = 0;
  while (i < s.length) {
    const start = i;
    while (i < s.length && isDigit(s.charCodeAt(i))) i++;
    const intDigits = s.slice(start, i);
    let fracDigits = '';
    if (s[i] === '.') {
      i++;
      const fracStart = i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      fracDigits = s.slice(fracStart, i);
    }
    if (intDigits === '' && fracDigits === '') return fail(`expected a number at ${quote(s.slice(start))}`);
    const number = s.slice(start, i);

    const unitStart = i;
    while (i < s.length && s[i] !== '.' && !isDigit(s.charCodeAt(i))) i++;
    const unit = s.slice(unitStart, i);
    if (unit === '') {
      return fail(`missing unit after ${number}${i === s.length && start === 0 ? ` (did you mean "${number}s"?)` : ''}`);
    }
    const unitNs = UNIT_NS[unit];
    if (unitNs === undefined) return fail(/\s/.test(unit) ? 'spaces are not allowed inside a duration' : `unknown unit ${quote(unit)}`);
    // Digits past these cannot matter (the limit has 19 digits of ns; Go truncates
    // below 1 ns) and would only make a hostile value slow to convert.
    const whole = intDigits.replace(/^0+/, '');
    if (whole.length > 24) return fail('out of range (the largest is 2562047h47m16.854s)');
    const frac = fracDigits.slice(0, 24);
    totalNs += BigInt(whole || '0') * unitNs;
    if (frac !== '') totalNs += (BigInt(frac) * unitNs) / 10n ** BigInt(frac.length);
  }

  const ms = (totalNs + 500_000n) / 1_000_000n;
  if (ms > BigInt(MAX_DURATION_MS)) return fail('out of range (the largest is 2562047h47m16.854s)');
  return ms === 0n && totalNs > 0n ? 1 : Number(ms);
}

/**
 * The shortest Go duration that parses back to `ms` (rounded to whole ms):
 * `300ms`, `30s`, `1m30.5s`, `1h`, `0s`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`formatDuration: ${ms} is not a finite number of milliseconds`);
  let rest = Math.round(ms);
  if (rest < 0) return `-${formatDuration(-rest)}`;
  if (rest === 0) return '0s';
  if (rest < 1000) return `${rest}ms`;
  let out = '';
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  if (hours > 0) out += `${hours}h`;
  if (minutes > 0) out += `${minutes}m`;
  if (rest > 0) {
    const whole = Math.floor(rest / 1000);
    const millis = rest % 1000;
    out += millis === 0 ? `${whole}s` : `${whole}.${String(millis).padStart(3, '0').replace(/0+$/, '')}s`;
  }
  return out;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}
