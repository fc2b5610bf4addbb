import { describe, expect, it } from 'vitest';
import { compileExpressions, type AttributeValue, type Item } from '../../src/index.ts';
import { request, validationMessage } from './helpers.ts';

const KEY: Item = { pk: { S: 'k' } };

/** Attribute changes: a new value, or undefined for a removed attribute. */
type Changes = Record<string, AttributeValue | undefined>;

function changed(base: Item, changes: Changes): Item {
  const expected: Item = { ...base };
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) delete expected[name];
    else expected[name] = value;
  }
  return expected;
}

const DOC: Item = {
  pk: { S: 'k' },
  n: { N: '10' },
  s: { S: 'str' },
  ss: { SS: ['a', 'b'] },
  ns: { NS: ['1', '2'] },
  bs: { BS: ['AQ=='] },
  l: { L: [{ S: 'l0' }, { S: 'l1' }, { S: 'l2' }, { S: 'l3' }] },
  m: { M: { a: { N: '1' }, deep: { M: { x: { S: 'x' } } }, arr: { L: [{ N: '0' }, { M: { y: { S: 'y' } } }] } } },
};

function update(expression: string, existing: Item | undefined = DOC, values?: Record<string, AttributeValue>): Item {
  const req = values ? { update: expression, values } : request({ update: expression });
  const compiled = compileExpressions(req).update;
  if (compiled === undefined) throw new Error('no update compiled');
  const next = compiled.apply(existing, KEY);
  if (next === undefined) throw new Error('the update left no item');
  return next;
}

/** What an update leaves when there is no item yet: undefined when it creates none. */
function updateMissing(expression: string, values?: Record<string, AttributeValue>): Item | undefined {
  const compiled = compileExpressions(values ? { update: expression, values } : request({ update: expression })).update;
  if (compiled === undefined) throw new Error('no update compiled');
  return compiled.apply(undefined, KEY);
}

describe('SET', () => {
  it.each<[string, Changes]>([
    ['SET a = :s', { a: { S: 'hello' } }],
    ['SET s = :n1', { s: { N: '1' } }],
    ['SET a = s', { a: { S: 'str' } }],
    ['SET a = m.deep.x', { a: { S: 'x' } }],
    ['SET a = m', { a: DOC.m }],
    ['SET n = n + :n5', { n: { N: '15' } }],
    ['SET n = n - :n10f', { n: { N: '0' } }],
    ['SET n = :n1 - n', { n: { N: '-9' } }],
    ['SET a = :n1 + :n2', { a: { N: '3' } }],
    ['SET n = if_not_exists(n, :n1)', { n: { N: '10' } }],
    ['SET a = if_not_exists(a, :n1)', { a: { N: '1' } }],
    ['SET a = if_not_exists(m.deep.x, :n1)', { a: { S: 'x' } }],
    ['SET l = list_append(l, :l)', { l: { L: [...(DOC.l as { L: AttributeValue[] }).L, { S: 'x' }, { N: '1' }] } }],
    ['SET l = list_append(:l, l)', { l: { L: [{ S: 'x' }, { N: '1' }, ...(DOC.l as { L: AttributeValue[] }).L] } }],
    ['SET a = list_append(if_not_exists(a, :l), :l)', { a: { L: [{ S: 'x' }, { N: '1' }, { S: 'x' }, { N: '1' }] } }],
    ['SET m.a = :s', { m: { M: { ...(DOC.m as { M: Item }).M, a: { S: 'hello' } } } }],
    ['SET m.deep.z = :s', { m: { M: { ...(DOC.m as { M: Item }).M, deep: { M: { x: { S: 'x' }, z: { S: 'hello' } } } } } }],
    ['SET l[1] = :s', { l: { L: [{ S: 'l0' }, { S: 'hello' }, { S: 'l2' }, { S: 'l3' }] } }],
    ['SET l[9] = :s', { l: { L: [{ S: 'l0' }, { S: 'l1' }, { S: 'l2' }, { S: 'l3' }, { S: 'hello' }] } }],
    ['SET l[8] = :s, l[6] = :x', { l: { L: [{ S: 'l0' }, { S: 'l1' }, { S: 'l2' }, { S: 'l3' }, { S: 'x' }, { S: 'hello' }] } }],
    ['SET m.arr[1].y = :x', { m: { M: { ...(DOC.m as { M: Item }).M, arr: { L: [{ N: '0' }, { M: { y: { S: 'x' } } }] } } } }],
    ['SET #s = :s', { s: { S: 'hello' } }],
    // right-hand sides read the item as it was before the update
    ['SET n = s, s = n', { n: { S: 'str' }, s: { N: '10' } }],
    ['SET a = n REMOVE n', { a: { N: '10' }, n: undefined }],
  ])('%s', (expression, changes) => {
    expect(update(expression)).toEqual(changed(DOC, changes));
  });

  it('starts a new item from its key', () => {
    const compiled = compileExpressions(request({ update: 'SET a = :s, c = if_not_exists(c, :n1) ADD cnt :n1' })).update;
    expect(compiled?.apply(undefined, KEY)).toEqual({
      pk: { S: 'k' },
      a: { S: 'hello' },
      c: { N: '1' },
      cnt: { N: '1' },
    });
  });

  it('stores numbers in canonical form', () => {
    expect(update('SET a = :v', DOC, { ':v': { N: '007.50' } }).a).toEqual({ N: '7.5' });
  });

  it('does not change the existing item or share structure with it', () => {
    const before = structuredClone(DOC);
    const after = update('SET m.deep.z = :s, l[0] = :s, a = m REMOVE l[1] ADD ss :ss DELETE ns :ns');
    expect(DOC).toEqual(before);
    (after.a as { M: Item }).M.added = { S: 'x' };
    expect(DOC).toEqual(before);
  });

  it.each([
    ['SET a = nothing', 'The provided expression refers to an attribute that does not exist in the item'],
    ['SET a = m.nothing', 'The provided expression refers to an attribute that does not exist in the item'],
    ['SET a = nothing + :n1', 'The provided expression refers to an attribute that does not exist in the item'],
    ['SET a = s + :n1', 'An operand in the update expression has an incorrect data type'],
    ['SET a = :n1 - ss', 'An operand in the update expression has an incorrect data type'],
    ['SET a = list_append(s, :l)', 'An operand in the update expression has an incorrect data type'],
    ['SET a = list_append(:l, m)', 'An operand in the update expression has an incorrect data type'],
    ['SET nothing.a = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET s.a = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET m[0] = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET l.a = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET l[7].a = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET nothing[0] = :s', 'The document path provided in the update expression is invalid for update'],
    ['SET pk = :s', 'One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key'],
    ['REMOVE pk', 'One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key'],
  ])('%s fails: %s', (expression, message) => {
    expect(validationMessage(() => update(expression))).toBe(message);
  });

  it('reports numbers that overflow', () => {
    const big = { N: '9E+125' };
    const message = validationMessage(() => update('SET a = :v + :v', DOC, { ':v': big }));
    expect(message).toMatch(/Number overflow/);
  });
});

