// The controller's HTTP API against a real `orderly-dispatch run --http`:
// Gas City's feed and history shapes, the orderly routes, metrics, health,
// bad input, a database that is down, and the token off loopback. Every JSON
// answer is checked against the served OpenAPI document.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cooldownOrder, gasCity, scratch } from '../gascity/fixtures.js';
import { OPENAPI } from '../../src/http/openapi.js';
import { call, covered, startController, waitFor, type Controller } from './support.js';

const fresh = scratch('http-api');

/** bright-lights: gate-sweep does work and says so; each rig's orphan-sweep finds nothing; on-close follows bead.closed. */
function city(root: string): string {
  return gasCity(join(root, 'city'), {
    'packs/maintenance/assets/scripts/gate-sweep.sh': '#!/bin/sh\necho "gate-sweep: closed 2 gate(s)"\n',
    'packs/rigwork/assets/scripts/orphan-sweep.sh': '#!/bin/sh\nexit 100\n',
    'packs/maintenance/orders/on-close.toml': '[order]\ntrigger = "event"\non = "bead.closed"\nexec = "echo handled"\n',
    'packs/maintenance/orders/slow.toml': cooldownOrder('sleep 0.3; exit 100', '1h'),
    'packs/maintenance/orders/nettoyage-été.toml': '[order]\ntrigger = "manual"\nexec = "exit 100"\n',
  });
}

