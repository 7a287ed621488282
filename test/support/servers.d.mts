// Types for servers.mjs (plain JS so bench/*.mjs can import it; tsconfig has
// no allowJs, so TypeScript tests read these).

export interface ServerOptions {
  /** Extra server settings (postgres: `-c key=value`; mariadbd: `--key=value`); they override the defaults. */
  settings?: Record<string, string | number | boolean>;
  /** Where the temp directory is made (default os.tmpdir()); must be traversable by the server's user. */
  baseDir?: string;
  /** How long to wait for the server to accept connections; default 60 s. */
  readyTimeoutMs?: number;
}

export interface DatabaseServer {
  readonly kind: 'postgres' | 'mariadb';
  /** Connection URL of database `orderly` over TCP on 127.0.0.1, superuser, no password. */
  readonly url: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: string;
  readonly database: 'orderly';
  /** The server's data directory (inside `root`). */
  readonly dataDir: string;
  /** The temp directory holding data, socket and logs; removed by stop(). */
  readonly root: string;
  readonly socketPath: string;
  readonly pid: number;
  /** Runs SQL in `orderly` through psql / mariadb; resolves with unaligned, header-less output, trimmed. */
  sql(sql: string): Promise<string>;
  /** The tail of the server's log output. */
  log(): string;
  /** Fast shutdown, then deletes `root`. Idempotent. */
  stop(): Promise<void>;
  /**
   * Shuts the server down as stop() does but keeps its data directory (an
   * outage). No-op when already paused; rejects after stop().
   */
  pause(): Promise<void>;
  /** Starts the server again on the same data directory and port (same `url`); no-op while running. */
  resume(): Promise<void>;
  /** Whether the server process runs (false after pause() or stop()). */
  isRunning(): boolean;
}

export function startPostgres(options?: ServerOptions): Promise<DatabaseServer>;
export function startMariadb(options?: ServerOptions): Promise<DatabaseServer>;
/** Directory holding the PostgreSQL server binaries; throws naming the Debian package if missing. */
export function postgresBinDir(): string;
/** Paths of the MariaDB binaries; throws naming the Debian package if missing. */
export function mariadbBinaries(): { server: string; installDb: string; client: string; admin: string };
/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number>;
/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean>;

export interface EtcdOptions {
  /** Where the temp directory is made (default os.tmpdir()). */
  baseDir?: string;
  /** How long to wait for /health to say true; default 60 s. */
  readyTimeoutMs?: number;
}

/** A throwaway single-member etcd on 127.0.0.1. */
export interface EtcdServer {
  /** `etcd://127.0.0.1:<port>`: what orderly's --cluster takes. */
  readonly url: string;
  /** `http://127.0.0.1:<port>`: the client URL (gRPC, /health, the /v3 JSON gateway). */
  readonly clientUrl: string;
  readonly port: number;
  readonly peerPort: number;
  /** The server's data directory (inside `root`). */
  readonly dataDir: string;
  /** The temp directory holding the data; removed by stop(). */
  readonly root: string;
  /** Server process id (a new one after restart()). */
  readonly pid: number;
  /** The store's current revision: one more per write transaction. A read. */
  revision(): Promise<number>;
  /** The tail of the server's log output. */
  log(): string;
  /** Stops the server, then deletes `root`. Idempotent. */
  stop(): Promise<void>;
  /**
   * A crash and a restart: SIGKILL, then the server starts again on the same
   * data directory and ports; resolves once /health says true. Rejects after stop().
   */
  restart(): Promise<void>;
  /** Whether the server process runs. */
  isRunning(): boolean;
}

export function startEtcd(options?: EtcdOptions): Promise<EtcdServer>;
/** Path of the etcd server binary; throws naming the Debian package if missing. */
export function etcdBinary(): string;
