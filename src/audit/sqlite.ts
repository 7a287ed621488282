import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { OrderlyError } from '../errors.js';
import type { AuditRecord, AuditSink, HistoryQuery, PruneOptions } from './record.js';
import {
  driverMissing,
  AUDIT_TABLE,
  COLUMN_LIST,
  COLUMNS,
  migrations,
  newerSchemaError,
  rowValues,
  SCHEMA_TABLE,
  SCHEMA_VERSION,
  sqlHistory,
  sqlPrune,
  uniqueByFireId,
  type SqlReader,
} from './schema.js';

/**
 * Where the connection runs. better-sqlite3 is synchronous: on the JS thread a
 * commit (its fsync included) stalls the event loop, and a writer waiting on
 * another process's lock (busy_timeout) stalls it for as long. `worker` (the
 * default) runs the connection in a worker_thread of its own; `main` runs it
 * on the JS thread (for measurements; see bench/audit.mjs).
 */
export type SqliteThread = 'worker' | 'main';

export interface SqliteSinkOptions {
  thread?: SqliteThread;
  /** How long a write waits for another connection's lock (PRAGMA busy_timeout); default 5000 ms. */
  busyTimeoutMs?: number;
}

interface Step {
  kind: 'run' | 'all' | 'exec';
  sql: string;
  params?: unknown[];
}
interface Request {
  /** `immediate`: all steps in one BEGIN IMMEDIATE transaction. */
  tx: 'none' | 'immediate';
  steps: Step[];
}
type StepResult = number | Array<Record<string, unknown>> | null;

interface Connection {
  run(req: Request): Promise<StepResult[]>;
  close(): Promise<void>;
}

/**
 * The code that owns the better-sqlite3 connection, as plain JS source: the
 * same function runs inside the worker (new Worker(…, { eval: true })) and,
 * for thread 'main', on the JS thread, so the two modes cannot drift apart.
 * WAL mode with synchronous=FULL: a commit is durable when it returns.
 */
const EXECUTOR_SOURCE = `(function createExecutor(Database, file, busyTimeoutMs) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = ' + Number(busyTimeoutMs));
  const cache = new Map();
  const prepare = (sql) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      if (cache.size >= 64) cache.clear();
      cache.set(sql, s);
    }
    return s;
  };
  const runSteps = (steps) =>
    steps.map((s) => {
      if (s.kind === 'exec') { db.exec(s.sql); return null; }
      if (s.kind === 'all') return prepare(s.sql).all(s.params || []);
      return prepare(s.sql).run(s.params || []).changes;
    });
  const inTx = db.transaction(runSteps);
  return {
    run(req) { return req.tx === 'immediate' ? inTx.immediate(req.steps) : runSteps(req.steps); },
    close() { cache.clear(); db.close(); },
  };
})`;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const createExecutor = ${EXECUTOR_SOURCE};
let ex;
parentPort.on('message', (m) => {
  let reply;
  try {
    let result = null;
    if (m.op === 'open') ex = createExecutor(Database, m.file, m.busyTimeoutMs);
    else if (m.op === 'close') { if (ex) ex.close(); ex = undefined; }
    else if (!ex) throw new Error('the database is not open');
    else result = ex.run(m.req);
    reply = { id: m.id, ok: true, result };
  } catch (e) {
    reply = { id: m.id, ok: false, error: { message: String((e && e.message) || e), code: e && e.code } };
  }
  parentPort.postMessage(reply);
});
`;

type Executor = { run(req: Request): StepResult[]; close(): void };
type CreateExecutor = (Database: unknown, file: string, busyTimeoutMs: number) => Executor;

const requireHere = createRequire(import.meta.url);

/**
 * Absolute path of better-sqlite3's entry, or a clear error: it is a
 * dependency, so what goes wrong is an install that skipped it or a build
 * that never ran (npm may refuse dependencies' install scripts until approved).
 */
function driverPath(): string {
  let entry: string;
  try {
    entry = requireHere.resolve('better-sqlite3');
  } catch (err) {
    throw driverMissing('better-sqlite3', 'sqlite:', err);
  }
  const root = dirname(requireHere.resolve('better-sqlite3/package.json'));
  if (!['Release', 'Debug'].some((kind) => existsSync(join(root, 'build', kind, 'better_sqlite3.node')))) {
    throw new OrderlyError(
      'ERR_AUDIT_DRIVER',
      `the sqlite: audit sink's driver better-sqlite3 is installed at ${root} but its native part was never built (its install script did not run): ` +
        'npm install-scripts approve better-sqlite3 && npm rebuild better-sqlite3',
    );
  }
  return entry;
}

