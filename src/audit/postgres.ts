import type { Pool, PoolClient, PoolConfig } from 'pg';
import { epochOf } from '../cluster/fenced-sink.js';
import type { AuditRecord, AuditSink, HistoryQuery, PruneOptions } from './record.js';
import {
  AUDIT_TABLE,
  COLUMN_LIST,
  COLUMNS,
  loadDriver,
  migrations,
  newerSchemaError,
  PG_ARRAY_TYPES,
  redactUrl,
  rowValues,
  SCHEMA_TABLE,
  SCHEMA_VERSION,
  sqlHistory,
  sqlPrune,
  uniqueByFireId,
  type SqlReader,
} from './schema.js';

export interface PostgresSinkOptions {
  /** Connections kept (the writer needs one; history/prune may take another). Default 2. */
  poolSize?: number;
  /** Give up connecting after this long; default 10 s. */
  connectTimeoutMs?: number;
  /**
   * Cluster mode with the engine in this database: a record fired under a
   * shard epoch that is no longer current is refused in the same statement
   * that stores the others (it goes to orderly_audit_fenced instead).
   */
  fence?: { cluster: string };
}

export const FENCED_TABLE = 'orderly_audit_fenced';

/** `?` placeholders to `$1, $2, …` (the SQL here never has a `?` in a literal). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** Arbitrary but fixed: serializes concurrent migrations of one database. */
const MIGRATION_LOCK = 0x6f72_6465; // "orde"

/**
 * `postgres://…` / `postgresql://…` (the `pg` package). A batch is ONE
 * statement, `INSERT … SELECT * FROM unnest($1::varchar[], …) ON CONFLICT
 * (fire_id) DO NOTHING`: fifteen array parameters whatever the batch size,
 * so the text never changes and the statement is its own transaction.
 */
export class PostgresSink implements AuditSink {
  readonly url: string;
  readonly #connectionString: string;
  readonly #opts: PostgresSinkOptions;
  #pool: Pool | undefined;
  #ready: Promise<Pool> | undefined;

  constructor(url: string, opts: PostgresSinkOptions = {}) {
    this.#connectionString = url;
    this.url = redactUrl(url);
    this.#opts = opts;
  }

  async open(): Promise<void> {
    await this.#ensure();
  }

  /** Connects and migrates once; after a failure the next call tries again. */
  #ensure(): Promise<Pool> {
    this.#ready ??= this.#init().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #init(): Promise<Pool> {
    if (!this.#pool) {
      const pg = await loadDriver('pg', 'postgres://', () => import('pg'));
      const config: PoolConfig = {
        connectionString: this.#connectionString,
        max: this.#opts.poolSize ?? 2,
        connectionTimeoutMillis: this.#opts.connectTimeoutMs ?? 10_000,
        idleTimeoutMillis: 30_000,
        keepAlive: true,
        application_name: 'orderly',
      };
      const pool = new pg.Pool(config);
      // An idle connection the server drops (restart, failover) errors here;
      // the pool discards it and the next query connects afresh.
      pool.on('error', () => undefined);
      this.#pool = pool;
    }
    await this.#migrate(this.#pool);
    if (this.#opts.fence) await this.#pool.query(`CREATE TABLE IF NOT EXISTS ${FENCED_TABLE} (LIKE ${AUDIT_TABLE} INCLUDING ALL)`);
    return this.#pool;
  }

