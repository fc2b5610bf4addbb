import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  encodeItemKey,
  initialPartitions,
  PartitionMap,
  spaceKeyAttributes,
  spaceRange,
  type IndexSchema,
  type AttributeValue,
  type Item,
  type PartitionDescriptor,
  type RangeReadRequest,
  type RangeReadResult,
  type Select,
  type TableSchema,
} from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { readRangeAcross, tableItemKey, type PartitionRangeReader } from '../src/cluster/range-reads.ts';

/**
 * Query and Scan pages over a table cut into partitions, each partition a real store holding only its
 * own items (as a cluster partition does), and over its GSIs cut into partitions of their own, each a
 * store holding only the items whose entries of that GSI fall in the partition (so the store's index
 * read gives exactly the partition's entries, in key order, as a GSI partition's does), must equal
 * page for page those of one store holding them all (the single-node engine, whose paging is
 * DynamoDB's).
 */

const TABLE: TableSchema = {
  name: 'events',
  tableId: 10,
  hashKey: { name: 'pk', type: 'S' },
  rangeKey: { name: 'sk', type: 'N' },
  indexes: [
    { name: 'byG', kind: 'GSI', indexId: 11, hashKey: { name: 'g', type: 'S' }, rangeKey: { name: 'gs', type: 'N' }, projection: { type: 'ALL' } },
    { name: 'byGKeys', kind: 'GSI', indexId: 12, hashKey: { name: 'g', type: 'S' }, projection: { type: 'KEYS_ONLY' } },
    { name: 'byN', kind: 'LSI', indexId: 13, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'n', type: 'N' }, projection: { type: 'ALL' } },
  ],
};

const HASHES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const GROUPS = ['x', 'y', 'z'];
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

/** A deterministic data set: every collection has items, some without the GSI keys. */
function dataSet(): Item[] {
  const items: Item[] = [];
  let seed = 7;
  const next = (bound: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % bound;
  };
  for (const pk of HASHES) {
    for (let sk = 0; sk < 12; sk++) {
      const item: Item = { pk: S(pk), sk: N(sk), n: N(next(10)), v: S('v'.repeat(1 + next(40))) };
      if (next(5) !== 0) {
        item.g = S(GROUPS[next(GROUPS.length)]);
        item.gs = N(next(6));
      }
      items.push(item);
    }
  }
  return items;
}

const GSIS = TABLE.indexes.filter((index) => index.kind === 'GSI');

/** The key of an item's entry in a GSI, or undefined when it lacks the GSI's key attributes. */
function gsiEntryKey(index: IndexSchema, item: Item): Uint8Array | undefined {
  const values = spaceKeyAttributes(TABLE, index).map((attribute) => item[attribute.name]);
  if (values.some((value) => value === undefined)) return undefined;
  return encodeItemKey(index.indexId, values[0]!, ...values.slice(1).map((value) => value!));
}

/** `count` partitions of a space, ids from `firstId`, two of them cut at `cut` when given (a split inside a collection). */
function spacePartitions(spaceId: number, count: number, firstId: number, cut?: Uint8Array): PartitionDescriptor[] {
  const partitions = initialPartitions(spaceId, count, firstId);
  if (cut === undefined) return partitions;
  const owner = partitions.find((p) => Buffer.compare(p.startKey, cut) <= 0 && Buffer.compare(cut, p.endKey) < 0)!;
  return [
    ...partitions.filter((p) => p !== owner),
    { ...owner, endKey: cut, epoch: 2 },
    { ...owner, id: firstId + count, startKey: cut, epoch: 2 },
  ];
}

/** Partitions whose boundaries cut table collection `a`, and GSI collections `y` and `x`, in two, as a split at a sampled key may. */
function splitInsideCollection(): PartitionDescriptor[] {
  return [
    ...spacePartitions(TABLE.tableId, 2, 1, tableItemKey(TABLE, { pk: S('a'), sk: N(6) })),
    ...spacePartitions(11, 2, 20, encodeItemKey(11, S('y'), N(3))),
    ...spacePartitions(12, 1, 30, encodeItemKey(12, S('x'), S('d'))),
  ];
}

interface Layout {
  name: string;
  map: PartitionMap;
  stores: Map<number, LocalStore>;
}