function sqliteError(e: { message: string; code?: string }): Error {
  const err = new Error(e.message) as Error & { code?: string };
  if (e.code) err.code = e.code;
  return err;
}

/** The connection on the JS thread. */
function mainThreadConnection(file: string, busyTimeoutMs: number): Connection {
  const Database: unknown = requireHere(driverPath());
  const create = new Function(`return ${EXECUTOR_SOURCE}`)() as CreateExecutor;
  const ex = create(Database, file, busyTimeoutMs);
  return {
    run: async (req) => ex.run(req),
    close: async () => ex.close(),
  };
}

/** The connection in a worker of its own: requests posted in, results posted back, in order. */
async function workerConnection(file: string, busyTimeoutMs: number, onDead: () => void): Promise<Connection> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver: driverPath() } });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | undefined;
  // An idle worker must not keep the process alive; one with work in flight must.
  worker.unref();
  const fail = (err: Error): void => {
    if (dead) return;
    dead = err;
    onDead();
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: { message: string; code?: string } }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) worker.unref();
    if (m.ok) p.resolve(m.result);
    else p.reject(sqliteError(m.error!));
  });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`the sqlite worker exited (code ${code})`)));
  const call = (msg: Record<string, unknown>): Promise<unknown> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...msg, id });
    });
  };
  try {
    await call({ op: 'open', file, busyTimeoutMs });
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    run: (req) => call({ op: 'run', req }) as Promise<StepResult[]>,
    close: async () => {
      try {
        await call({ op: 'close' });
      } finally {
        dead ??= new Error('closed');
        await worker.terminate();
      }
    },
  };
}

/** SQLite allows 32766 bound parameters; stay well below. */
const ROWS_PER_STATEMENT = 1000;

/**
 * `sqlite:<path>`: a local SQLite database (better-sqlite3, WAL mode,
 * synchronous=FULL). A batch is one multi-row `INSERT … ON CONFLICT (fire_id)
 * DO NOTHING` in one BEGIN IMMEDIATE transaction.
 */
export class SqliteSink implements AuditSink {
  readonly url: string;
  readonly path: string;
  readonly thread: SqliteThread;
  readonly #busyTimeoutMs: number;
  #conn: Promise<Connection> | undefined;

  constructor(path: string, opts: SqliteSinkOptions = {}) {
    this.path = path;
    this.url = `sqlite:${path}`;
    this.thread = opts.thread ?? 'worker';
    this.#busyTimeoutMs = opts.busyTimeoutMs ?? 5_000;
  }

  async open(): Promise<void> {
    await this.#ready();
  }