describe('orderly-dispatch run --http', () => {
  let c: Controller;
  let root: string;
  let gateFire: string;

  beforeAll(async () => {
    root = fresh();
    c = await startController([city(root), '--state', join(root, 'state'), '--http', '127.0.0.1:0']);
    const s = await waitFor('the first fires', async () => {
      const r = await call(c.url, 'GET', '/v0/status', '/v0/status');
      return r.body.fires >= 4 && r.body.leases_held === 0 && r.body.outbox_depth === 0 ? r.body : undefined;
    });
    expect(s).toMatchObject({ city: 'bright-lights', did_work: 1, failed: 0 });
    gateFire = (c.events.find((e) => e.type === 'completed' && e.scopedName === 'gate-sweep') as { fireId: string }).fireId;
  }, 40_000);
  afterAll(async () => {
    expect(await c.stop()).toBe(0);
  });

  it("serves Gas City's orders feed: audited runs as items, no-op orders with lastFiredAt", async () => {
    const r = await call(c.url, 'GET', '/v0/city/bright-lights/orders/feed?scope_kind=city&scope_ref=bright-lights', '/v0/city/{cityName}/orders/feed');
    expect(r.status).toBe(200);
    expect(r.body.partial).toBe(false);
    expect(r.body.partial_errors).toBeUndefined();
    const items = r.body.items as Array<Record<string, unknown>>;
    expect(items.find((i) => i.bead_id === gateFire)).toMatchObject({ id: `order:${gateFire}`, type: 'exec', status: 'done', title: 'gate-sweep', scope_kind: 'city', scope_ref: 'bright-lights', target: 'exec', auditBeadID: gateFire, detail_available: true });
    for (const rig of ['api', 'web']) {
      expect(items.find((i) => i.scopedName === `orphan-sweep:rig:${rig}`)).toMatchObject({ status: 'no-op', scope_kind: 'rig', scope_ref: rig, auditBeadID: null, lastFiredAt: expect.stringMatching(/^\d{4}-/) });
      expect(items.find((i) => i.scopedName === `orphan-sweep:rig:${rig}`)!.bead_id).toBeUndefined();
    }
    // Gas City's order: done before no-op, and a rig scope sees its rig alone.
    expect(items.findIndex((i) => i.status === 'done')).toBeLessThan(items.findIndex((i) => i.status === 'no-op'));
    const api = await call(c.url, 'GET', '/v0/orders/feed?scope_kind=rig&scope_ref=api&limit=5', '/v0/orders/feed');
    expect((api.body.items as Array<{ scopedName: string }>).map((i) => i.scopedName)).toEqual(['orphan-sweep:rig:api']);
  });

  it("answers a bad feed query in Gas City's words", async () => {
    const none = await call(c.url, 'GET', '/v0/orders/feed', '/v0/orders/feed');
    expect([none.status, none.body]).toEqual([400, { code: 'invalid', message: 'scope_kind and scope_ref are required' }]);
    const one = await call(c.url, 'GET', '/v0/orders/feed?scope_kind=city', '/v0/orders/feed');
    expect(one.body.message).toBe('scope_kind and scope_ref must be provided together');
    const kind = await call(c.url, 'GET', '/v0/orders/feed?scope_kind=town&scope_ref=x', '/v0/orders/feed');
    expect(kind.body.message).toBe("scope_kind must be 'city' or 'rig'");
    const city = await call(c.url, 'GET', '/v0/city/elsewhere/orders/feed?scope_kind=city&scope_ref=x', '/v0/city/{cityName}/orders/feed');
    expect([city.status, city.body.message]).toEqual([404, 'city not found or not running: elsewhere']);
  });

  it('serves history (wrapped and bare), the detail with its output, and the synthetic no-op entry', async () => {
    const h = await call(c.url, 'GET', '/v0/city/bright-lights/orders/history?scoped_name=gate-sweep', '/v0/city/{cityName}/orders/history');
    expect(h.body.entries[0]).toMatchObject({ bead_id: gateFire, name: 'gate-sweep', scoped_name: 'gate-sweep', labels: ['order-run:gate-sweep', 'exec'], exit_code: '0', outcome: 'did-work', has_output: true });
    const bare = await call(c.url, 'GET', '/v0/orders/history?scoped_name=orphan-sweep:rig:web', '/v0/orders/history');
    expect(bare.body).toMatchObject([{ bead_id: '', scoped_name: 'orphan-sweep:rig:web', rig: 'web', outcome: 'no-op', synthetic: true }]);
    const audited = await call(c.url, 'GET', '/v0/orders/history?scoped_name=orphan-sweep:rig:web&audited_only=true', '/v0/orders/history');
    expect(audited.body).toEqual([]);
    const detail = await call(c.url, 'GET', `/v0/city/bright-lights/order/history/${gateFire}`, '/v0/city/{cityName}/order/history/{bead_id}');
    expect(detail.body).toMatchObject({ bead_id: gateFire, output: 'gate-sweep: closed 2 gate(s)\n', record: { fireId: gateFire, outcome: 'did-work' } });
    const missing = await call(c.url, 'GET', '/v0/order/history/no-such-run', '/v0/order/history/{bead_id}');
    expect([missing.status, missing.body.code]).toEqual([404, 'not_found']);
    for (const q of ['', 'scoped_name=gate-sweep&limit=0', 'scoped_name=gate-sweep&before=yesterday']) {
      expect((await call(c.url, 'GET', `/v0/orders/history?${q}`, '/v0/orders/history')).status).toBe(400);
    }
  });

  it('lists orders with next due times, runs since start, and a run with its output', async () => {
    const o = await call(c.url, 'GET', '/v0/orders', '/v0/orders');
    const gate = (o.body.orders as Array<Record<string, unknown>>).find((x) => x.scoped_name === 'gate-sweep')!;
    expect(gate).toMatchObject({ trigger: 'cooldown', cadence: 'every 30s', status: 'did-work', last_fire_id: gateFire });
    expect(Date.parse(gate.next_due_at as string) - Date.parse(gate.last_fired_at as string)).toBe(30_000);
    const runs = await call(c.url, 'GET', '/v0/runs?limit=50', '/v0/runs');
    expect((runs.body.runs as Array<{ outcome: string }>).filter((r) => r.outcome === 'no-op').length).toBeGreaterThanOrEqual(2);
    const run = await call(c.url, 'GET', `/v0/runs/${gateFire}`, '/v0/runs/{fire_id}');
    expect(run.body).toMatchObject({ run: { fire_id: gateFire, outcome: 'did-work', audited: true, summary: 'gate-sweep: closed 2 gate(s)' }, output: 'gate-sweep: closed 2 gate(s)\n' });
  });

  it('fires an order and publishes an event that an event order follows; the stream sends each run', async () => {
    const ac = new AbortController();
    const stream = await fetch(`${c.url}/v0/runs/stream`, { signal: ac.signal });
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = stream.body!.getReader();
    const accented = await call(c.url, 'POST', `/v0/orders/${encodeURIComponent('nettoyage-été')}/fire`, '/v0/orders/{scoped_name}/fire');
    expect(accented.body).toMatchObject({ scoped_name: 'nettoyage-été', outcome: 'no-op' });
    const fired = await call(c.url, 'POST', '/v0/orders/gate-sweep/fire', '/v0/orders/{scoped_name}/fire');
    expect(fired.body).toMatchObject({ scoped_name: 'gate-sweep', outcome: 'did-work', skipped: null });
    let text = '';
    while (!text.includes(fired.body.fire_id)) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text).toMatch(new RegExp(`event: run\\ndata: \\{"fire_id":"${fired.body.fire_id}","scoped_name":"gate-sweep","outcome":"did-work","trigger":"manual"`));

    const published = await call(c.url, 'POST', '/v0/city/bright-lights/events', '/v0/city/{cityName}/events', { body: { type: 'bead.closed', actor: 'test', payload: { bead: 'bl-1' } } });
    expect(published.status).toBe(201);
    expect(published.body).toMatchObject({ status: 'recorded', seq: 1, fires: [{ scoped_name: 'on-close', outcome: 'did-work' }] });
  });

  it('refuses bad input with a 4xx JSON error', async () => {
    const cases: Array<[string, string, string, { body?: unknown; headers?: Record<string, string> }, number, string]> = [
      ['POST', '/v0/orders/nope/fire', '/v0/orders/{scoped_name}/fire', {}, 404, 'not_found'],
      ['POST', `/v0/orders/${encodeURIComponent('../../etc/passwd')}/fire`, '/v0/orders/{scoped_name}/fire', {}, 404, 'not_found'],
      ['GET', '/v0/runs/..%2F..%2Fleases', '/v0/runs/{fire_id}', {}, 400, 'invalid'],
      ['GET', '/v0/runs/%E0%A4%A', '/v0/runs/{fire_id}', {}, 400, 'invalid'],
      ['POST', '/v0/events', '/v0/events', { body: '{"type": ' }, 400, 'invalid'],
      ['POST', '/v0/events', '/v0/events', { body: { actor: 'x' } }, 400, 'invalid'],
      ['POST', '/v0/events', '/v0/events', { body: [1] }, 400, 'invalid'],
      ['POST', '/v0/events', '/v0/events', { body: { type: 'x', blob: 'y'.repeat(1_100_000) } }, 413, 'too_large'],
      ['POST', '/v0/events', '/v0/events', { body: { type: 'x' }, headers: { 'x-gc-request': '' } }, 403, 'csrf'],
    ];
    for (const [method, path, route, init, status, code] of cases) {
      const r = await call(c.url, method, path, route, init);
      expect([path, r.status, r.body.code]).toEqual([path, status, code]);
    }
    // DNS rebinding: a page on another name that resolves to 127.0.0.1 sends its own Host.
    const { request } = await import('node:http');
    const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(`${c.url}/v0/orders`);
      request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host: `evil.example:${u.port}` } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject).end();
    });
    expect([rebound.status, JSON.parse(rebound.body).code]).toEqual([403, 'forbidden_host']);
    // A page of another origin may not fire (the browser sends its Origin); nor frame the dashboard.
    const foreign = await call(c.url, 'POST', '/v0/orders/gate-sweep/fire', '/v0/orders/{scoped_name}/fire', { headers: { origin: 'http://evil.example' } });
    expect([foreign.status, foreign.body.code]).toEqual([403, 'csrf']);
    const page = await fetch(`${c.url}/`);
    expect([page.headers.get('x-frame-options'), page.headers.get('content-security-policy')]).toEqual(['DENY', "frame-ancestors 'none'"]);
    // A path beginning with // is a path: no route, not a host.
    expect((await fetch(`${c.url}//elsewhere/v0/orders`)).status).toBe(404);
    const deep = await call(c.url, 'POST', '/v0/events', '/v0/events', { body: `{"type":"x","payload":${'['.repeat(5000)}${']'.repeat(5000)}}` });
    expect([deep.status, deep.body.message]).toEqual([400, 'the body nests deeper than 64 levels']);
    const unknown = await fetch(`${c.url}/v0/nothing`);
    expect([unknown.status, await unknown.json()]).toEqual([404, { code: 'not_found', message: 'no route /v0/nothing' }]);
    const method = await fetch(`${c.url}/v0/orders`, { method: 'DELETE' });
    expect([method.status, method.headers.get('allow'), ((await method.json()) as { code: string }).code]).toEqual([405, 'GET', 'method_not_allowed']);
  });

  it('serves Prometheus metrics and the doctor as health', async () => {
    const m = await (await fetch(`${c.url}/metrics`)).text();
    expect(m).toMatch(/^orderly_fires_total\{order="gate-sweep",outcome="did-work"\} [2-9]/m);
    expect(m).toMatch(/^orderly_fires_total\{order="orphan-sweep:rig:api",outcome="no-op"\} 1$/m);
    for (const name of ['orderly_no_ops_total', 'orderly_audit_writes_total', 'orderly_audit_transactions_total', 'orderly_outbox_depth', 'orderly_wal_syncs_total', 'orderly_wal_bytes_total', 'orderly_store_poisoned', 'orderly_leases_held', 'orderly_db_commits_avoided_total']) {
      expect(m).toMatch(new RegExp(`^${name} \\d+$`, 'm'));
    }
    expect(m).toMatch(/^orderly_store_poisoned 0$/m);
    expect(m).toMatch(/^orderly_fire_lateness_seconds_count [1-9]/m);
    const h = await call(c.url, 'GET', '/healthz', '/healthz');
    expect(h.status).toBe(200);
    // Gas City's own health route, for its clients.
    expect(await (await fetch(`${c.url}/health`)).json()).toMatchObject({ status: 'ok', city: 'bright-lights', uptime_sec: expect.any(Number) });
    expect((h.body.checks as Array<{ name: string; status: string }>).find((x) => x.name === 'audit')).toMatchObject({ status: 'OK' });
  });

  it('the OpenAPI document is served, and every route in it was called above and answered as it says', async () => {
    const doc = await (await fetch(`${c.url}/v0/openapi.json`)).json();
    expect(doc).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
    const documented = Object.entries(OPENAPI.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(documented.filter((r) => !covered.has(r))).toEqual([]);
  });

  it('reads write nothing to the audit database', async () => {
    const db = join(root, 'state', 'audit.db');
    const size = (f: string) => statSync(f, { throwIfNoEntry: false })?.size ?? 0;
    const before = [size(db), size(`${db}-wal`)];
    for (let i = 0; i < 30; i++) {
      await call(c.url, 'GET', '/v0/orders/feed?scope_kind=city&scope_ref=bright-lights', '/v0/orders/feed');
      await call(c.url, 'GET', '/v0/orders/history?scoped_name=gate-sweep', '/v0/orders/history');
      await call(c.url, 'GET', `/v0/order/history/${gateFire}`, '/v0/order/history/{bead_id}');
    }
    expect([size(db), size(`${db}-wal`)]).toEqual(before);
  });
});

