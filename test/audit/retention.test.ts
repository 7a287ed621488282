import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditWriter } from '../../src/audit/writer.js';
import { JsonlSink, SqliteSink, type AuditRecord } from '../../src/index.js';
import { tempDir } from '../helpers.js';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((f) => f()));

function rec(fireId: string, scopedName: string, endedAt: number): AuditRecord {
  return { fireId, order: scopedName, scopedName, rig: null, trigger: 'cooldown', outcome: 'did-work', exitCode: 0, signal: null, startedAt: endedAt - 5, endedAt, durationMs: 5, fence: '1', outputTail: '', labels: {} };
}

describe('scheduled retention', () => {
  for (const kind of ['jsonl', 'sqlite'] as const) {
    it(`${kind}: deletes records older than N days, keeps K per order, and only when nothing waits to be written`, async () => {
      const d = tempDir(`retention-${kind}`);
      cleanups.push(d.remove);
      const sink = kind === 'jsonl' ? new JsonlSink(join(d.path, 'audit.jsonl')) : new SqliteSink(join(d.path, 'audit.db'));
      await sink.open();
      const day = 86_400_000;
      const now = Date.now();
      await sink.write([
        ...Array.from({ length: 5 }, (_, i) => rec(`old-a-${i}`, 'a', now - 40 * day - i)),
        rec('new-a', 'a', now - 1000),
        ...Array.from({ length: 3 }, (_, i) => rec(`old-b-${i}`, 'b', now - 40 * day - i)),
      ]);
      let pruned = 0;
      const writer = new AuditWriter(sink, { onCommitted: () => undefined });
      writer.scheduleRetention({ days: 30, keepPerOrder: 2, everyMs: 100 }, (n) => (pruned += n));
      await new Promise((r) => setTimeout(r, 1_500));
      await writer.close();
      const a = await sink.history!({ scopedName: 'a', limit: 100 });
      const b = await sink.history!({ scopedName: 'b', limit: 100 });
      // a: the recent record plus the newest old one make its 2; b keeps its newest 2.
      expect(a.map((r) => r.fireId)).toEqual(['new-a', 'old-a-0']);
      expect(b.map((r) => r.fireId)).toEqual(['old-b-0', 'old-b-1']);
      expect(pruned).toBe(5);
      await sink.close();
    });
  }
});
