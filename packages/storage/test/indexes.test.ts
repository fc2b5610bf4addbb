import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { itemSize, type IndexSchema, type Item, type TableSchema } from '@shoal/model';
import type { LocalStore } from '../src/index.ts';
import { N, S, baseRequest, key, memoryStore, put, readAllPages, table } from './helpers.ts';

const lsiKeysOnly: IndexSchema = { name: 'byRank', kind: 'LSI', indexId: 11, hashKey: key('pk', 'S'), rangeKey: key('rnk', 'N'), projection: { type: 'KEYS_ONLY' } };
const gsiInclude: IndexSchema = {
  name: 'byCity', kind: 'GSI', indexId: 12, hashKey: key('city', 'S'), rangeKey: key('age', 'N'),
  projection: { type: 'INCLUDE', nonKeyAttributes: ['name'] },
};
const gsiAll: IndexSchema = { name: 'byEmail', kind: 'GSI', indexId: 13, hashKey: key('email', 'S'), projection: { type: 'ALL' } };
const schema: TableSchema = table(10, key('pk', 'S'), key('sk', 'S'), [lsiKeysOnly, gsiInclude, gsiAll]);

describe('secondary indexes', () => {
  let store: LocalStore;
  beforeEach(async () => {
    store = await memoryStore();
  });
  afterEach(async () => {
    await store.close();
  });

  const scanIndex = async (indexName: string, target: TableSchema = schema): Promise<Item[]> =>
    (await readAllPages(store.partitions, baseRequest(target, { indexName, select: 'ALL_PROJECTED_ATTRIBUTES' }))).flatMap((page) => page.items);
  const queryIndex = async (indexName: string, hashValue: Item[string]): Promise<Item[]> =>
    (await store.partitions.readRange(baseRequest(schema, { indexName, hashValue, select: 'ALL_PROJECTED_ATTRIBUTES' }), { consistent: true })).items;
  const sortByJson = (items: Item[]) => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

  /** The exact statistics an index should report for these entries. */
  const statisticsOf = (entries: Item[]) => ({ itemCount: entries.length, sizeBytes: entries.reduce((sum, e) => sum + itemSize(e), 0) });

  const alice: Item = { pk: S('u1'), sk: S('profile'), rnk: N(3), city: S('Paris'), age: N(30), name: S('Alice'), email: S('a@x'), extra: S('e') };
  const bob: Item = { pk: S('u1'), sk: S('z'), rnk: N(-1.5), city: S('Paris'), age: N(25), name: S('Bob') };

  it('projects KEYS_ONLY, INCLUDE and ALL entries, and leaves out items lacking index keys', async () => {
    await put(store.partitions, schema, alice);
    await put(store.partitions, schema, bob);
    await put(store.partitions, schema, { pk: S('u2'), sk: S('a'), name: S('nobody') });

    const lsi = await queryIndex('byRank', S('u1'));
    expect(lsi).toEqual([
      { pk: S('u1'), sk: S('z'), rnk: N(-1.5) },
      { pk: S('u1'), sk: S('profile'), rnk: N(3) },
    ]);
    const gsi = await queryIndex('byCity', S('Paris'));
    expect(gsi).toEqual([
      { pk: S('u1'), sk: S('z'), city: S('Paris'), age: N(25), name: S('Bob') },
      { pk: S('u1'), sk: S('profile'), city: S('Paris'), age: N(30), name: S('Alice') },
    ]);
    expect(await scanIndex('byEmail')).toEqual([alice]);
    expect(await store.partitions.statistics(schema, 'byRank')).toEqual(statisticsOf(lsi));
    expect(await store.partitions.statistics(schema, 'byCity')).toEqual(statisticsOf(gsi));
    expect(await store.partitions.statistics(schema, 'byEmail')).toEqual(statisticsOf([alice]));
    expect(await store.partitions.statistics(schema)).toEqual(statisticsOf([alice, bob, { pk: S('u2'), sk: S('a'), name: S('nobody') }]));
  });

  it('moves entries when index key attributes change and drops them when removed', async () => {
    await put(store.partitions, schema, alice);
    const update = async (expression: string, values?: Item) => {
      const names = expression.includes('#n') ? { names: { '#n': 'name' } } : {};
      const result = await store.partitions.write({
        operations: [{ table: schema, kind: 'Update', key: { pk: S('u1'), sk: S('profile') }, expressions: { update: expression, ...names, ...(values ? { values } : {}) } }],
      });
      expect(result).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
    };
    await update('SET city = :c, #n = :n', { ':c': S('Rome'), ':n': S('Alicia') });
    expect(await queryIndex('byCity', S('Paris'))).toEqual([]);
    expect(await queryIndex('byCity', S('Rome'))).toEqual([{ pk: S('u1'), sk: S('profile'), city: S('Rome'), age: N(30), name: S('Alicia') }]);
    expect((await scanIndex('byEmail'))[0]).toMatchObject({ name: S('Alicia'), city: S('Rome') });

    await update('REMOVE age, email');
    expect(await scanIndex('byCity')).toEqual([]);
    expect(await scanIndex('byEmail')).toEqual([]);
    expect(await queryIndex('byRank', S('u1'))).toEqual([{ pk: S('u1'), sk: S('profile'), rnk: N(3) }]);
    expect(await store.partitions.statistics(schema, 'byCity')).toEqual({ itemCount: 0, sizeBytes: 0 });
    expect(await store.partitions.statistics(schema, 'byEmail')).toEqual({ itemCount: 0, sizeBytes: 0 });

    await update('SET rnk = :r, age = :a', { ':r': N(7), ':a': N(40) });
    expect(await queryIndex('byRank', S('u1'))).toEqual([{ pk: S('u1'), sk: S('profile'), rnk: N(7) }]);
    expect(await queryIndex('byCity', S('Rome'))).toEqual([{ pk: S('u1'), sk: S('profile'), city: S('Rome'), age: N(40), name: S('Alicia') }]);

    const deleted = await store.partitions.write({ operations: [{ table: schema, kind: 'Delete', key: { pk: S('u1'), sk: S('profile') } }] });
    expect(deleted.applied).toBe(true);
    for (const index of schema.indexes) {
      expect(await scanIndex(index.name)).toEqual([]);
      expect(await store.partitions.statistics(schema, index.name)).toEqual({ itemCount: 0, sizeBytes: 0 });
    }
  });

  it('keeps items with equal index keys apart', async () => {
    for (let i = 0; i < 5; i++) await put(store.partitions, schema, { pk: S(`p${i}`), sk: S('s'), city: S('Oslo'), age: N(50) });
    const entries = await queryIndex('byCity', S('Oslo'));
    expect(entries).toHaveLength(5);
    for (const forward of [true, false]) {
      const pages = await readAllPages(store.partitions, baseRequest(schema, { indexName: 'byCity', hashValue: S('Oslo'), select: 'ALL_PROJECTED_ATTRIBUTES', limit: 2, forward }));
      expect(pages[0].lastEvaluatedKey).toEqual({ city: S('Oslo'), age: N(50), pk: expect.anything(), sk: S('s') });
      expect(pages.flatMap((page) => page.items)).toEqual(forward ? entries : [...entries].reverse());
    }
    expect(await store.partitions.statistics(schema, 'byCity')).toEqual(statisticsOf(entries));
  });

  it('refuses index key values of the wrong type or empty', async () => {
    const badPut = await store.partitions.write({
      operations: [{ table: schema, kind: 'Put', key: { pk: S('p'), sk: S('s') }, item: { pk: S('p'), sk: S('s'), age: S('old'), city: S('x') } }],
    });
    expect(badPut).toEqual({
      applied: false,
      outcomes: [{ status: 'invalid', message: 'One or more parameter values were invalid: Type mismatch for Index Key age Expected: N Actual: S IndexName: byCity' }],
    });
    const emptyKey = await store.partitions.write({
      operations: [{ table: schema, kind: 'Update', key: { pk: S('p'), sk: S('s') }, expressions: { update: 'SET email = :e', values: { ':e': S('') } } }],
    });
    expect(emptyKey.applied).toBe(false);
    expect(emptyKey.outcomes[0]).toMatchObject({ status: 'invalid', message: expect.stringContaining('cannot contain an empty string value. IndexName: byEmail, IndexKey: email') });
    expect(await store.partitions.statistics(schema)).toEqual({ itemCount: 0, sizeBytes: 0 });
  });

  it('fetches attributes an LSI does not project from the table', async () => {
    await put(store.partitions, schema, alice);
    const all = await store.partitions.readRange(baseRequest(schema, { indexName: 'byRank', hashValue: S('u1') }), { consistent: true });
    expect(all.items).toEqual([alice]);
    const filtered = await store.partitions.readRange(
      baseRequest(schema, { indexName: 'byRank', hashValue: S('u1'), select: 'ALL_PROJECTED_ATTRIBUTES', filter: 'extra = :e', values: { ':e': S('e') } }),
      { consistent: true },
    );
    expect(filtered.items).toEqual([{ pk: S('u1'), sk: S('profile'), rnk: N(3) }]);
  });

  it('backfills a new index from existing items, also while writes go on', async () => {
    const plain = table(20, key('pk', 'S'), key('sk', 'S'));
    const items: Item[] = [];
    for (let i = 0; i < 1500; i++) {
      const item: Item = { pk: S(`p${i % 37}`), sk: S(`s${i}`), ...(i % 3 === 0 ? {} : { city: S(`c${i % 5}`), age: N(i) }), name: S(`n${i}`) };
      items.push(item);
      await put(store.partitions, plain, item);
    }
    const withIndex: TableSchema = { ...plain, indexes: [{ ...gsiInclude, indexId: 21 }] };
    // Writes during the backfill: updates that move entries, deletes, and new items.
    const backfill = store.partitions.backfillIndex(withIndex, 'byCity');
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i += 7) {
      writes.push(store.partitions.write({
        operations: [{ table: withIndex, kind: 'Update', key: { pk: items[i].pk, sk: items[i].sk }, expressions: { update: 'SET city = :c, age = :a', values: { ':c': S('moved'), ':a': N(i) } } }],
      }));
      writes.push(store.partitions.write({ operations: [{ table: withIndex, kind: 'Delete', key: { pk: items[i + 1].pk, sk: items[i + 1].sk } }] }));
      writes.push(put(store.partitions, withIndex, { pk: S('new'), sk: S(`n${i}`), city: S('moved'), age: N(-i) }));
    }
    await Promise.all([backfill, ...writes]);

    const tableItems = (await readAllPages(store.partitions, baseRequest(withIndex))).flatMap((page) => page.items);
    const expected = tableItems
      .filter((item) => item.city !== undefined && item.age !== undefined)
      .map((item) => ({ pk: item.pk, sk: item.sk, city: item.city, age: item.age, ...(item.name ? { name: item.name } : {}) }));
    const entries = await scanIndex('byCity', withIndex);
    expect(sortByJson(entries)).toEqual(sortByJson(expected));
    expect(await store.partitions.statistics(withIndex, 'byCity')).toEqual(statisticsOf(expected));

    // A second backfill starts over and ends with the same index.
    await store.partitions.backfillIndex(withIndex, 'byCity');
    expect(sortByJson(await scanIndex('byCity', withIndex))).toEqual(sortByJson(expected));
    expect(await store.partitions.statistics(withIndex, 'byCity')).toEqual(statisticsOf(expected));
  });

  it('leaves items whose index key has another type out of a backfilled index, also when they change', async () => {
    const plain = table(60, key('pk', 'S'), key('sk', 'S'));
    await put(store.partitions, plain, { pk: S('good'), sk: S('s'), city: S('c'), age: N(1) });
    await put(store.partitions, plain, { pk: S('wrongType'), sk: S('s'), city: N(5), age: N(1) });
    await put(store.partitions, plain, { pk: S('empty'), sk: S('s'), city: S(''), age: N(1) });
    const withIndex: TableSchema = { ...plain, indexes: [{ ...gsiInclude, indexId: 61 }] };
    await store.partitions.backfillIndex(withIndex, 'byCity');
    const good = [{ pk: S('good'), sk: S('s'), city: S('c'), age: N(1) }];
    expect(await scanIndex('byCity', withIndex)).toEqual(good);
    for (const pk of ['wrongType', 'empty']) {
      const deleted = await store.partitions.write({ operations: [{ table: withIndex, kind: 'Delete', key: { pk: S(pk), sk: S('s') } }] });
      expect(deleted.applied).toBe(true);
    }
    expect(await store.partitions.statistics(withIndex, 'byCity')).toEqual(statisticsOf(good));
  });

  it('stops a backfill when its index is dropped', async () => {
    const plain = table(50, key('pk', 'S'), key('sk', 'S'));
    for (let i = 0; i < 1100; i++) await put(store.partitions, plain, { pk: S(`p${i % 13}`), sk: S(`s${i}`), city: S('c'), age: N(i) });
    const withIndex: TableSchema = { ...plain, indexes: [{ ...gsiInclude, indexId: 51 }] };
    const backfill = store.partitions.backfillIndex(withIndex, 'byCity');
    await store.partitions.dropIndex(withIndex, 'byCity');
    await backfill;
    expect(await scanIndex('byCity', withIndex)).toEqual([]);
    expect(await store.partitions.statistics(withIndex, 'byCity')).toEqual({ itemCount: 0, sizeBytes: 0 });
  });

  it('drops an index and a table with all their entries and statistics', async () => {
    const other = table(30, key('pk', 'S'), key('sk', 'S'));
    for (let i = 0; i < 1200; i++) {
      await put(store.partitions, schema, { pk: S(`p${i % 10}`), sk: S(`s${i}`), rnk: N(i), city: S('c'), age: N(i), email: S(`e${i}`) });
    }
    await put(store.partitions, other, { pk: S('keep'), sk: S('me') });
    await store.partitions.dropIndex(schema, 'byCity');
    expect(await scanIndex('byCity')).toEqual([]);
    expect(await store.partitions.statistics(schema, 'byCity')).toEqual({ itemCount: 0, sizeBytes: 0 });
    expect((await store.partitions.statistics(schema, 'byEmail')).itemCount).toBe(1200);

    await store.partitions.dropTable(schema);
    for (const indexName of [undefined, 'byRank', 'byEmail']) {
      const pages = await readAllPages(store.partitions, baseRequest(schema, indexName ? { indexName, select: 'ALL_PROJECTED_ATTRIBUTES' } : {}));
      expect(pages.flatMap((page) => page.items)).toEqual([]);
      expect(await store.partitions.statistics(schema, indexName)).toEqual({ itemCount: 0, sizeBytes: 0 });
    }
    expect((await readAllPages(store.partitions, baseRequest(other))).flatMap((page) => page.items)).toEqual([{ pk: S('keep'), sk: S('me') }]);
  });

  it('answers an unknown index with a ValidationException', async () => {
    await expect(store.partitions.readRange(baseRequest(schema, { indexName: 'nope' }), { consistent: true })).rejects.toMatchObject({
      type: 'ValidationException',
      message: 'The table does not have the specified index: nope',
    });
  });
});
