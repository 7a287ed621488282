// The CLI on Gas City's real shapes: packs with pack.toml, a city with an
// invalid order, and the gc order-shaped commands' output.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, cooldownOrder, gasCity, scratch, writeTree } from './fixtures.js';

const fresh = scratch('gascity-cli');

function orderly(args: string[], cwd?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, ...(cwd ? { cwd } : {}) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const jsonLines = (out: string): Array<Record<string, unknown>> => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('orderly-dispatch run on Gas City packs and cities', () => {
  it('runs a pack that has a pack.toml, as the README shows', () => {
    const root = fresh();
    const pack = writeTree(join(root, 'dolt'), {
      'pack.toml': '[pack]\nname = "dolt"\nschema = 2\n',
      'orders/dolt-health.toml': cooldownOrder('$PACK_DIR/assets/scripts/dolt-health.sh', '1h'),
      'assets/scripts/dolt-health.sh': `#!/bin/sh\necho "health of $GC_PACK_NAME" > ${root}/ran\n`,
    });
    const r = orderly(['run', pack, '--state', join(root, 'state'), '--for', '1500ms', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(root, 'ran'), 'utf8')).toBe('health of dolt\n');
    expect(jsonLines(r.stdout).find((e) => e.type === 'started')).toMatchObject({ kind: 'pack', orders: ['dolt-health'] });
  });

  it('leaves an invalid order out, names it, runs the rest; --strict refuses; doctor says FAIL', () => {
    const root = fresh();
    const city = gasCity(join(root, 'city'), {
      'packs/maintenance/orders/broken.toml': '[order]\ngate = "cooldown"\ninterval = "30"\nexec = "true"\n',
      'packs/maintenance/assets/scripts/gate-sweep.sh': `#!/bin/sh\ntouch ${root}/swept\n`,
    });
    const broken = join(city, 'packs/maintenance/orders/broken.toml');
    const state = join(root, 'state');
    const r = orderly(['run', city, '--state', state, '--for', '1500ms', '--json', '--audit', `jsonl:${join(state, 'audit.jsonl')}`]);
    expect(r.code, r.stderr).toBe(0);
    const invalid = jsonLines(r.stdout).filter((e) => e.type === 'invalid-order');
    expect(invalid).toEqual([expect.objectContaining({ file: broken, line: 3, field: 'interval' })]);
    expect(existsSync(join(root, 'swept'))).toBe(true);

    const strict = orderly(['run', city, '--state', join(root, 'strict'), '--for', '1s', '--strict']);
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain(`${broken}:3: interval: invalid duration "30"`);

    const doctor = orderly(['doctor', '--state', state, '--json', '--min-free-mb', '0']);
    expect(doctor.code).toBe(1);
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks;
    expect(checks.filter((c) => c.name === 'order')).toEqual([{ name: 'order', status: 'FAIL', detail: expect.stringContaining(`${broken}:3: interval`) as string }]);
    expect(checks.find((c) => c.name === 'orders')).toMatchObject({ status: 'FAIL', detail: expect.stringContaining('1 invalid') as string });
  });
});

describe('gc order-shaped commands', () => {
  function ranCity() {
    const root = fresh();
    const city = gasCity(join(root, 'city'), { 'orders/on-close.toml': '[order]\ntrigger = "event"\non = "bead.closed"\nexec = "echo closed"\n' });
    const state = join(root, 'state');
    const r = orderly(['run', city, '--state', state, '--for', '1500ms', '--audit', `jsonl:${join(state, 'audit.jsonl')}`]);
    expect(r.code, r.stderr).toBe(0);
    return { root, city, state };
  }

  it('list and show speak gc order list/show (names, fields, exit 1 for an unknown order)', () => {
    const { state, city } = ranCity();
    const list = JSON.parse(orderly(['list', '--state', state, '--json']).stdout) as { schema_version: string; city_name: string; orders: Array<Record<string, unknown>>; summary: { count: number } };
    expect(list.schema_version).toBe('1');
    expect(list.city_name).toBe('bright-lights');
    expect(list.summary.count).toBe(5);
    expect(list.orders.find((o) => o.scoped_name === 'orphan-sweep:rig:api')).toEqual({
      name: 'orphan-sweep',
      scoped_name: 'orphan-sweep:rig:api',
      rig: 'api',
      description: 'test order',
      type: 'exec',
      exec: '$PACK_DIR/assets/scripts/orphan-sweep.sh',
      trigger: 'cooldown',
      interval: '5m',
      timeout: '5m',
      enabled: true,
      idempotent: false,
      source: join(city, 'packs/rigwork/orders/orphan-sweep.toml'),
      formula_layer: join(city, 'packs/rigwork/formulas'),
    });
    const human = orderly(['list', '--state', state]).stdout.split('\n');
    expect(human[0]).toMatch(/^NAME\s+TYPE\s+TRIGGER\s+INTERVAL\/SCHED\s+RIG\s+TARGET$/);
    expect(human.some((l) => /^digest\s+formula\s+cron\s+0 3 \* \* \*\s+-\s+dog$/.test(l))).toBe(true);

    const show = orderly(['show', 'orphan-sweep', '--rig', 'web', '--state', state]);
    expect(show.stdout).toContain('Order:  orphan-sweep\nRig:         web\n');
    const missing = orderly(['show', 'nope', '--state', state]);
    expect([missing.code, missing.stderr.trim()]).toEqual([1, 'orderly-dispatch show: order "nope" not found']);
  });

  it('check says which orders are due and why, and exits 0 only when one is', () => {
    const { state, city } = ranCity();
    const before = orderly(['check', '--state', state, '--json']);
    const rows = (JSON.parse(before.stdout) as { orders: Array<{ scoped_name: string; due: boolean; reason: string }> }).orders;
    expect(rows.find((r) => r.scoped_name === 'gate-sweep')).toMatchObject({ due: false, reason: expect.stringMatching(/^cooldown: .* remaining$/) as string });
    expect(rows.find((r) => r.scoped_name === 'on-close')).toMatchObject({ due: false, reason: 'event: no matching events' });
    expect(before.code).toBe(1);
    expect(orderly(['publish', 'bead.closed', '--city', city]).code).toBe(0);
    const after = orderly(['check', '--state', state, '--json']);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as { orders: Array<{ scoped_name: string; reason: string }> }).orders.find((r) => r.scoped_name === 'on-close')!.reason).toBe('event: 1 bead.closed event(s)');
  });

  it('history takes an optional name, --rig, --limit and --since, and prints gc order history\'s JSON', () => {
    const { state } = ranCity();
    const all = JSON.parse(orderly(['history', '--state', state, '--json']).stdout) as { entries: Array<Record<string, unknown>>; summary: { total: number } };
    // The three exec orders ran (digest is a formula order, on-close saw no event).
    expect(all.summary.total).toBe(3);
    expect(all.entries.map((e) => e.scoped_name).sort()).toEqual(['gate-sweep', 'orphan-sweep:rig:api', 'orphan-sweep:rig:web']);
    const api = JSON.parse(orderly(['history', 'orphan-sweep', '--rig', 'api', '--state', state, '--json']).stdout) as { name: string; rig: string; entries: Array<Record<string, unknown>> };
    expect(api.entries).toHaveLength(1);
    expect(api.entries[0]).toMatchObject({ order: 'orphan-sweep', rig: 'api', status: 'did-work', outcome: 'did-work' });
    expect(Object.keys(api.entries[0]!).slice(0, 5)).toEqual(['order', 'rig', 'bead_id', 'executed', 'created_at']);
    expect(JSON.parse(orderly(['history', '--state', state, '--json', '--since', '1ns']).stdout).entries).toEqual([]);
    expect(JSON.parse(orderly(['history', '--state', state, '--json', '--limit', '1']).stdout).entries).toHaveLength(1);
  });
});