describe('orderly-dispatch run --http with the audit database down', () => {
  it('serves the feed from the controller, marked partial, and health says FAIL', async () => {
    const root = fresh();
    // Nothing listens on port 1: every connection is refused, as for a database that is down.
    const c = await startController([city(root), '--state', join(root, 'state'), '--http', '127.0.0.1:0', '--audit', 'postgres://orderly@127.0.0.1:1/audit', '--grace', '1s'], { ...process.env, ORDERLY_AUDIT_PASSWORD: 'pw-never-shown' });
    try {
      const r = await waitFor('the rig orders to fire', async () => {
        const f = await call(c.url, 'GET', '/v0/orders/feed?scope_kind=city&scope_ref=bright-lights', '/v0/orders/feed');
        const items = f.body.items as Array<Record<string, unknown>>;
        return ['gate-sweep', 'orphan-sweep:rig:api'].every((n) => items.some((i) => i.scopedName === n && i.status !== 'active')) ? f : undefined;
      });
      expect(r.body.partial).toBe(true);
      expect(r.body.partial_errors[0]).toMatch(/^audit database unavailable: .*ECONNREFUSED/);
      expect(JSON.stringify(r.body)).not.toContain('pw-never-shown');
      expect((r.body.items as Array<Record<string, unknown>>).find((i) => i.scopedName === 'orphan-sweep:rig:api')).toMatchObject({ status: 'no-op' });
      // The did-work run waits in the outbox; its latest fire still shows, from the controller.
      expect((r.body.items as Array<Record<string, unknown>>).find((i) => i.scopedName === 'gate-sweep')).toMatchObject({ outcome: 'did-work', auditBeadID: null });
      const s = await call(c.url, 'GET', '/v0/status', '/v0/status');
      expect(s.body.outbox_depth).toBeGreaterThanOrEqual(1);
      // History says what the run did, not no-op, while its record waits for the database.
      const hist = await call(c.url, 'GET', '/v0/city/bright-lights/orders/history?scoped_name=gate-sweep', '/v0/city/{cityName}/orders/history');
      expect(hist.body).toMatchObject({ entries: [{ scoped_name: 'gate-sweep', outcome: 'did-work', synthetic: true }], partial: true });
      const h = await call(c.url, 'GET', '/healthz', '/healthz');
      expect([h.status, h.body.status]).toEqual([503, 'fail']);
    } finally {
      await c.stop();
    }
  }, 40_000);
});

