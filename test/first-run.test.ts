// A new user's first runs: one default audit sink for the library and the
// CLI, recorded in the state so every later command reads the same database,
// and the `run` output the README describes.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JsonlSink } from '../src/audit/jsonl.js';
import { Controller } from '../src/dispatcher/controller.js';
import { defineOrder } from '../src/orders/define.js';
import { cli, cooldownOrder, scratch, writeTree } from './gascity/fixtures.js';

const fresh = scratch('first-run');

function orderly(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const didWork = defineOrder({ name: 'work', trigger: 'manual', run: async () => ({ didWork: true }) });

describe('the default audit sink', () => {
  it('is SQLite in the state directory for the library, as for the CLI, and is recorded there', async () => {
    const state = join(fresh(), 'state');
    const c = await Controller.start({ state, orders: [didWork], schedule: false });
    await c.fire('work');
    await c.stop();
    expect(existsSync(join(state, 'audit.db'))).toBe(true);
    expect(JSON.parse(readFileSync(join(state, 'audit-sink.json'), 'utf8'))).toEqual({ url: `sqlite:${join(state, 'audit.db')}` });
    const history = orderly(['history', '--state', state, '--json']);
    expect(history.code, history.stderr).toBe(0);
    expect(JSON.parse(history.stdout).entries).toMatchObject([{ order: 'work', status: 'did-work', outcome: 'did-work' }]);
  });

  it('feed, history and a later run use the sink a library controller wrote to, not the CLI default', async () => {
    const root = fresh();
    const state = join(root, 'state');
    const audit = join(root, 'elsewhere.jsonl');
    const c = await Controller.start({ state, orders: [didWork], schedule: false, audit: new JsonlSink(audit) });
    await c.fire('work');
    await c.stop();

    const history = orderly(['history', '--state', state, '--json']);
    expect(JSON.parse(history.stdout).entries).toMatchObject([{ order: 'work', status: 'did-work' }]);
    const feed = orderly(['feed', '--state', state, '--json']);
    expect(JSON.parse(feed.stdout)).toMatchObject({ entries: [{ scopedName: 'work', status: 'did-work' }] });
    expect(JSON.parse(feed.stdout).auditUnavailable).toBeUndefined();

    // `run` without --audit keeps writing where the state's runs went.
    const orders = writeTree(join(root, 'orders'), { 'beat.toml': cooldownOrder('echo beat', '1h') });
    const run = orderly(['run', orders, '--state', state, '--for', '1s', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.split('\n')[0]!)).toMatchObject({ type: 'started', audit: `jsonl:${audit}` });
    expect(readFileSync(audit, 'utf8')).toContain('"scopedName":"beat"');
    expect(existsSync(join(state, 'audit.db'))).toBe(false);
  });

  it('says so when a state does not record its sink, instead of showing did-work runs as no-op', async () => {
    const root = fresh();
    const state = join(root, 'state');
    const c = await Controller.start({ state, orders: [didWork], schedule: false, audit: new JsonlSink(join(root, 'a.jsonl')) });
    await c.fire('work');
    await c.stop();
    rmSync(join(state, 'audit-sink.json'));

    const feed = orderly(['feed', '--state', state]);
    expect(feed.code).toBe(0);
    expect(feed.stdout).toContain(`audit database unavailable (${state} does not record which audit sink its runs went to: pass --audit URL)`);
    const history = orderly(['history', '--state', state, '--json']);
    expect(JSON.parse(history.stdout).audit_unavailable).toContain('does not record which audit sink');
    // Named explicitly, it is found again.
    const named = orderly(['history', '--state', state, '--audit', `jsonl:${join(root, 'a.jsonl')}`, '--json']);
    expect(JSON.parse(named.stdout).entries).toMatchObject([{ order: 'work', status: 'did-work' }]);
  });

  it('records a database URL without its password', async () => {
    const state = join(fresh(), 'state');
    const sink = new JsonlSink(join(state, 'x.jsonl'));
    Object.defineProperty(sink, 'url', { value: 'postgres://orderly:s3cret-pw@db.example:5432/audit' });
    const c = await Controller.start({ state, orders: [], schedule: false, audit: sink });
    await c.stop();
    const saved = readFileSync(join(state, 'audit-sink.json'), 'utf8');
    expect(saved).not.toContain('s3cret-pw');
    expect(JSON.parse(saved)).toEqual({ url: 'postgres://orderly@db.example:5432/audit' });
  });
});

describe('orderly-dispatch run output', () => {
  it('prints one line per fire, with its trigger, fence and the summary line of a run that did work', () => {
    const root = fresh();
    const orders = writeTree(join(root, 'orders'), {
      'quiet.toml': cooldownOrder('exit 100', '1h'),
      'busy.toml': cooldownOrder('echo starting; echo "busy: closed 3 item(s)"', '1h'),
    });
    const run = orderly(['run', orders, '--state', join(root, 'state'), '--for', '1s']);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const fires = lines.filter((l) => / (no-op|did-work|failed|timeout) /.test(l));
    expect(fires).toHaveLength(2);
    expect(lines.filter((l) => / fired /.test(l))).toEqual([]);
    expect(fires.find((l) => l.includes(' quiet '))).toMatch(/no-op {5}quiet in \d+ ms \(cooldown, fence \d+\), no audit write$/);
    expect(fires.find((l) => l.includes(' busy '))).toMatch(/did-work {2}busy in \d+ ms \(cooldown, fence \d+\): busy: closed 3 item\(s\)$/);
  });

  it('says which fire comes next after a quiet stretch', () => {
    const root = fresh();
    const orders = writeTree(join(root, 'orders'), { 'slow.toml': cooldownOrder('exit 100', '1h') });
    const run = orderly(['run', orders, '--state', join(root, 'state'), '--for', '17s']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/ quiet {5}next fire: slow in 3\d{3} s \(\d{4}-\d\d-\d\dT/);
  }, 40_000);
});
