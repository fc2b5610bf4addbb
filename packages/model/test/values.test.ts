import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AttributeValue } from '../src/attribute-value.ts';
import {
  attributeTypeOf,
  attributeValuesEqual,
  compareScalars,
  compareUtf8,
  decodeBinary,
} from '../src/values.ts';

// Fixed seed: the suite is deterministic; change it locally to explore more cases.
fc.configureGlobal({ seed: 20261125 });

const b64 = (...bytes: number[]) => Buffer.from(bytes).toString('base64');

describe('attributeTypeOf', () => {
  it.each<[AttributeValue, string]>([
    [{ S: '' }, 'S'],
    [{ N: '1' }, 'N'],
    [{ B: 'AA==' }, 'B'],
    [{ BOOL: false }, 'BOOL'],
    [{ NULL: true }, 'NULL'],
    [{ M: {} }, 'M'],
    [{ L: [] }, 'L'],
    [{ SS: ['a'] }, 'SS'],
    [{ NS: ['1'] }, 'NS'],
    [{ BS: ['AA=='] }, 'BS'],
  ])('%j is %s', (value, type) => {
    expect(attributeTypeOf(value)).toBe(type);
  });
});

describe('decodeBinary', () => {
  it('decodes base64 to bytes', () => {
    expect([...decodeBinary('AP8Q')]).toEqual([0, 255, 16]);
    expect(decodeBinary('').length).toBe(0);
  });
});

describe('attributeValuesEqual', () => {
  it.each<[AttributeValue, AttributeValue]>([
    [{ S: 'a' }, { S: 'a' }],
    [{ N: '1' }, { N: '1.0' }],
    [{ N: '-0' }, { N: '0' }],
    [{ B: b64(1, 2) }, { B: b64(1, 2) }],
    [{ BOOL: true }, { BOOL: true }],
    [{ NULL: true }, { NULL: true }],
    [{ SS: ['a', 'b'] }, { SS: ['b', 'a'] }],
    [{ NS: ['1', '2.5'] }, { NS: ['2.50', '1E0'] }],
    [{ BS: [b64(1), b64(2)] }, { BS: [b64(2), b64(1)] }],
    [{ L: [{ N: '1' }, { S: 'x' }] }, { L: [{ N: '1.0' }, { S: 'x' }] }],
    [{ M: { a: { N: '1' }, b: { L: [] } } }, { M: { b: { L: [] }, a: { N: '1.00' } } }],
    [{ M: {} }, { M: {} }],
  ])('%j equals %j', (a, b) => {
    expect(attributeValuesEqual(a, b)).toBe(true);
    expect(attributeValuesEqual(b, a)).toBe(true);
  });

  it.each<[AttributeValue, AttributeValue]>([
    [{ S: 'a' }, { S: 'b' }],
    [{ S: '1' }, { N: '1' }],
    [{ N: '1' }, { N: '2' }],
    [{ B: b64(1) }, { B: b64(1, 0) }],
    [{ BOOL: true }, { BOOL: false }],
    [{ NULL: true }, { BOOL: true }],
    [{ SS: ['a', 'b'] }, { SS: ['a'] }],
    [{ SS: ['a', 'b'] }, { SS: ['a', 'c'] }],
    [{ SS: ['1'] }, { NS: ['1'] }],
    [{ NS: ['1', '2'] }, { NS: ['1', '3'] }],
    [{ BS: [b64(1)] }, { BS: [b64(2)] }],
    [{ L: [{ N: '1' }, { N: '2' }] }, { L: [{ N: '2' }, { N: '1' }] }],
    [{ L: [{ N: '1' }] }, { L: [{ N: '1' }, { N: '1' }] }],
    [{ M: { a: { N: '1' } } }, { M: { b: { N: '1' } } }],
    [{ M: { a: { N: '1' } } }, { M: { a: { N: '1' }, b: { N: '1' } } }],
    [{ M: {} }, { L: [] }],
    [{ L: [] }, { M: {} }],
  ])('%j differs from %j', (a, b) => {
    expect(attributeValuesEqual(a, b)).toBe(false);
    expect(attributeValuesEqual(b, a)).toBe(false);
  });

  it('does not mistake inherited properties for map members', () => {
    expect(attributeValuesEqual({ M: { toString: { S: 'x' } } }, { M: { valueOf: { S: 'x' } } })).toBe(false);
  });
});

describe('compareScalars', () => {
  it('orders strings by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FFFF is EF BF BF in UTF-8; U+10000 is F0 90 80 80, so it sorts after — in UTF-16 it sorts before.
    expect(compareScalars({ S: '\u{10000}' }, { S: '\uffff' })).toBe(1);
    expect(compareScalars({ S: '\uffff' }, { S: '\u{10000}' })).toBe(-1);
    expect(compareScalars({ S: '\ue000' }, { S: '\u{1f600}' })).toBe(-1);
    expect(compareScalars({ S: 'a' }, { S: 'ab' })).toBe(-1);
    expect(compareScalars({ S: 'B' }, { S: 'a' })).toBe(-1);
    expect(compareScalars({ S: 'x' }, { S: 'x' })).toBe(0);
  });

  it('agrees with Buffer.compare of UTF-8 for any strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        const expected = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
        expect(Math.sign(compareUtf8(a, b))).toBe(expected);
        expect(compareScalars({ S: a }, { S: b })).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('orders numbers by value', () => {
    expect(compareScalars({ N: '10' }, { N: '9' })).toBe(1);
    expect(compareScalars({ N: '-10' }, { N: '9' })).toBe(-1);
    expect(compareScalars({ N: '1.0' }, { N: '1' })).toBe(0);
  });

  it('orders binaries by unsigned bytes', () => {
    expect(compareScalars({ B: b64(0x7f) }, { B: b64(0x80) })).toBe(-1);
    expect(compareScalars({ B: b64(1) }, { B: b64(1, 0) })).toBe(-1);
    expect(compareScalars({ B: b64(2) }, { B: b64(1, 255) })).toBe(1);
    expect(compareScalars({ B: b64(9, 9) }, { B: b64(9, 9) })).toBe(0);
  });

  it('is undefined across types and for non-scalars', () => {
    expect(compareScalars({ S: '1' }, { N: '1' })).toBeUndefined();
    expect(compareScalars({ N: '1' }, { B: b64(1) })).toBeUndefined();
    expect(compareScalars({ B: b64(1) }, { S: 'a' })).toBeUndefined();
    expect(compareScalars({ BOOL: true }, { BOOL: false })).toBeUndefined();
    expect(compareScalars({ NULL: true }, { NULL: true })).toBeUndefined();
    expect(compareScalars({ SS: ['a'] }, { SS: ['b'] })).toBeUndefined();
    expect(compareScalars({ L: [] }, { L: [] })).toBeUndefined();
  });
});
