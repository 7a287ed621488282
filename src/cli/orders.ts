import { join } from 'node:path';
import { bodyPlace } from '../dispatcher/body-env.js';
import { runCheck } from '../dispatcher/check.js';
import { EventLogFollower, isOrderMarker } from '../dispatcher/event-log.js';
import { inspectStore } from '../native.js';
import { parseCron } from '../orders/cron.js';
import { formatDuration } from '../orders/duration.js';
import { validateScoped } from '../orders/scope.js';
import type { ScopedOrder } from '../orders/types.js';
import { EXIT, parse } from './args.js';
import { CITY_HELP, CITY_OPTIONS, openCity, type OpenedCity } from './city-arg.js';

export const LIST_USAGE = `usage: orderly-dispatch list [--city PATH] [--state DIR] [--json]

Every order instance of the city: name, type, trigger, interval or schedule,
rig and target, as gc order list prints them.
${CITY_HELP}`;

export const SHOW_USAGE = `usage: orderly-dispatch show <name> [--rig RIG] [--city PATH] [--state DIR] [--json]

One order's definition, as gc order show prints it; exits 1 if there is no
such order.
${CITY_HELP}`;

export const CHECK_USAGE = `usage: orderly-dispatch check [--city PATH] [--state DIR] [--json]

Which enabled orders are due now, and why, as gc order check decides it from
the state directory (lastRun, event cursors); condition orders run their
check. Exits 0 if any order is due, 1 if none is (as gc order check).
${CITY_HELP}`;

/** Gas City's orderJSON: the field names a Gas City tool parses. */
export function orderJson(o: ScopedOrder): Record<string, unknown> {
  const { spec } = o;
  return {
    name: spec.name,
    scoped_name: o.scopedName,
    ...(o.rig ? { rig: o.rig } : {}),
    ...(spec.description ? { description: spec.description } : {}),
    type: spec.formula !== undefined ? 'formula' : 'exec',
    ...(spec.formula !== undefined ? { formula: spec.formula } : {}),
    ...(spec.exec !== undefined ? { exec: spec.exec } : {}),
    trigger: spec.trigger,
    ...(spec.intervalMs !== undefined ? { interval: formatDuration(spec.intervalMs) } : {}),
    ...(spec.schedule !== undefined ? { schedule: spec.schedule } : {}),
    ...(spec.check !== undefined ? { check: spec.check } : {}),
    ...(spec.on !== undefined ? { on: spec.on } : {}),
    ...(spec.pool !== undefined ? { target: spec.pool } : {}),
    timeout: formatDuration(spec.timeoutMs),
    ...(spec.trigger === 'condition' ? { check_timeout: formatDuration(spec.checkTimeoutMs) } : {}),
    enabled: spec.enabled,
    idempotent: spec.idempotent === true,
    ...(spec.file ? { source: spec.file } : {}),
    ...(spec.packDir ? { formula_layer: join(spec.packDir, 'formulas') } : {}),
    ...(Object.keys(spec.env).length > 0 ? { env: spec.env } : {}),
  };
}

function instances(c: OpenedCity): ScopedOrder[] {
  return validateScoped(c.loaded.orders, c.saved?.rigs ?? c.loaded.rigs);
}

function cityFields(c: OpenedCity): Record<string, unknown> {
  return { city_path: c.loaded.city?.dir ?? c.path, ...(c.loaded.city ? { city_name: c.loaded.city.name } : {}) };
}

function row(widths: number[], cells: string[]): string {
  return cells.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join(' ');
}

export async function listCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, CITY_OPTIONS, LIST_USAGE);
  if (values.help) {
    console.log(LIST_USAGE);
    return EXIT.ok;
  }
  const c = await openCity(values);
  const all = instances(c).filter((o) => o.spec.enabled);
  if (values.json) {
    const warnings = c.loaded.problems.map((p) => ({ code: 'invalid_order', message: p.message }));
    console.log(JSON.stringify({ schema_version: '1', ok: true, ...cityFields(c), orders: all.map(orderJson), summary: { count: all.length }, ...(warnings.length > 0 ? { warnings } : {}) }));
    return EXIT.ok;
  }
  if (all.length === 0) {
    console.log('No orders found.');
    return EXIT.ok;
  }
  const rigs = all.some((o) => o.rig);
  const widths = rigs ? [20, 8, 12, 15, 15] : [20, 8, 12, 15];
  console.log(row(widths, ['NAME', 'TYPE', 'TRIGGER', 'INTERVAL/SCHED', ...(rigs ? ['RIG'] : []), 'TARGET']));
  for (const o of all) {
    const j = orderJson(o);
    const when = (j.interval ?? j.schedule ?? j.on ?? '-') as string;
    console.log(row(widths, [o.spec.name, j.type as string, o.spec.trigger, when, ...(rigs ? [o.rig ?? '-'] : []), o.spec.pool ?? '-']));
  }
  for (const p of c.loaded.problems) process.stderr.write(`orderly-dispatch: invalid, left out: ${p.message}\n`);
  return EXIT.ok;
}

