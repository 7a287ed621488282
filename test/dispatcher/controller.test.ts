import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, defineOrder, JsonlSink, loadCity, OrderlyError, parseOrderFile, type ControllerEvent, type OrderSpec } from '../../src/index.js';
import { SimDisk } from '../../src/testing.js';
import { jsonlRecords as auditRecords, repoRoot, runChild, tempDir } from '../helpers.js';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((f) => f()));

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanups.push(d.remove);
  return d.path;
}

function order(name: string, body: string, extra = ''): OrderSpec {
  return parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n${extra}`, `/virtual/${name}.toml`);
}

async function start(state: string, orders: OrderSpec[], more: Partial<Parameters<typeof Controller.start>[0]> = {}) {
  const events: ControllerEvent[] = [];
  const audit = join(state, 'audit.jsonl');
  const c = await Controller.start({ state, orders, audit: new JsonlSink(audit), schedule: false, killGraceMs: 500, onEvent: (e) => events.push(e), ...more });
  return { c, events, audit };
}

function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (cond()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - t0 > timeoutMs) {
        clearInterval(poll);
        reject(new Error('timed out waiting'));
      }
    }, 20);
  });
}

describe('Controller', () => {
  it('applies the exit-code contract row by row and audits exactly the runs that did work, failed or timed out', async () => {
    const state = dir('contract');
    const rows: Array<[string, string, string, string]> = [
      ['exit0', 'exit 0', '', 'did-work'],
      ['exit100', 'exit 100', '', 'no-op'],
      ['custom-noop', 'exit 3', 'no_op_exit_codes = [3]', 'no-op'],
      ['custom-100', 'exit 100', 'no_op_exit_codes = [3]', 'failed'],
      ['exit1', 'exit 1', '', 'failed'],
      ['exit2', 'exit 2', '', 'failed'],
      ['sigkill', 'kill -KILL $$', '', 'failed'],
      ['timeout', 'sleep 10', 'timeout = "300ms"', 'timeout'],
      ['status-noop', 'echo no-op > "$ORDERLY_STATUS_FILE"; exit 0', '', 'no-op'],
      ['status-didwork', 'echo did-work > "$ORDERLY_STATUS_FILE"; exit 100', '', 'did-work'],
      ['status-cannot-hide-failure', 'echo no-op > "$ORDERLY_STATUS_FILE"; exit 1', '', 'failed'],
    ];
    const { c, audit } = await start(
      state,
      rows.map(([name, body, extra]) => order(name, body, extra)),
    );
    for (const [name, , , want] of rows) {
      const r = await c.fire(name);
      expect(r.outcome, name).toBe(want);
    }
    await c.stop();
    const records = auditRecords(audit);
    const audited = rows.filter(([, , , want]) => want !== 'no-op').map(([name]) => name);
    expect(records.map((r) => r.scopedName).sort()).toEqual(audited.sort());
    expect(records.find((r) => r.scopedName === 'sigkill')!.signal).toBe('SIGKILL');
    expect(records.find((r) => r.scopedName === 'exit2')!.exitCode).toBe(2);
    // Each record is written already closed, once.
    expect(new Set(records.map((r) => r.fireId)).size).toBe(records.length);
  });

  it('never overlaps a body that outlives its cooldown, and fires again as soon as it ends', async () => {
    const state = dir('overlap');
    const log = join(state, 'body.log');
    const spec = parseOrderFile(
      `[order]\ntrigger = "cooldown"\ninterval = "200ms"\nexec = "echo start $(date +%s%3N) >> ${log}; sleep 0.7; echo end $(date +%s%3N) >> ${log}; exit 100"\n`,
      '/virtual/slow.toml',
    );
    const { c } = await start(state, [spec], { schedule: true });
    await new Promise((r) => setTimeout(r, 2600));
    await c.stop(5_000);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
    const spans: Array<[number, number]> = [];
    for (let i = 0; i + 1 < lines.length; i += 2) {
      expect(lines[i]![0]).toBe('start');
      expect(lines[i + 1]![0]).toBe('end');
      spans.push([Number(lines[i]![1]), Number(lines[i + 1]![1])]);
    }
    expect(spans.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  it('a manual fire advances the cooldown', async () => {
    const state = dir('manual');
    const spec = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "10s"\nexec = "exit 100"\n`, '/virtual/sweep.toml');
    const { c, events } = await start(state, [spec], { schedule: true });
    await waitFor(() => events.some((e) => e.type === 'completed'));
    const firstDue = c.nextDue('sweep')!;
    const firstRun = c.lastRun('sweep')!;
    expect(firstDue).toBeGreaterThanOrEqual(firstRun + 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((await c.fire('sweep')).outcome).toBe('no-op');
    expect(c.lastRun('sweep')!).toBeGreaterThan(firstRun);
    expect(c.nextDue('sweep')!).toBeGreaterThanOrEqual(c.lastRun('sweep')! + 10_000);
    expect(c.nextDue('sweep')!).toBeGreaterThan(firstDue);
    await c.stop();
  });

  it('a reload keeps the run in flight and lastRun, and does not start a duplicate', async () => {
    const state = dir('reload');
    const log = join(state, 'body.log');
    const body = `echo start >> ${log}; sleep 1; echo end >> ${log}; exit 0`;
    const spec = parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = ${JSON.stringify(body)}\n`, '/virtual/long.toml');
    const { c, events } = await start(state, [spec], { schedule: true });
    await waitFor(() => events.some((e) => e.type === 'fired'));
    const last = c.lastRun('long');
    c.reload([parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "2h"\nexec = ${JSON.stringify(body)}\n`, '/virtual/long.toml')]);
    expect(c.lastRun('long')).toBe(last);
    const manual = await c.fire('long');
    expect(manual.skipped).toBe('held');
    await waitFor(() => events.some((e) => e.type === 'completed'));
    expect(c.nextDue('long')).toBe(last! + 2 * 3600_000);
    await c.stop();
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['start', 'end']);
  });

  it('loads the example city unchanged and runs its Gas City scripts with PACK_DIR', async () => {
    const city = await loadCity(join(repoRoot, 'examples', 'city'));
    expect(city.kind).toBe('city');
    expect(city.rigs).toEqual(['focuster', 'intervaltree', 'gastown']);
    expect(city.warnings).toEqual([]);
    expect(city.orders.filter((o) => o.scope === 'city').map((o) => o.name).sort()).toEqual(
      ['beads-health', 'dolt-health', 'gate-sweep', 'mol-dog-jsonl', 'mol-dog-reaper', 'order-tracking-sweep'],
    );
    const state = dir('city');
    const { c } = await start(state, city.orders, { rigs: city.rigs, env: { ...process.env, ORDERLY_DEMO_WORK_PERCENT: '100' } });
    expect(c.orders).toHaveLength(6 + 5 * 3);
    expect((await c.fire('gate-sweep:rig:gastown')).outcome).toBe('did-work');
    const { c: c2 } = { c };
    await c2.stop();
    const { c: again, audit } = await start(state, city.orders, { rigs: city.rigs, env: { ...process.env, ORDERLY_DEMO_WORK_PERCENT: '0' } });
    expect((await again.fire('orphan-sweep:rig:focuster')).outcome).toBe('no-op');
    await again.stop();
    const records = auditRecords(audit);
    expect(records.map((r) => r.scopedName)).toEqual(['gate-sweep:rig:gastown']);
    expect(records[0]!.outputTail).toContain('gate-sweep on gastown: closed');
  });

  it('a missing cwd, a missing shell command or a failing code order is a failed run, never a crash', async () => {
    const state = dir('badrun');
    const orders = [
      order('cmd-missing', '/nonexistent/command'),
      defineOrder({ name: 'throws', trigger: 'manual', run: async () => { throw new Error('boom'); } }),
      defineOrder({ name: 'code-ok', trigger: 'manual', run: async () => ({ didWork: true }) }),
    ];
    const { c, audit } = await start(state, orders);
    const missing = await c.fire('cmd-missing');
    expect(missing.outcome).toBe('failed');
    expect((await c.fire('throws')).outcome).toBe('failed');
    expect((await c.fire('code-ok')).outcome).toBe('did-work');
    await c.stop();
    const { c: noCwd } = await start(dir('badcwd'), [order('x', 'exit 0')], { cwd: '/nonexistent/dir' });
    const r = await noCwd.fire('x');
    expect(r.outcome).toBe('failed');
    await noCwd.stop();
    const reasons = auditRecords(audit).map((x) => x.labels.reason ?? '');
    expect(reasons.some((x) => x.includes('exit code 127'))).toBe(true);
    expect(reasons).toContain('boom');
  });

  it('formula orders load and are reported as needing a formula runner, never run', async () => {
    const state = dir('formula');
    const spec = parseOrderFile(`[order]\nformula = "mol-digest"\npool = "dog"\ntrigger = "cooldown"\ninterval = "1s"\n`, '/virtual/digest.toml');
    const { c, events } = await start(state, [spec], { schedule: true });
    const r = await c.fire('digest');
    expect(r.skipped).toBe('no-formula-runner');
    expect(events.filter((e) => e.type === 'fired')).toEqual([]);
    await c.stop();
  });

  it('adopts a body still running after the controller was killed, and records how it really ended', async () => {
    const state = dir('adopt');
    const orders = join(state, 'orders');
    mkdirSync(orders);
    const marker = join(state, 'body.pid');
    const script = join(state, 'body.sh');
    writeFileSync(script, `#!/bin/sh\necho $$ > ${marker}\nsleep 1.5\nexit 0\n`);
    chmodSync(script, 0o755);
    writeFileSync(join(orders, 'long.toml'), `[order]\ntrigger = "manual"\nexec = "${script}"\n`);
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'fire', 'long', '--state', state, '--orders', orders], { stdio: 'ignore' });
    await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8').trim() !== '');
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const { c, events, audit } = await start(state, (await loadCity(orders)).orders);
    expect(events.some((e) => e.type === 'recovered' && e.action === 'adopted')).toBe(true);
    expect((await c.fire('long')).skipped).toBe('held');
    await waitFor(() => events.some((e) => e.type === 'completed'), 10_000);
    expect((await c.fire('long')).outcome).toBe('did-work');
    await c.stop();
    const records = auditRecords(audit);
    // The adopted run's real exit status (0), not "interrupted": the wrapper recorded it.
    expect(records.map((r) => [r.outcome, r.labels.recovered ?? ''])).toEqual([['did-work', 'true'], ['did-work', '']]);
  });

  it('records interrupted for a run whose controller and body both died', async () => {
    const state = dir('dead');
    const orders = join(state, 'orders');
    mkdirSync(orders);
    const marker = join(state, 'body.pid');
    writeFileSync(join(orders, 'victim.toml'), `[order]\ntrigger = "manual"\nexec = "echo $$ > ${marker}; sleep 30"\n`);
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'fire', 'victim', '--state', state, '--orders', orders], { stdio: 'ignore' });
    await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8').trim() !== '');
    child.kill('SIGKILL');
    // The body runs under a wrapper that leads its process group: kill the whole group.
    const pgid = Number(readFileSync(`/proc/${readFileSync(marker, 'utf8').trim()}/stat`, 'utf8').split(') ')[1]!.split(' ')[2]);
    process.kill(-pgid, 'SIGKILL');
    await new Promise((r) => child.on('close', r));
    const { c, events, audit } = await start(state, (await loadCity(orders)).orders);
    expect(events.some((e) => e.type === 'recovered' && e.action === 'interrupted')).toBe(true);
    await c.stop();
    expect(auditRecords(audit).map((r) => [r.scopedName, r.outcome])).toEqual([['victim', 'interrupted']]);
  });
});

