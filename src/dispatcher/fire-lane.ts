import { type JsArmed, type JsLaneBatch, NativeLane, type NativeLeaseStore, reportLayout } from '../native.js';
import type { LayeredEnv } from './layered-env.js';

/**
 * The fire lane (crates/lane): exec fires armed ahead of their due time, a
 * batch per wake of the JS thread, and fired natively at that time. JS hears
 * of them in batches too: a plain no-op with the next one, anything it must
 * finish (an audit record, leftovers, a refusal) at once. A fire armed
 * with `repeatMs` that settles as a plain no-op is followed by the order's
 * next fire, armed by the lane under the same tag: JS is told of it with
 * the report (`chained`), and the fire's promise goes on to the next.
 */

export type LaneFire = Omit<JsArmed, 'tag'>;

/**
 * One report of the lane: `kind` is `held` or `gate-full` (not acquired),
 * `store-failed` (with `message`), `started` (its body runs: `pid`, and the
 * lease's figures), or `ran`: acquired, with how its body went. A `settled`
 * run was a plain no-op whose lease is released; any other is still held.
 */
export interface JsLaneReport {
  tag: number;
  kind: string;
  message?: string;
  token: number;
  acquiredAt: number;
  expiresAt: number;
  pid?: number;
  /** Not started: the errno's name, and whether it was the run lock that failed. */
  startError?: string;
  lockError: boolean;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  code?: number;
  signal?: number;
  groupEmpty: boolean;
  timedOut: boolean;
  termSentAt: number;
  killSent: boolean;
  settled: boolean;
  /** Set when the lane armed the order's next fire itself: its fire id and due time (epoch ms). */
  nextFireId?: string;
  nextDueAt: number;
}

/** How the binding packs a report (crates/node/src/lane.rs, `slot`, `kind`, `flag`). */
const LAYOUT = reportLayout();
const FIELDS = LAYOUT.fields;
const KINDS = LAYOUT.kinds;
const S = LAYOUT.slots;
const F = LAYOUT.flags;

/** The reports of one `take`, unpacked. */
export function unpackReports({ nums, strs }: JsLaneBatch): JsLaneReport[] {
  const out: JsLaneReport[] = [];
  let s = 0;
  const num = (v: number) => (Number.isNaN(v) ? undefined : v);
  for (let i = 0; i + FIELDS <= nums.length; i += FIELDS) {
    const flags = nums[i + S.flags]!;
    const message = flags & F.message ? strs[s++] : undefined;
    const startError = flags & F.startError ? strs[s++] : undefined;
    const nextFireId = flags & F.nextFire ? strs[s++] : undefined;
    out.push({
      kind: KINDS[nums[i + S.kind]!]!,
      tag: nums[i + S.tag]!,
      token: nums[i + S.token]!,
      acquiredAt: nums[i + S.acquiredAt]!,
      expiresAt: nums[i + S.expiresAt]!,
      pid: num(nums[i + S.pid]!),
      startedAt: nums[i + S.startedAt]!,
      endedAt: nums[i + S.endedAt]!,
      durationMs: nums[i + S.durationMs]!,
      code: num(nums[i + S.code]!),
      signal: num(nums[i + S.signal]!),
      termSentAt: nums[i + S.termSentAt]!,
      nextDueAt: nums[i + S.nextDueAt]!,
      lockError: (flags & F.lockError) !== 0,
      groupEmpty: (flags & F.groupEmpty) !== 0,
      timedOut: (flags & F.timedOut) !== 0,
      killSent: (flags & F.killSent) !== 0,
      settled: (flags & F.settled) !== 0,
      message,
      startError,
      nextFireId,
    });
  }
  return out;
}
/** A report as the binding gives it, its `kind` spelled out. */
export type LaneRun = Omit<JsLaneReport, 'kind'> & { kind: 'held' | 'gate-full' | 'store-failed' | 'ran' };
/** Its body runs: the lease's figures and `pid`. */
export type LaneStarted = Omit<JsLaneReport, 'kind'> & { kind: 'started' };
/** `disarmed`: taken back before its fire; nothing ran and nothing was acquired. */
export type LaneReport = LaneRun | { kind: 'disarmed'; tag: number };

/** How far ahead the lane heap takes fires, and how often at most it wakes for them. */
export const LANE_HORIZON_MS = 500;
export const LANE_MIN_GAP_MS = 250;

export class FireLane {
  readonly #native: NativeLane;
  readonly #pending = new Map<number, { resolve: (r: LaneReport) => void; started: (r: LaneStarted) => void; chained?: (r: LaneRun) => void }>();
  #nextTag = 1;
  #closed = false;

  constructor(store: NativeLeaseStore) {
    this.#native = new NativeLane(store, () => this.drain());
    this.#native.unref();
  }

  /**
   * Arms a fire; resolves with its last report, `started` is told before
   * that if its body ran, and `chained` of each settled no-op the lane
   * followed with the next fire (`nextFireId`). Undefined once closed.
   */
  fire(req: LaneFire, started: (r: LaneStarted) => void, chained?: (r: LaneRun) => void): { tag: number; report: Promise<LaneReport> } | undefined {
    if (this.#closed) return undefined;
    const tag = this.#nextTag;
    this.#nextTag = tag >= 0xffff_fffe ? 1 : tag + 1;
    if (!this.#native.arm({ ...req, tag })) return undefined;
    if (this.#pending.size === 0) this.#native.ref();
    const report = new Promise<LaneReport>((resolve) => this.#pending.set(tag, { resolve, started, ...(chained ? { chained } : {}) }));
    return { tag, report };
  }

  #base: LayeredEnv | undefined;

  /** What every body inherits, sent to the lane once rather than with each fire. */
  useBase(base: LayeredEnv): void {
    if (this.#base === base) return;
    this.#native.setBaseEnv([...base.list()]);
    this.#base = base;
  }

  #eager = false;

  /** Whether the lane tells every report at once (fires wait for a start to free a place) or settled runs in batches. */
  eager(yes: boolean): void {
    if (this.#eager === yes) return;
    this.#eager = yes;
    this.#native.setEager(yes);
  }

  /**
   * Takes a fire back before it fires: true if it had not fired (its report
   * is then `disarmed`). Either way no next fire follows it. Reports made
   * before are handed out first: a chained fire is counted, not lost.
   */
  disarm(tag: number): boolean {
    const taken = this.#native.disarm(tag);
    this.drain();
    if (taken) this.#settle({ kind: 'disarmed', tag });
    return taken;
  }

  /** Hands out every report waiting in the lane. */
  drain(): void {
    for (const r of unpackReports(this.#native.take())) {
      if (r.kind === 'started') this.#pending.get(r.tag)?.started(r as LaneStarted);
      else if (r.nextFireId != null) this.#pending.get(r.tag)?.chained?.(r as LaneRun);
      else this.#settle(r as LaneRun);
    }
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Stops the lane's threads; bodies still running are left for the next start to adopt. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.drain();
    this.#native.close();
    this.#native.unref();
  }

  #settle(r: LaneReport): void {
    const p = this.#pending.get(r.tag);
    if (!p) return;
    this.#pending.delete(r.tag);
    if (this.#pending.size === 0) this.#native.unref();
    p.resolve(r);
  }
}
