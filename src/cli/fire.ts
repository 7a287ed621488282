import { join, resolve } from 'node:path';
import { resolveAuditUrl } from '../audit/credentials.js';
import { defaultAuditUrl, readRecordedSink } from '../audit/recorded-sink.js';
import { sinkFromUrl } from '../audit/url.js';
import { Controller, type FireResult } from '../dispatcher/controller.js';
import { loadCity } from '../orders/city.js';
import { EXIT, parse, printer, UsageError } from './args.js';
import { askControl } from './control.js';
import { readSavedRun } from './saved-run.js';
import { OrderlyError } from '../errors.js';


export const FIRE_USAGE = `usage: orderly-dispatch fire <scoped-name> [--state DIR] [--orders DIR] [--json]

Runs one order now and advances its cooldown. Goes through the controller
running on the state directory; when none runs, fires it directly using the
orders directory the last \`orderly-dispatch run\` used (or --orders).
Exit status: 0 ran (did-work or no-op), 1 failed or timed out, 3 skipped.`;

export async function fire(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { state: { type: 'string' }, orders: { type: 'string' } }, FIRE_USAGE);
  if (values.help) {
    console.log(FIRE_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`orderly-dispatch fire takes one scoped order name\n\n${FIRE_USAGE}`);
  const scopedName = positionals[0]!;
  const state = resolve(values.state ?? '.orderly');
  const print = printer(values.json === true);

  let result = (await askControl(state, { cmd: 'fire', scopedName })) as (FireResult & { error?: string }) | undefined;
  let via = 'the running controller';
  if (result === undefined) {
    via = 'a direct run (no controller is running)';
    const last = readSavedRun(state);
    if (last?.cluster) {
      // A member's shards are held by a running member: a direct fire would bypass them.
      throw new OrderlyError('ERR_CLUSTER', `${state} belongs to a member of cluster ${last.cluster.name} (${last.cluster.engine}), and no member runs on it: fire through a running member's state directory (it fires the order if it owns its shard)`);
    }
    const ordersDir = values.orders ?? last?.ordersDir;
    if (!ordersDir) throw new UsageError(`no controller runs on ${state} and no orders directory is known: pass --orders DIR`);
    const { orders, rigs, city } = await loadCity(resolve(ordersDir), last?.load ?? {});
    const controller = await Controller.start({
      state,
      orders,
      rigs: last?.rigs ?? rigs,
      ...(city ? { city } : {}),
      ...(last?.eventLog ? { eventLog: last.eventLog } : city ? { eventLog: city.eventLog } : {}),
      audit: sinkFromUrl(resolveAuditUrl(last?.audit ?? readRecordedSink(state) ?? defaultAuditUrl(state), { passwordFile: last?.auditPasswordFile })),
      schedule: false,
    });
    try {
      result = await controller.fire(scopedName);
    } finally {
      await controller.stop();
    }
  }
  if (result.error) throw new Error(result.error);
  const what = result.skipped ? `skipped: ${result.skipped}${result.detail ? ` (${result.detail})` : ''}` : result.outcome;
  print(`${scopedName}: ${what} via ${via}`, { ...result, via });
  if (result.skipped === 'unknown-order') {
    process.stderr.write(`orderly-dispatch fire: ${result.detail ?? `no order named ${scopedName}`}\n`);
    return EXIT.usage;
  }
  if (result.skipped) return EXIT.skipped;
  return result.outcome === 'failed' || result.outcome === 'timeout' ? EXIT.failed : EXIT.ok;
}
