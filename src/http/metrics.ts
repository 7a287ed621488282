import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Controller, ControllerStats } from '../dispatcher/controller.js';
import type { ControllerEvent } from '../dispatcher/events.js';

/**
 * Commits per fire in the design orderly replaces: Gas City's tracking bead
 * is created, updated and closed around every fire, 4 Dolt commits whether
 * the order did anything or not (the proposal's section 2).
 */
export const TRACKING_BEAD_COMMITS_PER_FIRE = 4;

/** The commits a tracking bead per fire would have made, minus the audit transactions orderly made. */
export const commitsAvoided = (s: ControllerStats): number => Math.max(0, s.fires * TRACKING_BEAD_COMMITS_PER_FIRE - s.audit.transactions);

/** Counters Prometheus expects to only rise, set from the controller's own totals when scraped. */
function totalFrom(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function gaugeFrom(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** The controller's metrics in Prometheus text format; per-fire counters are fed by its events. */
export class Metrics {
  readonly registry = new Registry();
  readonly #fires: Counter<'order' | 'outcome'>;
  readonly #skips: Counter<'order' | 'reason'>;
  readonly #lateness: Histogram;

  constructor(controller: Controller) {
    const r = this.registry;
    this.#fires = new Counter({ name: 'orderly_fires_total', help: 'Runs that ended, by scoped order and outcome (no-op, did-work, failed, timeout, interrupted)', labelNames: ['order', 'outcome'], registers: [r] });
    this.#skips = new Counter({ name: 'orderly_skips_total', help: 'Fires skipped, by scoped order and reason (held, gate-full, store-poisoned, ...)', labelNames: ['order', 'reason'], registers: [r] });
    this.#lateness = new Histogram({
      name: 'orderly_fire_lateness_seconds',
      help: 'How long after its due time a scheduled fire started',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [r],
    });
    const stats = () => controller.stats();
    totalFrom(r, 'orderly_no_ops_total', 'Runs that found nothing to do: no audit record, no database write', () => stats().noOps);
    totalFrom(r, 'orderly_audit_writes_total', 'Audit records the database stored', () => stats().audit.inserted);
    totalFrom(r, 'orderly_audit_transactions_total', 'Database transactions that stored audit records (group commit: many records per transaction)', () => stats().audit.transactions);
    totalFrom(r, 'orderly_db_commits_avoided_total', `Database commits a tracking bead per fire would have made (${TRACKING_BEAD_COMMITS_PER_FIRE} per fire) minus the audit transactions made`, () => commitsAvoided(stats()));
    totalFrom(r, 'orderly_wal_syncs_total', 'fdatasync calls of the lease store log', () => stats().walSyncs);
    totalFrom(r, 'orderly_wal_bytes_total', 'Bytes appended to the lease store log', () => stats().walBytes);
    gaugeFrom(r, 'orderly_outbox_depth', 'Audit records durable in the outbox, waiting for the database', () => stats().audit.backlog);
    gaugeFrom(r, 'orderly_store_poisoned', '1 when the lease store refuses writes (I/O error, full disk, files removed under it)', () => (stats().poisoned ? 1 : 0));
    gaugeFrom(r, 'orderly_leases_held', 'Orders running now (each holds its lease)', () => stats().running);
    gaugeFrom(r, 'orderly_orders', 'Scoped orders loaded', () => controller.orders.length);
  }

  event(e: ControllerEvent): void {
    if (e.type === 'completed') this.#fires.inc({ order: e.scopedName, outcome: e.outcome });
    else if (e.type === 'recovered' && e.action === 'interrupted') this.#fires.inc({ order: e.scopedName, outcome: 'interrupted' });
    // An unknown name is whatever a caller typed: not a label, or a caller could grow the series without bound.
    else if (e.type === 'skipped') this.#skips.inc({ order: e.reason === 'unknown-order' ? '' : e.scopedName, reason: e.reason });
    else if (e.type === 'fired' && e.due !== undefined) this.#lateness.observe(Math.max(0, e.at - e.due) / 1000);
  }

  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
