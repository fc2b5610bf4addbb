import { describe, expect, it } from 'vitest';
import { compileExpressions, legacyToExpressions, rejectMixedParameters, type Item } from '../../src/index.ts';
import { request, validationMessage } from './helpers.ts';

const ITEMS: (Item | undefined)[] = [
  undefined,
  {},
  { a: { S: 'hello' } },
  { a: { S: 'abc' }, b: { N: '5' } },
  { a: { N: '3' }, b: { N: '10' } },
  { a: { SS: ['x', 'hello'] } },
  { a: { L: [{ S: 'hello' }] }, b: { N: '1' } },
  { a: { B: 'AQID' } },
];

/** [legacy condition on attribute a (and b), equivalent expression] */
const CONDITIONS: [Record<string, unknown>, string][] = [
  [{ a: { Value: { S: 'hello' } } }, 'a = :s'],
  [{ a: { Exists: true, Value: { S: 'hello' } } }, 'a = :s'],
  [{ a: { Exists: false } }, 'attribute_not_exists(a)'],
  [{ a: { ComparisonOperator: 'EQ', AttributeValueList: [{ S: 'hello' }] } }, 'a = :s'],
  [{ a: { ComparisonOperator: 'EQ', Value: { S: 'hello' } } }, 'a = :s'],
  [{ a: { ComparisonOperator: 'NE', AttributeValueList: [{ S: 'hello' }] } }, 'a <> :s'],
  [{ a: { ComparisonOperator: 'LT', AttributeValueList: [{ S: 'he' }] } }, 'a < :he'],
  [{ a: { ComparisonOperator: 'LE', AttributeValueList: [{ N: '5' }] } }, 'a <= :n5'],
  [{ a: { ComparisonOperator: 'GT', AttributeValueList: [{ N: '1' }] } }, 'a > :n1'],
  [{ a: { ComparisonOperator: 'GE', AttributeValueList: [{ S: 'he' }] } }, 'a >= :he'],
  [{ a: { ComparisonOperator: 'NULL' } }, 'attribute_not_exists(a)'],
  [{ a: { ComparisonOperator: 'NOT_NULL' } }, 'attribute_exists(a)'],
  [{ a: { ComparisonOperator: 'CONTAINS', AttributeValueList: [{ S: 'hello' }] } }, 'contains(a, :s)'],
  [{ a: { ComparisonOperator: 'NOT_CONTAINS', AttributeValueList: [{ S: 'hello' }] } }, 'NOT contains(a, :s)'],
  [{ a: { ComparisonOperator: 'BEGINS_WITH', AttributeValueList: [{ S: 'he' }] } }, 'begins_with(a, :he)'],
  [{ a: { ComparisonOperator: 'IN', AttributeValueList: [{ S: 'abc' }, { S: 'hello' }] } }, 'a IN (:abc, :s)'],
  [{ a: { ComparisonOperator: 'BETWEEN', AttributeValueList: [{ N: '1' }, { N: '5' }] } }, 'a BETWEEN :n1 AND :n5'],
  [
    { a: { ComparisonOperator: 'NOT_NULL' }, b: { ComparisonOperator: 'GT', AttributeValueList: [{ N: '2' }] } },
    'attribute_exists(a) AND b > :n2',
  ],
];

function legacyEvaluate(expected: Record<string, unknown>, conditionalOperator: string | undefined, item: Item | undefined) {
  const translated = legacyToExpressions({ Expected: expected, ConditionalOperator: conditionalOperator });
  return compileExpressions(translated).condition?.evaluate(item);
}

