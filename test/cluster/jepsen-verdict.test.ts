// The nemesis campaign is only as good as its checker: these feed verify()
// made-up evidence and require it to find each kind of violation, so a
// harness change that excuses too much fails here, not silently there.
import { describe, expect, it } from 'vitest';
import { INTERVAL_MS, verify, type Evidence } from './jepsen.js';

type Row = Evidence['records'][number];

function evidence(code: number, rows: Array<Partial<Row>>): Evidence {
  const start = 1_000_000;
  return {
    runs: [{ order: 'sweep-1', fence: 7n, epoch: 1, start, firedAt: start - 5, member: 'm', end: start + 500, code }],
    overlaps: [],
    records: rows.map((r, i) => ({ fireId: `f${i}`, scopedName: 'sweep-1', outcome: 'failed', exitCode: null, signal: null, fence: 7n, epoch: 1, shard: 0, fenced: false, ...r })),
    insertEpochs: new Map(),
    storedAt: new Map(),
  };
}

const judge = (e: Evidence): string[] => verify(e, [], INTERVAL_MS * 10, () => true).violations;

describe('jepsen verdict: one record per run', () => {
  it('an ended no-op with no row is clean', () => {
    expect(judge(evidence(100, []))).toEqual([]);
  });

  it('an ended no-op whose body exit was written down is a violation', () => {
    expect(judge(evidence(100, [{ outcome: 'no-op', exitCode: 100 }]))).toEqual([expect.stringMatching(/^one record: no-op run sweep-1 fence 7 has 1 row\(s\) \(no-op exit 100/)]);
    expect(judge(evidence(100, [{ outcome: 'failed', exitCode: 100, fenced: true }]))).toHaveLength(1);
  });

  it('an ended no-op killed between its end line and its exit may have one killed row, never two', () => {
    expect(judge(evidence(100, [{ outcome: 'failed', signal: 'SIGTERM', fenced: true }]))).toEqual([]);
    expect(judge(evidence(100, [{ outcome: 'failed', signal: 'SIGKILL' }]))).toEqual([]);
    expect(verify(evidence(100, [{ outcome: 'failed', signal: 'SIGKILL' }]), [], INTERVAL_MS * 10, () => true).killedAfterEnd).toBe(1);
    expect(judge(evidence(100, [{ outcome: 'failed', signal: 'SIGTERM' }, { outcome: 'failed', signal: 'SIGTERM' }]))).toHaveLength(1);
  });

  it('an ended no-op recorded as interrupted lost its exit status: a violation', () => {
    expect(judge(evidence(100, [{ outcome: 'interrupted' }]))).toHaveLength(1);
  });

  it('a run that did work needs exactly one row', () => {
    expect(judge(evidence(0, [{ outcome: 'did-work', exitCode: 0 }]))).toEqual([]);
    expect(judge(evidence(0, []))).toEqual([expect.stringMatching(/^one record: run sweep-1 fence 7 \(exit 0\) has 0 row/)]);
  });
});
