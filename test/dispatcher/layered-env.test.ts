import { describe, expect, it } from 'vitest';
import { envEntries, LayeredEnv } from '../../src/dispatcher/layered-env.js';

describe('LayeredEnv', () => {
  const base = new LayeredEnv({ PATH: '/bin', ORDERLY_FENCE: 'old', constructor: 'c', toString: 't', EMPTY: '' });

  it('lists each name once, a fire\'s value over the base\'s, names Object.prototype has included', () => {
    const list = base.entries({ ORDERLY_FENCE: 'new', ORDERLY_FIRE_ID: 'f1' });
    expect(list.sort()).toEqual(['EMPTY=', 'ORDERLY_FENCE=new', 'ORDERLY_FIRE_ID=f1', 'PATH=/bin', 'constructor=c', 'toString=t']);
    // The cached list is not changed by a fire: the next one starts from the base again.
    expect(base.entries({}).sort()).toEqual(['EMPTY=', 'ORDERLY_FENCE=old', 'PATH=/bin', 'constructor=c', 'toString=t']);
  });

  it('merges into the same variables as the list', () => {
    const over = { ORDERLY_FENCE: 'new', X: '1' };
    const merged = base.merged(over);
    expect(Object.entries(merged).map(([k, v]) => `${k}=${v}`).sort()).toEqual(base.entries(over).sort());
    expect(base.vars.ORDERLY_FENCE).toBe('old');
  });

  it('without a base, the fire\'s variables alone', () => {
    expect(envEntries(undefined, { A: '1', B: '2' })).toEqual(['A=1', 'B=2']);
  });
});