describe('legacy conditions', () => {
  const values = { ':abc': { S: 'abc' } };
  it.each(CONDITIONS)('%j ≡ %s', (expected, expression) => {
    const req = request({ condition: expression });
    if (expression.includes(':abc')) req.values = { ...req.values, ...values };
    const equivalent = compileExpressions(req).condition;
    for (const item of ITEMS) {
      expect(legacyEvaluate(expected, undefined, item), JSON.stringify(item)).toBe(equivalent?.evaluate(item));
    }
  });

  it('joins conditions with ConditionalOperator', () => {
    const expected = { a: { ComparisonOperator: 'NULL' }, b: { Value: { N: '5' } } };
    const or = compileExpressions(request({ condition: 'attribute_not_exists(a) OR b = :n5' })).condition;
    for (const item of ITEMS) expect(legacyEvaluate(expected, 'OR', item)).toBe(or?.evaluate(item));
  });

  it('translates filters and uses the same rules', () => {
    const translated = legacyToExpressions({
      ScanFilter: { a: { ComparisonOperator: 'BEGINS_WITH', AttributeValueList: [{ S: 'ab' }] } },
    });
    expect(translated).toEqual({
      filter: 'begins_with(#legacy0, :legacy0)',
      names: { '#legacy0': 'a' },
      values: { ':legacy0': { S: 'ab' } },
    });
    const query = legacyToExpressions({ QueryFilter: { reserved: { ComparisonOperator: 'NOT_NULL' } } });
    expect(query.filter).toBe('attribute_exists(#legacy0)');
  });

  it.each<[Record<string, unknown>, string]>([
    [
      { a: { Value: { S: 'x' }, AttributeValueList: [{ S: 'x' }] } },
      'One or more parameter values were invalid: Value and AttributeValueList cannot be used together for Attribute: a',
    ],
    [
      { a: { Exists: true, ComparisonOperator: 'NULL' } },
      'One or more parameter values were invalid: Exists and ComparisonOperator cannot be used together for Attribute: a',
    ],
    [
      { a: { ComparisonOperator: 'EQ' } },
      'One or more parameter values were invalid: Value or AttributeValueList must be used with ComparisonOperator: EQ for Attribute: a',
    ],
    [
      { a: { AttributeValueList: [{ S: 'x' }] } },
      'One or more parameter values were invalid: AttributeValueList can only be used with a ComparisonOperator for Attribute: a',
    ],
    [{ a: {} }, 'One or more parameter values were invalid: Value must be provided when Exists is null for Attribute: a'],
    [{ a: { Exists: true } }, 'One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: a'],
    [
      { a: { Exists: false, Value: { S: 'x' } } },
      'One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: a',
    ],
    [
      { a: { ComparisonOperator: 'EQ', AttributeValueList: [{ S: 'x' }, { S: 'y' }] } },
      'One or more parameter values were invalid: Invalid number of argument(s) for the EQ ComparisonOperator',
    ],
    [
      { a: { ComparisonOperator: 'NULL', AttributeValueList: [{ S: 'x' }] } },
      'One or more parameter values were invalid: Invalid number of argument(s) for the NULL ComparisonOperator',
    ],
    [
      { a: { ComparisonOperator: 'BETWEEN', AttributeValueList: [{ N: '1' }] } },
      'One or more parameter values were invalid: Invalid number of argument(s) for the BETWEEN ComparisonOperator',
    ],
    [
      { a: { ComparisonOperator: 'IN', AttributeValueList: [] } },
      'One or more parameter values were invalid: Invalid number of argument(s) for the IN ComparisonOperator',
    ],
    [
      { a: { ComparisonOperator: 'IN', AttributeValueList: [{ S: 'x' }, { N: '1' }] } },
      'One or more parameter values were invalid: AttributeValues inside AttributeValueList must be of same type',
    ],
    [
      { a: { ComparisonOperator: 'LT', AttributeValueList: [{ SS: ['x'] }] } },
      'One or more parameter values were invalid: ComparisonOperator LT is not valid for SS AttributeValue type',
    ],
    [
      { a: { ComparisonOperator: 'BEGINS_WITH', AttributeValueList: [{ N: '1' }] } },
      'One or more parameter values were invalid: ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type',
    ],
    [
      { a: { ComparisonOperator: 'BETWEEN', AttributeValueList: [{ N: '5' }, { N: '1' }] } },
      'The BETWEEN condition was provided a range where the lower bound is greater than the upper bound',
    ],
  ])('%j fails', (expected, message) => {
    expect(validationMessage(() => legacyToExpressions({ Expected: expected }))).toBe(message);
  });
});

describe('legacy key conditions', () => {
  it('translate to a key condition expression', () => {
    const translated = legacyToExpressions({
      KeyConditions: {
        pk: { ComparisonOperator: 'EQ', AttributeValueList: [{ S: 'p' }] },
        sk: { ComparisonOperator: 'BETWEEN', AttributeValueList: [{ N: '1' }, { N: '9' }] },
      },
    });
    const resolved = compileExpressions(translated).keyCondition?.resolve('pk', 'sk');
    expect(resolved).toEqual({ hashValue: { S: 'p' }, sortCondition: { op: 'BETWEEN', values: [{ N: '1' }, { N: '9' }] } });
  });

  it('refuse operators no index can serve and wrong condition counts', () => {
    expect(
      validationMessage(() =>
        legacyToExpressions({ KeyConditions: { pk: { ComparisonOperator: 'NE', AttributeValueList: [{ S: 'p' }] } } }),
      ),
    ).toBe('Attempted conditional constraint is not an indexable operation');
    expect(validationMessage(() => legacyToExpressions({ KeyConditions: {} }))).toBe('Conditions can be of length 1 or 2 only');
  });
});

