import type { ControllerEvent } from '../dispatcher/events.js';

/** A run as the API and the dashboard show it: no-ops included, which the database never sees. */
export interface Run {
  fire_id: string;
  scoped_name: string;
  outcome: 'no-op' | 'did-work' | 'failed' | 'timeout' | 'interrupted';
  trigger: string;
  fence: string;
  started_at: string;
  ended_at: string;
  duration_ms: number;
  exit_code: number | null;
  audited: boolean;
  summary: string | null;
}

/** Runs kept in memory for the timeline: enough for a screen, bounded whatever the fire rate. */
const KEEP = 1000;

/**
 * The runs since the controller started, newest last, fed by its events, and
 * the live subscribers (server-sent events) that get each one as it ends.
 */
export class RunLog {
  readonly #runs: Run[] = [];
  readonly #subscribers = new Set<(run: Run) => void>();

  event(e: ControllerEvent): void {
    if (e.type === 'recovered' && e.action === 'interrupted' && e.fireId) {
      this.#add({
        fire_id: e.fireId,
        scoped_name: e.scopedName,
        outcome: 'interrupted',
        trigger: 'recovered',
        fence: e.fence ?? '',
        started_at: new Date(e.at).toISOString(),
        ended_at: new Date(e.at).toISOString(),
        duration_ms: 0,
        exit_code: null,
        audited: true,
        summary: null,
      });
      return;
    }
    if (e.type !== 'completed') return;
    this.#add({
      fire_id: e.fireId,
      scoped_name: e.scopedName,
      outcome: e.outcome,
      trigger: e.trigger,
      fence: e.fence,
      started_at: new Date(e.startedAt).toISOString(),
      ended_at: new Date(e.at).toISOString(),
      duration_ms: e.durationMs,
      exit_code: e.exitCode,
      audited: e.audited,
      summary: e.summary ?? null,
    });
  }

  /** Newest first. */
  recent(limit: number): Run[] {
    return this.#runs.slice(-limit).reverse();
  }

  find(fireId: string): Run | undefined {
    for (let i = this.#runs.length - 1; i >= 0; i--) if (this.#runs[i]!.fire_id === fireId) return this.#runs[i];
    return undefined;
  }

  subscribe(fn: (run: Run) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  #add(run: Run): void {
    this.#runs.push(run);
    if (this.#runs.length > KEEP) this.#runs.splice(0, this.#runs.length - KEEP);
    for (const fn of this.#subscribers) fn(run);
  }
}
