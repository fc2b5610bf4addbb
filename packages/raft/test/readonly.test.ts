import { describe, expect, it } from 'vitest';
import { makeMessage } from '../src/raft.ts';
import { ReadOnly } from '../src/readonly.ts';

const enc = (s: string) => new TextEncoder().encode(s);

describe('ReadOnly', () => {
  it('releases a request and all requests queued before it, in order', () => {
    const ro = new ReadOnly('safe');
    for (const [i, c] of ['a', 'b', 'c'].entries()) {
      ro.addRequest(10 + i, makeMessage('MsgReadIndex', 2, 1, { context: enc(c) }), enc(c));
    }
    expect(ro.lastPendingRequestContext()).toEqual(enc('c'));
    expect(ro.recvAck(3, enc('b'))).toEqual(new Map([[3, true]]));
    const released = ro.advance(enc('b'));
    expect(released.map((r) => r.index)).toEqual([10, 11]);
    expect(ro.pendingCount()).toBe(1);
    expect(ro.advance(enc('zzz'))).toEqual([]);
    expect(ro.recvAck(3, enc('a'))).toBeUndefined();
  });

  it('ignores a duplicate context', () => {
    const ro = new ReadOnly('safe');
    ro.addRequest(1, makeMessage('MsgReadIndex', 2, 1, { context: enc('x') }), enc('x'));
    ro.addRequest(2, makeMessage('MsgReadIndex', 2, 1, { context: enc('x') }), enc('x'));
    expect(ro.pendingCount()).toBe(1);
    expect(ro.advance(enc('x'))[0].index).toBe(1);
  });
});
