import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileExpressions, DynamoDbError, type AttributeValue, type Item } from '../../src/index.ts';

/**
 * Random condition trees over random items, printed as expressions with the fewest parentheses the
 * precedence rules allow, must evaluate as a small reference interpreter says.
 */
type Scalar = { N: number } | { S: string };
type Tree =
  | { kind: 'cmp'; op: '=' | '<>' | '<' | '<=' | '>' | '>='; attr: string; value: Scalar }
  | { kind: 'between'; attr: string; low: Scalar; high: Scalar }
  | { kind: 'in'; attr: string; list: Scalar[] }
  | { kind: 'exists' | 'notExists'; attr: string }
  | { kind: 'beginsWith' | 'contains'; attr: string; value: string }
  | { kind: 'and' | 'or'; left: Tree; right: Tree }
  | { kind: 'not'; operand: Tree };

const ATTRS = ['x0', 'x1', 'x2'];
const attr = fc.constantFrom(...ATTRS);
const str = fc.constantFrom('', 'a', 'b', 'ab', 'ba', 'abc');
const scalar: fc.Arbitrary<Scalar> = fc.oneof(fc.integer({ min: -3, max: 3 }).map((N) => ({ N })), str.map((S) => ({ S })));

const leaf: fc.Arbitrary<Tree> = fc.oneof(
  fc.record({ kind: fc.constant('cmp' as const), op: fc.constantFrom('=', '<>', '<', '<=', '>', '>=' as const), attr, value: scalar }),
  fc.tuple(attr, fc.boolean(), fc.integer({ min: -3, max: 3 }), fc.integer({ min: -3, max: 3 }), str, str).map(
    ([a, numeric, n1, n2, s1, s2]): Tree =>
      numeric
        ? { kind: 'between', attr: a, low: { N: Math.min(n1, n2) }, high: { N: Math.max(n1, n2) } }
        : { kind: 'between', attr: a, low: { S: s1 < s2 ? s1 : s2 }, high: { S: s1 < s2 ? s2 : s1 } },
  ),
  fc.record({ kind: fc.constant('in' as const), attr, list: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constantFrom('exists' as const, 'notExists' as const), attr }),
  fc.record({ kind: fc.constantFrom('beginsWith' as const, 'contains' as const), attr, value: str }),
);

const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 5, depthIdentifier: 'condition' },
    leaf,
    fc.record({ kind: fc.constantFrom('and' as const, 'or' as const), left: tie('node'), right: tie('node') }),
    fc.record({ kind: fc.constant('not' as const), operand: tie('node') }),
  ),
})).node;

const item: fc.Arbitrary<Record<string, Scalar>> = fc.record(
  { x0: scalar, x1: scalar, x2: scalar },
  { requiredKeys: [] },
);

function toValue(s: Scalar): AttributeValue {
  return 'N' in s ? { N: String(s.N) } : { S: s.S };
}

/** Prints a tree; placeholders go into `values` and, for some names, `names`. */
function print(t: Tree, values: Record<string, AttributeValue>, names: Record<string, string>, useNames: boolean): string {
  const value = (v: AttributeValue) => {
    const key = `:v${Object.keys(values).length}`;
    values[key] = v;
    return key;
  };
  const name = (a: string) => {
    if (!useNames) return a;
    names[`#${a}`] = a;
    return `#${a}`;
  };
  const precedence = (x: Tree) => (x.kind === 'or' ? 1 : x.kind === 'and' ? 2 : x.kind === 'not' ? 3 : 4);
  const child = (x: Tree, min: number) => {
    const text = print(x, values, names, useNames);
    return precedence(x) < min ? `(${text})` : text;
  };
  switch (t.kind) {
    case 'cmp':
      return `${name(t.attr)} ${t.op} ${value(toValue(t.value))}`;
    case 'between':
      return `${name(t.attr)} BETWEEN ${value(toValue(t.low))} AND ${value(toValue(t.high))}`;
    case 'in':
      return `${name(t.attr)} IN (${t.list.map((v) => value(toValue(v))).join(', ')})`;
    case 'exists':
      return `attribute_exists(${name(t.attr)})`;
    case 'notExists':
      return `attribute_not_exists(${name(t.attr)})`;
    case 'beginsWith':
      return `begins_with(${name(t.attr)}, ${value({ S: t.value })})`;
    case 'contains':
      return `contains(${name(t.attr)}, ${value({ S: t.value })})`;
    case 'and':
      return `${child(t.left, 2)} AND ${child(t.right, 3)}`;
    case 'or':
      return `${child(t.left, 1)} OR ${child(t.right, 2)}`;
    case 'not':
      return `NOT ${child(t.operand, 3)}`;
  }
}

