import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OrderFileError } from '../../src/orders/errors.js';
import { loadOrderDir, parseOrderFile } from '../../src/orders/load.js';
import type { OrderWarning } from '../../src/orders/spec.js';
import type { OrderSpec } from '../../src/orders/types.js';
import { tempDir } from '../helpers.js';

const FILE = '/city/packs/maintenance/orders/sweep.toml';

const GATE_SWEEP = `[order]
description = "Sweep timer gates"
gate = "cooldown"
interval = "30s"
exec = "$PACK_DIR/assets/scripts/gate-sweep.sh"
`;

const DIGEST = `[order]
description = "Nightly digest"
formula = "mol-digest"
pool = "dog"
trigger = "cron"
schedule = "0 3 * * *"
`;

function parse(text: string, file = FILE): { spec: OrderSpec; warnings: OrderWarning[] } {
  const warnings: OrderWarning[] = [];
  const spec = parseOrderFile(text, file, { warn: (w) => warnings.push(w) });
  return { spec, warnings };
}

function fileError(text: string, file = FILE): OrderFileError {
  try {
    parseOrderFile(text, file, { warn: () => {} });
  } catch (err) {
    expect(err).toBeInstanceOf(OrderFileError);
    return err as OrderFileError;
  }
  throw new Error('expected the order file to be rejected');
}

/** A cooldown order with `extra` lines appended to its [order] table (lines 1-4 are fixed). */
function cooldown(extra: string): string {
  return `[order]\ngate = "cooldown"\ninterval = "30s"\nexec = "true"\n${extra}\n`;
}

