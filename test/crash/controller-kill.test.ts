// Bugs the kill harness found, each reduced to a test that fails against the
// controller as it was. The harness itself is harness.ts / kills.test.ts.
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import {
  readAudit,
  readBodyLogs,
  sleep,
  startController,
  waitForBodies,
  waitUntil,
  writeOrder,
} from './support.js';

const tmp = tempDir('controller-kill');
afterAll(() => tmp.remove());

// Found by the kill harness (kills.test.ts), reduced. Both FAIL against the controller as it is
// and pass once it is fixed:
// - a body's stdout/stderr are pipes read only by the controller that spawned
//   it; after a kill -9 the body's next write raises SIGPIPE and kills it, so
//   "bodies survive the controller" holds only for silent bodies (Gas City
//   scripts print a summary line exactly when they did work);
// - an adopted body's exit status is lost (its parent is gone), so the
//   adopting controller records every adopted run as `interrupted`: a no-op
//   costs an audit write (G4) and did-work/failed are recorded as interrupted.
describe('a body that outlives a killed controller', () => {
  /** Logs as the harness's body does (harness.ts); `$2` is the exit code, `$3 = talk` prints a line on stdout first. */
  const BODY = `#!/bin/sh
log="$1/$ORDERLY_SCOPED_NAME.log"
echo "start $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N)" >> "$log"
sleep 1.5
if [ "$3" = talk ]; then echo "swept 3 stale gates"; fi
echo "end $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N) $2" >> "$log"
exit "$2"
`;

  function setup(name: string, orders: Array<{ name: string; args: string }>) {
    const root = join(tmp.path, name);
    const ordersDir = join(root, 'orders');
    const logDir = join(root, 'logs');
    mkdirSync(logDir, { recursive: true });
    mkdirSync(ordersDir, { recursive: true });
    const body = join(ordersDir, 'talk.sh');
    writeFileSync(body, BODY);
    chmodSync(body, 0o755);
    for (const o of orders) writeOrder(ordersDir, o.name, { exec: `${body} ${logDir} ${o.args}`, intervalMs: 600_000, timeoutMs: 30_000 });
    return { ordersDir, logDir, state: join(root, 'state') };
  }

  /** Starts a controller, waits until every order's body logged `start`, and kills it -9. */
  async function fireAndKill(ordersDir: string, state: string, logDir: string, n: number): Promise<void> {
    const run = startController(ordersDir, state);
    const allStarted = await waitUntil(() => [...readBodyLogs(logDir).values()].length === n, 10_000);
    run.child.kill('SIGKILL');
    await run.exited;
    expect(allStarted, run.stderr()).toBe(true);
  }

  it('is not killed by SIGPIPE when it prints after the controller died', async () => {
    const { ordersDir, logDir, state } = setup('sigpipe', [{ name: 'talker', args: '0 talk' }]);
    await fireAndKill(ordersDir, state, logDir, 1);
    // The body's stdout is a pipe whose only reader was the dead controller:
    // its `echo` gets SIGPIPE and the body dies before its work is finished.
    const open = await waitForBodies(logDir, 5_000);
    expect(open.map((r) => r.scopedName), 'body died after the controller was killed').toEqual([]);
  }, 30_000);

  it('keeps its outcome when adopted: no-op writes no record (G4), did-work is not recorded as interrupted', async () => {
    const { ordersDir, logDir, state } = setup('adopted-outcome', [
      { name: 'quiet-noop', args: '100' },
      { name: 'quiet-work', args: '0' },
    ]);
    await fireAndKill(ordersDir, state, logDir, 2);
    const next = startController(ordersDir, state, ['--grace', '5s']);
    expect(await waitForBodies(logDir, 10_000)).toEqual([]);
    // The adopting controller polls the run lock every 500 ms: give it a few polls to settle the runs.
    await sleep(2_000);
    next.child.kill('SIGTERM');
    await next.exited;
    const adopted = next.events.filter((e) => e.type === 'recovered' && e.action === 'adopted').map((e) => e.scopedName);
    expect(adopted.sort(), 'both bodies were adopted').toEqual(['quiet-noop', 'quiet-work']);
    const runs = new Map([...readBodyLogs(logDir)].map(([k, v]) => [k, v[0]!]));
    expect(runs.get('quiet-noop')?.code).toBe(100);
    expect(runs.get('quiet-work')?.code).toBe(0);
    const audit = readAudit(join(state, 'audit.jsonl'));
    const outcomes = Object.fromEntries(audit.map((r) => [r.scopedName, r.outcome]));
    expect(outcomes).toEqual({ 'quiet-work': 'did-work' });
  }, 30_000);
});

