import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeConfChange, encodeConfChange } from '../src/codec.ts';
import type { ConfChange, ConfChangeType } from '../src/types.ts';

describe('ConfChange encoding', () => {
  it('round-trips every shape', () => {
    const change = fc.record({
      type: fc.constantFrom<ConfChangeType>('addNode', 'removeNode', 'addLearner'),
      nodeId: fc.maxSafeNat(),
    });
    const cc: fc.Arbitrary<ConfChange> = fc.record(
      { changes: fc.array(change, { maxLength: 8 }), joint: fc.boolean(), context: fc.uint8Array({ maxLength: 40 }) },
      { requiredKeys: ['changes'] },
    );
    fc.assert(fc.property(cc, (c) => {
        expect(decodeConfChange(encodeConfChange(c))).toEqual(c);
      }), { seed: 42 });
  });

  it('rejects truncated or unknown input', () => {
    const data = encodeConfChange({ changes: [{ type: 'addNode', nodeId: 300 }], context: new Uint8Array([1, 2]) });
    expect(() => decodeConfChange(data.slice(0, data.length - 1))).toThrow(RangeError);
    expect(() => decodeConfChange(new Uint8Array([9, 0, 0]))).toThrow(/version/);
    expect(() => decodeConfChange(Uint8Array.from([...data, 0]))).toThrow(/trailing/);
  });
});
