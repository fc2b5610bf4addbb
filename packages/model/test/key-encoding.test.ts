import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AttributeValue } from '../src/attribute-value.ts';
import {
  MAX_SPACE_ID,
  compareBytes,
  encodeCollectionPrefix,
  encodeItemKey,
  encodeKeyValue,
  encodeKeyValuePrefix,
  fingerprint64,
  hashSliceRange,
  prefixEnd,
  spaceRange,
} from '../src/key-encoding.ts';
import { compareScalars } from '../src/values.ts';

// Fixed seed: the suite is deterministic; change it locally to explore more cases.
fc.configureGlobal({ seed: 20261125 });

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const sign = (n: number) => Math.sign(n) + 0;
const inRange = (key: Uint8Array, range: { start: Uint8Array; end: Uint8Array }) =>
  compareBytes(range.start, key) <= 0 && compareBytes(key, range.end) < 0;

// Strings biased towards shared prefixes, NUL bytes and code points beyond the BMP, where naive
// encodings break order.
const stringValue = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.string({ unit: fc.constantFrom('a', 'b', '\0', '\u00ff', '\uffff', '\u{10000}'), maxLength: 6 }),
  )
  .map((S): AttributeValue => ({ S }));
const binaryValue = fc
  .oneof(fc.uint8Array({ maxLength: 6 }), fc.uint8Array({ maxLength: 6 }).map((a) => a.map((b) => b & 0x81)))
  .map((bytes): AttributeValue => ({ B: Buffer.from(bytes).toString('base64') }));
const numberValue = fc
  .oneof(
    fc.integer({ min: -300, max: 300 }).map(String),
    fc.record({
      negative: fc.boolean(),
      digits: fc.stringMatching(/^[1-9]\d{0,37}$/),
      exponent: fc.integer({ min: -130, max: 125 }),
    }).map((p) => `${p.negative ? '-' : ''}${p.digits[0]}.${p.digits.slice(1)}0E${p.exponent}`),
    fc.integer({ min: -999, max: 999 }).map((n) => (n / 100).toString()),
  )
  .map((N): AttributeValue => ({ N }));

const scalarPairs = fc.oneof(
  fc.tuple(stringValue, stringValue),
  fc.tuple(binaryValue, binaryValue),
  fc.tuple(numberValue, numberValue),
);

