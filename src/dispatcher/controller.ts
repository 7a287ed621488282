import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { EventEmitter } from 'node:events';
import { accessSync, appendFileSync, closeSync, constants as fsConstants, existsSync, ftruncateSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { defaultAuditUrl, recordSink } from '../audit/recorded-sink.js';
import { sinkFromUrl } from '../audit/url.js';
import { parseAuditRecord, type AuditRecord, type AuditSink } from '../audit/record.js';
import { AuditWriter, type AuditWriterStats } from '../audit/writer.js';
import { crashPoint } from '../crash.js';
import { OrderlyError } from '../errors.js';
import { LeaseStore, type Lease, type LeaseInfo, type LeaseStoreOptions } from '../lease-store.js';
import { createRunLock, latestCityEventSeq, runLockHeld, runLockHeldFd, trimRunOutput } from '../native.js';
import { killLockHolders } from './lock-holders.js';
import type { CityContext } from '../orders/city.js';
import { parseCron } from '../orders/cron.js';
import { editDistance } from '../orders/spec.js';
import { validateScoped } from '../orders/scope.js';
import type { AuditedOutcome, OrderSpec, Outcome, ScopedOrder } from '../orders/types.js';
import { collectFinished, DEFAULT_GRACE_MS, finishReaped, nativeStartFailure, notStarted, runBody, wrappedCommand, type BodyResult } from './body.js';
import { FireLane, LANE_HORIZON_MS, LANE_MIN_GAP_MS, type LaneReport, type LaneRun } from './fire-lane.js';
import { nativeSpawner, signalName } from './spawner.js';
import { closeQuiet, existsNoFollow, isSlotName, openQuiet, RunSlots, unlinkQuiet } from './run-slots.js';
import { lockRecord } from './run-lock.js';
import type { ControllerEvent, ControllerEventInput, SkipReason } from './events.js';
import { bodyPlace, type BodyPlace } from './body-env.js';
import { LayeredEnv } from './layered-env.js';
import { runCheck } from './check.js';
import { appendEvent, EventLogFollower, isOrderMarker, type CityEvent, type PublishInput } from './event-log.js';
import { STEP_MS, TimerHeap } from './timers.js';
import { setLongTimeout } from './long-timeout.js';
import { clusterFence } from '../cluster/shards.js';

export interface ControllerOptions {
  /** State directory: leases (the WAL), run locks, events. Created if missing. */
  state: string;
  orders: OrderSpec[];
  /** Rig names; each `scope = "rig"` order runs once per rig. */
  rigs?: string[];
  /** Where audited runs go; default `sqlite:<state>/audit.db` (the CLI's default too), recorded in the state for later commands. */
  audit?: AuditSink;
  /**
   * The Gas City city the orders belong to (`loadCity(...).city`): bodies
   * then run where Gas City runs them (the city's directory, or the rig's
   * for rig orders) with its variables (GC_CITY, GC_RIG_ROOT, BEADS_DIR, ...),
   * and event orders follow its event log.
   */
  city?: CityContext;
  /** Working directory of exec bodies outside a city; default the process's. */
  cwd?: string;
  /** Environment bodies start from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Pass bodies only these inherited variables (plus Gas City's and
   * orderly's own) instead of the controller's whole environment, which may
   * hold credentials the bodies have no business with.
   */
  envAllow?: string[];
  /** SIGTERM→SIGKILL grace for timed-out bodies; default 2 s, as Gas City. */
  killGraceMs?: number;
  /**
   * How exec bodies are started: 'native' (default) is posix_spawn with one
   * reaping thread for all bodies (crates/spawn); 'node' is Node's
   * child_process.spawn (bench:schedule compares the two).
   */
  spawner?: 'native' | 'node';
  /**
   * Cooldown exec orders are armed ahead and fired by the fire lane's native
   * threads (crates/lane), so the JS thread is not woken per fire; default
   * true where the native spawner runs (never with `spawner: 'node'` or a
   * cluster). False fires every order from JS.
   */
  fireLane?: boolean;
  /** How often condition orders without an `interval` run their check (Gas City's patrol tick); default 30 s. */
  patrolMs?: number;
  /**
   * The Gas City event log event orders follow (default: the city's
   * `.gc/events.jsonl`). Without one, `publish()` fires event orders
   * directly and nothing remembers what they saw.
   */
  eventLog?: string;
  /** How often the event log is read for new events; default 1 s. */
  eventPollMs?: number;
  /** Append every event to this file as JSON lines (e.g. `<state>/events.jsonl`). */
  eventsFile?: string;
  /**
   * Most audit records that may wait for the sink (default 10,000). At the
   * bound no order fires (skipped: audit-backlog-full) until the sink catches
   * up: records are never dropped, and the outbox on disk stays bounded.
   */
  maxAuditBacklog?: number;
  /** Delete audit records older than `days`, keeping `keepPerOrder` per order; hourly, never in the hot path. */
  retention?: { days: number; keepPerOrder: number; everyMs?: number };
  /** Receives every event, including those of boot recovery (which happen before `start` resolves). */
  onEvent?: (event: ControllerEvent) => void;
  /** Options of the lease store under `<state>/leases` (segment size, gates, …). */
  store?: LeaseStoreOptions;
  /** Start the timers (default true); false for a controller that only fires on demand. */
  schedule?: boolean;
  /**
   * Cluster mode: which orders this member may fire, and under which shard
   * epoch. Orders it does not own are neither timed nor fired.
   */
  cluster?: ClusterGate;
  /** Runs formula orders (Gas City agent workflows); without it they are reported, not run. */
  formulaRunner?: (order: OrderSpec, ctx: { scopedName: string; rig?: string; fireId: string; fence: bigint }) => Promise<{ didWork: boolean }>;
}

export interface ClusterGate {
  readonly memberId: string;
  /** The shard and epoch under which `scopedName` may fire now; undefined when it is not this member's to fire. */
  ownership(scopedName: string): { shard: number; epoch: number } | undefined;
  /**
   * When this member took the order's shard over from another owner (epoch
   * ms): its cooldown counts from then, as the last fire is the old owner's
   * and unknown here. Undefined for a shard nobody owned before.
   */
  takenOverAt(scopedName: string): number | undefined;
}

export interface FireResult {
  scopedName: string;
  fireId?: string;
  outcome?: Outcome;
  skipped?: SkipReason;
  detail?: string;
}

/** One order's line in the feed: what no-op runs leave behind without a row per tick. */
export interface FeedEntry {
  scopedName: string;
  description?: string;
  trigger: string;
  /** active: running now; never: not fired yet; else how the last run ended, in the words `run` prints. */
  status: 'active' | 'never' | 'no-op' | AuditedOutcome;
  lastFiredAt?: number;
  lastFireId?: string;
  lastOutcome?: Outcome | 'interrupted';
  noOpsSinceStart: number;
  nextDueAt?: number;
}

export interface ControllerStats {
  fires: number;
  noOps: number;
  didWork: number;
  failed: number;
  timeouts: number;
  skipped: number;
  interrupted: number;
  running: number;
  audit: AuditWriterStats;
  walSyncs: number;
  walBytes: number;
  poisoned: boolean;
  /** Why the log refuses writes (a full disk, an I/O error, its segment deleted under it). */
  poisonReason?: string;
}

interface Meta {
  fireId: string;
  order: string;
  rig?: string;
  trigger: string;
  controllerPid: number;
  /** Event orders: the first event seq this fire covers (the cursor before it, plus one). */
  eventFrom?: number;
  /** Cluster mode: the shard and the epoch this member held it under. */
  shard?: number;
  epoch?: number;
  /** Exec fires: the run slot whose files it uses (RunSlots); absent before slots, when files were named by fire id. */
  slot?: string;
}

const LEASE_MARGIN_MS = 60_000;
const DEFAULT_KILL_GRACE_MS = 2_000;
/** What a running body's output file keeps on disk: the tail the audit record takes (64 KiB) and more. */
const OUTPUT_KEEP_BYTES = 128 * 1024;
const OUTPUT_TRIM_MS = 500;
/** Records of another instance this recent mean it runs now. */
const OTHER_CONTROLLER_WINDOW_MS = 24 * 3600_000;
const OTHER_CONTROLLER_CHECK_MS = 10 * 60_000;
const OTHER_CONTROLLER_FIRST_CHECK_MS = 2_000;
/** A lastRun this far past now is taken for a clock step, not for scheduling jitter. */
const CLOCK_SLACK_MS = 1_000;
const DEFAULT_PATROL_MS = 30_000;
const DEFAULT_EVENT_POLL_MS = 1_000;
const RETRY_HELD_MS = 5_000;
const RETRY_GATE_MS = 1_000;
const ADOPT_POLL_MS = 500;
const DEFAULT_MAX_AUDIT_BACKLOG = 10_000;
/** Sink errors no retry can fix. */
const CONFIG_ERRORS = new Set(['ERR_AUDIT_DRIVER', 'ERR_AUDIT_SCHEMA', 'ERR_AUDIT_URL']);
/** How often settled runs' files are looked at, to delete those whose release is durable. */
const SWEEP_MS = 1_000;
/** See Controller.#starting. */
const MAX_STARTING = 128;
/** A lane run ending this close to its order's next due time is reported at once rather than with the next batch: the lane may hold a settled run 400 ms, and the lane heap wakes at most every 250 ms. */
const LANE_URGENT_MARGIN_MS = 900;
/**
 * Which orders' next fires the lane arms itself: those that fire at least
 * once a minute (for a rarer one JS's work per fire is noise), up to 256 at
 * a time. A chain keeps its run slot between fires, and a slot is three
 * files: chained without a bound, a cold start of 10,000 orders made 30,000
 * files (twice the wave's time, in ext4's inode allocator) where shared
 * slots need a few hundred. The rest are armed from JS per fire.
 */
const LANE_CHAIN_MAX = 256;
const LANE_CHAIN_INTERVAL_MS = 60_000;

/**
 * Fires orders on time, one run at a time per scoped order (G1), keeps the
 * cadence across restarts (G2), turns every run that did work, failed or
 * timed out into exactly one audit record (G3) and writes nothing for a
 * no-op (G4). State lives in a durable LeaseStore in `state`.
 */
export class Controller extends EventEmitter<{ event: [ControllerEvent] }> {
  readonly state: string;
  readonly #store: LeaseStore;
  readonly #audit: AuditWriter;
  readonly #opts: ControllerOptions;
  readonly #timers: TimerHeap;
  /** Lane orders' due times: taken in batches, ahead of time (see FireLane). */
  readonly #laneTimers: TimerHeap;
  #lane: FireLane | undefined;
  /** Lane fires armed and not yet heard to run (or to end), by order. */
  readonly #armed = new Map<string, { tag: number; spec: OrderSpec; due: number; armedAt: number }>();
  /** Every lane fire from its arming to its last report, through the next fires the lane arms itself. */
  readonly #chains = new Map<string, { tag: number; spec: OrderSpec }>();
  /** Of #chains, those armed to repeat (at most LANE_CHAIN_MAX). */
  #repeating = 0;
  readonly #runsDir: string;
  #orders = new Map<string, ScopedOrder>();
  /** Scoped names with a run in this process (or an adopted body). */
  readonly #busy = new Map<string, Promise<FireResult>>();
  readonly #lastCheck = new Map<string, number>();
  readonly #lastFire = new Map<string, { fireId: string; outcome?: Outcome | 'interrupted' }>();
  readonly #noOps = new Map<string, number>();
  #stopping = false;
  #poisoned = false;
  /** Log figures as of stop(), when the store closes. */
  #finalWal: { walSyncs: number; walBytes: number; poisoned: boolean; poisonReason?: string } | undefined;
  readonly #counts = { fires: 0, noOps: 0, didWork: 0, failed: 0, timeouts: 0, skipped: 0, interrupted: 0 };

  private constructor(opts: ControllerOptions, store: LeaseStore, audit: AuditWriter) {
    super();
    this.#opts = opts;
    this.state = resolve(opts.state);
    this.#store = store;
    this.#audit = audit;
    this.#runsDir = join(this.state, 'runs');
    this.#instance = instanceId(this.state);
    this.#timers = new TimerHeap(
      (key, due) => this.#onDue(key, due),
      undefined,
      (key) => {
        const o = this.#orders.get(key);
        if (o) this.#schedule(o);
      },
    );
    this.#laneTimers = new TimerHeap(
      (key, due, inMs) => {
        // Awake anyway: settled runs waiting in the lane are taken now, not with a wake of their own.
        this.#lane?.drain();
        this.#onDue(key, due, inMs);
      },
      undefined,
      undefined,
      { horizonMs: LANE_HORIZON_MS, minGapMs: LANE_MIN_GAP_MS },
    );
    const native = store.native;
    if (opts.fireLane !== false && opts.spawner !== 'node' && !opts.cluster && native && nativeSpawner() !== null) this.#lane = new FireLane(native);
  }

  /** Opens the state, recovers what a crash left, and starts the timers. */
  static async start(opts: ControllerOptions): Promise<Controller> {
    const state = resolve(opts.state);
    // Created for the owner alone, whatever the umask (a umask only takes bits away): records, leases, run output.
    try {
      mkdirSync(join(state, 'runs'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new OrderlyError('ERR_STATE_DIR', `cannot create the state directory ${join(state, 'runs')}: ${whyNotWritable(state) ?? (err as Error).message}`);
    }
    const store = await LeaseStore.open(join(state, 'leases'), opts.store);
    const sink = opts.audit ?? sinkFromUrl(defaultAuditUrl(state));
    // Later commands (feed, history, fire, doctor) read the same database; not
    // recording it only costs them the audited details, so it never stops a start.
    try {
      recordSink(state, sink.url);
    } catch {
      // A state that refuses writes fails at the first lease, loudly.
    }
    // The writer is built before the controller it reports to.
    let report: { acked: (ids: readonly bigint[]) => void; failed: (message: string) => void } | undefined;
    const writer = new AuditWriter(sink, {
      onCommitted: (ids) => report?.acked(ids),
      onError: (err, attempt) =>
        report?.failed(`${sink.url}: ${err instanceof Error ? err.message : String(err)} (attempt ${attempt}; records wait in the outbox)`),
    });
    const controller = new Controller(opts, store, writer);
    if (opts.onEvent) controller.on('event', opts.onEvent);
    report = {
      acked: (ids) => controller.#acked(ids),
      failed: (message) => controller.#emit({ type: 'error', code: 'ERR_AUDIT_SINK', message }),
    };
    // A start that fails must not leave the lease log locked, the sink
    // connected, or adopted bodies watched by a controller nobody holds.
    const abandon = async (): Promise<void> => {
      controller.#stopping = true;
      await controller.#close(0).catch(() => {});
    };
    try {
      await sink.open();
    } catch (err) {
      // A database that is down is not fatal: records wait in the outbox (G3).
      // A configuration mistake is: it would retry forever.
      const code = OrderlyError.from(err).code;
      if (CONFIG_ERRORS.has(code)) {
        await abandon();
        throw OrderlyError.from(err);
      }
      controller.#emit({ type: 'error', code: 'ERR_AUDIT_SINK', message: `${sink.url}: ${err instanceof Error ? err.message : String(err)}` });
    }
    if (opts.retention) writer.scheduleRetention(opts.retention);
    try {
      controller.#setOrders(opts.orders);
      await controller.#recover();
    } catch (err) {
      await abandon();
      throw err;
    }
    if (opts.schedule !== false) controller.#scheduleAll();
    controller.#followEvents();
    controller.#watchPoison();
    controller.#watchOtherControllers();
    return controller;
  }

  get orders(): ScopedOrder[] {
    return [...this.#orders.values()];
  }

  /** Next due time per scheduled order (epoch ms). */
  nextDue(scopedName: string): number | undefined {
    return this.#timers.due(scopedName) ?? this.#laneTimers.due(scopedName) ?? this.#armed.get(scopedName)?.due ?? this.#deferred.get(scopedName);
  }

  /** Every order with its lastFiredAt, last outcome and no-op count since start (G4 keeps no-ops out of the database). */
  feed(): FeedEntry[] {
    return [...this.#orders.values()].map((o) => {
      const lane = this.#laneFire(o.scopedName);
      // Settled in the lane and not yet heard of: only a plain no-op is released there.
      const last = lane === 'settled' ? { outcome: 'no-op' as const } : this.#lastFire.get(o.scopedName);
      const lastFiredAt = this.#store.lastRun(o.scopedName);
      const running = this.#busy.has(o.scopedName) && (lane === undefined || lane === 'running');
      const status: FeedEntry['status'] = running ? 'active' : (last?.outcome ?? (lastFiredAt !== undefined ? 'no-op' : 'never'));
      const nextDueAt = this.nextDue(o.scopedName);
      return {
        scopedName: o.scopedName,
        ...(o.spec.description ? { description: o.spec.description } : {}),
        trigger: o.spec.trigger,
        status,
        ...(lastFiredAt !== undefined ? { lastFiredAt } : {}),
        ...(last && 'fireId' in last ? { lastFireId: last.fireId } : {}),
        ...(last?.outcome ? { lastOutcome: last.outcome } : {}),
        noOpsSinceStart: this.#noOps.get(o.scopedName) ?? 0,
        ...(nextDueAt !== undefined ? { nextDueAt } : {}),
      };
    });
  }

  /**
   * Where the lane is with an order's armed fire, as far as the lease store
   * says before JS hears (reports wait to be batched): `armed` until it
   * takes the lease, then `running` while the lease is held (a body runs,
   * or its end waits for JS), then `settled`: a plain no-op, released there.
   * Undefined: no fire of the order is armed in the lane.
   */
  #laneFire(key: string): 'armed' | 'running' | 'settled' | undefined {
    const armed = this.#armed.get(key);
    if (armed === undefined) return undefined;
    try {
      // lastRun first: a lease released after it was read is a fire that had begun by then.
      if ((this.#store.lastRun(key) ?? -Infinity) < armed.armedAt) return 'armed';
      return this.#store.holder(key) !== undefined ? 'running' : 'settled';
    } catch {
      return 'armed'; // a closed store shows no new fire
    }
  }

  #laneRunning(): number {
    let n = 0;
    for (const key of this.#armed.keys()) if (this.#laneFire(key) === 'running') n++;
    return n;
  }

  stats(): ControllerStats {
    const s = this.#poisonSafeStats();
    return {
      ...this.#counts,
      running: this.#busy.size - this.#armed.size + this.#laneRunning(),
      audit: this.#audit.stats(),
      walSyncs: s.walSyncs,
      walBytes: s.walBytes,
      poisoned: this.#poisoned || s.poisoned,
      ...(s.poisonReason ? { poisonReason: s.poisonReason } : {}),
    };
  }

  lastRun(scopedName: string): number | undefined {
    return this.#store.lastRun(scopedName);
  }

  /** A manual run: fires now if not running, and advances the cooldown. */
  fire(scopedName: string): Promise<FireResult> {
    const o = this.#orders.get(scopedName);
    if (!o) {
      const detail = `no order named ${scopedName}${this.#suggest(scopedName)}`;
      this.#emit({ type: 'skipped', scopedName, reason: 'unknown-order', detail });
      return Promise.resolve({ scopedName, skipped: 'unknown-order', detail });
    }
    // Armed in the lane and not fired yet: taken back, and fired now instead.
    const armed = this.#armed.get(scopedName);
    if (armed && this.#lane?.disarm(armed.tag)) return (this.#busy.get(scopedName) ?? Promise.resolve()).then(() => this.#start(o, 'manual'));
    return this.#start(o, 'manual');
  }

  /**
   * Publishes an event. With an event log (a city's, or `eventLog`) it is
   * appended there, as `gc event emit` would, and the event orders whose
   * `on` matches fire from the log with their cursors; without one they
   * fire directly. Resolves with the fires it started.
   */
  async publish(event: string | PublishInput): Promise<{ event?: CityEvent; fires: FireResult[] }> {
    const input = typeof event === 'string' ? { type: event } : event;
    if (typeof input.type !== 'string' || input.type.trim() === '' || /[\n\0]/.test(input.type)) {
      throw new OrderlyError('ERR_INVALID_ARG', `an event type must be a non-empty one-line string, got ${JSON.stringify(input.type)}`);
    }
    if (!this.#events) {
      // No order follows the log. A matching order fires directly, and the event is not logged: its
      // cursor would not cover it, so a controller following the log later would fire it again.
      // Otherwise the event is still the city's, recorded as gc event emit would.
      const hit = [...this.#orders.values()].filter((o) => o.spec.trigger === 'event' && o.spec.on === input.type);
      const path = hit.length === 0 ? this.#eventLogPath() : undefined;
      const written = path ? appendEvent(path, input, this.#opts.env ?? process.env, this.#eventFloor()) : undefined;
      return { ...(written ? { event: written } : {}), fires: await Promise.all(hit.map((o) => this.#start(o, `event:${input.type}`))) };
    }
    const written = appendEvent(this.#events.follower.path, input, this.#opts.env ?? process.env, this.#eventFloor());
    return { event: written, fires: await this.#pollEvents() };
  }

  /** Swaps in a new order set; runs in flight and lastRun are kept. */
  reload(orders: OrderSpec[]): void {
    this.#opts.orders = orders;
    const previous = new Map(this.#orders);
    this.#setOrders(orders);
    for (const key of previous.keys()) if (!this.#orders.has(key)) this.#unschedule(key);
    // A lane fire of an order this reload removed or changed is taken back, or ends with the run in progress; the order as it is now is scheduled once that settles.
    for (const [key, chain] of this.#chains) if (this.#orders.get(key)?.spec !== chain.spec) this.#lane?.disarm(chain.tag);
    this.#carryRenames(previous);
    this.#scheduleAll();
    // Event orders new with this reload: follow the log now; orders already followed pick them up at the next poll.
    if (!this.#events) this.#followEvents();
    else void this.#pollEvents();
  }

  /**
   * An order file renamed while the controller runs is the same order under
   * a new name when its body, trigger and rig are unchanged: the new name
   * keeps the old one's lastRun (durably) and waits for a run of the old one
   * still in progress, so a rename neither fires early nor overlaps.
   */
  #carryRenames(previous: Map<string, ScopedOrder>): void {
    const gone = [...previous.values()].filter((o) => !this.#orders.has(o.scopedName));
    for (const o of this.#orders.values()) {
      if (previous.has(o.scopedName)) continue;
      const old = gone.find((g) => g.rig === o.rig && g.spec.trigger === o.spec.trigger && sameBody(g.spec, o.spec));
      if (!old) continue;
      this.#renamedFrom.set(o.scopedName, old.scopedName);
      const last = this.#store.lastRun(old.scopedName);
      if (last !== undefined && last > (this.#store.lastRun(o.scopedName) ?? -Infinity)) {
        this.#store.carryLastRun(o.scopedName, last).catch((err: unknown) => {
          this.#emit({ type: 'error', scopedName: o.scopedName, code: OrderlyError.from(err).code, message: `could not carry the lastRun of ${old.scopedName}: ${OrderlyError.from(err).message}` });
        });
      }
      this.#emit({ type: 'warning', scopedName: o.scopedName, code: 'WARN_ORDER_RENAMED', message: `${old.scopedName} is now ${o.scopedName}: it keeps its lastRun${this.#busy.has(old.scopedName) ? ' and waits for the run in progress' : ''}` });
    }
  }

  /** New name → old name, for orders renamed by a reload. */
  readonly #renamedFrom = new Map<string, string>();

  /** " (did you mean ...?)" for an unknown scoped name: its rig instances, or the closest names. */
  #suggest(name: string): string {
    const keys = [...this.#orders.keys()];
    const rigs = keys.filter((k) => k.startsWith(`${name}:rig:`));
    const near = rigs.length > 0 ? rigs : keys.filter((k) => closeEnough(name, k));
    const hint = 'scoped names are <name> for city orders and <name>:rig:<rig> for rig orders';
    return near.length > 0 ? ` (did you mean ${near.slice(0, 5).join(', ')}? ${hint})` : ` (${hint}; orderly-dispatch list shows them)`;
  }

  /**
   * Stops firing, waits up to `graceMs` for running bodies, then closes the
   * state. Bodies still running are left running: the next start adopts them.
   */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#timers.stop();
    this.#laneTimers.stop();
    for (const chain of this.#chains.values()) this.#lane?.disarm(chain.tag);
    if (this.#events) clearInterval(this.#events.timer);
    if (this.#otherWatch) clearInterval(this.#otherWatch);
    if (this.#otherFirst) clearTimeout(this.#otherFirst);
    if (this.#trimmer) clearInterval(this.#trimmer);
    const deadline = Date.now() + graceMs;
    await Promise.race([Promise.allSettled([...this.#busy.values()]), new Promise<void>((r) => setLongTimeout(r, graceMs, { unref: true }))]);
    await this.#close(Math.max(1000, deadline - Date.now()));
  }

  /** Closes what start opened, giving the audit writer `auditMs` to drain (the rest waits in the outbox). */
  async #close(auditMs: number): Promise<void> {
    await this.#audit.close(auditMs);
    await this.#audit.sink.close().catch(() => undefined);
    this.#finalWal = this.#poisonSafeStats();
    // Before the store: its threads acquire and release. Bodies still running are adopted by the next start.
    this.#lane?.close();
    await this.#store.close();
    if (this.#sweeper) clearInterval(this.#sweeper);
    // Closing synced every release, unless the log was poisoned: then the files stay for the next start to settle from.
    if (!this.#finalWal.poisoned) this.#sweep(true);
  }

  // ------------------------------------------------------------ scheduling

  #setOrders(specs: OrderSpec[]): void {
    const next = new Map<string, ScopedOrder>();
    for (const o of validateScoped(specs, this.#opts.rigs ?? [])) next.set(o.scopedName, o);
    for (const spec of specs) {
      if (spec.formula !== undefined && !this.#opts.formulaRunner) {
        this.#emit({ type: 'skipped', scopedName: spec.name, reason: 'no-formula-runner', detail: `formula order ${spec.name} (formula ${spec.formula}) needs a formula runner; it is loaded and will not fire` });
      }
      if (spec.trigger === 'webhook') {
        this.#emit({ type: 'skipped', scopedName: spec.name, reason: 'webhook-only', detail: `webhook order ${spec.name} is dispatched by Gas City's webhook receiver, which orderly does not have; it fires only with orderly-dispatch fire` });
      }
    }
    this.#orders = next;
  }

  #unschedule(key: string): void {
    this.#timers.delete(key);
    this.#laneTimers.delete(key);
  }

  /** Cooldown exec orders are fired by the lane (never in a cluster: ownership is checked per fire). */
  #inLane(o: ScopedOrder): boolean {
    return this.#lane !== undefined && o.spec.exec !== undefined && o.spec.trigger === 'cooldown';
  }

  #scheduleAll(): void {
    for (const o of this.#orders.values()) this.#schedule(o);
  }

  /**
   * lastRun, but never later than now: a lastRun in the future means the
   * wall clock was stepped back since that fire (while this controller was
   * down, or under it). Waiting for it would stall the order for the size
   * of the step; counting from now, it waits at most one interval.
   */
  #lastRunSeen(scopedName: string, now: number): number | undefined {
    const last = this.#store.lastRun(scopedName);
    if (last === undefined || last <= now + CLOCK_SLACK_MS) return last;
    if (!this.#clockWarned.has(scopedName)) {
      this.#clockWarned.add(scopedName);
      this.#emit({
        type: 'warning',
        scopedName,
        code: 'WARN_CLOCK_STEPPED_BACK',
        message: `lastRun of ${scopedName} is ${Math.round((last - now) / 1000)} s in the future (the clock was stepped back): its next fire counts from now, so it waits at most one interval`,
      });
    }
    return now;
  }

  readonly #clockWarned = new Set<string>();
  /** Wall and monotonic time of this process's latest acquire per order. */
  readonly #acquiredMono = new Map<string, { wall: number; mono: number }>();

  /** When `o` is next due, from lastRun so a restart keeps the cadence (G2). */
  #schedule(o: ScopedOrder, retryInMs?: number): void {
    if (this.#stopping || this.#opts.schedule === false) return;
    const { spec } = o;
    if (!spec.enabled || this.#busy.has(o.scopedName) || (spec.formula !== undefined && !this.#opts.formulaRunner) || (this.#opts.cluster && !this.#opts.cluster.ownership(o.scopedName))) {
      this.#unschedule(o.scopedName);
      return;
    }
    const now = Date.now();
    const timers = this.#inLane(o) ? this.#laneTimers : this.#timers;
    (timers === this.#timers ? this.#laneTimers : this.#timers).delete(o.scopedName);
    if (retryInMs !== undefined) {
      timers.set(o.scopedName, now + retryInMs);
      return;
    }
    const seen = this.#lastRunSeen(o.scopedName, now);
    // After a takeover the old owner's last fire is unknown here: count from the takeover, never early, at most one interval late.
    const takenOver = this.#opts.cluster?.takenOverAt(o.scopedName);
    const last = takenOver !== undefined && (seen === undefined || seen < takenOver) ? takenOver : seen;
    switch (spec.trigger) {
      case 'cooldown': {
        const jitter = spec.jitterMs > 0 ? Math.floor(Math.random() * spec.jitterMs) : 0;
        // A fire of this process is timed on the monotonic clock: a wall-clock step does not move the cooldown.
        const mine = this.#acquiredMono.get(o.scopedName);
        const stepped = mine !== undefined && mine.wall === this.#store.lastRun(o.scopedName) && Math.abs(now - mine.wall - (performance.now() - mine.mono)) > STEP_MS;
        const due = last === undefined ? now : stepped ? now + (mine.mono + spec.intervalMs! + jitter - performance.now()) : last + spec.intervalMs! + jitter;
        timers.set(o.scopedName, due);
        break;
      }
      case 'cron': {
        const cron = parseCron(spec.schedule!, spec.tz, 'schedule');
        const missedOnce = spec.missed === 'once' && last !== undefined && (cron.next(last) ?? Infinity) <= now;
        const next = missedOnce ? now : cron.next(Math.max(now, last ?? 0));
        if (next !== undefined) this.#timers.set(o.scopedName, next, 'wall');
        break;
      }
      case 'condition': {
        const checked = this.#lastCheck.get(o.scopedName);
        this.#timers.set(o.scopedName, checked === undefined ? now : now + (checked + (spec.intervalMs ?? this.#opts.patrolMs ?? DEFAULT_PATROL_MS) - performance.now()));
        break;
      }
      default:
        this.#unschedule(o.scopedName);
    }
  }

  /** `inMs`: from the lane heap, which hands out fires ahead of their time. */
  #onDue(key: string, due: number, inMs?: number): void {
    const o = this.#orders.get(key);
    if (!o || this.#stopping) return;
    if (o.spec.trigger === 'condition') {
      void this.#checkCondition(o);
      return;
    }
    if (this.#starting >= MAX_STARTING) {
      this.#deferred.set(key, due);
      this.#eagerWhileWaiting();
      return;
    }
    void this.#start(o, o.spec.trigger, due, inMs !== undefined && this.#inLane(o) ? inMs : undefined);
  }

  /**
   * Fires between their start and their body's start (the acquire, its
   * sync, the spawn). When thousands come due at once (a cold start), they
   * go through this many at a time: started all together, the spawns ran
   * back to back with every exit waiting behind them, and the controller
   * held the state of every body at once (~400 MB for 10,000).
   */
  #starting = 0;
  /** Orders whose due time came while MAX_STARTING fires were starting, in due order, with that due time. */
  readonly #deferred = new Map<string, number>();
  #draining = false;

  /**
   * Fires of a burst (started from #deferred) whose body has not been told
   * started yet. The lane tells each start at once until the last of them:
   * the end of a cold start is then known when it happens, not with the
   * next batch of reports up to the lane's flush delay later.
   */
  readonly #burst = new Set<string>();

  #started(): void {
    this.#starting--;
    this.#eagerWhileWaiting();
    if (this.#deferred.size === 0 || this.#draining) return;
    // Not from inside the fire that called this: exits waiting in the loop are taken first.
    this.#draining = true;
    setImmediate(() => {
      this.#draining = false;
      for (const [key, due] of this.#deferred) {
        if (this.#starting >= MAX_STARTING) break;
        this.#deferred.delete(key);
        const o = this.#orders.get(key);
        if (o && !this.#stopping && !this.#busy.has(key)) void this.#start(o, o.spec.trigger, due, this.#inLane(o) ? due - Date.now() : undefined, true);
      }
      this.#eagerWhileWaiting();
    });
  }

  /** While fires wait for a place, the lane tells each start at once: that is what frees one. */
  #eagerWhileWaiting(): void {
    this.#lane?.eager(this.#deferred.size > 0 || this.#burst.size > 0);
  }

  async #checkCondition(o: ScopedOrder): Promise<void> {
    this.#lastCheck.set(o.scopedName, performance.now());
    const place = this.#place(o, 'check');
    const pass = await runCheck(o.spec.check!, { cwd: place.cwd, env: place.env, timeoutMs: o.spec.checkTimeoutMs, graceMs: this.#killGraceMs() });
    if (pass && !this.#stopping) await this.#start(o, 'condition');
    else this.#schedule(o);
  }

  // ------------------------------------------------------------ one fire

  /** `burst`: started from #deferred (see #burst). */
  #start(o: ScopedOrder, trigger: string, due?: number, inMs?: number, burst = false): Promise<FireResult> {
    if (this.#stopping) return Promise.resolve({ scopedName: o.scopedName, skipped: 'stopping' });
    if (!o.spec.enabled) return Promise.resolve(this.#skip(o, 'disabled'));
    if (o.spec.formula !== undefined && !this.#opts.formulaRunner) {
      return Promise.resolve(this.#skip(o, 'no-formula-runner', `formula ${o.spec.formula} needs a formula runner`));
    }
    const running = this.#busy.get(o.scopedName);
    if (running) return Promise.resolve(this.#skip(o, 'held', 'a run of this order is in progress'));
    // Read once: ownership lapses with time (the renew deadline), so the fire uses the answer this check got.
    const owner = this.#opts.cluster?.ownership(o.scopedName);
    if (this.#opts.cluster && !owner) {
      this.#unschedule(o.scopedName);
      return Promise.resolve(this.#skip(o, 'not-owner', `cluster member ${this.#opts.cluster.memberId} does not own this order's shard now`));
    }
    const oldName = this.#renamedFrom.get(o.scopedName);
    if (oldName !== undefined && this.#busy.has(oldName)) {
      // Scheduled again from its (carried) lastRun when that run ends.
      return Promise.resolve(this.#skip(o, 'held', `a run of ${oldName}, its name before a rename, is in progress`));
    }
    const backlog = this.#audit.backlog;
    const max = this.#opts.maxAuditBacklog ?? DEFAULT_MAX_AUDIT_BACKLOG;
    if (backlog >= max) {
      // No run starts, so nothing consumes #retryAfter here: retry directly.
      this.#unschedule(o.scopedName);
      const skipped = this.#skip(o, 'audit-backlog-full', `${backlog} audit records wait for ${this.#audit.sink.url}; orders fire again once it catches up`);
      this.#schedule(o, RETRY_HELD_MS);
      return Promise.resolve(skipped);
    }
    this.#unschedule(o.scopedName);
    this.#deferred.delete(o.scopedName);
    this.#starting++;
    if (burst) this.#burst.add(o.scopedName);
    let started = false;
    const onStarted = () => {
      if (started) return;
      started = true;
      this.#burst.delete(o.scopedName);
      this.#started();
    };
    const firing = inMs !== undefined && this.#inLane(o) ? this.#fireInLane(o, trigger, due, inMs, onStarted) : this.#fire(o, trigger, due, owner, onStarted);
    const run = firing.finally(() => {
      onStarted();
      this.#busy.delete(o.scopedName);
      this.#killOnStart.delete(o.scopedName);
      // The order as it is now: a reload during the run may have changed it.
      const current = this.#orders.get(o.scopedName);
      if (current) this.#schedule(current, this.#retryAfter.get(o.scopedName));
      this.#retryAfter.delete(o.scopedName);
      // Events that arrived while it ran fire it again.
      if (current?.spec.trigger === 'event') setImmediate(() => void this.#pollEvents());
      // An order renamed while this ran was waiting for it.
      for (const [renamed, old] of this.#renamedFrom) {
        const n = old === o.scopedName ? this.#orders.get(renamed) : undefined;
        if (n) this.#schedule(n);
      }
    });
    this.#busy.set(o.scopedName, run);
    return run;
  }

  readonly #retryAfter = new Map<string, number>();
  /** The event log event orders follow, and the seqs of unconsumed events per type they listen for. */
  #events: { follower: EventLogFollower; timer: NodeJS.Timeout; seen: Map<string, number[]>; failing?: string } | undefined;

  #eventLogPath(): string | undefined {
    return this.#opts.eventLog ?? this.#opts.city?.eventLog;
  }

  #eventOrders(): ScopedOrder[] {
    return [...this.#orders.values()].filter((o) => o.spec.trigger === 'event' && o.spec.enabled);
  }

  /** Starts following the event log, from the lowest cursor of any event order (0: everything the log retains, as Gas City). */
  #followEvents(): void {
    const orders = this.#eventOrders();
    if (orders.length === 0 || this.#opts.schedule === false) return;
    const path = this.#eventLogPath();
    if (!path) {
      for (const o of orders) {
        this.#emit({ type: 'skipped', scopedName: o.scopedName, reason: 'no-event-source', detail: `event order ${o.scopedName} (on = ${o.spec.on}) has no event log to follow; it fires only on publish() or orderly-dispatch fire` });
      }
      return;
    }
    const after = Math.min(...orders.map((o) => Number(this.#store.cursor(o.scopedName) ?? 0n)));
    const timer = setInterval(() => void this.#pollEvents(), this.#opts.eventPollMs ?? DEFAULT_EVENT_POLL_MS).unref();
    this.#events = { follower: new EventLogFollower(path, after), timer, seen: new Map() };
    void this.#pollEvents();
  }

  /**
   * Reads what the log gained and fires each idle event order that has an
   * event of its type past its cursor (Gas City's rule: one fire covers
   * every such event; events an order's own beads wrote do not count).
   */
  #pollEvents(): Promise<FireResult[]> {
    const ev = this.#events;
    if (!ev || this.#stopping) return Promise.resolve([]);
    const orders = this.#eventOrders();
    if (!this.#readEvents()) return Promise.resolve([]);
    // A huge log is read a few MiB per turn, without holding the event loop.
    if (ev.follower.more) setImmediate(() => void this.#pollEvents());
    const starts: Array<Promise<FireResult>> = [];
    const lowest = new Map<string, bigint>();
    for (const o of orders) {
      const type = o.spec.on!;
      const cursor = this.#store.cursor(o.scopedName) ?? 0n;
      lowest.set(type, (lowest.get(type) ?? cursor) < cursor ? lowest.get(type)! : cursor);
      if (this.#busy.has(o.scopedName)) continue;
      if (this.#retryPending(o.scopedName)) starts.push(this.#start(o, `event:${type}:retry`));
      else if ((ev.seen.get(type) ?? []).some((seq) => BigInt(seq) > cursor)) starts.push(this.#start(o, `event:${type}`));
    }
    // What every listener has consumed is not needed again.
    for (const [type, seqs] of ev.seen) {
      const floor = lowest.get(type);
      ev.seen.set(type, floor === undefined ? [] : seqs.filter((seq) => BigInt(seq) > floor));
    }
    return Promise.all(starts);
  }

  /** Reads what the log gained into `seen`; false (reported once) when it cannot be read. */
  #readEvents(): boolean {
    const ev = this.#events;
    if (!ev) return true;
    try {
      const fresh = ev.follower.poll();
      const wanted = new Set(this.#eventOrders().map((o) => o.spec.on!));
      for (const e of fresh) {
        if (!wanted.has(e.type) || isOrderMarker(e)) continue;
        const list = ev.seen.get(e.type) ?? [];
        list.push(e.seq);
        ev.seen.set(e.type, list);
      }
      for (const p of ev.follower.problems) this.#emit({ type: 'error', code: 'ERR_EVENT_LOG', message: p });
      ev.failing = undefined;
      return true;
    } catch (err) {
      const message = `cannot read the event log ${ev.follower.path}: ${err instanceof Error ? err.message : String(err)}`;
      if (ev.failing !== message) this.#emit({ type: 'error', code: 'ERR_EVENT_LOG', message });
      ev.failing = message;
      return false;
    }
  }

  /** The highest seq this controller knows of: a new event is numbered past it. */
  #eventFloor(): number {
    const cursors = this.#eventOrders().map((o) => Number(this.#store.cursor(o.scopedName) ?? 0n));
    return Math.max(this.#events?.follower.head ?? 0, ...cursors);
  }

  /**
   * An event order's fire consumes the log up to its newest record (Gas
   * City's LatestSeq at dispatch): the cursor is durable before the body
   * starts, so a crash after it never replays those events, and a crash
   * before it leaves them to fire again.
   */
  async #consumeEvents(o: ScopedOrder, from: number): Promise<{ from: number; to: number }> {
    const path = this.#eventLogPath()!;
    this.#readEvents();
    // The newest record as the log's tail says, or as far as this controller has read if that is further
    // (records appended out of order): the cursor never stays below an event that made the order due.
    const to = Math.max(latestCityEventSeq(path), this.#events?.follower.head ?? 0);
    const retry = this.#store.cursor(debtKey(o.scopedName, 'retry'));
    // Both records go to one group commit; the body starts only once both are durable.
    await Promise.all([
      this.#store.setCursor(o.scopedName, BigInt(to)),
      ...(this.#retryPending(o.scopedName) ? [this.#store.setCursor(debtKey(o.scopedName, 'retried'), retry!)] : []),
    ]);
    return { from, to };
  }

  /**
   * An event fire that was interrupted (its body never ran, or died with the
   * controller) is owed a retry: kept as two raise-only cursors, the fence of
   * the fire owed one (`retry`) and of the last fire that paid it
   * (`retried`), so a crash before the retry starts does not forget it.
   */
  #retryPending(scopedName: string): boolean {
    return (this.#store.cursor(debtKey(scopedName, 'retry')) ?? 0n) > (this.#store.cursor(debtKey(scopedName, 'retried')) ?? 0n);
  }

  /** The first event seq a fire of this order covers: after its cursor, or from where an interrupted fire began. */
  #eventFrom(scopedName: string): number {
    const next = Number(this.#store.cursor(scopedName) ?? 0n) + 1;
    return this.#retryPending(scopedName) ? Math.min(next, Number(this.#store.cursor(debtKey(scopedName, 'retry-from')) ?? BigInt(next))) : next;
  }
  /** Settled runs in the order their releases were appended, each with the log's end just after it (LeaseStore.syncMark). */
  readonly #sweepQueue: Array<{ fireId: string; slot: string | undefined; kept: boolean; mark: bigint }> = [];
  #sweeper: NodeJS.Timeout | undefined;

  #skip(o: ScopedOrder, reason: SkipReason, detail?: string): FireResult {
    this.#counts.skipped++;
    this.#emit({ type: 'skipped', scopedName: o.scopedName, reason, ...(detail ? { detail } : {}) });
    return { scopedName: o.scopedName, skipped: reason, ...(detail ? { detail } : {}) };
  }

  async #fire(o: ScopedOrder, trigger: string, due: number | undefined, owner: { shard: number; epoch: number } | undefined, onStarted: () => void): Promise<FireResult> {
    const { spec } = o;
    const fireId = randomUUID();
    const eventFrom = spec.trigger === 'event' && this.#eventLogPath() ? this.#eventFrom(o.scopedName) : undefined;
    // Chosen before the acquire: the lease must name the files a restarted controller reads.
    const slot = spec.exec !== undefined ? this.#slots.take() : undefined;
    const meta: Meta = {
      fireId,
      order: spec.name,
      ...(o.rig ? { rig: o.rig } : {}),
      trigger,
      controllerPid: process.pid,
      ...(eventFrom !== undefined ? { eventFrom } : {}),
      ...(owner ? { shard: owner.shard, epoch: owner.epoch } : {}),
      ...(slot !== undefined ? { slot } : {}),
    };
    let lease: Lease | null;
    try {
      lease = await this.#store.acquire(o.scopedName, {
        ttlMs: spec.timeoutMs + this.#killGraceMs() + LEASE_MARGIN_MS,
        ...(spec.group ? { group: spec.group } : {}),
        meta: JSON.stringify(meta),
      });
    } catch (err) {
      // G6: a poisoned log or a full disk means no order fires.
      this.#poisoned = true;
      this.#retryAfter.set(o.scopedName, RETRY_HELD_MS);
      return this.#skip(o, 'store-poisoned', OrderlyError.from(err).message);
    }
    if (!lease) {
      // No lease names it: free again at once.
      if (slot !== undefined) this.#slots.give(slot);
      const held = this.#store.holder(o.scopedName) !== undefined;
      this.#retryAfter.set(o.scopedName, held ? RETRY_HELD_MS : RETRY_GATE_MS);
      return this.#skip(o, held ? 'held' : 'gate-full');
    }
    if (owner && this.#opts.cluster!.ownership(o.scopedName)?.epoch !== owner.epoch) {
      // Ownership went while the acquire was made durable: the next owner fires it.
      this.#store.release(lease);
      this.#forget(fireId, slot);
      return this.#skip(o, 'not-owner', `the shard changed hands during the fire`);
    }
    this.#acquiredMono.set(o.scopedName, { wall: lease.acquiredAt, mono: performance.now() - Math.max(0, Date.now() - lease.acquiredAt) });
    crashPoint('fire:acquired');
    let events: { from: number; to: number } | undefined;
    if (spec.trigger === 'event' && this.#eventLogPath()) {
      try {
        events = await this.#consumeEvents(o, eventFrom!);
        crashPoint('fire:cursor');
      } catch (err) {
        const e = OrderlyError.from(err);
        if (e.code === 'ERR_WAL_POISONED' || e.code === 'ERR_WAL_IO' || e.code === 'ERR_STORE_CLOSED') {
          // The lease stays held; the next start records this fire as interrupted.
          this.#poisoned = true;
          return this.#skip(o, 'store-poisoned', e.message);
        }
        this.#store.release(lease);
        this.#forget(fireId, slot);
        this.#retryAfter.set(o.scopedName, RETRY_HELD_MS);
        return this.#skip(o, 'event-log-unreadable', e.message);
      }
    }
    this.#counts.fires++;
    this.#lastFire.set(o.scopedName, { fireId });
    const fence = fenceOf(lease.token, meta);
    this.#emit({ type: 'fired', scopedName: o.scopedName, fireId, fence, trigger, ...(due !== undefined ? { due } : {}) });
    // A code body is called before #runBody first yields; an exec body's start (on a spawning thread) calls onStarted itself.
    const running = this.#runBody(o, lease, fireId, events, meta, onStarted);
    if (spec.exec === undefined) onStarted();
    const result = await running;
    crashPoint('fire:body-exited');
    return this.#finish(o, lease, meta, { fireId, slot, trigger, fence }, result, false);
  }

  /** A fire whose body has ended: counted, then released (a no-op, G4) or recorded. `released`: the lane did it. */
  async #finish(o: ScopedOrder, lease: Lease, meta: Meta, run: { fireId: string; slot: string | undefined; trigger: string; fence: string }, result: BodyResult, released: boolean): Promise<FireResult> {
    const { spec } = o;
    const { fireId, slot, trigger, fence } = run;
    if (result.outcome === 'no-op') {
      // G4: nothing to audit, and the release is a relaxed local record.
      if (!released) this.#store.release(lease);
      // A code body has no run files to sweep.
      if (spec.exec !== undefined) this.#forget(fireId, slot);
      this.#settledNoOp(o, { fireId, trigger, fence }, result);
      return { scopedName: o.scopedName, fireId, outcome: 'no-op' };
    }
    this.#count(result.outcome);
    this.#lastFire.set(o.scopedName, { fireId, outcome: result.outcome });
    const record = auditRecord({ fireId, order: spec.name, scopedName: o.scopedName, rig: o.rig ?? null, trigger, fence }, result, clusterLabels(meta));
    const audited = await this.#record(lease, record);
    if (audited && spec.exec !== undefined) this.#forget(fireId, slot);
    this.#emitCompleted(o, record, result, audited);
    return { scopedName: o.scopedName, fireId, outcome: result.outcome };
  }

  /** A no-op whose lease is released: counted and told, and nothing else (G4). */
  #settledNoOp(o: ScopedOrder, run: { fireId: string; trigger: string; fence: string }, result: BodyResult): void {
    this.#count('no-op');
    this.#lastFire.set(o.scopedName, { fireId: run.fireId, outcome: 'no-op' });
    this.#noOps.set(o.scopedName, (this.#noOps.get(o.scopedName) ?? 0) + 1);
    this.#emitCompleted(o, run, result, false);
  }

  /**
   * A cooldown exec fire through the lane: prepared now, in the batch the
   * lane heap handed out, and fired natively at its due time. What it
   * leaves on disk (the lease's meta, the run lock's records, the run
   * files) is what #fire leaves, so adoption after a crash does not know
   * the difference. A plain no-op comes back settled, and the lane has
   * armed the order's next fire (same slot, a new fire id): it is counted
   * here and this fire goes on as that one, until a fire that is not a
   * plain no-op comes back with its lease held and is finished here as
   * #fire finishes it, or the order is taken back (disarm).
   */
  async #fireInLane(o: ScopedOrder, trigger: string, due: number | undefined, inMs: number, onStarted: () => void): Promise<FireResult> {
    const { spec } = o;
    const key = o.scopedName;
    const slot = this.#slots.take();
    /** The fire in the lane now: the first, then each next one the lane armed (its meta is the lane's copy of this one's). */
    const link = (fireId: string, dueAt: number | undefined) => ({ fireId, due: dueAt, fence: undefined as string | undefined });
    let now = link(randomUUID(), due);
    const metaOf = (fireId: string): Meta => ({ fireId, order: spec.name, ...(o.rig ? { rig: o.rig } : {}), trigger, controllerPid: process.pid, slot });
    const firstMeta = metaOf(now.fireId);
    const firstJson = JSON.stringify(firstMeta);
    const firstFiles = this.#runFiles(firstMeta);
    const place = this.#fixedPlace(o);
    const graceMs = this.#opts.killGraceMs ?? DEFAULT_GRACE_MS;
    // The lane fills the fence and fire time in from the lease it takes.
    const env = { ...place.vars, ...this.#fireVars(o, now.fireId), ORDERLY_FENCE: '', ORDERLY_FIRED_AT: '', ORDERLY_STATUS_FILE: firstFiles.status };
    // The inherited environment goes to the lane once; each fire sends only its own variables.
    this.#lane!.useBase(this.#bodyBase());
    const cmd = wrappedCommand({ command: spec.exec!, env }, { output: firstFiles.output, exit: firstFiles.exit, tag: now.fireId });
    /** Told once per fire: when its body is heard to run, or with its end. */
    const fired = (r: { token: number; acquiredAt: number }): string => {
      if (now.fence !== undefined) return now.fence;
      this.#armed.delete(key);
      this.#acquiredMono.set(key, { wall: r.acquiredAt, mono: performance.now() - Math.max(0, Date.now() - r.acquiredAt) });
      this.#counts.fires++;
      this.#lastFire.set(key, { fireId: now.fireId });
      const fence = fenceOf(BigInt(r.token), firstMeta);
      this.#emit({ type: 'fired', at: r.acquiredAt, scopedName: key, fireId: now.fireId, fence, trigger, ...(now.due !== undefined ? { due: now.due } : {}) });
      now.fence = fence;
      return fence;
    };
    /** A plain no-op the lane released and followed with the order's next fire. */
    const chained = (r: LaneRun) => {
      onStarted();
      this.#settledNoOp(o, { fireId: now.fireId, trigger, fence: fired(r) }, settledResult(r));
      now = link(r.nextFireId!, r.nextDueAt);
      this.#armed.set(key, { tag: armed!.tag, spec, due: r.nextDueAt, armedAt: Math.floor(r.endedAt) });
      // The audit is backed up: the order's next fire waits for it, as every fire does in #start.
      if (this.#audit.backlog >= (this.#opts.maxAuditBacklog ?? DEFAULT_MAX_AUDIT_BACKLOG)) queueMicrotask(() => this.#lane?.disarm(armed!.tag));
    };
    const repeat = (spec.intervalMs ?? Infinity) <= LANE_CHAIN_INTERVAL_MS && this.#repeating < LANE_CHAIN_MAX;
    const armed = this.#lane!.fire(
      {
        key,
        inMs,
        ttlMs: spec.timeoutMs + this.#killGraceMs() + LEASE_MARGIN_MS,
        ...(spec.group ? { group: spec.group } : {}),
        meta: firstJson,
        fireId: now.fireId,
        ...cmd,
        cwd: place.cwd,
        lock: firstFiles.lock,
        output: firstFiles.output,
        exit: firstFiles.exit,
        status: firstFiles.status,
        timeoutMs: spec.timeoutMs,
        graceMs,
        noOpExitCodes: [...spec.noOpExitCodes],
        noOpWhenSilent: spec.noOpWhenSilent === true,
        // A run that ends this close to the order's next due time is told at once, or the next fire would be armed late.
        urgentAfterMs: Math.max(0, (spec.intervalMs ?? 0) - LANE_URGENT_MARGIN_MS),
        ...(repeat ? { repeatMs: spec.intervalMs, jitterMs: spec.jitterMs } : {}),
      },
      (r) => {
        fired(r);
        onStarted();
      },
      chained,
    );
    if (!armed) {
      this.#slots.give(slot);
      return { scopedName: key, skipped: 'stopping' };
    }
    const armedAt = Date.now();
    this.#armed.set(key, { tag: armed.tag, spec, due: due ?? armedAt + inMs, armedAt });
    this.#chains.set(key, { tag: armed.tag, spec });
    if (repeat) this.#repeating++;
    let r: LaneReport;
    try {
      r = await armed.report;
    } finally {
      this.#armed.delete(key);
      this.#chains.delete(key);
      if (repeat) this.#repeating--;
    }
    const fireId = now.fireId;
    const meta = fireId === firstMeta.fireId ? firstMeta : metaOf(fireId);
    const files = this.#runFiles(meta);
    switch (r.kind) {
      case 'disarmed':
        // Nothing ran, nothing was acquired, nothing is told: the order is scheduled again as it is now.
        this.#slots.give(slot);
        return { scopedName: key, skipped: this.#stopping ? 'stopping' : 'held' };
      case 'held':
      case 'gate-full':
        this.#slots.give(slot);
        this.#retryAfter.set(key, r.kind === 'held' ? RETRY_HELD_MS : RETRY_GATE_MS);
        return this.#skip(o, r.kind);
      case 'store-failed':
        // G6: a poisoned log or a full disk means no order fires.
        this.#slots.give(slot);
        this.#poisoned = true;
        this.#retryAfter.set(key, RETRY_HELD_MS);
        return this.#skip(o, 'store-poisoned', r.message ?? 'the lease store refused the acquire');
    }
    const fence = fired(r);
    const lease: Lease = Object.freeze({ key, token: BigInt(r.token), acquiredAt: r.acquiredAt, expiresAt: r.expiresAt, ...(spec.group ? { group: spec.group } : {}), meta: Buffer.from(JSON.stringify(meta)) });
    let result: BodyResult;
    if (r.settled) {
      result = settledResult(r);
    } else if (r.startError != null) {
      // A slot whose lock could not be made is not handed out again.
      if (r.lockError) this.#tainted.add(fireId);
      const reason = r.lockError ? (r.message ?? 'could not start the body') : nativeStartFailure(r.startError, r.message ?? '', place.cwd, files.output);
      result = notStarted(reason, spec.noOpExitCodes, Math.round(r.startedAt));
      crashPoint('fire:body-exited');
    } else {
      const exit = { code: r.code ?? null, signal: r.signal == null ? null : (signalName(r.signal) ?? null), groupEmpty: r.groupEmpty, endedAt: Math.round(r.endedAt), durationMs: Math.round(r.durationMs) };
      const steps = { timedOut: r.timedOut, termSentAt: r.timedOut ? performance.now() - (Date.now() - r.termSentAt) : undefined, killSent: r.killSent };
      result = await finishReaped(exit, r.pid!, { runFiles: { output: files.output, exit: files.exit, tag: fireId }, statusFile: files.status, timeoutMs: spec.timeoutMs, noOpExitCodes: spec.noOpExitCodes, noOpWhenSilent: spec.noOpWhenSilent, graceMs, startedAt: Math.round(r.startedAt) }, steps);
      // A daemon the body left behind (setsid) keeps the run lock and escapes the group's signals.
      if (result.outcome === 'timeout') this.#killLockHolders(key, files.lock);
      this.#retireIfHeld(key, fireId, files.lock);
      crashPoint('fire:body-exited');
    }
    return this.#finish(o, lease, meta, { fireId, slot, trigger, fence }, result, r.settled);
  }

  async #runBody(o: ScopedOrder, lease: Lease, fireId: string, events: { from: number; to: number } | undefined, meta: Meta, onStarted: () => void): Promise<BodyResult> {
    const { spec } = o;
    if (spec.exec !== undefined) {
      const files = this.#runFiles(meta);
      const lockPath = files.lock;
      let fd: number | undefined;
      /** This slot is not handed out again; the run is failed, recorded as such, never a crash. */
      const cannotStart = (err: unknown) => {
        this.#tainted.add(fireId);
        return notStarted(`could not start the body: ${OrderlyError.from(err).message}`, spec.noOpExitCodes);
      };
      try {
        // The body inherits the locked descriptor: a restarted controller
        // finds the lock held exactly while the body (or a child) lives.
        try {
          fd = createRunLock(lockPath);
        } catch (err) {
          // The runs directory was removed under us (a cleanup job): make it again, once.
          try {
            mkdirSync(this.#runsDir, { recursive: true, mode: 0o700 });
            fd = createRunLock(lockPath);
          } catch {
            // Held by a process of an earlier run, or unusable.
            return cannotStart(err);
          }
        }
        // Before the spawn: once a body holds the lock, the lock names its fire (the slot's last run's record is overwritten whole).
        try {
          writeSync(fd, lockRecord({ fireId }), 0);
        } catch (err) {
          // A full disk (a new slot's first block): an empty lock names no other fire, which is
          // enough to adopt its body after a crash. A lock still naming another fire is not.
          try {
            ftruncateSync(fd, 0);
          } catch {
            return cannotStart(err);
          }
        }
        const place = this.#fixedPlace(o);
        const run = runBody({
          command: spec.exec,
          cwd: place.cwd,
          baseEnv: this.#bodyBase(),
          env: {
            ...place.vars,
            ...this.#fireVars(o, fireId),
            ORDERLY_FENCE: fenceOf(lease.token, meta),
            ORDERLY_FIRED_AT: String(lease.acquiredAt),
            ...(meta.epoch !== undefined ? { ORDERLY_EPOCH: String(meta.epoch), ORDERLY_SHARD: String(meta.shard), ORDERLY_MEMBER: this.#opts.cluster!.memberId } : {}),
            ORDERLY_STATUS_FILE: join(this.#runsDir, `${fireId}.status`),
            ...(events ? { ORDERLY_EVENT_FROM: String(events.from), ORDERLY_EVENT_TO: String(events.to) } : {}),
          },
          timeoutMs: spec.timeoutMs,
          graceMs: this.#opts.killGraceMs ?? DEFAULT_GRACE_MS,
          statusFile: join(this.#runsDir, `${fireId}.status`),
          noOpExitCodes: spec.noOpExitCodes,
          ...(spec.noOpWhenSilent ? { noOpWhenSilent: true } : {}),
          // The body's from here on: written and closed once the body runs.
          lock: { fd, fireId, timeoutMs: spec.timeoutMs },
          runFiles: { output: files.output, exit: files.exit, tag: fireId },
          ...(this.#opts.spawner ? { spawner: this.#opts.spawner } : {}),
        });
        fd = undefined;
        const pid = await run.started;
        onStarted();
        if (pid !== undefined) {
          this.#groups.set(o.scopedName, { pgid: pid, lockPath });
          // Ownership was lost while the body waited for a spawning thread.
          if (this.#killOnStart.delete(o.scopedName)) this.#killGroup(pid, lockPath);
        }
        crashPoint('fire:spawned');
        this.#watchOutput(fireId, files.output);
        const result = await run.done;
        // A daemon the body left behind (setsid) keeps the run lock and escapes the group's signals.
        if (result.outcome === 'timeout') this.#killLockHolders(o.scopedName, lockPath);
        return result;
      } finally {
        this.#groups.delete(o.scopedName);
        this.#outputs.delete(fireId);
        if (fd !== undefined) closeSync(fd);
        this.#retireIfHeld(o.scopedName, fireId, lockPath);
      }
    }
    return this.#runCode(o, lease, fireId);
  }

  /**
   * A process of the run still holds its lock (a daemon that escaped the group): its slot is
   * not handed to another run, where that process could still write.
   */
  #retireIfHeld(scopedName: string, fireId: string, lockPath: string): void {
    if (this.#lockHeld(scopedName, lockPath)) {
      this.#tainted.add(fireId);
      unlinkQuiet(lockPath);
    }
  }

  /** Process groups of running exec bodies, by order: what losing a shard kills. */
  readonly #groups = new Map<string, { pgid: number; lockPath: string }>();
  /** Orders whose body is to be killed as soon as it runs: ownership went while it waited to start. */
  readonly #killOnStart = new Set<string>();
  /** Code bodies' abort handles, by order. */
  readonly #aborts = new Map<string, AbortController>();

  #killGroup(pgid: number, lockPath: string): void {
    signalGroup(pgid, 'SIGKILL');
    killLockHolders(lockPath);
  }

  /**
   * Cluster mode: ownership changed. Orders this member gained are timed
   * (from the takeover); orders it lost are no longer fired, and with
   * `kill` their running bodies are killed at once (the member could not
   * confirm its ownership in time, so another may own them soon). A
   * handoff waits for the bodies with `whenIdle`.
   */
  ownershipChanged(kill: boolean): void {
    const gate = this.#opts.cluster;
    if (!gate) return;
    for (const scopedName of this.#busy.keys()) {
      if (gate.ownership(scopedName)) continue;
      if (kill) {
        const group = this.#groups.get(scopedName);
        if (group) this.#killGroup(group.pgid, group.lockPath);
        else if (this.#orders.get(scopedName)?.spec.exec !== undefined) this.#killOnStart.add(scopedName);
        this.#aborts.get(scopedName)?.abort(new OrderlyError('ERR_CLUSTER', 'this member lost the ownership of the order'));
      }
    }
    this.#scheduleAll();
  }

  /** Resolves once no run of an order `which` selects is in progress (a shard being handed over). */
  async whenIdle(which: (scopedName: string) => boolean): Promise<void> {
    for (;;) {
      const runs = [...this.#busy].filter(([name]) => which(name)).map(([, run]) => run.catch(() => undefined));
      if (runs.length === 0) return;
      await Promise.all(runs);
    }
  }

  async #runCode(o: ScopedOrder, lease: Lease, fireId: string): Promise<BodyResult> {
    const { spec } = o;
    const startedAt = Date.now();
    const abort = new AbortController();
    this.#aborts.set(o.scopedName, abort);
    let timedOut = false;
    const timer = setLongTimeout(() => {
      timedOut = true;
      abort.abort(new OrderlyError('ERR_TIMEOUT', `timed out after ${spec.timeoutMs} ms`));
    }, spec.timeoutMs);
    const done = (outcome: Outcome, reason?: string): BodyResult => {
      const endedAt = Date.now();
      return { outcome, exitCode: null, signal: null, startedAt, endedAt, durationMs: endedAt - startedAt, outputTail: '', outputBytes: 0, ...(reason ? { reason } : {}) };
    };
    try {
      const ctx = { order: spec.name, scopedName: o.scopedName, ...(o.rig ? { rig: o.rig } : {}), fireId, fence: lease.token, signal: abort.signal };
      const body = spec.run ? spec.run(ctx) : this.#opts.formulaRunner!(spec, ctx);
      const timeout = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason)));
      const { didWork } = await Promise.race([body, timeout]);
      return done(didWork ? 'did-work' : 'no-op');
    } catch (err) {
      if (timedOut) return done('timeout', `timed out after ${spec.timeoutMs} ms`);
      return done('failed', err instanceof Error ? err.message : String(err));
    } finally {
      timer.clear();
      this.#aborts.delete(o.scopedName);
    }
  }

  /**
   * A fire's run files are let go once its outcome cannot be lost. Once per fire.
   *
   * Its slot is free for the next fire at once. A no-op's release is
   * relaxed, and until it is synced a crash would bring the lease back, to
   * be settled from the slot's files; but the next fire to take the slot
   * appends its acquire after that release, and touches the files only once
   * the acquire is durable, when the release is too (the log recovers a
   * prefix, never a later record without an earlier one). Freeing it only
   * after the flush interval instead made a cold-start wave create a new
   * slot, three files, for nearly every fire: on this machine's ext4,
   * creating them cost the wave more than its bodies did.
   *
   * Files deleted instead (a retired slot's, a status file a body made) have
   * no later record to wait for: they go once the log is durable past the
   * release, however long the store lets relaxed records wait and however
   * long its disk stalls. Until then a power cut would bring the lease back
   * and settle the run from them.
   */
  #forget(fireId: string, slot: string | undefined): void {
    const tainted = this.#tainted.delete(fireId);
    const kept = slot !== undefined && !tainted && this.#slots.give(slot);
    let mark: bigint;
    try {
      mark = this.#store.syncMark();
    } catch {
      // A closed or poisoned store syncs nothing more: the files stay for the next start.
      mark = 2n ** 64n;
    }
    this.#sweepQueue.push({ fireId, slot, kept, mark });
    this.#sweeper ??= setInterval(() => this.#sweep(false), SWEEP_MS).unref();
  }

  /** `all`: the store is closed, which synced every release. */
  #sweep(all: boolean): void {
    // Marks grow along the queue: the first one not yet durable ends the sweep.
    while (this.#sweepQueue.length > 0 && (all || this.#store.isSynced(this.#sweepQueue[0]!.mark))) {
      const { fireId, slot, kept } = this.#sweepQueue.shift()!;
      const f = this.#runFiles({ fireId, slot });
      // A kept slot's files stay for a later fire; files named by fire id (an earlier version's) go.
      if (!kept) for (const path of [f.lock, f.output, f.exit]) unlinkQuiet(path);
      // The body made it, with whatever mode it chose. Most bodies make none (one lstat, not a failing unlink).
      if (existsNoFollow(f.status)) unlinkQuiet(f.status);
    }
    // An idle controller's event loop sleeps: no timer runs while there is nothing to sweep.
    if (this.#sweepQueue.length === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Fires whose run lock was still held when their body ended (or could not be taken): their slot is never reused. */
  readonly #tainted = new Set<string>();
  readonly #slots = new RunSlots();

  /** Run files no held lease refers to are leftovers of settled runs (G7); `keep` holds fire ids and slots. */
  #sweepLeftovers(keep: Set<string>): void {
    // An earlier version kept emptied run files here.
    rmSync(join(this.#runsDir, '.spare'), { recursive: true, force: true });
    for (const name of readdirSync(this.#runsDir)) {
      const base = name.slice(0, name.indexOf('.'));
      if (!keep.has(base)) rmSync(join(this.#runsDir, name), { force: true });
    }
  }

  /**
   * The body's group and deadline, from its lock file (or the pid file an
   * earlier version wrote). A slot's lock names its fire: a record of
   * another fire says nothing of this one's body.
   */
  #readPid(meta: Pick<Meta, 'fireId' | 'slot'>): { pgid: number; timeoutAt: number } | undefined {
    const files = this.#runFiles(meta);
    for (const path of [files.lock, files.pid]) {
      try {
        const pid = JSON.parse(readFileSync(path, 'utf8')) as { fireId?: unknown; pgid?: unknown; timeoutAt?: unknown };
        if (files.slotted && pid.fireId !== meta.fireId) return undefined;
        if (typeof pid.pgid === 'number' && typeof pid.timeoutAt === 'number') return { pgid: pid.pgid, timeoutAt: pid.timeoutAt };
      } catch {
        // Absent, empty or half written: try the next place.
      }
    }
    return undefined;
  }

  /**
   * Whether a slot's lock may be this fire's: false only when it names
   * another fire (an empty lock is a fire that found the disk full before
   * it could write its name). Always true for files named by fire id.
   */
  #lockNames(meta: Pick<Meta, 'fireId' | 'slot'>): boolean {
    const files = this.#runFiles(meta);
    if (!files.slotted) return true;
    let text: string;
    try {
      text = readFileSync(files.lock, 'utf8');
    } catch {
      return false;
    }
    if (text.trim() === '') return true;
    try {
      return (JSON.parse(text) as { fireId?: unknown }).fireId === meta.fireId;
    } catch {
      return true;
    }
  }

  /** A fire's run files: its slot's, or (fires of an earlier version) named by its fire id. The status file is always the fire's own. */
  #runFiles(meta: Pick<Meta, 'fireId' | 'slot'>): { lock: string; output: string; exit: string; status: string; pid: string; slotted: boolean } {
    const slotted = isSlotName(meta.slot);
    // Concatenated, not joined (a join per file cost a fire ~10 µs): the directory is resolved, a
    // slot name is checked, and a fire id is a UUID we made (a tampered one would escape a join too).
    const base = `${this.#runsDir}/${slotted ? meta.slot! : meta.fireId}`;
    const own = `${this.#runsDir}/${meta.fireId}`;
    return { lock: `${base}.lock`, output: `${base}.out`, exit: `${base}.exit`, status: `${own}.status`, pid: `${own}.pid`, slotted };
  }

  #killGraceMs(): number {
    return this.#opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  }

  #inheritedEnv: Record<string, string> | undefined;

  /** Read from process.env once: reading it is a call into C++ per variable. */
  #inherited(): Readonly<Record<string, string>> {
    this.#inheritedEnv ??= Object.fromEntries(Object.entries(this.#opts.env ?? process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));
    return this.#inheritedEnv;
  }

  /**
   * What every body inherits from the controller (only `envAllow`'s names
   * when it is set), shared by all orders: its `NAME=value` list is built
   * once, not once per order (10,000 orders would hold 10,000 copies).
   */
  #inheritedBase: LayeredEnv | undefined;

  #bodyBase(): LayeredEnv {
    if (!this.#inheritedBase) {
      const inherited = { ...this.#inherited() };
      // The audit database's password is the controller's, never a body's.
      delete inherited.ORDERLY_AUDIT_PASSWORD;
      const allow = this.#opts.envAllow;
      this.#inheritedBase = new LayeredEnv(allow ? Object.fromEntries(allow.filter((k) => inherited[k] !== undefined).map((k) => [k, inherited[k]!])) : inherited);
    }
    return this.#inheritedBase;
  }

  /** Per order (a reload makes new ones): where its bodies run and the variables it adds to the inherited ones. */
  readonly #places = new WeakMap<ScopedOrder, { cwd: string; vars: Record<string, string> }>();

  /**
   * Where an order's body (or check) runs, and what its fires add to the
   * inherited environment: Gas City's variables for the order, orderly's
   * own, then `[order.env]`. Built once per order.
   */
  #fixedPlace(o: ScopedOrder): { cwd: string; vars: Record<string, string> } {
    let fixed = this.#places.get(o);
    if (!fixed) {
      const { spec } = o;
      const place = bodyPlace(o, this.#opts.city, this.#inherited(), this.#opts.cwd ?? process.cwd());
      const vars = {
        ...place.env,
        ...(o.rig ? { ORDERLY_RIG: o.rig } : {}),
        ORDERLY_ORDER: spec.name,
        ORDERLY_SCOPED_NAME: o.scopedName,
        ...spec.env,
      };
      fixed = { cwd: place.cwd, vars };
      this.#places.set(o, fixed);
    }
    return fixed;
  }

  /** The fire's id, unless `[order.env]` sets even that one. */
  #fireVars(o: ScopedOrder, fireId: string): Record<string, string> {
    return o.spec.env.ORDERLY_FIRE_ID === undefined ? { ORDERLY_FIRE_ID: fireId } : {};
  }

  /** The place with its whole environment as one object (a fresh one each call). */
  #place(o: ScopedOrder, fireId: string): BodyPlace {
    const fixed = this.#fixedPlace(o);
    return { cwd: fixed.cwd, env: this.#bodyBase().merged({ ...fixed.vars, ...this.#fireVars(o, fireId) }) };
  }

  #count(outcome: Outcome): void {
    if (outcome === 'no-op') this.#counts.noOps++;
    else if (outcome === 'did-work') this.#counts.didWork++;
    else if (outcome === 'timeout') this.#counts.timeouts++;
    else this.#counts.failed++;
  }

  #emitCompleted(o: ScopedOrder, run: Pick<AuditRecord, 'fireId' | 'trigger' | 'fence'>, r: BodyResult, audited: boolean): void {
    this.#emit({
      type: 'completed',
      scopedName: o.scopedName,
      fireId: run.fireId,
      trigger: run.trigger,
      fence: run.fence,
      startedAt: r.startedAt,
      outcome: r.outcome,
      exitCode: r.exitCode,
      signal: r.signal,
      durationMs: r.durationMs,
      audited,
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.outcome !== 'no-op' && lastLine(r.outputTail) ? { summary: lastLine(r.outputTail) } : {}),
    });
  }

  #acked(ids: readonly bigint[]): void {
    crashPoint('audit:committed');
    for (const id of ids) {
      try {
        this.#store.ack({ id, key: '', token: id, completedAt: 0, outcome: Buffer.alloc(0) });
      } catch {
        // Closed or poisoned: the entry stays in the outbox and is re-sent (idempotent).
      }
    }
    crashPoint('audit:acked');
  }

  // ------------------------------------------------------------ recovery

  /**
   * The seed's boot state machine, made stronger: a lease held at the crash
   * whose body still runs is adopted until it exits; a dead one becomes an
   * `interrupted` record; the unacknowledged outbox is re-sent.
   */
  async #recover(): Promise<void> {
    const { held, outbox } = this.#store.recovered;
    const inOutbox = new Set(outbox.map((e) => e.id));
    const keep = new Set<string>();
    for (const lease of held) {
      const meta = parseMeta(lease);
      if (meta) keep.add(meta.fireId);
      if (isSlotName(meta?.slot)) {
        keep.add(meta.slot);
        this.#slots.reserve(meta.slot);
      }
    }
    this.#sweepLeftovers(keep);
    // Completed before the crash: released before their records are re-sent,
    // so an entry's ACK always follows its lease's RELEASE in the log. The
    // other way round (re-sends commit while the interrupted records below
    // are awaited), a power cut could keep the ACK and lose the RELEASE: the
    // next boot would find the lease held and completed, with no outbox
    // entry to settle it, and the order stuck until the lease expired.
    for (const lease of held) {
      if (!inOutbox.has(lease.token)) continue;
      const meta = parseMeta(lease);
      this.#store.release(lease);
      if (meta) this.#forget(meta.fireId, meta.slot);
      this.#emit({ type: 'recovered', scopedName: lease.key, action: 'released', fence: String(lease.token), ...(meta ? { fireId: meta.fireId } : {}) });
    }
    for (const entry of outbox) {
      try {
        this.#audit.enqueue(entry.id, parseAuditRecord(entry.outcome));
        this.#emit({ type: 'recovered', scopedName: entry.key, action: 'resent', fence: String(entry.token) });
      } catch (err) {
        this.#emit({ type: 'error', scopedName: entry.key, code: 'ERR_OUTBOX', message: `outbox entry ${entry.id} is unreadable: ${String(err)}` });
      }
    }
    for (const lease of held) {
      if (inOutbox.has(lease.token)) continue;
      const meta = parseMeta(lease);
      const files = meta ? this.#runFiles(meta) : undefined;
      const lockPath = files?.lock;
      // A slot's lock held by a body of another fire: this one never started there.
      if (lockPath && runLockHeld(lockPath) && this.#lockNames(meta!)) {
        if (!this.#opts.cluster) {
          this.#adopt(lease, meta!, lockPath);
          continue;
        }
        // A cluster member starts without shards: whatever it ran before is
        // another member's to fire now, so a body still running is stopped, not adopted.
        if (!(await this.#killOrphan(lease.key, meta!, lockPath))) {
          this.#adopt(lease, meta!, lockPath);
          continue;
        }
      }
      await this.#finishRecovered(lease, meta);
      // A slot's lock stays with the slot.
      if (lockPath && !files!.slotted) rmSync(lockPath, { force: true });
    }
  }

  /** Output files of running bodies, by fire: their heads are given back to the filesystem as they grow. */
  readonly #outputs = new Map<string, string>();
  #trimmer: NodeJS.Timeout | undefined;

  /**
   * A body's output goes to a file (it must outlive the controller), and a
   * chatty one would fill the state's filesystem and poison the log: every
   * half second, all but the last OUTPUT_KEEP_BYTES of each running body's
   * output are freed in place.
   */
  #watchOutput(fireId: string, path: string): void {
    this.#outputs.set(fireId, path);
    this.#trimmer ??= setInterval(() => {
      if (this.#outputs.size === 0) {
        clearInterval(this.#trimmer);
        this.#trimmer = undefined;
        return;
      }
      for (const file of this.#outputs.values()) {
        try {
          trimRunOutput(file, OUTPUT_KEEP_BYTES);
        } catch {
          // Gone with its run, or a filesystem without holes: nothing to bound here.
        }
      }
    }, OUTPUT_TRIM_MS).unref();
  }

  #killLockHolders(scopedName: string, lockPath: string): void {
    const pids = killLockHolders(lockPath);
    if (pids.length > 0) {
      this.#emit({ type: 'warning', scopedName, code: 'WARN_BODY_DAEMON_KILLED', message: `killed ${pids.length} process(es) the timed-out body left behind holding its run lock (pid ${pids.join(', ')}): a daemon a body starts must not inherit fd 3` });
    }
  }

  /** Kills a body left by an earlier run of a cluster member; false when it would not die (it is then adopted and waited for). */
  async #killOrphan(scopedName: string, meta: Meta, lockPath: string): Promise<boolean> {
    try {
      const { pgid } = this.#readPid(meta)!;
      signalGroup(pgid, 'SIGKILL');
    } catch {
      // No pid recorded: the lock holders are all there is to kill.
    }
    killLockHolders(lockPath);
    for (let i = 0; i < 50 && runLockHeld(lockPath); i++) await new Promise((r) => setTimeout(r, 20));
    if (!runLockHeld(lockPath)) return true;
    this.#emit({ type: 'warning', scopedName, code: 'WARN_BODY_DAEMON_KILLED', message: `a body of fire ${meta.fireId} still holds its run lock after SIGKILL: waiting for it` });
    return false;
  }

  /**
   * Whether a process still holds the run lock at `lockPath`, after a body
   * this controller started. When that cannot be told (its directory
   * replaced by a file, an I/O error) it is taken as held, with a warning:
   * the slot is not reused. (An adopted body's poll reads the lock itself:
   * there "cannot tell" sends it to the body's process group instead.)
   */
  #lockHeld(scopedName: string, lockPath: string): boolean {
    try {
      return runLockHeld(lockPath);
    } catch (err) {
      this.#emit({ type: 'warning', scopedName, code: 'WARN_RUN_LOCK_UNREADABLE', message: `cannot tell whether a process still holds the run lock: ${OrderlyError.from(err).message}; taken as held` });
      return true;
    }
  }

  #adopt(lease: LeaseInfo, meta: Meta, lockPath: string): void {
    this.#emit({ type: 'recovered', scopedName: lease.key, action: 'adopted', fireId: meta.fireId, fence: String(lease.token) });
    const files = this.#runFiles(meta);
    // Undefined: crashed before the pid was written; the body cannot be timed out, only waited for.
    const pid = this.#readPid(meta);
    // The lock is held on the file, not its name: a descriptor opened now still
    // tells whether the body runs after a cleanup job removed the runs directory.
    const lockFd = openQuiet(lockPath);
    let termAt: number | undefined;
    let warned = false;
    this.#watchOutput(meta.fireId, files.output);
    const watch = new Promise<FireResult>((resolvePromise) => {
      const poll = setInterval(() => {
        if (this.#stopping) {
          clearInterval(poll);
          closeQuiet(lockFd);
          resolvePromise({ scopedName: lease.key, fireId: meta.fireId, skipped: 'stopping' });
          return;
        }
        let held: boolean | undefined;
        try {
          held = lockFd !== undefined ? runLockHeldFd(lockFd, lockPath) : runLockHeld(lockPath);
          if (lockFd !== undefined && held && !warned && !existsNoFollow(lockPath)) {
            warned = true;
            this.#emit({ type: 'warning', scopedName: lease.key, code: 'WARN_RUN_LOCK_UNREADABLE', message: `the run lock ${lockPath} of adopted fire ${meta.fireId} was removed while its body runs: waiting for the body through the lock, which it still holds` });
          }
        } catch (err) {
          held = undefined;
          if (!warned) {
            warned = true;
            this.#emit({ type: 'warning', scopedName: lease.key, code: 'WARN_RUN_LOCK_UNREADABLE', message: `cannot tell whether adopted fire ${meta.fireId} still runs from its run lock: ${OrderlyError.from(err).message}; waiting for its process group` });
          }
        }
        if (held === undefined || (lockFd === undefined && !held && !existsNoFollow(lockPath))) {
          // The lock cannot be read, or its file is gone (a cleanup job removed the runs directory)
          // while the body may hold the lock on the unlinked inode: its group, while a member lives,
          // says it still runs. Never signalled without the lock to prove the group is still the body's.
          if (pid ? groupExists(pid.pgid) : held === undefined) {
            if (held !== undefined && !warned) {
              warned = true;
              this.#emit({ type: 'warning', scopedName: lease.key, code: 'WARN_RUN_LOCK_UNREADABLE', message: `the run lock ${lockPath} of adopted fire ${meta.fireId} was removed while its body runs: waiting for its process group ${pid!.pgid} to end` });
            }
            return;
          }
        } else if (held) {
          // Its timeout still applies: the same SIGTERM, then SIGKILL after the grace, as a body this controller started.
          const now = Date.now();
          if (pid && now >= pid.timeoutAt) {
            if (termAt === undefined) {
              termAt = now;
              signalGroup(pid.pgid, 'SIGTERM');
            } else if (now - termAt >= this.#killGraceMs()) {
              signalGroup(pid.pgid, 'SIGKILL');
              // Still held after the group's SIGKILL: a daemon it left behind holds the lock.
              if (now - termAt >= 2 * this.#killGraceMs()) this.#killLockHolders(lease.key, lockPath);
            }
          }
          return;
        }
        clearInterval(poll);
        closeQuiet(lockFd);
        this.#outputs.delete(meta.fireId);
        if (!files.slotted) unlinkQuiet(lockPath);
        void this.#finishRecovered(lease, meta, termAt !== undefined).then((outcome) =>
          resolvePromise({ scopedName: lease.key, fireId: meta.fireId, ...(outcome ? { outcome } : {}) }),
        );
      }, ADOPT_POLL_MS);
    });
    const run = watch.finally(() => {
      this.#busy.delete(lease.key);
      const o = this.#orders.get(lease.key);
      if (o) this.#schedule(o);
    });
    this.#busy.set(lease.key, run);
  }

  /**
   * A run begun by an earlier controller has ended: its exit status file
   * says how (a no-op releases with no audit write, G4); without one it was
   * killed along with its wrapper, and is recorded as interrupted (G3).
   */
  async #finishRecovered(lease: LeaseInfo, meta: Meta | undefined, timedOut = false): Promise<Outcome | undefined> {
    const spec = this.#orders.get(lease.key)?.spec;
    const files = meta ? this.#runFiles(meta) : undefined;
    const result = files
      ? await collectFinished({ output: files.output, exit: files.exit, tag: meta!.fireId, status: files.status }, { noOpExitCodes: spec?.noOpExitCodes ?? [100], startedAt: lease.acquiredAt, ...(spec?.noOpWhenSilent ? { noOpWhenSilent: true } : {}) })
      : undefined;
    if (!result && !timedOut) {
      if ((await this.#interrupted(lease, meta)) && meta) this.#forget(meta.fireId, meta.slot);
      return undefined;
    }
    const endedAt = Date.now();
    const r: BodyResult = result ?? { outcome: 'timeout', exitCode: null, signal: 'SIGTERM', startedAt: lease.acquiredAt, endedAt, durationMs: endedAt - lease.acquiredAt, outputTail: '', outputBytes: 0 };
    if (timedOut) r.outcome = 'timeout';
    const scoped: ScopedOrder = this.#orders.get(lease.key) ?? { scopedName: lease.key, spec: { name: meta?.order ?? lease.key } as OrderSpec };
    this.#count(r.outcome);
    this.#lastFire.set(lease.key, { fireId: meta?.fireId ?? `lease-${lease.token}`, outcome: r.outcome });
    if (r.outcome === 'no-op') {
      this.#store.release(lease);
      if (meta) this.#forget(meta.fireId, meta.slot);
      this.#emitCompleted(scoped, { ...recoveredRun(lease, meta), fireId: meta?.fireId ?? '' }, r, false);
      return r.outcome;
    }
    const record = auditRecord(recoveredRun(lease, meta), r, { recovered: 'true', ...clusterLabels(meta) });
    const audited = await this.#record(lease, record);
    if (audited && meta) this.#forget(meta.fireId, meta.slot);
    this.#emitCompleted(scoped, record, r, audited);
    return r.outcome;
  }

  /** False when the record could not be kept (the lease stays held). */
  async #interrupted(lease: LeaseInfo, meta: Meta | undefined): Promise<boolean> {
    if (meta?.eventFrom !== undefined) {
      // Owed a retry before the lease goes: a crash in between finds the lease again and repeats this.
      try {
        await Promise.all([this.#store.setCursor(debtKey(lease.key, 'retry-from'), BigInt(meta.eventFrom)), this.#store.setCursor(debtKey(lease.key, 'retry'), lease.token)]);
      } catch (err) {
        this.#poisoned = true;
        this.#emit({ type: 'error', scopedName: lease.key, code: OrderlyError.from(err).code, message: `could not keep the retry of interrupted event fire ${meta.fireId}: ${OrderlyError.from(err).message}` });
        return false;
      }
    }
    const endedAt = Date.now();
    const record = auditRecord(
      recoveredRun(lease, meta),
      { outcome: 'interrupted', exitCode: null, signal: null, startedAt: lease.acquiredAt, endedAt, durationMs: endedAt - lease.acquiredAt, outputTail: '' },
      { reason: 'the controller stopped or crashed while this run was in progress', ...clusterLabels(meta) },
    );
    if (!(await this.#record(lease, record))) return false;
    this.#counts.interrupted++;
    this.#emit({ type: 'recovered', scopedName: lease.key, action: 'interrupted', fireId: record.fireId, fence: record.fence });
    return true;
  }

  /**
   * The outcome of a run that did work, failed, timed out or was
   * interrupted: durable in the outbox first (COMPLETE), then the lease is
   * released and the audit writer takes the record (G3). False if the log
   * refused it (poisoned): the lease stays held and the next start settles it.
   */
  async #record(lease: LeaseInfo, record: AuditRecord): Promise<boolean> {
    // Which state directory wrote it: how a second controller on the same city is told apart.
    record.labels = { ...record.labels, controller: this.#instance, host: hostname() };
    try {
      const entry = await this.#store.complete(lease, JSON.stringify(record));
      crashPoint('fire:completed');
      this.#store.release(lease);
      this.#audit.enqueue(entry.id, record);
      return true;
    } catch (err) {
      this.#poisoned = true;
      const e = OrderlyError.from(err);
      this.#emit({ type: 'error', scopedName: lease.key, code: e.code, message: `could not record the outcome of ${record.fireId}: ${e.message}` });
      return false;
    }
  }

  // ------------------------------------------------------------ events

  #emit(e: ControllerEventInput): void {
    const event = { at: Date.now(), ...e } as ControllerEvent;
    if (this.#opts.eventsFile) {
      try {
        appendFileSync(this.#opts.eventsFile, JSON.stringify(event) + '\n', { mode: 0o600 });
      } catch {
        // The event log is a convenience; a full disk must not stop the controller here.
      }
    }
    this.emit('event', event);
  }

  #poisonSafeStats(): { walSyncs: number; walBytes: number; poisoned: boolean; poisonReason?: string } {
    if (this.#finalWal) return this.#finalWal;
    try {
      const s = this.#store.stats();
      return { walSyncs: s.walSyncs, walBytes: s.walBytes, poisoned: s.poisoned, ...(s.poisonReason ? { poisonReason: s.poisonReason } : {}) };
    } catch {
      return { walSyncs: 0, walBytes: 0, poisoned: true };
    }
  }

  /** This state directory's identity, kept in `<state>/instance`; labels every audit record. */
  readonly #instance: string;

  /**
   * Two controllers with different state directories on one city fire every
   * order twice, each with its own fences, and nothing in either state shows
   * it. The audit rows do: each carries the instance that wrote it. Reads
   * only (no write per fire): at start, then every ten minutes.
   */
  #watchOtherControllers(): void {
    const sink = this.#audit.sink;
    // Cluster members share the city by design; their shards keep them apart.
    if (!sink.history || this.#opts.cluster) return;
    const warned = new Set<string>();
    const check = async (): Promise<void> => {
      if (this.#stopping) return;
      let recent: AuditRecord[];
      try {
        recent = await sink.history!({ limit: 500 });
      } catch {
        return; // The database is down: the writer reports that.
      }
      const since = Date.now() - OTHER_CONTROLLER_WINDOW_MS;
      const others = new Map<string, { host: string; orders: Set<string>; latest: number }>();
      for (const r of recent) {
        const other = r.labels.controller;
        if (!other || other === this.#instance || r.startedAt < since || !this.#orders.has(r.scopedName)) continue;
        const o = others.get(other) ?? { host: r.labels.host ?? '?', orders: new Set<string>(), latest: 0 };
        o.orders.add(r.scopedName);
        o.latest = Math.max(o.latest, r.startedAt);
        others.set(other, o);
      }
      for (const [id, o] of others) {
        if (warned.has(id)) continue;
        warned.add(id);
        this.#emit({
          type: 'warning',
          code: 'WARN_OTHER_CONTROLLER',
          message: `another controller (instance ${id} on host ${o.host}, with another state directory) recorded runs of ${o.orders.size} of these orders in ${sink.url}, the latest at ${new Date(o.latest).toISOString()}: two controllers on one city fire every order twice, with separate fences. Stop one of them (or run them as one cluster).`,
        });
      }
    };
    // First once the start's own burst (recovery, the first fires and their audit batch) is past.
    const first = setTimeout(() => void check(), OTHER_CONTROLLER_FIRST_CHECK_MS).unref();
    this.#otherWatch = setInterval(() => void check(), OTHER_CONTROLLER_CHECK_MS).unref();
    this.#otherFirst = first;
  }

  #otherWatch: NodeJS.Timeout | undefined;
  #otherFirst: NodeJS.Timeout | undefined;

  /**
   * The log can be poisoned while nothing fires (its segment deleted under
   * it): say so at once, not at the next fire, and stop scheduling.
   */
  #watchPoison(): void {
    this.#store.onPoisoned((err) => {
      if (this.#stopping) return;
      this.#poisoned = true;
      this.#emit({ type: 'error', code: 'ERR_WAL_POISONED', message: `the lease store refuses writes, no order fires until a restart: ${err.message}` });
    });
  }
}

/**
 * Why `dir` cannot be created or written, from its nearest existing
 * ancestor: a recursive mkdir on a read-only filesystem says ENOENT, which
 * sends an operator looking for the wrong thing.
 */
function whyNotWritable(dir: string): string | undefined {
  let at = resolve(dir);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    accessSync(at, fsConstants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'EROFS' ? 'is on a read-only filesystem' : code === 'EACCES' ? `is not writable by this user (uid ${process.getuid?.() ?? '?'})` : `cannot be written (${code})`;
    return `${at} ${what}`;
  }
}

/** A state directory's identity: made once, kept in `<state>/instance`. */
function instanceId(state: string): string {
  const file = join(state, 'instance');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (id) return id;
  } catch {
    // First start with this state directory.
  }
  const id = randomUUID();
  try {
    writeFileSync(file, `${id}\n`, { mode: 0o600 });
  } catch {
    // A state that refuses writes fails elsewhere, loudly; the label is a convenience.
  }
  return id;
}

/** The last non-empty line of a body's output, cut to what fits on a terminal line. */
function lastLine(output: string): string | undefined {
  const line = output.trimEnd().split('\n').pop()?.trim();
  if (!line) return undefined;
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** The same body: the same exec command, formula, or code function. */
function sameBody(a: OrderSpec, b: OrderSpec): boolean {
  return (a.exec !== undefined && a.exec === b.exec) || (a.formula !== undefined && a.formula === b.formula) || (a.run !== undefined && a.run === b.run);
}

/** Names a typo away: edit distance at most a third of the longer. */
function closeEnough(a: string, b: string): boolean {
  const x = a.split(':rig:')[0]!;
  const y = b.split(':rig:')[0]!;
  return editDistance(x, y) <= Math.max(1, Math.floor(Math.max(x.length, y.length) / 3));
}

/**
 * Cursor keys of an event order's retry debt: the order's scoped name, a
 * NUL (no order file name can hold one), then what the cursor counts.
 */
export function debtKey(scopedName: string, part: 'retry' | 'retried' | 'retry-from'): string {
  return `${scopedName}\0${part}`;
}

/** Who ran, for a run begun by an earlier controller. */
function recoveredRun(lease: LeaseInfo, meta: Meta | undefined) {
  return {
    fireId: meta?.fireId ?? `lease-${lease.token}`,
    order: meta?.order ?? lease.key.split(':rig:')[0]!,
    scopedName: lease.key,
    rig: meta?.rig ?? null,
    trigger: meta?.trigger ?? 'unknown',
    fence: fenceOf(lease.token, meta),
  };
}

/** The fence a run is known by: in cluster mode the shard epoch rides in its high bits. */
/** A plain no-op the lane settled, as a body result. */
function settledResult(r: LaneRun): BodyResult {
  return { outcome: 'no-op', exitCode: r.code ?? null, signal: null, startedAt: Math.round(r.startedAt), endedAt: Math.round(r.endedAt), durationMs: Math.round(r.durationMs), outputTail: '', outputBytes: 0 };
}

function fenceOf(token: bigint, meta: Meta | undefined): string {
  return String(meta?.epoch !== undefined ? clusterFence(meta.epoch, token) : token);
}

/** What a sink checks a cluster member's record against before storing it. */
function clusterLabels(meta: Meta | undefined): Record<string, string> {
  return meta?.epoch !== undefined ? { 'cluster.shard': String(meta.shard), 'cluster.epoch': String(meta.epoch) } : {};
}

/** One closed audit record: who ran, and how it ended. */
function auditRecord(
  who: Pick<AuditRecord, 'fireId' | 'order' | 'scopedName' | 'rig' | 'trigger' | 'fence'>,
  r: Pick<AuditRecord, 'exitCode' | 'signal' | 'startedAt' | 'endedAt' | 'durationMs' | 'outputTail'> & { outcome: AuditedOutcome | Outcome; reason?: string },
  labels: Record<string, string> = {},
): AuditRecord {
  return {
    ...who,
    outcome: r.outcome as AuditedOutcome,
    exitCode: r.exitCode,
    signal: r.signal,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    durationMs: r.durationMs,
    outputTail: r.outputTail,
    labels: { ...(r.reason ? { reason: r.reason } : {}), ...labels },
  };
}

function parseMeta(lease: LeaseInfo): Meta | undefined {
  try {
    const m = JSON.parse(lease.meta?.toString() ?? '') as Meta;
    return typeof m.fireId === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** A process (a zombie too) is in group `pgid`; EPERM: one is, of another user. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}
