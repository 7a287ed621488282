import { assertTimeZone, parseCron } from './cron.js';
import { MAX_DURATION_MS, parseDuration } from './duration.js';
import { OrderFileError, quote } from './errors.js';
import { TRIGGERS, type OrderSpec, type Trigger } from './types.js';

/** Something worth telling about an order that still loads: an unknown key, a key its trigger ignores. */
export interface OrderWarning {
  kind: 'unknown-key' | 'ignored-key' | 'deprecated-path' | 'city';
  /** The order's name. */
  order: string;
  /** The order file, for file orders. */
  file?: string;
  line?: number;
  /** The key as written (`intervall`, `env`, a top-level key). */
  key: string;
  /** `<file>:<line>: <key>: <what>`, or `order "<name>": <key>: <what>` for orders in code. */
  message: string;
}

export type WarnFn = (warning: OrderWarning) => void;

/** The default sink for warnings nobody asked to collect: Node's warning channel (stderr). */
export function emitOrderWarning(warning: OrderWarning): void {
  process.emitWarning(warning.message, { type: 'OrderWarning', code: 'ORDERLY_ORDER_WARNING' });
}

/** Every key an `[order]` table may have: Gas City's, then orderly's additions. */
export const ORDER_FILE_KEYS = [
  'description',
  'exec',
  'formula',
  'pool',
  'gate',
  'trigger',
  'interval',
  'schedule',
  'tz',
  'missed',
  'check',
  'on',
  'timeout',
  'enabled',
  'env',
  'scope',
  'check_timeout',
  'idempotent',
  'skip_aliases',
  'no_work_gate',
  'params',
  'no_op_exit_codes',
  'no_op_when_silent',
  'group',
  'jitter',
] as const;

/** A key of the order being built, by its file name (`no_op_exit_codes`), plus `run` for code orders. */
export type OrderKey = (typeof ORDER_FILE_KEYS)[number] | 'run';

export const DEFAULT_TIMEOUT_MS = 300_000;
/** Gas City's default for formula orders (a wisp dispatch, not a script). */
export const DEFAULT_FORMULA_TIMEOUT_MS = 30_000;
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** Intervals below this warn: each fire spawns a process and syncs the log. */
export const INTERVAL_FLOOR_MS = 1_000;

/**
 * Variables the controller sets for every body, as Gas City does: an
 * `[order.env]` entry may not replace them (Gas City refuses the same keys,
 * under its older and newer store variable names).
 */
export const RESERVED_ENV_KEYS: ReadonlySet<string> = new Set([
  'BD_BACKUP_ENABLED', 'BD_DOLT_SYNC_CLI_REMOTES', 'BD_EXPORT_AUTO', 'BD_ROUTING_MODE',
  'BEADS_ACTOR', 'BEADS_BACKUP_ENABLED', 'BEADS_CREDENTIALS_FILE', 'BEADS_DIR', 'BEADS_DOLT_AUTO_START',
  'BEADS_DOLT_PASSWORD', 'BEADS_DOLT_SERVER_DATABASE', 'BEADS_DOLT_SERVER_HOST', 'BEADS_DOLT_SERVER_PORT',
  'BEADS_DOLT_SERVER_TLS', 'BEADS_DOLT_SERVER_USER', 'BEADS_DOLT_SYNC_CLI_REMOTES', 'BEADS_POSTGRES_DATABASE',
  'BEADS_POSTGRES_HOST', 'BEADS_POSTGRES_PASSWORD', 'BEADS_POSTGRES_PORT', 'BEADS_POSTGRES_USER', 'BEADS_ROUTING_MODE',
  'DOLT_DATABASE', 'GC_BEADS', 'GC_BEADS_CONFIG_FILE', 'GC_BEADS_DATA_DIR', 'GC_BEADS_HOST', 'GC_BEADS_LOCK_FILE',
  'GC_BEADS_LOG_FILE', 'GC_BEADS_MANAGED_LOCAL', 'GC_BEADS_PASSWORD', 'GC_BEADS_PID_FILE', 'GC_BEADS_PORT',
  'GC_BEADS_PREFIX', 'GC_BEADS_SCOPE_ROOT', 'GC_BEADS_SKIP', 'GC_BEADS_STATE_FILE', 'GC_BEADS_USER', 'GC_CITY',
  'GC_CITY_PATH', 'GC_CITY_ROOT', 'GC_CITY_RUNTIME_DIR', 'GC_CONTROL_DISPATCHER_TRACE_DEFAULT', 'GC_DOLT',
  'GC_DOLT_CONFIG_FILE', 'GC_DOLT_DATA_DIR', 'GC_DOLT_DATABASE', 'GC_DOLT_HOST', 'GC_DOLT_LOCK_FILE',
  'GC_DOLT_LOG_FILE', 'GC_DOLT_MANAGED_LOCAL', 'GC_DOLT_PASSWORD', 'GC_DOLT_PID_FILE', 'GC_DOLT_PORT',
  'GC_DOLT_STATE_FILE', 'GC_DOLT_USER', 'GC_PACK_DIR', 'GC_PACK_NAME', 'GC_PACK_STATE_DIR', 'GC_POSTGRES_PASSWORD',
  'GC_RIG', 'GC_RIG_ROOT', 'GC_STORE_ROOT', 'GC_STORE_SCOPE', 'ORDER_DIR', 'PACK_DIR',
]);
export const DEFAULT_NO_OP_EXIT_CODES: readonly number[] = [100];

