import type { FireResult } from '../dispatcher/controller.js';
import { appendEvent, type CityEvent, type PublishInput } from '../dispatcher/event-log.js';
import { loadCity } from '../orders/city.js';
import { EXIT, parse, printer, UsageError } from './args.js';
import { savedRun } from './city-arg.js';
import { askControl } from './control.js';
import { inspectStore } from '../native.js';
import { join, resolve } from 'node:path';

/** The highest event cursor in the state directory: a log begun again must not number new events below it. */
function consumedSeq(state: string): number {
  try {
    const i = inspectStore(join(state, 'leases'));
    return Math.max(0, ...i.cursorKeys.map((k, n) => (k.includes('\0') ? 0 : Number(i.cursorSeqs[n]!))));
  } catch {
    return 0;
  }
}

export const PUBLISH_USAGE = `usage: orderly-dispatch publish <type> [--payload JSON] [--subject S] [--message M] [--actor A] [--state DIR] [--city PATH] [--event-log PATH] [--json]

Appends an event to the city's event log (<city>/.gc/events.jsonl, the log
gc event emit writes), as Gas City writes it: the next seq, under the
writers' lock. Event orders whose on = <type> fire from it, once per order
however many events wait. Goes through the controller running on --state
(which fires at once); with none running, appends to the log the last run
used, or to --city's / --event-log.`;

export async function publishCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      payload: { type: 'string' },
      subject: { type: 'string' },
      message: { type: 'string' },
      actor: { type: 'string' },
      state: { type: 'string' },
      city: { type: 'string' },
      'event-log': { type: 'string' },
    },
    PUBLISH_USAGE,
  );
  if (values.help) {
    console.log(PUBLISH_USAGE);
    return EXIT.ok;
  }
  const type = positionals[0];
  if (positionals.length !== 1 || type === undefined || type.trim() === '') throw new UsageError(`orderly-dispatch publish takes one event type\n\n${PUBLISH_USAGE}`);
  let payload: unknown;
  if (values.payload !== undefined) {
    try {
      payload = JSON.parse(values.payload);
    } catch (err) {
      throw new UsageError(`--payload is not JSON: ${(err as Error).message}`);
    }
  }
  const event: PublishInput = { type, ...(payload !== undefined ? { payload } : {}), ...(values.subject ? { subject: values.subject } : {}), ...(values.message ? { message: values.message } : {}), ...(values.actor ? { actor: values.actor } : {}) };
  const state = resolve(values.state ?? '.orderly');
  const print = printer(values.json === true);

  const viaController = !values.city && !values['event-log'] ? ((await askControl(state, { cmd: 'publish', event })) as { event?: CityEvent; fires: FireResult[]; error?: string } | undefined) : undefined;
  if (viaController?.error) throw new Error(viaController.error);
  if (viaController) {
    const fires = viaController.fires.map((f) => `${f.scopedName}: ${f.skipped ? `skipped (${f.skipped})` : (f.outcome ?? 'started')}`);
    print(`published ${type}${viaController.event ? ` as seq ${viaController.event.seq}` : ''} via the running controller${fires.length > 0 ? `; fired ${fires.join(', ')}` : '; no event order fired'}`, {
      published: viaController.event ?? { type },
      via: 'controller',
      fires: viaController.fires,
    });
    return EXIT.ok;
  }
  let path = values['event-log'] ? resolve(values['event-log']) : undefined;
  if (!path && values.city) path = (await loadCity(resolve(values.city))).city?.eventLog;
  path ??= savedRun(state)?.eventLog;
  if (!path) throw new UsageError(`no event log known: pass --city PATH (a Gas City city) or --event-log PATH, or run a controller with --state ${state}`);
  const written = appendEvent(path, event, process.env, consumedSeq(state));
  print(`published ${type} as seq ${written.seq} to ${path}; event orders fire when a controller reads it`, { published: written, via: path, fires: [] });
  return EXIT.ok;
}
