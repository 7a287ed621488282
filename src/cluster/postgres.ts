import type { Client, ClientConfig } from 'pg';
import { loadDriver, redactUrl } from '../audit/schema.js';
import { OrderlyError } from '../errors.js';
import { fnv1a } from './shards.js';
import { type Claim, type ClusterEngine, LEASE_MS, type MemberInfo, RENEW_DEADLINE_MS, type ShardState } from './engine.js';

/**
 * Ownership on PostgreSQL without a row write while it is held.
 *
 * - A member is a session whose application_name is `orderly:<cluster>:<id>`
 *   (pg_stat_activity lists them: no member table to keep clean).
 * - A shard is owned by the session holding the session advisory lock
 *   (classid = the cluster's key, objid = the shard). The server frees it the
 *   moment the session ends: kill -9, a closed socket, a server restart.
 * - A paused member would hold its session forever, so each member's session
 *   sets idle_session_timeout to the lease: a member that stops confirming
 *   (every 2 s) is cut off by the server after 15 s, and its locks go.
 * - The epoch is the one row written per ownership change
 *   (orderly_cluster_shards): bumped by the claim, in the claim's session.
 *   A member that hands a shard over marks the row `released` before it lets
 *   go (it has stopped firing and its bodies ended), so the next owner need
 *   not wait out a renew deadline; a lock freed any other way is not marked.
 */
export const SHARDS_TABLE = 'orderly_cluster_shards';

export interface PostgresEngineOptions {
  cluster: string;
  /** The server cuts a silent member off after this long; default LEASE_MS. */
  leaseMs?: number;
  connectTimeoutMs?: number;
}

export class PostgresEngine implements ClusterEngine {
  readonly kind = 'postgres' as const;
  readonly url: string;
  readonly #connectionString: string;
  readonly #opts: PostgresEngineOptions;
  readonly #key: number;
  #client: Client | undefined;
  #backendPid: number | undefined;
  #member: MemberInfo | undefined;
  #lost: Error | undefined;

  constructor(url: string, opts: PostgresEngineOptions) {
    this.#connectionString = url;
    this.url = redactUrl(url);
    this.#opts = opts;
    this.#key = clusterKey(opts.cluster);
  }

