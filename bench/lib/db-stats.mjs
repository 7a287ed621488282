// What a database itself says it committed and wrote, read from outside the
// process that made the writes, so a benchmark's commit counts never rest on
// the client's word alone. Each probe's sample() returns cumulative counters
// { commits, bytes, ...detail }; a figure is the difference of two samples.
//
//   PostgreSQL  commits = transaction ids assigned (pg_snapshot_xmax of the
//               current snapshot: the next id to assign, read without taking
//               one, so the probe does not count itself). Only a transaction
//               that writes gets an id; autocommit SELECTs do not.
//               bytes = WAL generated (pg_current_wal_insert_lsn), exact and
//               without the lag of pg_stat_wal (flushed by backends later).
//   MariaDB     commits = read-write transactions, from InnoDB's transaction
//               id counter (two numbers each, see mariadbProbe); bytes =
//               Innodb_os_log_written (redo log bytes). Both server-wide.
//   SQLite      commits = commit frames appended to the -wal file, bytes =
//               frames × (page size + 24-byte frame header): read from the
//               file, see SqliteWalCounter.
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, watch } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const WAL_HEADER = 32;
const FRAME_HEADER = 24;

/**
 * Counts the frames and commit frames SQLite appends to `<db>-wal`.
 *
 * A WAL frame is a 24-byte header (page number, "database size after
 * commit", non-zero only on a transaction's last frame, and the two salts of
 * the WAL header) followed by one page. A frame whose salts differ from the
 * header's is stale, left by an earlier generation of the file. After a
 * checkpoint SQLite restarts the WAL: new salts, frames written again from the
 * start. So the file is read incrementally (on every change the file watch
 * reports, and on a short poll): when the salts change, the old generation's
 * last frames, written after the previous scan, are counted first (the new
 * generation has overwritten only its first few frames by then), then the
 * scan starts again at frame 0 under the new salts. A new file (deleted when
 * the last connection closed, created again) is drained through the old
 * descriptor first. The count is cross-checked against the client's.
 */
export class SqliteWalCounter {
  #path;
  #fd;
  #ino;
  #watcher;
  #timer;
  #salts = null;
  #next = 0;
  #pageSize = 0;
  #header = Buffer.alloc(WAL_HEADER);
  #frame = Buffer.alloc(FRAME_HEADER);
  counts = { frames: 0, commits: 0, restarts: 0, files: 0 };

  constructor(dbFile, { pollMs = 5 } = {}) {
    this.#path = `${dbFile}-wal`;
    this.#timer = setInterval(() => this.scan(), pollMs);
    this.#timer.unref();
    this.scan();
  }