describe('legacy attribute updates', () => {
  const existing: Item = { pk: { S: 'k' }, n: { N: '1' }, ss: { SS: ['a'] }, l: { L: [{ S: 'x' }] }, gone: { S: 'g' } };

  it('translate PUT, ADD and DELETE', () => {
    const translated = legacyToExpressions({
      AttributeUpdates: {
        put: { Value: { S: 'v' } },
        n: { Action: 'ADD', Value: { N: '2' } },
        ss: { Action: 'ADD', Value: { SS: ['b'] } },
        l: { Action: 'ADD', Value: { L: [{ S: 'y' }] } },
        fresh: { Action: 'ADD', Value: { L: [{ S: 'z' }] } },
        gone: { Action: 'DELETE' },
        ss2: { Action: 'DELETE', Value: { SS: ['q'] } },
      },
    });
    const after = compileExpressions(translated).update?.apply(existing, { pk: { S: 'k' } });
    expect(after).toEqual({
      pk: { S: 'k' },
      put: { S: 'v' },
      n: { N: '3' },
      ss: { SS: ['a', 'b'] },
      l: { L: [{ S: 'x' }, { S: 'y' }] },
      fresh: { L: [{ S: 'z' }] },
    });
  });

  it.each<[Record<string, unknown>, string]>([
    [{ a: { Action: 'PUT' } }, 'One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified'],
    [{ a: { Action: 'ADD' } }, 'One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified'],
    [{ a: { Action: 'ADD', Value: { S: 'x' } } }, 'One or more parameter values were invalid: ADD action is not supported for the type S'],
    [{ a: { Action: 'DELETE', Value: { N: '1' } } }, 'One or more parameter values were invalid: DELETE action with value is not supported for the type N'],
  ])('%j fails', (updates, message) => {
    expect(validationMessage(() => legacyToExpressions({ AttributeUpdates: updates }))).toBe(message);
  });
});

describe('AttributesToGet', () => {
  it('becomes a projection', () => {
    const translated = legacyToExpressions({ AttributesToGet: ['a', 'name'] });
    const projection = compileExpressions(translated).projection;
    expect(projection?.apply({ a: { S: '1' }, name: { S: '2' }, c: { S: '3' } })).toEqual({ a: { S: '1' }, name: { S: '2' } });
  });

  it('refuses duplicates', () => {
    expect(validationMessage(() => legacyToExpressions({ AttributesToGet: ['a', 'a'] }))).toBe(
      'One or more parameter values were invalid: Duplicate value in attribute name: a',
    );
  });
});

describe('mixing parameters', () => {
  const expressions = ['ConditionExpression', 'UpdateExpression'];
  const legacy = ['Expected', 'AttributeUpdates', 'ConditionalOperator'];

  it('refuses expressions with legacy parameters', () => {
    expect(
      validationMessage(() =>
        rejectMixedParameters({ Expected: {}, ConditionalOperator: 'OR', ConditionExpression: 'a = b' }, expressions, legacy),
      ),
    ).toBe(
      'Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected, ConditionalOperator} Expression parameters: {ConditionExpression}',
    );
  });

  it('refuses placeholders without expressions', () => {
    expect(validationMessage(() => rejectMixedParameters({ ExpressionAttributeNames: { '#a': 'a' } }, expressions, legacy))).toBe(
      'ExpressionAttributeNames can only be specified when using expressions',
    );
    expect(
      validationMessage(() => rejectMixedParameters({ ExpressionAttributeValues: { ':a': { S: 'a' } } }, expressions, legacy)),
    ).toBe('ExpressionAttributeValues can only be specified when using expressions: ConditionExpression and UpdateExpression are null');
    expect(
      validationMessage(() =>
        rejectMixedParameters({ ExpressionAttributeValues: { ':a': { S: 'a' } }, ProjectionExpression: 'a' }, ['ProjectionExpression', 'FilterExpression'], []),
      ),
    ).toBe('ExpressionAttributeValues can only be specified when using expressions: FilterExpression is null');
  });

  it('lets KeyConditions go with a filter expression', () => {
    expect(() =>
      rejectMixedParameters(
        { KeyConditions: {}, FilterExpression: 'a = :a' },
        ['KeyConditionExpression', 'FilterExpression'],
        ['KeyConditions', 'QueryFilter'],
      ),
    ).not.toThrow();
  });
});
