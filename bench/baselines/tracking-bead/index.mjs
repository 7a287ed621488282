// Today's Gas City order dispatcher, the baseline of bench:city: the
// "tracking bead" is one database row that is at once the single-flight lock,
// the lastRun timestamp and the audit record (seeds/order-dispatch-decouple-
// proposal.txt §3-§4, §6). It is written before the body runs and whatever the
// body did, so every fire pays the same commits.
//
// What one fire does, in the order Gas City's cmd/gc/order_dispatch.go does it
// (dispatch → dispatchOne → dispatchExec → closeOrderTrackingBead →
// BdStore.CloseAll), each bd call one database transaction:
//   read    open tracking rows for the order (hasOpenTracking: the lock check)
//   commit  bd create: the tracking row with labels order-run:<scoped> and
//           order-tracking, before the body, so the next tick cannot re-fire
//   (body)
//   commit  bd update --add-label exec: the outcome label ("exec", or
//           "exec-failed"; today's dispatcher cannot tell a no-op from work)
//   commit  bd update --set-metadata close_reason=…: CloseAll stamps the reason
//           first, "since some stores prevent metadata writes on closed beads"
//   commit  bd close --reason …: status closed
//   read    the row again (CloseAll verifies the close)
//   read    the newest row's created_at: lastRun, which schedules the next fire
// = 4 commits per lifecycle, the seed's measured 64 commits/min over 16
// lifecycles/min. beads records an events row inside each mutation, as here.
//
// `bundle` is the proposal's §13 lever 1, "collapse update+close into one
// txn": the create commit, then label + metadata + close in one transaction =
// 2 commits per fire (the §13 table's "2").
//
// Cadence is orderly's (next due = lastRun + interval, first fire at start),
// with one difference of storage only: lastRun is read back from the database.
// created_at is stamped with the time the fire began, the instant orderly
// takes as lastRun (its acquire), so both designs keep the same cadence and
// fire the same number of times, whatever their commits cost.
import { randomBytes } from 'node:crypto';

export const VARIANTS = ['tracking-bead', 'bundle'];

/** Gas City's completedOrderTrackingCloseReason. */
export const CLOSE_REASON = 'order dispatch completed: tracking bead lifecycle finished';
const ACTOR = 'controller';
/** When the lock check finds an open row, Gas City waits for the next tick (1 s). */
const RETRY_HELD_MS = 1_000;

/**
 * The statements of each bd call, with `?` placeholders (the PostgreSQL store
 * numbers them). One array = one transaction.
 */
export const OPS = {
  create: (id, scoped, at) => [
    [
      "INSERT INTO issues (id, title, description, status, priority, issue_type, created_at, updated_at, metadata) VALUES (?, ?, '', 'open', 2, 'task', ?, ?, '{}')",
      [id, `order:${scoped}`, at, at],
    ],
    ['INSERT INTO labels (issue_id, label) VALUES (?, ?)', [id, `order-run:${scoped}`]],
    ['INSERT INTO labels (issue_id, label) VALUES (?, ?)', [id, 'order-tracking']],
    ["INSERT INTO events (issue_id, event_type, actor, comment, created_at) VALUES (?, 'created', ?, NULL, ?)", [id, ACTOR, at]],
  ],
  addLabel: (id, label, at) => [
    ['INSERT INTO labels (issue_id, label) VALUES (?, ?)', [id, label]],
    ['UPDATE issues SET updated_at = ? WHERE id = ?', [at, id]],
    ["INSERT INTO events (issue_id, event_type, actor, comment, created_at) VALUES (?, 'label_added', ?, ?, ?)", [id, ACTOR, `Added label: ${label}`, at]],
  ],
  setMetadata: (id, metadata, at) => [
    ['UPDATE issues SET metadata = ?, updated_at = ? WHERE id = ?', [JSON.stringify(metadata), at, id]],
    ["INSERT INTO events (issue_id, event_type, actor, comment, created_at) VALUES (?, 'updated', ?, ?, ?)", [id, ACTOR, `metadata: ${Object.keys(metadata).join(',')}`, at]],
  ],
  close: (id, reason, at) => [
    ["UPDATE issues SET status = 'closed', closed_at = ?, close_reason = ?, updated_at = ? WHERE id = ?", [at, reason, at, id]],
    ["INSERT INTO events (issue_id, event_type, actor, comment, created_at) VALUES (?, 'closed', ?, ?, ?)", [id, ACTOR, reason, at]],
  ],
};

export const READS = {
  hasOpenTracking: "SELECT i.id FROM labels l JOIN issues i ON i.id = l.issue_id WHERE l.label = ? AND i.status <> 'closed' LIMIT 1",
  lastRun: 'SELECT MAX(i.created_at) AS t FROM labels l JOIN issues i ON i.id = l.issue_id WHERE l.label = ?',
  status: 'SELECT status FROM issues WHERE id = ?',
};

/**
 * The tracking-bead store of `db` ('sqlite' | 'postgres' | 'mariadb'); `target`
 * is a file path for sqlite, a URL otherwise. Each dialect module exports
 * `prepare(target)` (the schema, one transaction) and `open(target)`
 * resolving to { exec(statements) (one transaction), query(sql, params)
 * (an autocommit read), stats(), end() } plus the reads of withReads().
 */
async function dialect(db) {
  if (db === 'sqlite') return import('./sqlite.mjs');
  if (db === 'postgres') return import('./postgres.mjs');
  if (db === 'mariadb') return import('./mysql.mjs');
  throw new Error(`tracking-bead: unknown database ${db}`);
}