// Run files are reused (a slot per fire, runs/s<n>.*): a slot's exit file
// keeps its last run's status until the next body writes its own. A fire
// killed after its acquire, before its body started, must not be settled by
// that earlier status.
describe('a fire cut before its body started, in a reused run slot', () => {
  it('is recorded interrupted, not with the exit status the slot\'s earlier run left', async () => {
    const root = join(tmp.path, 'reused-slot');
    const ordersDir = join(root, 'orders');
    const state = join(root, 'state');
    // Every fire does work (exit 0); the slot comes back as soon as a run is settled.
    writeOrder(ordersDir, 'work', { exec: 'exit 0', intervalMs: 4_000, timeoutMs: 10_000 });
    const first = startController(ordersDir, state, [], { crashPoint: 'fire:acquired@2' });
    await first.exited;
    const before = readAudit(join(state, 'audit.jsonl'));
    expect(before.map((r) => r.outcome), first.stderr()).toEqual(['did-work']);
    // The slot the cut fire took still holds the first run's status.
    expect(readFileSync(join(state, 'runs', 's0.exit'), 'utf8').trimEnd()).toBe(`0 ${before[0]!.fireId}`);
    const next = startController(ordersDir, state);
    const settled = await waitUntil(() => readAudit(join(state, 'audit.jsonl')).length >= 2, 10_000);
    next.child.kill('SIGTERM');
    await next.exited;
    expect(settled, next.stderr()).toBe(true);
    const after = readAudit(join(state, 'audit.jsonl'));
    expect(after[1]).toMatchObject({ scopedName: 'work', outcome: 'interrupted', exitCode: null });
    expect(after[1]!.fireId).not.toBe(before[0]!.fireId);
  }, 30_000);

  it("is recorded interrupted when the slot's earlier run was a no-op, freed to it before that release was synced", async () => {
    const root = join(tmp.path, 'reused-no-op-slot');
    const ordersDir = join(root, 'orders');
    const state = join(root, 'state');
    // A no-op (relaxed release, no record) frees its slot at once; the next fire takes it and is cut.
    writeOrder(ordersDir, 'quiet', { exec: 'exit 100', intervalMs: 300, timeoutMs: 10_000 });
    const first = startController(ordersDir, state, [], { crashPoint: 'fire:acquired@2' });
    await first.exited;
    expect(readAudit(join(state, 'audit.jsonl')), first.stderr()).toEqual([]);
    // The slot the cut fire took (s0, freed to it at once) holds the no-op's status: it must not settle the cut fire as a no-op (no record at all).
    expect(readFileSync(join(state, 'runs', 's0.exit'), 'utf8')).toMatch(/^100 [0-9a-f-]{36}$/);
    const next = startController(ordersDir, state);
    const settled = await waitUntil(() => readAudit(join(state, 'audit.jsonl')).length >= 1, 10_000);
    next.child.kill('SIGTERM');
    await next.exited;
    expect(settled, next.stderr()).toBe(true);
    const after = readAudit(join(state, 'audit.jsonl'));
    expect(after[0]).toMatchObject({ scopedName: 'quiet', outcome: 'interrupted', exitCode: null });
    // Only the cut fire: every other fire of the order was a no-op.
    expect(after).toHaveLength(1);
  }, 30_000);
});

