import { describe, expect, it } from 'vitest';
import { parseCron } from '../../src/orders/cron.js';
import { OrderFileError } from '../../src/orders/errors.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The next `count` fire times after `from`, as ISO strings. */
function fires(expr: string, tz: string | undefined, from: string, count = 1): (string | undefined)[] {
  const schedule = parseCron(expr, tz);
  const out: (string | undefined)[] = [];
  let cursor = at(from);
  for (let i = 0; i < count; i++) {
    const next = schedule.next(cursor);
    out.push(iso(next));
    if (next === undefined) break;
    cursor = next;
  }
  return out;
}

function cronError(expr: string, tz?: string): OrderFileError {
  try {
    parseCron(expr, tz);
  } catch (err) {
    expect(err).toBeInstanceOf(OrderFileError);
    return err as OrderFileError;
  }
  throw new Error(`expected ${JSON.stringify(expr)} to be rejected`);
}

describe('parseCron next() in UTC', () => {
  it.each([
    ['0 3 * * *', '2026-03-07T12:00:00Z', '2026-03-08T03:00:00.000Z'],
    ['*/15 * * * *', '2026-01-01T00:07:30Z', '2026-01-01T00:15:00.000Z'],
    ['0-30/10 8 * * *', '2026-01-01T08:15:00Z', '2026-01-01T08:20:00.000Z'],
    ['0 9 * * mon-fri', '2026-03-07T12:00:00Z', '2026-03-09T09:00:00.000Z'], // from a Saturday
    ['0 9 * * MON,wed', '2026-03-09T10:00:00Z', '2026-03-11T09:00:00.000Z'],
    ['0 0 1 jan *', '2026-03-07T12:00:00Z', '2027-01-01T00:00:00.000Z'],
    ['0 0 1 jun-aug *', '2026-03-07T12:00:00Z', '2026-06-01T00:00:00.000Z'],
    ['30 4 1,15 * *', '2026-03-02T00:00:00Z', '2026-03-15T04:30:00.000Z'],
    ['0 12 * * 7', '2026-03-07T12:00:00Z', '2026-03-08T12:00:00.000Z'], // 7 is Sunday, as 0
    ['0 12 * * sun', '2026-03-07T12:00:00Z', '2026-03-08T12:00:00.000Z'],
    ['0 0 13 * fri', '2026-03-01T00:00:00Z', '2026-03-06T00:00:00.000Z'], // Vixie: day-of-month OR day-of-week
    ['0 0 29 2 *', '2026-03-01T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['@hourly', '2026-03-07T12:00:00Z', '2026-03-07T13:00:00.000Z'],
    ['@daily', '2026-03-07T12:00:00Z', '2026-03-08T00:00:00.000Z'],
    ['@weekly', '2026-03-07T12:00:00Z', '2026-03-08T00:00:00.000Z'],
    ['@monthly', '2026-03-07T12:00:00Z', '2026-04-01T00:00:00.000Z'],
    ['@yearly', '2026-03-07T12:00:00Z', '2027-01-01T00:00:00.000Z'],
    ['  0   3 * *  *  ', '2026-03-07T12:00:00Z', '2026-03-08T03:00:00.000Z'],
  ])('%s after %s is %s', (expr, from, expected) => {
    expect(fires(expr, 'UTC', from)).toEqual([expected]);
  });

  it('is strictly after its argument, even exactly at a fire time', () => {
    expect(fires('0 3 * * *', 'UTC', '2026-03-08T03:00:00.000Z')).toEqual(['2026-03-09T03:00:00.000Z']);
    expect(fires('0 3 * * *', 'UTC', '2026-03-08T02:59:59.999Z')).toEqual(['2026-03-08T03:00:00.000Z']);
    expect(fires('*/5 * * * *', 'UTC', '2026-03-08T03:00:00.001Z')).toEqual(['2026-03-08T03:05:00.000Z']);
  });

  it('keeps the trimmed expression and the zone', () => {
    const schedule = parseCron(' 0 3 * * * ', 'Europe/Berlin');
    expect(schedule.expression).toBe('0 3 * * *');
    expect(schedule.tz).toBe('Europe/Berlin');
  });

  it('starts no timer: a parsed schedule leaves no handle that keeps the process alive', () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const schedule = parseCron('* * * * *', 'UTC');
    schedule.next(Date.now());
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
  });
});

