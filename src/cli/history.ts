import { resolve } from 'node:path';
import { history } from '../history.js';
import { EXIT, parse, UsageError } from './args.js';
import { openSink } from './feed.js';

export const HISTORY_USAGE = `usage: orderly history <scoped-name> [--audited-only] [--limit N] [--before ISO|ms] [--state DIR] [--audit URL] [--json]

One order's runs, newest first: audit records of runs that did work, failed,
timed out or were interrupted, and its latest fire as a no-op entry when that
fire left no record (omit with --audited-only).`;

export async function historyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { state: { type: 'string' }, audit: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' }, 'audited-only': { type: 'boolean' } },
    HISTORY_USAGE,
  );
  if (values.help) {
    console.log(HISTORY_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`orderly history takes one scoped order name\n\n${HISTORY_USAGE}`);
  const limit = values.limit ? Number(values.limit) : 20;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer, got ${values.limit}`);
  const before = values.before ? (/^\d+$/.test(values.before) ? Number(values.before) : Date.parse(values.before)) : undefined;
  if (before !== undefined && Number.isNaN(before)) throw new UsageError(`--before must be an ISO date or epoch ms, got ${values.before}`);
  const state = resolve(values.state ?? '.orderly');
  const sink = await openSink(state, values.audit);
  try {
    const entries = await history(positionals[0]!, {
      state,
      ...(sink ? { sink } : {}),
      limit,
      ...(before !== undefined ? { before } : {}),
      auditedOnly: values['audited-only'] === true,
    });
    if (values.json) {
      console.log(JSON.stringify({ scopedName: positionals[0], entries }));
      return EXIT.ok;
    }
    if (entries.length === 0) console.log(`${positionals[0]}: no runs recorded`);
    for (const e of entries) {
      const r = e.record;
      console.log(
        `${new Date(e.at).toISOString()} ${e.status.padEnd(9)} ${e.fireId ?? ''}` +
          (r ? ` ${r.outcome}${r.exitCode !== null ? ` exit ${r.exitCode}` : ''}${r.signal ? ` ${r.signal}` : ''} in ${r.durationMs} ms${r.labels.reason ? ` (${r.labels.reason})` : ''}` : ''),
      );
    }
    return EXIT.ok;
  } finally {
    await sink?.close();
  }
}
