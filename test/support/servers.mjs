// Throwaway database servers on loopback, for integration tests and
// benchmarks: a fresh PostgreSQL cluster or MariaDB datadir in a temp
// directory, on a free 127.0.0.1 port, with a database `orderly`, gone again
// after `stop()`; likewise a single-member etcd (startEtcd) for the cluster
// engine. They never read the system's configuration (no /etc/postgresql, no
// /etc/mysql/my.cnf, no /etc/default/etcd), never use the default ports or
// sockets and never touch the system's default clusters.
//
// Only node built-ins: servers are driven by their own binaries and command
// line clients (pg_isready, createdb, psql, mariadb, mariadb-admin), so this
// module needs no npm package. Plain JS so bench/*.mjs can import it too;
// servers.d.mts carries its types for the TypeScript tests.
//
// Running as root (CI containers): initdb and postgres refuse to run as root,
// so they run as the `postgres` system user (the child is spawned with that
// uid/gid, like `runuser -u postgres --` but without a wrapper process
// between us and the postmaster, so signals reach it); mariadbd drops to the
// `mysql` user itself (--user=mysql). The temp directory is chowned to that
// user. As any other user everything simply runs as that user.
//
// Cleanup: `stop()` shuts the server down and deletes its directory. Servers
// still running when the process exits (a test that threw, Ctrl-C) are shut
// down and deleted best effort from 'exit' and SIGINT/SIGTERM handlers.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const LOG_TAIL_BYTES = 8192;

/**
 * @typedef {object} ServerOptions
 * @property {Record<string, string | number | boolean>} [settings] extra server settings
 *   (postgres: `-c key=value`; mariadbd: `--key=value`); they override the defaults.
 * @property {string} [baseDir] where the temp directory is made (default os.tmpdir());
 *   put it on the disk you want to measure. Must be traversable by the server's user.
 * @property {number} [readyTimeoutMs] how long to wait for the server to accept connections.
 */

/**
 * @typedef {object} DatabaseServer
 * @property {'postgres' | 'mariadb'} kind
 * @property {string} url connection URL of database `orderly` over TCP on 127.0.0.1
 * @property {string} host always 127.0.0.1
 * @property {number} port
 * @property {string} user superuser name (no password)
 * @property {string} database always `orderly`
 * @property {string} dataDir the server's data directory (inside `root`)
 * @property {string} root the temp directory holding data, socket and logs; removed by stop()
 * @property {string} socketPath unix socket path (postgres: the socket directory's socket file)
 * @property {number} pid server process id (a new one after resume())
 * @property {(sql: string) => Promise<string>} sql runs SQL in `orderly` through the command
 *   line client (psql / mariadb); resolves with its unaligned, header-less output, trimmed
 * @property {() => string} log the tail of the server's log output
 * @property {() => Promise<void>} stop fast shutdown, then delete `root`; idempotent
 * @property {() => Promise<void>} pause shut the server down as stop() does, keeping its data
 *   directory (an outage); no-op when paused; rejects after stop()
 * @property {() => Promise<void>} resume start it again on the same data directory and port
 *   (same `url`); no-op while running; rejects after stop()
 * @property {() => boolean} isRunning whether the server process runs
 */

// ------------------------------------------------------------ shared helpers

/** Servers started and not yet stopped: what the exit handlers clean up. */
const live = new Set();
let handlersInstalled = false;

function installExitHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      cleanupAllSync();
      // Re-raise with the default action unless someone else still handles it
      // (bench/lib/scratch.mjs re-raises too; a second signal is harmless).
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function cleanupAllSync() {
  for (const entry of live) entry.killSync();
  live.clear();
}

/** True while `pid` runs; a zombie (exited, not yet reaped by us) counts as gone. */
function running(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** True while any live (non-zombie) process is in process group `pgid` (Linux /proc). */
function groupRunning(pgid) {
  let pids;
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return running(pgid);
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      // exited meanwhile
    }
  }
  return false;
}