describe('Controller on a full disk', () => {
  const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

  it.skipIf(!canMount)('fails closed: no order fires, each skipped fire says store-poisoned, and a restart with space recovers', async () => {
    const mnt = dir('fulldisk');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    if (m.status !== 0) {
      console.warn(`SKIPPED full-disk test: mount failed: ${m.stderr}`);
      return;
    }
    cleanups.unshift(() => spawnSync('umount', ['-l', mnt]));
    const state = join(mnt, 'state');
    const orders = Array.from({ length: 4 }, (_, i) => order(`o${i}`, 'exit 100'));
    const { c, events } = await start(state, orders, { store: { segmentBytes: 4096 }, audit: new JsonlSink(join(mnt, 'audit.jsonl')) });
    // Fill what is left of the filesystem.
    spawnSync('sh', ['-c', `dd if=/dev/zero of=${join(mnt, 'filler')} bs=4k 2>/dev/null; true`]);
    const results = [];
    for (let i = 0; i < 40; i++) results.push(await c.fire(`o${i % 4}`));
    const skipped = results.filter((r) => r.skipped === 'store-poisoned');
    expect(skipped.length).toBeGreaterThan(0);
    // Once poisoned, nothing fires again.
    const firstSkip = results.findIndex((r) => r.skipped === 'store-poisoned');
    expect(results.slice(firstSkip).every((r) => r.skipped === 'store-poisoned')).toBe(true);
    expect(events.filter((e) => e.type === 'skipped' && e.reason === 'store-poisoned').length).toBe(results.length - firstSkip);
    expect(c.stats().poisoned).toBe(true);
    await c.stop();
    spawnSync('rm', ['-f', join(mnt, 'filler')]);
    const { c: again } = await start(state, orders, { store: { segmentBytes: 4096 }, audit: new JsonlSink(join(mnt, 'audit.jsonl')) });
    expect((await again.fire('o1')).outcome).toBe('no-op');
    await again.stop();
  });
});