describe('REMOVE', () => {
  it.each<[string, Changes]>([
    ['REMOVE s', { s: undefined }],
    ['REMOVE nothing', {}],
    ['REMOVE s, n, nothing', { s: undefined, n: undefined }],
    ['REMOVE m.a', { m: { M: { deep: (DOC.m as { M: Item }).M.deep, arr: (DOC.m as { M: Item }).M.arr } } }],
    ['REMOVE m.nothing', {}],
    ['REMOVE l[1]', { l: { L: [{ S: 'l0' }, { S: 'l2' }, { S: 'l3' }] } }],
    // indexes are positions in the original list, whatever else is removed
    ['REMOVE l[1], l[2]', { l: { L: [{ S: 'l0' }, { S: 'l3' }] } }],
    ['REMOVE l[3], l[0]', { l: { L: [{ S: 'l1' }, { S: 'l2' }] } }],
    ['REMOVE l[9]', {}],
    ['SET l[0] = :s REMOVE l[1]', { l: { L: [{ S: 'hello' }, { S: 'l2' }, { S: 'l3' }] } }],
    ['REMOVE l[0] SET l[5] = :s', { l: { L: [{ S: 'l1' }, { S: 'l2' }, { S: 'l3' }, { S: 'hello' }] } }],
    ['REMOVE m.arr[1].y', { m: { M: { ...(DOC.m as { M: Item }).M, arr: { L: [{ N: '0' }, { M: {} }] } } } }],
  ])('%s', (expression, changes) => {
    expect(update(expression)).toEqual(changed(DOC, changes));
  });

  it('refuses a path whose parent does not exist', () => {
    expect(validationMessage(() => update('REMOVE nothing.a'))).toBe(
      'The document path provided in the update expression is invalid for update',
    );
  });

  // scylladb test_item.py::test_update_item_non_existent, test_update_item_delete and
  // test_update_expression.py::test_nested_attribute_remove_from_missing_item (run against DynamoDB)
  it.each<[string, Record<string, AttributeValue> | undefined]>([
    ['REMOVE a', undefined],
    ['REMOVE a, b.c, d[3]', undefined],
    ['DELETE a :ss', { ':ss': { SS: ['x'] } }],
    ['REMOVE b DELETE a :ss', { ':ss': { SS: ['x'] } }],
  ])('%s creates no item when there is none', (expression, values) => {
    expect(updateMissing(expression, values)).toBeUndefined();
  });

  it('creates the item when the update also writes, and still refuses key attributes', () => {
    expect(updateMissing('SET a = :s REMOVE b')).toEqual({ ...KEY, a: { S: 'hello' } });
    expect(validationMessage(() => updateMissing('REMOVE pk'))).toBe(
      'One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key',
    );
  });
});

