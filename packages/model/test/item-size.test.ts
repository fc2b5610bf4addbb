import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AttributeValue } from '../src/attribute-value.ts';
import { DynamoDbError } from '../src/errors.ts';
import {
  MAX_ITEM_SIZE,
  attributeValueSize,
  checkItemSize,
  itemSize,
  readCapacityUnits,
  transactionalReadCapacityUnits,
  transactionalWriteCapacityUnits,
  writeCapacityUnits,
} from '../src/item-size.ts';

const zeros = (n: number) => '0'.repeat(n);

describe('attributeValueSize', () => {
  it.each<[AttributeValue, number]>([
    [{ S: '' }, 0],
    [{ S: 'abc' }, 3],
    [{ S: 'é€😀' }, 2 + 3 + 4], // UTF-8 bytes, not characters
    [{ B: '' }, 0],
    [{ B: 'AAEC' }, 3], // raw bytes, not base64 length
    [{ BOOL: false }, 1],
    [{ NULL: true }, 1],
    [{ SS: ['a', 'bc', '€'] }, 1 + 2 + 3],
    [{ BS: ['AA==', 'AAE='] }, 1 + 2],
    [{ L: [] }, 3],
    [{ M: {} }, 3],
    [{ L: [{ S: 'xy' }, { NULL: true }] }, 3 + (1 + 2) + (1 + 1)],
    [{ M: { ab: { S: 'xyz' }, c: { BOOL: true } } }, 3 + (1 + 2 + 3) + (1 + 1 + 1)],
    [{ L: [{ M: { a: { L: [] } } }] }, 3 + 1 + (3 + 1 + 1 + 3)],
  ])('%j is %i bytes', (value, size) => {
    expect(attributeValueSize(value)).toBe(size);
  });

  // Numbers take one byte per base-100 digit (aligned on the decimal point), one more, and one for a
  // minus sign; the cases with 126-digit numbers are those dynalite measured against DynamoDB.
  it.each<[string, number]>([
    ['0', 1],
    ['-0', 1],
    ['1', 2],
    ['10', 2],
    ['12', 2],
    ['123', 3],
    ['1.2', 3],
    ['12.3', 3],
    ['1.23', 3],
    ['0.12', 2],
    ['0.012', 3],
    ['-1', 3],
    ['-12.5', 4],
    ['12345', 4],
    ['1.0', 2],
    [`1${zeros(125)}`, 2],
    [`11${zeros(124)}`, 2],
    [`11111${zeros(121)}`, 4],
    [`111111${zeros(120)}`, 4],
    [`1111111${zeros(119)}`, 5],
    [`${'1'.repeat(38)}${zeros(88)}`, 20],
    ['1E-130', 2],
    [`-${'9'.repeat(38)}`, 21],
  ])('N %s is %i bytes', (n, size) => {
    expect(attributeValueSize({ N: n })).toBe(size);
  });

  it('sums the elements of a number set', () => {
    expect(attributeValueSize({ NS: ['1', '123', '-1'] })).toBe(2 + 3 + 3);
  });
});

describe('itemSize', () => {
  it('adds the UTF-8 length of each name to its value size', () => {
    expect(itemSize({})).toBe(0);
    // The developer guide's kind of example: names and values.
    expect(itemSize({ id: { S: 'abc' }, n: { N: '12345' }, flag: { BOOL: true }, l: { L: [{ S: 'xy' }] } })).toBe(
      2 + 3 + (1 + 4) + (4 + 1) + (1 + 3 + 1 + 2),
    );
    expect(itemSize({ 'é': { NULL: true } })).toBe(2 + 1);
  });

  it('counts short strings (measured without Buffer) in UTF-8 bytes, lone surrogates as 3', () => {
    for (const text of ['\ud800', '\udc00', 'a\ud800b', '\ud83d\ude00', '\ude00\ud83d', '\u07ff', '\u0800', '€uro', 'x'.repeat(33)]) {
      expect(itemSize({ [text]: { S: text } })).toBe(2 * Buffer.byteLength(text, 'utf8'));
    }
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => itemSize({ [text]: { S: text } }) === 2 * Buffer.byteLength(text, 'utf8')),
      { numRuns: 2000 },
    );
  });

  it('enforces the 400 KB limit with DynamoDB message, counting names too', () => {
    const filler = (n: number) => ({ a: { S: 'k' }, b: { S: 'x'.repeat(n) } });
    const justFits = MAX_ITEM_SIZE - 3;
    expect(itemSize(filler(justFits))).toBe(MAX_ITEM_SIZE);
    expect(() => checkItemSize(filler(justFits))).not.toThrow();
    let error: unknown;
    try {
      checkItemSize(filler(justFits + 1));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DynamoDbError);
    expect((error as DynamoDbError).type).toBe('ValidationException');
    expect((error as DynamoDbError).message).toBe('Item size has exceeded the maximum allowed size');
  });
});

describe('capacity units', () => {
  it.each([
    [0, true, 1],
    [0, false, 0.5],
    [1, true, 1],
    [4096, true, 1],
    [4097, true, 2],
    [4097, false, 1],
    [8192, false, 1],
    [10000, false, 1.5],
    [MAX_ITEM_SIZE, true, 100],
  ])('reading %i bytes (consistent: %s) costs %d read units', (bytes, consistent, units) => {
    expect(readCapacityUnits(bytes, consistent)).toBe(units);
  });

  it.each([
    [0, 1],
    [1, 1],
    [1024, 1],
    [1025, 2],
    [3500, 4],
    [MAX_ITEM_SIZE, 400],
  ])('writing %i bytes costs %i write units', (bytes, units) => {
    expect(writeCapacityUnits(bytes)).toBe(units);
  });

  it('doubles units inside transactions, where reads are always consistent', () => {
    expect(transactionalReadCapacityUnits(100)).toBe(2);
    expect(transactionalReadCapacityUnits(5000)).toBe(4);
    expect(transactionalWriteCapacityUnits(100)).toBe(2);
    expect(transactionalWriteCapacityUnits(2048)).toBe(4);
  });
});