/**
 * Where an order's fields come from, so files and code share one validation
 * and one set of messages. Values are as the source holds them; a file's
 * integers are `bigint` (so `100.0` is not mistaken for the integer 100).
 */
export interface FieldSource {
  readonly kind: 'file' | 'code';
  has(key: OrderKey): boolean;
  get(key: OrderKey): unknown;
  /** The key as the user writes it: `no_op_exit_codes` in a file, `noOpExitCodes` in code. */
  label(key: OrderKey): string;
  /** Line of a key (`['env', 'PATH']`), of the order table for `[]`; undefined in code. */
  line(path: readonly string[]): number | undefined;
}

export interface OrderIdentity {
  name: string;
  file?: string;
  packDir?: string;
}

/**
 * Builds a validated OrderSpec: defaults filled in, every field type-checked,
 * the trigger's required fields present. Throws OrderFileError naming the
 * field (and the file and line, for file orders).
 */
export function buildOrderSpec(src: FieldSource, id: OrderIdentity, warn: WarnFn): OrderSpec {
  const where = (line: number | undefined): { file?: string; line?: number; order?: string } =>
    id.file !== undefined ? { file: id.file, line } : { order: id.name };
  type Fail = (key: OrderKey | undefined, problem: string) => never;
  const fail: Fail = (key, problem) => {
    const path = key === undefined ? [] : [key];
    throw new OrderFileError({ ...where(src.line(path)), field: key === undefined ? undefined : src.label(key), problem });
  };
  // A missing key has no line of its own: point at the order table.
  const missing = (key: OrderKey, problem: string): never => {
    throw new OrderFileError({ ...where(src.line([])), field: src.label(key), problem: `missing: ${problem}` });
  };
  // parseDuration/parseCron know the field, not the file: place their errors.
  const placed = <T>(key: OrderKey, parse: () => T): T => {
    try {
      return parse();
    } catch (err) {
      if (err instanceof OrderFileError) throw err.locate(where(src.line([key])));
      throw err;
    }
  };
  // In a file every number is a float (integers are bigint): say so, `100.0` is not 100 there.
  const show = (value: unknown): string => describe(value, src.kind === 'file');
  const ignored = (key: OrderKey, why: string): void => {
    if (!src.has(key)) return;
    const line = src.line([key]);
    const label = src.label(key);
    const head = id.file !== undefined ? (line === undefined ? id.file : `${id.file}:${line}`) : `order ${JSON.stringify(id.name)}`;
    warn({ kind: 'ignored-key', order: id.name, file: id.file, line, key: label, message: `${head}: ${label}: ignored: ${why}` });
  };

  const string = (key: OrderKey, opts: { nonEmpty?: boolean } = {}): string | undefined => {
    if (!src.has(key)) return undefined;
    const value = src.get(key);
    if (typeof value !== 'string') return fail(key, `expected a string, got ${show(value)}`);
    if (opts.nonEmpty && value.trim() === '') return fail(key, 'must not be empty');
    // A shell never sees past a NUL: the command would run cut short.
    if (value.includes('\0')) return fail(key, 'contains a NUL character');
    return value;
  };
  const oneOf = <T extends string>(key: OrderKey, allowed: readonly T[]): T | undefined => {
    const value = string(key);
    if (value === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(value)) {
      return fail(key, `unknown value ${quote(value)}; allowed: ${allowed.join(', ')}`);
    }
    return value as T;
  };
  const duration = (key: OrderKey, min: 0 | 1): number | undefined => {
    if (!src.has(key)) return undefined;
    const value = src.get(key);
    let ms: number;
    if (typeof value === 'string') {
      ms = placed(key, () => parseDuration(value, src.label(key)));
    } else if (src.kind === 'code' && typeof value === 'number') {
      if (!Number.isFinite(value) || value < 0) return fail(key, `expected a non-negative number of ms or a duration string, got ${value}`);
      ms = Math.round(value);
      if (ms > MAX_DURATION_MS) return fail(key, `${value} ms is out of range (the largest is ${MAX_DURATION_MS})`);
    } else {
      const expected = src.kind === 'code' ? 'a duration string such as "30s" or a number of ms' : 'a duration string such as "30s"';
      return fail(key, `expected ${expected}, got ${show(value)}`);
    }
    if (ms < min) return fail(key, `must be greater than 0, got ${quote(String(value))}`);
    return ms;
  };
  const integer = (value: unknown): number | undefined => {
    if (typeof value === 'bigint') return value >= -(2n ** 53n) && value <= 2n ** 53n ? Number(value) : Infinity;
    if (src.kind === 'code' && typeof value === 'number' && Number.isInteger(value)) return value;
    return undefined;
  };

  // Gas City's `[order.params]`: `name = { required = bool }` per parameter.
  function paramsOf(): Record<string, { required: boolean }> | undefined {
    if (!src.has('params')) return undefined;
    const value = src.get('params');
    const expected = 'expected a table of parameters (e.g. [order.params] repo = { required = true })';
    if (!isTable(value)) return fail('params', `${expected}, got ${show(value)}`);
    const out: Record<string, { required: boolean }> = {};
    for (const [name, p] of Object.entries(value)) {
      if (name.trim() === '') return fail('params', 'param name is required');
      const required = isTable(p) ? p.required : undefined;
      if (!isTable(p) || (required !== undefined && typeof required !== 'boolean')) {
        return fail('params', `param ${quote(name)}: ${expected}, got ${show(p)}`);
      }
      Object.defineProperty(out, name, { value: { required: required === true }, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  // The body: exactly one of exec / formula (/ run, in code).
  const bodies: OrderKey[] = src.kind === 'code' ? ['run', 'exec', 'formula'] : ['exec', 'formula'];
  const given = bodies.filter((key) => src.has(key));
  if (given.length === 0) {
    const names = bodies.map((key) => src.label(key));
    const list = names.length === 2 ? `${names[0]} (a shell command) or ${names[1]} (a Gas City formula)` : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
    missing(bodies[0] ?? 'exec', `give exactly one of ${list}`);
  }
  if (given.length > 1) {
    const list = given.map((key) => src.label(key)).join(' and ');
    fail(given[1], `${list} are ${given.length === 2 ? 'both' : 'all'} set; give exactly one`);
  }
  let run: OrderSpec['run'];
  if (src.has('run')) {
    const value = src.get('run');
    if (typeof value !== 'function') return fail('run', `expected an async function (ctx) => ({ didWork }), got ${show(value)}`);
    run = value as OrderSpec['run'];
  }
  const exec = string('exec', { nonEmpty: true });
  const formula = string('formula', { nonEmpty: true });
  const pool = string('pool', { nonEmpty: true });
  if (pool !== undefined && formula === undefined) fail('pool', `only formula orders have a pool; this order has ${src.label(given[0] ?? 'exec')}`);

  // The trigger, under its current name or Gas City's older `gate`.
  const triggerValue = string('trigger');
  const gateValue = string('gate');
  if (triggerValue !== undefined && gateValue !== undefined && triggerValue !== gateValue) {
    fail('trigger', `trigger = ${quote(triggerValue)} and gate = ${quote(gateValue)} disagree; gate is the older name of trigger: give one`);
  }
  const triggerKey: OrderKey = triggerValue !== undefined ? 'trigger' : 'gate';
  const trigger = triggerValue ?? gateValue;
  if (trigger === undefined) {
    const alias = src.kind === 'file' ? ' (or gate)' : '';
    return missing('trigger', `set ${src.label('trigger')}${alias} to one of ${TRIGGERS.join(', ')}`);
  }
  if (!isTrigger(trigger)) return fail(triggerKey, `unknown trigger ${quote(trigger)}; allowed: ${TRIGGERS.join(', ')}`);
  const t: Trigger = trigger;
  const needs = (key: OrderKey, example: string): never =>
    missing(key, `${src.label(triggerKey)} = ${quote(t)} needs ${src.label(key)} (e.g. ${src.label(key)} = ${example})`);

  const intervalMs = duration('interval', 1);
  // Order files only: an order in code that fires this often chose it (tests, benchmarks).
  if (src.kind === 'file' && intervalMs !== undefined && intervalMs < INTERVAL_FLOOR_MS && (t === 'cooldown' || t === 'condition')) {
    const line = src.line(['interval']);
    const head = id.file !== undefined ? (line === undefined ? id.file : `${id.file}:${line}`) : `order ${JSON.stringify(id.name)}`;
    warn({
      kind: 'ignored-key',
      order: id.name,
      file: id.file,
      line,
      key: src.label('interval'),
      message: `${head}: ${src.label('interval')}: ${intervalMs} ms is below ${INTERVAL_FLOOR_MS} ms: every fire spawns a process and syncs the log, so this order alone may cost a core`,
    });
  }
  const tz = string('tz');
  if (tz !== undefined) placed('tz', () => assertTimeZone(tz, src.label('tz')));
  const schedule = string('schedule');
  if (schedule !== undefined) placed('schedule', () => parseCron(schedule, tz, src.label('schedule'), src.label('tz')));
  const missed = oneOf('missed', ['skip', 'once'] as const) ?? 'skip';
  const check = string('check', { nonEmpty: true });
  const on = string('on', { nonEmpty: true });

  if (t === 'cooldown' && intervalMs === undefined) needs('interval', '"30s"');
  if (t === 'cron' && schedule === undefined) needs('schedule', '"0 3 * * *"');
  if (t === 'condition' && check === undefined) needs('check', '"test -f /tmp/flag"');
  if (t === 'event' && on === undefined) needs('on', '"bead.closed"');
  const params = paramsOf();
  if (t === 'webhook' && (params === undefined || Object.keys(params).length === 0)) {
    missing('params', `${src.label(triggerKey)} = "webhook" needs a non-empty [order.params] table (Gas City refuses it without one)`);
  }
  if (t !== 'cooldown' && t !== 'condition') ignored('interval', `only cooldown and condition triggers use it (trigger is ${quote(t)})`);
  if (t !== 'cron') {
    for (const key of ['schedule', 'tz', 'missed'] as const) ignored(key, `only the cron trigger uses it (trigger is ${quote(t)})`);
  }
  if (t !== 'condition') {
    ignored('check', `only the condition trigger uses it (trigger is ${quote(t)})`);
    ignored('check_timeout', `only the condition trigger uses it (trigger is ${quote(t)})`);
  }
  const checkTimeoutMs = duration('check_timeout', 1) ?? DEFAULT_CHECK_TIMEOUT_MS;
  if (t !== 'event') ignored('on', `only the event trigger uses it (trigger is ${quote(t)})`);

  const timeoutMs = duration('timeout', 1) ?? (formula !== undefined ? DEFAULT_FORMULA_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
  const jitterMs = duration('jitter', 0) ?? 0;

  const boolean = (key: OrderKey): boolean | undefined => {
    if (!src.has(key)) return undefined;
    const value = src.get(key);
    if (typeof value !== 'boolean') return fail(key, `expected true or false, got ${show(value)}`);
    return value;
  };
  const enabled = boolean('enabled') ?? true;
  const idempotent = boolean('idempotent');
  const noWorkGate = boolean('no_work_gate');
  const noOpWhenSilent = boolean('no_op_when_silent');

  let skipAliases: string[] | undefined;
  if (src.has('skip_aliases')) {
    const value = src.get('skip_aliases');
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.trim() !== '')) {
      return fail('skip_aliases', `expected an array of order names (e.g. ["mol-dog-reaper"]), got ${show(value)}`);
    }
    skipAliases = value as string[];
  }

  const env: Record<string, string> = {};
  if (src.has('env')) {
    const value = src.get('env');
    if (!isTable(value)) return fail('env', `expected a table of strings (e.g. env = { LOG_LEVEL = "debug" }), got ${show(value)}`);
    for (const name of Object.keys(value)) {
      const entry = value[name];
      const at = (problem: string): never => {
        throw new OrderFileError({ ...where(src.line(['env', name])), field: `${src.label('env')}.${name}`, problem });
      };
      if (name === '' || name.includes('=') || name.includes('\0')) return at('not a valid environment variable name');
      if (typeof entry !== 'string') return at(`expected a string, got ${show(entry)}`);
      if (entry.includes('\0')) return at('contains a NUL character');
      if (RESERVED_ENV_KEYS.has(name)) return at(`cannot override controller-owned env key ${quote(name)} (Gas City sets it for every body)`);
      // defineProperty: a variable named __proto__ is data, not the object's prototype.
      Object.defineProperty(env, name, { value: entry, enumerable: true, writable: true, configurable: true });
    }
  }

  const declaredScope = oneOf('scope', ['city', 'rig'] as const);
  const scope = declaredScope ?? 'city';

  let noOpExitCodes = [...DEFAULT_NO_OP_EXIT_CODES];
  if (src.has('no_op_exit_codes')) {
    const value = src.get('no_op_exit_codes');
    const expected = 'expected an array of exit codes 1..255 (e.g. [100])';
    if (!Array.isArray(value)) return fail('no_op_exit_codes', `${expected}, got ${show(value)}`);
    const codes: number[] = [];
    for (const [index, element] of (value as unknown[]).entries()) {
      const code = integer(element);
      if (code === undefined) return fail('no_op_exit_codes', `element ${index} is ${show(element)}; ${expected}`);
      if (code === 0) return fail('no_op_exit_codes', `0 cannot be a no-op code: exit 0 means did-work; ${expected}`);
      if (code < 1 || code > 255) return fail('no_op_exit_codes', `${String(element)} is out of range; ${expected}`);
      if (!codes.includes(code)) codes.push(code);
    }
    noOpExitCodes = codes;
  }

  const description = string('description');
  const group = string('group', { nonEmpty: true });

  const spec: OrderSpec = { name: id.name, trigger: t, missed, timeoutMs, checkTimeoutMs, enabled, env, scope, noOpExitCodes, jitterMs };
  if (declaredScope !== undefined) spec.scopeDeclared = true;
  if (skipAliases !== undefined) spec.skipAliases = skipAliases;
  if (idempotent !== undefined) spec.idempotent = idempotent;
  if (noWorkGate !== undefined) spec.noWorkGate = noWorkGate;
  if (noOpWhenSilent !== undefined) spec.noOpWhenSilent = noOpWhenSilent;
  if (params !== undefined) spec.params = params;
  if (id.file !== undefined) spec.file = id.file;
  if (id.packDir !== undefined) spec.packDir = id.packDir;
  if (description !== undefined) spec.description = description;
  if (exec !== undefined) spec.exec = exec;
  if (formula !== undefined) spec.formula = formula;
  if (pool !== undefined) spec.pool = pool;
  if (run !== undefined) spec.run = run;
  if (intervalMs !== undefined) spec.intervalMs = intervalMs;
  if (schedule !== undefined) spec.schedule = schedule.trim();
  if (tz !== undefined) spec.tz = tz;
  if (check !== undefined) spec.check = check;
  if (on !== undefined) spec.on = on;
  if (group !== undefined) spec.group = group;
  return spec;
}

function isTrigger(value: string): value is Trigger {
  return (TRIGGERS as readonly string[]).includes(value);
}

/** A plain key/value table (TOML table or object literal), not an array, date or class instance. */
export function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

/** A value's type as a message shows it: `the integer 30`, `the string "30"`, `a table`. */
export function describe(value: unknown, numbersAreFloats = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${quote(value)}`;
  if (typeof value === 'bigint') return `the integer ${value}`;
  if (typeof value === 'number') {
    if (numbersAreFloats) return `the float ${Number.isInteger(value) ? value.toFixed(1) : value}`;
    return `the number ${value}`;
  }
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date-time';
  if (isTable(value)) return 'a table';
  return `a ${typeof value}`;
}

/** The known key closest to a misspelt one (`intervall` → `interval`, `no_op_exit_codes` → `noOpExitCodes`), if any is close. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (k: string): string => k.toLowerCase().replace(/[_-]/g, '');
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 4)) + 1;
  for (const candidate of known) {
    const d = editDistance(norm(key), norm(candidate));
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance, Infinity when the lengths differ by more than 3 (too far to suggest). */
export function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? Infinity;
}
