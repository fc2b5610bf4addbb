import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TableRecord, TableSchema } from '@shoal/model';
import { openLocalStore, type LocalStore } from '../src/index.ts';
import { N, S, baseRequest, key, memoryStore, put, readAllPages, table, temporaryDirectory } from './helpers.ts';

function record(schema: TableSchema): TableRecord {
  return { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: { team: 'core' } };
}

describe('table catalog', () => {
  let store: LocalStore;
  beforeEach(async () => {
    store = await memoryStore();
  });
  afterEach(async () => {
    await store.close();
  });

  it('stores, lists by name and deletes table records', async () => {
    for (const name of ['zeta', 'Alpha', 'beta.v2', 'a-b_c']) {
      await store.catalog.create(record({ ...table(1, key('pk', 'S')), name }));
    }
    expect((await store.catalog.list()).map((r) => r.schema.name)).toEqual(['Alpha', 'a-b_c', 'beta.v2', 'zeta']);
    expect(await store.catalog.get('beta.v2')).toEqual(record({ ...table(1, key('pk', 'S')), name: 'beta.v2' }));
    await store.catalog.delete('beta.v2');
    expect(await store.catalog.get('beta.v2')).toBeUndefined();
    expect(await store.catalog.list()).toHaveLength(3);
  });

  it('hands out distinct space ids from 1, also concurrently', async () => {
    const ids = await Promise.all(Array.from({ length: 50 }, () => store.catalog.allocateSpaceId()));
    expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('keeps catalog records out of table scans', async () => {
    const schema = table(await store.catalog.allocateSpaceId(), key('pk', 'S'));
    await store.catalog.create(record(schema));
    await put(store.partitions, schema, { pk: S('only') });
    const pages = await readAllPages(store.partitions, baseRequest(schema));
    expect(pages.flatMap((page) => page.items)).toEqual([{ pk: S('only') }]);
  });
});

describe('a store on disk', () => {
  for (const sync of [false, true]) {
    it(`keeps everything across close and reopen (sync ${sync})`, async () => {
      const directory = await temporaryDirectory();
      try {
        const schema: TableSchema = table(1, key('pk', 'S'), key('sk', 'N'), [
          { name: 'byV', kind: 'GSI', indexId: 2, hashKey: key('v', 'S'), projection: { type: 'KEYS_ONLY' } },
        ]);
        let store = await openLocalStore({ dataDir: directory.path, sync });
        expect(await store.catalog.allocateSpaceId()).toBe(1);
        expect(await store.catalog.allocateSpaceId()).toBe(2);
        await store.catalog.create(record(schema));
        await Promise.all(Array.from({ length: 100 }, (_, i) => put(store.partitions, schema, { pk: S(`p${i % 7}`), sk: N(i), v: S(`v${i % 3}`) })));
        const statistics = await store.partitions.statistics(schema);
        const indexStatistics = await store.partitions.statistics(schema, 'byV');
        await store.close();

        store = await openLocalStore({ dataDir: directory.path, sync });
        expect(await store.catalog.get(schema.name)).toEqual(record(schema));
        expect(await store.catalog.allocateSpaceId()).toBe(3);
        expect(await store.partitions.statistics(schema)).toEqual(statistics);
        expect(statistics.itemCount).toBe(100);
        expect(await store.partitions.statistics(schema, 'byV')).toEqual(indexStatistics);
        const items = (await readAllPages(store.partitions, baseRequest(schema, { limit: 30 }))).flatMap((page) => page.items);
        expect(items).toHaveLength(100);
        const query = await store.partitions.readRange(baseRequest(schema, { indexName: 'byV', hashValue: S('v1'), select: 'COUNT' }), { consistent: true });
        expect(query.count).toBe(33);
        await store.close();
      } finally {
        await directory.remove();
      }
    });
  }

  it('serializes concurrent fsynced writes sharing batches', async () => {
    const directory = await temporaryDirectory();
    try {
      const store = await openLocalStore({ dataDir: directory.path, sync: true });
      const schema = table(1, key('pk', 'S'));
      const add = () =>
        store.partitions.write({
          operations: [{ table: schema, kind: 'Update', key: { pk: S('n') }, expressions: { update: 'ADD n :one', values: { ':one': N(1) } } }],
        });
      const results = await Promise.all(Array.from({ length: 200 }, add));
      expect(results.every((result) => result.applied)).toBe(true);
      expect(await store.partitions.get({ table: schema, key: { pk: S('n') } }, { consistent: true })).toMatchObject({ item: { n: N(200) } });
      await store.close();
    } finally {
      await directory.remove();
    }
  });

  it('refuses work after close, and needs a dataDir or inMemory', async () => {
    const store = await memoryStore();
    await store.close();
    await expect(put(store.partitions, table(1, key('pk', 'S')), { pk: S('x') })).rejects.toMatchObject({ type: 'InternalServerError' });
    await expect(openLocalStore({})).rejects.toThrow(/dataDir or inMemory/);
  });
});
