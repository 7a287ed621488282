import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readRecordedSink } from '../audit/recorded-sink.js';
import type { AuditSink } from '../audit/record.js';
import { resolveAuditUrl, splitPassword } from '../audit/credentials.js';
import { sinkFromUrl } from '../audit/url.js';
import { feed } from '../history.js';
import { EXIT, parse, printer, registerSecret } from './args.js';
import { readSavedRun } from './saved-run.js';

export const FEED_USAGE = `usage: orderly-dispatch feed [--state DIR] [--audit URL] [--limit N] [--json]

Every order with when it last fired and how its last run ended. No-op runs
write nothing to the database, so their ticks come from the controller
(while one runs) or the state directory.`;

/**
 * The audit sink named by --audit, or the one the last `orderly-dispatch run` used,
 * opened; `unavailable` says why not when its database cannot be reached
 * (the commands then answer from the state directory alone).
 */
export async function openSink(state: string, url: string | undefined): Promise<{ sink?: AuditSink; unavailable?: string }> {
  const last = readSavedRun(state);
  const chosen = url ?? last?.audit ?? readRecordedSink(state);
  if (!chosen) {
    // A state that ran but does not say where its records went (an older
    // version, or a copied directory): say so instead of showing every run as a no-op.
    if (!existsSync(join(state, 'leases'))) return {};
    return { unavailable: `${state} does not record which audit sink its runs went to: pass --audit URL` };
  }
  const connect = resolveAuditUrl(chosen, { passwordFile: url ? undefined : last?.auditPasswordFile });
  registerSecret(splitPassword(connect).password);
  const sink = sinkFromUrl(connect);
  try {
    await sink.open();
  } catch (err) {
    await sink.close().catch(() => undefined);
    return { unavailable: `${sink.url}: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { sink };
}

export async function feedCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { state: { type: 'string' }, audit: { type: 'string' }, limit: { type: 'string' } }, FEED_USAGE);
  if (values.help) {
    console.log(FEED_USAGE);
    return EXIT.ok;
  }
  const state = resolve(values.state ?? '.orderly');
  const { sink, unavailable: notOpened } = await openSink(state, values.audit);
  try {
    const { live, entries, auditUnavailable } = await feed({ state, ...(sink ? { sink } : {}), ...(values.limit ? { limit: Number(values.limit) } : {}) });
    const unavailable = notOpened ?? auditUnavailable;
    const print = printer(values.json === true);
    if (values.json) {
      print('', { live, entries, ...(unavailable ? { auditUnavailable: unavailable } : {}) });
      return EXIT.ok;
    }
    print(`${entries.length} order(s)${live ? ' (from the running controller)' : ' (no controller running; from the state directory)'}`, {});
    if (unavailable) print(`audit database unavailable (${unavailable}): statuses are from the state only; did-work and failed runs may show as no-op`, {});
    for (const e of entries) {
      const when = e.lastFiredAt !== undefined ? new Date(e.lastFiredAt).toISOString() : 'never';
      print(`${e.status.padEnd(9)} ${e.scopedName.padEnd(40)} last fired ${when}${e.noOpsSinceStart ? `, ${e.noOpsSinceStart} no-op(s) since start` : ''}`, {});
    }
    return EXIT.ok;
  } finally {
    await sink?.close();
  }
}