/** rm -rf that never throws (exit handlers must not). */
function removeQuietly(dir) {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  } catch {
    // best effort
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Like sleep, but does not keep the process alive (for races against an exit). */
const unrefSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** A free TCP port on 127.0.0.1 (free now; startServer retries if it is taken meanwhile). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true if something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** uid/gid of a system user, or null when we are not root (then we run as ourselves). */
function serverUser(name, pkg) {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { name, uid, gid };
  } catch {
    throw new Error(
      `running as root, the server must run as the \`${name}\` system user, which does not exist; ` +
        `it comes with the Debian package: apt-get install -y ${pkg}`,
    );
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** The environment for servers and clients: the caller's PG... and MYSQL... variables do not leak in. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(PG|MYSQL|MARIADB)/.test(k)) env[k] = v;
  }
  return { ...env, LC_ALL: 'C', LANG: 'C', TZ: 'UTC', ...extra };
}

/**
 * Runs a program to completion; rejects with its stderr. With `entry`, it
 * runs in its own process group (initdb and mariadb-install-db start helper
 * processes that write into the root) that the exit handler kills before it
 * deletes the root.
 */
function run(file, args, { env, timeoutMs = 30_000, uidGid, entry } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: env ?? cleanEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, detached: Boolean(entry), ...(uidGid ?? {}) },
      (err, stdout, stderr) => {
        if (entry && child.pid !== undefined) entry.helpers.delete(child.pid);
        if (err) {
          const detail = String(stderr || stdout || '').trim();
          reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${detail || err.message}`));
        } else resolve(String(stdout));
      },
    );
    if (entry && child.pid !== undefined) entry.helpers.add(child.pid);
  });
}

/** A fresh temp dir owned by `user` (0700), holding everything the server writes. */
function makeRoot(prefix, baseDir, user) {
  const base = baseDir ?? os.tmpdir();
  mkdirSync(base, { recursive: true });
  const root = mkdtempSync(path.join(base, `orderly-${prefix}-`));
  if (user) chownSync(root, user.uid, user.gid);
  chmodSync(root, 0o700);
  return root;
}

/**
 * Spawns the server and tracks it: log tail, exit, cleanup.
 * @returns {{ child: import('node:child_process').ChildProcess, log: () => string, exited: Promise<{code: number|null, signal: string|null}>, hasExited: () => boolean }}
 */
function spawnServer(file, args, { user, env }) {
  const child = spawn(file, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  let tail = '';
  const onData = (chunk) => {
    tail += chunk;
    if (tail.length > 2 * LOG_TAIL_BYTES) tail = tail.slice(-LOG_TAIL_BYTES);
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  let done = false;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      done = true;
      onData(`\nspawn failed: ${err.message}\n`);
      resolve({ code: null, signal: null });
    });
  });
  // A forgotten stop() must not keep the process alive; the exit handler
  // shuts the server down instead. stop() refs it again while it waits.
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();
  return { child, log: () => tail.slice(-LOG_TAIL_BYTES), exited, hasExited: () => done };
}

/** Polls `probe` until it resolves true; fails early if the server exits. */
async function waitReady(what, probe, server, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.hasExited()) throw new Error(`${what} exited during startup:\n${server.log()}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not accept connections within ${timeoutMs} ms:\n${server.log()}`);
    await sleep(100);
  }
}

/**
 * Shuts a tracked server down (asynchronously) and removes its root.
 * @param {ReturnType<typeof spawnServer>} server
 * @param {NodeJS.Signals} signal the server's fast-shutdown signal
 */
async function shutdown(server, signal, root) {
  await halt(server, signal);
  rmSync(root, { recursive: true, force: true });
}

/**
 * Shuts a tracked server down (asynchronously), leaving its root and data directory.
 * @param {ReturnType<typeof spawnServer>} server
 * @param {NodeJS.Signals} signal the server's fast-shutdown signal
 */
async function halt(server, signal) {
  const { child } = server;
  if (!server.hasExited()) {
    child.ref();
    child.stdout?.ref?.();
    child.stderr?.ref?.();
    child.kill(signal);
    const timedOut = await Promise.race([server.exited.then(() => false), unrefSleep(STOP_TIMEOUT_MS).then(() => true)]);
    if (timedOut) {
      child.kill('SIGKILL');
      await server.exited;
    }
  }
  child.stdout?.destroy();
  child.stderr?.destroy();
}

/**
 * pause()/resume() of a started server, for outage tests: pause shuts the
 * server down the way stop() does but keeps its data directory; resume starts
 * it again on the same data directory and port (same URL). Calls run one
 * after the other; both are no-ops when already in that state, and both
 * reject once stop() was called.
 * @param {ReturnType<typeof register>} entry
 * @param {(port: number, fresh: boolean) => Promise<unknown>} start
 */
function pauser(entry, start, port, stopSignal) {
  let chain = Promise.resolve();
  const serial = (fn) => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
  const alive = () => {
    if (!live.has(entry)) throw new Error('the server was stopped');
  };
  return {
    pause: () =>
      serial(async () => {
        alive();
        if (entry.server && !entry.server.hasExited()) await halt(entry.server, stopSignal);
      }),
    resume: () =>
      serial(async () => {
        alive();
        if (entry.server && !entry.server.hasExited()) return;
        await start(port, false);
      }),
    running: () => Boolean(entry.server && !entry.server.hasExited()),
  };
}

/**
 * Cleanup record for one server, registered as soon as its temp root exists,
 * so a signal or exit during startup cleans up too. `killSignal` is what the
 * exit handler sends (it cannot wait long); `entry.server` is set while a
 * server process runs.
 */
function register(root, killSignal) {
  const entry = {
    /** @type {ReturnType<typeof spawnServer> | null} */
    server: null,
    /** @type {Set<number>} process groups of running setup programs */
    helpers: new Set(),
    killSync() {
      for (const pgid of entry.helpers) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          // already gone
        }
        const deadline = Date.now() + 5000;
        while (groupRunning(pgid) && Date.now() < deadline) sleepSync(20);
      }
      entry.helpers.clear();
      const pid = entry.server?.child.pid;
      if (pid !== undefined && !entry.server?.hasExited() && running(pid)) {
        try {
          process.kill(pid, killSignal);
        } catch {
          // already gone
        }
        const deadline = Date.now() + 5000;
        while (running(pid) && Date.now() < deadline) sleepSync(20);
        if (running(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
          while (running(pid) && Date.now() < deadline + 2000) sleepSync(20);
        }
      }
      removeQuietly(root);
    },
    /** Startup failed and no server runs: remove the root now. */
    discard() {
      live.delete(entry);
      rmSync(root, { recursive: true, force: true });
    },
    /** The idempotent stop() of a started server. */
    stopper(stopSignal) {
      let stopping;
      return () => {
        stopping ??= (async () => {
          try {
            if (entry.server) await shutdown(entry.server, stopSignal, root);
            else rmSync(root, { recursive: true, force: true });
          } finally {
            live.delete(entry);
          }
        })();
        return stopping;
      };
    },
  };
  live.add(entry);
  installExitHandlers();
  return entry;
}

/** Tries `attempt(port)` on fresh ports; retries when the port was taken meanwhile. */
async function onFreePort(attempt) {
  let lastError;
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    try {
      return await attempt(port);
    } catch (err) {
      lastError = err;
      if (!/in use|could not bind|Can't start server|Do you already have another/i.test(String(err?.message))) throw err;
    }
  }
  throw lastError;
}

// ------------------------------------------------------------ PostgreSQL

/** Directory holding initdb and postgres: /usr/lib/postgresql/<newest>/bin, else PATH. */
export function postgresBinDir() {
  const candidates = [];
  if (process.env.ORDERLY_PG_BINDIR) candidates.push(process.env.ORDERLY_PG_BINDIR);
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => path.join('/usr/lib/postgresql', v, 'bin')));
  } catch {
    // not installed the Debian way
  }
  const initdbOnPath = onPath('initdb');
  if (initdbOnPath) candidates.push(path.dirname(initdbOnPath));
  for (const dir of candidates) {
    if (['initdb', 'postgres', 'pg_isready', 'createdb', 'psql'].every((b) => existsSync(path.join(dir, b)))) return dir;
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, postgres, pg_isready, createdb, psql) not found under ' +
      '/usr/lib/postgresql/*/bin or on PATH: install the Debian package with `apt-get install -y postgresql` ' +
      '(or set ORDERLY_PG_BINDIR to a directory holding them)',
  );
}

/**
 * Starts a throwaway PostgreSQL server on 127.0.0.1 with database `orderly`,
 * superuser `postgres`, trust auth, fsync=on and synchronous_commit=on.
 * @param {ServerOptions} [options]
 * @returns {Promise<DatabaseServer>}
 */
export async function startPostgres({ settings = {}, baseDir, readyTimeoutMs = READY_TIMEOUT_MS } = {}) {
  const bin = postgresBinDir();
  const user = serverUser('postgres', 'postgresql');
  const root = makeRoot('pg', baseDir, user);
  // SIGQUIT = immediate shutdown, for the exit handler.
  const entry = register(root, 'SIGQUIT');
  const dataDir = path.join(root, 'data');
  const env = cleanEnv({ HOME: root });
  const asUser = user ? { uid: user.uid, gid: user.gid } : undefined;
  try {
    // -N: the template files need no fsync; the server itself runs with fsync=on.
    await run(
      path.join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N'],
      { env, uidGid: asUser, timeoutMs: readyTimeoutMs, entry },
    );
  } catch (err) {
    entry.discard();
    throw err;
  }

  // fresh: the first start (creates database orderly); resume() starts again without.
  const start = async (port, fresh = true) => {
    const conf = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: root,
      fsync: 'on',
      synchronous_commit: 'on',
      full_page_writes: 'on',
      logging_collector: 'off',
      log_destination: 'stderr',
      ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, String(v)])),
    };
    const args = ['-D', dataDir, ...Object.entries(conf).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const server = spawnServer(path.join(bin, 'postgres'), args, { user, env });
    entry.server = server;
    const clientArgs = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres'];
    try {
      await waitReady(
        `postgres on 127.0.0.1:${port}`,
        () => run(path.join(bin, 'pg_isready'), [...clientArgs, '-d', 'postgres', '-t', '2'], { timeoutMs: 5000 }).then(() => true),
        server,
        readyTimeoutMs,
      );
      if (fresh) await run(path.join(bin, 'createdb'), [...clientArgs, 'orderly']);
    } catch (err) {
      server.child.kill('SIGQUIT');
      await Promise.race([server.exited, unrefSleep(10_000)]);
      entry.server = null;
      throw err;
    }
    return { server, port };
  };

  let started;
  try {
    started = await onFreePort(start);
  } catch (err) {
    entry.discard();
    throw err;
  }
  const { port } = started;
  // SIGINT = fast shutdown (roll back sessions, checkpoint, exit).
  const stop = entry.stopper('SIGINT');
  const { pause, resume, running: isRunning } = pauser(entry, start, port, 'SIGINT');
  const psqlArgs = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'orderly'];
  return {
    kind: 'postgres',
    url: `postgres://postgres@127.0.0.1:${port}/orderly`,
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'orderly',
    dataDir,
    root,
    socketPath: path.join(root, `.s.PGSQL.${port}`),
    // Getters: resume() starts a new server process.
    get pid() {
      return /** @type {number} */ (entry.server?.child.pid);
    },
    sql: async (sql) => (await run(path.join(bin, 'psql'), [...psqlArgs, '-c', sql])).trim(),
    log: () => entry.server?.log() ?? '',
    stop,
    pause,
    resume,
    isRunning,
  };
}

