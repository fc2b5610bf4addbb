import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  encodeItemKey,
  initialPartitions,
  itemSize,
  partitionContains,
  type IndexSchema,
  type Item,
  type PartitionDescriptor,
  type RangeReadRequest,
  type TableSchema,
} from '@shoal/model';
import { partitionBound, type LocalStore, type PartitionBound } from '../src/index.ts';
import { N, S, baseRequest, key, memoryStore, put, random, table } from './helpers.ts';

// One node's store holding the replicas of both partitions of a table: every read, count and index
// change bounded to one partition must see exactly that partition's items and the entries of those items.
const lsi: IndexSchema = { name: 'byRank', kind: 'LSI', indexId: 31, hashKey: key('pk', 'S'), rangeKey: key('rnk', 'N'), projection: { type: 'KEYS_ONLY' } };
const gsi: IndexSchema = {
  name: 'byCity', kind: 'GSI', indexId: 32, hashKey: key('city', 'S'), rangeKey: key('age', 'N'),
  projection: { type: 'INCLUDE', nonKeyAttributes: ['name'] },
};
const plain: TableSchema = table(30, key('pk', 'S'), key('sk', 'N'));
const schema: TableSchema = { ...plain, indexes: [lsi, gsi] };
const [first, second] = initialPartitions(schema.tableId, 2, 1);
const PARTITIONS: PartitionDescriptor[] = [first, second];

function makeItems(count: number): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < count; i++) {
    items.push({
      pk: S(`p${i % 41}`),
      sk: N(i),
      rnk: N(i % 7),
      ...(i % 4 === 0 ? {} : { city: S(`c${i % 3}`), age: N(i % 50) }),
      name: S(`n${i}`),
      pad: S('x'.repeat(i % 20)),
    });
  }
  return items;
}

const itemKey = (item: Item): Uint8Array => encodeItemKey(schema.tableId, item.pk, item.sk);
const ownerOf = (item: Item): PartitionDescriptor => PARTITIONS.find((p) => partitionContains(p, itemKey(item)))!;
const inPartition = (items: Item[], partition: PartitionDescriptor): Item[] => items.filter((item) => ownerOf(item) === partition);
const sortByJson = (items: Item[]): Item[] => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
const statisticsOf = (entries: Item[]) => ({ itemCount: entries.length, sizeBytes: entries.reduce((sum, e) => sum + itemSize(e), 0) });

/** The entries an index holds for these items. */
function entriesOf(index: IndexSchema, items: Item[]): Item[] {
  if (index === lsi) return items.map((item) => ({ pk: item.pk, sk: item.sk, rnk: item.rnk }));
  return items
    .filter((item) => item.city !== undefined)
    .map((item) => ({ pk: item.pk, sk: item.sk, city: item.city, age: item.age, ...(item.name ? { name: item.name } : {}) }));
}