describe('an adopted body whose runs directory is removed under the controller', () => {
  /** Logs as the harness's body does, and runs 4 s. */
  const BODY =
    '#!/bin/sh\nlog="$1/$ORDERLY_SCOPED_NAME.log"\n' +
    'echo "start $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N)" >> "$log"\nsleep 4\n' +
    'echo "end $ORDERLY_SCOPED_NAME $ORDERLY_FIRE_ID $ORDERLY_FENCE $(date +%s%3N) 0" >> "$log"\n';

  /** Fires a 4 s body, kills its controller -9, lets a new one adopt it, then runs `tamper` on the state. */
  async function adoptThenTamper(name: string, tamper: (runs: string) => void, untamper?: (runs: string) => void, beforeRestart?: (runs: string) => void) {
    const root = join(tmp.path, name);
    const ordersDir = join(root, 'orders');
    const logDir = join(root, 'logs');
    const state = join(root, 'state');
    mkdirSync(logDir, { recursive: true });
    mkdirSync(ordersDir, { recursive: true });
    const body = join(ordersDir, 'slow.sh');
    writeFileSync(body, BODY);
    chmodSync(body, 0o755);
    writeOrder(ordersDir, 'slow', { exec: `${body} ${logDir}`, intervalMs: 1_000, timeoutMs: 30_000 });
    const first = startController(ordersDir, state);
    expect(await waitUntil(() => readBodyLogs(logDir).size === 1, 10_000), first.stderr()).toBe(true);
    first.child.kill('SIGKILL');
    await first.exited;
    beforeRestart?.(join(state, 'runs'));
    const next = startController(ordersDir, state);
    expect(await waitUntil(() => next.events.some((e) => e.type === 'recovered' && e.action === 'adopted'), 10_000), next.stderr()).toBe(true);
    tamper(join(state, 'runs'));
    if (untamper) {
      await waitUntil(() => readBodyLogs(logDir).get('slow')?.[0]?.end !== undefined, 10_000);
      untamper(join(state, 'runs'));
    }
    await waitUntil(() => (readBodyLogs(logDir).get('slow')?.length ?? 0) >= 2, 12_000);
    next.child.kill('SIGTERM');
    await next.exited;
    const runs = readBodyLogs(logDir).get('slow')!;
    expect(runs.length, next.stderr()).toBeGreaterThanOrEqual(2);
    expect(runs[0]!.end, 'the adopted body ran to its end').toBeDefined();
    expect(runs[1]!.start, 'the next run started only after the adopted one ended').toBeGreaterThanOrEqual(runs[0]!.end!);
    expect(next.events.filter((e) => e.type === 'warning').map((e) => e.code)).toContain('WARN_RUN_LOCK_UNREADABLE');
  }

  it('is waited for through its process group: its order does not fire again while it runs (G1)', async () => {
    // A cleanup job: the body still holds its lock, on a file no longer at any path.
    await adoptThenTamper('runs-removed', (runs) => rmSync(runs, { recursive: true, force: true }));
  }, 40_000);

  it('with no process group on record (killed before it was written): waited for through the lock it still holds (G1)', async () => {
    await adoptThenTamper(
      'runs-removed-no-pid',
      (runs) => rmSync(runs, { recursive: true, force: true }),
      undefined,
      (runs) => {
        // What the lock says when the controller died between the spawn and the record of its process group.
        const lock = join(runs, readdirSync(runs).find((n) => n.endsWith('.lock'))!);
        const { fireId } = JSON.parse(readFileSync(lock, 'utf8')) as { fireId: string };
        writeFileSync(lock, JSON.stringify({ fireId }).padEnd(160));
      },
    );
  }, 40_000);

  it('replaced by a file: the lock cannot be read, the controller does not crash, and waits for the group just the same', async () => {
    await adoptThenTamper(
      'runs-replaced',
      (runs) => {
        rmSync(runs, { recursive: true, force: true });
        writeFileSync(runs, 'not a directory');
      },
      (runs) => rmSync(runs),
    );
  }, 40_000);
});