// ------------------------------------------------------------ MariaDB

/** Paths of mariadbd, mariadb-install-db, mariadb and mariadb-admin. */
export function mariadbBinaries() {
  const find = (names, dirs) => {
    for (const name of names) {
      for (const dir of dirs) if (existsSync(path.join(dir, name))) return path.join(dir, name);
      const p = onPath(name);
      if (p) return p;
    }
    return null;
  };
  const sbin = ['/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  const bin = ['/usr/bin', '/usr/local/bin'];
  const found = {
    server: find(['mariadbd', 'mysqld'], sbin),
    installDb: find(['mariadb-install-db', 'mysql_install_db'], bin),
    client: find(['mariadb', 'mysql'], bin),
    admin: find(['mariadb-admin', 'mysqladmin'], bin),
  };
  const missing = Object.entries(found).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) {
    throw new Error(
      `MariaDB binaries not found (${missing.join(', ')}: mariadbd, mariadb-install-db, mariadb, mariadb-admin): ` +
        'install the Debian package with `apt-get install -y mariadb-server`',
    );
  }
  return /** @type {{ server: string, installDb: string, client: string, admin: string }} */ (found);
}

/**
 * Starts a throwaway MariaDB server on 127.0.0.1 with database `orderly`,
 * user root without password, innodb_flush_log_at_trx_commit=1, no binlog.
 * @param {ServerOptions} [options]
 * @returns {Promise<DatabaseServer>}
 */
