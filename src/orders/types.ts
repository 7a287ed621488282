/**
 * How an order decides it is due. `gate` is Gas City's older name for this
 * key. `manual` and `webhook` orders never fire on their own; webhook orders
 * are dispatched by Gas City's webhook receiver, which orderly does not have.
 */
export type Trigger = 'cooldown' | 'cron' | 'condition' | 'event' | 'manual' | 'webhook';

export const TRIGGERS: readonly Trigger[] = ['cooldown', 'cron', 'condition', 'event', 'manual', 'webhook'];

/** What a body reports; the exit-code contract maps exits onto these. */
export type Outcome = 'did-work' | 'no-op' | 'failed' | 'timeout';

/** Outcomes that produce an audit record (G3); `no-op` never does (G4). */
export type AuditedOutcome = 'did-work' | 'failed' | 'timeout' | 'interrupted';

export interface RunContext {
  readonly order: string;
  readonly scopedName: string;
  readonly rig?: string;
  readonly fireId: string;
  /** The lease's fencing token: pass it to anything that must refuse a stale holder. */
  readonly fence: bigint;
  readonly signal: AbortSignal;
}

/** An order as loaded from `<pack>/orders/<name>.toml` or given in code. */
export interface OrderSpec {
  /** From the file name without `.toml`, or given in code. */
  name: string;
  /** Absolute path of the order file (file orders). */
  file?: string;
  /** The pack's root: the parent of the `orders/` directory (file orders). */
  packDir?: string;
  description?: string;
  /** Shell command run with `sh -c` (exactly one of exec, formula, run). */
  exec?: string;
  /** Gas City formula orders need a formula runner orderly does not have: they load, and are reported, never silently dropped. */
  formula?: string;
  pool?: string;
  /** A body in code. */
  run?: (ctx: RunContext) => Promise<{ didWork: boolean }>;
  trigger: Trigger;
  /** Cooldown between fires (from the previous fire's start), or how often a condition is checked. */
  intervalMs?: number;
  /** 5-field cron expression (cron trigger). */
  schedule?: string;
  /** IANA time zone of `schedule`; default the controller's. */
  tz?: string;
  /** Cron fires missed while the controller was down: `skip` (default) or fire `once`. */
  missed: 'skip' | 'once';
  /** Condition command: the order fires when it exits 0 within `checkTimeoutMs`. */
  check?: string;
  /** How long `check` may run (default 10 s, as Gas City). */
  checkTimeoutMs: number;
  /** Event type (event trigger). */
  on?: string;
  /** Body timeout; default 300 s for exec and code orders, 30 s for formula orders (Gas City's defaults). */
  timeoutMs: number;
  enabled: boolean;
  env: Record<string, string>;
  /**
   * `city`: one instance; `rig`: one per rig (`name:rig:<rig>`). When the
   * file says nothing, the loader decides: orders of a pack a rig imports
   * are rig orders, as in Gas City.
   */
  scope: 'city' | 'rig';
  /** The file said `scope = ...` (as opposed to the default). */
  scopeDeclared?: boolean;
  /** For rig orders: the rigs this order runs on (a city binds each rig's imports to that rig); absent = every rig. */
  rigs?: string[];
  /** Extra names `[orders] skip` matches (Gas City's `skip_aliases`). */
  skipAliases?: string[];
  /** Gas City's `idempotent` and `no_work_gate`: accepted and kept for `show`; orderly's lease is the only gate, and it never times out open. */
  idempotent?: boolean;
  noWorkGate?: boolean;
  /** Gas City's `[order.params]` (webhook and `gc order run --var` inputs), kept for `show`. */
  params?: Record<string, { required: boolean }>;
  /** Exit 0 with no output (whitespace aside) counts as no-op: for unconverted Gas City scripts that print only when they did work. */
  noOpWhenSilent?: boolean;
  /** Exit codes that mean "ran, did nothing"; default [100]. */
  noOpExitCodes: number[];
  /** Concurrency gate shared by the orders that name it. */
  group?: string;
  /** Random delay up to this long added to each cooldown. */
  jitterMs: number;
}

/** An order bound to its scope: `name` for city orders, `name:rig:<rig>` per rig. */
export interface ScopedOrder {
  readonly scopedName: string;
  readonly rig?: string;
  readonly spec: OrderSpec;
}

export function scopedName(name: string, rig?: string): string {
  return rig === undefined ? name : `${name}:rig:${rig}`;
}