describe('Controller with an unreachable audit sink', () => {
  it('stops firing at the backlog bound, drops nothing, and delivers everything once a sink answers', async () => {
    const state = dir('backlog');
    const orders = [defineOrder({ name: 'work', trigger: 'manual', run: async () => ({ didWork: true }) })];
    const down = new JsonlSink('/nonexistent/dir/audit.jsonl');
    const c = await Controller.start({ state, orders, audit: down, schedule: false, maxAuditBacklog: 3 });
    for (let i = 0; i < 3; i++) expect((await c.fire('work')).outcome).toBe('did-work');
    const r = await c.fire('work');
    expect(r.skipped).toBe('audit-backlog-full');
    expect(r.detail).toContain('/nonexistent/dir/audit.jsonl');
    expect(c.stats().audit.backlog).toBe(3);
    await c.stop(1_000);
    const audit = join(state, 'audit.jsonl');
    const again = await Controller.start({ state, orders, audit: new JsonlSink(audit), schedule: false });
    await waitFor(() => auditRecords(audit).length === 3);
    expect((await again.fire('work')).outcome).toBe('did-work');
    await again.stop();
    expect(new Set(auditRecords(audit).map((x) => x.fireId)).size).toBe(4);
  });
});

describe('Controller after the audit backlog drains', () => {
  it('keeps the cooldown: the run after a backlog skip is next due at lastRun + interval', async () => {
    const state = dir('backlog-cadence');
    const real = new JsonlSink(join(state, 'audit.jsonl'));
    let down = true;
    // The real sink behind a switch: the database "goes down", then returns.
    const sink = { url: real.url, open: () => real.open(), ping: () => real.ping(), close: () => real.close(), write: (r: Parameters<typeof real.write>[0]) => (down ? Promise.reject(new Error('connection refused')) : real.write(r)) };
    const spec = defineOrder({ name: 'work', trigger: 'cooldown', interval: '1h', run: async () => ({ didWork: true }) });
    const { c, events } = await start(state, [spec], { schedule: true, audit: sink, maxAuditBacklog: 1 });
    await waitFor(() => events.some((e) => e.type === 'completed'));
    expect((await c.fire('work')).skipped).toBe('audit-backlog-full');
    down = false;
    await waitFor(() => c.stats().audit.backlog === 0, 15_000);
    expect((await c.fire('work')).outcome).toBe('did-work');
    expect(c.nextDue('work')).toBe(c.lastRun('work')! + 3600_000);
    await c.stop();
  });
});

