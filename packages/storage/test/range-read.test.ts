import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareScalars,
  decodeBinary,
  itemSize,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type KeyAttributeType,
  type SortKeyCondition,
  type SortKeyOperator,
  type TableSchema,
} from '@shoal/model';
import type { LocalStore } from '../src/index.ts';
import { B, N, S, baseRequest, key, memoryStore, put, random, readAllPages, table } from './helpers.ts';

const numbers = ['-1e10', '-123.456', '-2', '-1.5', '-1', '-0.001', '0', '0.001', '0.5', '1', '1.5', '2', '10', '99.99', '100', '1e20'].map(N);
const strings = ['a', 'a\u0000', 'a\u0000b', 'ab', 'abc', 'abd', 'b', 'Z', 'é', 'éa', '\u{1F600}', '\uFFFD', 'zz'].map(S);
const binaries = [[0], [0, 0], [0, 1], [1], [1, 0], [1, 255], [2], [255], [255, 0], [255, 255]].map(B);

function compare(a: AttributeValue, b: AttributeValue): number {
  const order = compareScalars(a, b);
  if (order === undefined) throw new Error('incomparable');
  return order;
}

function beginsWith(value: AttributeValue, prefix: AttributeValue): boolean {
  if ('S' in value && 'S' in prefix) return value.S.startsWith(prefix.S);
  if ('B' in value && 'B' in prefix) {
    const v = decodeBinary(value.B);
    const p = decodeBinary(prefix.B);
    return v.length >= p.length && v.subarray(0, p.length).equals(p);
  }
  return false;
}

function matches(value: AttributeValue, condition: SortKeyCondition): boolean {
  const [a, b] = condition.values;
  switch (condition.op) {
    case 'EQ': return compare(value, a) === 0;
    case 'LT': return compare(value, a) < 0;
    case 'LE': return compare(value, a) <= 0;
    case 'GT': return compare(value, a) > 0;
    case 'GE': return compare(value, a) >= 0;
    case 'BETWEEN': return compare(value, a) >= 0 && compare(value, b) <= 0;
    case 'BEGINS_WITH': return beginsWith(value, a);
  }
}

const cases: Array<{ type: KeyAttributeType; values: AttributeValue[]; probes: AttributeValue[] }> = [
  { type: 'N', values: numbers, probes: [N('-1.5'), N('-1.49'), N('0'), N('1'), N('3'), N('-1e11'), N('1e21')] },
  { type: 'S', values: strings, probes: [S('a'), S('ab'), S('a\u0000'), S('é'), S('b'), S('0'), S('\u{1F600}')] },
  { type: 'B', values: binaries, probes: [B([0]), B([1]), B([1, 0]), B([255]), B([3]), B([0, 0, 0])] },
];

