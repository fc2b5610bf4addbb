import { describe, expect, it } from 'vitest';
import { compileExpressions } from '../../src/index.ts';
import { evaluateCondition, ITEM, request } from './helpers.ts';

/** [condition, expected result on ITEM] */
const CASES: [string, boolean][] = [
  // comparisons on every scalar type
  ['s = :s', true],
  ['s <> :s', false],
  ['n = :n10', true],
  ['n = :n10f', true],
  ['n > :n5', true],
  ['n >= :n10', true],
  ['n < :n10', false],
  ['n <= :n10f', true],
  ['neg < :n1', true],
  ['s > :he', true],
  ['s < :lo', true],
  ['b = :b', true],
  ['b > :b12', true],
  ['b < :b9', true],
  ['t = :t', true],
  ['t = :f', false],
  ['nul = :null', true],
  // sets compare as sets, lists and maps deeply
  ['ss = :ssba', true],
  ['ns = :ns', true],
  ['l[0] = :x', true],
  ['m.k = :m', false],
  ['l = :l', false],
  // different types: false, except <> which is true
  ['n = :s', false],
  ['n <> :s', true],
  ['n < :s', false],
  ['s >= :n1', false],
  // an item attribute of an unordered type only makes an ordering false (a value of one is refused)
  ['t < n', false],
  ['ss >= s', false],
  ['n BETWEEN l AND m', false],
  // absent attributes
  ['absent = :s', false],
  ['absent <> :s', true],
  ['absent < :s', false],
  ['m.nope.deeper = :s', false],
  ['l[7] = :s', false],
  ['s[0] = :s', false],
  ['l.x = :s', false],
  // operands can be two paths or two values
  ['n > neg', true],
  [':n1 < :n2', true],
  ['m.nest.n = :n5', true],
  ['m.arr[1] = :n2', true],
  ['l[2].deep = :a', true],
  ['#dot = :s', false],
  ['#name = :s', false],
  ['#n = :n10', true],
  ['#m.#n = :n1', false],
  // BETWEEN and IN
  ['n BETWEEN :n5 AND :n10', true],
  ['n BETWEEN :n1 AND :n5', false],
  ['s BETWEEN :he AND :lo', true],
  ['n BETWEEN :he AND :lo', false],
  ['absent BETWEEN :n1 AND :n5', false],
  ['n IN (:n1, :n10f)', true],
  ['n IN (:n1, :n2)', false],
  ['s IN (:s)', true],
  ['absent IN (:s)', false],
  ['ss IN (:ssba, :s)', true],
  // logic and precedence: NOT > AND > OR
  ['s = :s AND n = :n10', true],
  ['s = :s AND n = :n1', false],
  ['s = :x OR n = :n10', true],
  ['NOT s = :x', true],
  ['NOT NOT s = :s', true],
  ['s = :x AND n = :n1 OR t = :t', true],
  ['s = :x AND (n = :n1 OR t = :t)', false],
  ['t = :t OR s = :x AND n = :n1', true],
  ['(t = :t OR s = :x) AND n = :n1', false],
  ['NOT s = :x AND n = :n1', false],
  ['NOT (s = :x AND n = :n1)', true],
  ['s = :s and n = :n10 or not t = :t', true],
  // functions
  ['attribute_exists(s)', true],
  ['attribute_exists(absent)', false],
  ['attribute_not_exists(absent)', true],
  ['attribute_not_exists(m.k)', false],
  ['attribute_exists(l[2].deep)', true],
  ['attribute_exists(l[3])', false],
  ['attribute_type(s, :typeS)', true],
  ['attribute_type(n, :typeN)', true],
  ['attribute_type(n, :typeS)', false],
  ['attribute_type(l, :typeL)', true],
  ['attribute_type(m, :typeM)', true],
  ['attribute_type(ss, :typeSS)', true],
  ['attribute_type(t, :typeBOOL)', true],
  ['attribute_type(nul, :typeNULL)', true],
  ['attribute_type(absent, :typeS)', false],
  ['begins_with(s, :he)', true],
  ['begins_with(s, :lo)', false],
  ['begins_with(s, :empty)', true],
  ['begins_with(b, :b12)', true],
  ['begins_with(b, :b9)', false],
  ['begins_with(n, :he)', false],
  ['begins_with(absent, :he)', false],
  ['contains(s, :lo)', true],
  ['contains(s, :x)', false],
  ['contains(ss, :a)', true],
  ['contains(ss, :x)', false],
  ['contains(ns, :n1)', true],
  ['contains(ns, :n5)', false],
  ['contains(l, :x)', true],
  ['contains(l, :n1)', true],
  ['contains(l, :a)', false],
  // a binary contains a byte sequence (scylladb test_condition_expression.py::test_update_condition_contains, run against DynamoDB)
  ['contains(b, :b12)', true],
  ['contains(b, :b9)', false],
  ['contains(b, :s)', false],
  ['contains(n, :n1)', false],
  ['contains(absent, :a)', false],
  ['size(s) = :n5', true],
  ['size(ss) = :n2', true],
  ['size(ns) > :n1', true],
  ['size(l) BETWEEN :n2 AND :n5', true],
  ['size(m) = :n2', false],
  ['size(b) = :n2', false],
  ['size(n) = :n2', false],
  ['size(absent) = :n1', false],
  ['size(t) <> :n1', true],
  ['size(s) > size(ss)', true],
  ['size(:s) = :n5', true],
  // keywords are case-insensitive, whitespace is free
  ['s=:s and(n=:n10)', true],
  ['  s   =   :s  ', true],
  ['m . k = :s', false],
  ['l [ 0 ] = :x', true],
];

