// The event log as real hosts leave it: records far larger than a read,
// numbers out of order, a torn last line, a character split across two
// writes, rotation between polls, broken archives, a log begun again.
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { appendEvent, Controller, EventLogFollower, JsonlSink, loadCity, type ControllerEvent } from '../../src/index.js';
import { sleep, waitUntil } from '../crash/support.js';
import { scratch, writeTree } from './fixtures.js';

const fresh = scratch('gascity-event-log');
const rec = (seq: number, type: string, extra = ''): string => `{"seq":${seq},"type":"${type}","ts":"2026-04-18T21:14:44-07:00","actor":"gc"${extra}}\n`;

describe('EventLogFollower', () => {
  it('keeps a record whose bytes (even one UTF-8 character) arrive in two writes', () => {
    const log = join(fresh(), 'events.jsonl');
    const f = new EventLogFollower(log);
    const line = Buffer.from(rec(1, 'café'));
    const cut = line.indexOf(0xc3) + 1;
    writeFileSync(log, line.subarray(0, cut));
    expect(f.poll()).toEqual([]);
    appendFileSync(log, line.subarray(cut));
    expect(f.poll().map((e) => e.type)).toEqual(['café']);
  });

  it('reads a huge log in pieces, and what was rotated away between two polls from its archive', () => {
    const dir = fresh();
    const log = join(dir, 'events.jsonl');
    const pad = `,"payload":"${'x'.repeat(1000)}"`;
    const many = Array.from({ length: 12_000 }, (_, i) => rec(i + 1, i === 11_999 ? 'last' : 'bulk', pad)).join('');
    writeFileSync(log, many);
    const f = new EventLogFollower(log);
    let polls = 0;
    let seen = 0;
    do {
      seen += f.poll().length;
      polls++;
    } while (f.more);
    expect([seen, f.head]).toEqual([12_000, 12_000]);
    expect(polls).toBeGreaterThan(1);

    // Rotated: the log is archived under its seq range and begun anew with an anchor record.
    appendFileSync(log, rec(12_001, 'bead.closed'));
    writeFileSync(join(dir, 'events.jsonl.archive-20260418T211444Z-seq-1-12001.gz'), gzipSync(readFileSync(log)));
    rmSync(log);
    writeFileSync(log, rec(12_002, 'events.rotated') + rec(12_003, 'bead.closed'));
    expect(f.poll().map((e) => e.seq)).toEqual([12_001, 12_002, 12_003]);
    expect(f.problems).toEqual([]);
  });

  it('reports a broken archive and a log begun again with lower numbers, and reads on', () => {
    const dir = fresh();
    const log = join(dir, 'events.jsonl');
    writeFileSync(join(dir, 'events.jsonl.archive-20260418T000000Z-seq-1-2.gz'), gzipSync(Buffer.from(rec(1, 'a') + rec(2, 'a'))).subarray(0, 20));
    writeFileSync(log, rec(3, 'a') + rec(4, 'a'));
    const f = new EventLogFollower(log);
    expect(f.poll().map((e) => e.seq)).toEqual([3, 4]);
    expect(f.problems).toEqual([expect.stringContaining('cannot read the rotated event log')]);
    rmSync(log);
    writeFileSync(log, rec(1, 'a') + rec(2, 'a') + rec(5, 'a'));
    expect(f.poll().map((e) => e.seq)).toEqual([5]);
    expect(f.problems).toEqual([expect.stringContaining('numbers its records again from below')]);
  });
});

describe('event orders on an odd log never loop and never drop an event', () => {
  async function start(root: string) {
    const city = writeTree(join(root, 'city'), {
      'city.toml': '[workspace]\nname = "odd"\n',
      'orders/on-small.toml': `[order]\ntrigger = "event"\non = "small"\nexec = "echo $ORDERLY_EVENT_FROM-$ORDERLY_EVENT_TO >> ${root}/fires"\n`,
    });
    const loaded = await loadCity(city);
    const events: ControllerEvent[] = [];
    const c = await Controller.start({
      state: join(root, 'state'),
      orders: loaded.orders,
      ...(loaded.city ? { city: loaded.city } : {}),
      audit: new JsonlSink(join(root, 'state', 'audit.jsonl')),
      eventPollMs: 30,
      onEvent: (e) => events.push(e),
    });
    return { c, events, city, log: join(city, '.gc', 'events.jsonl') };
  }
  const fires = (root: string): string[] => (existsSync(join(root, 'fires')) ? readFileSync(join(root, 'fires'), 'utf8').trim().split('\n') : []);

  it('a last record larger than any tail read, and a lower seq written after a higher one', async () => {
    const root = fresh();
    writeTree(root, { 'city/.gc/events.jsonl': rec(1, 'small') + rec(2, 'big', `,"payload":"${'y'.repeat(300 * 1024)}"`) });
    const { c, log } = await start(root);
    expect(await waitUntil(() => fires(root).length === 1, 5_000)).toBe(true);
    appendFileSync(log, rec(7, 'small') + rec(4, 'other'));
    expect(await waitUntil(() => fires(root).length === 2, 5_000)).toBe(true);
    await sleep(400);
    await c.stop();
    expect(fires(root)).toEqual(['1-2', '3-7']);
  });

  it('a publish after a torn last line, and after the log was deleted, still fires', async () => {
    const root = fresh();
    writeTree(root, { 'city/.gc/events.jsonl': rec(1, 'small') + '{"seq":2,"type":"sm' });
    const { c, log } = await start(root);
    await waitUntil(() => fires(root).length === 1, 5_000);
    const { event } = await c.publish('small');
    expect(event!.seq).toBe(3);
    expect(await waitUntil(() => fires(root).length === 2, 5_000)).toBe(true);
    renameSync(log, `${log}.gone`);
    const again = await c.publish('small');
    // Numbered past what the order consumed, so it is not mistaken for an old event.
    expect(again.event!.seq).toBe(4);
    expect(await waitUntil(() => fires(root).length === 3, 5_000)).toBe(true);
    await c.stop();
    // The torn record's number is never reused: the first fire's cursor covers it.
    expect(fires(root)).toEqual(['1-2', '3-3', '4-4']);
    expect(appendEvent(log, { type: 'small' }).seq).toBe(5);
  });
});
