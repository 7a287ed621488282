// Ordinary operator actions at awkward moments: a typo in a fire, a SIGHUP
// while the controller starts, an order file renamed while its body runs,
// a body that should not see the controller's secrets, a too-short interval.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller, JsonlSink, parseOrderFile, type ControllerEvent, type OrderWarning } from '../../src/index.js';
import { sleep, waitUntil } from '../crash/support.js';
import { cli, gasCity, scratch } from '../gascity/fixtures.js';

const fresh = scratch('field-edges');

describe('the CLI at awkward moments', () => {
  it('fire of an unknown order exits 2 and names the scoped names meant', () => {
    const base = fresh();
    const city = gasCity(join(base, 'city'));
    const state = join(base, 'state');
    const r = spawnSync(process.execPath, [cli, 'fire', 'orphan-sweep', '--state', state, '--orders', city], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no order named orphan-sweep (did you mean orphan-sweep:rig:api, orphan-sweep:rig:web? scoped names are <name> for city orders and <name>:rig:<rig> for rig orders)');
    const typo = spawnSync(process.execPath, [cli, 'fire', 'gate-swep', '--state', state, '--orders', city], { encoding: 'utf8' });
    expect([typo.status, typo.stderr]).toEqual([2, expect.stringContaining('did you mean gate-sweep?') as string]);
  });

  it('a SIGHUP while the controller is starting reloads once it has started, instead of ending it', async () => {
    const base = fresh();
    const city = gasCity(join(base, 'city'));
    // A database that accepts connections and never answers: the start waits for its 10 s connect timeout.
    const silent = createServer(() => undefined).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const port = (silent.address() as AddressInfo).port;
    const args = ['run', city, '--state', join(base, 'state'), '--for', '1s', '--grace', '1s', '--json', '--audit', `postgres://orderly@127.0.0.1:${port}/audit`];
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await sleep(1_500);
    expect(out).not.toContain('"type":"started"');
    child.kill('SIGHUP');
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, sig) => r([c, sig])));
    silent.close();
    expect([code, signal]).toEqual([0, null]);
    expect(out).toContain('"type":"started"');
    expect(out).toContain('"type":"reloaded"');
  }, 40_000);
});

