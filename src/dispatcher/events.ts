import type { Outcome } from '../orders/types.js';

export type SkipReason =
  | 'held'
  | 'gate-full'
  | 'store-poisoned'
  | 'audit-backlog-full'
  | 'disabled'
  | 'no-formula-runner'
  | 'webhook-only'
  | 'no-event-source'
  | 'event-log-unreadable'
  | 'stopping'
  | 'unknown-order'
  /** Cluster mode: the order's shard is another member's, or its ownership could not be confirmed in time. */
  | 'not-owner';

export type ControllerEvent =
  | { type: 'fired'; at: number; scopedName: string; fireId: string; fence: string; trigger: string; /** When the timer meant it to fire (scheduled fires). */ due?: number }
  | {
      type: 'completed';
      at: number;
      scopedName: string;
      fireId: string;
      /** As on the fire that started the run (for an adopted run, as its start recorded them). */
      trigger: string;
      fence: string;
      /** Epoch ms the body started. */
      startedAt: number;
      outcome: Outcome;
      exitCode: number | null;
      signal: string | null;
      durationMs: number;
      reason?: string;
      /** The last line the body printed, for runs that did work or failed (no-ops stay quiet). */
      summary?: string;
      /** The record is durable in the outbox and on its way to the sink; false for no-ops and when the lease log refused the COMPLETE (the lease stays held, and the next start records the run: its real outcome from the run files of an exec body, else interrupted). */
      audited: boolean;
    }
  | { type: 'skipped'; at: number; scopedName: string; reason: SkipReason; detail?: string }
  | { type: 'recovered'; at: number; scopedName: string; action: 'adopted' | 'interrupted' | 'resent' | 'released'; fireId?: string; fence?: string }
  | { type: 'error'; at: number; scopedName?: string; code: string; message: string }
  /** Something an operator should know that does not stop anything (a clock stepped back). */
  | { type: 'warning'; at: number; scopedName?: string; code: string; message: string };

/** `at` is now unless given (a fire the lane made earlier is told when it happened). */
type Distribute<T> = T extends { type: string } ? Omit<T, 'at'> & { at?: number } : never;
export type ControllerEventInput = Distribute<ControllerEvent>;
