// kill -9 of `orderly-dispatch run` around an event order's fire: a restart neither
// fires a handled batch of events again nor drops one whose body never ran
// to the end. The evidence is the body's own log and the audit rows.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendEvent } from '../../src/index.js';
import { readAudit, sleep, startController, waitUntil } from '../crash/support.js';
import { scratch, writeTree } from './fixtures.js';

const fresh = scratch('gascity-event-crash');

function setup(bodySeconds: number) {
  const root = fresh();
  const city = writeTree(join(root, 'city'), {
    'city.toml': '[workspace]\nname = "events"\n',
    'orders/on-close.toml': `[order]\ntrigger = "event"\non = "bead.closed"\nexec = ${JSON.stringify(`echo "start $ORDERLY_EVENT_FROM-$ORDERLY_EVENT_TO" >> ${root}/body.log; sleep ${bodySeconds}; echo end >> ${root}/body.log`)}\n`,
  });
  const log = join(city, '.gc', 'events.jsonl');
  appendEvent(log, { type: 'bead.closed', actor: 'gc' });
  appendEvent(log, { type: 'bead.closed', actor: 'gc' });
  const body = (): string[] => (existsSync(join(root, 'body.log')) ? readFileSync(join(root, 'body.log'), 'utf8').trim().split('\n') : []);
  return { root, city, state: join(root, 'state'), log, body };
}

async function killedAt(city: string, state: string, point: string): Promise<void> {
  const run = startController(city, state, [], { crashPoint: point });
  const ended = await run.exited;
  expect(ended.signal, `${point} was not reached: ${run.stderr()}`).toBe('SIGKILL');
}

async function restartUntil(city: string, state: string, done: () => boolean): Promise<Array<Record<string, unknown>>> {
  const run = startController(city, state, ['--grace', '5s']);
  const ok = await waitUntil(done, 10_000);
  await sleep(500);
  run.child.kill('SIGTERM');
  await run.exited;
  expect(ok, run.stderr()).toBe(true);
  return run.events;
}

describe('event orders across kill -9', () => {
  it('killed after the acquire, before the cursor: the restart fires the batch once, and the cut fire is recorded interrupted', async () => {
    const { city, state, body } = setup(0);
    await killedAt(city, state, 'fire:acquired');
    expect(body()).toEqual([]);
    await restartUntil(city, state, () => body().length === 2);
    expect(body()).toEqual(['start 1-2', 'end']);
    expect(readAudit(join(state, 'audit.jsonl')).map((r) => r.outcome).sort()).toEqual(['did-work', 'interrupted']);
  }, 30_000);

  it('killed after the cursor is durable but before the body started: the restart owes and pays one retry, from the same first event', async () => {
    const { city, state, body, log } = setup(0);
    await killedAt(city, state, 'fire:cursor');
    expect(body()).toEqual([]);
    appendEvent(log, { type: 'bead.closed' });
    await restartUntil(city, state, () => body().length === 2);
    // One fire covers the owed events and the one that came since.
    expect(body()).toEqual(['start 1-3', 'end']);
    expect(readAudit(join(state, 'audit.jsonl')).map((r) => r.outcome).sort()).toEqual(['did-work', 'interrupted']);
    // Paid: nothing more on another start.
    await restartUntil(city, state, () => true);
    expect(body()).toHaveLength(2);
  }, 30_000);

  it('killed while the body runs: the body is adopted and finishes; the restart does not fire the batch again', async () => {
    const { city, state, body } = setup(1.5);
    const run = startController(city, state);
    expect(await waitUntil(() => body().length === 1, 10_000), run.stderr()).toBe(true);
    run.child.kill('SIGKILL');
    await run.exited;
    const events = await restartUntil(city, state, () => body().length === 2);
    await sleep(1_000);
    expect(body()).toEqual(['start 1-2', 'end']);
    expect(events.some((e) => e.type === 'recovered' && e.action === 'adopted')).toBe(true);
    expect(readAudit(join(state, 'audit.jsonl')).map((r) => r.outcome)).toEqual(['did-work']);
  }, 30_000);
});
