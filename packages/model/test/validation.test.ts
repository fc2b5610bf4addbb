import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorOf } from './dynamo-error.ts';
import type { AttributeValue } from '../src/attribute-value.ts';
import type { TableSchema } from '../src/schema.ts';
import { attributeValuesEqual } from '../src/values.ts';
import {
  extractKey,
  validateAttributeValue,
  validateItem,
  validateItemKeyAttributes,
  validateKey,
} from '../src/validation.ts';

const serialization = (message: string) => ({ type: 'SerializationException', message });
const validation = (message: string) => ({ type: 'ValidationException', message });

const EMPTY = 'Supplied AttributeValue is empty, must contain exactly one of the supported datatypes';
const MULTIPLE =
  'Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes';
const NESTING =
  'Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit';

/** A value wrapped in `levels` maps (or lists): its leaf sits at level levels + 1. */
function nested(levels: number, wrap: (v: AttributeValue) => AttributeValue): AttributeValue {
  let v: AttributeValue = { S: 'leaf' };
  for (let i = 0; i < levels; i++) v = wrap(v);
  return v;
}
const inMap = (v: AttributeValue): AttributeValue => ({ M: { n: v } });
const inList = (v: AttributeValue): AttributeValue => ({ L: [v] });

// Fixed seed: the suite is deterministic; change it locally to explore more cases.
fc.configureGlobal({ seed: 20261125 });

/** Valid attribute values in any (non-canonical) spelling, nested a few levels. */
const numberSpelling = fc
  .tuple(fc.constantFrom('', '-', '+'), fc.stringMatching(/^\d{1,10}$/), fc.stringMatching(/^\d{0,5}$/), fc.integer({ min: -20, max: 20 }))
  .map(([sign, whole, fraction, exponent]) => `${sign}${whole}.${fraction}e${exponent}`);
const base64 = fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes).toString('base64'));
const { attributeValue } = fc.letrec<{ attributeValue: AttributeValue }>((tie) => ({
  attributeValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string().map((S) => ({ S })),
    numberSpelling.map((N) => ({ N })),
    base64.map((B) => ({ B })),
    fc.boolean().map((BOOL) => ({ BOOL })),
    fc.constant({ NULL: true as const }),
    fc.uniqueArray(fc.string(), { minLength: 1, maxLength: 4 }).map((SS) => ({ SS })),
    fc.uniqueArray(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 4 }).map((ns) => ({ NS: ns.map((n) => `${n}.0`) })),
    fc.uniqueArray(base64, { minLength: 1, maxLength: 4 }).map((BS) => ({ BS })),
    fc.array(tie('attributeValue'), { maxLength: 3 }).map((L) => ({ L })),
    fc.dictionary(fc.string(), tie('attributeValue'), { maxKeys: 3 }).map((M) => ({ M })),
  ),
}));

