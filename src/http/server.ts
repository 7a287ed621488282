import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditRecord, AuditSink } from '../audit/record.js';
import { sinkFromUrl } from '../audit/url.js';
import type { Controller } from '../dispatcher/controller.js';
import type { ControllerEvent } from '../dispatcher/events.js';
import { doctor } from '../doctor.js';
import { OrderlyError } from '../errors.js';
import { formatDuration } from '../orders/duration.js';
import type { ScopedOrder } from '../orders/types.js';
import { shardOf } from '../cluster/shards.js';
import { authorized, isLoopback, type Listen } from './auth.js';
import { DASHBOARD_HTML } from './dashboard.js';
import { feedItems, feedLimit, historyEntry, labelsOf, noOpHistoryEntry, parseScope, toSeconds } from './gascity-shapes.js';
import { commitsAvoided, Metrics } from './metrics.js';
import { OPENAPI } from './openapi.js';
import { RunLog, type Run } from './runs.js';

export interface HttpOptions {
  controller: Controller;
  listen: Listen;
  token?: string;
  /** The city's name in `/v0/city/{name}/...` (Gas City's supervisor paths). */
  city: string;
  state: string;
  /** The audit sink to read, with its password: a connection of its own, never the writer's. */
  auditUrl?: string;
  /** Largest request body (POST); default 1 MiB, as Gas City's events route. */
  maxBodyBytes?: number;
  /** Cluster mode: this member's side of it (the Coordinator), for which orders it fires. */
  cluster?: ClusterMember;
}

/** What the API shows of a cluster member: read from its memory, never from the engine. */
export interface ClusterMember {
  readonly memberId: string;
  snapshot(): { members: string[]; owned: Array<{ shard: number; epoch: number; ready: boolean }>; leaving: number[]; confirmedMsAgo: number };
  /** Defined only while this member may fire the order: owned, past its takeover wait, and confirmed within the renew deadline. */
  ownership(scopedName: string): { shard: number; epoch: number } | undefined;
}

export interface HttpServer {
  url: string;
  close(): Promise<void>;
}

/** A 4xx/5xx answer in Gas City's error shape, `{code, message}`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Ids and names in paths: what fire ids and scoped names are made of, so nothing reaches a file path or a query unchecked. */
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$/;
/** How long a failed audit connection is left alone before a read tries it again. */
const REOPEN_MS = 5_000;
/** Health is the doctor's checks, cached: a scraper polling every second must not open a database connection per poll. */
const HEALTH_CACHE_MS = 2_000;
/** How long a database answer is reused when nothing happens in between. */
const CACHE_MS = 1_000;
const CACHE_ENTRIES = 256;
const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_JSON_DEPTH = 64;
/** Sockets and live streams at once: far above a dashboard's needs, far below the file-descriptor limit the fires need. */
const MAX_CONNECTIONS = 256;
const MAX_STREAMS = 64;
/** On every answer: no page of another site may frame the dashboard and click its buttons. */
const FRAME_HEADERS = { 'x-frame-options': 'DENY', 'content-security-policy': "frame-ancestors 'none'", 'x-content-type-options': 'nosniff' };

type Handler = (req: IncomingMessage, url: URL, params: string[]) => Promise<{ status?: number; body: unknown; type?: string }>;

