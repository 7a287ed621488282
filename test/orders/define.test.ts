import { describe, expect, it } from 'vitest';
import { defineOrder, type OrderDefinition } from '../../src/orders/define.js';
import { OrderFileError } from '../../src/orders/errors.js';
import { parseOrderFile } from '../../src/orders/load.js';
import { validateScoped } from '../../src/orders/scope.js';
import type { OrderWarning } from '../../src/orders/spec.js';
import type { OrderSpec } from '../../src/orders/types.js';

const run = async (): Promise<{ didWork: boolean }> => ({ didWork: false });

function defineError(def: unknown): OrderFileError {
  try {
    defineOrder(def as OrderDefinition, { warn: () => {} });
  } catch (err) {
    expect(err).toBeInstanceOf(OrderFileError);
    return err as OrderFileError;
  }
  throw new Error('expected the definition to be rejected');
}

describe('defineOrder', () => {
  it('fills in the defaults order files get', () => {
    const spec = defineOrder({ name: 'sweep', trigger: 'cooldown', interval: '30s', run });
    expect(spec).toEqual({
      name: 'sweep',
      run,
      trigger: 'cooldown',
      intervalMs: 30_000,
      missed: 'skip',
      timeoutMs: 300_000,
      checkTimeoutMs: 10_000,
      enabled: true,
      env: {},
      scope: 'city',
      noOpExitCodes: [100],
      jitterMs: 0,
    });
    const fromFile = parseOrderFile('[order]\ngate = "cooldown"\ninterval = "30s"\nexec = "x"', '/p/orders/sweep.toml');
    const { file: _f, packDir: _p, exec: _e, ...fileRest } = fromFile;
    const { run: _r, ...codeRest } = spec;
    expect(codeRest).toEqual(fileRest);
  });

  it('takes durations as strings or as ms', () => {
    expect(defineOrder({ name: 'a', trigger: 'cooldown', interval: 1500, timeout: '2m', jitter: 250, run })).toMatchObject({
      intervalMs: 1500,
      timeoutMs: 120_000,
      jitterMs: 250,
    });
  });

  it('accepts exec and formula bodies too', () => {
    expect(defineOrder({ name: 'a', trigger: 'manual', exec: 'true' }).exec).toBe('true');
    expect(defineOrder({ name: 'a', trigger: 'manual', formula: 'mol', pool: 'dog' })).toMatchObject({ formula: 'mol', pool: 'dog' });
  });

  it('treats an undefined field as absent', () => {
    expect(defineOrder({ name: 'a', trigger: 'manual', run, exec: undefined, interval: undefined }).exec).toBeUndefined();
  });

  it.each<[string, unknown, string]>([
    ['no body', { name: 'a', trigger: 'manual' }, 'order "a": run: missing: give exactly one of run, exec or formula'],
    ['two bodies', { name: 'a', trigger: 'manual', run, exec: 'x' }, 'order "a": exec: run and exec are both set; give exactly one'],
    ['three bodies', { name: 'a', trigger: 'manual', run, exec: 'x', formula: 'y' }, 'order "a": exec: run and exec and formula are all set; give exactly one'],
    ['run not a function', { name: 'a', trigger: 'manual', run: 'x' }, 'order "a": run: expected an async function (ctx) => ({ didWork }), got the string "x"'],
    ['no trigger', { name: 'a', run }, 'order "a": trigger: missing: set trigger to one of cooldown, cron, condition, event, manual'],
    ['an unknown trigger', { name: 'a', trigger: 'sometimes', run }, 'order "a": trigger: unknown trigger "sometimes"; allowed: cooldown, cron, condition, event, manual'],
    ['a cooldown without interval', { name: 'a', trigger: 'cooldown', run }, 'order "a": interval: missing: trigger = "cooldown" needs interval'],
    ['a bad interval', { name: 'a', trigger: 'cooldown', interval: '30', run }, 'order "a": interval: invalid duration "30": missing unit after 30 (did you mean "30s"?)'],
    ['a negative ms interval', { name: 'a', trigger: 'cooldown', interval: -5, run }, 'order "a": interval: expected a non-negative number of ms or a duration string, got -5'],
    ['an interval past Go\'s limit', { name: 'a', trigger: 'cooldown', interval: 1e300, run }, 'order "a": interval: 1e+300 ms is out of range'],
    ['a zero interval', { name: 'a', trigger: 'cooldown', interval: 0, run }, 'order "a": interval: must be greater than 0, got "0"'],
    ['an interval of the wrong type', { name: 'a', trigger: 'cooldown', interval: true, run }, 'order "a": interval: expected a duration string such as "30s" or a number of ms, got the boolean true'],
    ['a cron without schedule', { name: 'a', trigger: 'cron', run }, 'order "a": schedule: missing: trigger = "cron" needs schedule'],
    ['a bad schedule', { name: 'a', trigger: 'cron', schedule: '* * * * * *', run }, 'order "a": schedule: invalid cron expression "* * * * * *": 6 fields'],
    ['a condition without check', { name: 'a', trigger: 'condition', interval: '1m', run }, 'order "a": check: missing: trigger = "condition" needs check'],
    ['an event without on', { name: 'a', trigger: 'event', run }, 'order "a": on: missing: trigger = "event" needs on'],
    ['no-op code 0', { name: 'a', trigger: 'manual', run, noOpExitCodes: [0] }, 'order "a": noOpExitCodes: 0 cannot be a no-op code: exit 0 means did-work'],
    ['no-op code 256', { name: 'a', trigger: 'manual', run, noOpExitCodes: [256] }, 'order "a": noOpExitCodes: 256 is out of range'],
    ['no-op code "100"', { name: 'a', trigger: 'manual', run, noOpExitCodes: ['100'] }, 'order "a": noOpExitCodes: element 0 is the string "100"'],
    ['no-op code 1.5', { name: 'a', trigger: 'manual', run, noOpExitCodes: [1.5] }, 'order "a": noOpExitCodes: element 0 is the number 1.5'],
    ['an env value that is not a string', { name: 'a', trigger: 'manual', run, env: { N: 1 } }, 'order "a": env.N: expected a string, got the number 1'],
    ['an env name with =', { name: 'a', trigger: 'manual', run, env: { 'A=B': 'x' } }, 'order "a": env.A=B: not a valid environment variable name'],
    ['no name', { trigger: 'manual', run }, 'name: expected a non-empty string, got nothing'],
    ['an empty name', { name: ' ', trigger: 'manual', run }, 'name: expected a non-empty string, got the string " "'],
    ['not an object', 'sweep', 'expected an order definition object, got the string "sweep"'],
  ])('%s', (_what, def, message) => {
    const err = defineError(def);
    expect(err.code).toBe('ERR_ORDER_FILE');
    expect(err.file).toBeUndefined();
    expect(err.line).toBeUndefined();
    expect(err.message.slice(0, message.length)).toBe(message);
  });

  it('unknown keys warn, naming the order and the closest known key', () => {
    const warnings: OrderWarning[] = [];
    defineOrder({ name: 'a', trigger: 'cooldown', interval: '1m', run, intervall: '1m' } as OrderDefinition, { warn: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      { kind: 'unknown-key', order: 'a', key: 'intervall', message: 'order "a": intervall: unknown key, ignored (did you mean interval?)' },
    ]);
  });

  it('file-only spellings are unknown in code', () => {
    const warnings: OrderWarning[] = [];
    defineOrder({ name: 'a', trigger: 'manual', run, gate: 'manual', no_op_exit_codes: [3] } as unknown as OrderDefinition, { warn: (w) => warnings.push(w) });
    expect(warnings.map((w) => w.message)).toEqual([
      'order "a": gate: unknown key, ignored (did you mean trigger?)',
      'order "a": no_op_exit_codes: unknown key, ignored (did you mean noOpExitCodes?)',
    ]);
  });
});