export async function prepareStore(db, target) {
  return (await dialect(db)).prepare(target);
}

export async function openStore(db, target) {
  return (await dialect(db)).open(target);
}

/**
 * The dispatcher. `orders`: [{ scopedName, intervalMs, run(ctx) → { didWork } }].
 * `onFired({ scopedName, due, at })` after the create commit, `onDone({
 * scopedName, due, didWork, error })` after the lifecycle's last read.
 */
export class TrackingBeadDispatcher {
  #store;
  #orders;
  #variant;
  #onFired;
  #onDone;
  #timers = new Map();
  #inFlight = new Set();
  #stopping = false;
  #counts = { fires: 0, skippedHeld: 0, failures: 0 };

  constructor({ store, orders, variant = 'tracking-bead', onFired, onDone }) {
    if (!VARIANTS.includes(variant)) throw new Error(`tracking-bead: unknown variant ${variant}`);
    this.#store = store;
    this.#orders = orders;
    this.#variant = variant;
    this.#onFired = onFired ?? (() => {});
    this.#onDone = onDone ?? (() => {});
  }

  /** Schedules every order from its lastRun in the database (none yet: due now, all at the same instant). */
  async start() {
    const lastRuns = [];
    for (const o of this.#orders) lastRuns.push(await this.#store.lastRun(o.scopedName));
    this.#orders.forEach((o, i) => this.#schedule(o, lastRuns[i]));
  }

  /** Fires nothing more; waits for lifecycles in flight (their commits included). */
  async stop() {
    this.#stopping = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  stats() {
    return { ...this.#counts, ...this.#store.stats() };
  }

  #schedule(o, lastRun, retryInMs) {
    if (this.#stopping) return;
    const now = Date.now();
    const due = retryInMs !== undefined ? now + retryInMs : lastRun === undefined ? now : lastRun + o.intervalMs;
    this.#timers.set(
      o.scopedName,
      setTimeout(() => {
        this.#timers.delete(o.scopedName);
        if (this.#stopping) return;
        const p = this.#fire(o, due).finally(() => this.#inFlight.delete(p));
        this.#inFlight.add(p);
      }, Math.max(0, due - now)),
    );
  }

  async #fire(o, due) {
    const store = this.#store;
    const startedAt = Date.now();
    let lastRun;
    try {
      if (await store.hasOpenTracking(o.scopedName)) {
        this.#counts.skippedHeld++;
        this.#schedule(o, undefined, RETRY_HELD_MS);
        return;
      }
      const id = `gc-${randomBytes(5).toString('hex')}`;
      await store.exec(OPS.create(id, o.scopedName, startedAt));
      this.#counts.fires++;
      this.#onFired({ scopedName: o.scopedName, due, at: startedAt });
      let label = 'exec';
      let didWork = false;
      try {
        ({ didWork } = await o.run({ scopedName: o.scopedName }));
      } catch {
        label = 'exec-failed';
      }
      const at = Date.now();
      if (this.#variant === 'bundle') {
        await store.exec([...OPS.addLabel(id, label, at), ...OPS.setMetadata(id, { close_reason: CLOSE_REASON }, at), ...OPS.close(id, CLOSE_REASON, at)]);
      } else {
        await store.exec(OPS.addLabel(id, label, at));
        await store.exec(OPS.setMetadata(id, { close_reason: CLOSE_REASON }, at));
        await store.exec(OPS.close(id, CLOSE_REASON, at));
      }
      if ((await store.status(id)) !== 'closed') throw new Error(`tracking row ${id} is still open after close`);
      lastRun = await store.lastRun(o.scopedName);
      this.#onDone({ scopedName: o.scopedName, due, didWork });
    } catch (err) {
      this.#counts.failures++;
      this.#onDone({ scopedName: o.scopedName, due, error: err instanceof Error ? err.message : String(err) });
      // The row's created_at (if the create committed) is still the lastRun.
      lastRun = await store.lastRun(o.scopedName).catch(() => startedAt);
    }
    this.#schedule(o, lastRun ?? startedAt);
  }
}

/** The reads every dialect store offers on top of exec/query. */
export function withReads(conn) {
  return {
    ...conn,
    async hasOpenTracking(scoped) {
      return (await conn.query(READS.hasOpenTracking, [`order-run:${scoped}`])).length > 0;
    },
    async lastRun(scoped) {
      const t = (await conn.query(READS.lastRun, [`order-run:${scoped}`]))[0]?.t;
      return t === null || t === undefined ? undefined : Number(t);
    },
    async status(id) {
      return (await conn.query(READS.status, [id]))[0]?.status;
    },
  };
}

/**
 * A store on a client-server database through a connection pool: each exec
 * one transaction on one checked-out connection, each query an autocommit
 * read. `begin` is the dialect's BEGIN; `toDriver` rewrites `?` placeholders
 * where the driver wants others; `read(sql, params)` resolves to the rows.
 */
export function pooledStore({ dialect, begin, checkout, read, end, toDriver = (sql) => sql }) {
  const counts = { commits: 0, statements: 0, reads: 0 };
  return withReads({
    dialect,
    async exec(steps) {
      const conn = await checkout();
      try {
        await conn.query(begin);
        for (const [sql, params] of steps) await conn.query(toDriver(sql), params);
        await conn.query('COMMIT');
        counts.commits++;
        counts.statements += steps.length;
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        conn.release();
      }
    },
    async query(sql, params) {
      counts.reads++;
      return read(toDriver(sql), params);
    },
    stats: () => ({ ...counts }),
    end,
  });
}
