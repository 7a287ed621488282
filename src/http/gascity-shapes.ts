// Gas City's order API shapes (internal/api/orders_feed.go, handler_orders.go,
// and the generated client of its OpenAPI document), built from orderly's
// runs: a Gas City client parses them unchanged, and the proposal's fields
// for no-op runs (scopedName, lastFiredAt, auditBeadID) ride along.
import type { AuditRecord } from '../audit/record.js';
import type { FeedEntry } from '../dispatcher/controller.js';
import type { ScopedOrder } from '../orders/types.js';

/** Gas City's `created_at`: RFC 3339 to the second, as its API writes a bead's creation time. */
export const toSeconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export interface FeedItem {
  id: string;
  type: 'exec' | 'formula';
  status: string;
  title: string;
  scope_kind: 'city' | 'rig';
  scope_ref: string;
  target: string;
  started_at: string;
  updated_at: string;
  bead_id?: string;
  detail_available?: boolean;
  run_detail_available?: boolean;
  /** The proposal's additions: every order's latest fire, audited or not. */
  scopedName: string;
  lastFiredAt: string | null;
  auditBeadID: string | null;
  outcome?: string;
}

export interface Scope {
  kind: 'city' | 'rig';
  ref: string;
}

/** Gas City's query rules, in its words: both or neither is an error, and only city or rig. */
export function parseScope(kind: string | null, ref: string | null): Scope | string {
  const k = (kind ?? '').trim();
  const r = (ref ?? '').trim();
  if (!k && !r) return 'scope_kind and scope_ref are required';
  if (!k || !r) return 'scope_kind and scope_ref must be provided together';
  if (k !== 'city' && k !== 'rig') return "scope_kind must be 'city' or 'rig'";
  return { kind: k, ref: r };
}

/** Gas City's feed limit: 50 by default, at most 500, a bad value is the default. */
export function feedLimit(raw: string | null): number {
  const n = Number(raw);
  if (!raw || !Number.isInteger(n) || n <= 0) return 50;
  return Math.min(n, 500);
}

const scopeOf = (scopedName: string, city: string): Scope => {
  const at = scopedName.lastIndexOf(':rig:');
  return at >= 0 ? { kind: 'rig', ref: scopedName.slice(at + 5) } : { kind: 'city', ref: city };
};

const typeOf = (o: ScopedOrder | undefined): 'exec' | 'formula' => (o?.spec.formula !== undefined ? 'formula' : 'exec');

/** Gas City's statuses: done for a run that did its work, failed for the rest; no-op is the proposal's. */
export function feedStatus(outcome: string): string {
  if (outcome === 'did-work') return 'done';
  if (outcome === 'no-op' || outcome === 'active' || outcome === 'never') return outcome;
  return 'failed';
}

const RANK: Record<string, number> = { active: 0, pending: 1, failed: 2, done: 3, skipped: 4 };

/**
 * The feed: the audited runs (each its own item, as Gas City lists its
 * beads), and for every order whose latest fire left no record, one item
 * with its lastFiredAt, so no-op orders do not vanish. Sorted as Gas City
 * sorts (status, then newest, then title).
 */