describe('validateAttributeValue: wrong JSON shapes are SerializationExceptions', () => {
  it.each<[unknown, string]>([
    [{ S: 5 }, 'NUMBER_VALUE cannot be converted to String'],
    [{ S: 1.5 }, 'DECIMAL_VALUE cannot be converted to String'],
    [{ S: true }, 'TRUE_VALUE cannot be converted to String'],
    [{ S: false }, 'FALSE_VALUE cannot be converted to String'],
    [{ S: ['a'] }, 'Unrecognized collection type class java.lang.String'],
    [{ S: { a: 1 } }, 'Start of structure or map found where not expected'],
    [{ N: 5 }, 'NUMBER_VALUE cannot be converted to String'],
    [{ B: 5 }, 'only base-64-encoded strings are convertible to bytes'],
    [{ B: true }, 'only base-64-encoded strings are convertible to bytes'],
    [{ B: [] }, 'Unrecognized collection type class java.nio.ByteBuffer'],
    [{ B: {} }, 'Start of structure or map found where not expected'],
    [{ B: 'abc' }, 'Base64 encoded length is expected a multiple of 4 bytes but found: 3'],
    [{ B: 'ab==' }, 'Invalid last non-pad Base64 character dectected'],
    [{ B: 'a$c=' }, 'Invalid last non-pad Base64 character dectected'],
    [{ BOOL: 1 }, 'NUMBER_VALUE cannot be converted to Boolean'],
    [{ BOOL: 'maybe' }, 'Unexpected token received from parser'],
    [{ BOOL: [] }, 'Unrecognized collection type class java.lang.Boolean'],
    [{ NULL: {} }, 'Start of structure or map found where not expected'],
    [{ SS: 'a' }, 'Unexpected field type'],
    [{ SS: { a: 'b' } }, 'Start of structure or map found where not expected'],
    [{ SS: [1] }, 'NUMBER_VALUE cannot be converted to String'],
    [{ NS: [true] }, 'TRUE_VALUE cannot be converted to String'],
    [{ BS: ['abc'] }, 'Base64 encoded length is expected a multiple of 4 bytes but found: 3'],
    [{ L: 'a' }, 'Unexpected field type'],
    [{ L: {} }, 'Start of structure or map found where not expected'],
    [{ L: [5] }, 'Unexpected value type in payload'],
    [{ M: 'a' }, 'Unexpected field type'],
    [{ M: [] }, 'Unrecognized collection type java.util.Map<java.lang.String, com.amazonaws.dynamodb.v20120810.AttributeValue>'],
    [{ M: { a: 'b' } }, 'Unexpected value type in payload'],
    ['a', 'Unexpected value type in payload'],
    [5, 'Unexpected value type in payload'],
    [[], 'Unrecognized collection type class com.amazonaws.dynamodb.v20120810.AttributeValue'],
  ])('%j: %s', (value, message) => {
    expect(errorOf(() => validateAttributeValue(value))).toEqual(serialization(message));
  });

  it('reports a shape error before any validation error elsewhere in the value', () => {
    expect(errorOf(() => validateAttributeValue({ L: [{ SS: [] }, { S: 5 }] }))).toEqual(
      serialization('NUMBER_VALUE cannot be converted to String'),
    );
    expect(errorOf(() => validateItem({ a: { NS: [] }, b: { N: 1 } }))).toEqual(
      serialization('NUMBER_VALUE cannot be converted to String'),
    );
  });
});

describe('validateAttributeValue: invalid values are ValidationExceptions', () => {
  it.each<[unknown, string]>([
    [{}, EMPTY],
    [{ X: 'a' }, EMPTY],
    [{ S: null }, EMPTY],
    [{ M: { a: {} } }, EMPTY],
    [{ L: [{}] }, EMPTY],
    [{ L: [null] }, EMPTY],
    [{ S: 'a', N: '1' }, MULTIPLE],
    [{ S: 'a', BOOL: true }, MULTIPLE],
    [{ L: [], M: {} }, MULTIPLE],
    [{ NULL: false }, 'One or more parameter values were invalid: Null attribute value types must have the value of true'],
    [{ NULL: 'no' }, 'One or more parameter values were invalid: Null attribute value types must have the value of true'],
    [{ SS: [] }, 'One or more parameter values were invalid: An string set  may not be empty'],
    [{ NS: [] }, 'One or more parameter values were invalid: An number set  may not be empty'],
    [{ BS: [] }, 'One or more parameter values were invalid: Binary sets should not be empty'],
    [{ SS: ['a', 'a'] }, 'One or more parameter values were invalid: Input collection [a, a] contains duplicates.'],
    [{ SS: ['a', 'b', 'a'] }, 'One or more parameter values were invalid: Input collection [a, b, a] contains duplicates.'],
    [{ BS: ['Yg==', 'Yg=='] }, 'One or more parameter values were invalid: Input collection [Yg==, Yg==]of type BS contains duplicates.'],
    [{ NS: ['1', '1'] }, 'Input collection contains duplicates'],
    [{ NS: ['1', '1.0'] }, 'Input collection contains duplicates'],
    [{ NS: ['1', ''] }, 'The parameter cannot be converted to a numeric value'],
    [{ NS: ['1', 'b'] }, 'The parameter cannot be converted to a numeric value: b'],
    [{ N: '' }, 'The parameter cannot be converted to a numeric value'],
    [{ S: 'a', N: '' }, 'The parameter cannot be converted to a numeric value'],
    [{ S: 'a', N: 'b' }, 'The parameter cannot be converted to a numeric value: b'],
    [{ N: '1e126' }, 'Number overflow. Attempting to store a number with magnitude larger than supported range'],
    [{ N: '1e-131' }, 'Number underflow. Attempting to store a number with magnitude smaller than supported range'],
    [{ N: '123456789012345678901234567890123456789' }, 'Attempting to store more than 38 significant digits in a Number'],
    [{ M: { a: { L: [{ N: 'x' }] } } }, 'The parameter cannot be converted to a numeric value: x'],
  ])('%j: %s', (value, message) => {
    expect(errorOf(() => validateAttributeValue(value))).toEqual(validation(message));
  });

  it('rejects null set elements', () => {
    expect(errorOf(() => validateAttributeValue({ NS: ['1', null] }))).toEqual(
      validation('The parameter cannot be converted to a numeric value'),
    );
    expect(errorOf(() => validateAttributeValue({ SS: ['a', null] }))?.type).toBe('ValidationException');
    expect(errorOf(() => validateAttributeValue({ BS: [null] }))?.type).toBe('ValidationException');
  });

  it('reports a null value at a named place as a missing member', () => {
    expect(errorOf(() => validateAttributeValue(null, 'expressionAttributeValues.:v'))).toEqual(
      validation("1 validation error detected: Value null at 'expressionAttributeValues.:v' failed to satisfy constraint: Member must not be null"),
    );
    expect(errorOf(() => validateAttributeValue(null))).toEqual(validation(EMPTY));
  });

  it('accepts 32 levels of nesting and rejects 33, in maps and lists', () => {
    expect(validateAttributeValue(nested(31, inMap))).toEqual(nested(31, inMap));
    expect(validateAttributeValue(nested(31, inList))).toEqual(nested(31, inList));
    expect(errorOf(() => validateAttributeValue(nested(32, inMap)))).toEqual(validation(NESTING));
    expect(errorOf(() => validateAttributeValue(nested(32, inList)))).toEqual(validation(NESTING));
    const alternating = (v: AttributeValue): AttributeValue => ('L' in v ? inMap(v) : inList(v));
    expect(validateItem({ a: nested(31, alternating) })).toEqual({ a: nested(31, alternating) });
    expect(errorOf(() => validateItem({ a: nested(32, alternating) }))).toEqual(validation(NESTING));
    // An empty container at level 32 holds nothing beyond it.
    let v: AttributeValue = { M: {} };
    for (let i = 0; i < 31; i++) v = inList(v);
    expect(validateAttributeValue(v)).toEqual(v);
  });
});

