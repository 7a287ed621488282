import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { askControl } from './cli/control.js';
import type { AuditRecord, AuditSink } from './audit/record.js';
import type { AuditedOutcome } from './orders/types.js';
import type { FeedEntry } from './dispatcher/controller.js';
import { inspectStore } from './native.js';

/** A run as history shows it: audited runs carry their record, no-op runs only when they happened. */
export interface HistoryEntry {
  scopedName: string;
  /** The run's outcome in the words `run` prints, or active while it runs. */
  status: 'active' | 'no-op' | AuditedOutcome;
  at: number;
  fireId?: string;
  record?: AuditRecord;
}

const statusOf = (r: AuditRecord): HistoryEntry['status'] => r.outcome;

/**
 * The feed: every order with its lastFiredAt and last status. No-op runs
 * write nothing to the database (G4), so the running controller (or, when
 * none runs, the lease store's lastRun) supplies what the audit rows cannot.
 */
export async function feed(opts: { state: string; sink?: AuditSink; limit?: number }): Promise<{ live: boolean; entries: FeedEntry[]; auditUnavailable?: string }> {
  const state = resolve(opts.state);
  const answer = (await askControl(state, { cmd: 'feed' }, 10_000)) as { entries?: FeedEntry[] } | undefined;
  let entries: FeedEntry[];
  const live = answer?.entries !== undefined;
  if (answer?.entries) {
    entries = answer.entries;
  } else if (!existsSync(join(state, 'leases'))) {
    // Nothing has run with this state yet.
    entries = [];
  } else {
    const i = inspectStore(join(state, 'leases'));
    const held = new Set(i.held.map((h) => h.key));
    entries = i.lastRunKeys.map((key, n) => ({
      scopedName: key,
      trigger: 'unknown',
      status: held.has(key) ? 'active' : 'no-op',
      lastFiredAt: i.lastRunAt[n]!,
      noOpsSinceStart: 0,
    }));
  }
  let auditUnavailable: string | undefined;
  let recent: AuditRecord[] = [];
  if (opts.sink?.history) {
    try {
      recent = await opts.sink.history({ limit: Math.max(opts.limit ?? 1000, entries.length * 4) });
    } catch (err) {
      // The database is down: answer from the state alone, and say what is missing.
      auditUnavailable = `${opts.sink.url}: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  // The newest audit record of each order upgrades its status.
  for (const e of entries) {
    const r = recent.find((x) => x.scopedName === e.scopedName);
    if (r && e.status !== 'active' && (e.lastFiredAt === undefined || r.startedAt >= e.lastFiredAt - 1000)) {
      e.status = statusOf(r);
      e.lastFireId = r.fireId;
      e.lastOutcome = r.outcome;
    }
  }
  entries.sort((a, b) => (b.lastFiredAt ?? 0) - (a.lastFiredAt ?? 0) || a.scopedName.localeCompare(b.scopedName));
  return { live, entries: opts.limit ? entries.slice(0, opts.limit) : entries, ...(auditUnavailable ? { auditUnavailable } : {}) };
}

/**
 * One order's runs (every order's, when `scopedName` is undefined), newest
 * first: audit records, plus each order's latest fire as a no-op entry when
 * that fire left no record (unless `auditedOnly`).
 */
export async function history(
  scopedName: string | undefined,
  opts: { state: string; sink?: AuditSink; limit?: number; before?: number; auditedOnly?: boolean; onUnavailable?: (why: string) => void },
): Promise<HistoryEntry[]> {
  const limit = opts.limit ?? 20;
  const query = { ...(scopedName !== undefined ? { scopedName } : {}), limit, ...(opts.before !== undefined ? { before: opts.before } : {}) };
  let records: AuditRecord[] = [];
  if (opts.sink?.history) {
    try {
      records = await opts.sink.history(query);
    } catch (err) {
      opts.onUnavailable?.(`${opts.sink.url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const out: HistoryEntry[] = records.map((r) => ({ scopedName: r.scopedName, status: statusOf(r), at: r.startedAt, fireId: r.fireId, record: r }));
  if (!opts.auditedOnly) {
    const { entries } = await feed({ state: opts.state });
    for (const e of entries) {
      if (scopedName !== undefined && e.scopedName !== scopedName) continue;
      const covered = e.lastFiredAt !== undefined && records.some((r) => r.scopedName === e.scopedName && r.startedAt >= e.lastFiredAt! - 1000);
      if (e.lastFiredAt !== undefined && !covered && (opts.before === undefined || e.lastFiredAt < opts.before)) {
        out.push({ scopedName: e.scopedName, status: e.status === 'active' ? 'active' : 'no-op', at: e.lastFiredAt, ...(e.lastFireId ? { fireId: e.lastFireId } : {}) });
      }
    }
    out.sort((a, b) => b.at - a.at);
  }
  return out.slice(0, limit);
}
