// The audit database down while the controller stops: the records wait in
// the outbox, and the writer keeps its backoff through the grace instead of
// retrying every few milliseconds.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, scratch, writeTree } from '../gascity/fixtures.js';

const fresh = scratch('field-shutdown');

describe('stopping with the audit database down', () => {
  it('retries with backoff through the grace, and leaves the records in the outbox', () => {
    const base = fresh();
    const city = writeTree(join(base, 'city'), {
      'city.toml': '[workspace]\nname = "down"\n',
      'orders/work.toml': '[order]\ntrigger = "cooldown"\ninterval = "1h"\nexec = "echo did it"\n',
    });
    const state = join(base, 'state');
    const started = Date.now();
    const r = spawnSync(process.execPath, [cli, 'run', city, '--state', state, '--for', '500ms', '--grace', '4s', '--events', '--audit', 'postgres://orderly@127.0.0.1:1/audit'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const tries = readFileSync(join(state, 'events.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"ERR_AUDIT_SINK"')).length;
    // 200 ms doubling to 5 s: about six tries in 4.5 s. Without the backoff at shutdown, hundreds.
    expect(tries).toBeGreaterThan(1);
    expect(tries).toBeLessThan(15);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stdout).toMatch(/1 waiting/);

    // With the database still down, feed and history answer from the state directory and say what is missing.
    const feed = spawnSync(process.execPath, [cli, 'feed', '--state', state, '--json'], { encoding: 'utf8' });
    expect(feed.status, feed.stderr).toBe(0);
    const f = JSON.parse(feed.stdout) as { entries: Array<{ scopedName: string }>; auditUnavailable?: string };
    expect(f.entries.map((e) => e.scopedName)).toEqual(['work']);
    expect(f.auditUnavailable).toMatch(/^postgres:\/\/orderly@127\.0\.0\.1:1\/audit: .*ECONNREFUSED/);
    const history = spawnSync(process.execPath, [cli, 'history', 'work', '--state', state], { encoding: 'utf8' });
    expect(history.status, history.stderr).toBe(0);
    expect(history.stdout).toMatch(/^audit database unavailable \(postgres:\/\/orderly@127\.0\.0\.1:1\/audit: /);
    expect(history.stdout).toMatch(/work/);
  });
});
