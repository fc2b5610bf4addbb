import { describe, expect, it } from 'vitest';
import { compileExpressions, type Item } from '../../src/index.ts';
import { request, validationMessage } from './helpers.ts';

const ITEM: Item = {
  pk: { S: 'k' },
  a: { S: 'a' },
  l: { L: [{ S: 'x' }, { S: 'y' }, { M: { p: { N: '1' }, q: { N: '2' } } }] },
  m: { M: { b: { S: 'b' }, c: { M: { d: { S: 'd' } } }, e: { L: [{ N: '0' }] } } },
  s: { S: 'reserved-word attribute' },
};

function project(projection: string, item: Item = ITEM): Item {
  const compiled = compileExpressions(request({ projection })).projection;
  if (compiled === undefined) throw new Error('no projection compiled');
  return compiled.apply(item);
}

describe('projection', () => {
  it.each<[string, Item]>([
    ['a', { a: { S: 'a' } }],
    ['a, pk', { a: { S: 'a' }, pk: { S: 'k' } }],
    ['nothing', {}],
    ['a, nothing', { a: { S: 'a' } }],
    ['m.b', { m: { M: { b: { S: 'b' } } } }],
    ['m.b, m.c.d', { m: { M: { b: { S: 'b' }, c: { M: { d: { S: 'd' } } } } } }],
    ['m.nothing', {}],
    ['m.b.c', {}],
    ['l[2]', { l: { L: [{ M: { p: { N: '1' }, q: { N: '2' } } }] } }],
    ['l[2], l[0]', { l: { L: [{ S: 'x' }, { M: { p: { N: '1' }, q: { N: '2' } } }] } }],
    ['l[2].q', { l: { L: [{ M: { q: { N: '2' } } }] } }],
    ['l[5]', {}],
    ['l[0].x', {}],
    ['m.e[0], a', { m: { M: { e: { L: [{ N: '0' }] } } }, a: { S: 'a' } }],
    ['#s', { s: { S: 'reserved-word attribute' } }],
  ])('%s', (projection, expected) => {
    expect(project(projection)).toEqual(expected);
  });

  it('exposes its paths and top-level attributes', () => {
    const compiled = compileExpressions(request({ projection: 'm.b, l[1], #s, m.c' })).projection;
    expect(compiled?.paths).toEqual([['m', 'b'], ['l', 1], ['s'], ['m', 'c']]);
    expect(compiled?.attributes).toEqual(['m', 'l', 's']);
  });
});

describe('key conditions', () => {
  function resolve(keyCondition: string, hash: string, range?: string) {
    const compiled = compileExpressions(request({ keyCondition })).keyCondition;
    if (compiled === undefined) throw new Error('no key condition compiled');
    return compiled.resolve(hash, range);
  }

  it.each([
    ['pk = :s', undefined],
    ['pk = :s AND sk = :a', { op: 'EQ', values: [{ S: 'a' }] }],
    ['pk = :s AND sk < :a', { op: 'LT', values: [{ S: 'a' }] }],
    ['pk = :s AND sk <= :a', { op: 'LE', values: [{ S: 'a' }] }],
    ['pk = :s AND sk > :a', { op: 'GT', values: [{ S: 'a' }] }],
    ['pk = :s AND sk >= :a', { op: 'GE', values: [{ S: 'a' }] }],
    ['pk = :s AND :a < sk', { op: 'GT', values: [{ S: 'a' }] }],
    ['pk = :s AND :a >= sk', { op: 'LE', values: [{ S: 'a' }] }],
    ['sk BETWEEN :n1 AND :n2 AND pk = :s', { op: 'BETWEEN', values: [{ N: '1' }, { N: '2' }] }],
    ['pk = :s AND begins_with(sk, :he)', { op: 'BEGINS_WITH', values: [{ S: 'he' }] }],
    ['(pk = :s) AND (begins_with(#s, :he))', { op: 'BEGINS_WITH', values: [{ S: 'he' }] }],
  ])('%s', (keyCondition, sortCondition) => {
    const range = keyCondition.includes('#s') ? 's' : 'sk';
    const resolved = resolve(keyCondition, 'pk', range);
    expect(resolved.hashValue).toEqual({ S: 'hello' });
    expect(resolved.sortCondition).toEqual(sortCondition);
  });

  it('accepts the hash key on the right', () => {
    expect(resolve(':s = pk', 'pk').hashValue).toEqual({ S: 'hello' });
  });

  it.each([
    ['sk = :s', 'pk', 'sk', 'Query condition missed key schema element: pk'],
    ['pk = :s AND notkey = :a', 'pk', 'sk', 'Query condition missed key schema element: sk'],
    ['pk = :s AND sk = :a', 'pk', undefined, 'Query key condition not supported'],
    // paritysuite/dynamodb-conformance queryKeyConditionOperands (captured from DynamoDB)
    ['pk = :s AND sk > :a AND extra = :n1', 'pk', 'sk', 'The number of query conditions (3) exceeds the number of key attributes defined in the schema (2)'],
    ['pk > :s', 'pk', 'sk', 'Query key condition not supported'],
    ['begins_with(pk, :s)', 'pk', undefined, 'Query key condition not supported'],
  ])('%s on (%s, %s) fails', (keyCondition, hash, range, message) => {
    expect(validationMessage(() => resolve(keyCondition, hash, range))).toBe(message);
  });

  it('checks value types when given the key attribute types', () => {
    const compiled = compileExpressions(request({ keyCondition: 'pk = :s AND sk > :n1' })).keyCondition;
    expect(compiled?.resolve({ name: 'pk', type: 'S' }, { name: 'sk', type: 'N' }).sortCondition).toEqual({
      op: 'GT',
      values: [{ N: '1' }],
    });
    expect(validationMessage(() => compiled?.resolve({ name: 'pk', type: 'N' }, { name: 'sk', type: 'N' }))).toBe(
      'One or more parameter values were invalid: Condition parameter type does not match schema type',
    );
    expect(validationMessage(() => compiled?.resolve({ name: 'pk', type: 'S' }, { name: 'sk', type: 'S' }))).toBe(
      'One or more parameter values were invalid: Condition parameter type does not match schema type',
    );
  });
});
