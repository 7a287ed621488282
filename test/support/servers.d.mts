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