describe('validateAttributeValue: normalized copies', () => {
  it('accepts every valid value, keeps it equal, and is idempotent', () => {
    fc.assert(
      fc.property(attributeValue, (value) => {
        const validated = validateAttributeValue(JSON.parse(JSON.stringify(value)));
        expect(attributeValuesEqual(validated, value)).toBe(true);
        expect(validateAttributeValue(validated)).toEqual(validated);
      }),
      { numRuns: 300 },
    );
  });

  it.each<[unknown, AttributeValue]>([
    [{ S: '' }, { S: '' }],
    [{ S: 'x', Unknown: 1 }, { S: 'x' }],
    [{ S: 'x', N: null }, { S: 'x' }],
    [{ N: '1.0' }, { N: '1' }],
    [{ N: '-0' }, { N: '0' }],
    [{ N: '1E2' }, { N: '100' }],
    [{ B: '' }, { B: '' }],
    [{ B: 'AP8=' }, { B: 'AP8=' }],
    [{ BOOL: false }, { BOOL: false }],
    [{ BOOL: 'TRUE' }, { BOOL: true }],
    [{ BOOL: 'no' }, { BOOL: false }],
    [{ NULL: true }, { NULL: true }],
    [{ NULL: 'yes' }, { NULL: true }],
    [{ SS: ['b', 'a', ''] }, { SS: ['b', 'a', ''] }],
    [{ NS: ['1.50', '2E1'] }, { NS: ['1.5', '20'] }],
    [{ BS: ['AA==', 'AQ=='] }, { BS: ['AA==', 'AQ=='] }],
    [{ L: [] }, { L: [] }],
    [{ M: {} }, { M: {} }],
    [{ M: { '': { N: '01' } } }, { M: { '': { N: '1' } } }],
    [{ L: [{ N: '1.0' }, { M: { a: { NS: ['3.0'] } } }] }, { L: [{ N: '1' }, { M: { a: { NS: ['3'] } } }] }],
  ])('%j → %j', (value, expected) => {
    expect(validateAttributeValue(value)).toEqual(expected);
  });

  it('does not modify its input', () => {
    const input = { M: { a: { N: '1.0' } } };
    validateAttributeValue(input);
    expect(input).toEqual({ M: { a: { N: '1.0' } } });
  });

  it('keeps a member named __proto__ as an ordinary member', () => {
    const value = validateAttributeValue(JSON.parse('{"M":{"__proto__":{"S":"x"}}}'));
    expect(Object.getPrototypeOf('M' in value ? value.M : null)).toBe(Object.prototype);
    expect(Object.keys('M' in value ? value.M : {})).toEqual(['__proto__']);
  });
});

