import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCity, OrderFileError } from '../../src/index.js';
import { cooldownOrder, gasCity, scratch, writeTree } from './fixtures.js';

const fresh = scratch('gascity-load');

const names = (orders: Array<{ name: string; rigs?: string[] }>): string[] => orders.map((o) => (o.rigs ? `${o.name}@${o.rigs.join(',')}` : o.name)).sort();

describe('pack roots load as packs', () => {
  it('a pack with pack.toml and orders/<name>.toml (the pack.toml is not read as an order)', async () => {
    const pack = writeTree(fresh(), {
      'pack.toml': '[pack]\nname = "dolt"\nschema = 2\n\n[[doctor]]\nname = "x"\n',
      'orders/dolt-health.toml': cooldownOrder('$PACK_DIR/assets/scripts/dolt-health.sh'),
      'formulas/mol-dog-backup.toml': 'formula = "x"\n',
    });
    const loaded = await loadCity(pack);
    expect(loaded.kind).toBe('pack');
    expect(loaded.problems).toEqual([]);
    expect(loaded.orders.map((o) => [o.name, o.packDir])).toEqual([['dolt-health', pack]]);
  });

  it('all three layouts: x.toml wins over x.order.toml (not even read), the subdirectory layouts warn', async () => {
    const pack = writeTree(fresh(), {
      'pack.toml': '[pack]\nname = "p"\nschema = 2\n',
      'orders/a.toml': cooldownOrder('echo a'),
      'orders/a.order.toml': 'this is not TOML at all [[[',
      'orders/b.order.toml': cooldownOrder('echo b'),
      'orders/c/order.toml': cooldownOrder('echo c'),
      'formulas/orders/d/order.toml': cooldownOrder('echo d'),
      'formulas/orders/a/order.toml': cooldownOrder('echo shadowed'),
    });
    const loaded = await loadCity(pack);
    expect(loaded.problems).toEqual([]);
    expect(loaded.orders.map((o) => [o.name, o.exec, o.file])).toEqual([
      ['a', 'echo a', join(pack, 'orders/a.toml')],
      ['b', 'echo b', join(pack, 'orders/b.order.toml')],
      ['c', 'echo c', join(pack, 'orders/c/order.toml')],
      ['d', 'echo d', join(pack, 'formulas/orders/d/order.toml')],
    ]);
    // PACK_DIR is the pack in every layout.
    expect(new Set(loaded.orders.map((o) => o.packDir))).toEqual(new Set([pack]));
    expect(loaded.warnings.filter((w) => w.kind === 'deprecated-path').map((w) => w.message)).toEqual([
      `${join(pack, 'orders/c/order.toml')}: deprecated order path ${join(pack, 'orders/c/order.toml')}; rename to orders/c.toml`,
      `${join(pack, 'formulas/orders/d/order.toml')}: deprecated order path ${join(pack, 'formulas/orders/d/order.toml')}; move to orders/d.toml`,
    ]);
  });

  it('a directory with no order at all is an error, never a silent 0-order run', async () => {
    const empty = writeTree(fresh(), { 'pack.toml': '[pack]\nname = "p"\nschema = 2\n', 'README.md': 'nothing' });
    await expect(loadCity(empty)).rejects.toThrow(`${empty}: no order files here`);
    const city = writeTree(fresh(), { 'city.toml': '[workspace]\nname = "c"\n', 'packs/x/orders/README.md': '' });
    await expect(loadCity(city)).rejects.toThrow(/no order files in this city/);
    await expect(loadCity(join(city, 'missing'))).rejects.toThrow(`${join(city, 'missing')}: no such directory`);
  });

  it("a pack's own imports load with it, each order with its own PACK_DIR", async () => {
    const root = writeTree(fresh(), {
      'gastown/pack.toml': '[pack]\nname = "gastown"\nschema = 2\n\n[imports.maintenance]\nsource = "../maintenance"\n',
      'gastown/orders/digest-generate.toml': cooldownOrder('echo digest', '24h'),
      'maintenance/pack.toml': '[pack]\nname = "maintenance"\nschema = 2\n',
      'maintenance/orders/prune-branches.toml': cooldownOrder('$PACK_DIR/assets/scripts/prune.sh'),
    });
    const loaded = await loadCity(join(root, 'gastown'));
    expect(loaded.orders.map((o) => [o.name, o.packDir])).toEqual([
      ['prune-branches', join(root, 'maintenance')],
      ['digest-generate', join(root, 'gastown')],
    ]);
  });
});