export async function startMariadb({ settings = {}, baseDir, readyTimeoutMs = READY_TIMEOUT_MS } = {}) {
  const bins = mariadbBinaries();
  const user = serverUser('mysql', 'mariadb-server');
  const root = makeRoot('mariadb', baseDir, user);
  // The exit handler cannot wait for a clean shutdown: SIGKILL (the data is thrown away anyway).
  const entry = register(root, 'SIGKILL');
  const dataDir = path.join(root, 'data');
  const socketPath = path.join(root, 'mysqld.sock');
  const tmpDir = path.join(root, 'tmp');
  mkdirSync(tmpDir);
  if (user) chownSync(tmpDir, user.uid, user.gid);
  const env = cleanEnv({ HOME: root });
  const userArgs = user ? [`--user=${user.name}`] : [];
  try {
    // --no-defaults must come first: never read /etc/mysql/*.
    await run(
      bins.installDb,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        ...userArgs,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
      ],
      { env, timeoutMs: readyTimeoutMs, entry },
    );
  } catch (err) {
    entry.discard();
    throw err;
  }

  // fresh: the first start (creates user and database); resume() starts again without.
  const start = async (port, fresh = true) => {
    const conf = {
      datadir: dataDir,
      socket: socketPath,
      'pid-file': path.join(root, 'mysqld.pid'),
      tmpdir: tmpDir,
      port: String(port),
      'bind-address': '127.0.0.1',
      'skip-networking': '0',
      'skip-name-resolve': '1',
      'innodb-flush-log-at-trx-commit': '1',
      'sync-binlog': '0',
      ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [k.replaceAll('_', '-'), String(v)])),
    };
    const args = ['--no-defaults', ...userArgs, ...Object.entries(conf).map(([k, v]) => `--${k}=${v}`)];
    const server = spawnServer(bins.server, args, { user: null, env });
    entry.server = server;
    try {
      await waitReady(
        `mariadbd on 127.0.0.1:${port}`,
        () => run(bins.admin, ['--no-defaults', `--socket=${socketPath}`, '-u', 'root', '--connect-timeout=2', 'ping'], { timeoutMs: 5000 }).then(() => true),
        server,
        readyTimeoutMs,
      );
      // mariadb-install-db makes root@127.0.0.1 with normal auth already;
      // be explicit so a different default does not break TCP logins.
      if (fresh) {
        await run(bins.client, [
          '--no-defaults',
          `--socket=${socketPath}`,
          '-u',
          'root',
          '-e',
          "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE orderly",
        ]);
      }
    } catch (err) {
      server.child.kill('SIGKILL');
      await Promise.race([server.exited, unrefSleep(10_000)]);
      entry.server = null;
      throw err;
    }
    return { server, port };
  };

  let started;
  try {
    started = await onFreePort(start);
  } catch (err) {
    entry.discard();
    throw err;
  }
  const { port } = started;
  // SIGTERM = normal shutdown.
  const stop = entry.stopper('SIGTERM');
  const { pause, resume, running: isRunning } = pauser(entry, start, port, 'SIGTERM');
  const clientArgs = ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-u', 'root', '-B', '-N', 'orderly'];
  return {
    kind: 'mariadb',
    url: `mysql://root@127.0.0.1:${port}/orderly`,
    host: '127.0.0.1',
    port,
    user: 'root',
    database: 'orderly',
    dataDir,
    root,
    socketPath,
    // Getters: resume() starts a new server process.
    get pid() {
      return /** @type {number} */ (entry.server?.child.pid);
    },
    sql: async (sql) => (await run(bins.client, [...clientArgs, '-e', sql])).trim(),
    log: () => entry.server?.log() ?? '',
    stop,
    pause,
    resume,
    isRunning,
  };
}