export async function startHttp(opts: HttpOptions): Promise<HttpServer> {
  const { controller } = opts;
  const started = Date.now();
  const runs = new RunLog();
  const metrics = new Metrics(controller);
  // Answers that query the database are kept until the next controller event, and a second at
  // most (Gas City caches its feed the same way): a dashboard or scraper polling hard costs
  // queries per change, not per request, and the fires keep their timing.
  const cache = new Map<string, { at: number; json: string }>();
  const onEvent = (e: ControllerEvent): void => {
    runs.event(e);
    metrics.event(e);
    cache.clear();
  };
  const cached = (handler: Handler): Handler => async (req, url, params) => {
    const key = `${url.pathname}?${url.search}`;
    const hit = cache.get(key);
    // Kept serialized: at a thousand reads a second, stringifying the same feed again is the cost.
    if (hit && Date.now() - hit.at < CACHE_MS) return { body: hit.json, type: JSON_TYPE };
    const out = await handler(req, url, params);
    if ((out.status ?? 200) !== 200) return out;
    const json = JSON.stringify(out.body);
    if (cache.size >= CACHE_ENTRIES) cache.clear();
    cache.set(key, { at: Date.now(), json });
    return { body: json, type: JSON_TYPE };
  };
  controller.on('event', onEvent);
  const reader = new AuditReader(opts.auditUrl);
  let health: { at: number; checks: ReturnType<typeof doctor> } | undefined;
  const streams = new Set<ServerResponse>();

  const ordersByName = (): Map<string, ScopedOrder> => new Map(controller.orders.map((o) => [o.scopedName, o]));
  const cityOf = (name: string): void => {
    if (name !== opts.city) throw new HttpError(404, 'not_found', `city not found or not running: ${name}`);
  };

  const feed: Handler = async (_req, url) => {
    const scope = parseScope(url.searchParams.get('scope_kind'), url.searchParams.get('scope_ref'));
    if (typeof scope === 'string') throw new HttpError(400, 'invalid', scope);
    const limit = feedLimit(url.searchParams.get('limit'));
    const { records, unavailable } = await reader.history({ limit });
    const items = feedItems({ city: opts.city, scope, orders: ordersByName(), entries: controller.feed(), records, limit });
    return { body: { items, partial: unavailable !== undefined, ...(unavailable ? { partial_errors: [`audit database unavailable: ${unavailable}`] } : {}) } };
  };

  const history = (wrap: boolean): Handler => async (_req, url) => {
    const scopedName = url.searchParams.get('scoped_name')?.trim();
    if (!scopedName) throw new HttpError(400, 'invalid', 'scoped_name is required');
    const rawLimit = url.searchParams.get('limit');
    const limit = rawLimit === null ? 20 : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, 'invalid', `limit must be a whole number from 1 to 1000, got ${JSON.stringify(rawLimit)}`);
    const rawBefore = url.searchParams.get('before');
    const before = rawBefore === null ? undefined : Date.parse(rawBefore);
    if (before !== undefined && Number.isNaN(before)) throw new HttpError(400, 'invalid', `invalid before timestamp: must be RFC3339, got ${JSON.stringify(rawBefore)}`);
    const { records, unavailable } = await reader.history({ scopedName, limit, ...(before !== undefined ? { before } : {}) });
    const entries: Array<Record<string, unknown>> = records.map(historyEntry);
    const latest = controller.feed().find((e) => e.scopedName === scopedName);
    const auditedOnly = url.searchParams.get('audited_only') === 'true';
    if (!auditedOnly && latest?.lastFiredAt !== undefined && (before === undefined || latest.lastFiredAt < before) && !records.some((r) => r.fireId === latest.lastFireId)) {
      entries.unshift(noOpHistoryEntry(latest));
      if (entries.length > limit) entries.pop();
    }
    if (!wrap) return { body: entries };
    return { body: { entries, ...(unavailable ? { partial: true, partial_errors: [`audit database unavailable: ${unavailable}`] } : {}) } };
  };

  const historyDetail: Handler = async (_req, _url, [id]) => {
    const fireId = checkId(id!);
    const run = runs.find(fireId);
    const { records, unavailable } = await reader.history({ fireId, limit: 1 });
    const record = records[0];
    if (!record && !run) {
      if (unavailable) throw new HttpError(503, 'unavailable', `audit database unavailable: ${unavailable}`);
      throw new HttpError(404, 'not_found', 'bead not found');
    }
    return {
      body: {
        bead_id: fireId,
        created_at: record ? toSeconds(record.startedAt) : run!.started_at,
        labels: record ? labelsOf(record) : [`order-run:${run!.scoped_name}`],
        output: record?.outputTail ?? '',
        record: record ?? null,
      },
    };
  };

  const status = (): Record<string, unknown> => {
    const s = controller.stats();
    return {
      city: opts.city,
      started_at: new Date(started).toISOString(),
      fires: s.fires,
      no_ops: s.noOps,
      did_work: s.didWork,
      failed: s.failed,
      timeouts: s.timeouts,
      skipped: s.skipped,
      audit_writes: s.audit.inserted,
      audit_transactions: s.audit.transactions,
      outbox_depth: s.audit.backlog,
      db_writes_avoided: commitsAvoided(s),
      wal_syncs: s.walSyncs,
      leases_held: s.running,
      store_poisoned: s.poisoned ? (s.poisonReason ?? 'poisoned') : null,
      audit_unavailable: s.audit.lastError ?? null,
      ...(opts.cluster ? { cluster: clusterStatus(opts.cluster) } : {}),
    };
  };

  const owner = (cluster: ClusterMember, scopedName: string): Record<string, unknown> => {
    const o = cluster.ownership(scopedName);
    return o ? { shard: o.shard, epoch: o.epoch, member: cluster.memberId } : { shard: shardOf(scopedName), member: null };
  };

  const orders: Handler = async () => {
    const byName = ordersByName();
    return {
      body: {
        orders: controller.feed().map((e) => {
          const o = byName.get(e.scopedName);
          return {
            scoped_name: e.scopedName,
            name: o?.spec.name ?? e.scopedName,
            rig: o?.rig ?? null,
            trigger: e.trigger,
            cadence: cadenceOf(o),
            enabled: o?.spec.enabled !== false,
            status: e.status,
            last_fired_at: e.lastFiredAt !== undefined ? new Date(e.lastFiredAt).toISOString() : null,
            last_fire_id: e.lastFireId ?? null,
            next_due_at: e.nextDueAt !== undefined ? new Date(e.nextDueAt).toISOString() : null,
            ...(opts.cluster ? { owner: owner(opts.cluster, e.scopedName) } : {}),
          };
        }),
      },
    };
  };

  const fire: Handler = async (_req, _url, [name]) => {
    // Looked up exactly among the loaded orders, so any name a city may use (accents, +) fires.
    const scopedName = name!;
    if (!ordersByName().has(scopedName)) throw new HttpError(404, 'not_found', `no order named ${scopedName}`);
    const r = await controller.fire(scopedName);
    return { body: { scoped_name: r.scopedName, fire_id: r.fireId ?? null, outcome: r.outcome ?? null, skipped: r.skipped ?? null, detail: r.detail ?? null } };
  };

  const publish: Handler = async (req) => {
    const body = await readJson(req, opts.maxBodyBytes ?? 1 << 20);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'invalid', 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (typeof b.type !== 'string' || b.type.trim() === '') throw new HttpError(400, 'invalid', 'type is required');
    for (const k of ['actor', 'subject', 'message'] as const) {
      if (b[k] !== undefined && typeof b[k] !== 'string') throw new HttpError(400, 'invalid', `${k} must be a string`);
    }
    let result: Awaited<ReturnType<Controller['publish']>>;
    try {
      result = await controller.publish({
        type: b.type,
        ...(b.payload !== undefined ? { payload: b.payload } : {}),
        ...(typeof b.actor === 'string' ? { actor: b.actor } : {}),
        ...(typeof b.subject === 'string' ? { subject: b.subject } : {}),
        ...(typeof b.message === 'string' ? { message: b.message } : {}),
      });
    } catch (err) {
      const e = OrderlyError.from(err);
      if (e.code === 'ERR_INVALID_ARG') throw new HttpError(400, 'invalid', e.message);
      throw e;
    }
    return { status: 201, body: { status: 'recorded', seq: result.event?.seq ?? null, fires: result.fires.map((f) => ({ scoped_name: f.scopedName, fire_id: f.fireId ?? null, outcome: f.outcome ?? null, skipped: f.skipped ?? null })) } };
  };

  const healthz: Handler = async () => {
    // One check at a time, shared by every caller waiting on it: the doctor opens a database
    // connection, and a hundred concurrent probes must not become a hundred connections.
    if (!health || Date.now() - health.at > HEALTH_CACHE_MS) {
      health = { at: Date.now(), checks: doctor({ state: opts.state, ...(opts.auditUrl ? { audit: opts.auditUrl } : {}) }) };
    }
    const checks = await health.checks;
    const failing = checks.filter((c) => c.status === 'FAIL');
    return { status: failing.length > 0 ? 503 : 200, body: { status: failing.length > 0 ? 'fail' : 'ok', checks } };
  };

  const runDetail: Handler = async (_req, _url, [id]) => {
    const fireId = checkId(id!);
    const run = runs.find(fireId) ?? null;
    const { records, unavailable } = run?.audited === false ? { records: [] as AuditRecord[], unavailable: undefined } : await reader.history({ fireId, limit: 1 });
    if (!run && records.length === 0) {
      if (unavailable) throw new HttpError(503, 'unavailable', `audit database unavailable: ${unavailable}`);
      throw new HttpError(404, 'not_found', `no run ${fireId}`);
    }
    return { body: { run, record: records[0] ?? null, output: records[0]?.outputTail ?? '', audit_unavailable: unavailable ?? null } };
  };

  const stream = (req: IncomingMessage, res: ServerResponse): void => {
    if (streams.size >= MAX_STREAMS) throw new HttpError(503, 'unavailable', `${MAX_STREAMS} streams are open already`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(': orderly runs\n\n');
    const send = (run: Run): void => void res.write(`event: run\ndata: ${JSON.stringify(run)}\n\n`);
    const unsubscribe = runs.subscribe(send);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    streams.add(res);
    req.on('close', () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    });
  };

  // Gas City's routes, under its supervisor's /v0/city/{name} and bare as its per-city server serves them.
  const routes: Array<{ method: string; path: RegExp; handler: Handler; city?: true }> = [
    { method: 'GET', path: /^\/v0\/city\/([^/]+)\/orders\/feed$/, handler: cached(feed), city: true },
    { method: 'GET', path: /^\/v0\/orders\/feed$/, handler: cached(feed) },
    { method: 'GET', path: /^\/v0\/city\/([^/]+)\/orders\/history$/, handler: cached(history(true)), city: true },
    { method: 'GET', path: /^\/v0\/orders\/history$/, handler: cached(history(false)) },
    { method: 'GET', path: /^\/v0\/city\/([^/]+)\/order\/history\/([^/]+)$/, handler: historyDetail, city: true },
    { method: 'GET', path: /^\/v0\/order\/history\/([^/]+)$/, handler: historyDetail },
    { method: 'POST', path: /^\/v0\/city\/([^/]+)\/events$/, handler: publish, city: true },
    { method: 'POST', path: /^\/v0\/events$/, handler: publish },
    { method: 'GET', path: /^\/v0\/orders$/, handler: orders },
    { method: 'POST', path: /^\/v0\/orders\/([^/]+)\/fire$/, handler: fire },
    { method: 'GET', path: /^\/v0\/status$/, handler: async () => ({ body: status() }) },
    { method: 'GET', path: /^\/v0\/runs$/, handler: async (_req, url) => ({ body: { runs: runs.recent(boundedInt(url.searchParams.get('limit'), 100, 1000)) } }) },
    { method: 'GET', path: /^\/v0\/runs\/([^/]+)$/, handler: runDetail },
    { method: 'GET', path: /^\/v0\/openapi\.json$/, handler: async () => ({ body: OPENAPI }) },
    { method: 'GET', path: /^\/healthz$/, handler: healthz },
    { method: 'GET', path: /^\/health$/, handler: async () => ({ body: { status: 'ok', city: opts.city, uptime_sec: Math.floor((Date.now() - started) / 1000) } }) },
    { method: 'GET', path: /^\/metrics$/, handler: async () => {
      const m = await metrics.text();
      return { body: m.body, type: m.contentType };
    } },
    { method: 'GET', path: /^\/$/, handler: async () => ({ body: DASHBOARD_HTML, type: 'text/html; charset=utf-8' }) },
  ];

  let closing = false;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (closing) {
      res.setHeader('connection', 'close');
      throw new HttpError(503, 'unavailable', 'the controller is stopping');
    }
    // Prefixed, so a path starting with // is a path, not a host.
    const url = new URL(`http://orderly.invalid${req.url ?? '/'}`);
    // Without a token the loopback address is the only guard, and a page whose name an attacker
    // points at 127.0.0.1 (DNS rebinding) would pass it: such requests carry a foreign Host.
    if (opts.token === undefined && !loopbackHost(req.headers.host)) throw new HttpError(403, 'forbidden_host', `Host ${JSON.stringify(req.headers.host ?? '')} is not this machine's loopback: use http://127.0.0.1:<port>/ or a token`);
    // The page itself holds no data (it fetches with the token from its own ?token= or #token=).
    const page = req.method === 'GET' && url.pathname === '/';
    if (!page && !authorized(req, url, opts.token)) throw new HttpError(401, 'unauthorized', 'a valid token is required (Authorization: Bearer <token>)');
    if (req.method === 'GET' && url.pathname === '/v0/runs/stream') return stream(req, res);
    const matching = routes.filter((r) => r.path.test(url.pathname));
    if (matching.length === 0) throw new HttpError(404, 'not_found', `no route ${url.pathname}`);
    const route = matching.find((r) => r.method === req.method || (req.method === 'HEAD' && r.method === 'GET'));
    if (!route) {
      res.setHeader('allow', [...new Set(matching.map((r) => r.method))].join(', '));
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${url.pathname}`);
    }
    // Gas City's guard against cross-site form posts: a mutation must carry a header a form cannot set.
    if (route.method === 'POST' && !req.headers['x-gc-request']) throw new HttpError(403, 'csrf', 'X-GC-Request header required on mutation endpoints');
    const origin = req.headers.origin;
    if (route.method === 'POST' && origin !== undefined && origin !== 'null' && !sameOrigin(origin, req.headers.host)) {
      throw new HttpError(403, 'csrf', `a mutation from another origin (${origin}) is refused`);
    }
    let params = route.path.exec(url.pathname)!.slice(1).map(decodePath);
    if (route.city) {
      cityOf(params[0]!);
      params = params.slice(1);
    }
    const out = await route.handler(req, url, params);
    const text = typeof out.body === 'string' ? out.body : JSON.stringify(out.body);
    res.writeHead(out.status ?? 200, { 'content-type': out.type ?? JSON_TYPE, 'cache-control': 'no-store', ...FRAME_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : text);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, 'internal', OrderlyError.from(err).message);
      if (res.headersSent) return void res.destroy();
      res.writeHead(e.status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...FRAME_HEADERS });
      res.end(JSON.stringify({ code: e.code, message: e.message }));
    });
  });
  // Slow or idle clients must not pin sockets: a request has 30 s to arrive whole.
  server.requestTimeout = 30_000;
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new OrderlyError('ERR_USAGE', `--http ${opts.listen.host}:${opts.listen.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`)),
    );
    server.listen(opts.listen.port, opts.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      // Keep-alive clients (a dashboard polls every 2 s) would hold server.close() open for as long
      // as they poll: drop every connection at once, so a stop never waits on a browser.
      closing = true;
      controller.off('event', onEvent);
      for (const res of streams) res.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await reader.close();
    },
  };
}

function clusterStatus(cluster: ClusterMember): Record<string, unknown> {
  const s = cluster.snapshot();
  return {
    member: cluster.memberId,
    members: s.members,
    owned: s.owned,
    leaving: s.leaving,
    // Infinity until the first confirmation, which JSON cannot say.
    confirmed_ms_ago: Number.isFinite(s.confirmedMsAgo) ? s.confirmedMsAgo : null,
  };
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** A Host header naming loopback (localhost, 127.x, [::1]), with or without a port. */
function loopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return isLoopback(name.toLowerCase());
}

function decodePath(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, 'invalid', `malformed escape in the path: ${JSON.stringify(part)}`);
  }
}

function checkId(id: string): string {
  if (!ID.test(id)) throw new HttpError(400, 'invalid', `not a valid id or order name: ${JSON.stringify(id.slice(0, 200))}`);
  return id;
}

function boundedInt(raw: string | null, fallback: number, max: number): number {
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, 'invalid', `limit must be a positive whole number, got ${JSON.stringify(raw)}`);
  return Math.min(n, max);
}

function cadenceOf(o: ScopedOrder | undefined): string {
  if (!o) return '';
  const s = o.spec;
  if (s.trigger === 'cooldown') return `every ${s.intervalMs !== undefined ? formatDuration(s.intervalMs) : '?'}`;
  if (s.trigger === 'cron') return `cron ${s.schedule ?? ''}${s.tz ? ` ${s.tz}` : ''}`;
  if (s.trigger === 'event') return `on ${s.on ?? ''}`;
  if (s.trigger === 'condition') return `when ${s.check ?? ''}`;
  return s.trigger;
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) throw new HttpError(413, 'too_large', `the body is ${declared} bytes; at most ${max}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new HttpError(413, 'too_large', `the body is over ${max} bytes`);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, 'invalid', `malformed JSON: ${(err as Error).message}`);
  }
  if (depth(value) > MAX_JSON_DEPTH) throw new HttpError(400, 'invalid', `the body nests deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/** How deep arrays and objects nest (iterative: the value may be deep enough to overflow a recursion). */
function depth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    max = Math.max(max, d);
    if (max > MAX_JSON_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * Reads of the audit database for the API, on a connection of their own.
 * A database that is down makes reads say so (the feed marks itself
 * partial) and is tried again after a pause, not on every request.
 */
class AuditReader {
  #sink: AuditSink | undefined;
  #opening: Promise<AuditSink> | undefined;
  #failedAt = 0;
  #why: string | undefined;

  constructor(readonly url: string | undefined) {}

  async history(q: Parameters<NonNullable<AuditSink['history']>>[0]): Promise<{ records: AuditRecord[]; unavailable?: string }> {
    if (this.url === undefined) return { records: [], unavailable: 'no audit sink configured' };
    if (!this.#sink && Date.now() - this.#failedAt < REOPEN_MS) return { records: [], unavailable: this.#why! };
    try {
      const sink = await this.#open();
      if (!sink.history) return { records: [], unavailable: `${sink.url} cannot be queried` };
      return { records: await sink.history(q) };
    } catch (err) {
      this.#why = err instanceof Error ? err.message : String(err);
      this.#failedAt = Date.now();
      const sink = this.#sink;
      this.#sink = undefined;
      await sink?.close().catch(() => undefined);
      return { records: [], unavailable: this.#why };
    }
  }

  async close(): Promise<void> {
    const opening = this.#opening;
    this.#opening = undefined;
    const sink = this.#sink ?? (await opening?.catch(() => undefined));
    this.#sink = undefined;
    await sink?.close().catch(() => undefined);
  }

  #open(): Promise<AuditSink> {
    if (this.#sink) return Promise.resolve(this.#sink);
    this.#opening ??= (async () => {
      const sink = sinkFromUrl(this.url!);
      try {
        await sink.open();
      } catch (err) {
        await sink.close().catch(() => undefined);
        throw err;
      } finally {
        this.#opening = undefined;
      }
      this.#sink = sink;
      return sink;
    })();
    return this.#opening;
  }
}
