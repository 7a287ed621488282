import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, JsonlSink, parseOrderFile, type ControllerEvent, type OrderSpec } from '../../src/index.js';
import { jsonlRecords as auditRecords, tempDir } from '../helpers.js';

// Cooldown exec orders on a schedule go through the fire lane (crates/lane):
// armed ahead by JS, fired natively. These tests hold it to what the JS fire
// path does, and to waking JS less than once per fire.

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((f) => f()));

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanups.push(d.remove);
  return d.path;
}

function order(name: string, body: string, extra = '', interval = '1h'): OrderSpec {
  return parseOrderFile(`[order]\ntrigger = "cooldown"\ninterval = "${interval}"\nexec = ${JSON.stringify(body)}\n${extra}`, `/virtual/${name}.toml`);
}

async function start(state: string, orders: OrderSpec[], more: Partial<Parameters<typeof Controller.start>[0]> = {}) {
  const events: ControllerEvent[] = [];
  const audit = join(state, 'audit.jsonl');
  const c = await Controller.start({ state, orders, audit: new JsonlSink(audit), killGraceMs: 500, onEvent: (e) => events.push(e), ...more });
  return { c, events, audit };
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Voluntary context switches of this process's JS thread: how often it went to sleep and was woken. */
function jsThreadWakes(): number {
  const status = readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8');
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)![1]);
}

/** Spins without yielding: the lane's reports cannot reach JS until this returns. */
function spin(ms: number, until: () => boolean): void {
  const deadline = Date.now() + ms;
  while (!until() && Date.now() < deadline);
}

const outcomes = (events: ControllerEvent[]) => new Map(events.flatMap((e) => (e.type === 'completed' ? [[e.scopedName, e.outcome] as const] : [])));

