import { resolve } from 'node:path';
import { history, type HistoryEntry } from '../history.js';
import { parseDuration } from '../orders/duration.js';
import { EXIT, parse, scrub, UsageError } from './args.js';
import { toSeconds } from '../http/gascity-shapes.js';
import { openSink } from './feed.js';

export const HISTORY_USAGE = `usage: orderly-dispatch history [name] [--rig RIG] [--limit N] [--since DURATION] [--audited-only] [--before ISO|ms] [--state DIR] [--audit URL] [--json]

Runs, newest first: audit records of runs that did work, failed, timed out or
were interrupted, and an order's latest fire as a no-op entry when that fire
left no record (omit with --audited-only). Without a name, every order's.
  name            an order name (with --rig for a rig's instance) or a scoped
                  name such as gate-sweep:rig:gastown
  --limit N       at most N runs (default 50)
  --since DURATION  only runs started within DURATION (Go syntax: 1h, 24h)
--json prints gc order history's shape (entries of order, rig, bead_id,
executed, created_at; bead_id is the fire id) plus orderly's fields.`;

export async function historyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      state: { type: 'string' },
      audit: { type: 'string' },
      rig: { type: 'string' },
      limit: { type: 'string' },
      since: { type: 'string' },
      before: { type: 'string' },
      'audited-only': { type: 'boolean' },
    },
    HISTORY_USAGE,
  );
  if (values.help) {
    console.log(HISTORY_USAGE);
    return EXIT.ok;
  }
  if (positionals.length > 1) throw new UsageError(`orderly-dispatch history takes at most one order name\n\n${HISTORY_USAGE}`);
  if (values.rig !== undefined && positionals.length === 0) throw new UsageError('--rig needs an order name');
  const limit = values.limit ? Number(values.limit) : 50;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer, got ${values.limit}`);
  const before = values.before ? (/^\d+$/.test(values.before) ? Number(values.before) : Date.parse(values.before)) : undefined;
  if (before !== undefined && Number.isNaN(before)) throw new UsageError(`--before must be an ISO date or epoch ms, got ${values.before}`);
  const sinceMs = values.since ? parseDuration(values.since, '--since') : undefined;
  if (sinceMs === 0) throw new UsageError('--since must be greater than 0');
  const name = positionals[0];
  const scopedName = name === undefined ? undefined : values.rig !== undefined ? `${name}:rig:${values.rig}` : name;
  const state = resolve(values.state ?? '.orderly');
  const { sink, unavailable: notOpened } = await openSink(state, values.audit);
  let unavailable = notOpened;
  try {
    let entries = await history(scopedName, {
      state,
      ...(sink ? { sink } : {}),
      limit,
      ...(before !== undefined ? { before } : {}),
      auditedOnly: values['audited-only'] === true,
      onUnavailable: (why) => (unavailable = why),
    });
    if (sinceMs !== undefined) entries = entries.filter((e) => e.at >= Date.now() - sinceMs);
    if (values.json) {
      console.log(
        JSON.stringify({
          schema_version: '1',
          ok: true,
          ...(name !== undefined ? { name } : {}),
          ...(values.rig !== undefined ? { rig: values.rig } : {}),
          entries: entries.map(entryJson),
          summary: { total: entries.length },
          ...(unavailable ? { audit_unavailable: scrub(unavailable) } : {}),
        }),
      );
      return EXIT.ok;
    }
    if (unavailable) console.log(scrub(`audit database unavailable (${unavailable}): only each order's latest fire, from the state directory`));
    if (entries.length === 0) {
      console.log(name === undefined ? 'No order history.' : `No order history for ${JSON.stringify(scopedName)}.`);
      return EXIT.ok;
    }
    for (const e of entries) {
      const r = e.record;
      console.log(
        `${new Date(e.at).toISOString()} ${e.status.padEnd(9)} ${e.scopedName.padEnd(32)} ${e.fireId ?? ''}` +
          (r ? ` ${r.outcome}${r.exitCode !== null ? ` exit ${r.exitCode}` : ''}${r.signal ? ` ${r.signal}` : ''} in ${r.durationMs} ms${r.labels.reason ? ` (${r.labels.reason})` : ''}` : ''),
      );
    }
    return EXIT.ok;
  } finally {
    await sink?.close();
  }
}

/** gc order history's entry (order, rig, bead_id, executed, created_at), then orderly's own fields. */
function entryJson(e: HistoryEntry): Record<string, unknown> {
  const [order, rig] = e.scopedName.split(':rig:');
  const r = e.record;
  return {
    order,
    ...(rig !== undefined ? { rig } : {}),
    bead_id: e.fireId ?? '',
    executed: toSeconds(e.at),
    created_at: new Date(e.at).toISOString(),
    scoped_name: e.scopedName,
    status: e.status,
    ...(r
      ? { outcome: r.outcome, exit_code: r.exitCode, signal: r.signal, duration_ms: r.durationMs, fence: r.fence, ...(r.labels.reason ? { reason: r.labels.reason } : {}) }
      : {}),
  };
}