  sample() {
    this.scan();
    return { commits: this.counts.commits, bytes: this.counts.frames * (this.#pageSize + FRAME_HEADER), ...this.counts, pageSize: this.#pageSize };
  }

  close() {
    this.scan();
    clearInterval(this.#timer);
    this.#unwatch();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  scan() {
    let ino;
    try {
      ino = statSync(this.#path).ino;
    } catch {
      ino = undefined;
    }
    if (this.#fd !== undefined && ino !== this.#ino) {
      this.#read();
      this.#unwatch();
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    if (this.#fd === undefined && ino !== undefined) {
      try {
        this.#fd = openSync(this.#path, 'r');
      } catch {
        return;
      }
      this.#ino = fstatSync(this.#fd).ino;
      this.#salts = null;
      this.#next = 0;
      this.counts.files++;
      try {
        this.#watcher = watch(this.#path, { persistent: false }, () => this.scan());
        this.#watcher.on('error', () => this.#unwatch());
      } catch {
        // The poll still runs.
      }
    }
    if (this.#fd !== undefined) this.#read();
  }

  #unwatch() {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #read() {
    if (readSync(this.#fd, this.#header, 0, WAL_HEADER, 0) < WAL_HEADER) return;
    if ((this.#header.readUInt32BE(0) & 0xfffffffe) !== 0x377f0682) return;
    const raw = this.#header.readUInt32BE(8);
    this.#pageSize = raw === 1 ? 65536 : raw;
    const salt1 = this.#header.readUInt32BE(16);
    const salt2 = this.#header.readUInt32BE(20);
    if (!this.#salts || this.#salts[0] !== salt1 || this.#salts[1] !== salt2) {
      if (this.#salts) {
        this.counts.restarts++;
        // The new generation writes from frame 0 and has written only a few
        // frames yet: the end of the old one, past where this scan stopped,
        // is still on disk under the old salts. Count it before it is overwritten.
        this.#frames(this.#salts[0], this.#salts[1]);
      }
      this.#salts = [salt1, salt2];
      this.#next = 0;
    }
    this.#frames(salt1, salt2);
  }

  /** Counts the frames from #next on that carry these salts. */
  #frames(salt1, salt2) {
    for (;;) {
      const at = WAL_HEADER + this.#next * (this.#pageSize + FRAME_HEADER);
      if (readSync(this.#fd, this.#frame, 0, FRAME_HEADER, at) < FRAME_HEADER) return;
      if (this.#frame.readUInt32BE(8) !== salt1 || this.#frame.readUInt32BE(12) !== salt2) return;
      this.counts.frames++;
      if (this.#frame.readUInt32BE(4) !== 0) this.counts.commits++;
      this.#next++;
    }
  }
}

/** A server's probe over a connection of its own, to the `postgres` database (so it never counts in the bench database's statistics). */
export async function postgresProbe(server) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: server.url.replace(/\/[^/]*$/, '/postgres'), application_name: 'bench-probe' });
  await client.connect();
  return {
    async sample() {
      const { rows } = await client.query(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text AS lsn, pg_current_wal_insert_lsn()::text AS at",
      );
      return { commits: Number(rows[0].xmax), bytes: Number(rows[0].lsn), lsn: rows[0].at, serverCpuMs: processTreeCpuMs(server.pid) };
    },
    /**
     * The WAL records between two samples, counted by resource manager and
     * kind (pg_waldump): what a server wrote when no transaction committed.
     */
    async walRecords(from, to) {
      const { postgresBinDir } = await import('../../test/support/servers.mjs');
      const { execFile } = await import('node:child_process');
      const out = await new Promise((resolve, reject) =>
        execFile(`${postgresBinDir()}/pg_waldump`, ['-p', `${server.dataDir}/pg_wal`, '-s', from, '-e', to], { maxBuffer: 64 << 20 }, (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        ),
      );
      const kinds = new Map();
      for (const line of out.split('\n')) {
        const m = /^rmgr: (\S+).*desc: (\S+)/.exec(line);
        if (m) kinds.set(`${m[1]} ${m[2]}`, (kinds.get(`${m[1]} ${m[2]}`) ?? 0) + 1);
      }
      return [...kinds].map(([kind, n]) => `${n}× ${kind}`).join(', ');
    },
    /** Lagging statistics (flushed by backends when idle or exiting): for the record, not the headline. */
    async details(database) {
      const wal = (await client.query('SELECT wal_records::text, wal_fpi::text, wal_bytes::text FROM pg_stat_wal')).rows[0];
      const db = (
        await client.query('SELECT xact_commit::text, tup_inserted::text, tup_updated::text, blks_hit::text, blks_read::text FROM pg_stat_database WHERE datname = $1', [database])
      ).rows[0];
      const num = (o) => Object.fromEntries(Object.entries(o ?? {}).map(([k, v]) => [k, Number(v)]));
      return { ...num(wal), ...num(db) };
    },
    /** Autovacuum/autoanalyze runs on `database`'s tables: an ANALYZE takes a transaction id too. */
    async maintenance(database) {
      const c = new pg.Client({ connectionString: server.url.replace(/\/[^/]*$/, `/${database}`), application_name: 'bench-probe' });
      await c.connect();
      try {
        const r = (
          await c.query(
            'SELECT coalesce(sum(autoanalyze_count), 0)::int AS autoanalyze, coalesce(sum(autovacuum_count), 0)::int AS autovacuum FROM pg_stat_user_tables',
          )
        ).rows[0];
        return { autoanalyze: r.autoanalyze, autovacuum: r.autovacuum };
      } finally {
        await c.end();
      }
    },
    /** A checkpoint now: every cell starts from the same state (its first change to each page logs a full-page image). */
    checkpoint: () => client.query('CHECKPOINT'),
    close: () => client.end(),
  };
}

/**
 * MariaDB's probe. Commits come from InnoDB's transaction id counter ("Trx id
 * counter" of SHOW ENGINE INNODB STATUS): a read-write transaction takes two
 * numbers from it, its id at its first write and its serialisation number at
 * commit; a read-only one takes none. The counter is atomic, unlike
 * INNODB_METRICS trx_rw_commits, whose unsynchronised increments lose counts
 * under concurrent commits (1 in ~20,000 with 6 writers); that one and
 * Com_commit are kept beside it (innodb_monitor_enable must name it).
 */
export async function mariadbProbe(server) {
  const { default: mysql } = await import('mysql2/promise');
  const conn = await mysql.createConnection({ uri: server.url });
  const STATUS = ['Innodb_os_log_written', 'Innodb_data_written', 'Innodb_log_writes', 'Com_commit', 'Handler_commit'];
  return {
    async sample() {
      const [status] = await conn.query(`SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS.map(() => '?').join(', ')})`, STATUS);
      const [metrics] = await conn.query("SELECT name, count FROM information_schema.INNODB_METRICS WHERE name IN ('trx_rw_commits', 'trx_ro_commits', 'trx_nl_ro_commits')");
      const [engine] = await conn.query('SHOW ENGINE INNODB STATUS');
      const counter = /Trx id counter (\d+)/.exec(engine[0]?.Status ?? '');
      if (!counter) throw new Error('SHOW ENGINE INNODB STATUS has no "Trx id counter" line');
      const out = { trx_id_counter: Number(counter[1]) };
      for (const r of status) out[r.Variable_name] = Number(r.Value);
      for (const r of metrics) out[r.name] = Number(r.count);
      return { commits: out.trx_id_counter / 2, bytes: out.Innodb_os_log_written, serverCpuMs: processTreeCpuMs(server.pid), ...out };
    },
    close: () => conn.end(),
  };
}

/**
 * Waits until `probe` reports no new commits and no new bytes for `stableMs`
 * (background work of an earlier cell, a CREATE DATABASE): the baseline of a
 * cell is taken on a quiet server. Gives up after `maxMs`.
 */
export async function settle(probe, { stableMs = 1_000, maxMs = 10_000, everyMs = 250 } = {}) {
  const deadline = Date.now() + maxMs;
  let last = await probe.sample();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(everyMs);
    const s = await probe.sample();
    if (s.commits !== last.commits || s.bytes !== last.bytes) since = Date.now();
    last = s;
    if (Date.now() - since >= stableMs) return { settled: true, sample: last };
  }
  return { settled: false, sample: last };
}

/** /proc reports CPU times in USER_HZ ticks, which Linux fixes at 100 for user space. */
const USER_HZ = 100;

/** CPU time (ms) of `pid`, its reaped children and its live children: a PostgreSQL server and its backends. */
function processTreeCpuMs(pid) {
  const fields = (p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    } catch {
      return null;
    }
  };
  const own = fields(pid);
  if (!own) return null;
  // After ')': state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = fields(entry);
    if (f && Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return (ticks * 1000) / USER_HZ;
}
