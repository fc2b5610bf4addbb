import { describe, expect, it } from 'vitest';
import { compileExpressions, type ExpressionRequest } from '../../src/index.ts';
import { request, validationMessage } from './helpers.ts';

const C = 'Invalid ConditionExpression: ';
const U = 'Invalid UpdateExpression: ';
const P = 'Invalid ProjectionExpression: ';
const K = 'Invalid KeyConditionExpression: ';
const F = 'Invalid FilterExpression: ';

/** [expressions (placeholders drawn from the helpers' pools), DynamoDB's message] */
const CASES: [Omit<ExpressionRequest, 'names' | 'values'>, string][] = [
  // syntax errors: the token, and the text from the token before it to the token after it
  [{ condition: 'a = ' }, `${C}Syntax error; token: "<EOF>", near: "= "`],
  [{ condition: 'a' }, `${C}Syntax error; token: "<EOF>", near: "a"`],
  [{ condition: 'a = :s b' }, `${C}Syntax error; token: "b", near: ":s b"`],
  [{ condition: 'a == :s' }, `${C}Syntax error; token: "=", near: "== :s"`],
  [{ condition: 'a = :s AND' }, `${C}Syntax error; token: "<EOF>", near: "AND"`],
  [{ condition: 'a = :s AND OR b = :s' }, `${C}Syntax error; token: "OR", near: "AND OR b"`],
  [{ condition: 'a IN ()' }, `${C}Syntax error; token: ")", near: "()"`],
  [{ condition: 'a BETWEEN :n1' }, `${C}Syntax error; token: "<EOF>", near: ":n1"`],
  [{ condition: 'a BETWEEN :n1 OR :n2' }, `${C}Syntax error; token: "OR", near: ":n1 OR :n2"`],
  [{ condition: '_a = :s' }, `${C}Syntax error; token: "_", near: "_a"`],
  [{ condition: 'a + :n1 = :n2' }, `${C}Syntax error; token: "+", near: "a + :n1"`],
  [{ condition: 'a[x] = :s' }, `${C}Syntax error; token: "x", near: "[x]"`],
  [{ condition: 'a[-1] = :s' }, `${C}Syntax error; token: "-", near: "[-1"`],
  [{ condition: 'a.1 = :s' }, `${C}Syntax error; token: "1", near: ".1 ="`],
  [{ condition: '(a = :s' }, `${C}Syntax error; token: "<EOF>", near: ":s"`],
  [{ condition: 'a = :s)' }, `${C}Syntax error; token: ")", near: ":s)"`],
  [{ condition: 'a = : s' }, `${C}Syntax error; token: ":", near: "= : s"`],
  [{ condition: 'attribute_exists()' }, `${C}Syntax error; token: ")", near: "()"`],
  [{ update: 'ADD hits : incr' }, `${U}Syntax error; token: ":", near: "hits : incr"`],
  [{ update: 'INVALID SYNTAX HERE' }, `${U}Syntax error; token: "INVALID", near: "INVALID SYNTAX"`],
  [{ update: 'SET a = :s,' }, `${U}Syntax error; token: "<EOF>", near: ","`],
  [{ update: 'SET a' }, `${U}Syntax error; token: "<EOF>", near: "a"`],
  [{ update: 'SET a = :n1 + :n2 + :n5' }, `${U}Syntax error; token: "+", near: ":n2 + :n5"`],
  [{ update: 'SET a = (((:n1)))' }, `${U}Syntax error; token: "(", near: "((:n1"`],
  [{ update: 'set a=set' }, `${U}Syntax error; token: "set", near: "=set"`],
  [{ update: 'SET a = b REMOVE remove' }, `${U}Syntax error; token: "remove", near: "REMOVE remove"`],
  [{ update: 'set a[1] = "eight"' }, `${U}Syntax error; token: """, near: "= "eight"`],
  [{ update: 'set a[1] = 1' }, `${U}Syntax error; token: "1", near: "= 1"`],
  [{ update: 'SET if_not_exists(a, b) = a' }, `${U}Syntax error; token: "(", near: "if_not_exists(a"`],
  [{ update: 'set a = (b.c).d + e' }, `${U}Syntax error; token: ".", near: ").d"`],
  [{ update: 'add abort b' }, `${U}Syntax error; token: "b", near: "abort b"`],
  [{ update: 'set a = b / c' }, `${U}Syntax error; token: "/", near: "b / c"`],
  [{ update: 'REMOVE' }, `${U}Syntax error; token: "<EOF>", near: "REMOVE"`],
  [{ update: 'ADD a b' }, `${U}Syntax error; token: "b", near: "a b"`],
  [{ update: 'SET a = :s REMOVE' }, `${U}Syntax error; token: "<EOF>", near: "REMOVE"`],
  [{ projection: 'a,' }, `${P}Syntax error; token: "<EOF>", near: ","`],
  [{ projection: '!!!' }, `${P}Syntax error; token: "!", near: "!!"`],
  [{ projection: 'a b' }, `${P}Syntax error; token: "b", near: "a b"`],
  [{ projection: 'a[].b' }, `${P}Syntax error; token: "]", near: "[]."`],
  [{ projection: 'a-b' }, `${P}Syntax error; token: "-", near: "a-b"`],
  // empty and oversized
  [{ condition: '' }, `${C}The expression can not be empty;`],
  [{ update: '  ' }, `${U}The expression can not be empty;`],
  [{ projection: '' }, `${P}The expression can not be empty;`],
  [{ filter: `${'a'.repeat(4095)}=b` }, `${F}Expression size has exceeded the maximum allowed size; expression size: 4097`],
  [{ projection: 'a'.repeat(4097) }, `${P}Expression size has exceeded the maximum allowed size;`],
  [{ update: `SET ${'é'.repeat(2046)}=b` }, `${U}Expression size has exceeded the maximum allowed size;`],
  // reserved words
  [{ condition: 'name = :s' }, `${C}Attribute name is a reserved keyword; reserved keyword: name`],
  [{ condition: 'a.Status = :s' }, `${C}Attribute name is a reserved keyword; reserved keyword: Status`],
  [{ update: 'SET a = :s REMOVE #s, size' }, `${U}Attribute name is a reserved keyword; reserved keyword: size`],
  [{ projection: 'a.b, c[0].ABORT' }, `${P}Attribute name is a reserved keyword; reserved keyword: ABORT`],
  // placeholders
  [{ condition: 'a = :undefined' }, `${C}An expression attribute value used in expression is not defined; attribute value: :undefined`],
  [{ condition: '#undefined = :s' }, `${C}An expression attribute name used in the document path is not defined; attribute name: #undefined`],
  [{ update: 'SET #nope = :s' }, `${U}An expression attribute name used in the document path is not defined; attribute name: #nope`],
  [{ projection: 'a, #nope' }, `${P}An expression attribute name used in the document path is not defined; attribute name: #nope`],
  // functions
  [{ condition: 'foo(a)' }, `${C}Invalid function name; function: foo`],
  [{ condition: 'ATTRIBUTE_EXISTS(a)' }, `${C}Invalid function name; function: ATTRIBUTE_EXISTS`],
  [{ condition: 'a = bar(b)' }, `${C}Invalid function name; function: bar`],
  [{ condition: 'if_not_exists(a, :s)' }, `${C}The function is not allowed in a condition expression; function: if_not_exists`],
  [{ condition: 'a = list_append(a, :l)' }, `${C}The function is not allowed in a condition expression; function: list_append`],
  [{ condition: 'size(a)' }, `${C}The function is not allowed to be used this way in an expression; function: size`],
  [{ condition: 'attribute_exists(a) = :t' }, `${C}The function is not allowed to be used this way in an expression; function: attribute_exists`],
  [{ condition: 'size(contains(a, :s)) = :n1' }, `${C}The function is not allowed to be used this way in an expression; function: contains`],
  // operand types known before reading the item (DynamoDB Local Operator/OperatorValidator; scylladb test_condition_expression.py test_update_condition_lt et al., run against DynamoDB)
  [{ condition: 'a < :l' }, `${C}Incorrect operand type for operator or function; operator or function: <, operand type: L`],
  [{ condition: ':m >= a' }, `${C}Incorrect operand type for operator or function; operator or function: >=, operand type: M`],
  [{ condition: 'a > :t' }, `${C}Incorrect operand type for operator or function; operator or function: >, operand type: BOOL`],
  [{ condition: 'a <= :ss' }, `${C}Incorrect operand type for operator or function; operator or function: <=, operand type: SS`],
  [{ condition: 'a BETWEEN :l AND :l' }, `${C}Incorrect operand type for operator or function; operator or function: BETWEEN, operand type: L`],
  [{ condition: ':null BETWEEN a AND b' }, `${C}Incorrect operand type for operator or function; operator or function: BETWEEN, operand type: NULL`],
  [{ condition: 'size(size(a)) = :n1' }, `${C}Incorrect operand type for operator or function; operator or function: size, operand type: N`],
  [{ condition: 'begins_with(size(a), :s)' }, `${C}Incorrect operand type for operator or function; operator or function: begins_with, operand type: N`],
  [{ condition: 'attribute_exists(a, b)' }, `${C}Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2`],
  [{ condition: 'begins_with(a)' }, `${C}Incorrect number of operands for operator or function; operator or function: begins_with, number of operands: 1`],
  [{ condition: 'size(a, b) = :n1' }, `${C}Incorrect number of operands for operator or function; operator or function: size, number of operands: 2`],
  [{ condition: 'attribute_exists(:s)' }, `${C}Operator or function requires a document path; operator or function: attribute_exists`],
  [{ condition: 'attribute_not_exists(size(a))' }, `${C}Operator or function requires a document path; operator or function: attribute_not_exists`],
  [{ condition: 'begins_with(a, :n1)' }, `${C}Incorrect operand type for operator or function; operator or function: begins_with, operand type: N`],
  [{ condition: 'attribute_type(a, :n1)' }, `${C}Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N`],
  [{ condition: 'attribute_type(a, b)' }, `${C}Incorrect operand type for operator or function; operator or function: attribute_type, operand type: {NS,SS,L,BS,N,M,B,BOOL,NULL,S}`],
  [{ condition: 'attribute_type(a, :typeBad)' }, `${C}Invalid attribute type name found; type: STRING, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}`],
  [{ condition: 'size(:n1) = :n1' }, `${C}Incorrect operand type for operator or function; operator or function: size, operand type: N`],
  [{ condition: 'size(:t) = :n1' }, `${C}Incorrect operand type for operator or function; operator or function: size, operand type: BOOL`],
  // operands
  [{ condition: 'a = a' }, `${C}The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [a]`],
  [{ condition: 'a.b[1] < a.b[1]' }, `${C}The first operand must be distinct from the remaining operands for this operator or function; operator: <, first operand: [a, b, [1]]`],
  [{ condition: 'contains(#s, s)' }, `${C}The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [s]`],
  [{ condition: 'a BETWEEN :n10 AND :n1' }, `${C}The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:10}, upper bound operand: AttributeValue: {N:1}`],
  [{ condition: 'a BETWEEN :n1 AND :s' }, `${C}The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: AttributeValue: {S:hello}`],
  [{ condition: '((a = :s))' }, `${C}The expression has redundant parentheses;`],
  [{ condition: '(a) = :s' }, `${C}The expression has redundant parentheses;`],
  // the highest ranked problem wins, wherever it stands
  [{ condition: 'foo(a) AND name = :undefined' }, `${C}Invalid function name; function: foo`],
  [{ condition: 'a = :undefined AND name = :s' }, `${C}Attribute name is a reserved keyword; reserved keyword: name`],
  [{ condition: 'begins_with(a, :n1) AND b = :undefined' }, `${C}An expression attribute value used in expression is not defined; attribute value: :undefined`],
  // update expressions
  [{ update: 'SET a = :s SET b = :s' }, `${U}The "SET" section can only be used once in an update expression;`],
  [{ update: 'remove a ADD b :n1 REMOVE c' }, `${U}The "REMOVE" section can only be used once in an update expression;`],
  [{ update: 'SET a = :s, a = :x' }, `${U}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]`],
  [{ update: 'SET a = :s REMOVE a.b' }, `${U}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]`],
  [{ update: 'SET a[1].b = :s ADD a[1] :n1' }, `${U}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, [1], b], path two: [a, [1]]`],
  [{ update: 'SET #s = :s, s.x = :x' }, `${U}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [s], path two: [s, x]`],
  [{ update: 'SET a[1] = :s, a.b = :s' }, `${U}Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [1]], path two: [a, b]`],
  [{ update: 'SET a = size(b)' }, `${U}The function is not allowed in an update expression; function: size`],
  [{ update: 'SET a = attribute_exists(b)' }, `${U}The function is not allowed in an update expression; function: attribute_exists`],
  [{ update: 'SET a = foo(b)' }, `${U}Invalid function name; function: foo`],
  // only if_not_exists nests: not list_append in a call or in + / - (DynamoDB Local's ASTListener; scylladb alternator test_update_expression_function_nesting, run against DynamoDB)
  [{ update: 'SET a = list_append(list_append(:l, :l), :l)' }, `${U}The function is not allowed to be used this way in an expression; function: list_append`],
  [{ update: 'SET a = if_not_exists(a, list_append(b, :l))' }, `${U}The function is not allowed to be used this way in an expression; function: list_append`],
  [{ update: 'SET a = list_append(a, :l) + :n1' }, `${U}The function is not allowed to be used this way in an expression; function: list_append`],
  [{ update: 'SET a = list_append(b, :l), c = if_not_exists(c, list_append(a, foo(b)))' }, `${U}Invalid function name; function: foo`],
  [{ update: 'SET a = if_not_exists(:s, :s)' }, `${U}Operator or function requires a document path; operator or function: if_not_exists`],
  [{ update: 'SET a = if_not_exists(a)' }, `${U}Incorrect number of operands for operator or function; operator or function: if_not_exists, number of operands: 1`],
  [{ update: 'set b = list_append(:s, a), c = if_not_exists(a) add a.b :s' }, `${U}Incorrect operand type for operator or function; operator: ADD, operand type: STRING`],
  [{ update: 'set a = if_not_exists(if_not_exists(a, b), c)' }, `${U}Operator or function requires a document path; operator or function: if_not_exists`],
  [{ update: ' set #s = :s set abOrt = true ' }, `${U}Attribute name is a reserved keyword; reserved keyword: abOrt`],
  [{ update: 'set #s = if_not_exist(:s) set c = d' }, `${U}Invalid function name; function: if_not_exist`],
  [{ update: 'set a = #undefined set c = :s' }, `${U}The "SET" section can only be used once in an update expression;`],
  [{ update: 'SET #undefined = if_not_exists(:undefined)' }, `${U}An expression attribute name used in the document path is not defined; attribute name: #undefined`],
  [{ update: 'SET #s = if_not_exists(:undefined)' }, `${U}An expression attribute value used in expression is not defined; attribute value: :undefined`],
  [{ update: 'set d[1] = a, d.b = a, c[1].a = a, #s = if_not_exists(a), s = a' }, `${U}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [s], path two: [s]`],
  [{ update: 'remove a.#s set a[1] = b' }, `${U}Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, s], path two: [a, [1]]`],
  [{ update: 'SET a = list_append(a, :s)' }, `${U}Incorrect operand type for operator or function; operator or function: list_append, operand type: S`],
  [{ update: 'SET a = a + :s' }, `${U}Incorrect operand type for operator or function; operator or function: +, operand type: S`],
  [{ update: 'SET a = :ss - a' }, `${U}Incorrect operand type for operator or function; operator or function: -, operand type: SS`],
  [{ update: 'ADD a :s' }, `${U}Incorrect operand type for operator or function; operator: ADD, operand type: STRING`],
  [{ update: 'ADD a :l' }, `${U}Incorrect operand type for operator or function; operator: ADD, operand type: LIST`],
  [{ update: 'DELETE a :n1' }, `${U}Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER`],
  [{ update: 'DELETE a :m' }, `${U}Incorrect operand type for operator or function; operator: DELETE, operand type: MAP`],
  // projections
  [{ projection: 'a, a' }, `${P}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]`],
  [{ projection: 'a.b, a' }, `${P}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a]`],
  [{ projection: '#s, s' }, `${P}Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [s], path two: [s]`],
  [{ projection: 'a[0], a.b' }, `${P}Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [0]], path two: [a, b]`],
  // key conditions
  [{ keyCondition: 'pk = :s OR sk = :s' }, 'Invalid operator used in KeyConditionExpression: OR'],
  [{ keyCondition: 'NOT pk = :s' }, 'Invalid operator used in KeyConditionExpression: NOT'],
  [{ keyCondition: 'pk IN (:s)' }, 'Invalid operator used in KeyConditionExpression: IN'],
  [{ keyCondition: 'pk <> :s' }, 'Invalid operator used in KeyConditionExpression: <>'],
  [{ keyCondition: 'pk = :s AND attribute_exists(sk)' }, 'Invalid operator used in KeyConditionExpression: attribute_exists'],
  [{ keyCondition: 'pk = :s AND contains(sk, :a)' }, 'Invalid operator used in KeyConditionExpression: contains'],
  [{ keyCondition: 'size(pk) = :n1' }, 'KeyConditionExpressions cannot contain nested operations'],
  [{ keyCondition: 'pk = sk' }, 'Invalid condition in KeyConditionExpression: Multiple attribute names used in one condition'],
  [{ keyCondition: ':s = :a' }, 'Invalid condition in KeyConditionExpression: No key attribute specified'],
  [{ keyCondition: 'pk.x = :s' }, 'KeyConditionExpressions cannot have conditions on nested attributes'],
  // paritysuite/dynamodb-conformance queryKeyConditionOperands (captured from DynamoDB): prefixed, and before the count
  [{ keyCondition: 'pk = :s AND pk = :a' }, `${K}KeyConditionExpressions must only contain one condition per key`],
  [{ keyCondition: 'pk = :s AND sk > :a AND sk < :x' }, `${K}KeyConditionExpressions must only contain one condition per key`],
  [{ keyCondition: 'pk = :s AND :n1 BETWEEN sk AND :n2' }, 'Invalid condition in KeyConditionExpression: BETWEEN operator must have the key attribute as its first operand'],
  [{ keyCondition: 'pk = :s AND begins_with(:s, sk)' }, 'Invalid condition in KeyConditionExpression: begins_with operator must have the key attribute as its first operand'],
  [{ keyCondition: 'pk = :s AND begins_with(sk, :n1)' }, `${K}Incorrect operand type for operator or function; operator or function: begins_with, operand type: N`],
  [{ keyCondition: 'pk = ' }, `${K}Syntax error; token: "<EOF>", near: "= "`],
];