describe('orderly-dispatch run --http off loopback', () => {
  it('refuses to start without a token', () => {
    const root = fresh();
    const r = spawnSync(process.execPath, [cli, 'run', city(root), '--state', join(root, 'state'), '--http', '0.0.0.0:0', '--for', '1s'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--http 0.0.0.0:0 is not a loopback address: give a token with --http-token-file PATH or ORDERLY_HTTP_TOKEN');
  });

  it('checks the token on every request', async () => {
    const root = fresh();
    const token = 'a-token-of-32-characters-or-so-xyz';
    const c = await startController([city(root), '--state', join(root, 'state'), '--http', '0.0.0.0:0'], { ...process.env, ORDERLY_HTTP_TOKEN: token });
    try {
      const base = c.url.replace('0.0.0.0', '127.0.0.1');
      for (const path of ['/v0/orders', '/metrics', '/healthz', '/v0/runs/stream', '/v0/orders/feed?scope_kind=city&scope_ref=bright-lights']) {
        const r = await fetch(base + path);
        expect([path, r.status]).toEqual([path, 401]);
      }
      expect((await fetch(`${base}/v0/orders`, { headers: { authorization: `Bearer ${token}x` } })).status).toBe(401);
      expect((await fetch(`${base}/v0/orders`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await fetch(`${base}/v0/orders`, { headers: { authorization: `bearer ${token}` } })).status).toBe(200);
      expect((await fetch(`${base}/v0/orders?token=${token}`)).status).toBe(200);
      // The page itself holds no data and loads without it; it sends the token from ?token= or #token=.
      expect((await fetch(`${base}/`)).status).toBe(200);
      // The token never shows in what the controller prints.
      expect(JSON.stringify(c.events)).not.toContain(token);
    } finally {
      await c.stop();
    }
  }, 40_000);
});