describe('range reads', () => {
  let store: LocalStore;
  beforeAll(async () => {
    store = await memoryStore();
  });
  afterAll(async () => {
    await store.close();
  });

  for (const [caseIndex, { type, values, probes }] of cases.entries()) {
    it(`answers every sort key condition on ${type} keys, forward and backward`, async () => {
      const schema = table(100 + caseIndex, key('pk', 'S'), key('sk', type));
      for (const value of values) {
        await put(store.partitions, schema, { pk: S('h'), sk: value });
        // Neighbouring item collections must never leak into the query.
        await put(store.partitions, schema, { pk: S('h0'), sk: value });
        await put(store.partitions, schema, { pk: S('g'), sk: value });
      }
      const sorted = [...values].sort(compare);
      const conditions: SortKeyCondition[] = [];
      const operators: SortKeyOperator[] = ['EQ', 'LT', 'LE', 'GT', 'GE'];
      for (const probe of probes) {
        for (const op of operators) conditions.push({ op, values: [probe] });
        if (type !== 'N') conditions.push({ op: 'BEGINS_WITH', values: [probe] });
        for (const upper of probes) if (compare(probe, upper) <= 0) conditions.push({ op: 'BETWEEN', values: [probe, upper] });
      }
      for (const condition of conditions) {
        const expected = sorted.filter((value) => matches(value, condition));
        for (const forward of [true, false]) {
          const result = await store.partitions.readRange(
            baseRequest(schema, { hashValue: S('h'), sortCondition: condition, forward }),
            { consistent: true },
          );
          const label = `${JSON.stringify(condition)} forward=${forward}`;
          expect(result.items.map((item) => item.sk), label).toEqual(forward ? expected : [...expected].reverse());
          expect(result.lastEvaluatedKey, label).toBeUndefined();
        }
      }
      const all = await store.partitions.readRange(baseRequest(schema, { hashValue: S('h') }), { consistent: true });
      expect(all.items.map((item) => item.sk)).toEqual(sorted);
    });
  }

  describe('pagination', () => {
    const schema = table(200, key('pk', 'S'), key('sk', 'N'));
    const items: Item[] = Array.from({ length: 25 }, (_, i) => ({ pk: S('p'), sk: N(i), pad: S('x'.repeat(100 + i)) }));
    beforeAll(async () => {
      for (const item of items) await put(store.partitions, schema, item);
    });

    it('pages with a limit to the last page, forward and backward', async () => {
      for (const forward of [true, false]) {
        const pages = await readAllPages(store.partitions, baseRequest(schema, { hashValue: S('p'), forward, limit: 5 }));
        // DynamoDB answers a full last page with a LastEvaluatedKey, and then an empty page.
        expect(pages.map((page) => page.items.length)).toEqual([5, 5, 5, 5, 5, 0]);
        expect(pages[0].lastEvaluatedKey).toEqual({ pk: S('p'), sk: forward ? N(4) : N(20) });
        expect(pages.flatMap((page) => page.items)).toEqual(forward ? items : [...items].reverse());
      }
      const uneven = await readAllPages(store.partitions, baseRequest(schema, { hashValue: S('p'), limit: 7 }));
      expect(uneven.map((page) => page.items.length)).toEqual([7, 7, 7, 4]);
    });

    it('stops after maxBytes, including the item that crosses it', async () => {
      const sizes = items.map(itemSize);
      const pages = await readAllPages(store.partitions, baseRequest(schema, { hashValue: S('p'), maxBytes: 500 }));
      expect(pages.flatMap((page) => page.items)).toEqual(items);
      let offset = 0;
      for (const page of pages) {
        const pageSizes = sizes.slice(offset, offset + page.items.length);
        expect(page.bytesRead).toBe(pageSizes.reduce((a, b) => a + b, 0));
        if (page.lastEvaluatedKey) {
          // Stopped at the first item that reached the limit: without it, the page was below it.
          expect(page.bytesRead).toBeGreaterThanOrEqual(500);
          expect(page.bytesRead - pageSizes[pageSizes.length - 1]).toBeLessThan(500);
        }
        offset += page.items.length;
      }
      expect(pages.length).toBeGreaterThan(5);
    });

    it('filters after reading, counts, projects and resumes after an exclusive start key', async () => {
      const filtered = await store.partitions.readRange(
        baseRequest(schema, {
          hashValue: S('p'),
          limit: 10,
          filter: 'sk >= :min',
          projection: 'sk',
          select: 'SPECIFIC_ATTRIBUTES',
          values: { ':min': N(6) },
          exclusiveStartKey: { pk: S('p'), sk: N(2) },
        }),
        { consistent: true },
      );
      expect(filtered.scannedCount).toBe(10);
      expect(filtered.count).toBe(7);
      expect(filtered.items).toEqual([6, 7, 8, 9, 10, 11, 12].map((n) => ({ sk: N(n) })));
      expect(filtered.lastEvaluatedKey).toEqual({ pk: S('p'), sk: N(12) });

      const counted = await store.partitions.readRange(
        baseRequest(schema, { hashValue: S('p'), select: 'COUNT', filter: 'sk < :max', values: { ':max': N(5) } }),
        { consistent: true },
      );
      expect(counted).toMatchObject({ items: [], count: 5, scannedCount: 25 });

      const backward = await store.partitions.readRange(
        baseRequest(schema, { hashValue: S('p'), forward: false, sortCondition: { op: 'BETWEEN', values: [N(3), N(20)] }, exclusiveStartKey: { pk: S('p'), sk: N(10) } }),
        { consistent: true },
      );
      expect(backward.items.map((item) => item.sk)).toEqual([9, 8, 7, 6, 5, 4, 3].map(N));
    });

    it('rejects a start key that does not match the schema', async () => {
      await expect(
        store.partitions.readRange(baseRequest(schema, { hashValue: S('p'), exclusiveStartKey: { pk: S('p') } }), { consistent: true }),
      ).rejects.toMatchObject({ type: 'ValidationException' });
    });
  });

  describe('scan', () => {
    const schema: TableSchema = table(300, key('pk', 'N'), undefined, [
      { name: 'byGroup', kind: 'GSI', indexId: 301, hashKey: key('group', 'S'), rangeKey: key('pk', 'N'), projection: { type: 'KEYS_ONLY' } },
    ]);
    const total = 500;
    beforeAll(async () => {
      for (let i = 0; i < total; i++) await put(store.partitions, schema, { pk: N(i), group: S(`g${i % 4}`), v: S('x') });
    });

    it('covers the table exactly once with parallel segments, paged', async () => {
      for (const segments of [1, 3, 8]) {
        const seen: string[] = [];
        for (let segment = 0; segment < segments; segment++) {
          const pages = await readAllPages(store.partitions, baseRequest(schema, { segment: { segment, total: segments }, limit: 37 }));
          seen.push(...pages.flatMap((page) => page.items.map((item) => (item.pk as { N: string }).N)));
        }
        expect(seen.length).toBe(total);
        expect(new Set(seen).size).toBe(total);
      }
    });

    it('scans and queries a GSI with index and table keys in LastEvaluatedKey', async () => {
      const pages = await readAllPages(store.partitions, baseRequest(schema, { indexName: 'byGroup', select: 'ALL_PROJECTED_ATTRIBUTES', limit: 100 }));
      expect(pages[0].lastEvaluatedKey).toEqual({ group: expect.anything(), pk: expect.anything() });
      expect(pages.flatMap((page) => page.items)).toHaveLength(total);

      const query = await readAllPages(store.partitions, baseRequest(schema, { indexName: 'byGroup', hashValue: S('g1'), select: 'ALL_PROJECTED_ATTRIBUTES', limit: 30, forward: false }));
      const pks = query.flatMap((page) => page.items.map((item) => Number((item.pk as { N: string }).N)));
      expect(pks).toEqual(Array.from({ length: total / 4 }, (_, i) => total - 3 - 4 * i));
    });

    it('rejects a start key from another segment', async () => {
      const first = await store.partitions.readRange(baseRequest(schema, { segment: { segment: 0, total: 3 }, limit: 1 }), { consistent: true });
      expect(first.lastEvaluatedKey).toBeDefined();
      await expect(
        store.partitions.readRange(baseRequest(schema, { segment: { segment: 1, total: 3 }, exclusiveStartKey: first.lastEvaluatedKey }), { consistent: true }),
      ).rejects.toMatchObject({ type: 'ValidationException', message:
          'The provided starting key is invalid: Invalid ExclusiveStartKey. Please use ExclusiveStartKey with correct Segment. TotalSegments: 3 Segment: 1' });
    });

    it('counts a scan exactly', async () => {
      const result = await store.partitions.readRange(baseRequest(schema, { select: 'COUNT' }), { consistent: false });
      expect(result).toMatchObject({ items: [], count: total, scannedCount: total });
      expect(result.lastEvaluatedKey).toBeUndefined();
      const limited = await store.partitions.readRange(baseRequest(schema, { select: 'COUNT', limit: total }), { consistent: false });
      expect(limited).toMatchObject({ items: [], count: total, scannedCount: total, lastEvaluatedKey: { pk: expect.anything() } });
    });
  });
});