describe('expression errors', () => {
  const named = CASES.map(([expressions, message]) => [JSON.stringify(expressions).slice(0, 90), expressions, message] as const);
  it.each(named)('%s', (_, expressions, message) => {
    expect(validationMessage(() => compileExpressions(request(expressions)))).toBe(message);
  });
});

describe('request-level checks', () => {
  it('refuses empty placeholder maps', () => {
    expect(validationMessage(() => compileExpressions({ condition: 'a = b', names: {} }))).toBe(
      'ExpressionAttributeNames must not be empty',
    );
    expect(validationMessage(() => compileExpressions({ condition: 'a = b', values: {} }))).toBe(
      'ExpressionAttributeValues must not be empty',
    );
  });

  it('refuses malformed placeholder keys', () => {
    expect(validationMessage(() => compileExpressions({ condition: 'a = b', names: { n: 'x' } }))).toBe(
      'ExpressionAttributeNames contains invalid key: Syntax error; key: "n"',
    );
    expect(validationMessage(() => compileExpressions({ condition: 'a = b', values: { ':a-b': { S: 'x' } } }))).toBe(
      'ExpressionAttributeValues contains invalid key: Syntax error; key: ":a-b"',
    );
  });

  it('refuses empty attribute names', () => {
    expect(validationMessage(() => compileExpressions({ condition: '#DE = b', names: { '#DE': '' } }))).toBe(
      'ExpressionAttributeNames contains invalid value: Empty attribute name for key #DE',
    );
  });

  it('refuses invalid values, naming the key', () => {
    const message = validationMessage(() => compileExpressions({ condition: 'a = :v', values: { ':v': { SS: [] } } }));
    expect(message).toMatch(/^ExpressionAttributeValues contains invalid value: .+ for key :v$/);
  });

  it('reports placeholders unused across all the expressions of the request', () => {
    const names = { '#a': 'a', '#b': 'b', '#c': 'c' };
    const values = { ':a': { S: 'a' }, ':b': { S: 'b' }, ':c': { S: 'c' } };
    expect(
      validationMessage(() => compileExpressions({ condition: '#a = :a', update: 'SET #b = :b', names, values })),
    ).toBe('Value provided in ExpressionAttributeNames unused in expressions: keys: {#c}');
    expect(
      validationMessage(() =>
        compileExpressions({ condition: '#a = :a', update: 'SET #b = :b', projection: '#c', names, values }),
      ),
    ).toBe('Value provided in ExpressionAttributeValues unused in expressions: keys: {:c}');
    expect(
      compileExpressions({ condition: '#a = :a', update: 'SET #b = :b, c = :c', projection: '#c', names, values }).update,
    ).toBeDefined();
  });

  it('refuses more than 100 operands in IN', () => {
    const values = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`:v${i}`, { N: String(i) }]));
    const list = Object.keys(values);
    expect(validationMessage(() => compileExpressions({ filter: `a IN (${list.join(', ')})`, values }))).toBe(
      `${F}The IN operator is provided with too many operands; number of operands: 101`,
    );
    const hundred = Object.fromEntries(list.slice(0, 100).map((k) => [k, values[k]]));
    expect(compileExpressions({ filter: `a IN (${list.slice(0, 100).join(', ')})`, values: hundred }).filter?.evaluate({ a: { N: '99' } })).toBe(true);
  });

  it('accepts expressions of exactly 4096 bytes', () => {
    expect(compileExpressions({ projection: 'a'.repeat(4096) }).projection).toBeDefined();
  });

  it('reports key condition structure after unused placeholders', () => {
    expect(
      validationMessage(() => compileExpressions({ keyCondition: 'pk = :a OR pk = :b', values: { ':a': { S: 'a' }, ':b': { S: 'b' }, ':c': { S: 'c' } } })),
    ).toBe('Value provided in ExpressionAttributeValues unused in expressions: keys: {:c}');
  });
});

describe('operator limit', () => {
  it('allows 300 operators and refuses more', () => {
    const values = { ':v': { N: '1' } };
    const comparisons = (count: number) => Array.from({ length: count }, (_, i) => `a${i} = :v`).join(' OR ');
    // 150 comparisons and 149 ORs, then one more NOT
    expect(compileExpressions({ filter: comparisons(150), values }).filter).toBeDefined();
    expect(compileExpressions({ filter: `NOT (${comparisons(150)})`, values }).filter).toBeDefined();
    expect(validationMessage(() => compileExpressions({ filter: `NOT NOT (${comparisons(150)})`, values }))).toBe(
      'Invalid FilterExpression: The expression contains too many operators; operator count: 301',
    );
  });
});