// ------------------------------------------------------------ etcd

/** Path of the etcd server binary. */
export function etcdBinary() {
  const found = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p)) ?? onPath('etcd');
  if (!found) throw new Error('etcd not found in /usr/bin, /usr/local/bin or on PATH: install the Debian package with `apt-get install -y etcd-server`');
  return found;
}

/** The environment for etcd: the caller's ETCD_... variables are flags to etcd and must not leak in. */
function etcdEnv(root) {
  const env = cleanEnv({ HOME: root });
  for (const k of Object.keys(env)) if (/^ETCD/.test(k)) delete env[k];
  return env;
}

/**
 * Starts a throwaway single-member etcd on 127.0.0.1 (client and peer ports
 * both free ones), data in a temp directory, fsync on as in production.
 * @param {{ baseDir?: string, readyTimeoutMs?: number }} [options]
 */
export async function startEtcd({ baseDir, readyTimeoutMs = READY_TIMEOUT_MS } = {}) {
  const bin = etcdBinary();
  const root = makeRoot('etcd', baseDir, null);
  // A crash is what etcd must survive anyway, and the exit handler cannot wait.
  const entry = register(root, 'SIGKILL');
  const dataDir = path.join(root, 'data');
  const env = etcdEnv(root);
  const name = 'orderly-test';

  const start = async (port, peerPort) => {
    const client = `http://127.0.0.1:${port}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    // On a restart the data directory already names the cluster: etcd ignores the --initial-* flags then.
    const args = [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${name}=${peer}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=orderly-${path.basename(root)}`,
      '--logger=zap',
      '--log-outputs=stderr',
    ];
    const server = spawnServer(bin, args, { user: null, env });
    entry.server = server;
    try {
      await waitReady(`etcd on 127.0.0.1:${port}`, () => etcdHealthy(port), server, readyTimeoutMs);
    } catch (err) {
      server.child.kill('SIGKILL');
      await Promise.race([server.exited, unrefSleep(10_000)]);
      entry.server = null;
      throw err;
    }
    return { port, peerPort };
  };

  let started;
  try {
    started = await onFreePort(async (port) => start(port, await freePort()));
  } catch (err) {
    entry.discard();
    throw err;
  }
  const { port, peerPort } = started;
  // SIGTERM = graceful stop; the data is deleted right after anyway.
  const stop = entry.stopper('SIGTERM');
  let chain = Promise.resolve();
  const restart = () => {
    const next = chain.then(async () => {
      if (!live.has(entry)) throw new Error('the server was stopped');
      if (entry.server) await halt(entry.server, 'SIGKILL');
      await start(port, peerPort);
    });
    chain = next.catch(() => undefined);
    return next;
  };
  const clientUrl = `http://127.0.0.1:${port}`;
  return {
    url: `etcd://127.0.0.1:${port}`,
    clientUrl,
    port,
    peerPort,
    dataDir,
    root,
    // A getter: restart() starts a new server process.
    get pid() {
      return /** @type {number} */ (entry.server?.child.pid);
    },
    revision: () => etcdRevision(port),
    log: () => entry.server?.log() ?? '',
    stop,
    restart,
    isRunning: () => Boolean(entry.server && !entry.server.hasExited()),
  };
}

/** Whether etcd on 127.0.0.1:port has a leader and no alarm: its /health endpoint. */
async function etcdHealthy(port) {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return false;
  const body = await res.json();
  return body?.health === 'true' || body?.health === true;
}

/**
 * The store's current revision (it grows by one per write transaction), read
 * through the v3 JSON gateway: a range of a key nobody writes, so the probe
 * itself writes nothing.
 */
async function etcdRevision(port) {
  const key = Buffer.from('orderly-test/revision-probe').toString('base64');
  const res = await fetch(`http://127.0.0.1:${port}/v3/kv/range`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key }),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`etcd /v3/kv/range: HTTP ${res.status} ${await res.text()}`);
  const body = await res.json();
  return Number(body.header.revision);
}
