// kill -9 the controller at random moments while bodies run, restart it on the
// same state, and check G1 (single flight), G2 (cadence), G8 (fences) and G3/G4
// (audit) from the bodies' own logs, which orderly neither writes nor repairs.
//
// Knobs: CRASH_KILLS (default 50), CRASH_GAP_TOLERANCE_MS (default 300),
// ORDERLY_KEEP_TMP=1 keeps the orders, logs and state for a post-mortem.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller, loadCity } from '../../src/index.js';
import { tempDir } from '../helpers.js';
import {
  type BodyRun,
  type ControllerRun,
  type CrashOrder,
  readAudit,
  readBodyLogs,
  sleep,
  startController,
  uniform,
  waitForBodies,
  waitUntil,
  writeCrashOrders,
  writeOrder,
} from './support.js';

const KILLS = Math.max(1, Number(process.env.CRASH_KILLS ?? 50) || 50);
/**
 * I2 compares the times the bodies logged their first line, but the cooldown
 * runs from the acquire time of the previous fire. Between the two lie the
 * acquire's fdatasync, the spawn of `sh`, its start-up and a fork+exec of
 * `date`: that delay of the EARLIER run shortens the logged gap (the later
 * run's own delay only lengthens it). On this shared 2-core box it is tens of
 * ms, a few hundred at worst under load; 300 ms is well under every interval
 * (>= 1 s), so a fire a whole cooldown early (the bug I2 exists to catch)
 * cannot hide in it. The smallest gap observed is printed.
 */
const GAP_TOLERANCE_MS = Number(process.env.CRASH_GAP_TOLERANCE_MS ?? 300);
const SLEEP = { min: 100, max: 4_000 };
const ORDERS: CrashOrder[] = [1_000, 1_400, 1_800, 2_200, 2_600, 3_000].map((intervalMs, i) => ({
  name: `crash-${i}`,
  intervalMs,
  timeoutMs: 10_000,
}));

const tmp = tempDir('controller-kill');
afterAll(() => tmp.remove());