describe('ADD', () => {
  it.each<[string, Changes]>([
    ['ADD n :n5', { n: { N: '15' } }],
    ['ADD n :neg', { n: { N: '7' } }],
    ['ADD a :n5', { a: { N: '5' } }],
    ['ADD ss :ss', {}],
    ['ADD ss :sx', { ss: { SS: ['a', 'b', 'x'] } }],
    ['ADD ns :ns3', { ns: { NS: ['1', '2', '3'] } }],
    ['ADD bs :bs2', { bs: { BS: ['AQ==', 'Ag=='] } }],
    ['ADD a :sx', { a: { SS: ['a', 'x'] } }],
    ['ADD m.a :n5', { m: { M: { ...(DOC.m as { M: Item }).M, a: { N: '6' } } } }],
    ['ADD m.b :n5', { m: { M: { ...(DOC.m as { M: Item }).M, b: { N: '5' } } } }],
    ['ADD l[7] :n5', { l: { L: [...(DOC.l as { L: AttributeValue[] }).L, { N: '5' }] } }],
  ])('%s', (expression, changes) => {
    const values: Record<string, AttributeValue> = {
      ':n5': { N: '5' },
      ':neg': { N: '-3' },
      ':ss': { SS: ['a'] },
      ':sx': { SS: ['a', 'x'] },
      ':ns3': { NS: ['2.0', '3'] },
      ':bs2': { BS: ['AQ==', 'Ag=='] },
    };
    const used = Object.fromEntries(Object.entries(values).filter(([k]) => expression.includes(k)));
    expect(update(expression, DOC, used)).toEqual(changed(DOC, changes));
  });

  it.each([
    ['ADD s :n5', { ':n5': { N: '5' } }],
    ['ADD n :ss', { ':ss': { SS: ['a'] } }],
    ['ADD ns :ss', { ':ss': { SS: ['a'] } }],
  ])('%s has the wrong type', (expression, values) => {
    expect(validationMessage(() => update(expression, DOC, values))).toBe(
      'An operand in the update expression has an incorrect data type',
    );
  });

  it('refuses a nested path whose parent does not exist', () => {
    expect(validationMessage(() => update('ADD nothing.a :v', DOC, { ':v': { N: '1' } }))).toBe(
      'The document path provided in the update expression is invalid for update',
    );
  });
});

describe('DELETE', () => {
  it('removes elements from a set', () => {
    expect(update('DELETE ss :v', DOC, { ':v': { SS: ['a', 'z'] } }).ss).toEqual({ SS: ['b'] });
    expect(update('DELETE ns :v', DOC, { ':v': { NS: ['1.00'] } }).ns).toEqual({ NS: ['2'] });
    expect(update('DELETE bs :v', DOC, { ':v': { BS: ['AQ=='] } }).bs).toBeUndefined();
  });

  it('removes the attribute when the set becomes empty', () => {
    const after = update('DELETE ss :v', DOC, { ':v': { SS: ['a', 'b'] } });
    expect(Object.hasOwn(after, 'ss')).toBe(false);
  });

  it('ignores a missing attribute', () => {
    expect(update('DELETE nothing :v', DOC, { ':v': { SS: ['a'] } })).toEqual(DOC);
  });

  it('refuses a set of another type', () => {
    expect(validationMessage(() => update('DELETE ss :v', DOC, { ':v': { NS: ['1'] } }))).toBe(
      'An operand in the update expression has an incorrect data type',
    );
    expect(validationMessage(() => update('DELETE s :v', DOC, { ':v': { SS: ['s'] } }))).toBe(
      'An operand in the update expression has an incorrect data type',
    );
  });
});

describe('updated attributes', () => {
  it('lists top-level names and paths in expression order', () => {
    const compiled = compileExpressions(
      request({ update: 'SET m.a = :s, #s = :x REMOVE l[1] ADD m.b :n1 DELETE ss :ss' }),
    ).update;
    expect(compiled?.updatedAttributes).toEqual(['m', 's', 'l', 'ss']);
    expect(compiled?.updatedPaths).toEqual([['m', 'a'], ['s'], ['l', 1], ['m', 'b'], ['ss']]);
  });
});