export async function showCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...CITY_OPTIONS, rig: { type: 'string' } }, SHOW_USAGE);
  if (values.help) {
    console.log(SHOW_USAGE);
    return EXIT.ok;
  }
  const name = positionals[0];
  if (positionals.length !== 1 || name === undefined) {
    process.stderr.write(`orderly-dispatch show: takes one order name\n\n${SHOW_USAGE}\n`);
    return EXIT.usage;
  }
  const c = await openCity(values);
  const found = instances(c).find((o) => (o.spec.name === name || o.scopedName === name) && (values.rig === undefined || o.rig === values.rig));
  if (!found) {
    const problem = c.loaded.problems.find((p) => p.file !== undefined && p.file.includes(`/${name}.`));
    const message = `order ${JSON.stringify(name)}${values.rig ? ` (rig ${JSON.stringify(values.rig)})` : ''} not found${problem ? ` (it is invalid: ${problem.message})` : ''}`;
    process.stderr.write(values.json ? `${JSON.stringify({ error: 'ERR_NOT_FOUND', message })}\n` : `orderly-dispatch show: ${message}\n`);
    return EXIT.failed;
  }
  const j = orderJson(found);
  if (values.json) {
    console.log(JSON.stringify({ schema_version: '1', ok: true, ...cityFields(c), order: j }));
    return EXIT.ok;
  }
  const line = (label: string, value: unknown): void => {
    if (value !== undefined && value !== '') console.log(`${`${label}:`.padEnd(13)}${String(value)}`);
  };
  console.log(`Order:  ${found.spec.name}`);
  line('Rig', found.rig);
  line('Description', found.spec.description);
  if (found.spec.exec !== undefined) line('Exec', found.spec.exec);
  else line('Formula', found.spec.formula);
  line('Trigger', found.spec.trigger);
  line('Interval', j.interval);
  line('Schedule', j.schedule);
  line('Check', j.check);
  line('On', j.on);
  line('Target', j.target);
  line('Timeout', j.timeout);
  const env = Object.keys(found.spec.env).sort();
  if (env.length > 0) {
    console.log('Env:');
    for (const k of env) console.log(`  ${k}=${found.spec.env[k]}`);
  }
  line('Enabled', String(found.spec.enabled));
  line('Idempotent', String(found.spec.idempotent === true));
  line('Source', found.spec.file);
  return EXIT.ok;
}

interface Due {
  due: boolean;
  reason: string;
}