describe('parseCron next() in America/New_York across DST', () => {
  const tz = 'America/New_York';

  it('a fixed 09:00 stays at 09:00 local as the offset changes (spring forward 2026-03-08)', () => {
    expect(fires('0 9 * * *', tz, '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-07T14:00:00.000Z', '2026-03-08T13:00:00.000Z']);
  });

  it('a fixed time inside the skipped hour fires at the first valid time after the gap', () => {
    expect(fires('30 2 * * *', tz, '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
  });

  it('a stepped schedule skips the times that do not exist', () => {
    expect(fires('*/30 * * * *', tz, '2026-03-08T06:15:00Z', 3)).toEqual([
      '2026-03-08T06:30:00.000Z', // 01:30 EST
      '2026-03-08T07:00:00.000Z', // 03:00 EDT: 02:00 and 02:30 do not exist
      '2026-03-08T07:30:00.000Z',
    ]);
  });

  it('a fixed time in the repeated hour fires once (fall back 2026-11-01)', () => {
    expect(fires('30 1 * * *', tz, '2026-10-31T12:00:00Z', 2)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('a stepped schedule fires on both passes of the repeated hour', () => {
    expect(fires('*/30 * * * *', tz, '2026-11-01T05:00:00Z', 4)).toEqual([
      '2026-11-01T05:30:00.000Z', // 01:30 EDT
      '2026-11-01T06:00:00.000Z', // 01:00 EST
      '2026-11-01T06:30:00.000Z', // 01:30 EST
      '2026-11-01T07:00:00.000Z', // 02:00 EST
    ]);
  });

  it('reads the same expression differently in UTC', () => {
    expect(fires('30 2 * * *', 'UTC', '2026-03-07T12:00:00Z')).toEqual(['2026-03-08T02:30:00.000Z']);
  });
});

describe('parseCron rejects', () => {
  const allowed = 'expected 5 fields "minute hour day-of-month month day-of-week"';

  it.each([
    ['0 0 3 * * *', '6 fields (a seconds field) are not supported'],
    ['0 0 3 * * * 2026', '7 fields (seconds and year) are not supported'],
    ['* * * *', '4 fields'],
    ['garbage', '1 field'],
    ['', 'empty'],
    ['   ', 'empty'],
    ['60 * * * *', 'Invalid value for minute: 60'],
    ['0 24 * * *', 'Invalid value for hour: 24'],
    ['0 0 32 * *', 'Invalid value for day'],
    ['0 0 * 13 *', 'Invalid value for month'],
    ['0 0 * * 8', 'Invalid value for dayOfWeek'],
    ['0 0 * * funday', 'illegal characters'],
    ['5-1 * * * *', 'From value is larger than to value'],
    ['*/0 * * * *', 'illegal stepping: 0'],
    ['0 0 30 2 *', 'never fires'],
    ['@reboot', '@reboot is not a schedule'],
    ['@fortnightly', 'unknown nickname "@fortnightly"'],
  ])('%j: %s', (expr, reason) => {
    const err = cronError(expr, 'UTC');
    expect(err.code).toBe('ERR_ORDER_FILE');
    expect(err.field).toBe('schedule');
    expect(err.message).toContain(`schedule: invalid cron expression ${JSON.stringify(expr)}`);
    expect(err.message).toContain(reason);
    expect(err.message).toContain(allowed);
    expect(err.message).toContain('@hourly, @daily, @weekly, @monthly, @yearly');
  });

  it('names the field it was given', () => {
    expect(() => parseCron('bad', 'UTC', 'cron')).toThrow(/^cron: invalid cron expression "bad"/);
  });

  it.each(['Mars/Olympus_Mons', 'America/Springfield', 'not a zone'])('unknown time zone %j', (tz) => {
    const err = cronError('0 3 * * *', tz);
    expect(err.field).toBe('tz');
    expect(err.message).toBe(`tz: unknown time zone ${JSON.stringify(tz)}; expected an IANA time zone such as "UTC", "Europe/Berlin" or "America/New_York"`);
  });

  it('an empty time zone', () => {
    expect(cronError('0 3 * * *', '').message).toMatch(/^tz: empty time zone; expected an IANA time zone/);
  });

  it('a non-finite instant is a programming error, not a config error', () => {
    expect(() => parseCron('0 3 * * *', 'UTC').next(Number.NaN)).toThrow(RangeError);
  });
});
