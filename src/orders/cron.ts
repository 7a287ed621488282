import { Cron } from 'croner';
import { OrderFileError, quote } from './errors.js';

/** A cron schedule, used only to compute fire times: it never starts a timer of its own. */
export interface CronSchedule {
  /** The expression as given (trimmed). */
  readonly expression: string;
  /** IANA time zone the expression is read in; `undefined` = the process's local zone. */
  readonly tz: string | undefined;
  /**
   * The first fire time strictly after `after` (epoch ms), whole seconds;
   * `undefined` if there is none before the year 3000.
   */
  next(after: number): number | undefined;
}

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

export const CRON_ALLOWED =
  'expected 5 fields "minute hour day-of-month month day-of-week" such as "0 3 * * *" ' +
  '(numbers, names jan-dec and sun-sat, ranges 1-5, lists 1,3, steps */15 or 0-30/5), ' +
  'or one of @hourly, @daily, @weekly, @monthly, @yearly';

const TZ_ALLOWED = 'expected an IANA time zone such as "UTC", "Europe/Berlin" or "America/New_York"';

/** A fixed instant to probe whether an expression can ever fire (e.g. `0 0 30 2 *` cannot). */
const PROBE_FROM = Date.UTC(2000, 0, 1);

/** Throws an OrderFileError naming `field` unless `tz` is a time zone this runtime knows. */
export function assertTimeZone(tz: string, field = 'tz'): void {
  if (tz.trim() === '') throw new OrderFileError({ field, problem: `empty time zone; ${TZ_ALLOWED}` });
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new OrderFileError({ field, problem: `unknown time zone ${quote(tz)}; ${TZ_ALLOWED}` });
  }
}

/**
 * Parses a classic 5-field cron expression (Vixie semantics: when both
 * day-of-month and day-of-week are restricted, either one matching fires)
 * read in `tz`. Seconds (6 fields) and years (7 fields) are refused: Gas City
 * schedules have minute precision, and a seconds field would silently shift
 * every other field by one.
 *
 * DST, as croner does it: a fixed time in a skipped hour (`30 2 * * *` on a
 * spring-forward day) fires at the first valid time after the gap, and once
 * on a repeated hour; wildcard/step times (`*\/30 * * * *`) skip the gap and
 * fire on both passes of a repeated hour.
 */
export function parseCron(expression: string, tz: string | undefined, field = 'schedule', tzField = 'tz'): CronSchedule {
  const fail = (reason: string, cause?: unknown): never => {
    throw new OrderFileError({ field, problem: `invalid cron expression ${quote(expression)}: ${reason}; ${CRON_ALLOWED}`, cause });
  };
  if (tz !== undefined) assertTimeZone(tz, tzField);
  const expr = expression.trim();
  if (expr === '') return fail('empty');
  if (expr.startsWith('@')) {
    const nickname = expr.toLowerCase();
    if (nickname === '@reboot') return fail('@reboot is not a schedule (use trigger = "manual" or "event")');
    if (!NICKNAMES.has(nickname)) return fail(`unknown nickname ${quote(expr)}`);
  } else {
    const fields = expr.split(/\s+/).length;
    if (fields === 6) return fail('6 fields (a seconds field) are not supported');
    if (fields === 7) return fail('7 fields (seconds and year) are not supported');
    if (fields !== 5) return fail(`${fields} field${fields === 1 ? '' : 's'}`);
  }

  let cron: Cron;
  try {
    // No callback and paused: croner schedules a timer only for a job function,
    // and orderly's dispatcher owns every timer.
    cron = new Cron(expr, { mode: '5-part', paused: true, timezone: tz, domAndDow: false });
  } catch (err) {
    return fail(cronerReason(err), err);
  }
  const next = (after: number): number | undefined => {
    if (!Number.isFinite(after)) throw new RangeError(`CronSchedule.next: ${after} is not a finite epoch ms`);
    const date = cron.nextRun(new Date(after));
    return date === null ? undefined : date.getTime();
  };
  let probe: number | undefined;
  try {
    probe = next(PROBE_FROM);
  } catch (err) {
    return fail(cronerReason(err), err);
  }
  if (probe === undefined) return fail('it never fires (no date matches)');
  return { expression: expr, tz, next };
}

function cronerReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^Cron(Pattern|Date|Options)?:\s*/, '').replace(/\.$/, '');
}