  async #migrate(pool: Pool): Promise<void> {
    const current = await schemaVersion(pool);
    if (current > SCHEMA_VERSION) throw newerSchemaError(this.url, current);
    if (current === SCHEMA_VERSION) return;
    const client: PoolClient = await pool.connect();
    try {
      await client.query('BEGIN');
      // Two controllers opening a fresh database migrate one after the other.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const again = await schemaVersionOn(client);
      for (const m of migrations('postgres').filter((m) => m.version > again)) {
        for (const sql of m.statements) await client.query(sql);
        await client.query(`INSERT INTO ${SCHEMA_TABLE} (version, applied_at, description) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING`, [
          m.version,
          Date.now(),
          m.description,
        ]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async write(records: readonly AuditRecord[]): Promise<{ inserted: number; fenced?: AuditRecord[] }> {
    const batch = uniqueByFireId(records);
    if (batch.length === 0) return { inserted: 0 };
    const pool = await this.#ensure();
    const now = Date.now();
    const rows = batch.map((r) => rowValues(r, 'postgres', now));
    const columns = COLUMNS.map((_, i) => rows.map((row) => row[i]));
    if (this.#opts.fence) return this.#writeFenced(pool, batch, columns, this.#opts.fence.cluster);
    const result = await pool.query(
      `INSERT INTO ${AUDIT_TABLE} (${COLUMN_LIST}) SELECT * FROM unnest(${PG_ARRAY_TYPES.map((t, i) => `$${i + 1}::${t}`).join(', ')}) ` +
        'ON CONFLICT (fire_id) DO NOTHING',
      columns,
    );
    return { inserted: result.rowCount ?? 0 };
  }

  /**
   * One statement: the epochs are read FOR SHARE, so a claim (an UPDATE of
   * that row) waits for this insert, or this insert sees the claim's epoch.
   * Either way no record is stored under an epoch that was already gone. A
   * re-send of a record stored while its epoch was current stays stored once.
   */
  async #writeFenced(pool: Pool, batch: readonly AuditRecord[], columns: unknown[][], cluster: string): Promise<{ inserted: number; fenced: AuditRecord[] }> {
    const n = COLUMNS.length;
    const fired = batch.map((r) => epochOf(r));
    const shards = fired.map((f) => f?.shard ?? null);
    const epochs = fired.map((f) => f?.epoch ?? null);
    const arrays = PG_ARRAY_TYPES.map((t, i) => `$${i + 1}::${t}`).join(', ');
    const result = await pool.query<{ fire_id: string; stored: boolean }>(
      `WITH b AS (SELECT * FROM unnest(${arrays}, $${n + 1}::int[], $${n + 2}::bigint[]) AS b(${COLUMN_LIST}, c_shard, c_epoch)), ` +
        `cur AS (SELECT shard, epoch FROM orderly_cluster_shards WHERE cluster = $${n + 3} FOR SHARE), ` +
        `judged AS (SELECT b.*, (b.c_shard IS NULL OR cur.epoch = b.c_epoch) AS ok FROM b LEFT JOIN cur ON cur.shard = b.c_shard), ` +
        `stored AS (INSERT INTO ${AUDIT_TABLE} (${COLUMN_LIST}) SELECT ${COLUMN_LIST} FROM judged WHERE ok ON CONFLICT (fire_id) DO NOTHING RETURNING fire_id), ` +
        `refused AS (INSERT INTO ${FENCED_TABLE} (${COLUMN_LIST}) SELECT ${COLUMN_LIST} FROM judged WHERE NOT ok AND NOT EXISTS (SELECT 1 FROM ${AUDIT_TABLE} a WHERE a.fire_id = judged.fire_id) ON CONFLICT (fire_id) DO NOTHING RETURNING fire_id) ` +
        `SELECT fire_id, true AS stored FROM stored UNION ALL SELECT fire_id, false FROM refused`,
      [...columns, shards, epochs, cluster],
    );
    const refusedIds = new Set(result.rows.filter((r) => !r.stored).map((r) => r.fire_id));
    return { inserted: result.rows.length - refusedIds.size, fenced: batch.filter((r) => refusedIds.has(r.fireId)) };
  }

  async ping(): Promise<void> {
    const pool = await this.#ensure();
    await pool.query('SELECT 1');
  }

  async history(q: HistoryQuery): Promise<AuditRecord[]> {
    return sqlHistory(this.#reader(), q);
  }

  async prune(p: PruneOptions): Promise<number> {
    return sqlPrune(this.#reader(), p);
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    this.#ready = undefined;
    await pool?.end();
  }

  #reader(): SqlReader {
    return {
      all: async (sql, params) => {
        const pool = await this.#ensure();
        return (await pool.query(numbered(sql), params)).rows as Array<Record<string, unknown>>;
      },
      deleteIds: async (ids) => {
        const pool = await this.#ensure();
        // One statement: its own transaction.
        const r = await pool.query(`DELETE FROM ${AUDIT_TABLE} WHERE id = ANY($1::bigint[])`, [ids]);
        return r.rowCount ?? 0;
      },
    };
  }
}

async function schemaVersion(pool: Pool): Promise<number> {
  const client = await pool.connect();
  try {
    return await schemaVersionOn(client);
  } finally {
    client.release();
  }
}

async function schemaVersionOn(client: PoolClient): Promise<number> {
  const present = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [SCHEMA_TABLE]);
  if (!present.rows[0]?.t) return 0;
  const v = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA_TABLE}`);
  return Number(v.rows[0]?.v ?? 0);
}