describe('all four sections together', () => {
  it('apply in one step, case-insensitively', () => {
    const after = update(
      'set n = n + :one, m.deep.x = :s remove l[0], m.a add cnt :one, ss :add delete ns :del',
      DOC,
      { ':one': { N: '1' }, ':s': { S: 'X' }, ':add': { SS: ['c'] }, ':del': { NS: ['1'] } },
    );
    expect(after).toEqual({
      ...DOC,
      n: { N: '11' },
      m: { M: { deep: { M: { x: { S: 'X' } } }, arr: (DOC.m as { M: Item }).M.arr } },
      l: { L: [{ S: 'l1' }, { S: 'l2' }, { S: 'l3' }] },
      cnt: { N: '1' },
      ss: { SS: ['a', 'b', 'c'] },
      ns: { NS: ['2'] },
    });
  });
});

describe('parentheses in SET values', () => {
  it.each([
    ['SET a = (:n1)', '1'],
    ['SET a = (:n1 + :n2)', '3'],
    ['SET a = (:n1) + (:n2)', '3'],
    ['SET a = ((:n2) - :n1)', '1'],
    ['SET a = (if_not_exists(a, :n2))', '2'],
  ])('%s', (expression, result) => {
    expect(compileExpressions(request({ update: expression })).update?.apply(undefined, KEY)?.a).toEqual({ N: result });
  });
});

describe('a mix of nested SET and ADD on list positions', () => {
  it('applies appends in index order, every value read from the old item', () => {
    const existing: Item = {
      pk: { S: 'k' },
      b: { M: { a: { N: '1' }, b: { N: '2' }, c: { N: '3' } } },
      c: { L: [{ N: '1' }, { N: '3' }] },
    };
    const compiled = compileExpressions({
      update: 'set b.c=((c[1])+(b.a)),b.a = pk,c[1] = pk, c[4] = b.a - b.b, c[2] = b.c add c[8] :b, c[6] :a',
      values: { ':a': { N: '2' }, ':b': { SS: ['a'] } },
    }).update;
    expect(compiled?.apply(existing, KEY)).toEqual({
      pk: { S: 'k' },
      b: { M: { a: { S: 'k' }, b: { N: '2' }, c: { N: '4' } } },
      c: { L: [{ N: '1' }, { S: 'k' }, { N: '3' }, { N: '-1' }, { N: '2' }, { SS: ['a'] }] },
    });
  });

  it('reads key attributes of a new item', () => {
    const compiled = compileExpressions({ update: 'set b = if_not_exists(b, pk)' }).update;
    expect(compiled?.apply(undefined, KEY)).toEqual({ pk: { S: 'k' }, b: { S: 'k' } });
  });
});

describe('attribute names that are Object.prototype members', () => {
  it('are ordinary attributes for SET, REMOVE and projections', () => {
    const names = { '#p': '__proto__', '#c': 'constructor' };
    const compiled = compileExpressions({
      update: 'SET #p = :v, m.#p = :v, #c = :v',
      names,
      values: { ':v': { S: 'x' } },
    }).update;
    const after = compiled?.apply({ pk: { S: 'k' }, m: { M: {} } }, KEY) as Item;
    expect(Object.keys(after).sort()).toEqual(['__proto__', 'constructor', 'm', 'pk']);
    expect(Object.getPrototypeOf(after)).toBe(Object.prototype);
    expect(Object.keys((after.m as { M: Item }).M)).toEqual(['__proto__']);
    const projection = compileExpressions({ projection: '#p, m.#p', names: { '#p': '__proto__' } }).projection;
    const projected = projection?.apply(after) as Item;
    expect(Object.keys(projected).sort()).toEqual(['__proto__', 'm']);
    expect(Object.getPrototypeOf(projected)).toBe(Object.prototype);
  });

  it('are absent from items without them: conditions, ADD and nested paths find nothing inherited', () => {
    const names = { '#c': 'constructor', '#t': 'toString', '#p': '__proto__' };
    const item: Item = { pk: { S: 'k' }, m: { M: {} } };
    const condition = compileExpressions({
      condition: 'attribute_not_exists(#c) AND attribute_not_exists(#t) AND attribute_not_exists(m.#p) AND attribute_not_exists(m.#t)',
      names,
    }).condition;
    expect(condition?.evaluate(item)).toBe(true);
    const update = compileExpressions({ update: 'ADD #c :one SET m.#t = if_not_exists(m.#t, :one)', names: { '#c': 'constructor', '#t': 'toString' }, values: { ':one': { N: '1' } } }).update;
    expect(update?.apply(item, KEY)).toEqual({ pk: { S: 'k' }, constructor: { N: '1' }, m: { M: { toString: { N: '1' } } } });
  });
});