describe('validateItem', () => {
  it('validates and normalizes every attribute', () => {
    expect(validateItem({ a: { S: 'x' }, b: { N: '2.50' } })).toEqual({ a: { S: 'x' }, b: { N: '2.5' } });
    expect(validateItem({})).toEqual({});
    const item = validateItem(JSON.parse('{"__proto__":{"N":"1"}}'));
    expect(Object.keys(item)).toEqual(['__proto__']);
  });

  it('rejects maps of the wrong shape, null and empty attribute names', () => {
    expect(errorOf(() => validateItem([]))).toEqual(
      serialization('Unrecognized collection type java.util.Map<java.lang.String, com.amazonaws.dynamodb.v20120810.AttributeValue>'),
    );
    expect(errorOf(() => validateItem('x'))).toEqual(serialization('Unexpected field type'));
    expect(errorOf(() => validateItem(null))).toEqual(
      validation("1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null"),
    );
    expect(errorOf(() => validateItem(undefined, 'key'))?.message).toContain("Value null at 'key'");
    expect(errorOf(() => validateItem({ '': { S: 'x' } }))?.type).toBe('ValidationException');
    expect(errorOf(() => validateItem({ a: { S: 'x' }, b: {} }))).toEqual(validation(EMPTY));
  });
});

const hashOnly = { hashKey: { name: 'id', type: 'S' as const } };
const composite = { hashKey: { name: 'pk', type: 'N' as const }, rangeKey: { name: 'sk', type: 'B' as const } };
const MISMATCH = 'The provided key element does not match the schema';

describe('validateKey', () => {
  it('returns the normalized key', () => {
    expect(validateKey({ id: { S: 'a' } }, hashOnly)).toEqual({ id: { S: 'a' } });
    expect(validateKey({ pk: { N: '1.0' }, sk: { B: 'AQ==' } }, composite)).toEqual({ pk: { N: '1' }, sk: { B: 'AQ==' } });
  });

  it.each<[unknown]>([
    [{}],
    [{ other: { S: 'a' } }],
    [{ id: { N: '1' } }],
    [{ id: { B: 'AA==' } }],
    [{ id: { BOOL: true } }],
    [{ id: { NULL: true } }],
    [{ id: { SS: ['a'] } }],
    [{ id: { M: {} } }],
    [{ id: { L: [] } }],
    [{ id: { S: 'a' }, extra: { S: 'b' } }],
  ])('rejects %j for a hash key S', (key) => {
    expect(errorOf(() => validateKey(key, hashOnly))).toEqual(validation(MISMATCH));
  });

  it('rejects a composite key with a missing or mistyped part', () => {
    expect(errorOf(() => validateKey({ pk: { N: '1' } }, composite))).toEqual(validation(MISMATCH));
    expect(errorOf(() => validateKey({ pk: { N: '1' }, sk: { S: 'x' } }, composite))).toEqual(validation(MISMATCH));
    expect(errorOf(() => validateKey({ pk: { N: '1' }, other: { B: 'AA==' } }, composite))).toEqual(validation(MISMATCH));
  });

  it('rejects empty string and binary key values', () => {
    expect(errorOf(() => validateKey({ id: { S: '' } }, hashOnly))).toEqual(
      validation('One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: id'),
    );
    expect(errorOf(() => validateKey({ pk: { N: '1' }, sk: { B: '' } }, composite))).toEqual(
      validation('One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty binary value. Key: sk'),
    );
  });

  it('limits the partition key to 2048 bytes and the sort key to 1024 bytes', () => {
    const range = { hashKey: { name: 'h', type: 'S' as const }, rangeKey: { name: 'r', type: 'S' as const } };
    expect(validateKey({ h: { S: 'a'.repeat(2048) }, r: { S: 'b'.repeat(1024) } }, range)).toBeDefined();
    expect(errorOf(() => validateKey({ h: { S: 'a'.repeat(2049) }, r: { S: 'b' } }, range))).toEqual(
      validation('One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes'),
    );
    // Bytes, not characters: 683 three-byte characters are 2049 bytes.
    expect(errorOf(() => validateKey({ h: { S: '€'.repeat(683) }, r: { S: 'b' } }, range))?.message).toContain('of2048 bytes');
    expect(errorOf(() => validateKey({ h: { S: 'a' }, r: { S: 'b'.repeat(1025) } }, range))).toEqual(
      validation('One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes'),
    );
    const binary = Buffer.alloc(1025).toString('base64');
    expect(errorOf(() => validateKey({ pk: { N: '1' }, sk: { B: binary } }, composite))?.message).toContain('1024 bytes');
  });

  it('validates the attribute values first', () => {
    expect(errorOf(() => validateKey({ id: { S: 5 } }, hashOnly))).toEqual(serialization('NUMBER_VALUE cannot be converted to String'));
    expect(errorOf(() => validateKey({ pk: { N: 'x' }, sk: { B: 'AA==' } }, composite))?.message).toBe(
      'The parameter cannot be converted to a numeric value: x',
    );
  });
});