describe('validateScoped', () => {
  const city = (name: string, file?: string): OrderSpec => ({ ...defineOrder({ name, trigger: 'manual', run }), ...(file ? { file } : {}) });
  const rig = (name: string, file?: string): OrderSpec => ({ ...city(name, file), scope: 'rig' });

  it('binds a city order once and a rig order once per rig', () => {
    const scoped = validateScoped([city('dolt-health'), rig('gate-sweep')], ['focuster', 'intervaltree', 'gastown']);
    expect(scoped.map((s) => [s.scopedName, s.rig])).toEqual([
      ['dolt-health', undefined],
      ['gate-sweep:rig:focuster', 'focuster'],
      ['gate-sweep:rig:intervaltree', 'intervaltree'],
      ['gate-sweep:rig:gastown', 'gastown'],
    ]);
    expect(scoped[1]?.spec.name).toBe('gate-sweep');
    expect('rig' in (scoped[0] ?? {})).toBe(false);
  });

  it('with no rigs, rig orders bind to nothing', () => {
    expect(validateScoped([rig('gate-sweep')], [])).toEqual([]);
  });

  it('refuses a file order and a code order with one name, naming both', () => {
    const err = (() => {
      try {
        validateScoped([city('sweep', '/p/orders/sweep.toml'), city('sweep')], []);
      } catch (e) {
        return e as OrderFileError;
      }
      throw new Error('expected a duplicate to be refused');
    })();
    expect(err).toBeInstanceOf(OrderFileError);
    expect(err.message).toBe(
      'order "sweep": name: duplicate order "sweep": defined by order "sweep" (/p/orders/sweep.toml) and by order "sweep" (defined in code)',
    );
  });

  it('refuses a rig expansion that collides with an order literally named name:rig:rig', () => {
    expect(() => validateScoped([rig('sweep', '/p/orders/sweep.toml'), city('sweep:rig:a', '/q/orders/sweep:rig:a.toml')], ['a'])).toThrow(
      '/q/orders/sweep:rig:a.toml: name: duplicate order "sweep:rig:a": defined by rig order "sweep" (/p/orders/sweep.toml) and by order "sweep:rig:a" (/q/orders/sweep:rig:a.toml)',
    );
  });

  it('refuses empty and repeated rig names', () => {
    expect(() => validateScoped([], ['a', 'a'])).toThrow('rigs: rig "a" is listed twice');
    expect(() => validateScoped([], [''])).toThrow('rigs: rig name "" must start with a letter or digit');
    expect(() => validateScoped([], ['a b'])).toThrow('rigs: rig name "a b" must start with a letter or digit');
  });
});
