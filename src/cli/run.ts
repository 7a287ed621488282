import { closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { basename, join, resolve } from 'node:path';
import { AUDIT_PASSWORD_ENV, resolveAuditUrl, shownUrl, splitPassword } from '../audit/credentials.js';
import { defaultAuditUrl, readRecordedSink } from '../audit/recorded-sink.js';
import { sinkFromUrl } from '../audit/url.js';
import { readSavedRun, type SavedRun } from './saved-run.js';
import { Controller, type FeedEntry } from '../dispatcher/controller.js';
import type { ControllerEvent } from '../dispatcher/events.js';
import { parseDuration } from '../orders/duration.js';
import { loadCity, type LoadedCity } from '../orders/city.js';
import { EXIT, parse, printer, registerSecret, UsageError } from './args.js';
import { OrderlyError } from '../errors.js';
import { serveControl } from './control.js';
import { HTTP_TOKEN_ENV, loadToken, parseListen } from '../http/auth.js';
import { startHttp, type HttpServer } from '../http/server.js';
import { Coordinator } from '../cluster/coordinator.js';
import { clusterSink, engineFromUrl, sameDatabase } from '../cluster/connect.js';
import { shardOf } from '../cluster/shards.js';
import { type LongTimeout, setLongTimeout } from '../dispatcher/long-timeout.js';

export const RUN_USAGE = `usage: orderly-dispatch run <city|pack|orders-dir> [--state DIR] [--audit URL] [--rig NAME]... [--for DURATION] [--events] [--json]

Fires the orders of a Gas City city (city.toml: the packs it and its rigs
import, and its own orders/), a pack (pack.toml + orders/<name>.toml) or a
directory of order files until SIGINT/SIGTERM, or for DURATION. SIGHUP
reloads the orders. An invalid order is reported and left out; the rest run.
  --state DIR     state directory (default .orderly)
  --audit URL     where audited runs go (default: the sink this state used
                  before, else sqlite:<state>/audit.db); leave the password
                  out of it (ps shows argv to every user):
  --audit-password-file PATH  read it from the file's first line, or set
                  ORDERLY_AUDIT_PASSWORD
  --rig NAME      a rig (repeatable): for a city, run only these rigs' orders;
                  for a pack, rig-scoped orders run once per rig
  --strict        refuse to start if any order is invalid
  --patrol DURATION  how often condition orders without an interval check
                  (default 30s, Gas City's patrol tick)
  --silent-is-no-op  exit 0 with no output counts as no-op for every order
                  that does not set no_op_when_silent itself (see README: risk)
  --event-log PATH   the event log event orders follow (default the city's
                  .gc/events.jsonl, else <state>/city-events.jsonl)
  --env-allow NAME   pass bodies only these inherited variables (repeatable;
                  include PATH), not the controller's whole environment
  --for DURATION  stop after this long (Go syntax: 90s, 5m, 1h30m)
  --grace DURATION how long to wait for running bodies at shutdown (default 30s)
  --retention-days N   delete audit records older than N days (default 90; 0 keeps all)
  --retention-keep K   but keep at least K per order (default 100)
  --store-segment-bytes N  lease-store log segment size (default 1 MiB)
  --store-compact-after N  dead log bytes that trigger a checkpoint (default 2 MiB)
  --http [HOST:]PORT  serve the dashboard (/), the orders API (/v0/...), /metrics
                  and /healthz; a bare port listens on 127.0.0.1 (port 0: any free)
  --http-token-file PATH  a token every HTTP request must carry (Authorization:
                  Bearer, or ?token=); else ${HTTP_TOKEN_ENV}; required off loopback
  --cluster URL   run as one member of a cluster sharing this city:
                  postgres://user@host/db or etcd://host:port[,host:port];
                  the members split the orders (64 shards) and never fire one
                  twice. With PostgreSQL and no --audit, the audit goes to the
                  same database.
  --cluster-name NAME  which cluster (default: the city's name)
  --events        also append every event to <state>/events.jsonl
  --json          one JSON object per event, and a JSON summary`;

/** Warnings and invalid orders, each on its own line with file:line: field: problem. */
export function reportLoad(city: LoadedCity, print: ReturnType<typeof printer>): void {
  for (const w of city.warnings) process.stderr.write(`warning: ${w.message}\n`);
  for (const p of city.problems) {
    print(`orderly-dispatch: invalid, left out: ${p.message}`, { type: 'invalid-order', file: p.file ?? null, line: p.line ?? null, field: p.field ?? null, problem: p.problem, message: p.message });
  }
  if (city.problems.length > 0) process.stderr.write(`orderly-dispatch: ${city.problems.length} problem(s) in the orders; the rest run (--strict refuses to start instead; orderly-dispatch doctor counts them)\n`);
  if (city.skipped.length > 0) print(`orderly-dispatch: skipped by [orders] skip: ${city.skipped.join(', ')}`, { type: 'skipped-orders', orders: city.skipped });
}

/** How long `run` stays silent before it says which fire comes next. */
const QUIET_MS = 15_000;

/**
 * The human lines of `run`: one per fire, printed when it ends (the completion
 * carries how it was triggered and its fence), and a line on what comes next
 * when nothing has happened for a while. --json prints every event.
 */
class RunLines {
  #lastLine = Date.now();

  constructor(readonly print: ReturnType<typeof printer>) {}

  event(e: ControllerEvent): void {
    if (e.type !== 'fired') this.line(describe(e), e as unknown as Record<string, unknown>);
  }

  line(human: string, data: Record<string, unknown>): void {
    this.#lastLine = Date.now();
    this.print(human, data);
  }

  /** After a quiet stretch: the next fire due, so a silent controller is not mistaken for a stuck one. */
  quiet(feed: readonly FeedEntry[]): void {
    const now = Date.now();
    if (now - this.#lastLine < QUIET_MS) return;
    const next = feed.filter((f) => f.nextDueAt !== undefined).sort((a, b) => a.nextDueAt! - b.nextDueAt!)[0];
    const running = feed.filter((f) => f.status === 'active').length;
    const what = next
      ? `next fire: ${next.scopedName} in ${Math.max(0, Math.round((next.nextDueAt! - now) / 1000))} s (${new Date(next.nextDueAt!).toISOString()})`
      : 'no fire scheduled (event and manual orders wait for their trigger)';
    this.line(`${new Date(now).toISOString()} quiet     ${what}${running > 0 ? `; ${running} run(s) in progress` : ''}`, {});
  }
}

function describe(e: Exclude<ControllerEvent, { type: 'fired' }>): string {
  const t = new Date(e.at).toISOString();
  switch (e.type) {
    case 'completed':
      return (
        `${t} ${e.outcome.padEnd(9)} ${e.scopedName} in ${e.durationMs} ms` +
        ` (${e.trigger}, fence ${e.fence})` +
        (e.reason ? ` (${e.reason})` : '') +
        (e.audited ? '' : ', no audit write') +
        (e.summary ? `: ${e.summary}` : '')
      );
    case 'skipped':
      return `${t} skipped   ${e.scopedName}: ${e.reason}${e.detail ? ` (${e.detail})` : ''}`;
    case 'recovered':
      return `${t} recovered ${e.scopedName}: ${e.action}${e.fence ? ` (fence ${e.fence})` : ''}`;
    case 'error':
      return `${t} error     ${e.scopedName ?? ''} ${e.code}: ${e.message}`;
    case 'warning':
      return `${t} warning   ${e.scopedName ?? ''} ${e.code}: ${e.message}`;
  }
}

/** A positive whole number of bytes, or nothing when the option is absent. */
function byteOption<K extends string>(raw: string | undefined, flag: string, key: K): Partial<Record<K, number>> {
  if (raw === undefined) return {};
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive whole number of bytes, got ${JSON.stringify(raw)}`);
  return { [key]: n } as Partial<Record<K, number>>;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      state: { type: 'string' },
      audit: { type: 'string' },
      rig: { type: 'string', multiple: true },
      for: { type: 'string' },
      grace: { type: 'string' },
      events: { type: 'boolean' },
      'retention-days': { type: 'string' },
      'retention-keep': { type: 'string' },
      'store-segment-bytes': { type: 'string' },
      'store-compact-after': { type: 'string' },
      strict: { type: 'boolean' },
      patrol: { type: 'string' },
      'silent-is-no-op': { type: 'boolean' },
      'event-log': { type: 'string' },
      'audit-password-file': { type: 'string' },
      'env-allow': { type: 'string', multiple: true },
      http: { type: 'string' },
      'http-token-file': { type: 'string' },
      cluster: { type: 'string' },
      'cluster-name': { type: 'string' },
    },
    RUN_USAGE,
  );
  if (values.help) {
    console.log(RUN_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`orderly-dispatch run takes one orders directory\n\n${RUN_USAGE}`);
  // SIGHUP's default action ends the process: from here on it means "reload", and one that
  // arrives while the controller is still starting is done once it has started.
  let hangupDuringStart = false;
  let onHangup: (() => void) | undefined;
  process.on('SIGHUP', () => {
    if (onHangup) onHangup();
    else hangupDuringStart = true;
  });
  const json = values.json === true;
  const print = printer(json);
  const lines = new RunLines(print);
  const ordersDir = resolve(positionals[0]!);
  const state = resolve(values.state ?? '.orderly');
  const forMs = values.for ? parseDuration(values.for, '--for') : undefined;
  const graceMs = values.grace ? parseDuration(values.grace, '--grace') : 30_000;
  const patrolMs = values.patrol ? parseDuration(values.patrol, '--patrol') : undefined;
  if (patrolMs !== undefined && patrolMs < 1000) throw new UsageError(`--patrol must be at least 1s, got ${values.patrol}`);
  // The address and token are checked before anything starts: a bad one is a usage error, not a half-started controller.
  const listen = values.http !== undefined ? parseListen(values.http) : undefined;
  if (listen === undefined && values['http-token-file'] !== undefined) throw new UsageError('--http-token-file needs --http');
  const httpToken = listen ? loadToken(listen, values['http-token-file'] ? resolve(values['http-token-file']) : undefined) : undefined;
  registerSecret(httpToken);
  const loadOptions = { strict: values.strict === true, silentIsNoOp: values['silent-is-no-op'] === true };
  const city = await loadCity(ordersDir, loadOptions);
  reportLoad(city, print);
  const rigs = values.rig ?? city.rigs;
  if (city.kind === 'city' && values.rig) {
    const unknown = values.rig.filter((r) => !city.rigs.includes(r));
    if (unknown.length > 0) throw new UsageError(`--rig ${unknown.join(', ')}: not a rig of this city (its rigs: ${city.rigs.join(', ') || 'none'})`);
  }
  const eventLog = values['event-log'] ? resolve(values['event-log']) : (city.city?.eventLog ?? join(state, 'city-events.jsonl'));
  if (!values['event-log'] && !city.city) {
    // The default log lies in the state directory: owner-only like the rest of it.
    try {
      mkdirSync(state, { recursive: true, mode: 0o700 });
      closeSync(openSync(eventLog, 'a', 0o600));
    } catch {
      // The controller's start says what is wrong with the state directory.
    }
  }
  // Without --audit, the sink this state's runs already went to: a restart
  // must not split its records across two databases.
  const clusterPg = values.cluster !== undefined && /^postgres(ql)?:\/\//i.test(values.cluster);
  const recorded = values.audit === undefined && !clusterPg ? readRecordedSink(state) : undefined;
  const givenAudit = values.audit ?? (clusterPg ? values.cluster! : undefined) ?? recorded ?? defaultAuditUrl(state);
  const passwordFile = values['audit-password-file']
    ? resolve(values['audit-password-file'])
    : recorded !== undefined
      ? readSavedRun(state)?.auditPasswordFile
      : undefined;
  const auditUrl = resolveAuditUrl(givenAudit, { passwordFile });
  registerSecret(splitPassword(auditUrl).password);
  if (splitPassword(givenAudit).password) {
    process.stderr.write(`orderly-dispatch: warning: --audit holds a password, which ps shows to every user of this host; use ${AUDIT_PASSWORD_ENV} or --audit-password-file (later commands read those; the password is not saved)\n`);
  }
  const shownAudit = shownUrl(auditUrl);
  const retentionDays = Number(values['retention-days'] ?? 90);
  const retentionKeep = Number(values['retention-keep'] ?? 100);
  if (!(retentionDays >= 0) || !Number.isInteger(retentionKeep) || retentionKeep < 0) {
    throw new UsageError(`--retention-days must be a non-negative number and --retention-keep a non-negative integer`);
  }

  const store = {
    ...byteOption(values['store-segment-bytes'], '--store-segment-bytes', 'segmentBytes'),
    ...byteOption(values['store-compact-after'], '--store-compact-after', 'compactAfterBytes'),
  };

  if (values['cluster-name'] !== undefined && values.cluster === undefined) throw new UsageError('--cluster-name needs --cluster');
  let coordinator: Coordinator | undefined;
  let clusterName = '';
  let shownCluster = '';
  let controllerRef: Controller | undefined;
  let sink = sinkFromUrl(auditUrl);
  const emit = (e: ControllerEvent): void => (json ? print('', e as unknown as Record<string, unknown>) : lines.event(e));
  if (values.cluster !== undefined) {
    // The same database as the audit: one password for both.
    const clusterUrl = sameDatabase(auditUrl, values.cluster) ? auditUrl : values.cluster;
    registerSecret(splitPassword(clusterUrl).password);
    clusterName = values['cluster-name'] ?? city.city?.name ?? basename(ordersDir);
    const connect = engineFromUrl(clusterUrl, clusterName);
    // The engine's own rendering: it drops credentials from every form it accepts (etcd lists several hosts).
    shownCluster = connect().url;
    coordinator = new Coordinator({
      connect,
      state,
      onChange: (kill) => controllerRef?.ownershipChanged(kill),
      drained: (shard) => controllerRef?.whenIdle((name) => shardOf(name) === shard) ?? Promise.resolve(),
      onReport: (c) => print(`${new Date().toISOString()} cluster   ${c.type}: ${c.message}`, { type: 'cluster', at: Date.now(), change: c.type, message: c.message, ...(c.shards ? { shards: c.shards } : {}) }),
    });
    const c = coordinator;
    sink = clusterSink(auditUrl, clusterUrl, clusterName, state, () => c.engine, (refused) => {
      for (const r of refused) {
        emit({ type: 'error', at: Date.now(), scopedName: r.scopedName, code: 'ERR_FENCED', message: `run ${r.fireId} (fence ${r.fence}) was fired under shard ${r.labels['cluster.shard']} epoch ${r.labels['cluster.epoch']}, which is no longer current: its record is kept apart (orderly_audit_fenced, or ${join(state, 'fenced.jsonl')}), not stored as a second record` });
      }
    });
    print(`orderly-dispatch: cluster ${clusterName} on ${shownCluster} as member ${coordinator.memberId}`, { type: 'cluster-member', cluster: clusterName, engine: shownCluster, member: coordinator.memberId });
  }

  const controller = await Controller.start({
    state,
    store,
    ...(coordinator ? { cluster: coordinator } : {}),
    orders: city.orders,
    rigs,
    ...(city.city ? { city: city.city } : {}),
    eventLog,
    ...(patrolMs !== undefined ? { patrolMs } : {}),
    ...(values['env-allow'] ? { envAllow: values['env-allow'] } : {}),
    audit: sink,
    ...(retentionDays > 0 ? { retention: { days: retentionDays, keepPerOrder: retentionKeep } } : {}),
    ...(values.events ? { eventsFile: join(state, 'events.jsonl') } : {}),
    onEvent: emit,
  }).catch(async (err: unknown) => {
    await coordinator?.close();
    throw err;
  });
  controllerRef = controller;
  if (coordinator) {
    try {
      await coordinator.start();
    } catch (err) {
      await controller.stop(graceMs);
      await coordinator.close();
      throw new OrderlyError('ERR_CLUSTER', `cannot join the cluster on ${coordinator.engine.url}: ${(err as Error).message}`);
    }
  }
  // Lets `orderly-dispatch fire` (and a direct fire) find what this controller runs.
  const saved: SavedRun = { ordersDir, rigs, audit: splitPassword(givenAudit).url, ...(passwordFile ? { auditPasswordFile: passwordFile } : {}), eventLog, load: loadOptions, pid: process.pid, ...(coordinator ? { cluster: { name: clusterName, engine: shownCluster } } : {}) };
  writeFileSync(join(state, 'controller.json'), JSON.stringify(saved) + '\n', { mode: 0o600 });
  const server = serveControl(state, async (req) => {
    if (req.cmd === 'fire') return controller.fire(req.scopedName);
    if (req.cmd === 'feed') return { entries: controller.feed() };
    if (req.cmd === 'publish') return controller.publish(req.event);
    return { ...controller.stats(), pid: process.pid, ...(coordinator ? { cluster: { name: clusterName, engine: shownCluster, ...coordinator.snapshot() } } : {}) };
  });
  print(`orderly-dispatch: ${controller.orders.length} order(s) from ${ordersDir}; state ${state}; audit ${shownAudit}`, {
    type: 'started',
    kind: city.kind,
    orders: controller.orders.map((o) => o.scopedName),
    problems: city.problems.map((p) => p.message),
    state,
    audit: shownAudit,
    eventLog,
  });
  let http: HttpServer | undefined;
  if (listen) {
    try {
      http = await startHttp({ controller, listen, ...(httpToken ? { token: httpToken } : {}), city: city.city?.name ?? basename(ordersDir), state, auditUrl, ...(coordinator ? { cluster: coordinator } : {}) });
    } catch (err) {
      server.close();
      await controller.stop(graceMs);
      throw err;
    }
    print(`orderly-dispatch: dashboard and API on ${http.url}/${httpToken ? ' (token required)' : ''}`, { type: 'http', url: http.url });
  }
  const eventOrders = controller.orders.filter((o) => o.spec.trigger === 'event');
  if (eventOrders.length > 0) {
    const there = existsSync(eventLog) ? '' : ' (no events yet: gc event emit or orderly-dispatch publish writes them)';
    print(`orderly-dispatch: ${eventOrders.length} event order(s) follow ${eventLog}${there}: ${eventOrders.map((o) => `${o.scopedName} on ${o.spec.on}`).join(', ')}`, {
      type: 'events',
      eventLog,
      orders: eventOrders.map((o) => ({ scopedName: o.scopedName, on: o.spec.on })),
    });
  }

  const started = performance.now();
  let forTimer: LongTimeout | undefined;
  const quiet = json ? undefined : setInterval(() => lines.quiet(controller.feed()), 1000);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    onHangup = () => {
      loadCity(ordersDir, loadOptions).then(
        (next) => {
          reportLoad(next, print);
          controller.reload(next.orders);
          print(`orderly-dispatch: reloaded ${controller.orders.length} order(s)`, { type: 'reloaded', orders: controller.orders.map((o) => o.scopedName) });
        },
        (err: unknown) => process.stderr.write(`orderly-dispatch: reload failed, keeping the current orders: ${(err as Error).message}\n`),
      );
    };
    if (hangupDuringStart) onHangup();
    if (forMs !== undefined) forTimer = setLongTimeout(stop, forMs);
  });
  clearInterval(quiet);
  // A SIGTERM before --for ran out: its timer must not keep the process alive.
  forTimer?.clear();
  await http?.close();
  server.close();
  await controller.stop(graceMs);
  await coordinator?.close();
  const s = controller.stats();
  const summary = {
    type: 'summary',
    seconds: Math.round((performance.now() - started) / 100) / 10,
    fires: s.fires,
    noOps: s.noOps,
    didWork: s.didWork,
    failed: s.failed,
    timeouts: s.timeouts,
    skipped: s.skipped,
    interrupted: s.interrupted,
    auditWrites: s.audit.inserted,
    auditTransactions: s.audit.transactions,
    auditBacklog: s.audit.backlog,
    walSyncs: s.walSyncs,
  };
  print(
    `orderly-dispatch: ${summary.fires} fire(s) in ${summary.seconds} s: ${summary.noOps} no-op, ${summary.didWork} did-work, ${summary.failed} failed, ${summary.timeouts} timeout; ` +
      `${summary.auditWrites} audit write(s) in ${summary.auditTransactions} transaction(s), ${summary.auditBacklog} waiting; ${summary.walSyncs} WAL sync(s)`,
    summary,
  );
  return EXIT.ok;
}