describe('encodeKeyValue', () => {
  it('escapes NUL and ends strings with 00 01', () => {
    expect(hex(encodeKeyValue({ S: 'ab' }))).toBe('61620001');
    expect(hex(encodeKeyValue({ S: 'a\0b' }))).toBe('6100ff620001');
    expect(hex(encodeKeyValue({ S: '' }))).toBe('0001');
    expect(hex(encodeKeyValue({ B: Buffer.from([0, 255]).toString('base64') }))).toBe('00ffff0001');
    expect(hex(encodeKeyValue({ N: '1.0' }))).toBe(hex(encodeKeyValue({ N: '1' })));
  });

  it('orders encodings as DynamoDB orders S, N and B values, whatever follows them', () => {
    fc.assert(
      fc.property(scalarPairs, fc.uint8Array({ maxLength: 3 }), fc.uint8Array({ maxLength: 3 }), ([a, b], x, y) => {
        const expected = compareScalars(a, b);
        const ea = encodeKeyValue(a);
        const eb = encodeKeyValue(b);
        expect(sign(compareBytes(ea, eb))).toBe(expected);
        if (expected !== 0) {
          expect(sign(compareBytes(Buffer.concat([ea, x]), Buffer.concat([eb, y])))).toBe(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('has prefixes that match exactly the values beginning with them', () => {
    fc.assert(
      fc.property(fc.oneof(fc.tuple(stringValue, stringValue), fc.tuple(binaryValue, binaryValue)), ([value, prefix]) => {
        const begins =
          'S' in value && 'S' in prefix
            ? value.S.startsWith(prefix.S)
            : Buffer.from((value as { B: string }).B, 'base64')
                .subarray(0, Buffer.from((prefix as { B: string }).B, 'base64').length)
                .equals(Buffer.from((prefix as { B: string }).B, 'base64'));
        const encodedPrefix = Buffer.from(encodeKeyValuePrefix(prefix));
        const encoded = Buffer.from(encodeKeyValue(value));
        expect(encoded.subarray(0, encodedPrefix.length).equals(encodedPrefix)).toBe(begins);
      }),
      { numRuns: 1000 },
    );
    expect(hex(encodeKeyValuePrefix({ S: 'a\0' }))).toBe('6100ff');
    expect(() => encodeKeyValuePrefix({ N: '1' })).toThrow(TypeError);
  });
});

describe('fingerprint64', () => {
  it('is farmhash fingerprint64 of the key bytes, pinned (persisted in every key)', () => {
    expect(fingerprint64({ S: 'a' })).toBe(12917804110809363939n);
    expect(fingerprint64({ S: 'hello' })).toBe(fingerprint64({ B: Buffer.from('hello').toString('base64') }));
    expect(fingerprint64({ N: '1.50' })).toBe(fingerprint64({ S: '1.5' }));
    expect(fingerprint64({ N: '-0' })).toBe(fingerprint64({ N: '0' }));
    expect(fingerprint64({ S: 'a' })).not.toBe(fingerprint64({ S: 'b' }));
  });
});

describe('encodeItemKey', () => {
  it('lays out space id, fingerprint, partition key and sort keys', () => {
    const key = Buffer.from(encodeItemKey(7, { S: 'a' }, { N: '1' }));
    expect(key.readUInt32BE(0)).toBe(7);
    expect(key.readBigUInt64BE(4)).toBe(fingerprint64({ S: 'a' }));
    expect(hex(key.subarray(12))).toBe(`610001${hex(encodeKeyValue({ N: '1' }))}`);
    expect(hex(encodeItemKey(7, { S: 'a' }))).toBe(hex(encodeCollectionPrefix(7, { S: 'a' })));
  });

  it('is the concatenation of its parts for every key type (written in one buffer, laid out as ever)', () => {
    const scalar = fc.oneof(stringValue, binaryValue, numberValue);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_SPACE_ID }), scalar, fc.array(scalar, { maxLength: 3 }), (spaceId, hash, sort) => {
        const fingerprint = Buffer.alloc(8);
        fingerprint.writeBigUInt64BE(fingerprint64(hash));
        const parts = [spaceRange(spaceId).start, fingerprint, encodeKeyValue(hash), ...sort.map(encodeKeyValue)];
        expect(hex(encodeItemKey(spaceId, hash, ...sort))).toBe(parts.map(hex).join(''));
      }),
    );
  });

  it('pins the bytes of a few keys (persisted in every key)', () => {
    expect(hex(encodeItemKey(7, { S: 'a' }, { N: '1' }))).toBe('00000007b3454265b6df75e3610001' + hex(encodeKeyValue({ N: '1' })));
    expect(hex(encodeItemKey(0xfffffffe, { N: '-1.5' }))).toBe(`fffffffe${fingerprint64({ S: '-1.5' }).toString(16).padStart(16, '0')}${hex(encodeKeyValue({ N: '-1.5' }))}`);
  });

  it('keeps an item collection contiguous and ordered by sort key', () => {
    // A table's partition key has one type, so two partition keys are two values of one type.
    fc.assert(
      fc.property(scalarPairs, scalarPairs, ([h1, h2], [s1, s2]) => {
        const collection = encodeCollectionPrefix(3, h1);
        const k1 = encodeItemKey(3, h1, s1);
        const k2 = encodeItemKey(3, h1, s2);
        expect(sign(compareBytes(k1, k2))).toBe(compareScalars(s1, s2));
        expect(hex(k1).startsWith(hex(collection))).toBe(true);
        // Another partition key's items never share the collection prefix.
        if (compareScalars(h1, h2) !== 0) {
          expect(hex(encodeItemKey(3, h2, s1)).startsWith(hex(collection))).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('orders by every sort value in turn (index entries)', () => {
    fc.assert(
      fc.property(scalarPairs, scalarPairs, ([a1, a2], [b1, b2]) => {
        const first = compareScalars(a1, a2);
        const expected = first !== 0 ? first : compareScalars(b1, b2);
        expect(sign(compareBytes(encodeItemKey(9, { S: 'h' }, a1, b1), encodeItemKey(9, { S: 'h' }, a2, b2)))).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects space ids out of range', () => {
    expect(() => encodeItemKey(-1, { S: 'a' })).toThrow(RangeError);
    expect(() => encodeItemKey(MAX_SPACE_ID + 1, { S: 'a' })).toThrow(RangeError);
    expect(() => encodeItemKey(1.5, { S: 'a' })).toThrow(RangeError);
  });
});

describe('spaceRange and hashSliceRange', () => {
  it('puts every key of a space, and no other, in its range', () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1, 2, MAX_SPACE_ID - 1, MAX_SPACE_ID), fc.oneof(stringValue, binaryValue, numberValue), (space, hash) => {
        const key = encodeItemKey(space, hash, { B: Buffer.from([255, 255]).toString('base64') });
        expect(inRange(key, spaceRange(space))).toBe(true);
        if (space > 0) expect(inRange(key, spaceRange(space - 1))).toBe(false);
        if (space < MAX_SPACE_ID) expect(inRange(key, spaceRange(space + 1))).toBe(false);
      }),
    );
    expect(hex(spaceRange(MAX_SPACE_ID).end)).toBe('ffffffff');
  });

  it('cuts a space into slices that cover it exactly', () => {
    for (const total of [1, 2, 3, 7, 16]) {
      const slices = Array.from({ length: total }, (_, i) => hashSliceRange(5, i, total));
      expect(hex(slices[0].start)).toBe(hex(spaceRange(5).start));
      expect(hex(slices[total - 1].end)).toBe(hex(spaceRange(5).end));
      for (let i = 1; i < total; i++) expect(hex(slices[i].start)).toBe(hex(slices[i - 1].end));
    }
    expect(hex(hashSliceRange(1, 1, 2).start)).toBe('000000018000000000000000');
  });

  it('puts every key in the slice of its fingerprint', () => {
    fc.assert(
      fc.property(fc.oneof(stringValue, numberValue), fc.integer({ min: 1, max: 64 }), (hash, total) => {
        const key = encodeItemKey(4, hash, { N: '1' });
        const expected = Number((fingerprint64(hash) * BigInt(total)) >> 64n);
        const holding = Array.from({ length: total }, (_, i) => i).filter((i) => inRange(key, hashSliceRange(4, i, total)));
        expect(holding).toEqual([expected]);
      }),
    );
  });

  it('rejects impossible slices', () => {
    expect(() => hashSliceRange(1, 2, 2)).toThrow(RangeError);
    expect(() => hashSliceRange(1, -1, 2)).toThrow(RangeError);
    expect(() => hashSliceRange(1, 0, 0)).toThrow(RangeError);
  });
});

describe('compareBytes', () => {
  it('is unsigned lexicographic order', () => {
    expect(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0))).toBeLessThan(0);
    expect(compareBytes(Uint8Array.of(0x80), Uint8Array.of(0x7f))).toBeGreaterThan(0);
    expect(compareBytes(Uint8Array.of(), Uint8Array.of())).toBe(0);
  });
});

describe('prefixEnd', () => {
  it('is the first key after every key with the prefix, trailing 0xff bytes dropped', () => {
    expect(prefixEnd(Uint8Array.of(1, 2, 3))).toEqual(Uint8Array.of(1, 2, 4));
    expect(prefixEnd(Uint8Array.of(1, 0xff, 0xff))).toEqual(Uint8Array.of(2));
    expect(prefixEnd(Uint8Array.of(0xff, 0xff))).toBeUndefined();
    expect(prefixEnd(Uint8Array.of())).toBeUndefined();
  });

  it('leaves the prefix unchanged', () => {
    const prefix = Uint8Array.of(7, 8);
    prefixEnd(prefix);
    expect(prefix).toEqual(Uint8Array.of(7, 8));
  });

  it('orders above every extension of the prefix and above no key beyond them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.uint8Array({ maxLength: 4 }), (prefix, rest) => {
        const end = prefixEnd(prefix);
        if (end === undefined) return;
        expect(compareBytes(Uint8Array.from([...prefix, ...rest]), end)).toBeLessThan(0);
        expect(compareBytes(prefix, end)).toBeLessThan(0);
      }),
    );
  });
});