  async join(member: MemberInfo): Promise<void> {
    const pg = await loadDriver('pg', 'postgres://', () => import('pg'));
    const name = appName(this.#opts.cluster, member.id);
    const config: ClientConfig = {
      connectionString: this.#connectionString,
      application_name: name,
      connectionTimeoutMillis: this.#opts.connectTimeoutMs ?? 5_000,
      keepAlive: true,
    };
    const client = new pg.Client(config);
    // A session that ends (server restart, network cut, the idle timeout)
    // takes the locks with it: from then on nothing this member holds is its own.
    client.on('error', (err) => {
      this.#lost ??= Object.assign(new Error(`the PostgreSQL session ended: ${err.message}`), { sessionLost: true });
    });
    client.on('end', () => {
      this.#lost ??= Object.assign(new Error('the PostgreSQL session ended'), { sessionLost: true });
    });
    await client.connect();
    try {
      await client.query(`SET idle_session_timeout = ${Math.ceil(this.#opts.leaseMs ?? LEASE_MS)}`);
      await ensureTable(client);
      this.#backendPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    this.#client = client;
    this.#member = member;
  }

  async members(): Promise<MemberInfo[]> {
    const r = await this.#query<{ application_name: string; backend_start: Date; client_addr: string | null }>(
      'SELECT application_name, backend_start, client_addr FROM pg_stat_activity WHERE application_name LIKE $1',
      [`${appName(this.#opts.cluster, '')}%`],
    );
    const prefix = appName(this.#opts.cluster, '');
    return r.rows
      .map((row) => memberFromId(row.application_name.slice(prefix.length), row.backend_start.getTime()))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async claim(shard: number): Promise<Claim | null> {
    const got = await this.#query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [this.#key, shard]);
    if (!got.rows[0]?.ok) return null;
    // `prev` is read in the statement's snapshot: whether the owner of the epoch being replaced handed it over.
    const r = await this.#query<{ epoch: string; released: boolean | null }>(
      `WITH prev AS (SELECT released FROM ${SHARDS_TABLE} WHERE cluster = $1 AND shard = $2) ` +
        `INSERT INTO ${SHARDS_TABLE} (cluster, shard, epoch, owner, claimed_at, released) VALUES ($1, $2, 1, $3, now(), false) ` +
        `ON CONFLICT (cluster, shard) DO UPDATE SET epoch = ${SHARDS_TABLE}.epoch + 1, owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at, released = false ` +
        'RETURNING epoch, (SELECT released FROM prev) AS released',
      [this.#opts.cluster, shard, this.#member!.id],
    );
    const epoch = Number(r.rows[0]!.epoch);
    return { epoch, waitMs: epoch === 1 || r.rows[0]!.released === true ? 0 : RENEW_DEADLINE_MS };
  }

  async release(shard: number, epoch: number): Promise<void> {
    // Marked only while the epoch is still this member's: a lock an engine restart took away may have a new owner already.
    await this.#query(
      `WITH handed AS (UPDATE ${SHARDS_TABLE} SET released = true WHERE cluster = $1 AND shard = $2 AND epoch = $3 RETURNING 1) ` +
        'SELECT pg_advisory_unlock($4, $2), (SELECT count(*) FROM handed) AS marked',
      [this.#opts.cluster, shard, epoch, this.#key],
    );
  }

  async confirm(): Promise<Set<number>> {
    // Same backend, and the locks it holds: a reconnect would be a new session holding nothing.
    const r = await this.#query<{ pid: number; shard: number | null }>(
      `SELECT pg_backend_pid() AS pid, l.objid::int AS shard FROM (SELECT 1) one ` +
        `LEFT JOIN pg_locks l ON l.pid = pg_backend_pid() AND l.locktype = 'advisory' AND l.classid = ($1::int)::oid AND l.objsubid = 2 AND l.granted`,
      [this.#key],
    );
    if (r.rows[0]?.pid !== this.#backendPid) throw new Error('the PostgreSQL session was replaced');
    return new Set(r.rows.flatMap((row) => (row.shard === null ? [] : [row.shard])));
  }

  async shards(): Promise<ShardState[]> {
    const r = await this.#query<{ shard: number; epoch: string; owner: string | null; claimed_at: Date }>(
      `SELECT s.shard, s.epoch, a.application_name AS owner, s.claimed_at FROM ${SHARDS_TABLE} s ` +
        `LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.classid = ($2::int)::oid AND l.objid = s.shard AND l.objsubid = 2 AND l.granted ` +
        'LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE s.cluster = $1 ORDER BY s.shard',
      [this.#opts.cluster, this.#key],
    );
    const prefix = appName(this.#opts.cluster, '');
    return r.rows.map((row) => ({
      shard: row.shard,
      epoch: Number(row.epoch),
      ...(row.owner ? { owner: row.owner.slice(prefix.length) } : {}),
      claimedAt: row.claimed_at.getTime(),
    }));
  }

  async current(pairs: ReadonlyArray<{ shard: number; epoch: number }>): Promise<boolean[]> {
    const r = await this.#query<{ shard: number; epoch: string }>(`SELECT shard, epoch FROM ${SHARDS_TABLE} WHERE cluster = $1`, [this.#opts.cluster]);
    const now = new Map(r.rows.map((row) => [row.shard, Number(row.epoch)]));
    return pairs.map((p) => now.get(p.shard) === p.epoch);
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  /**
   * Connects for members() and shards() only, without joining: no member
   * application_name (so it is not counted as a member and claims nothing),
   * no idle timeout, and no table created (a cluster that never ran has none).
   */
  async observe(): Promise<void> {
    const pg = await loadDriver('pg', 'postgres://', () => import('pg'));
    const client = new pg.Client({ connectionString: this.#connectionString, application_name: 'orderly-observer', connectionTimeoutMillis: this.#opts.connectTimeoutMs ?? 5_000 });
    client.on('error', (err) => {
      this.#lost ??= new Error(`the PostgreSQL session ended: ${err.message}`);
    });
    await client.connect();
    this.#client = client;
  }

  async #query<R extends object>(sql: string, params: unknown[]): Promise<{ rows: R[] }> {
    if (this.#lost) throw this.#lost;
    if (!this.#client) throw new OrderlyError('ERR_CLUSTER', `${this.url}: not joined`);
    return this.#client.query<R & import('pg').QueryResultRow>(sql, params);
  }
}

/** The table of epochs, created by whichever member comes first (IF NOT EXISTS under a transaction lock). */
async function ensureTable(client: Client): Promise<void> {
  const present = await client.query<{ t: string | null; released: boolean }>(
    `SELECT to_regclass($1)::text AS t, EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'released' AND NOT attisdropped) AS released`,
    [SHARDS_TABLE],
  );
  if (present.rows[0]?.t && present.rows[0].released) return;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [clusterKey('orderly-cluster-schema')]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${SHARDS_TABLE} (cluster text NOT NULL, shard int NOT NULL, epoch bigint NOT NULL, owner text NOT NULL, claimed_at timestamptz NOT NULL, released boolean NOT NULL DEFAULT false, PRIMARY KEY (cluster, shard))`,
    );
    // A table of an earlier version: its shards count as not handed over (the safe side).
    await client.query(`ALTER TABLE ${SHARDS_TABLE} ADD COLUMN IF NOT EXISTS released boolean NOT NULL DEFAULT false`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The advisory lock class of a cluster: a stable 31-bit hash of its name. */
export function clusterKey(cluster: string): number {
  return fnv1a(cluster) & 0x7fffffff;
}

/** application_name holds 63 bytes: the cluster and member ids are kept short by their makers. */
function appName(cluster: string, id: string): string {
  return `orderly:${cluster}:${id}`;
}

/** `<host>-<pid>-<random>`: what a member id says about where it runs. */
export function memberFromId(id: string, since: number): MemberInfo {
  const m = /^(.*)-(\d+)-[0-9a-f]+$/.exec(id);
  return { id, host: m?.[1] ?? '', pid: m ? Number(m[2]) : 0, state: '', since };
}
