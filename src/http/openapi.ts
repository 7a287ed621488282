// The OpenAPI document of the JSON routes, served at /v0/openapi.json. The
// Gas City routes keep Gas City's field names (its generated client's
// required fields are required here too); test/http/api.test.ts checks
// every route's answers against these schemas.
const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const nullable = (s: object) => ({ anyOf: [s, { type: 'null' }] });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const error = (description: string) => json(ref('Error'), description);
const cityParam = { name: 'cityName', in: 'path', required: true, schema: { type: 'string', minLength: 1 } };
const OUTCOME = { type: 'string', enum: ['no-op', 'did-work', 'failed', 'timeout', 'interrupted'] };

const feed = {
  summary: "Gas City's orders feed: audited runs, plus every order's latest fire that left no record (no-op entries with lastFiredAt)",
  parameters: [
    { name: 'scope_kind', in: 'query', required: true, schema: { type: 'string', enum: ['city', 'rig'] } },
    { name: 'scope_ref', in: 'query', required: true, schema: str },
    { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
  ],
  responses: { 200: json(ref('OrdersFeedBody')), 400: error('scope missing or invalid'), 404: error('unknown city') },
};
const historyParams = [
  { name: 'scoped_name', in: 'query', required: true, schema: { type: 'string', minLength: 1 } },
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 20 } },
  { name: 'before', in: 'query', schema: time },
  { name: 'audited_only', in: 'query', schema: bool },
];
const detail = {
  summary: 'One audited run: its record and output tail',
  parameters: [{ name: 'bead_id', in: 'path', required: true, schema: str }],
  responses: { 200: json(ref('OrderHistoryDetail')), 400: error('malformed id'), 404: error('no such run'), 503: error('audit database unavailable') },
};
const publish = {
  summary: 'Append an event to the city event log; event orders whose `on` matches fire',
  requestBody: { required: true, content: { 'application/json': { schema: ref('EventEmitRequest') } } },
  responses: { 201: json(ref('EventEmitResponse'), 'Recorded'), 400: error('malformed body'), 403: error('X-GC-Request header missing'), 413: error('body too large') },
};

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'orderly-dispatch controller API', version: '0.1.0', description: 'Served by `orderly-dispatch run --http`. Errors are `{code, message}`. POST routes need an `X-GC-Request` header; with a token, every request needs `Authorization: Bearer <token>` (or `?token=`).' },
  paths: {
    '/v0/city/{cityName}/orders/feed': { get: { ...feed, operationId: 'cityOrdersFeed', parameters: [cityParam, ...feed.parameters] } },
    '/v0/orders/feed': { get: { ...feed, operationId: 'ordersFeed' } },
    '/v0/city/{cityName}/orders/history': {
      get: {
        operationId: 'cityOrderHistory',
        summary: "An order's runs, newest first (Gas City's entries; the latest fire that left no record is a synthetic entry unless audited_only)",
        parameters: [cityParam, ...historyParams],
        responses: { 200: json(ref('OrderHistoryListBody')), 400: error('scoped_name missing, bad limit or before') },
      },
    },
    '/v0/orders/history': {
      get: { operationId: 'orderHistory', summary: 'As the city route, as a bare array (the per-city server of Gas City)', parameters: historyParams, responses: { 200: json({ type: 'array', items: ref('OrderHistoryEntry') }), 400: error('bad query') } },
    },
    '/v0/city/{cityName}/order/history/{bead_id}': { get: { ...detail, operationId: 'cityOrderHistoryDetail', parameters: [cityParam, ...detail.parameters] } },
    '/v0/order/history/{bead_id}': { get: { ...detail, operationId: 'orderHistoryDetail' } },
    '/v0/city/{cityName}/events': { post: { ...publish, operationId: 'cityEmitEvent', parameters: [cityParam] } },
    '/v0/events': { post: { ...publish, operationId: 'emitEvent' } },
    '/v0/orders': { get: { operationId: 'listOrders', summary: 'Every order with its state, last fire and next due time; in cluster mode, its shard and whether this member fires it', responses: { 200: json(ref('OrderList')) } } },
    '/v0/orders/{scoped_name}/fire': {
      post: {
        operationId: 'fireOrder',
        summary: 'Run an order now; answers when the run ended',
        parameters: [{ name: 'scoped_name', in: 'path', required: true, schema: str }],
        responses: { 200: json(ref('FireResult')), 400: error('malformed name'), 403: error('X-GC-Request header missing'), 404: error('unknown order') },
      },
    },
    '/v0/status': { get: { operationId: 'status', summary: 'Counters since start, outbox depth, database commits avoided; in cluster mode, the member and its shards', responses: { 200: json(ref('Status')) } } },
    '/v0/runs': {
      get: {
        operationId: 'listRuns',
        summary: 'Runs since the controller started (no-ops included), newest first; /v0/runs/stream sends each new one as a server-sent event `run`',
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } }],
        responses: { 200: json({ type: 'object', required: ['runs'], properties: { runs: { type: 'array', items: ref('Run') } } }), 400: error('bad limit') },
      },
    },
    '/v0/runs/{fire_id}': {
      get: {
        operationId: 'getRun',
        parameters: [{ name: 'fire_id', in: 'path', required: true, schema: str }],
        responses: { 200: json(ref('RunDetail')), 400: error('malformed id'), 404: error('no such run'), 503: error('audit database unavailable') },
      },
    },
    '/healthz': { get: { operationId: 'healthz', summary: "The doctor's checks: 503 when one fails", responses: { 200: json(ref('Health')), 503: json(ref('Health'), 'A check failed') } } },
  },
  components: {
    schemas: {
      Error: { type: 'object', required: ['code', 'message'], properties: { code: str, message: str } },
      OrdersFeedBody: {
        type: 'object',
        required: ['items', 'partial'],
        properties: { items: { type: 'array', items: ref('MonitorFeedItemResponse') }, partial: bool, partial_errors: { type: 'array', items: str } },
      },
      MonitorFeedItemResponse: {
        type: 'object',
        required: ['id', 'type', 'status', 'title', 'scope_kind', 'scope_ref', 'target', 'started_at', 'updated_at', 'scopedName', 'lastFiredAt', 'auditBeadID'],
        properties: {
          id: str,
          type: { type: 'string', enum: ['exec', 'formula'] },
          status: { type: 'string', enum: ['active', 'done', 'failed', 'no-op'] },
          title: str,
          scope_kind: { type: 'string', enum: ['city', 'rig'] },
          scope_ref: str,
          target: str,
          started_at: time,
          updated_at: time,
          bead_id: str,
          detail_available: bool,
          run_detail_available: bool,
          scopedName: str,
          lastFiredAt: nullable(time),
          auditBeadID: nullable(str),
          outcome: str,
        },
      },
      OrderHistoryListBody: { type: 'object', required: ['entries'], properties: { entries: { type: 'array', items: ref('OrderHistoryEntry') }, partial: bool, partial_errors: { type: 'array', items: str } } },
      OrderHistoryEntry: {
        type: 'object',
        required: ['bead_id', 'name', 'scoped_name', 'created_at', 'labels', 'capture_output', 'has_output', 'outcome'],
        properties: {
          bead_id: str,
          name: str,
          scoped_name: str,
          rig: str,
          created_at: time,
          labels: { type: 'array', items: str },
          duration_ms: str,
          exit_code: str,
          signal: str,
          error: str,
          capture_output: bool,
          has_output: bool,
          outcome: { type: 'string', enum: ['no-op', 'active', 'did-work', 'failed', 'timeout', 'interrupted'] },
          fence: str,
          trigger: str,
          synthetic: bool,
        },
      },
      OrderHistoryDetail: {
        type: 'object',
        required: ['bead_id', 'created_at', 'labels', 'output', 'record'],
        properties: { bead_id: str, created_at: time, labels: { type: 'array', items: str }, output: str, record: nullable(ref('AuditRecord')) },
      },
      AuditRecord: {
        type: 'object',
        required: ['fireId', 'order', 'scopedName', 'rig', 'trigger', 'outcome', 'exitCode', 'signal', 'startedAt', 'endedAt', 'durationMs', 'fence', 'outputTail', 'labels'],
        properties: {
          fireId: str,
          order: str,
          scopedName: str,
          rig: nullable(str),
          trigger: str,
          outcome: OUTCOME,
          exitCode: nullable(int),
          signal: nullable(str),
          startedAt: int,
          endedAt: int,
          durationMs: int,
          fence: str,
          outputTail: str,
          labels: { type: 'object', additionalProperties: str },
        },
      },
      EventEmitRequest: {
        type: 'object',
        required: ['type'],
        properties: { type: { type: 'string', minLength: 1 }, actor: str, subject: str, message: str, payload: {} },
      },
      EventEmitResponse: {
        type: 'object',
        required: ['status', 'seq', 'fires'],
        properties: { status: { const: 'recorded' }, seq: nullable(int), fires: { type: 'array', items: ref('FireResult') } },
      },
      OrderList: {
        type: 'object',
        required: ['orders'],
        properties: {
          orders: {
            type: 'array',
            items: {
              type: 'object',
              required: ['scoped_name', 'name', 'rig', 'trigger', 'cadence', 'enabled', 'status', 'last_fired_at', 'last_fire_id', 'next_due_at'],
              properties: {
                scoped_name: str,
                name: str,
                rig: nullable(str),
                trigger: str,
                cadence: str,
                enabled: bool,
                status: { type: 'string', enum: ['active', 'never', 'no-op', 'did-work', 'failed', 'timeout', 'interrupted'] },
                last_fired_at: nullable(time),
                last_fire_id: nullable(str),
                next_due_at: nullable(time),
                owner: ref('OrderOwner'),
              },
            },
          },
        },
      },
      FireResult: {
        type: 'object',
        required: ['scoped_name', 'fire_id', 'outcome', 'skipped'],
        properties: { scoped_name: str, fire_id: nullable(str), outcome: nullable(str), skipped: nullable(str), detail: nullable(str) },
      },
      Status: {
        type: 'object',
        required: ['city', 'started_at', 'fires', 'no_ops', 'did_work', 'failed', 'timeouts', 'skipped', 'audit_writes', 'audit_transactions', 'outbox_depth', 'db_writes_avoided', 'wal_syncs', 'leases_held', 'store_poisoned', 'audit_unavailable'],
        properties: {
          city: str,
          started_at: time,
          fires: int,
          no_ops: int,
          did_work: int,
          failed: int,
          timeouts: int,
          skipped: int,
          audit_writes: int,
          audit_transactions: int,
          outbox_depth: int,
          db_writes_avoided: int,
          wal_syncs: int,
          leases_held: int,
          store_poisoned: nullable(str),
          audit_unavailable: nullable(str),
          cluster: ref('ClusterStatus'),
        },
      },
      OrderOwner: {
        description: 'Cluster mode only: the shard the order hashes to, and this member when it fires the order now (else member is null: another member owns the shard, or this one is taking it over or has not confirmed it in time)',
        anyOf: [
          { type: 'object', required: ['shard', 'epoch', 'member'], properties: { shard: int, epoch: { type: 'integer', minimum: 1 }, member: str } },
          { type: 'object', required: ['shard', 'member'], properties: { shard: int, member: { type: 'null' } }, not: { required: ['epoch'] } },
        ],
      },
      ClusterStatus: {
        description: "Cluster mode only: this member's view, from its memory (no engine query per request)",
        type: 'object',
        required: ['member', 'members', 'owned', 'leaving', 'confirmed_ms_ago'],
        properties: {
          member: str,
          members: { type: 'array', items: str },
          owned: { type: 'array', items: { type: 'object', required: ['shard', 'epoch', 'ready'], properties: { shard: int, epoch: int, ready: bool } } },
          leaving: { type: 'array', items: int },
          confirmed_ms_ago: nullable(int),
        },
      },
      Run: {
        type: 'object',
        required: ['fire_id', 'scoped_name', 'outcome', 'trigger', 'fence', 'started_at', 'ended_at', 'duration_ms', 'exit_code', 'audited', 'summary'],
        properties: {
          fire_id: str,
          scoped_name: str,
          outcome: OUTCOME,
          trigger: str,
          fence: str,
          started_at: time,
          ended_at: time,
          duration_ms: int,
          exit_code: nullable(int),
          audited: bool,
          summary: nullable(str),
        },
      },
      RunDetail: {
        type: 'object',
        required: ['run', 'record', 'output', 'audit_unavailable'],
        properties: { run: nullable(ref('Run')), record: nullable(ref('AuditRecord')), output: str, audit_unavailable: nullable(str) },
      },
      Health: {
        type: 'object',
        required: ['status', 'checks'],
        properties: {
          status: { type: 'string', enum: ['ok', 'fail'] },
          checks: { type: 'array', items: { type: 'object', required: ['name', 'status', 'detail'], properties: { name: str, status: { type: 'string', enum: ['OK', 'WARN', 'FAIL'] }, detail: str } } },
        },
      },
    },
  },
} as const;