const LAYOUTS: Array<{ name: string; partitions: () => PartitionDescriptor[] }> = [
  { name: 'one partition', partitions: () => [...spacePartitions(TABLE.tableId, 1, 1), ...spacePartitions(11, 1, 20), ...spacePartitions(12, 1, 30)] },
  { name: 'four partitions', partitions: () => [...spacePartitions(TABLE.tableId, 4, 1), ...spacePartitions(11, 3, 20), ...spacePartitions(12, 3, 30)] },
  { name: 'a collection split across two partitions', partitions: splitInsideCollection },
];

let reference: LocalStore;
const layouts: Layout[] = [];

beforeAll(async () => {
  const items = dataSet();
  reference = await openLocalStore({ inMemory: true });
  for (const item of items) await reference.partitions.write({ operations: [{ table: TABLE, kind: 'Put', key: { pk: item.pk, sk: item.sk }, item }] });
  for (const { name, partitions } of LAYOUTS) {
    const map = new PartitionMap(partitions());
    const stores = new Map<number, LocalStore>();
    for (const partition of map.all()) stores.set(partition.id, await openLocalStore({ inMemory: true }));
    for (const item of items) {
      const entryKeys = GSIS.map((index) => gsiEntryKey(index, item)).filter((key) => key !== undefined);
      for (const key of [tableItemKey(TABLE, item), ...entryKeys]) {
        const owner = map.lookup(key)!;
        await stores.get(owner.id)!.partitions.write({ operations: [{ table: TABLE, kind: 'Put', key: { pk: item.pk, sk: item.sk }, item }] });
      }
    }
    layouts.push({ name, map, stores });
  }
});

afterAll(async () => {
  await reference?.close();
  for (const layout of layouts) for (const store of layout.stores.values()) await store.close();
});

/** The space whose partitions a request must read: a GSI's own, else the table's. */
function spaceRead(request: RangeReadRequest): number {
  const index = TABLE.indexes.find((candidate) => candidate.name === request.indexName);
  return index?.kind === 'GSI' ? index.indexId : TABLE.tableId;
}

/**
 * Reads a partition from its own store; counts the partition reads. `refresh` stands for the map
 * fetched again when the read finds no partition to ask (undefined: none is expected).
 */
function readerOf(map: () => PartitionMap, stores: Map<number, LocalStore>, calls: { count: number }, refresh?: () => void): PartitionRangeReader {
  return async (locate, request) => {
    let partition = locate();
    if (partition === undefined && refresh !== undefined) {
      refresh();
      partition = locate();
    }
    if (partition === undefined) throw new Error('no partition located');
    expect(partition.tableId).toBe(spaceRead(request));
    expect(map().all()).toContain(partition);
    calls.count++;
    return { result: await stores.get(partition.id)!.partitions.readRange(request), partition };
  };
}

/** Every page of a read, following LastEvaluatedKey (bounded). */
async function allPages(read: (request: RangeReadRequest) => Promise<RangeReadResult>, request: RangeReadRequest): Promise<RangeReadResult[]> {
  const pages: RangeReadResult[] = [];
  let startKey: Item | undefined;
  for (let i = 0; i < 500; i++) {
    const page = await read(startKey === undefined ? request : { ...request, exclusiveStartKey: startKey });
    pages.push(page);
    if (page.lastEvaluatedKey === undefined) return pages;
    startKey = page.lastEvaluatedKey;
  }
  throw new Error('more than 500 pages');
}

function clusterRead(layout: Layout, calls = { count: 0 }): (request: RangeReadRequest) => Promise<RangeReadResult> {
  return (request) => readRangeAcross(request, { map: () => layout.map }, readerOf(() => layout.map, layout.stores, calls));
}

const referenceRead = (request: RangeReadRequest): Promise<RangeReadResult> => reference.partitions.readRange(request);

