import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LeaseStore } from '../lease-store.js';
import { inspectStore } from '../native.js';
import { EXIT, parse, printer, UsageError } from './args.js';
import { askControl } from './control.js';

export const REPAIR_USAGE = `usage: orderly-dispatch repair [--state DIR] [--json]

Opens a lease log that a start refuses (damaged past its tail, or lost:
segments deleted or replaced), keeping every valid record before the damage
and cutting the rest; fencing tokens continue above the reservation kept
beside the log, so no fence is handed out twice. Says what was kept (audit
records still to send, held leases, lastRun) and what was cut. The next
orderly-dispatch run re-sends the kept records. Refuses while a controller runs.`;

export async function repairCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { state: { type: 'string' } }, REPAIR_USAGE);
  if (values.help) {
    console.log(REPAIR_USAGE);
    return EXIT.ok;
  }
  const state = resolve(values.state ?? '.orderly');
  const leases = join(state, 'leases');
  const print = printer(values.json === true);
  const running = (await askControl(state, { cmd: 'status' }, 5_000).catch(() => undefined)) as { pid?: number } | undefined;
  if (running) throw new UsageError(`a controller runs on ${state} (pid ${running.pid ?? '?'}): stop it first`);
  if (!existsSync(leases)) {
    print(`orderly-dispatch repair: ${leases} does not exist: nothing to repair`, { repaired: false, reason: 'no lease log' });
    return EXIT.ok;
  }
  let damage: string | undefined;
  try {
    const i = inspectStore(leases);
    if (i.lost) damage = `lost: the log holds fewer tokens than the ${i.reserved} reserved beside it`;
    else if (i.wouldTruncate > 0) damage = `a torn tail of ${i.wouldTruncate} bytes (${i.reason ?? 'unknown'})`;
  } catch (err) {
    damage = (err as Error).message;
  }
  if (damage === undefined) {
    print(`orderly-dispatch repair: ${leases} is healthy: nothing to repair`, { repaired: false, reason: 'healthy' });
    return EXIT.ok;
  }
  const store = await LeaseStore.open(leases, { repair: true });
  const report = store.repairReport();
  const kept = { outbox: store.recovered.outbox.length, held: store.recovered.held.length, lastRun: Object.keys(store.recovered.lastRun).length, records: report.records };
  await store.close();
  const lines = [`orderly-dispatch repair: ${leases}: ${damage}`];
  if (report.bytesTruncated > 0) lines.push(`cut ${report.bytesTruncated} bytes: ${report.reason ?? 'damaged'}; whatever they held (leases, lastRun, audit records not yet in the database) is gone`);
  if (report.lostLogHighWater != null) {
    lines.push(`the log held tokens up to ${report.lostLogHighWater}; fences now continue above ${report.lostReserved}, so none is handed out twice`);
    lines.push('audit records that waited in the lost segments cannot be re-sent: compare the audit database with what ran since the log was lost');
  }
  lines.push(`kept ${kept.records} record(s): ${kept.outbox} audit record(s) still to send (the next orderly-dispatch run sends them), ${kept.held} held lease(s) (settled at the next start), lastRun of ${kept.lastRun} order(s)`);
  print(lines.join('\n'), { repaired: true, damage, bytesCut: report.bytesTruncated, cutReason: report.reason ?? null, lostLogHighWater: report.lostLogHighWater ?? null, tokensContinueAbove: report.lostReserved ?? null, kept });
  return EXIT.ok;
}