describe('PartitionStore bounded to one partition of a table whose two partitions share the store', () => {
  let store: LocalStore;
  let items: Item[];

  beforeEach(async () => {
    store = await memoryStore();
    items = makeItems(600);
    for (const item of items) await put(store.partitions, schema, item);
  });
  afterEach(async () => {
    await store.close();
  });

  /** Every page of a bounded read, following LastEvaluatedKey (bounded loop). */
  async function readAll(request: RangeReadRequest, bound: PartitionBound): Promise<{ items: Item[]; pages: Array<{ scannedCount: number; count: number }> }> {
    const all: Item[] = [];
    const pages = [];
    let exclusiveStartKey: Item | undefined;
    for (let page = 0; page < 1000; page++) {
      const result = await store.partitions.readRange({ ...request, ...(exclusiveStartKey ? { exclusiveStartKey } : {}) }, { consistent: true }, bound);
      all.push(...result.items);
      pages.push({ scannedCount: result.scannedCount, count: result.count });
      if (!result.lastEvaluatedKey) return { items: all, pages };
      exclusiveStartKey = result.lastEvaluatedKey;
    }
    throw new Error('too many pages');
  }

  it('both partitions hold items (the test data spreads over the hash space)', () => {
    for (const partition of PARTITIONS) expect(inPartition(items, partition).length).toBeGreaterThan(100);
  });

  it('a table Scan stops at the bound, also page by page with Limit and in parallel segments', async () => {
    for (const partition of PARTITIONS) {
      const bound = partitionBound(partition);
      const expected = sortByJson(inPartition(items, partition));
      expect(sortByJson((await readAll(baseRequest(schema), bound)).items)).toEqual(expected);
      const paged = await readAll(baseRequest(schema, { limit: 17 }), bound);
      expect(sortByJson(paged.items)).toEqual(expected);
      expect(paged.pages.slice(0, -1).every((page) => page.scannedCount === 17)).toBe(true);
      const segments: Item[] = [];
      for (let segment = 0; segment < 3; segment++) {
        segments.push(...(await readAll(baseRequest(schema, { segment: { segment, total: 3 } }), bound)).items);
      }
      expect(sortByJson(segments)).toEqual(expected);
    }
  });

  it('a table Query of a collection in the partition reads it whole, forward and backward; one outside reads nothing', async () => {
    const sample = items[5];
    const owner = ownerOf(sample);
    const other = PARTITIONS.find((p) => p !== owner)!;
    const collection = items.filter((item) => JSON.stringify(item.pk) === JSON.stringify(sample.pk));
    for (const forward of [true, false]) {
      const result = await readAll(baseRequest(schema, { hashValue: sample.pk, forward, limit: 4 }), partitionBound(owner));
      const sortValue = (item: Item): number => Number((item.sk as { N: string }).N);
      expect(result.items.map(sortValue)).toEqual(collection.map(sortValue).sort((a, b) => (forward ? a - b : b - a)));
    }
    expect((await readAll(baseRequest(schema, { hashValue: sample.pk }), partitionBound(other))).items).toEqual([]);
  });

  it('index Scans skip entries of the other partition’s items before Limit counts them', async () => {
    for (const index of [lsi, gsi]) {
      for (const partition of PARTITIONS) {
        const bound = partitionBound(partition);
        const expected = sortByJson(entriesOf(index, inPartition(items, partition)));
        const request = baseRequest(schema, { indexName: index.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
        expect(sortByJson((await readAll(request, bound)).items), index.name).toEqual(expected);
        const paged = await readAll({ ...request, limit: 11 }, bound);
        expect(sortByJson(paged.items), index.name).toEqual(expected);
        // Every full page read exactly Limit entries of this partition: skipped entries are not counted.
        expect(paged.pages.slice(0, -1).every((page) => page.scannedCount === 11 && page.count === 11)).toBe(true);
      }
    }
  });

  it('a GSI Query answers from the partition’s own entries; the two partitions’ answers make the whole', async () => {
    const request = baseRequest(schema, { indexName: gsi.name, hashValue: S('c1'), select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    const whole = (await store.partitions.readRange(request, { consistent: true })).items;
    const parts = await Promise.all(PARTITIONS.map(async (p) => (await readAll(request, partitionBound(p))).items));
    for (const [i, partition] of PARTITIONS.entries()) {
      expect(sortByJson(parts[i])).toEqual(sortByJson(entriesOf(gsi, inPartition(items, partition)).filter((e) => JSON.stringify(e.city) === JSON.stringify(S('c1')))));
    }
    expect(sortByJson(parts.flat())).toEqual(sortByJson(whole));
  });

  it('counts the statistics of one partition exactly, adding up to the whole table’s', async () => {
    for (const indexName of [undefined, lsi.name, gsi.name]) {
      const parts = await Promise.all(PARTITIONS.map((p) => store.partitions.statistics(schema, indexName, partitionBound(p))));
      PARTITIONS.forEach((partition, i) => {
        const mine = inPartition(items, partition);
        const expected = indexName === undefined ? mine : entriesOf(indexName === lsi.name ? lsi : gsi, mine);
        expect(parts[i], String(indexName)).toEqual(statisticsOf(expected));
      });
      const whole = await store.partitions.statistics(schema, indexName);
      expect(parts[0].itemCount + parts[1].itemCount).toBe(whole.itemCount);
      expect(parts[0].sizeBytes + parts[1].sizeBytes).toBe(whole.sizeBytes);
    }
  });

  it('drops one partition’s entries of an index, leaving the other’s and keeping the space statistics exact', async () => {
    await store.partitions.dropIndex(schema, gsi.name, partitionBound(first));
    const request = baseRequest(schema, { indexName: gsi.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    expect((await readAll(request, partitionBound(first))).items).toEqual([]);
    const kept = entriesOf(gsi, inPartition(items, second));
    expect(sortByJson((await readAll(request, partitionBound(second))).items)).toEqual(sortByJson(kept));
    expect(await store.partitions.statistics(schema, gsi.name)).toEqual(statisticsOf(kept));
    // The LSI and the table are untouched.
    expect(await store.partitions.statistics(schema, lsi.name)).toEqual(statisticsOf(entriesOf(lsi, items)));
    expect(await store.partitions.statistics(schema)).toEqual(statisticsOf(items));
  });

  it('backfills a new index one partition at a time, while writes go on in both', async () => {
    const fresh: TableSchema = { ...plain, tableId: 40, indexes: [] };
    const freshKey = (item: Item) => encodeItemKey(fresh.tableId, item.pk, item.sk);
    const [a, b] = initialPartitions(fresh.tableId, 2, 11);
    for (const item of items) await put(store.partitions, fresh, item);
    const withIndex: TableSchema = { ...fresh, indexes: [{ ...gsi, indexId: 41 }] };
    const next = random(7);
    const writes: Promise<unknown>[] = [];
    const backfillA = store.partitions.backfillIndex(withIndex, gsi.name, partitionBound(a));
    for (let i = 0; i < 120; i++) {
      const target = items[Math.floor(next() * items.length)];
      writes.push(
        next() < 0.3
          ? store.partitions.write({ operations: [{ table: withIndex, kind: 'Delete', key: { pk: target.pk, sk: target.sk } }] })
          : store.partitions.write({
              operations: [{ table: withIndex, kind: 'Update', key: { pk: target.pk, sk: target.sk }, expressions: { update: 'SET city = :c, age = :a', values: { ':c': S('moved'), ':a': N(i) } } }],
            }),
      );
    }
    const backfillB = store.partitions.backfillIndex(withIndex, gsi.name, partitionBound(b));
    await Promise.all([backfillA, backfillB, ...writes]);

    const tableItems = (await store.partitions.readRange(baseRequest(withIndex), { consistent: true })).items;
    const request = baseRequest(withIndex, { indexName: gsi.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    for (const partition of [a, b]) {
      const mine = tableItems.filter((item) => partitionContains(partition, freshKey(item)));
      expect(sortByJson((await readAll(request, partitionBound(partition))).items)).toEqual(sortByJson(entriesOf(gsi, mine)));
      expect(await store.partitions.statistics(withIndex, gsi.name, partitionBound(partition))).toEqual(statisticsOf(entriesOf(gsi, mine)));
    }
  });

  it('a whole-table backfill and a partition’s backfill of one index run in turn, ending exact under writes', async () => {
    // A replica replaying its log before the node knows its bound backfills the whole table.
    const fresh: TableSchema = { ...plain, tableId: 50, indexes: [] };
    for (const item of items) await put(store.partitions, fresh, item);
    const withIndex: TableSchema = { ...fresh, indexes: [{ ...gsi, indexId: 51 }] };
    const [a] = initialPartitions(fresh.tableId, 2, 21);
    const next = random(5);
    const runs = [store.partitions.backfillIndex(withIndex, gsi.name), store.partitions.backfillIndex(withIndex, gsi.name, partitionBound(a))];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 150; i++) {
      const target = items[Math.floor(next() * items.length)];
      writes.push(
        store.partitions.write({
          operations: [{ table: withIndex, kind: 'Update', key: { pk: target.pk, sk: target.sk }, expressions: { update: 'SET city = :c, age = :a', values: { ':c': S(`w${i % 3}`), ':a': N(i) } } }],
        }),
      );
    }
    await Promise.all([...runs, ...writes]);
    const tableItems = (await store.partitions.readRange(baseRequest(withIndex), { consistent: true })).items;
    const request = baseRequest(withIndex, { indexName: gsi.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    expect(sortByJson((await store.partitions.readRange(request, { consistent: true })).items)).toEqual(sortByJson(entriesOf(gsi, tableItems)));
  });

  it('a drop of the index cancels backfills under way and those waiting for their turn', async () => {
    const fresh: TableSchema = { ...plain, tableId: 60, indexes: [] };
    for (const item of items) await put(store.partitions, fresh, item);
    const withIndex: TableSchema = { ...fresh, indexes: [{ ...gsi, indexId: 61 }] };
    const [a] = initialPartitions(fresh.tableId, 2, 31);
    const walking = store.partitions.backfillIndex(withIndex, gsi.name);
    const waiting = store.partitions.backfillIndex(withIndex, gsi.name, partitionBound(a));
    await store.partitions.dropIndex(withIndex, gsi.name);
    await Promise.all([walking, waiting]);
    const request = baseRequest(withIndex, { indexName: gsi.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    expect((await store.partitions.readRange(request, { consistent: true })).items).toEqual([]);
    expect(await store.partitions.statistics(withIndex, gsi.name)).toEqual({ itemCount: 0, sizeBytes: 0 });
  });

  it('a partition’s backfill leaves the other partition’s entries alone', async () => {
    // Partition two's entries exist; a backfill of partition one starts over for partition one only.
    await store.partitions.dropIndex(schema, gsi.name, partitionBound(first));
    await store.partitions.backfillIndex(schema, gsi.name, partitionBound(first));
    const request = baseRequest(schema, { indexName: gsi.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
    expect(sortByJson((await store.partitions.readRange(request, { consistent: true })).items)).toEqual(sortByJson(entriesOf(gsi, items)));
    expect(await store.partitions.statistics(schema, gsi.name)).toEqual(statisticsOf(entriesOf(gsi, items)));
  });

  it('dropPartitionData deletes the partition’s items, their index entries and the group’s applied index, nothing else', async () => {
    await store.partitions.markApplied({ groupId: first.id, index: 42 });
    await store.partitions.markApplied({ groupId: second.id, index: 43 });
    await store.partitions.dropPartitionData(schema, partitionBound(first), first.id);

    const kept = inPartition(items, second);
    expect(sortByJson((await store.partitions.readRange(baseRequest(schema), { consistent: true })).items)).toEqual(sortByJson(kept));
    for (const index of [lsi, gsi]) {
      const request = baseRequest(schema, { indexName: index.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const });
      expect(sortByJson((await store.partitions.readRange(request, { consistent: true })).items), index.name).toEqual(sortByJson(entriesOf(index, kept)));
      expect(await store.partitions.statistics(schema, index.name)).toEqual(statisticsOf(entriesOf(index, kept)));
    }
    expect(await store.partitions.statistics(schema)).toEqual(statisticsOf(kept));
    expect(await store.partitions.appliedIndex(first.id)).toBe(0);
    expect(await store.partitions.appliedIndex(second.id)).toBe(43);
  });

  it('bounds cutting inside item collections select index entries by their base item exactly', async () => {
    // Bounds need not fall on hash slice edges (a split may cut anywhere): take item keys as edges.
    const keys = items.map(itemKey).sort(Buffer.compare);
    const next = random(11);
    const inBound = (bound: PartitionBound, key: Uint8Array) =>
      Buffer.compare(bound.start, key) <= 0 && (bound.end.length === 0 || Buffer.compare(key, bound.end) < 0);
    for (let round = 0; round < 6; round++) {
      const [a, b] = [Math.floor(next() * keys.length), Math.floor(next() * keys.length)].sort((x, y) => x - y);
      const bound: PartitionBound = { start: keys[a], end: round % 4 === 0 ? new Uint8Array() : keys[b] };
      const mine = items.filter((item) => inBound(bound, itemKey(item)));
      for (const index of [lsi, gsi]) {
        const request = baseRequest(schema, { indexName: index.name, select: 'ALL_PROJECTED_ATTRIBUTES' as const, limit: 40 });
        expect(sortByJson((await readAll(request, bound)).items), `${index.name} round ${round}`).toEqual(sortByJson(entriesOf(index, mine)));
        expect(await store.partitions.statistics(schema, index.name, bound)).toEqual(statisticsOf(entriesOf(index, mine)));
      }
      expect(sortByJson((await readAll(baseRequest(schema), bound)).items)).toEqual(sortByJson(mine));
    }
  });

  it('without a bound, reads and statistics cover the whole table as before', async () => {
    expect(sortByJson((await store.partitions.readRange(baseRequest(schema), { consistent: true })).items)).toEqual(sortByJson(items));
    expect(await store.partitions.statistics(schema)).toEqual(statisticsOf(items));
  });
});
