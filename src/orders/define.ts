import { OrderFileError } from './errors.js';
import { buildOrderSpec, closestKey, describe, emitOrderWarning, isTable, type FieldSource, type OrderKey, type WarnFn } from './spec.js';
import type { OrderSpec, Trigger } from './types.js';

/**
 * An order given in code: the fields of an order file, camel-cased, plus
 * `run` as a third kind of body. Durations are Go duration strings (`"30s"`)
 * or numbers of ms.
 */
export interface OrderDefinition {
  name: string;
  description?: string;
  /** Exactly one of run, exec, formula. */
  run?: OrderSpec['run'];
  exec?: string;
  formula?: string;
  pool?: string;
  trigger: Trigger;
  interval?: string | number;
  schedule?: string;
  tz?: string;
  missed?: 'skip' | 'once';
  check?: string;
  on?: string;
  timeout?: string | number;
  enabled?: boolean;
  env?: Record<string, string>;
  scope?: 'city' | 'rig';
  noOpExitCodes?: number[];
  group?: string;
  jitter?: string | number;
  checkTimeout?: string | number;
  idempotent?: boolean;
  skipAliases?: string[];
  noWorkGate?: boolean;
  params?: Record<string, { required?: boolean }>;
  noOpWhenSilent?: boolean;
}

/** Code spelling of each order key; `gate` is a file-only synonym. */
const CODE_NAMES: Readonly<Record<Exclude<OrderKey, 'gate'>, keyof OrderDefinition>> = {
  description: 'description',
  run: 'run',
  exec: 'exec',
  formula: 'formula',
  pool: 'pool',
  trigger: 'trigger',
  interval: 'interval',
  schedule: 'schedule',
  tz: 'tz',
  missed: 'missed',
  check: 'check',
  on: 'on',
  timeout: 'timeout',
  enabled: 'enabled',
  env: 'env',
  scope: 'scope',
  no_op_exit_codes: 'noOpExitCodes',
  group: 'group',
  jitter: 'jitter',
  check_timeout: 'checkTimeout',
  idempotent: 'idempotent',
  skip_aliases: 'skipAliases',
  no_work_gate: 'noWorkGate',
  params: 'params',
  no_op_when_silent: 'noOpWhenSilent',
};
const CODE_KEYS: readonly string[] = ['name', ...Object.values(CODE_NAMES)];

/**
 * Validates an order given in code, with the defaults and messages of order
 * files (errors carry the field and `order: name`, no file or line). Unknown
 * keys warn through `options.warn` (default `process.emitWarning`).
 */
export function defineOrder(def: OrderDefinition, options: { warn?: WarnFn } = {}): OrderSpec {
  const warn = options.warn ?? emitOrderWarning;
  if (!isTable(def)) throw new OrderFileError({ problem: `expected an order definition object, got ${describe(def)}` });
  const name: unknown = def.name;
  if (typeof name !== 'string' || name.trim() === '') {
    throw new OrderFileError({ field: 'name', problem: `expected a non-empty string, got ${describe(name)}` });
  }
  const fields = def as unknown as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (CODE_KEYS.includes(key) || fields[key] === undefined) continue;
    const near = key === 'gate' ? 'trigger' : closestKey(key, CODE_KEYS);
    const message = `order ${JSON.stringify(name)}: ${key}: unknown key, ignored${near === undefined ? '' : ` (did you mean ${near}?)`}`;
    warn({ kind: 'unknown-key', order: name, key, message });
  }
  const codeName = (key: OrderKey): string | undefined => (key === 'gate' ? undefined : CODE_NAMES[key]);
  const src: FieldSource = {
    kind: 'code',
    has: (key) => {
      const field = codeName(key);
      return field !== undefined && Object.hasOwn(fields, field) && fields[field] !== undefined;
    },
    get: (key) => {
      const field = codeName(key);
      return field === undefined ? undefined : fields[field];
    },
    label: (key) => codeName(key) ?? key,
    line: () => undefined,
  };
  return buildOrderSpec(src, { name }, warn);
}