describe('condition evaluation', () => {
  it.each(CASES)('%s → %s', (condition, expected) => {
    expect(evaluateCondition(condition, ITEM)).toBe(expected);
  });

  it('sees no attributes when there is no item', () => {
    expect(evaluateCondition('attribute_not_exists(pk)', undefined)).toBe(true);
    expect(evaluateCondition('attribute_exists(pk)', undefined)).toBe(false);
    expect(evaluateCondition('s <> :s', undefined)).toBe(true);
    expect(evaluateCondition('NOT s = :s', undefined)).toBe(true);
  });

  it('counts string size in UTF-16 code units and binary size in bytes', () => {
    const item = { u: { S: 'é𝄞' }, b: { B: 'AQID' } };
    const sizeIs = (path: string, n: string) =>
      compileExpressions({ condition: `size(${path}) = :n`, values: { ':n': { N: n } } }).condition?.evaluate(item);
    expect(sizeIs('u', '3')).toBe(true);
    expect(sizeIs('b', '3')).toBe(true);
  });

  it('compares strings by UTF-8 bytes', () => {
    // U+FF61 sorts below U+1F600 in UTF-8 though not in UTF-16.
    const item = { s: { S: '\uff61' } };
    const less = compileExpressions({ condition: 's < :v', values: { ':v': { S: '😀' } } }).condition;
    expect(less?.evaluate(item)).toBe(true);
  });

  it('matches binary set elements and compares sets of numbers by value', () => {
    const item = { bs: { BS: ['AQ==', 'Ag=='] }, ns: { NS: ['1.0', '20'] } };
    const check = (condition: string, values: Record<string, { BS: string[] } | { B: string } | { NS: string[] }>) =>
      compileExpressions({ condition, values }).condition?.evaluate(item);
    expect(check('contains(bs, :v)', { ':v': { B: 'Ag==' } })).toBe(true);
    expect(check('ns = :v', { ':v': { NS: ['2e1', '1'] } })).toBe(true);
  });

  it('records every path a condition reads', () => {
    const compiled = compileExpressions(request({ filter: 'a.b = :s AND (size(l[1]) > :n1 OR attribute_exists(#s))' }));
    expect(compiled.filter?.paths).toEqual([['a', 'b'], ['l', 1], ['s']]);
  });

  it('filter and condition compile independently in one request', () => {
    const compiled = compileExpressions(request({ condition: 's = :s', filter: 'n = :n1' }));
    expect(compiled.condition?.evaluate(ITEM)).toBe(true);
    expect(compiled.filter?.evaluate(ITEM)).toBe(false);
  });

  it('does not look up inherited object properties as attributes', () => {
    expect(evaluateCondition('attribute_exists(valueOf)', { m: { M: {} } })).toBe(false);
    expect(evaluateCondition('attribute_exists(m.hasOwnProperty)', { m: { M: {} } })).toBe(false);
  });
});
