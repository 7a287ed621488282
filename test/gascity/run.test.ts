import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller, JsonlSink, loadCity, type ControllerEvent } from '../../src/index.js';
import { readAudit, sleep, waitUntil } from '../crash/support.js';
import { cooldownOrder, gasCity, scratch, writeTree } from './fixtures.js';

const fresh = scratch('gascity-run');

/** A body that records its cwd and Gas City's variables, one `KEY=value` a line. */
const ENV_KEYS = [
  'PWD', 'GC_CITY', 'GC_CITY_PATH', 'GC_CITY_RUNTIME_DIR', 'GC_RIG', 'GC_RIG_ROOT', 'GC_STORE_ROOT', 'GC_STORE_SCOPE', 'GC_BEADS_PREFIX',
  'BEADS_DIR', 'BEADS_ACTOR', 'ORDER_DIR', 'PACK_DIR', 'GC_PACK_DIR', 'GC_PACK_NAME', 'GC_PACK_STATE_DIR', 'BEADS_DOLT_AUTO_START', 'LEVEL',
];
const dumpEnv = (file: string): string => `#!/bin/sh\n{ echo "PWD=$(pwd -P)"; ${ENV_KEYS.filter((k) => k !== 'PWD').map((k) => `echo "${k}=\${${k}-<unset>}"`).join('; ')}; } > "${file}"\n`;

