import { compileExpressions, DynamoDbError } from '@shoal/model';
import { describe, expect, it } from 'vitest';
import { readItemExpressions, type ExpressionParameters } from '../src/item-expressions.ts';

const GET: ExpressionParameters = { expressions: ['ProjectionExpression'], legacy: ['AttributesToGet'] };
const key = { TableName: 'things', Key: { pk: { S: 'a' } }, ConsistentRead: true };

describe('readItemExpressions', () => {
  it('answers a request without expression parameters with nothing to apply, as compiling nothing would', () => {
    const read = readItemExpressions(key, GET);
    expect(read).toEqual({ strings: {}, compiled: compileExpressions({}) });
    expect(readItemExpressions({ ...key, ProjectionExpression: null }, GET)).toEqual(read);
  });

  it('still checks placeholder maps that come without an expression', () => {
    expect(() => readItemExpressions({ ...key, ExpressionAttributeValues: { ':v': { S: 'x' } } }, GET)).toThrow(DynamoDbError);
  });

  it('still compiles an expression and translates a legacy parameter', () => {
    const projected = readItemExpressions({ ...key, ProjectionExpression: '#n', ExpressionAttributeNames: { '#n': 'name' } }, GET);
    expect(projected.strings).toEqual({ projection: '#n', names: { '#n': 'name' } });
    expect(projected.compiled.projection?.apply({ pk: { S: 'a' }, name: { S: 'n' }, other: { N: '1' } })).toEqual({ name: { S: 'n' } });
    const legacy = readItemExpressions({ ...key, AttributesToGet: ['other'] }, GET);
    expect(legacy.compiled.projection?.apply({ pk: { S: 'a' }, name: { S: 'n' }, other: { N: '1' } })).toEqual({ other: { N: '1' } });
  });
});
