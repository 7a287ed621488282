import type { AuditedOutcome } from '../orders/types.js';

/** One run that did work, failed, timed out or was interrupted: written once, already closed (G3). */
export interface AuditRecord {
  /** Unique per fire; sinks insert idempotently on it. */
  fireId: string;
  order: string;
  scopedName: string;
  rig: string | null;
  trigger: string;
  outcome: AuditedOutcome;
  exitCode: number | null;
  signal: string | null;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  /** The lease's fencing token, as a decimal string (it is a u64). */
  fence: string;
  outputTail: string;
  labels: Record<string, string>;
}

/**
 * Where audit records go. `write` stores a whole batch in ONE transaction and
 * must be idempotent on `fireId`: the outbox re-sends whatever was not
 * acknowledged, so a record may arrive twice and must be stored once.
 */
export interface AuditSink {
  /** e.g. `sqlite:/var/lib/orderly/audit.db`, for messages and doctor. */
  readonly url: string;
  /** Creates and migrates the schema. */
  open(): Promise<void>;
  /** Returns how many records were new. */
  write(records: readonly AuditRecord[]): Promise<{ inserted: number }>;
  /** Cheap reachability check (doctor). */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Newest first; `before` is an exclusive endedAt bound (ms). */
  history?(q: HistoryQuery): Promise<AuditRecord[]>;
  /** Retention: deletes records older than `olderThanMs` but keeps `keepPerOrder` per scoped order, `batch` rows per transaction. */
  prune?(p: PruneOptions): Promise<number>;
}

export interface HistoryQuery {
  /** One scoped order (`name` or `name:rig:<rig>`); all orders when omitted. */
  scopedName?: string;
  /** One run's record (the unique fire id): the detail of a run. */
  fireId?: string;
  /** Most records returned. */
  limit: number;
  /** Only records that ended before this (epoch ms, exclusive): the next page of a listing. */
  before?: number;
}

export interface PruneOptions {
  /** An age in ms: records that ended longer ago than this are deleted… */
  olderThanMs: number;
  /** …except the newest `keepPerOrder` records of each scoped order, whatever their age. */
  keepPerOrder: number;
  /** Most rows deleted per transaction (short transactions, no long locks). */
  batch: number;
}

/** Decodes a record from its outbox payload; throws on anything else. */
export function parseAuditRecord(payload: Buffer | string): AuditRecord {
  const r = JSON.parse(payload.toString()) as AuditRecord;
  if (typeof r !== 'object' || r === null || typeof r.fireId !== 'string' || typeof r.outcome !== 'string') {
    throw new Error('outbox payload is not an audit record');
  }
  return r;
}