export function feedItems(opts: {
  city: string;
  scope: Scope;
  orders: ReadonlyMap<string, ScopedOrder>;
  entries: readonly FeedEntry[];
  records: readonly AuditRecord[];
  limit: number;
}): FeedItem[] {
  const cityWide = opts.scope.kind === 'city' && opts.scope.ref === opts.city;
  const inScope = (scopedName: string): boolean => {
    if (cityWide) return true;
    const s = scopeOf(scopedName, opts.city);
    return s.kind === opts.scope.kind && s.ref === opts.scope.ref;
  };
  const items: FeedItem[] = [];
  const audited = new Set<string>();
  for (const r of opts.records) {
    if (!inScope(r.scopedName)) continue;
    audited.add(r.fireId);
    const o = opts.orders.get(r.scopedName);
    const s = scopeOf(r.scopedName, opts.city);
    items.push({
      id: `order:${r.fireId}`,
      type: typeOf(o),
      status: feedStatus(r.outcome),
      title: r.order,
      scope_kind: s.kind,
      scope_ref: s.ref,
      target: typeOf(o),
      started_at: new Date(r.startedAt).toISOString(),
      updated_at: new Date(r.endedAt).toISOString(),
      bead_id: r.fireId,
      detail_available: true,
      run_detail_available: true,
      scopedName: r.scopedName,
      lastFiredAt: new Date(r.startedAt).toISOString(),
      auditBeadID: r.fireId,
      outcome: r.outcome,
    });
  }
  for (const e of opts.entries) {
    if (!inScope(e.scopedName) || e.lastFiredAt === undefined) continue;
    if (e.lastFireId !== undefined && audited.has(e.lastFireId)) continue;
    const o = opts.orders.get(e.scopedName);
    const s = scopeOf(e.scopedName, opts.city);
    const at = new Date(e.lastFiredAt).toISOString();
    const name = o?.spec.name ?? e.scopedName.split(':rig:')[0]!;
    items.push({
      id: `order:${e.scopedName}@${e.lastFiredAt}`,
      type: typeOf(o),
      status: feedStatus(e.status),
      title: s.kind === 'rig' ? `${name} (rig:${s.ref})` : name,
      scope_kind: s.kind,
      scope_ref: s.ref,
      target: typeOf(o),
      started_at: at,
      updated_at: at,
      scopedName: e.scopedName,
      lastFiredAt: at,
      auditBeadID: null,
      ...(e.lastOutcome ? { outcome: e.lastOutcome } : {}),
    });
  }
  items.sort((a, b) => (RANK[a.status] ?? 5) - (RANK[b.status] ?? 5) || b.updated_at.localeCompare(a.updated_at) || a.title.localeCompare(b.title));
  return items.slice(0, opts.limit);
}

/** `gc order history`'s entry, from an audit record (Gas City keeps duration and exit code as strings). */
export function historyEntry(r: AuditRecord): Record<string, unknown> {
  return {
    bead_id: r.fireId,
    name: r.order,
    scoped_name: r.scopedName,
    ...(r.rig ? { rig: r.rig } : {}),
    created_at: toSeconds(r.startedAt),
    labels: labelsOf(r),
    duration_ms: String(r.durationMs),
    ...(r.exitCode !== null ? { exit_code: String(r.exitCode) } : {}),
    ...(r.signal ? { signal: r.signal } : {}),
    ...(r.outcome !== 'did-work' ? { error: r.outcome } : {}),
    capture_output: true,
    has_output: r.outputTail.length > 0,
    outcome: r.outcome,
    fence: r.fence,
    trigger: r.trigger,
  };
}

/**
 * The proposal's synthesized entry for the latest fire when it left no record
 * in the database: a no-op, a run in progress, or one whose record still waits
 * in the outbox (then its real outcome, from the controller).
 */
export function noOpHistoryEntry(e: FeedEntry): Record<string, unknown> {
  const [name, rig] = e.scopedName.split(':rig:');
  return {
    bead_id: '',
    name,
    scoped_name: e.scopedName,
    ...(rig !== undefined ? { rig } : {}),
    created_at: toSeconds(e.lastFiredAt!),
    labels: [`order-run:${e.scopedName}`],
    capture_output: false,
    has_output: false,
    outcome: e.status === 'active' ? 'active' : (e.lastOutcome ?? 'no-op'),
    synthetic: true,
  };
}

/** The labels a tracking bead of this run would carry in Gas City. */
export function labelsOf(r: AuditRecord): string[] {
  return [`order-run:${r.scopedName}`, 'exec', ...(r.outcome === 'did-work' ? [] : ['exec-failed'])];
}