const table: TableSchema = {
  name: 't',
  tableId: 1,
  hashKey: { name: 'pk', type: 'S' },
  rangeKey: { name: 'sk', type: 'N' },
  indexes: [
    {
      name: 'byEmail',
      kind: 'GSI',
      indexId: 2,
      hashKey: { name: 'email', type: 'S' },
      rangeKey: { name: 'pk', type: 'S' },
      projection: { type: 'ALL' },
    },
    {
      name: 'byScore',
      kind: 'LSI',
      indexId: 3,
      hashKey: { name: 'pk', type: 'S' },
      rangeKey: { name: 'score', type: 'B' },
      projection: { type: 'KEYS_ONLY' },
    },
  ],
};

describe('validateItemKeyAttributes', () => {
  it('accepts items with or without index key attributes', () => {
    expect(() => validateItemKeyAttributes({ pk: { S: 'a' }, sk: { N: '1' } }, table)).not.toThrow();
    expect(() =>
      validateItemKeyAttributes({ pk: { S: 'a' }, sk: { N: '1' }, email: { S: 'e' }, score: { B: 'AA==' } }, table),
    ).not.toThrow();
    const largest = { email: { S: 'e'.repeat(2048) }, score: { B: Buffer.alloc(1024).toString('base64') } };
    expect(() => validateItemKeyAttributes({ pk: { S: 'a' }, sk: { N: '1' }, ...largest }, table)).not.toThrow();
  });

  it.each<[Record<string, AttributeValue>, string]>([
    [{ sk: { N: '1' } }, 'One or more parameter values were invalid: Missing the key pk in the item'],
    [{ pk: { S: 'a' } }, 'One or more parameter values were invalid: Missing the key sk in the item'],
    [{ pk: { N: '1' }, sk: { N: '1' } }, 'One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N'],
    [{ pk: { S: 'a' }, sk: { SS: ['1'] } }, 'One or more parameter values were invalid: Type mismatch for key sk expected: N actual: SS'],
    [
      { pk: { S: '' }, sk: { N: '1' } },
      'One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk',
    ],
    [
      { pk: { S: 'x'.repeat(2049) }, sk: { N: '1' } },
      'One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, email: { N: '5' } },
      'One or more parameter values were invalid: Type mismatch for Index Key email Expected: S Actual: N IndexName: byEmail',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, score: { S: 'high' } },
      'One or more parameter values were invalid: Type mismatch for Index Key score Expected: B Actual: S IndexName: byScore',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, email: { S: '' } },
      'One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: byEmail, IndexKey: email',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, score: { B: '' } },
      'One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty binary value. IndexName: byScore, IndexKey: score',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, email: { S: 'e'.repeat(2049) } },
      'One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes',
    ],
    [
      { pk: { S: 'a' }, sk: { N: '1' }, score: { B: Buffer.alloc(1025).toString('base64') } },
      'One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes',
    ],
  ])('%j: %s', (item, message) => {
    expect(errorOf(() => validateItemKeyAttributes(item, table))).toEqual(validation(message));
  });
});

describe('extractKey', () => {
  it('takes the key attributes of an item', () => {
    const item = { pk: { S: 'a' }, sk: { N: '1' }, other: { S: 'x' } };
    expect(extractKey(item, table)).toEqual({ pk: { S: 'a' }, sk: { N: '1' } });
    expect(extractKey(item, { hashKey: table.hashKey })).toEqual({ pk: { S: 'a' } });
    expect(extractKey({ ...item, email: { S: 'e' } }, table.indexes[0])).toEqual({ email: { S: 'e' }, pk: { S: 'a' } });
  });

  it('fails when the item lacks a key attribute', () => {
    expect(errorOf(() => extractKey({ pk: { S: 'a' } }, table))).toEqual(validation(MISMATCH));
  });
});
