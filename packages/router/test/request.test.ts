import { DynamoDbError } from '@shoal/model';
import { describe, expect, it } from 'vitest';
import {
  Constraints,
  memberPath,
  optionalBoolean,
  optionalInteger,
  optionalString,
  optionalStringList,
  optionalStringMap,
  optionalStructList,
  requireTableName,
} from '../src/request.ts';

function thrown(work: () => unknown): DynamoDbError {
  try {
    work();
  } catch (error) {
    if (error instanceof DynamoDbError) return error;
    throw error;
  }
  throw new Error('expected a DynamoDbError');
}

describe('member readers', () => {
  it('read present members and treat absent and null alike', () => {
    expect(optionalString({ A: 'x' }, 'A')).toBe('x');
    expect(optionalString({}, 'A')).toBeUndefined();
    expect(optionalString({ A: null }, 'A')).toBeUndefined();
    expect(optionalBoolean({ A: false }, 'A')).toBe(false);
    expect(optionalStringMap({ A: { '#a': 'b' } }, 'A')).toEqual({ '#a': 'b' });
  });

  it('truncate fractional integers, as DynamoDB does', () => {
    expect(optionalInteger({ Limit: 3.9 }, 'Limit')).toBe(3);
  });

  it('do not read inherited properties', () => {
    expect(optionalString(JSON.parse('{"__proto__": {"A": "x"}}') as Record<string, unknown>, 'A')).toBeUndefined();
    expect(optionalString({}, 'toString')).toBeUndefined();
  });

  it.each<[string, () => unknown, string]>([
    ['a number for a string', () => optionalString({ A: 5 }, 'A'), 'class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String'],
    ['a boolean for a string', () => optionalString({ A: true }, 'A'), 'class java.lang.Boolean can not be converted to an String'],
    ['a string for an integer', () => optionalInteger({ A: '5' }, 'A'), 'class java.lang.String can not be converted to an Integer'],
    ['a list for a boolean', () => optionalBoolean({ A: [] }, 'A'), 'class java.util.ArrayList can not be converted to an Boolean'],
    ['an object for a list', () => optionalStructList({ A: {} }, 'A'), 'Start of structure or map found where not expected'],
    ['a list element that is not a structure', () => optionalStructList({ A: ['x'] }, 'A'), 'Unexpected value type in payload'],
    ['a null list element', () => optionalStringList({ A: ['a', null] }, 'A'), 'Unexpected null value where an String was expected'],
    ['a map value that is not a string', () => optionalStringMap({ A: { k: 1 } }, 'A'), 'class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String'],
  ])('reject %s with a SerializationException', (_case, read, message) => {
    const error = thrown(read);
    expect(error.type).toBe('SerializationException');
    expect(error.message).toBe(message);
  });
});

describe('Constraints', () => {
  it('passes when nothing is wrong', () => {
    const constraints = new Constraints();
    constraints.tableName('tableName', 'Users');
    constraints.oneOf('select', 'COUNT', ['COUNT', 'ALL_ATTRIBUTES']);
    constraints.range('limit', 1, 1);
    constraints.length('keys', [1], 1, 100);
    expect(constraints.count).toBe(0);
    expect(() => constraints.throwIfAny()).not.toThrow();
  });

  it("collects violations into DynamoDB's one message", () => {
    const constraints = new Constraints();
    constraints.tableName('tableName', 'a b');
    constraints.range('limit', 0, 1);
    constraints.oneOf('select', 'ALL', ['COUNT', 'ALL_ATTRIBUTES']);
    constraints.notNull('key', undefined);
    constraints.length('attributesToGet', ['a', 'b'], 0, 1);
    const error = thrown(() => constraints.throwIfAny());
    expect(error.type).toBe('ValidationException');
    expect(error.message).toBe(
      '5 validation errors detected: ' +
        "Value 'a b' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; " +
        "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1; " +
        "Value 'ALL' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [COUNT, ALL_ATTRIBUTES]; " +
        "Value null at 'key' failed to satisfy constraint: Member must not be null; " +
        "Value '[a, b]' at 'attributesToGet' failed to satisfy constraint: Member must have length less than or equal to 1",
    );
  });

  it('reports at most ten violations', () => {
    const constraints = new Constraints();
    for (let i = 0; i < 15; i++) constraints.notNull(`m${i}`, undefined);
    expect(constraints.count).toBe(10);
    expect(thrown(() => constraints.throwIfAny()).message).toMatch(/^10 validation errors detected: /);
  });

  it('counts the entries of a map for its length', () => {
    const constraints = new Constraints();
    constraints.length('requestItems', {}, 1);
    expect(thrown(() => constraints.throwIfAny()).message).toBe(
      "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
  });
});

describe('requireTableName', () => {
  it('returns a valid name', () => {
    expect(requireTableName({ TableName: 'a.b-c_1' })).toBe('a.b-c_1');
  });

  it('reports a missing name and a bad one', () => {
    expect(thrown(() => requireTableName({})).message).toBe(
      "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null",
    );
    // An empty name breaks only the minimum length of 1 (captured from DynamoDB: paritysuite/dynamodb-conformance).
    expect(thrown(() => requireTableName({ TableName: '' })).message).toBe(
      "1 validation error detected: Value '' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
    expect(thrown(() => requireTableName({ TableName: 'ab' })).message).toBe(
      "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3",
    );
  });

  it('takes a table ARN for its name', () => {
    expect(requireTableName({ TableName: 'arn:aws:dynamodb:eu-west-1:123456789012:table/a.b-c_1' })).toBe('a.b-c_1');
    // Its name part must still be a table name.
    expect(thrown(() => requireTableName({ TableName: 'arn:aws:dynamodb:eu-west-1:123456789012:table/x!' })).name).toBe('ValidationException');
  });
});

describe('memberPath', () => {
  it('lower-cases the first letter of each segment', () => {
    expect(memberPath('KeySchema', 1, 'member', 'AttributeName')).toBe('keySchema.1.member.attributeName');
  });
});