describe('the fire lane', () => {
  it('applies the exit-code contract as the JS fire path does, and audits exactly the runs that did work, failed or timed out', async () => {
    const rows: Array<[string, string, string, string]> = [
      ['exit0', 'exit 0', '', 'did-work'],
      ['exit100', 'exit 100', '', 'no-op'],
      ['custom-noop', 'exit 3', 'no_op_exit_codes = [3]', 'no-op'],
      ['custom-100', 'exit 100', 'no_op_exit_codes = [3]', 'failed'],
      ['exit2', 'exit 2', '', 'failed'],
      ['sigkill', 'kill -KILL $$', '', 'failed'],
      ['timeout', 'sleep 10', 'timeout = "300ms"', 'timeout'],
      ['timeout-ignores-term', "trap '' TERM; sleep 10", 'timeout = "300ms"', 'timeout'],
      ['status-noop', 'echo no-op > "$ORDERLY_STATUS_FILE"; exit 0', '', 'no-op'],
      ['status-didwork', 'echo did-work > "$ORDERLY_STATUS_FILE"; exit 100', '', 'did-work'],
      ['status-cannot-hide-failure', 'echo no-op > "$ORDERLY_STATUS_FILE"; exit 1', '', 'failed'],
      ['silent', 'exit 0', 'no_op_when_silent = true', 'no-op'],
      ['silent-but-spoke', 'echo hi; exit 0', 'no_op_when_silent = true', 'did-work'],
      ['leftover', 'sleep 30 & exit 100', '', 'no-op'],
    ];
    const specs = rows.map(([name, body, extra]) => order(name, body, extra));
    const byPath: Record<string, string> = {};
    for (const fireLane of [true, false]) {
      const state = dir(`lane-contract-${fireLane}`);
      const { c, events, audit } = await start(state, specs, { fireLane });
      await waitFor(() => outcomes(events).size === rows.length);
      await c.stop();
      const got = outcomes(events);
      for (const [name, , , want] of rows) expect(got.get(name), `${name} (fireLane ${fireLane})`).toBe(want);
      const records = auditRecords(audit);
      expect(records.map((r) => r.scopedName).sort()).toEqual(rows.filter(([, , , want]) => want !== 'no-op').map(([name]) => name).sort());
      expect(records.find((r) => r.scopedName === 'sigkill')!.signal).toBe('SIGKILL');
      expect(new Set(records.map((r) => r.fireId)).size).toBe(records.length);
      byPath[String(fireLane)] = JSON.stringify(records.map((r) => [r.scopedName, r.outcome, r.exitCode, r.signal, r.outputTail, r.labels.reason ?? null]).sort());
    }
    // Outcomes, exit codes, signals, output and reasons alike, whichever path fired them.
    expect(byPath.true).toBe(byPath.false);
  });

  it('fires no-ops without waking the JS thread for each one', async () => {
    const specs = Array.from({ length: 40 }, (_, i) => order(`tick${i}`, 'exit 100', '', `${1000 + 25 * i}ms`));
    const fired = async (fireLane: boolean) => {
      const { c } = await start(dir(`lane-wakes-${fireLane}`), specs, { fireLane });
      await new Promise((r) => setTimeout(r, 1500));
      const before = { fires: c.stats().fires, wakes: jsThreadWakes() };
      // JS counts the lane's no-ops when it takes them, once a second: a window of several batches.
      await new Promise((r) => setTimeout(r, 5000));
      const fires = c.stats().fires - before.fires;
      const wakes = jsThreadWakes() - before.wakes;
      await c.stop();
      return { fires, wakes };
    };
    const lane = await fired(true);
    const js = await fired(false);
    expect(lane.fires).toBeGreaterThan(90);
    expect(js.fires).toBeGreaterThan(90);
    // The JS path wakes at least once per fire (its timer); the lane takes fires in batches.
    expect(js.wakes).toBeGreaterThanOrEqual(js.fires);
    expect(lane.wakes, JSON.stringify({ lane, js })).toBeLessThan(lane.fires / 2);
  });

  it('tells a body the lane could not start with the errno and reason, as the JS fire path does', async () => {
    const state = dir('lane-no-cwd');
    const cwd = join(state, 'gone');
    const { c, events, audit } = await start(state, [order('nocwd', 'exit 0')], { cwd });
    await waitFor(() => events.some((e) => e.type === 'completed'));
    await c.stop();
    expect(outcomes(events).get('nocwd')).toBe('failed');
    const [record] = auditRecords(audit);
    expect(record).toMatchObject({ scopedName: 'nocwd', outcome: 'failed', exitCode: null });
    expect(record!.labels.reason).toBe(`cwd does not exist: ${cwd}`);
  });

  it('lets an idle controller\'s JS thread sleep: no timer polls while nothing is due', async () => {
    const specs = Array.from({ length: 5 }, (_, i) => order(`idle${i}`, i % 2 ? 'exit 100' : 'exit 0'));
    const { c, events } = await start(dir('lane-idle'), specs);
    await waitFor(() => events.filter((e) => e.type === 'completed').length === specs.length);
    // The fires' own aftermath (audit batch, sweep of settled runs' files, the first look for other controllers) is over within seconds.
    await new Promise((r) => setTimeout(r, 2000));
    const window = async () => {
      const before = jsThreadWakes();
      await new Promise((r) => setTimeout(r, 3000));
      return jsThreadWakes() - before;
    };
    // Two windows: a one-off late under load spoils one of them, a poll both.
    const wakes = [await window(), await window()];
    await c.stop();
    // The test's own timer is one wake; a poll once a second would be three more.
    expect(Math.min(...wakes), JSON.stringify(wakes)).toBeLessThanOrEqual(2);
  });

  it('gives a body the fence and fire time of the lease the lane took, and tells the fire when it happened', async () => {
    const state = dir('lane-env');
    const out = join(state, 'env.txt');
    const { c, events } = await start(state, [order('env', `echo "$ORDERLY_FENCE $ORDERLY_FIRED_AT $ORDERLY_FIRE_ID" > ${out}; exit 0`)]);
    await waitFor(() => events.some((e) => e.type === 'completed'));
    const lastRun = c.lastRun('env');
    await c.stop();
    const fired = events.find((e) => e.type === 'fired')!;
    if (fired.type !== 'fired') throw new Error('no fired event');
    expect(readFileSync(out, 'utf8').trim()).toBe(`${fired.fence} ${lastRun} ${fired.fireId}`);
    expect(fired.at).toBe(Number(readFileSync(out, 'utf8').split(' ')[1]));
    expect(fired.due).toBeDefined();
  });

  it('tells a long run as fired while it runs, and a manual fire then finds it held', async () => {
    const state = dir('lane-long');
    const { c, events } = await start(state, [order('long', 'sleep 1.5; exit 100')]);
    await waitFor(() => events.some((e) => e.type === 'fired'));
    expect(events.some((e) => e.type === 'completed')).toBe(false);
    expect((await c.fire('long')).skipped).toBe('held');
    await waitFor(() => events.some((e) => e.type === 'completed'));
    await c.stop();
  });

  it('takes an armed fire back for a manual fire, a reload that removes the order, and a stop', async () => {
    const state = dir('lane-disarm');
    const marks = join(state, 'marks');
    const body = (name: string) => `echo ${name} >> ${marks}; exit 100`;
    // Every 300 ms, each fire armed by the lane when the one before settles: armed, not running, nearly all the time.
    const specs = [order('manual', body('manual'), '', '300ms'), order('removed', body('removed'), '', '300ms'), order('stopped', body('stopped'), '', '300ms')];
    const { c, events } = await start(state, specs);
    await waitFor(() => events.filter((e) => e.type === 'completed').length >= 6);
    const count = (name: string) => (existsSync(marks) ? readFileSync(marks, 'utf8').split('\n').filter((l) => l === name).length : 0);
    let r = await c.fire('manual');
    // Caught in its 1-2 ms of running: held, as a fire of any path would be.
    if (r.skipped === 'held') r = await c.fire('manual');
    expect(r.outcome).toBe('no-op');
    expect(events.filter((e) => e.type === 'fired' && e.scopedName === 'manual').map((e) => (e.type === 'fired' ? e.trigger : ''))).toContain('manual');
    c.reload([specs[0]!, specs[2]!]);
    // A fire of the removed order caught running ends with its run; none follows it.
    await new Promise((r) => setTimeout(r, 100));
    const removedBefore = count('removed');
    const keptBefore = count('stopped');
    await new Promise((r) => setTimeout(r, 700));
    expect(count('removed')).toBe(removedBefore);
    expect(count('stopped'), 'the orders kept go on firing').toBeGreaterThan(keptBefore);
    await c.stop();
    const stoppedAt = { stopped: count('stopped'), manual: count('manual') };
    await new Promise((r) => setTimeout(r, 700));
    expect(count('stopped')).toBe(stoppedAt.stopped);
    expect(count('manual')).toBe(stoppedAt.manual);
    expect(events.filter((e) => e.type === 'completed').length, 'every fire the lane made is told').toBe(count('manual') + count('removed') + count('stopped'));
  });

  it('shows a fire as running from the moment the lane takes its lease until JS has finished it', async () => {
    const { c, events } = await start(dir('lane-taken'), [order('quick', 'echo swept', '', '2s')]);
    await waitFor(() => events.some((e) => e.type === 'completed'));
    const tick = () => c.feed().find((e) => e.scopedName === 'quick')!;
    const before = tick().lastFiredAt!;
    // Armed 250-500 ms ahead: by 150 ms before its due time the next fire is in the lane.
    await waitFor(() => Date.now() > tick().nextDueAt! - 150);
    spin(5000, () => tick().lastFiredAt !== before);
    expect(tick().lastFiredAt, 'the lane took the next lease').toBeGreaterThan(before);
    expect([tick().status, c.stats().running]).toEqual(['active', 1]);
    // The body has long exited; its lease stays held until JS writes its audit record.
    spin(300, () => false);
    expect([tick().status, c.stats().running]).toEqual(['active', 1]);
    await waitFor(() => events.filter((e) => e.type === 'completed').length === 2);
    expect([tick().status, tick().lastOutcome, c.stats().running]).toEqual(['did-work', 'did-work', 0]);
    await c.stop();
  });

  it('shows a no-op the lane settled as a no-op at its fire time, before JS hears of it', async () => {
    const { c, events } = await start(dir('lane-unheard'), [order('flip', 'test -e flag && exit 0; touch flag; exit 100', '', '2s')], { cwd: dir('lane-unheard-cwd') });
    // Its first fire makes the flag and is a no-op; the second finds it and does work.
    await waitFor(() => events.some((e) => e.type === 'completed'));
    const tick = () => c.feed().find((e) => e.scopedName === 'flip')!;
    expect(tick().lastOutcome).toBe('no-op');
    const before = tick().lastFiredAt!;
    await waitFor(() => Date.now() > tick().nextDueAt! - 150);
    spin(5000, () => tick().lastFiredAt !== before);
    spin(300, () => false);
    // The second fire did work: held for JS, shown running.
    expect(tick().status).toBe('active');
    await waitFor(() => events.filter((e) => e.type === 'completed').length === 2);
    expect(tick().lastOutcome).toBe('did-work');
    c.reload([order('flip', 'exit 100', '', '2s')]);
    await waitFor(() => events.filter((e) => e.type === 'completed').length === 3, 6000);
    const third = tick().lastFiredAt!;
    await waitFor(() => Date.now() > tick().nextDueAt! - 150);
    spin(5000, () => tick().lastFiredAt !== third);
    spin(300, () => false);
    // Released in the lane, unheard: a no-op at its new fire time, not the last did-work, not running.
    expect([tick().status, tick().lastOutcome, tick().lastFireId, c.stats().running]).toEqual(['no-op', 'no-op', undefined, 0]);
    await c.stop();
  });

  it('shows an armed fire in the feed as the next fire, not as a run in progress', async () => {
    const { c, events } = await start(dir('lane-feed'), [order('tick', 'exit 100', '', '600ms')]);
    await waitFor(() => events.some((e) => e.type === 'completed'));
    // Every fire is armed 250-500 ms ahead of its due time: a third or more of each 600 ms cycle.
    let active = 0;
    let samples = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 2000) {
      // The lane may take the lease between two reads: the feed agrees with stats read on one side of it.
      const runningBefore = c.stats().running;
      const entry = c.feed().find((e) => e.scopedName === 'tick')!;
      const runningAfter = c.stats().running;
      samples++;
      if (entry.status === 'active') active++;
      expect([runningBefore, runningAfter], 'stats count runs as the feed does').toContain(entry.status === 'active' ? 1 : 0);
      expect(entry.nextDueAt).toBeDefined();
      await new Promise((r) => setTimeout(r, 10));
    }
    const fires = events.filter((e) => e.type === 'completed').length;
    await c.stop();
    expect(fires).toBeGreaterThanOrEqual(3);
    expect(active / samples, `${active} of ${samples} samples active`).toBeLessThan(0.1);
  });
});
