import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveAuditUrl, shownUrl, splitPassword } from './audit/credentials.js';
import { readRecordedSink } from './audit/recorded-sink.js';
import { sinkFromUrl } from './audit/url.js';
import { askControl } from './cli/control.js';
import type { ControllerStats } from './dispatcher/controller.js';
import { inspectStore, runLockHeld } from './native.js';
import { loadCity, type LoadCityOptions } from './orders/city.js';
import { readSavedRun, untrustedSavedRun, type SavedRun } from './cli/saved-run.js';
import { clusterConnectUrl, observeCluster, shownClusterUrl } from './cluster/observe.js';

export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface DoctorOptions {
  state: string;
  /** Audit sink to reach; default the one the last `orderly-dispatch run` used. */
  audit?: string;
  /** Free space below this fails (bytes); default 256 MiB. */
  minFreeBytes?: number;
  /** Outbox entries above this fail; default 10,000. */
  maxBacklog?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Says whether a controller's state is healthy, one check per concern. */
export async function doctor(opts: DoctorOptions): Promise<Check[]> {
  const state = resolve(opts.state);
  const checks: Check[] = [];
  const add = (name: string, status: CheckStatus, detail: string): void => void checks.push({ name, status, detail });
  if (!existsSync(state)) {
    add('state', 'FAIL', `${state} does not exist`);
    return checks;
  }
  const leases = join(state, 'leases');
  const untrusted = untrustedSavedRun(state);
  if (untrusted) add('state', 'FAIL', untrusted);
  const last: Partial<SavedRun> = (untrusted ? undefined : readSavedRun(state)) ?? {};

  const status = (await askControl(state, { cmd: 'status' }, 5_000).catch(() => undefined)) as (ControllerStats & { pid?: number }) | undefined;
  add('controller', 'OK', status ? `running (pid ${status.pid ?? '?'}), ${status.running} run(s) in progress` : 'not running');

  // The log, read as an open would read it, without its lock.
  let held: Array<{ key: string; acquiredAt: number; expiresAt: number; token: bigint }> = [];
  let outbox = 0;
  try {
    const i = inspectStore(leases);
    // A fresh checkpoint can hold more live records than the log has in all (the reservation's): never below 0.
    const dead = i.records > 0 ? Math.max(0, 1 - i.liveRecords / i.records) : 0;
    add('wal', 'OK', `${i.segments} segment(s), ${mib(i.bytes)}, ${i.records} record(s), ${(dead * 100).toFixed(0)}% dead`);
    if (i.wouldTruncate > 0) {
      add('wal tail', status ? 'OK' : 'WARN', status ? `a write is in progress at the tail (${i.wouldTruncate} bytes)` : `the next open cuts ${i.wouldTruncate} bytes: ${i.reason}`);
    }
    if (i.leftoverFiles > 0) add('wal leftovers', 'WARN', `${i.leftoverFiles} file(s) from an interrupted checkpoint or segment creation; the next open removes them`);
    held = i.held;
    outbox = i.outbox;
    const now = Date.now();
    const ahead = i.lastRunKeys.map((k, n) => ({ k, by: i.lastRunAt[n]! - now })).filter((x) => x.by > 1_000);
    if (ahead.length > 0) {
      const most = ahead.reduce((a, b) => (b.by > a.by ? b : a));
      add('clock', 'WARN', `lastRun of ${ahead.length} order(s) is in the future (${most.k} by ${Math.round(most.by / 1000)} s): the clock was stepped back; each counts its next fire from now and waits at most one interval`);
    }
    if (i.lost) add('wal lost', 'FAIL', `the log holds fewer tokens than the ${i.reserved} reserved beside it: its records were lost (segments deleted or replaced); run orderly-dispatch repair --state ${state}`);
  } catch (err) {
    add('wal', 'FAIL', `${(err as Error).message}; run orderly-dispatch repair --state ${state} to keep what is valid before the damage`);
  }

  if (status) {
    const why = status.poisonReason ?? 'the log refused a write or sync';
    add('poisoned', status.poisoned ? 'FAIL' : 'OK', status.poisoned ? `${why}: no order fires until the controller is restarted with the cause fixed (disk space, I/O errors, files removed)` : 'no');
  }
  else add('poisoned', 'OK', 'no controller running (the next open re-verifies the log)');

  const lockFile = join(leases, 'LOCK');
  if (existsSync(lockFile)) {
    const [status, detail] = storeLockCheck(lockFile);
    add('lock', status, detail);
  } else {
    add('lock', 'OK', 'free');
  }

  const fs = statfsSync(state);
  const free = fs.bavail * fs.bsize;
  const min = opts.minFreeBytes ?? 256 * 1048576;
  add('disk', free < min ? 'FAIL' : 'OK', `${mib(free)} free on the state's filesystem (threshold ${mib(min)})`);

  const now = Date.now();
  if (held.length === 0) add('leases', 'OK', 'none held');
  else {
    const desc = held.map((h) => `${h.key} ${Math.round((now - h.acquiredAt) / 1000)} s`).join(', ');
    const stale = !status;
    add('leases', stale ? 'WARN' : 'OK', `${held.length} held: ${desc}${stale ? '; the next start adopts the live ones and records the rest as interrupted' : ''}`);
  }

  const backlog = status ? status.audit.backlog : outbox;
  const maxBacklog = opts.maxBacklog ?? 10_000;
  add(
    'outbox',
    backlog > maxBacklog ? 'FAIL' : backlog > 0 && !status ? 'WARN' : 'OK',
    `${backlog} audit record(s) waiting${status?.audit.lastError ? ` (last error: ${status.audit.lastError})` : ''}${!status && backlog > 0 ? '; the next start re-sends them' : ''}`,
  );

  // The orders the last run loaded, read again: an invalid one is left out of every start.
  const ordersDir = (last as { ordersDir?: string }).ordersDir;
  if (ordersDir) {
    try {
      const loaded = await loadCity(ordersDir, (last as { load?: LoadCityOptions }).load ?? {});
      add('orders', loaded.problems.length > 0 ? 'FAIL' : 'OK', `${loaded.orders.length} loaded from ${ordersDir}${loaded.problems.length > 0 ? `, ${loaded.problems.length} invalid (left out)` : ''}`);
      for (const p of loaded.problems) add('order', 'FAIL', p.message);
    } catch (err) {
      add('orders', 'FAIL', (err as Error).message);
    }
  }

  const given = opts.audit ?? last.audit ?? readRecordedSink(state);
  if (!given) add('audit', 'WARN', 'no audit sink known: pass --audit URL');
  else {
    const url = shownUrl(given);
    let password: string | undefined;
    try {
      const connect = resolveAuditUrl(given, { passwordFile: opts.audit ? undefined : (last as { auditPasswordFile?: string }).auditPasswordFile });
      password = splitPassword(connect).password;
      const sink = sinkFromUrl(connect);
      await withTimeout(
        (async () => {
          await sink.open();
          try {
            await sink.ping();
          } finally {
            await sink.close();
          }
        })(),
        5_000,
      );
      add('audit', 'OK', `${url} reachable`);
    } catch (err) {
      const message = password ? (err as Error).message.split(password).join('***') : (err as Error).message;
      add('audit', 'FAIL', `${url}: ${message}`);
    }
  }

  // A member's state: the engine that says which of its orders it may fire.
  if (last.cluster) {
    const { name, engine } = last.cluster;
    let password: string | undefined;
    try {
      const connect = clusterConnectUrl(engine, last.auditPasswordFile);
      password = splitPassword(connect).password;
      const p = await withTimeout(observeCluster(connect, name), 5_000);
      add('cluster', 'OK', `${name} on ${p.engine}: ${p.members.filter((m) => m.listed).length} member(s) live, ${p.owned} of ${p.total} shard(s) owned`);
    } catch (err) {
      const message = password ? (err as Error).message.split(password).join('***') : (err as Error).message;
      add('cluster', 'FAIL', `${name} on ${shownClusterUrl(engine)}: ${message}`);
    }
  }
  return checks;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolvePromise(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** The store's LOCK: its flock (the same test as a run lock's) and the pid it records. */
function storeLockCheck(lockFile: string): [CheckStatus, string] {
  let pid: number;
  let isHeld: boolean;
  try {
    pid = Number(readFileSync(lockFile, 'utf8').trim());
    isHeld = runLockHeld(lockFile);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // The binding's message speaks of a run lock; this is the store's.
    const why = e.message.replace(/^cannot check the run lock \S+: /, '');
    return ['FAIL', `cannot read the store's lock file ${lockFile}: ${why}`];
  }
  if (isHeld && pid && !alive(pid)) return ['FAIL', `held, but its recorded holder pid ${pid} is not running: a process that inherited the lock keeps the state locked`];
  if (isHeld) return ['OK', `held by pid ${pid || '?'}`];
  return ['OK', `free${pid && !alive(pid) ? ` (last holder pid ${pid} has exited)` : ''}`];
}
