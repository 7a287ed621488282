import type { Pool, PoolConnection, PoolOptions, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { OrderlyError } from '../errors.js';
import type { AuditRecord, AuditSink, HistoryQuery, PruneOptions } from './record.js';
import {
  AUDIT_TABLE,
  batchMessage,
  COLUMN_LIST,
  loadDriver,
  migrations,
  newerSchemaError,
  redactUrl,
  rowValues,
  SCHEMA_TABLE,
  SCHEMA_VERSION,
  sqlHistory,
  sqlPrune,
  uniqueByFireId,
  type SqlReader,
} from './schema.js';

export interface MysqlSinkOptions {
  /** Connections kept (the writer needs one; history/prune may take another). Default 2. */
  poolSize?: number;
  /** Give up connecting after this long; default 10 s. */
  connectTimeoutMs?: number;
}

/**
 * Keeps one statement well under max_allowed_packet (16 MB on MariaDB, 64 MB
 * on MySQL 8): a batch whose rows exceed this becomes several INSERTs in the
 * same transaction.
 */
const STATEMENT_BYTES = 4 * 1024 * 1024;
const MIGRATION_LOCK = 'orderly_schema';

/**
 * `mysql://…` (the `mysql2` package): MySQL, MariaDB and Dolt. A batch is
 * one multi-row `INSERT IGNORE` (duplicates of fire_id are skipped, and
 * counted as not inserted) in one transaction.
 *
 * `?dolt_commit=1` (Dolt's sql-server): after the insert, in the same
 * session, `CALL DOLT_ADD('orderly_audit', 'orderly_schema')` then
 * `CALL DOLT_COMMIT('-m', '<message>')` once per batch that stored
 * something, which commits the SQL transaction and makes one Dolt commit of
 * orderly's tables only (`-A` would sweep in other applications'
 * uncommitted changes to a shared database). A
 * batch that stored nothing (all re-sent duplicates) makes no Dolt commit:
 * DOLT_COMMIT fails on an empty commit, and nothing changed. Schema creation
 * and each prune transaction commit the same way.
 */
export class MysqlSink implements AuditSink {
  readonly url: string;
  /** True when `?dolt_commit=1`. */
  readonly doltCommit: boolean;
  readonly #uri: string;
  readonly #opts: MysqlSinkOptions;
  #pool: Pool | undefined;
  #ready: Promise<Pool> | undefined;

  constructor(url: string, opts: MysqlSinkOptions = {}) {
    const u = new URL(url);
    const flag = u.searchParams.get('dolt_commit');
    if (flag !== null && !['0', '1', 'true', 'false', ''].includes(flag)) {
      throw new OrderlyError('ERR_AUDIT_URL', `${redactUrl(url)}: dolt_commit must be 1 or 0, got ${JSON.stringify(flag)}`);
    }
    this.doltCommit = flag === '1' || flag === 'true' || flag === '';
    u.searchParams.delete('dolt_commit');
    // mysql2 reads mysql:// URIs; mariadb:// is our alias for the same thing.
    u.protocol = 'mysql:';
    this.#uri = u.toString();
    this.url = redactUrl(url);
    this.#opts = opts;
  }

  async open(): Promise<void> {
    await this.#ensure();
  }

  #ensure(): Promise<Pool> {
    this.#ready ??= this.#init().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #init(): Promise<Pool> {
    if (!this.#pool) {
      const mysql = await loadDriver('mysql2', 'mysql://', () => import('mysql2/promise'));
      const config: PoolOptions = {
        uri: this.#uri,
        connectionLimit: this.#opts.poolSize ?? 2,
        maxIdle: this.#opts.poolSize ?? 2,
        idleTimeout: 30_000,
        connectTimeout: this.#opts.connectTimeoutMs ?? 10_000,
        enableKeepAlive: true,
        waitForConnections: true,
        // BIGINT as numbers while exact, DECIMAL (the fence) as strings.
        supportBigNumbers: true,
        bigNumberStrings: false,
        charset: 'utf8mb4',
      };
      this.#pool = mysql.createPool(config);
    }
    await this.#migrate(this.#pool);
    return this.#pool;
  }

  async #migrate(pool: Pool): Promise<void> {
    const current = await this.#withConnection(pool, schemaVersionOn);
    if (current > SCHEMA_VERSION) throw newerSchemaError(this.url, current);
    if (current === SCHEMA_VERSION) return;
    await this.#withConnection(pool, async (conn) => {
      // DDL commits implicitly in MySQL: a named lock serializes two
      // controllers migrating a fresh database instead of a transaction.
      const [locked] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, 30) AS l', [MIGRATION_LOCK]);
      if (Number(locked[0]?.l) !== 1) throw new OrderlyError('ERR_AUDIT_SCHEMA', `${this.url}: could not take the schema lock within 30 s`);
      try {
        const again = await schemaVersionOn(conn);
        const todo = migrations('mysql').filter((m) => m.version > again);
        for (const m of todo) {
          for (const sql of m.statements) await conn.query(sql);
          await conn.query(`INSERT IGNORE INTO ${SCHEMA_TABLE} (version, applied_at, description) VALUES (?, ?, ?)`, [m.version, Date.now(), m.description]);
        }
        if (todo.length > 0 && this.doltCommit) {
          await doltCommit(conn, `orderly: audit schema version ${SCHEMA_VERSION}`);
        }
      } finally {
        await conn.query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK]).catch(() => undefined);
      }
    });
  }

  /** Runs `fn` on a pooled connection; a connection that saw an error is destroyed, not reused. */
  async #withConnection<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await pool.getConnection();
    let ok = false;
    try {
      const out = await fn(conn);
      ok = true;
      return out;
    } finally {
      if (ok) conn.release();
      else conn.destroy();
    }
  }

  /** BEGIN; fn; (DOLT_COMMIT if fn changed rows); COMMIT — or ROLLBACK. */
  async #transaction(pool: Pool, message: (changed: number) => string, fn: (conn: PoolConnection) => Promise<number>): Promise<number> {
    return this.#withConnection(pool, async (conn) => {
      await conn.query('START TRANSACTION');
      try {
        const changed = await fn(conn);
        if (changed > 0 && this.doltCommit) await doltCommit(conn, message(changed));
        await conn.query('COMMIT');
        return changed;
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async write(records: readonly AuditRecord[]): Promise<{ inserted: number }> {
    const batch = uniqueByFireId(records);
    if (batch.length === 0) return { inserted: 0 };
    const pool = await this.#ensure();
    const now = Date.now();
    // Rows grouped into statements of at most STATEMENT_BYTES (roughly).
    const statements: unknown[][][] = [[]];
    let bytes = 0;
    for (const r of batch) {
      const row = rowValues(r, 'mysql', now);
      const size = 256 + row.reduce<number>((n, v) => n + (typeof v === 'string' ? Buffer.byteLength(v) * 2 : 8), 0);
      if (bytes + size > STATEMENT_BYTES && statements[statements.length - 1]!.length > 0) {
        statements.push([]);
        bytes = 0;
      }
      statements[statements.length - 1]!.push(row);
      bytes += size;
    }
    const inserted = await this.#transaction(
      pool,
      (n) => batchMessage(n, batch),
      async (conn) => {
        let n = 0;
        for (const rows of statements) {
          const [res] = await conn.query<ResultSetHeader>(`INSERT IGNORE INTO ${AUDIT_TABLE} (${COLUMN_LIST}) VALUES ?`, [rows]);
          n += res.affectedRows;
        }
        return n;
      },
    );
    return { inserted };
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
        const [rows] = await pool.query<RowDataPacket[]>(sql, params);
        return rows as Array<Record<string, unknown>>;
      },
      deleteIds: async (ids) => {
        const pool = await this.#ensure();
        return this.#transaction(
          pool,
          (n) => `orderly: pruned ${n} audit record(s)`,
          async (conn) => {
            const [res] = await conn.query<ResultSetHeader>(`DELETE FROM ${AUDIT_TABLE} WHERE id IN (?)`, [ids]);
            return res.affectedRows;
          },
        );
      },
    };
  }
}

async function schemaVersionOn(conn: PoolConnection): Promise<number> {
  const [present] = await conn.query<RowDataPacket[]>(
    'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?',
    [SCHEMA_TABLE],
  );
  if (!Number(present[0]?.n)) return 0;
  const [rows] = await conn.query<RowDataPacket[]>(`SELECT MAX(version) AS v FROM ${SCHEMA_TABLE}`);
  return Number(rows[0]?.v ?? 0);
}

/** One Dolt commit of orderly's own tables. */
async function doltCommit(conn: { query: (sql: string, values?: unknown[]) => Promise<unknown> }, msg: string): Promise<void> {
  await conn.query('CALL DOLT_ADD(?, ?)', ['orderly_audit', 'orderly_schema']);
  await conn.query('CALL DOLT_COMMIT(?, ?)', ['-m', msg]);
}