describe('random queries against a model', () => {
  it('page through exactly the matching items, in order, for any limit, page size and direction', async () => {
    const store = await memoryStore();
    const next = random(7);
    const pick = <T>(values: T[]): T => values[Math.floor(next() * values.length)];
    const word = () => Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(['a', 'b', '\u0000', 'é'])).join('');
    const byAlt: IndexSchema = { name: 'byAlt', kind: 'LSI', indexId: 401, hashKey: key('pk', 'S'), rangeKey: key('alt', 'N'), projection: { type: 'KEYS_ONLY' } };
    const schema = table(400, key('pk', 'S'), key('sk', 'S'), [byAlt]);
    const items = new Map<string, Item>();
    for (let i = 0; i < 200; i++) {
      const item: Item = { pk: S(pick(['a', 'b'])), sk: S(word()), alt: N(pick(['-2', '-0.5', '0', '1', '1.25'])), pad: S('x'.repeat(Math.floor(next() * 50))) };
      items.set(JSON.stringify([item.pk, item.sk]), item);
      await put(store.partitions, schema, item);
    }
    const sortValue = (item: Item, indexed: boolean) => (indexed ? item.alt : item.sk);
    for (let round = 0; round < 150; round++) {
      const indexed = next() < 0.4;
      const probe = () => (indexed ? N(pick(['-3', '-2', '-1', '0', '1', '1.25', '2'])) : S(word()));
      const op = pick<SortKeyOperator | undefined>([undefined, 'EQ', 'LT', 'LE', 'GT', 'GE', 'BETWEEN', ...(indexed ? [] : ['BEGINS_WITH' as const])]);
      let condition: SortKeyCondition | undefined;
      if (op === 'BETWEEN') condition = { op, values: [probe(), probe()].sort(compare) };
      else if (op) condition = { op, values: [probe()] };
      const forward = next() < 0.5;
      const limit = next() < 0.5 ? 1 + Math.floor(next() * 7) : undefined;
      const maxBytes = 50 + Math.floor(next() * 400);
      const hash = pick(['a', 'b']);
      const expected = [...items.values()]
        .filter((item) => JSON.stringify(item.pk) === JSON.stringify(S(hash)) && (!condition || matches(sortValue(item, indexed), condition)))
        .sort((x, y) => compare(sortValue(x, indexed), sortValue(y, indexed)) || compare(x.sk, y.sk));
      if (!forward) expected.reverse();
      const pages = await readAllPages(
        store.partitions,
        baseRequest(schema, {
          hashValue: S(hash), forward, maxBytes,
          ...(condition ? { sortCondition: condition } : {}),
          ...(limit ? { limit } : {}),
          ...(indexed ? { indexName: 'byAlt', select: 'ALL_ATTRIBUTES' as const } : {}),
        }),
      );
      const label = JSON.stringify({ indexed, condition, forward, limit, maxBytes, hash });
      expect(pages.flatMap((page) => page.items), label).toEqual(expected);
      for (const page of pages) if (limit) expect(page.scannedCount, label).toBeLessThanOrEqual(limit);
    }
    await store.close();
  });
});