function order(a: Scalar, b: Scalar): number | undefined {
  if ('N' in a && 'N' in b) return Math.sign(a.N - b.N);
  if ('S' in a && 'S' in b) return a.S < b.S ? -1 : a.S > b.S ? 1 : 0;
  return undefined;
}

function reference(t: Tree, it: Record<string, Scalar>): boolean {
  const get = (a: string) => (Object.hasOwn(it, a) ? it[a] : undefined);
  switch (t.kind) {
    case 'cmp': {
      const v = get(t.attr);
      const o = v === undefined ? undefined : order(v, t.value);
      if (t.op === '<>') return o !== 0;
      if (o === undefined) return false;
      return { '=': o === 0, '<': o < 0, '<=': o <= 0, '>': o > 0, '>=': o >= 0 }[t.op];
    }
    case 'between': {
      const v = get(t.attr);
      if (v === undefined) return false;
      const lo = order(t.low, v);
      const hi = order(v, t.high);
      return lo !== undefined && hi !== undefined && lo <= 0 && hi <= 0;
    }
    case 'in': {
      const v = get(t.attr);
      return v !== undefined && t.list.some((x) => order(v, x) === 0);
    }
    case 'exists':
      return get(t.attr) !== undefined;
    case 'notExists':
      return get(t.attr) === undefined;
    case 'beginsWith': {
      const v = get(t.attr);
      return v !== undefined && 'S' in v && v.S.startsWith(t.value);
    }
    case 'contains': {
      const v = get(t.attr);
      return v !== undefined && 'S' in v && v.S.includes(t.value);
    }
    case 'and':
      return reference(t.left, it) && reference(t.right, it);
    case 'or':
      return reference(t.left, it) || reference(t.right, it);
    case 'not':
      return !reference(t.operand, it);
  }
}

describe('condition expressions against a reference interpreter', () => {
  it('agree on random trees and items', () => {
    fc.assert(
      fc.property(tree, fc.array(item, { minLength: 1, maxLength: 4 }), fc.boolean(), (t, items, useNames) => {
        const values: Record<string, AttributeValue> = {};
        const names: Record<string, string> = {};
        const text = print(t, values, names, useNames);
        const compiled = compileExpressions({
          condition: text,
          ...(Object.keys(values).length > 0 ? { values } : {}),
          ...(Object.keys(names).length > 0 ? { names } : {}),
        }).condition;
        for (const raw of items) {
          const stored: Item = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, toValue(v)]));
          expect(compiled?.evaluate(stored), `${text} on ${JSON.stringify(raw)}`).toBe(reference(t, raw));
        }
      }),
      { numRuns: 400, seed: 20261125 },
    );
  });
});

describe('robustness', () => {
  const fragments = fc.constantFrom(
    'a', 'b', '#n', ':v', '.', '[', ']', '0', '(', ')', ',', '=', '<>', '<', '>=', '+', '-', ' ', 'AND', 'OR', 'NOT',
    'BETWEEN', 'IN', 'SET', 'REMOVE', 'ADD', 'DELETE', 'size', 'contains', 'if_not_exists', 'list_append', '!', '_',
  );
  const text = fc.array(fragments, { maxLength: 14 }).map((parts) => parts.join(' '));

  it('answers any input with a result or a ValidationException', () => {
    fc.assert(
      fc.property(text, fc.constantFrom('condition', 'update', 'projection', 'keyCondition', 'filter'), (expression, field) => {
        try {
          compileExpressions({ [field]: expression, names: { '#n': 'n' }, values: { ':v': { N: '1' } } });
        } catch (error) {
          expect(error).toBeInstanceOf(DynamoDbError);
          expect((error as DynamoDbError).type).toBe('ValidationException');
        }
      }),
      { numRuns: 1500, seed: 7 },
    );
  });
});