  /** Opens and migrates once; after a failure (or a dead worker) the next call tries again. */
  #ready(): Promise<Connection> {
    this.#conn ??= this.#connect().catch((err: unknown) => {
      this.#conn = undefined;
      throw err;
    });
    return this.#conn;
  }

  async #connect(): Promise<Connection> {
    mkdirSync(dirname(this.path), { recursive: true });
    const conn =
      this.thread === 'main'
        ? mainThreadConnection(this.path, this.#busyTimeoutMs)
        : await workerConnection(this.path, this.#busyTimeoutMs, () => {
            this.#conn = undefined;
          });
    // Owner only, whatever the umask; SQLite gives its -wal and -shm files the database's mode.
    try {
      chmodSync(this.path, 0o600);
    } catch {
      // Not ours to change (a database shared on purpose): leave it.
    }
    try {
      await migrate(conn, this.url);
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    return conn;
  }

  async write(records: readonly AuditRecord[]): Promise<{ inserted: number }> {
    const batch = uniqueByFireId(records);
    if (batch.length === 0) return { inserted: 0 };
    const conn = await this.#ready();
    const now = Date.now();
    const steps: Step[] = [];
    for (let i = 0; i < batch.length; i += ROWS_PER_STATEMENT) {
      const chunk = batch.slice(i, i + ROWS_PER_STATEMENT);
      const row = `(${COLUMNS.map(() => '?').join(', ')})`;
      steps.push({
        kind: 'run',
        sql: `INSERT INTO ${AUDIT_TABLE} (${COLUMN_LIST}) VALUES ${chunk.map(() => row).join(', ')} ON CONFLICT (fire_id) DO NOTHING`,
        params: chunk.flatMap((r) => rowValues(r, 'sqlite', now)),
      });
    }
    const results = await conn.run({ tx: 'immediate', steps });
    return { inserted: results.reduce<number>((n, r) => n + (r as number), 0) };
  }

  async ping(): Promise<void> {
    const conn = await this.#ready();
    await conn.run({ tx: 'none', steps: [{ kind: 'all', sql: 'SELECT 1' }] });
  }

  async history(q: HistoryQuery): Promise<AuditRecord[]> {
    return sqlHistory(this.#reader(), q);
  }

  async prune(p: PruneOptions): Promise<number> {
    return sqlPrune(this.#reader(), p);
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    if (!conn) return;
    const c = await conn.catch(() => undefined);
    await c?.close();
  }

  #reader(): SqlReader {
    return {
      all: async (sql, params) => {
        const conn = await this.#ready();
        return (await conn.run({ tx: 'none', steps: [{ kind: 'all', sql, params }] }))[0] as Array<Record<string, unknown>>;
      },
      deleteIds: async (ids) => {
        const conn = await this.#ready();
        const steps: Step[] = [];
        for (let i = 0; i < ids.length; i += ROWS_PER_STATEMENT) {
          const chunk = ids.slice(i, i + ROWS_PER_STATEMENT);
          steps.push({ kind: 'run', sql: `DELETE FROM ${AUDIT_TABLE} WHERE id IN (${chunk.map(() => '?').join(', ')})`, params: chunk });
        }
        const results = await conn.run({ tx: 'immediate', steps });
        return results.reduce<number>((n, r) => n + (r as number), 0);
      },
    };
  }
}

/** Creates or upgrades the schema; a database already at SCHEMA_VERSION costs two reads and no write. */
async function migrate(conn: Connection, url: string): Promise<void> {
  const version = async (): Promise<number> => {
    const [present] = (await conn.run({
      tx: 'none',
      steps: [{ kind: 'all', sql: "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", params: [SCHEMA_TABLE] }],
    })) as Array<Array<{ n: number }>>;
    if (!present![0]!.n) return 0;
    const [rows] = (await conn.run({ tx: 'none', steps: [{ kind: 'all', sql: `SELECT max(version) AS v FROM ${SCHEMA_TABLE}` }] })) as Array<
      Array<{ v: number | null }>
    >;
    return rows![0]!.v ?? 0;
  };
  const current = await version();
  if (current > SCHEMA_VERSION) throw newerSchemaError(url, current);
  if (current === SCHEMA_VERSION) return;
  // BEGIN IMMEDIATE holds the write lock: two processes opening a new file
  // at once migrate one after the other, and every statement is idempotent.
  const steps: Step[] = [];
  for (const m of migrations('sqlite').filter((m) => m.version > current)) {
    for (const sql of m.statements) steps.push({ kind: 'exec', sql });
    steps.push({
      kind: 'run',
      sql: `INSERT INTO ${SCHEMA_TABLE} (version, applied_at, description) VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING`,
      params: [m.version, Date.now(), m.description],
    });
  }
  await conn.run({ tx: 'immediate', steps });
}