describe('Controller.start that fails', () => {
  // In this process a second open would join the store still held (one per
  // directory per process); only another process sees whether the lock was let go.
  async function openFromAnotherProcess(state: string): Promise<string> {
    const child = await runChild(`
      const { LeaseStore } = await import(__ORDERLY__);
      try {
        const store = await LeaseStore.open(${JSON.stringify(join(state, 'leases'))});
        await store.close();
        console.log('OPENED');
      } catch (err) {
        console.log(err.code, err.message);
      }
    `);
    return child.stdout.trim();
  }

  it('releases the state directory after an order error, so another process can open it', async () => {
    const state = dir('failed-start');
    await expect(Controller.start({ state, orders: [order('work', 'exit 0')], rigs: ['east', 'east'], schedule: false })).rejects.toThrow(/rig "east" is listed twice/);
    expect(await openFromAnotherProcess(state)).toBe('OPENED');
  });

  it('releases the state directory after an audit configuration error, and closes the sink', async () => {
    const state = dir('failed-sink');
    const real = new JsonlSink(join(state, 'audit.jsonl'));
    let closed = 0;
    const sink = {
      url: real.url,
      open: () => Promise.reject(new OrderlyError('ERR_AUDIT_SCHEMA', 'orderly_runs has no column fence')),
      ping: () => real.ping(),
      close: async () => void closed++,
      write: (r: Parameters<typeof real.write>[0]) => real.write(r),
    };
    await expect(Controller.start({ state, orders: [order('work', 'exit 0')], audit: sink, schedule: false })).rejects.toMatchObject({ code: 'ERR_AUDIT_SCHEMA' });
    expect(closed).toBe(1);
    expect(await openFromAnotherProcess(state)).toBe('OPENED');
  });
});