export async function checkCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, CITY_OPTIONS, CHECK_USAGE);
  if (values.help) {
    console.log(CHECK_USAGE);
    return EXIT.ok;
  }
  const c = await openCity(values);
  const all = instances(c).filter((o) => o.spec.enabled);
  let lastRun = new Map<string, number>();
  let cursors = new Map<string, bigint>();
  let held = new Set<string>();
  try {
    const i = inspectStore(join(c.state, 'leases'));
    lastRun = new Map(i.lastRunKeys.map((k, n) => [k, i.lastRunAt[n]!]));
    cursors = new Map(i.cursorKeys.map((k, n) => [k, i.cursorSeqs[n]!]));
    held = new Set(i.held.map((h) => h.key));
  } catch {
    // No state yet: nothing has run.
  }
  const eventLog = c.saved?.eventLog ?? c.loaded.city?.eventLog ?? join(c.state, 'city-events.jsonl');
  const events: Array<{ seq: number; type: string }> = [];
  if (all.some((o) => o.spec.trigger === 'event')) {
    // Only the types event orders listen for are kept, so a huge log is read in pieces without holding it.
    const wanted = new Set(all.filter((o) => o.spec.trigger === 'event').map((o) => o.spec.on!));
    const follower = new EventLogFollower(eventLog, 0);
    do {
      for (const e of follower.poll()) if (wanted.has(e.type) && !isOrderMarker(e)) events.push({ seq: e.seq, type: e.type });
      for (const p of follower.problems) process.stderr.write(`orderly-dispatch check: ${p}\n`);
    } while (follower.more);
  }
  const now = Date.now();

  const rows: Array<{ o: ScopedOrder } & Due> = [];
  for (const o of all) {
    const last = lastRun.get(o.scopedName);
    let d: Due;
    if (held.has(o.scopedName)) d = { due: false, reason: 'running now' };
    else d = await dueOf(o, last, cursors.get(o.scopedName) ?? 0n, events, now, c);
    if (o.spec.formula !== undefined && d.due) d.reason += ' (formula order: needs a formula runner)';
    rows.push({ o, ...d });
  }
  const dueTotal = rows.filter((r) => r.due).length;
  if (values.json) {
    console.log(
      JSON.stringify({
        schema_version: '1',
        ok: true,
        any_due: dueTotal > 0,
        orders_total: rows.length,
        due_total: dueTotal,
        orders: rows.map((r) => ({ name: r.o.spec.name, ...(r.o.rig ? { rig: r.o.rig } : {}), scoped_name: r.o.scopedName, trigger: r.o.spec.trigger, due: r.due, reason: r.reason })),
      }),
    );
  } else if (rows.length === 0) {
    console.log('No orders found.');
  } else {
    const rigs = rows.some((r) => r.o.rig);
    const widths = rigs ? [20, 12, 15, 5] : [20, 12, 5];
    console.log(row(widths, ['NAME', 'TRIGGER', ...(rigs ? ['RIG'] : []), 'DUE', 'REASON']));
    for (const r of rows) console.log(row(widths, [r.o.spec.name, r.o.spec.trigger, ...(rigs ? [r.o.rig ?? '-'] : []), r.due ? 'yes' : 'no', r.reason]));
  }
  return dueTotal > 0 ? EXIT.ok : EXIT.failed;
}

/** Gas City's reasons, from orderly's state: what the running controller would decide now. */
async function dueOf(o: ScopedOrder, last: number | undefined, cursor: bigint, events: Array<{ seq: number; type: string }>, now: number, c: OpenedCity): Promise<Due> {
  const { spec } = o;
  switch (spec.trigger) {
    case 'cooldown': {
      if (last === undefined) return { due: true, reason: 'never run' };
      const elapsed = now - last;
      if (elapsed >= spec.intervalMs!) return { due: true, reason: `elapsed ${formatDuration(elapsed)} >= interval ${formatDuration(spec.intervalMs!)}` };
      return { due: false, reason: `cooldown: ${formatDuration(spec.intervalMs! - elapsed)} remaining` };
    }
    case 'cron': {
      const next = parseCron(spec.schedule!, spec.tz).next(last ?? now - 60_000);
      if (next !== undefined && next <= now) return { due: true, reason: `cron: schedule matched (${new Date(next).toISOString()})` };
      return { due: false, reason: next === undefined ? 'cron: no next occurrence' : `cron: next at ${new Date(next).toISOString()}` };
    }
    case 'condition': {
      const place = bodyPlace(o, c.loaded.city, process.env as Record<string, string>, process.cwd());
      const env = { ...(process.env as Record<string, string>), ...place.env, ...spec.env };
      const pass = await runCheck(spec.check!, { cwd: place.cwd, env, timeoutMs: spec.checkTimeoutMs });
      return pass ? { due: true, reason: 'condition: check passed (exit 0)' } : { due: false, reason: 'condition: not met' };
    }
    case 'event': {
      const n = events.filter((e) => e.type === spec.on && BigInt(e.seq) > cursor).length;
      return n > 0 ? { due: true, reason: `event: ${n} ${spec.on} event(s)` } : { due: false, reason: 'event: no matching events' };
    }
    case 'manual':
      return { due: false, reason: 'manual trigger — use orderly-dispatch fire' };
    case 'webhook':
      return { due: false, reason: "webhook trigger — dispatched by Gas City's webhook receiver" };
  }
}