describe('a Gas City city', () => {
  it('loads city packs as city orders and each rig import as that rig\'s orders, with rig paths from .gc/site.toml', async () => {
    const city = gasCity(fresh());
    const loaded = await loadCity(city);
    expect(loaded.kind).toBe('city');
    expect(loaded.problems).toEqual([]);
    expect(loaded.rigs).toEqual(['api', 'web']);
    expect(names(loaded.orders)).toEqual(['digest', 'gate-sweep', 'orphan-sweep@api', 'orphan-sweep@web']);
    expect(loaded.orders.find((o) => o.name === 'orphan-sweep')!.scope).toBe('rig');
    expect(loaded.orders.find((o) => o.name === 'gate-sweep')!.scope).toBe('city');
    expect(loaded.city).toEqual({
      name: 'bright-lights',
      dir: city,
      runtimeDir: join(city, '.gc', 'runtime'),
      eventLog: join(city, '.gc', 'events.jsonl'),
      timezone: 'America/Los_Angeles',
      rigs: { api: { path: join(city, 'rigs/api'), prefix: 'ap' }, web: { path: join(city, 'rigs/web') } },
    });
    // [workspace] timezone applies to cron orders that name none.
    expect(loaded.orders.find((o) => o.name === 'digest')!.tz).toBe('America/Los_Angeles');
    // Formula orders keep Gas City's 30 s default timeout.
    expect(loaded.orders.find((o) => o.name === 'digest')!.timeoutMs).toBe(30_000);
  });

  it('[defaults.rig.imports] seeds new rigs only: a rig without imports gets no rig orders', async () => {
    const city = gasCity(fresh(), { 'city.toml': '[workspace]\nname = "c"\n\n[imports.maintenance]\nsource = "packs/maintenance"\n\n[[rigs]]\nname = "bare"\n\n[defaults.rig.imports.rigwork]\nsource = "packs/rigwork"\n' });
    expect(names((await loadCity(city)).orders)).toEqual(['digest', 'gate-sweep']);
  });

  it("the city's own orders/ wins a name over a pack's; scope = \"city\" in a rig pack runs once, scope = \"rig\" in a city pack once per rig", async () => {
    const city = gasCity(fresh(), {
      'orders/gate-sweep.toml': cooldownOrder('echo city-local'),
      'packs/rigwork/orders/rollup.toml': cooldownOrder('echo rollup', '1h', 'scope = "city"\n'),
      'packs/maintenance/orders/per-rig.toml': cooldownOrder('echo per-rig', '1h', 'scope = "rig"\n'),
    });
    const loaded = await loadCity(city);
    expect(loaded.problems).toEqual([]);
    expect(names(loaded.orders)).toEqual(['digest', 'gate-sweep', 'orphan-sweep@api', 'orphan-sweep@web', 'per-rig@api', 'per-rig@web', 'rollup']);
    const gs = loaded.orders.find((o) => o.name === 'gate-sweep')!;
    expect([gs.exec, gs.packDir]).toEqual(['echo city-local', city]);
  });

  it('[orders] skip (by name or skip_aliases), max_timeout, and [[orders.overrides]] by rig, "*" and city', async () => {
    const city = gasCity(fresh(), {
      'packs/maintenance/orders/reaper.toml': cooldownOrder('echo reap', '30m', 'timeout = "1h"\nskip_aliases = ["mol-dog-reaper"]\n'),
      'packs/maintenance/orders/long.toml': cooldownOrder('echo long', '30m', 'timeout = "1h"\n'),
    });
    const toml = `${await import('node:fs').then((fs) => fs.readFileSync(join(city, 'city.toml'), 'utf8'))}
[orders]
skip = ["mol-dog-reaper"]
max_timeout = "10m"

[[orders.overrides]]
name = "orphan-sweep"
rig = "api"
interval = "1m"

[[orders.overrides]]
name = "orphan-sweep"
rig = "*"
[orders.overrides.env]
LEVEL = "debug"

[[orders.overrides]]
name = "gate-sweep"
enabled = false
`;
    writeTree(city, { 'city.toml': toml });
    const loaded = await loadCity(city);
    expect(loaded.problems).toEqual([]);
    expect(loaded.skipped).toEqual(['reaper']);
    expect(loaded.orders.find((o) => o.name === 'long')!.timeoutMs).toBe(600_000);
    const sweeps = loaded.orders.filter((o) => o.name === 'orphan-sweep');
    expect(sweeps.map((o) => [o.rigs, o.intervalMs, o.env])).toEqual([
      [['api'], 60_000, { LEVEL: 'debug' }],
      [['web'], 300_000, { LEVEL: 'debug' }],
    ]);
    expect(loaded.orders.find((o) => o.name === 'gate-sweep')!.enabled).toBe(false);
  });

  it('an override that matches nothing is reported in Gas City\'s words, naming city.toml and its line', async () => {
    const base = gasCity(fresh());
    const text = (await import('node:fs')).readFileSync(join(base, 'city.toml'), 'utf8');
    writeTree(base, { 'city.toml': `${text}\n[[orders.overrides]]\nname = "orphan-sweep"\ninterval = "1m"\n\n[[orders.overrides]]\nname = "nope"\nenabled = false\n` });
    const loaded = await loadCity(base);
    const lines = text.split('\n').length;
    expect(loaded.problems.map((p) => p.message)).toEqual([
      `${join(base, 'city.toml')}:${lines + 1}: orders.overrides[0]: order "orphan-sweep" not found at city scope (2 instances rig-scoped); set rig = "api", rig = "web" to target a per-rig instance, or use rig = "*" to target all instances`,
      `${join(base, 'city.toml')}:${lines + 5}: orders.overrides[1]: order "nope" not found`,
    ]);
    // The orders themselves still load.
    expect(loaded.orders).toHaveLength(4);
  });

  it('a remote import is reported as not fetched, with its file and line; the local packs still load', async () => {
    const city = gasCity(fresh(), {
      'pack.toml': '[pack]\nname = "c"\nschema = 2\n\n[imports.core]\nsource = "https://github.com/gastownhall/gascity.git//internal/bootstrap/packs/core"\nversion = "sha:3dcfe0969e26aac651c5c65c0a5d73f2d8cc16c5"\n',
    });
    const loaded = await loadCity(city);
    expect(loaded.problems).toHaveLength(1);
    expect(loaded.problems[0]!.message).toBe(
      `${join(city, 'pack.toml')}:5: imports.core: remote import "https://github.com/gastownhall/gascity.git//internal/bootstrap/packs/core" is not fetched: orderly reads packs from disk only, so this pack's orders are not loaded (vendor it into the city, or set source to a local checkout)`,
    );
    expect(loaded.orders).toHaveLength(4);
    await expect(loadCity(city, { strict: true })).rejects.toThrow(/remote import/);
  });

  it('one invalid order is left out and reported with file:line: field: problem; the rest load; strict refuses', async () => {
    const city = gasCity(fresh(), { 'packs/rigwork/orders/broken.toml': '[order]\ngate = "cooldown"\ninterval = "30"\nexec = "x"\n' });
    const loaded = await loadCity(city);
    const file = join(city, 'packs/rigwork/orders/broken.toml');
    expect(loaded.problems.map((p) => [p.file, p.line, p.field])).toEqual([[file, 3, 'interval']]);
    expect(loaded.problems[0]!.message).toMatch(new RegExp(`^${file}:3: interval: invalid duration "30"`));
    expect(names(loaded.orders)).toEqual(['digest', 'gate-sweep', 'orphan-sweep@api', 'orphan-sweep@web']);
    const err = await loadCity(city, { strict: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrderFileError);
    expect((err as OrderFileError).line).toBe(3);
  });

  it('city.toml mistakes name file, line and key', async () => {
    const city = gasCity(fresh(), { 'city.toml': '[workspace]\nname = "c"\ntimezone = "Mars/Olympus"\n' });
    await expect(loadCity(city)).rejects.toThrow(`${join(city, 'city.toml')}:3: workspace.timezone: unknown time zone "Mars/Olympus"`);
    writeTree(city, { 'city.toml': '[workspace]\nname = "c"\n\n[[rigs]]\nname = "a b"\n' });
    await expect(loadCity(city)).rejects.toThrow(/rigs\.name: rig name "a b" must start with a letter or digit/);
    writeTree(city, { 'city.toml': '[city]\nrigs = ["a"]\n' });
    await expect(loadCity(city)).rejects.toThrow(/\[city\] table/);
  });

  it('Gas City keys load as known, not warned as unknown: check_timeout, idempotent, no_work_gate, params, webhook', async () => {
    const city = gasCity(fresh(), {
      'orders/hook.toml': '[order]\ntrigger = "webhook"\nexec = "echo $GC_WEBHOOK_ARG_REPO"\nidempotent = true\nno_work_gate = true\n[order.params]\nrepo = { required = true }\n',
      'orders/ready.toml': '[order]\ntrigger = "condition"\ncheck = "test -f /tmp/ready"\ncheck_timeout = "3s"\nexec = "echo go"\n',
    });
    const loaded = await loadCity(city);
    expect(loaded.problems).toEqual([]);
    expect(loaded.warnings.filter((w) => w.kind === 'unknown-key')).toEqual([]);
    const hook = loaded.orders.find((o) => o.name === 'hook')!;
    expect([hook.trigger, hook.idempotent, hook.noWorkGate, hook.params]).toEqual(['webhook', true, true, { repo: { required: true } }]);
    const ready = loaded.orders.find((o) => o.name === 'ready')!;
    expect([ready.checkTimeoutMs, ready.intervalMs]).toEqual([3000, undefined]);
  });

  it('no_op_when_silent: per order, per pack (orderly.toml, a file Gas City does not read), or for the whole city', async () => {
    const city = gasCity(fresh(), {
      'packs/rigwork/orderly.toml': 'no_op_when_silent = true\n',
      'packs/maintenance/orders/loud.toml': cooldownOrder('echo hi', '1m', 'no_op_when_silent = false\n'),
    });
    const by = (orders: Array<{ name: string; noOpWhenSilent?: boolean }>) => Object.fromEntries(orders.map((o) => [o.name, o.noOpWhenSilent]));
    expect(by((await loadCity(city)).orders)).toEqual({ digest: undefined, 'gate-sweep': undefined, loud: false, 'orphan-sweep': true });
    expect(by((await loadCity(city, { silentIsNoOp: true })).orders)).toEqual({ digest: true, 'gate-sweep': true, loud: false, 'orphan-sweep': true });
  });

  it("Gas City's own gastown example shape: city.toml imports a pack that imports another", async () => {
    const city = writeTree(fresh(), {
      'city.toml': '[workspace]\nname = "gastown"\nprovider = "claude"\n\n[imports.gastown]\nsource = "packs/gastown"\n\n[daemon]\npatrol_interval = "30s"\n',
      'packs/gastown/pack.toml': '[pack]\nname = "gastown"\nschema = 2\n\n[imports.maintenance]\nsource = "../maintenance"\n\n[[named_session]]\ntemplate = "mayor"\n',
      'packs/gastown/orders/digest-generate.toml': '[order]\ndescription = "Generate daily digest"\nformula = "mol-digest-generate"\ngate = "cooldown"\ninterval = "24h"\npool = "dog"\n',
      'packs/maintenance/pack.toml': '[pack]\nname = "maintenance"\nschema = 2\n',
      'packs/maintenance/orders/gate-sweep.toml': '[order]\ndescription = "Evaluate and close pending gates"\nexec = "$PACK_DIR/assets/scripts/gate-sweep.sh"\ngate = "cooldown"\ninterval = "30s"\n',
    });
    const loaded = await loadCity(city);
    expect(loaded.problems).toEqual([]);
    expect(loaded.orders.map((o) => [o.name, o.packDir])).toEqual([
      ['gate-sweep', join(city, 'packs/maintenance')],
      ['digest-generate', join(city, 'packs/gastown')],
    ]);
  });

  it('fragments (include = [...]) add rigs and imports, and a fragment\'s [orders] replaces the city\'s', async () => {
    const city = gasCity(fresh(), {
      'city.toml': 'include = ["rigs.toml", "orders.toml"]\n\n[workspace]\nname = "c"\n\n[imports.maintenance]\nsource = "packs/maintenance"\n\n[orders]\nskip = ["gate-sweep"]\n',
      'rigs.toml': '[[rigs]]\nname = "api"\n[rigs.imports.rigwork]\nsource = "packs/rigwork"\n',
      'orders.toml': '[orders]\nskip = ["digest"]\n',
    });
    const loaded = await loadCity(city);
    expect(loaded.problems).toEqual([]);
    expect(loaded.rigs).toEqual(['api']);
    expect(names(loaded.orders)).toEqual(['gate-sweep', 'orphan-sweep@api']);
    writeTree(city, { 'city.toml': 'include = ["missing.toml"]\n[workspace]\nname = "c"\n' });
    await expect(loadCity(city)).rejects.toThrow(`${join(city, 'city.toml')}:1: include: fragment "missing.toml": no such file ${join(city, 'missing.toml')}`);
  });

  it('a rig with no path binding: its orders are left out and reported, not run against the city\'s store', async () => {
    const city = gasCity(fresh(), { '.gc/site.toml': '[[rig]]\nname = "api"\npath = "rigs/api"\n' });
    const loaded = await loadCity(city);
    expect(names(loaded.orders)).toEqual(['digest', 'gate-sweep', 'orphan-sweep@api']);
    expect(loaded.problems.map((p) => p.message)).toEqual([
      `${join(city, 'city.toml')}: rigs: rig "web" is declared but has no path binding (.gc/site.toml [[rig]] name/path, as gc rig add writes it): its 1 order(s) are left out (orphan-sweep)`,
    ]);
  });

  it("a rig's own directory is not a pack of the city, even with a pack.toml; an order file that is not UTF-8 is refused", async () => {
    const city = gasCity(fresh(), {
      'rigs/web/pack.toml': '[pack]\nname = "webapp"\nschema = 2\n',
      'rigs/web/orders/deploy.toml': cooldownOrder('echo deploy'),
      'orders/latin1.toml': '',
    });
    writeFileSync(join(city, 'orders/latin1.toml'), Buffer.concat([Buffer.from('[order]\ntrigger = "manual"\nexec = "echo '), Buffer.from([0xff, 0xfe]), Buffer.from('"\n')]));
    const loaded = await loadCity(city);
    expect(names(loaded.orders)).toEqual(['digest', 'gate-sweep', 'orphan-sweep@api', 'orphan-sweep@web']);
    expect(loaded.problems.map((p) => p.message)).toEqual([`${join(city, 'orders/latin1.toml')}: not valid UTF-8 (TOML files must be UTF-8)`]);
  });
});