describe('orderly-dispatch run --for past 24.8 days', () => {
  it('runs until told to stop, not for the 1 ms Node gives an oversized timer', async () => {
    const base = fresh();
    const city = gasCity(join(base, 'city'));
    const child = spawn(process.execPath, [cli, 'run', city, '--state', join(base, 'state'), '--for', '720h', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const exited = new Promise<[number | null, string | null]>((r) => child.once('exit', (c, sig) => r([c, sig])));
    expect(await waitUntil(() => out.includes('"type":"started"'), 20_000)).toBe(true);
    await sleep(1_000);
    expect(child.exitCode, 'still running a second after its start').toBe(null);
    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  }, 40_000);
});

describe('orderly-dispatch run | head', () => {
  it('a reader that goes away does not stop the controller: it runs its time and leaves no lease held', async () => {
    const base = fresh();
    const city = gasCity(join(base, 'city'));
    const state = join(base, 'state');
    const child = spawn(process.execPath, [cli, 'run', city, '--state', state, '--for', '2500ms', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise((r) => child.stdout.once('data', r));
    child.stdout.destroy();
    const started = Date.now();
    const [code] = await new Promise<[number | null]>((r) => child.once('exit', (c) => r([c])));
    expect(code).toBe(0);
    expect(Date.now() - started).toBeGreaterThan(1_500);
    const doctor = spawnSync(process.execPath, [cli, 'doctor', '--state', state, '--json', '--min-free-mb', '0'], { encoding: 'utf8' });
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'leases')?.detail).toBe('none held');
  });
});

describe('an order renamed while its body runs', () => {
  it('the new name waits for the old run and keeps its lastRun, across a restart too', async () => {
    const base = fresh();
    const state = join(base, 'state');
    const body = `echo start >> ${base}/log; sleep 0.8; echo end >> ${base}/log`;
    const text = `[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n`;
    const events: ControllerEvent[] = [];
    const c = await Controller.start({ state, orders: [parseOrderFile(text, join(base, 'orders/old-name.toml'))], audit: new JsonlSink(join(state, 'audit.jsonl')), onEvent: (e) => events.push(e) });
    await waitUntil(() => existsSync(join(base, 'log')) && readFileSync(join(base, 'log'), 'utf8').includes('start'), 5_000);
    const last = c.lastRun('old-name')!;
    c.reload([parseOrderFile(text, join(base, 'orders/new-name.toml'))]);
    expect((await c.fire('new-name')).skipped).toBe('held');
    await waitUntil(() => readFileSync(join(base, 'log'), 'utf8').includes('end'), 5_000);
    await sleep(100);
    expect(c.lastRun('new-name')).toBe(last);
    expect(c.nextDue('new-name')).toBe(last + 3_600_000);
    expect(events.some((e) => e.type === 'warning' && e.code === 'WARN_ORDER_RENAMED')).toBe(true);
    await c.stop();
    expect(readFileSync(join(base, 'log'), 'utf8').trim().split('\n')).toEqual(['start', 'end']);
    const again = await Controller.start({ state, orders: [parseOrderFile(text, join(base, 'orders/new-name.toml'))], audit: new JsonlSink(join(state, 'audit.jsonl')) });
    expect(again.lastRun('new-name')).toBe(last);
    expect(again.nextDue('new-name')).toBe(last + 3_600_000);
    await again.stop();
  });
});

describe('what bodies are told', () => {
  it('envAllow passes only the named inherited variables, with Gas City\'s and orderly\'s own', async () => {
    const base = fresh();
    const out = join(base, 'env');
    const spec = parseOrderFile(`[order]\ntrigger = "manual"\nexec = "env > ${out}"\n`, join(base, 'orders/show.toml'));
    const c = await Controller.start({
      state: join(base, 'state'),
      orders: [spec],
      schedule: false,
      env: { PATH: process.env.PATH!, AWS_SECRET_ACCESS_KEY: 'nope', LANG: 'C' },
      envAllow: ['PATH', 'LANG'],
    });
    await c.fire('show');
    await c.stop();
    const env = readFileSync(out, 'utf8');
    expect(env).toContain('LANG=C\n');
    expect(env).toContain('ORDERLY_FIRE_ID=');
    expect(env).toContain(`PACK_DIR=${base}\n`);
    expect(env).not.toContain('AWS_SECRET_ACCESS_KEY');
  });

  it.each(['native', 'node'] as const)('each variable once, the fire\'s own over inherited ones of the same name (%s spawner)', async (spawner) => {
    const base = fresh();
    const out = join(base, 'env');
    const mine = parseOrderFile(`[order]\ntrigger = "manual"\nexec = "env > ${out}-mine"\n[order.env]\nORDERLY_FIRE_ID = "pinned"\n`, join(base, 'orders/mine.toml'));
    const show = parseOrderFile(`[order]\ntrigger = "manual"\nexec = "env > ${out}"\n`, join(base, 'orders/show.toml'));
    // A controller started by another orderly's body inherits that fire's variables.
    const inherited = { PATH: process.env.PATH!, ORDERLY_FENCE: 'stale-fence', ORDERLY_FIRE_ID: 'stale-id', ORDERLY_ORDER: 'stale', constructor: 'x', toString: 'y' };
    const c = await Controller.start({ state: join(base, 'state'), orders: [show, mine], schedule: false, env: inherited, spawner });
    const fired = await c.fire('show');
    await c.fire('mine');
    await c.stop();
    for (const [file, fireId] of [[out, fired.fireId!], [`${out}-mine`, 'pinned']] as const) {
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
      const names = lines.map((l) => l.slice(0, l.indexOf('=')));
      expect(new Set(names).size).toBe(names.length);
      expect(lines).toContain(`ORDERLY_FIRE_ID=${fireId}`);
      expect(lines.find((l) => l.startsWith('ORDERLY_FENCE='))).not.toBe('ORDERLY_FENCE=stale-fence');
      expect(lines).not.toContain('ORDERLY_ORDER=stale');
      expect(lines).toContain('constructor=x');
      expect(lines).toContain('toString=y');
    }
  });

  it('the audit password variable never reaches a body, whatever else it inherits', async () => {
    const base = fresh();
    const out = join(base, 'env');
    const spec = parseOrderFile(`[order]\ntrigger = "manual"\nexec = "env > ${out}"\n`, join(base, 'orders/show.toml'));
    const c = await Controller.start({ state: join(base, 'state'), orders: [spec], schedule: false, env: { PATH: process.env.PATH!, ORDERLY_AUDIT_PASSWORD: 'hunter22', KEEP: 'yes' } });
    await c.fire('show');
    await c.stop();
    const env = readFileSync(out, 'utf8');
    expect(env).toContain('KEEP=yes');
    expect(env).not.toContain('hunter22');
  });

  it('an interval under a second loads with a warning naming file, line and cost', () => {
    const warnings: OrderWarning[] = [];
    parseOrderFile('[order]\ntrigger = "cooldown"\ninterval = "100ms"\nexec = "true"\n', '/p/orders/fast.toml', { warn: (w) => warnings.push(w) });
    expect(warnings.map((w) => w.message)).toEqual(['/p/orders/fast.toml:3: interval: 100 ms is below 1000 ms: every fire spawns a process and syncs the log, so this order alone may cost a core']);
  });

  it('two controllers with different state directories on one audit database: the second is warned, naming the first', async () => {
    const base = fresh();
    const spec = parseOrderFile('[order]\ntrigger = "manual"\nexec = "echo did it"\n', join(base, 'orders/sweep.toml'));
    const audit = join(base, 'audit.jsonl');
    const a = await Controller.start({ state: join(base, 'a'), orders: [spec], audit: new JsonlSink(audit), schedule: false });
    await a.fire('sweep');
    await a.stop();
    const first = readFileSync(join(base, 'a', 'instance'), 'utf8').trim();
    const events: ControllerEvent[] = [];
    const b = await Controller.start({ state: join(base, 'b'), orders: [spec], audit: new JsonlSink(audit), schedule: false, onEvent: (e) => events.push(e) });
    await waitUntil(() => events.some((e) => e.type === 'warning'), 5_000);
    await b.stop();
    const warning = events.find((e): e is Extract<ControllerEvent, { type: 'warning' }> => e.type === 'warning' && e.code === 'WARN_OTHER_CONTROLLER');
    expect(warning?.message).toContain(`another controller (instance ${first} on host `);
    expect(warning?.message).toContain('recorded runs of 1 of these orders');
    // The same state directory again is not another controller.
    const again: ControllerEvent[] = [];
    const a2 = await Controller.start({ state: join(base, 'a'), orders: [spec], audit: new JsonlSink(audit), schedule: false, onEvent: (e) => again.push(e) });
    await sleep(300);
    await a2.stop();
    expect(again.filter((e) => e.type === 'warning')).toEqual([]);
  });
});