describe('Gas City order files load unchanged', () => {
  it('a cooldown exec order (gate = "cooldown")', () => {
    const { spec, warnings } = parse(GATE_SWEEP);
    expect(warnings).toEqual([]);
    expect(spec).toEqual({
      name: 'sweep',
      file: FILE,
      packDir: '/city/packs/maintenance',
      description: 'Sweep timer gates',
      exec: '$PACK_DIR/assets/scripts/gate-sweep.sh',
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
  });

  it('a cron formula order, loaded for the dispatcher to report as needing a formula runner', () => {
    const { spec, warnings } = parse(DIGEST, '/city/packs/dog/orders/digest.toml');
    expect(warnings).toEqual([]);
    expect(spec).toMatchObject({
      name: 'digest',
      packDir: '/city/packs/dog',
      formula: 'mol-digest',
      pool: 'dog',
      trigger: 'cron',
      schedule: '0 3 * * *',
      missed: 'skip',
      timeoutMs: 30_000,
    });
    expect(spec.exec).toBeUndefined();
  });

  it('every field, with orderly\'s additions', () => {
    const { spec, warnings } = parse(`[order]
description = "all of it"
exec = "./run.sh"
trigger = "cron"
schedule = "*/5 9-17 * * mon-fri"
tz = "Europe/Berlin"
missed = "once"
timeout = "1m30s"
enabled = false
scope = "rig"
no_op_exit_codes = [100, 3, 100]
group = "dolt"
jitter = "5s"

[order.env]
LOG_LEVEL = "debug"
"WITH SPACE" = "ok"
`);
    expect(warnings).toEqual([]);
    expect(spec).toMatchObject({
      trigger: 'cron',
      schedule: '*/5 9-17 * * mon-fri',
      tz: 'Europe/Berlin',
      missed: 'once',
      timeoutMs: 90_000,
      enabled: false,
      scope: 'rig',
      noOpExitCodes: [100, 3],
      group: 'dolt',
      jitterMs: 5000,
      env: { LOG_LEVEL: 'debug', 'WITH SPACE': 'ok' },
    });
  });

  it('condition, event and manual triggers', () => {
    expect(parse('[order]\ntrigger = "condition"\ninterval = "1m"\ncheck = "test -f /tmp/x"\nexec = "x"').spec).toMatchObject({
      trigger: 'condition',
      intervalMs: 60_000,
      check: 'test -f /tmp/x',
    });
    expect(parse('[order]\ntrigger = "event"\non = "bead.closed"\nexec = "x"').spec).toMatchObject({ trigger: 'event', on: 'bead.closed' });
    expect(parse('[order]\ntrigger = "manual"\nexec = "x"').spec).toMatchObject({ trigger: 'manual' });
  });

  it('gate and trigger are synonyms; both may be given if they agree', () => {
    const viaGate = parse('[order]\ngate = "manual"\nexec = "x"').spec;
    const viaTrigger = parse('[order]\ntrigger = "manual"\nexec = "x"').spec;
    const viaBoth = parse('[order]\ngate = "manual"\ntrigger = "manual"\nexec = "x"').spec;
    expect(viaGate).toEqual(viaTrigger);
    expect(viaBoth).toEqual(viaTrigger);
  });

  it('dotted keys, inline tables, CRLF line ends and a BOM are TOML like any other', () => {
    const { spec } = parse('\ufefforder.gate = "cooldown"\r\norder.interval = "1m"\r\norder.exec = "x"\r\norder.env = { A = "1" }\r\n');
    expect(spec).toMatchObject({ trigger: 'cooldown', intervalMs: 60_000, exec: 'x', env: { A: '1' } });
  });

  it('packDir is the file\'s directory when it is not named orders', () => {
    expect(parse(GATE_SWEEP, '/somewhere/flat/sweep.toml').spec.packDir).toBe('/somewhere/flat');
  });
});

describe('bad order files: file, line, field and what is wrong', () => {
  const at = (line: number): string => `${FILE}:${line}`;

  it.each<[string, string, number | undefined, string | undefined, string]>([
    ['malformed TOML', '[order]\ngate = "cooldown"\ninterval = 30s\n', 3, undefined, 'invalid TOML: '],
    ['an unterminated header', '[order\n', 1, undefined, 'invalid TOML: '],
    ['a key given twice', '[order]\nexec = "a"\nexec = "b"\n', 3, undefined, 'invalid TOML: '],
    ['no body', '[order]\ngate = "cooldown"\ninterval = "30s"\n', 1, 'exec', 'missing: give exactly one of exec (a shell command) or formula (a Gas City formula)'],
    ['both bodies', '[order]\ngate = "manual"\nexec = "x"\nformula = "mol"\n', 4, 'formula', 'exec and formula are both set; give exactly one'],
    ['an empty exec', '[order]\ngate = "manual"\nexec = "  "\n', 3, 'exec', 'must not be empty'],
    ['pool on an exec order', cooldown('pool = "dog"'), 5, 'pool', 'only formula orders have a pool; this order has exec'],
    ['no trigger', '[order]\nexec = "x"\n', 1, 'trigger', 'missing: set trigger (or gate) to one of cooldown, cron, condition, event, manual'],
    ['an unknown trigger', '[order]\nexec = "x"\ntrigger = "hourly"\n', 3, 'trigger', 'unknown trigger "hourly"; allowed: cooldown, cron, condition, event, manual'],
    ['an unknown gate', '[order]\nexec = "x"\ngate = "Cooldown"\n', 3, 'gate', 'unknown trigger "Cooldown"; allowed: cooldown, cron, condition, event, manual'],
    ['gate and trigger disagreeing', '[order]\nexec = "x"\ngate = "cooldown"\ntrigger = "cron"\n', 4, 'trigger', 'trigger = "cron" and gate = "cooldown" disagree'],
    ['a unit-less interval', '[order]\ngate = "cooldown"\ninterval = "30"\nexec = "x"\n', 3, 'interval', 'invalid duration "30": missing unit after 30 (did you mean "30s"?); expected a Go duration such as "30s", "5m" or "1h30m" (units: ns, us, ms, s, m, h)'],
    ['an integer interval', '[order]\ngate = "cooldown"\ninterval = 30\nexec = "x"\n', 3, 'interval', 'expected a duration string such as "30s", got the integer 30'],
    ['a zero interval', '[order]\ngate = "cooldown"\ninterval = "0s"\nexec = "x"\n', 3, 'interval', 'must be greater than 0, got "0s"'],
    ['a negative interval', '[order]\ngate = "cooldown"\ninterval = "-1m"\nexec = "x"\n', 3, 'interval', 'invalid duration "-1m": durations cannot be negative'],
    ['a cooldown without interval', '[order]\ngate = "cooldown"\nexec = "x"\n', 1, 'interval', 'missing: gate = "cooldown" needs interval (e.g. interval = "30s")'],
    ['a NUL in exec', '[order]\ntrigger = "manual"\nexec = "echo a\\u0000rm -rf /"\n', 3, 'exec', 'contains a NUL character'],
    ['a webhook without params', '[order]\ntrigger = "webhook"\nexec = "x"\n', 1, 'params', 'missing: trigger = "webhook" needs a non-empty [order.params] table'],
    ['a reserved env key', '[order]\ntrigger = "manual"\nexec = "x"\n[order.env]\nGC_CITY = "/elsewhere"\n', 5, 'env.GC_CITY', 'cannot override controller-owned env key "GC_CITY"'],
    ['a zero check_timeout', '[order]\ntrigger = "condition"\ncheck = "true"\ncheck_timeout = "0s"\nexec = "x"\n', 4, 'check_timeout', 'must be greater than 0'],
    ['skip_aliases not a list', '[order]\ntrigger = "manual"\nexec = "x"\nskip_aliases = "old"\n', 4, 'skip_aliases', 'expected an array of order names'],
    ['a condition without check', '[order]\ntrigger = "condition"\ninterval = "1m"\nexec = "x"\n', 1, 'check', 'missing: trigger = "condition" needs check'],
    ['an event without on', '[order]\ntrigger = "event"\nexec = "x"\n', 1, 'on', 'missing: trigger = "event" needs on'],
    ['a cron without schedule', '[order]\ntrigger = "cron"\nexec = "x"\n', 1, 'schedule', 'missing: trigger = "cron" needs schedule (e.g. schedule = "0 3 * * *")'],
    ['a 6-field schedule', '[order]\ntrigger = "cron"\nexec = "x"\nschedule = "0 0 3 * * *"\n', 4, 'schedule', 'invalid cron expression "0 0 3 * * *": 6 fields (a seconds field) are not supported; expected 5 fields'],
    ['a garbage schedule', '[order]\ntrigger = "cron"\nschedule = "every day"\nexec = "x"\n', 3, 'schedule', 'invalid cron expression "every day": 2 fields'],
    ['an unknown tz', '[order]\ntrigger = "cron"\nschedule = "0 3 * * *"\ntz = "Moon/Tranquility"\nexec = "x"\n', 4, 'tz', 'unknown time zone "Moon/Tranquility"'],
    ['no-op code 0', cooldown('no_op_exit_codes = [0]'), 5, 'no_op_exit_codes', '0 cannot be a no-op code: exit 0 means did-work; expected an array of exit codes 1..255'],
    ['no-op code 256', cooldown('no_op_exit_codes = [100, 256]'), 5, 'no_op_exit_codes', '256 is out of range; expected an array of exit codes 1..255'],
    ['no-op code -1', cooldown('no_op_exit_codes = [-1]'), 5, 'no_op_exit_codes', '-1 is out of range'],
    ['no-op codes as a string', cooldown('no_op_exit_codes = "100"'), 5, 'no_op_exit_codes', 'expected an array of exit codes 1..255 (e.g. [100]), got the string "100"'],
    ['a no-op code as a string', cooldown('no_op_exit_codes = ["100"]'), 5, 'no_op_exit_codes', 'element 0 is the string "100"'],
    ['a no-op code as a float', cooldown('no_op_exit_codes = [100.0]'), 5, 'no_op_exit_codes', 'element 0 is the float 100.0'],
    ['a description that is not a string', cooldown('description = 1'), 5, 'description', 'expected a string, got the integer 1'],
    ['enabled as a string', cooldown('enabled = "yes"'), 5, 'enabled', 'expected true or false, got the string "yes"'],
    ['env as a string', cooldown('env = "A=1"'), 5, 'env', 'expected a table of strings'],
    ['an env value that is not a string', cooldown('[order.env]\nA = "1"\nB = 2'), 7, 'env.B', 'expected a string, got the integer 2'],
    ['an env value in an inline table', cooldown('env = { B = true }'), 5, 'env.B', 'expected a string, got the boolean true'],
    ['an unknown scope', cooldown('scope = "town"'), 5, 'scope', 'unknown value "town"; allowed: city, rig'],
    ['an unknown missed policy', '[order]\ntrigger = "cron"\nschedule = "@daily"\nexec = "x"\nmissed = "all"\n', 5, 'missed', 'unknown value "all"; allowed: skip, once'],
    ['a zero timeout', cooldown('timeout = "0s"'), 5, 'timeout', 'must be greater than 0'],
    ['a timeout as a number', cooldown('timeout = 300'), 5, 'timeout', 'expected a duration string such as "30s", got the integer 300'],
    ['a bad jitter', cooldown('jitter = "5x"'), 5, 'jitter', 'invalid duration "5x": unknown unit "x"'],
    ['a date for a string', cooldown('group = 2026-01-01'), 5, 'group', 'expected a string, got a date-time'],
    ['an array for a string', cooldown('check = ["a"]'), 5, 'check', 'expected a string, got an array'],
  ])('%s', (_what, text, line, field, problem) => {
    const err = fileError(text);
    expect(err.code).toBe('ERR_ORDER_FILE');
    expect(err.file).toBe(FILE);
    expect(err.line).toBe(line);
    expect(err.field).toBe(field);
    const prefix = `${line === undefined ? FILE : at(line)}: ${field === undefined ? '' : `${field}: `}${problem}`;
    expect(err.message.slice(0, prefix.length)).toBe(prefix);
  });

  it('a TOML syntax error keeps smol-toml\'s line and column, without its code frame', () => {
    const err = fileError('[order]\n\n\nexec = "unterminated\n');
    expect(err.line).toBe(4);
    expect(err.message).toMatch(new RegExp(`^${FILE}:4: invalid TOML: .+ \\(column \\d+\\)$`));
  });

  it('a file without [order] says where its keys should go', () => {
    const err = fileError('gate = "cooldown"\nexec = "x"\n');
    expect(err.message).toBe(`${FILE}: missing [order] table: order files put their fields under [order] (gate, exec are at the top level: move them under [order])`);
    expect(fileError('').message).toBe(`${FILE}: missing [order] table: order files put their fields under [order]`);
  });

  it('[order] must be one table', () => {
    expect(fileError('[[order]]\nexec = "x"\n').message).toBe(`${FILE}:1: order: expected one [order] table, got an array of tables ([[order]]); one file holds one order`);
    expect(fileError('order = 5\n').message).toBe(`${FILE}:1: order: expected one [order] table, got the integer 5`);
  });

  it('finds the key\'s own line, not a look-alike inside a multi-line string', () => {
    const text = '[order]\ndescription = """\ninterval = "a line of prose"\n"""\ngate = "cooldown"\nexec = "x"\ninterval = "soon"\n';
    expect(fileError(text).line).toBe(7);
  });

  it('finds keys of other tables by their path, not their name', () => {
    const text = '[other]\ninterval = "1s"\n\n[order]\ngate = "cooldown"\nexec = "x"\ninterval = 5\n';
    expect(fileError(text).line).toBe(7);
  });
});

describe('warnings', () => {
  it('unknown keys in [order] and at the top level warn with file, line and key, and still load', () => {
    const { spec, warnings } = parse('version = 2\n[order]\ngate = "cooldown"\nintervall = "30s"\ninterval = "30s"\nexec = "x"\ncolour = "blue"\n\n[meta]\nowner = "me"\n');
    expect(spec.intervalMs).toBe(30_000);
    expect(warnings.map((w) => [w.kind, w.key, w.line, w.file])).toEqual([
      ['unknown-key', 'version', 1, FILE],
      ['unknown-key', 'meta', 9, FILE],
      ['unknown-key', 'intervall', 4, FILE],
      ['unknown-key', 'colour', 7, FILE],
    ]);
    expect(warnings[2]?.message).toBe(`${FILE}:4: intervall: unknown key in [order], ignored (did you mean interval?)`);
    expect(warnings[3]?.message).toBe(`${FILE}:7: colour: unknown key in [order], ignored`);
    expect(warnings[0]?.message).toBe(`${FILE}:1: version: unknown top-level key, ignored (orderly reads only the [order] table)`);
  });

  it('keys the trigger does not use warn as ignored', () => {
    const { warnings } = parse('[order]\ntrigger = "cron"\nschedule = "@daily"\ninterval = "30s"\non = "x"\nexec = "x"\n');
    expect(warnings.map((w) => [w.kind, w.key, w.line])).toEqual([
      ['ignored-key', 'interval', 4],
      ['ignored-key', 'on', 5],
    ]);
    expect(warnings[0]?.message).toBe(`${FILE}:4: interval: ignored: only cooldown and condition triggers use it (trigger is "cron")`);
  });

  it('an environment variable named __proto__ is data', () => {
    const { spec } = parse(cooldown('[order.env]\n__proto__ = "x"'));
    expect(Object.getPrototypeOf(spec.env)).toBe(Object.prototype);
    expect(Object.entries(spec.env)).toEqual([['__proto__', 'x']]);
  });

  it('a key named __proto__ is just an unknown key', () => {
    const { spec, warnings } = parse(cooldown('__proto__ = "x"\nconstructor = 1'));
    expect(warnings.map((w) => w.key)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(spec)).toBe(Object.prototype);
  });
});

describe('loadOrderDir', () => {
  const tmp = tempDir('orders');
  afterAll(tmp.remove);
  let n = 0;
  const fresh = (): string => {
    const dir = join(tmp.path, `case-${n++}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };

  it('loads <pack>/orders/*.toml sorted by name, ignoring other files, with packDir = the pack', async () => {
    const pack = fresh();
    const orders = join(pack, 'orders');
    mkdirSync(orders);
    writeFileSync(join(orders, 'gate-sweep.toml'), GATE_SWEEP);
    writeFileSync(join(orders, 'digest.toml'), DIGEST);
    writeFileSync(join(orders, 'README.md'), '# not an order');
    writeFileSync(join(orders, 'notes.toml.bak'), 'garbage');
    writeFileSync(join(orders, '.#gate-sweep.toml'), 'editor lock file');
    mkdirSync(join(orders, 'sub.toml'));
    const loaded = await loadOrderDir(orders);
    expect(loaded.dir).toBe(orders);
    expect(loaded.orders.map((o) => o.name)).toEqual(['digest', 'gate-sweep']);
    expect(loaded.orders.map((o) => o.file)).toEqual([join(orders, 'digest.toml'), join(orders, 'gate-sweep.toml')]);
    expect(loaded.orders.every((o) => o.packDir === pack)).toBe(true);
    expect(loaded.warnings).toEqual([]);
  });

  it('given a pack root, loads its orders/ directory', async () => {
    const pack = fresh();
    mkdirSync(join(pack, 'orders'));
    writeFileSync(join(pack, 'orders', 'gate-sweep.toml'), GATE_SWEEP);
    const loaded = await loadOrderDir(pack);
    expect(loaded.dir).toBe(join(pack, 'orders'));
    expect(loaded.orders.map((o) => [o.name, o.packDir])).toEqual([['gate-sweep', pack]]);
  });

  it('a flat directory of order files is its own pack; a relative path is resolved', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'a.toml'), GATE_SWEEP);
    const loaded = await loadOrderDir(join(dir, '..', dir.split('/').at(-1) ?? ''));
    expect(loaded.orders[0]?.packDir).toBe(dir);
  });

  it('follows a symlinked order file', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'real.txt'), GATE_SWEEP);
    symlinkSync(join(dir, 'real.txt'), join(dir, 'linked.toml'));
    expect((await loadOrderDir(dir)).orders.map((o) => o.name)).toEqual(['linked']);
  });

  it('returns warnings and also hands each to options.warn', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'a.toml'), cooldown('colour = "blue"'));
    const seen: OrderWarning[] = [];
    const loaded = await loadOrderDir(dir, { warn: (w) => seen.push(w) });
    expect(loaded.warnings).toHaveLength(1);
    expect(seen).toEqual(loaded.warnings);
    expect(loaded.warnings[0]).toMatchObject({ kind: 'unknown-key', key: 'colour', line: 5, file: join(dir, 'a.toml'), order: 'a' });
  });

  it('an empty directory has no orders', async () => {
    expect((await loadOrderDir(fresh())).orders).toEqual([]);
  });

  it('stops at the first bad file in name order, naming it', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'a.toml'), GATE_SWEEP);
    writeFileSync(join(dir, 'b.toml'), '[order]\ngate = "cooldown"\nexec = "x"\n');
    writeFileSync(join(dir, 'c.toml'), 'not toml at all');
    await expect(loadOrderDir(dir)).rejects.toThrow(`${join(dir, 'b.toml')}:1: interval: missing:`);
  });

  it('refuses a file that is not UTF-8', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'bad.toml'), Buffer.from([0x5b, 0x6f, 0xff, 0xfe, 0x5d]));
    await expect(loadOrderDir(dir)).rejects.toThrow(`${join(dir, 'bad.toml')}: not valid UTF-8`);
  });

  it('a missing directory is an OrderFileError naming it', async () => {
    const missing = join(tmp.path, 'does-not-exist');
    const err = await loadOrderDir(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrderFileError);
    expect((err as OrderFileError).message).toBe(`${missing}: no such directory`);
  });

  it('a file given as the directory is an OrderFileError', async () => {
    const dir = fresh();
    writeFileSync(join(dir, 'a.toml'), GATE_SWEEP);
    await expect(loadOrderDir(join(dir, 'a.toml'))).rejects.toThrow(`${join(dir, 'a.toml')}: not a directory`);
  });
});