describe('Controller whose lease log fails during a run', () => {
  it('reports that run as not audited, because its outcome never reached the outbox', async () => {
    const disk = new SimDisk();
    const state = dir('log-fails');
    // The body cuts the power under the controller: the COMPLETE write after it fails.
    const spec = defineOrder({ name: 'work', trigger: 'manual', run: async () => (disk.powerLoss(1), { didWork: true }) });
    const { c, events } = await start(state, [spec], { store: { storage: disk } });
    expect((await c.fire('work')).outcome).toBe('did-work');
    expect(events.find((e) => e.type === 'completed')).toMatchObject({ scopedName: 'work', audited: false });
    expect(events.some((e) => e.type === 'error' && e.message.includes('could not record the outcome'))).toBe(true);
    expect(c.stats().poisoned).toBe(true);
    await c.stop(0).catch(() => undefined);
  });
});

describe('Controller cold start', () => {
  it('fires every one of 600 orders due at once exactly once, a bounded number starting at a time', async () => {
    const state = dir('cold-start');
    let running = 0;
    let peak = 0;
    const orders = Array.from({ length: 600 }, (_, i) =>
      defineOrder({
        name: `o${i}`,
        trigger: 'cooldown',
        interval: '1h',
        run: async () => {
          peak = Math.max(peak, ++running);
          // Long enough that the first bodies still run when the last start (a loaded CI machine is slow to get there).
          await new Promise((r) => setTimeout(r, 2_000));
          running--;
          return { didWork: false };
        },
      }),
    );
    const fired = new Map<string, number>();
    const c = await Controller.start({ state, orders, audit: new JsonlSink(join(state, 'audit.jsonl')), onEvent: (e) => void (e.type === 'fired' && fired.set(e.scopedName, (fired.get(e.scopedName) ?? 0) + 1)) });
    try {
      await waitFor(() => fired.size === 600 && running === 0, 20_000);
      expect([...fired.values()].every((n) => n === 1)).toBe(true);
      // Bodies that outlive their start are not held back: more run at once than start at once.
      expect(peak).toBeGreaterThan(128);
      expect(c.stats().fires).toBe(600);
    } finally {
      await c.stop(2_000);
    }
  }, 30_000);
});

describe('Controller in a cluster that loses a shard', () => {
  it('kills a body whose shard went while it waited for a spawning thread, as soon as it starts', async () => {
    const state = dir('kill-on-start');
    const marks = dir('kill-on-start-marks');
    let owned = true;
    const gate = { memberId: 'm1', ownership: () => (owned ? { shard: 0, epoch: 1 } : undefined), takenOverAt: () => undefined };
    // A burst: one group commit grants them all, and their bodies queue for the four spawning threads.
    const orders = Array.from({ length: 120 }, (_, i) => order(`o${i}`, `sleep 1; touch ${JSON.stringify(join(marks, `o${i}`))}`));
    let fired = 0;
    const { c } = await start(state, orders, {
      cluster: gate,
      onEvent: (e) => {
        // Lost in the same turn as these fires' spawn requests: none of their starts has been heard yet.
        if (e.type === 'fired' && ++fired === 60) {
          owned = false;
          c.ownershipChanged(true);
        }
      },
    });
    try {
      const results = await Promise.all(orders.map((o) => c.fire(o.name)));
      const ran = results.filter((r) => r.outcome !== undefined);
      // The fires up to the loss ran (and were killed); the rest saw the loss and never started a body.
      expect(ran.length).toBe(60);
      expect(results.filter((r) => r.skipped === 'not-owner').length).toBe(orders.length - ran.length);
      for (const r of ran) expect(r.outcome, r.scopedName).toBe('failed');
      // A body that escaped the kill would make its mark after its 1 s sleep.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(readdirSync(marks)).toEqual([]);
    } finally {
      await c.stop(2_000);
    }
  }, 30_000);
});