describe('deep nesting', () => {
  it.each([
    ['condition', '('.repeat(4000)],
    ['condition', `${'('.repeat(2000)}a = :v${')'.repeat(2000)}`],
    ['condition', `${'NOT '.repeat(1000)}a = :v`],
    ['condition', `${'size('.repeat(680)}a${')'.repeat(680)} = :v`],
    ['update', `SET a = ${'if_not_exists(a, '.repeat(240)}:v${')'.repeat(240)}`],
  ])('%s %# is refused with a ValidationException, not a stack overflow', (field, expression) => {
    try {
      compileExpressions({ [field]: expression, values: { ':v': { N: '1' } } });
      expect.unreachable();
    } catch (error) {
      expect((error as DynamoDbError).type).toBe('ValidationException');
    }
  });

  it('accepts 250 nested NOTs (under the operator limit)', () => {
    const compiled = compileExpressions({ condition: `${'NOT '.repeat(250)}a = :v`, values: { ':v': { N: '1' } } });
    expect(compiled.condition?.evaluate({ a: { N: '1' } })).toBe(true);
  });
});

describe('updates on random documents', () => {
  const key = fc.constantFrom('a', 'b', 'c');
  const segment = fc.oneof(key, fc.integer({ min: 0, max: 3 }));
  const path = fc.tuple(key, fc.array(segment, { maxLength: 3 })).map(([head, rest]) =>
    [head, ...rest].map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join(''),
  );
  const value: fc.Arbitrary<AttributeValue> = fc.letrec<{ v: AttributeValue }>((tie) => ({
    v: fc.oneof(
      { maxDepth: 3, depthIdentifier: 'doc' },
      fc.integer({ min: -5, max: 5 }).map((n) => ({ N: String(n) })),
      fc.constantFrom('x', 'y').map((S) => ({ S })),
      fc.constantFrom<AttributeValue>({ SS: ['x'] }, { NS: ['1', '2'] }),
      fc.array(tie('v'), { maxLength: 3 }).map((L) => ({ L })),
      fc.dictionary(key, tie('v'), { maxKeys: 3 }).map((M) => ({ M })),
    ),
  })).v;
  const document = fc.dictionary(key, value, { maxKeys: 3 });
  const action = fc.oneof(
    fc.tuple(path, fc.constantFrom(':n', ':s', ':l', 'a', 'b.c', 'a + :n', 'if_not_exists(b, :l)', 'list_append(a, :l)')).map(
      ([p, v]) => ['SET', `${p} = ${v}`] as const,
    ),
    path.map((p) => ['REMOVE', p] as const),
    fc.tuple(path, fc.constantFrom(':n', ':ss')).map(([p, v]) => ['ADD', `${p} ${v}`] as const),
    fc.tuple(path, fc.constantFrom(':ss', ':ns')).map(([p, v]) => ['DELETE', `${p} ${v}`] as const),
  );
  const VALUES: Record<string, AttributeValue> = {
    ':n': { N: '1' },
    ':s': { S: 's' },
    ':l': { L: [{ N: '9' }] },
    ':ss': { SS: ['x'] },
    ':ns': { NS: ['1'] },
  };

  it('either apply or fail with a ValidationException, leaving the old item untouched', () => {
    fc.assert(
      fc.property(document, fc.array(action, { minLength: 1, maxLength: 4 }), (doc, actions) => {
        const sections = new Map<string, string[]>();
        for (const [section, clause] of actions) sections.set(section, [...(sections.get(section) ?? []), clause]);
        const update = [...sections].map(([section, clauses]) => `${section} ${clauses.join(', ')}`).join(' ');
        const values = Object.fromEntries(Object.entries(VALUES).filter(([k]) => new RegExp(`${k}(?![a-z])`).test(update)));
        const existing: Item = { pk: { S: 'k' }, ...doc };
        const before = structuredClone(existing);
        try {
          const compiled = compileExpressions({ update, ...(Object.keys(values).length > 0 ? { values } : {}) }).update;
          const after = compiled?.apply(existing, { pk: { S: 'k' } });
          expect(after?.pk).toEqual({ S: 'k' });
        } catch (error) {
          expect(error, String(error)).toBeInstanceOf(DynamoDbError);
          expect((error as DynamoDbError).type).toBe('ValidationException');
        }
        expect(existing).toEqual(before);
      }),
      { numRuns: 1000, seed: 42 },
    );
  });
});