describe('controller kill -9 at random moments', () => {
  it(
    'never overlaps or hurries a body, fences only grow, and every audited run has exactly one record',
    async () => {
      const ordersDir = join(tmp.path, 'orders');
      const logDir = join(tmp.path, 'logs');
      const state = join(tmp.path, 'state');
      const auditPath = join(state, 'audit.jsonl');
      writeCrashOrders(ordersDir, logDir, ORDERS, SLEEP);
      const intervalOf = new Map(ORDERS.map((o) => [o.name, o.intervalMs]));

      // ---------------------------------------------------------- the kills
      const runs: ControllerRun[] = [];
      const t0 = Date.now();
      for (let k = 0; k < KILLS; k++) {
        const run = startController(ordersDir, state, ['--grace', '15s']);
        runs.push(run);
        // A random moment: sometimes still booting (node start-up is ~0.2 s
        // here), sometimes recovering, mostly with bodies in flight.
        const died = await Promise.race([sleep(uniform(300, 3_000)).then(() => false), run.exited.then(() => true)]);
        expect(died, `controller ${k} exited on its own before the kill:\n${run.stderr()}`).toBe(false);
        run.child.kill('SIGKILL');
        const status = await run.exited;
        expect(status.signal, `controller ${k}: ${run.stderr()}`).toBe('SIGKILL');
      }
      const killPhaseMs = Date.now() - t0;

      // ---------------------------------------------- one clean run, SIGTERM
      const last = startController(ordersDir, state, ['--grace', '15s']);
      runs.push(last);
      await sleep(5_000);
      last.child.kill('SIGTERM');
      const lastStatus = await last.exited;
      expect(lastStatus, last.stderr()).toEqual({ code: 0, signal: null });
      expect(last.events.some((e) => e.type === 'summary')).toBe(true);

      // Bodies outlive the controller; their own log says when they are done.
      const open = await waitForBodies(logDir, 30_000);
      expect(open, 'bodies still running 30 s after the last controller stopped').toEqual([]);

      // G3 holds "once the controller has run again": one more boot, no timers,
      // records whatever ran past the last controller (expected: nothing).
      const { orders } = await loadCity(ordersDir);
      const final = await Controller.start({ state, orders, schedule: false });
      const finalPass = { interrupted: final.stats().interrupted, running: final.stats().running };
      await final.stop(10_000);

      // ------------------------------------------------------ what happened
      const logs = readBodyLogs(logDir);
      const all: BodyRun[] = [...logs.values()].flat();
      const events = runs.flatMap((r) => r.events);
      const unparsed = runs.flatMap((r, i) => r.events.filter((e, j) => e.type === 'unparsed' && j !== r.events.length - 1).map((e) => `${i}: ${String(e.line)}`));
      expect(unparsed, 'only the last line of a killed controller may be cut').toEqual([]);
      const errors = events.filter((e) => e.type === 'error');
      expect(errors, 'the controller reported errors').toEqual([]);
      const recovered = events.filter((e) => e.type === 'recovered');
      const adopted = recovered.filter((e) => e.action === 'adopted');
      const adoptedIds = new Set(adopted.map((e) => String(e.fireId)));
      const interrupted = recovered.filter((e) => e.action === 'interrupted');
      const completed = new Map(events.filter((e) => e.type === 'completed').map((e) => [String(e.fireId), e]));
      const fired = new Map(events.filter((e) => e.type === 'fired').map((e) => [String(e.fireId), e]));

      expect(logs.size, 'every order ran').toBe(ORDERS.length);
      expect(all.length).toBeGreaterThan(ORDERS.length * 3);

      // -------------------------------------------------- I1: single flight
      const overlaps: string[] = [];
      // ---------------------------------------- I2: cadence; G8: fences grow
      const early: string[] = [];
      const fenceBackwards: string[] = [];
      let minGap = { gap: Infinity, slack: Infinity, order: '' };
      for (const [name, rs] of logs) {
        const interval = intervalOf.get(name)!;
        for (let i = 1; i < rs.length; i++) {
          const prev = rs[i - 1]!;
          const cur = rs[i]!;
          if (prev.end === undefined || cur.start < prev.end) {
            overlaps.push(`${name}: ${prev.fireId} [${prev.start}, ${prev.end ?? 'open'}] and ${cur.fireId} started ${cur.start}`);
          }
          const gap = cur.start - prev.start;
          if (gap - interval < minGap.slack) minGap = { gap, slack: gap - interval, order: name };
          if (gap < interval - GAP_TOLERANCE_MS) early.push(`${name}: ${cur.fireId} started ${gap} ms after ${prev.fireId} (interval ${interval} ms)`);
          if (cur.fence <= prev.fence) fenceBackwards.push(`${name}: fence ${cur.fence} after ${prev.fence}`);
        }
      }
      expect(overlaps, 'I1: two bodies of one order overlapped').toEqual([]);
      expect(early, `I2: a body started more than ${GAP_TOLERANCE_MS} ms before its cooldown`).toEqual([]);
      expect(fenceBackwards, 'G8: fences must strictly increase per order').toEqual([]);

      // ------------------------------------------------------ G3/G4: audit
      const audit = readAudit(auditPath);
      const recordsOf = new Map<string, typeof audit>();
      for (const r of audit) recordsOf.set(r.fireId, [...(recordsOf.get(r.fireId) ?? []), r]);
      const dupes = [...recordsOf].filter(([, rs]) => rs.length > 1).map(([id]) => id);
      expect(dupes, 'a fireId has more than one audit record').toEqual([]);

      const auditProblems: string[] = [];
      let noOpsRecordedInterrupted = 0;
      let auditedInterrupted = 0;
      for (const r of all) {
        const recs = recordsOf.get(r.fireId) ?? [];
        const rec = recs[0];
        const seen = completed.get(r.fireId);
        if (r.code === 0 || r.code === 1) {
          // Bodies here always finish (they outlive the controller, never get
          // killed), so their wrapper recorded the exit status: every run gets
          // its real outcome, adopted or not — never `interrupted`.
          if (recs.length !== 1) auditProblems.push(`${r.scopedName} ${r.fireId} exit ${r.code}: ${recs.length} records`);
          else if (rec!.outcome === 'interrupted') {
            auditedInterrupted++;
            auditProblems.push(`${r.fireId} exit ${r.code}: recorded interrupted${seen ? ' (completed event seen)' : ''}`);
          } else if (rec!.outcome !== (r.code === 0 ? 'did-work' : 'failed')) {
            auditProblems.push(`${r.fireId} exit ${r.code}: recorded ${rec!.outcome}`);
          }
        } else if (r.code === 100) {
          // G4: a no-op never has a record, whoever saw it end.
          if (recs.length > 0) {
            if (rec!.outcome === 'interrupted') noOpsRecordedInterrupted++;
            auditProblems.push(`${r.fireId} no-op${seen ? ' (completed event seen)' : ''}: ${recs.length} record(s), ${rec!.outcome} (G4)`);
          }
        } else {
          auditProblems.push(`${r.fireId}: unexpected exit code ${r.code}`);
        }
        if (rec && rec.fence !== String(r.fence)) auditProblems.push(`${r.fireId}: record fence ${rec.fence}, body fence ${r.fence}`);
      }
      // Records for fires whose body never logged a line: the controller died
      // between acquire and spawn; those can only be `interrupted`.
      const started = new Set(all.map((r) => r.fireId));
      const orphanRecords = audit.filter((r) => !started.has(r.fireId));
      for (const r of orphanRecords) if (r.outcome !== 'interrupted') auditProblems.push(`${r.fireId}: ${r.outcome} record for a body that never started`);
      expect(auditProblems, 'G3/G4').toEqual([]);

      // ------------------------------------------------------ adoption
      expect(adopted.length, 'no body was adopted: the test did not exercise adoption').toBeGreaterThan(0);
      for (const id of adoptedIds) expect(started.has(id), `adopted ${id} never started`).toBe(true);

      const fires = all.length;
      const spawnDelays = all.filter((r) => fired.has(r.fireId)).map((r) => r.start - Number(fired.get(r.fireId)!.at));
      const maxSpawnDelay = spawnDelays.length ? Math.max(...spawnDelays) : NaN;
      console.log(
        `controller-kill: ${KILLS} kills in ${(killPhaseMs / 1000).toFixed(0)} s, ${fires} fires ` +
          `(${all.filter((r) => r.code === 0).length} exit 0, ${all.filter((r) => r.code === 100).length} exit 100, ${all.filter((r) => r.code === 1).length} exit 1), ` +
          `adopted ${adopted.length} (${adoptedIds.size} bodies), interrupted ${interrupted.length} (+${finalPass.interrupted} in the final pass), ` +
          `audit records ${audit.length} (${auditedInterrupted} work/fail runs and ${noOpsRecordedInterrupted} no-ops recorded as interrupted, ${orphanRecords.length} never started), ` +
          `min gap ${minGap.gap} ms (interval ${minGap.gap - minGap.slack} ms, slack ${minGap.slack} ms, ${minGap.order}), ` +
          `max fired->body-start ${maxSpawnDelay} ms`,
      );
    },
    10 * 60_000,
  );
});

// Found by the test above, reduced. Both FAIL against the controller as it is
// and pass once it is fixed:
// - a body's stdout/stderr are pipes read only by the controller that spawned
//   it; after a kill -9 the body's next write raises SIGPIPE and kills it, so
//   "bodies survive the controller" holds only for silent bodies (Gas City
//   scripts print a summary line exactly when they did work);
// - an adopted body's exit status is lost (its parent is gone), so the
//   adopting controller records every adopted run as `interrupted`: a no-op
//   costs an audit write (G4) and did-work/failed are recorded as interrupted.
describe('a body that outlives a killed controller', () => {
  /** Logs like BODY_SCRIPT; `$2` is the exit code, `$3 = talk` prints a line on stdout first. */
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
    writeCrashOrders(ordersDir, logDir, [], SLEEP);
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