/** Random Query and Scan requests over the table and its indexes. */
const requests: fc.Arbitrary<RangeReadRequest> = fc
  .record({
    target: fc.constantFrom<undefined | string>(undefined, 'byG', 'byGKeys', 'byN'),
    query: fc.boolean(),
    hash: fc.nat(HASHES.length - 1),
    group: fc.nat(GROUPS.length - 1),
    sortOp: fc.constantFrom<undefined | 'GE' | 'BETWEEN' | 'LT'>(undefined, 'GE', 'BETWEEN', 'LT'),
    bound: fc.nat(8),
    forward: fc.boolean(),
    limit: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
    maxBytes: fc.constantFrom(60, 200, 700, 1 << 20),
    filter: fc.boolean(),
    projection: fc.boolean(),
    select: fc.constantFrom<Select>('ALL_ATTRIBUTES', 'ALL_PROJECTED_ATTRIBUTES', 'COUNT'),
    segment: fc.option(fc.integer({ min: 1, max: 5 }).chain((total) => fc.record({ total: fc.constant(total), segment: fc.nat(total - 1) })), { nil: undefined }),
  })
  .map((p): RangeReadRequest => {
    const index = TABLE.indexes.find((candidate) => candidate.name === p.target);
    let select: Select = p.projection ? 'SPECIFIC_ATTRIBUTES' : p.select;
    if (select === 'ALL_PROJECTED_ATTRIBUTES' && index === undefined) select = 'ALL_ATTRIBUTES';
    if (select === 'ALL_ATTRIBUTES' && index?.projection.type === 'KEYS_ONLY') select = 'ALL_PROJECTED_ATTRIBUTES';
    const request: RangeReadRequest = { table: TABLE, forward: true, maxBytes: p.maxBytes, select };
    if (index !== undefined) request.indexName = index.name;
    if (p.limit !== undefined) request.limit = p.limit;
    // The key condition's placeholder travels too, as the router sends every placeholder.
    request.values = { ':unusedHere': N(1) };
    if (p.filter) {
      request.filter = '#n > :k';
      request.names = { '#n': 'n' };
      request.values[':k'] = N(4);
    }
    if (p.projection) {
      request.projection = 'pk, sk, v';
      if (index?.kind === 'GSI') request.projection = `${index.hashKey.name}, pk, v`;
    }
    if (p.query) {
      request.hashValue = index?.kind === 'GSI' ? S(GROUPS[p.group]) : S(HASHES[p.hash]);
      request.forward = p.forward;
      const rangeKey = index === undefined ? TABLE.rangeKey : index.rangeKey;
      if (p.sortOp !== undefined && rangeKey !== undefined) {
        request.sortCondition = { op: p.sortOp, values: p.sortOp === 'BETWEEN' ? [N(p.bound), N(p.bound + 3)] : [N(p.bound)] };
      }
    } else if (p.segment !== undefined && p.segment.total > 1) {
      request.segment = p.segment;
    }
    return request;
  });

