import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AuditSink } from '../audit/record.js';
import { sinkFromUrl } from '../audit/url.js';
import { feed } from '../history.js';
import { EXIT, parse, printer } from './args.js';

export const FEED_USAGE = `usage: orderly feed [--state DIR] [--audit URL] [--limit N] [--json]

Every order with when it last fired and how its last run ended. No-op runs
write nothing to the database, so their ticks come from the controller
(while one runs) or the state directory.`;

/** The audit sink named by --audit, or the one the last `orderly run` used. */
export async function openSink(state: string, url: string | undefined): Promise<AuditSink | undefined> {
  const saved = join(state, 'controller.json');
  const chosen = url ?? (existsSync(saved) ? (JSON.parse(readFileSync(saved, 'utf8')) as { audit?: string }).audit : undefined);
  if (!chosen) return undefined;
  const sink = sinkFromUrl(chosen);
  await sink.open();
  return sink;
}

export async function feedCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { state: { type: 'string' }, audit: { type: 'string' }, limit: { type: 'string' } }, FEED_USAGE);
  if (values.help) {
    console.log(FEED_USAGE);
    return EXIT.ok;
  }
  const state = resolve(values.state ?? '.orderly');
  const sink = await openSink(state, values.audit);
  try {
    const { live, entries } = await feed({ state, ...(sink ? { sink } : {}), ...(values.limit ? { limit: Number(values.limit) } : {}) });
    if (values.json) {
      console.log(JSON.stringify({ live, entries }));
      return EXIT.ok;
    }
    const print = printer(false);
    print(`${entries.length} order(s)${live ? ' (from the running controller)' : ' (no controller running; from the state directory)'}`, {});
    for (const e of entries) {
      const when = e.lastFiredAt !== undefined ? new Date(e.lastFiredAt).toISOString() : 'never';
      print(`${e.status.padEnd(9)} ${e.scopedName.padEnd(40)} last fired ${when}${e.noOpsSinceStart ? `, ${e.noOpsSinceStart} no-op(s) since start` : ''}`, {});
    }
    return EXIT.ok;
  } finally {
    await sink?.close();
  }
}