function readEnv(file: string): Record<string, string> {
  return Object.fromEntries(readFileSync(file, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function startCity(city: string, state: string, extra: Partial<Parameters<typeof Controller.start>[0]> = {}) {
  const loaded = await loadCity(city);
  const events: ControllerEvent[] = [];
  const c = await Controller.start({
    state,
    orders: loaded.orders,
    rigs: loaded.rigs,
    ...(loaded.city ? { city: loaded.city } : {}),
    audit: new JsonlSink(join(state, 'audit.jsonl')),
    onEvent: (e) => events.push(e),
    ...extra,
  });
  return { c, events, loaded };
}

describe('bodies get the directory and environment Gas City gives them', () => {
  it('city orders run in the city, rig orders in their rig, with GC_* / BEADS_* / PACK_* as Gas City sets them', async () => {
    const root = fresh();
    const out = join(root, 'out');
    const city = gasCity(join(root, 'city'), {
      'packs/maintenance/assets/scripts/gate-sweep.sh': dumpEnv(`${out}-city`),
      'packs/rigwork/assets/scripts/orphan-sweep.sh': dumpEnv(`${out}-$GC_RIG`),
      'packs/maintenance/orders/gate-sweep.toml': cooldownOrder('$PACK_DIR/assets/scripts/gate-sweep.sh', '30s', '[order.env]\nLEVEL = "debug"\n'),
    });
    const { c } = await startCity(city, join(root, 'state'), { schedule: false, env: { ...process.env, GC_DOLT_PORT: '3307' } });
    for (const name of ['gate-sweep', 'orphan-sweep:rig:api', 'orphan-sweep:rig:web']) expect((await c.fire(name)).outcome).toBe('did-work');
    await c.stop();
    const runtime = join(city, '.gc', 'runtime');
    expect(readEnv(`${out}-city`)).toEqual({
      PWD: city,
      GC_CITY: city,
      GC_CITY_PATH: city,
      GC_CITY_RUNTIME_DIR: runtime,
      GC_RIG: '',
      GC_RIG_ROOT: '',
      GC_STORE_ROOT: city,
      GC_STORE_SCOPE: 'city',
      GC_BEADS_PREFIX: '<unset>',
      BEADS_DIR: join(city, '.beads'),
      BEADS_ACTOR: 'order:gate-sweep',
      ORDER_DIR: join(city, 'packs/maintenance/orders'),
      PACK_DIR: join(city, 'packs/maintenance'),
      GC_PACK_DIR: join(city, 'packs/maintenance'),
      GC_PACK_NAME: 'maintenance',
      GC_PACK_STATE_DIR: join(runtime, 'packs', 'maintenance'),
      BEADS_DOLT_AUTO_START: '0',
      LEVEL: 'debug',
    });
    const api = readEnv(`${out}-api`);
    expect(api).toMatchObject({
      PWD: join(city, 'rigs/api'),
      GC_RIG: 'api',
      GC_RIG_ROOT: join(city, 'rigs/api'),
      GC_STORE_ROOT: join(city, 'rigs/api'),
      GC_STORE_SCOPE: 'rig',
      GC_BEADS_PREFIX: 'ap',
      BEADS_DIR: join(city, 'rigs/api/.beads'),
      BEADS_ACTOR: 'order:orphan-sweep',
      PACK_DIR: join(city, 'packs/rigwork'),
      GC_PACK_STATE_DIR: join(runtime, 'packs', 'rigwork'),
      LEVEL: '<unset>',
    });
    expect(readEnv(`${out}-web`)).toMatchObject({ PWD: join(city, 'rigs/web'), GC_RIG: 'web', GC_RIG_ROOT: join(city, 'rigs/web') });
  });

  it('condition checks get the same directory and variables; check_timeout ends a slow check; no interval means the patrol tick', async () => {
    const root = fresh();
    const seen = join(root, 'seen');
    const city = gasCity(join(root, 'city'), {
      'orders/ready.toml': `[order]\ntrigger = "condition"\ncheck = ${JSON.stringify(`echo "$(pwd -P) $GC_CITY $BEADS_ACTOR" >> ${seen}; exit 1`)}\nexec = "true"\n`,
      'orders/slow.toml': '[order]\ntrigger = "condition"\ncheck = "sleep 5; exit 0"\ncheck_timeout = "200ms"\ninterval = "1h"\nexec = "true"\n',
      'orders/gate.toml': '[order]\ntrigger = "manual"\nexec = "true"\n',
    });
    const { c, events } = await startCity(city, join(root, 'state'), { patrolMs: 250 });
    // The patrol re-checks an interval-less condition: several lines within a second.
    expect(await waitUntil(() => existsSync(seen) && readFileSync(seen, 'utf8').trim().split('\n').length >= 3, 5_000)).toBe(true);
    await sleep(600);
    await c.stop();
    expect(readFileSync(seen, 'utf8').split('\n')[0]).toBe(`${city} ${city} order:ready`);
    // The 5 s check was cut at 200 ms and did not fire its order.
    expect(events.filter((e) => e.type === 'fired' && e.scopedName === 'slow')).toEqual([]);
  });
});

describe('no_op_when_silent', () => {
  it('a silent exit 0 is a no-op (no audit write); printing anything, or a did-work status file, is did-work', async () => {
    const root = fresh();
    const city = writeTree(join(root, 'city'), {
      'city.toml': '[workspace]\nname = "quiet"\n',
      'orders/silent.toml': '[order]\ntrigger = "manual"\nexec = "true"\nno_op_when_silent = true\n',
      'orders/blank.toml': '[order]\ntrigger = "manual"\nexec = "echo; echo \'   \'"\nno_op_when_silent = true\n',
      'orders/talks.toml': '[order]\ntrigger = "manual"\nexec = "echo closed 2 gates"\nno_op_when_silent = true\n',
      'orders/says.toml': '[order]\ntrigger = "manual"\nexec = "echo did-work > $ORDERLY_STATUS_FILE"\nno_op_when_silent = true\n',
      'orders/plain.toml': '[order]\ntrigger = "manual"\nexec = "true"\n',
    });
    const state = join(root, 'state');
    const { c } = await startCity(city, state, { schedule: false });
    const outcomes: Record<string, string | undefined> = {};
    for (const name of ['silent', 'blank', 'talks', 'says', 'plain']) outcomes[name] = (await c.fire(name)).outcome;
    await c.stop();
    expect(outcomes).toEqual({ silent: 'no-op', blank: 'no-op', talks: 'did-work', says: 'did-work', plain: 'did-work' });
    expect(readAudit(join(state, 'audit.jsonl')).map((r) => r.scopedName).sort()).toEqual(['plain', 'says', 'talks']);
  });
});

describe('event orders', () => {
  function eventCity(root: string, body = 'echo "$ORDERLY_EVENT_FROM-$ORDERLY_EVENT_TO" >> ../fires') {
    return gasCity(join(root, 'city'), {
      'orders/on-close.toml': `[order]\ntrigger = "event"\non = "bead.closed"\nexec = ${JSON.stringify(body)}\n`,
    });
  }
  const fires = (root: string): string[] => (existsSync(join(root, 'fires')) ? readFileSync(join(root, 'fires'), 'utf8').trim().split('\n') : []);

  it('fire once per batch of matching events, skip other types and the orders\' own beads, and keep the cursor across a restart', async () => {
    const root = fresh();
    const city = eventCity(root);
    const state = join(root, 'state');
    const first = await startCity(city, state, { eventPollMs: 50 });
    await first.c.publish({ type: 'bead.created' });
    expect(fires(root)).toEqual([]);
    const { event, fires: started } = await first.c.publish({ type: 'bead.closed', payload: { bead: { id: 'b-1', labels: ['bug'] } } });
    expect(event?.seq).toBe(2);
    expect(started.map((f) => f.outcome)).toEqual(['did-work']);
    // Written by an order's own tracking bead: Gas City does not count it.
    await first.c.publish({ type: 'bead.closed', payload: { bead: { labels: ['order-run:on-close'] } } });
    await sleep(300);
    expect(fires(root)).toEqual(['1-2']);
    await first.c.stop();

    // Gas City (or anyone) writes while no controller runs: the next start fires once for both.
    const { appendEvent } = await import('../../src/index.js');
    appendEvent(join(city, '.gc', 'events.jsonl'), { type: 'bead.closed' });
    appendEvent(join(city, '.gc', 'events.jsonl'), { type: 'bead.closed' });
    const second = await startCity(city, state, { eventPollMs: 50 });
    expect(await waitUntil(() => fires(root).length === 2, 5_000)).toBe(true);
    await sleep(300);
    await second.c.stop();
    expect(fires(root)).toEqual(['1-2', '3-5']);

    // Nothing new: a third start fires nothing.
    const third = await startCity(city, state, { eventPollMs: 50 });
    await sleep(400);
    await third.c.stop();
    expect(fires(root)).toHaveLength(2);
    expect(readFileSync(join(city, '.gc', 'events.jsonl'), 'utf8').split('\n')[1]).toMatch(/^\{"seq":2,"type":"bead.closed","ts":"[^"]+","actor":"orderly","payload":\{"bead":/);
  });

  it('events that arrive while the order runs fire it again once it is done, never twice at once', async () => {
    const root = fresh();
    const city = eventCity(root, 'echo "start $ORDERLY_EVENT_TO" >> ../fires; sleep 0.6; echo end >> ../fires');
    const { c } = await startCity(city, join(root, 'state'), { eventPollMs: 50 });
    void c.publish('bead.closed');
    await waitUntil(() => fires(root).length === 1, 5_000);
    await c.publish('bead.closed');
    await c.publish('bead.closed');
    expect(await waitUntil(() => fires(root).length === 4, 5_000)).toBe(true);
    await c.stop();
    expect(fires(root)).toEqual(['start 1', 'end', 'start 3', 'end']);
  });

  it('without an event log an event order is reported at start, and publish() fires it directly', async () => {
    const root = fresh();
    const events: ControllerEvent[] = [];
    const { defineOrder } = await import('../../src/index.js');
    let ran = 0;
    const c = await Controller.start({
      state: join(root, 'state'),
      orders: [defineOrder({ name: 'on-deploy', trigger: 'event', on: 'deploy.done', run: async () => ({ didWork: ++ran > 0 }) })],
      onEvent: (e) => events.push(e),
    });
    expect(events.filter((e) => e.type === 'skipped').map((e) => (e as { reason: string }).reason)).toEqual(['no-event-source']);
    await c.publish('deploy.done');
    await c.stop();
    expect(ran).toBe(1);
  });
});