describe('reads across partitions (table and GSI walks, LSI merges)', () => {
  for (const { name } of LAYOUTS) {
    it(`pages equal one store's pages: ${name}`, async () => {
      const layout = layouts.find((candidate) => candidate.name === name)!;
      await fc.assert(
        fc.asyncProperty(requests, async (request) => {
          const expected = await allPages(referenceRead, request);
          const actual = await allPages(clusterRead(layout), request);
          expect(actual).toEqual(expected);
        }),
        { numRuns: 150, seed: 20261125 },
      );
    });
  }

  it('a Query of the table reads only the partition of its hash key', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const calls = { count: 0 };
    const pages = await allPages(clusterRead(layout, calls), { table: TABLE, hashValue: S('c'), forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' });
    expect(pages.flatMap((page) => page.items)).toHaveLength(12);
    expect(calls.count).toBe(1);
  });

  it('a Query of an LSI reads only the partition of its hash key', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const calls = { count: 0 };
    const page = await clusterRead(layout, calls)({ table: TABLE, indexName: 'byN', hashValue: S('d'), forward: false, maxBytes: 1 << 20, select: 'ALL_PROJECTED_ATTRIBUTES' });
    expect(page.items).toHaveLength(12);
    expect(calls.count).toBe(1);
  });

  it('a GSI Query reads only the partition of the GSI holding its hash key, in index key order', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const calls = { count: 0 };
    const page = await clusterRead(layout, calls)({ table: TABLE, indexName: 'byG', hashValue: S('y'), forward: true, maxBytes: 1 << 20, select: 'ALL_PROJECTED_ATTRIBUTES' });
    expect(calls.count).toBe(1);
    const order = page.items.map((item) => Number((item.gs as { N: string }).N));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(page.items.length).toBeGreaterThan(4);
  });

  it('a GSI Scan reads every partition of the GSI once, none of the table', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const calls = { count: 0 };
    const page = await clusterRead(layout, calls)({ table: TABLE, indexName: 'byGKeys', forward: true, maxBytes: 1 << 20, select: 'COUNT' });
    expect(calls.count).toBe(3);
    expect(page.count).toBe((await referenceRead({ table: TABLE, indexName: 'byGKeys', forward: true, maxBytes: 1 << 20, select: 'COUNT' })).count);
  });

  it('a parallel scan segment reads only the partitions overlapping its hash slice, of the table or of the GSI', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const calls = { count: 0 };
    await clusterRead(layout, calls)({ table: TABLE, forward: true, maxBytes: 1 << 20, select: 'COUNT', segment: { segment: 1, total: 4 } });
    expect(calls.count).toBe(1);
    // The GSI's 3 partitions cut its hash space in thirds: a third of it overlaps one of them.
    await clusterRead(layout, calls)({ table: TABLE, indexName: 'byG', forward: true, maxBytes: 1 << 20, select: 'COUNT', segment: { segment: 2, total: 3 } });
    expect(calls.count).toBe(2);
  });

  it('a map lacking a split half (the gap until its descriptor arrives) is fetched again, never read past', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'a collection split across two partitions')!;
    // The right halves are not known yet: each space has a gap where one lies.
    // The right halves of the table's and byG's splits (spacePartitions gives them id firstId + count).
    const missing = layout.map.all().filter((p) => p.id === 3 || p.id === 22);
    expect(missing.map((p) => p.tableId)).toEqual([TABLE.tableId, 11]);
    for (const request of [
      { table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' },
      { table: TABLE, indexName: 'byG', forward: true, maxBytes: 1 << 20, select: 'ALL_PROJECTED_ATTRIBUTES' },
      { table: TABLE, indexName: 'byG', hashValue: S('y'), forward: false, maxBytes: 1 << 20, select: 'ALL_PROJECTED_ATTRIBUTES' },
    ] satisfies RangeReadRequest[]) {
      let map = new PartitionMap(layout.map.all().filter((p) => !missing.includes(p)));
      let refreshes = 0;
      const refresh = (): void => {
        refreshes++;
        map = new PartitionMap(layout.map.all());
      };
      const page = await readRangeAcross(request, { map: () => map }, readerOf(() => map, layout.stores, { count: 0 }, refresh));
      expect(page).toEqual(await referenceRead(request));
      expect(refreshes).toBe(1);
    }
  });

  it('an ExclusiveStartKey outside the scan segment is refused as DynamoDB does', async () => {
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const firstPage = await clusterRead(layout)({ table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES', limit: 1, segment: { segment: 0, total: 4 } });
    const read = clusterRead(layout)({ table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES', exclusiveStartKey: firstPage.lastEvaluatedKey, segment: { segment: 2, total: 4 } });
    await expect(read).rejects.toMatchObject({ type: 'ValidationException', message: expect.stringContaining('Please use ExclusiveStartKey with correct Segment') });
  });

  it('reading attributes an LSI does not project, across partitions, is refused clearly', async () => {
    const keysOnly: TableSchema = {
      ...TABLE,
      indexes: [{ name: 'byNKeys', kind: 'LSI', indexId: 14, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'n', type: 'N' }, projection: { type: 'KEYS_ONLY' } }],
    };
    const layout = layouts.find((candidate) => candidate.name === 'four partitions')!;
    const read = clusterRead(layout)({ table: keysOnly, indexName: 'byNKeys', forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' });
    await expect(read).rejects.toMatchObject({ type: 'ValidationException', message: expect.stringContaining('not supported by this Shoal cluster yet') });
  });

  it('a key without its key attributes is a ValidationException', () => {
    expect(() => tableItemKey(TABLE, { pk: S('a') })).toThrow(expect.objectContaining({ type: 'ValidationException' }));
    expect(() => tableItemKey(TABLE, { pk: { L: [] }, sk: N(1) } as Item)).toThrow(expect.objectContaining({ type: 'ValidationException' }));
  });
});
