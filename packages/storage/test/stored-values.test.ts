import { afterEach, describe, expect, it } from 'vitest';
import { itemSize, type Item } from '@shoal/model';
import { StoredItem } from '../src/change-set.ts';
import { CommitQueue } from '../src/commit-queue.ts';
import { openDatabase, type Database, type Mutation } from '../src/database.ts';
import { openLocalStore, type LocalStore } from '../src/index.ts';
import { PartitionStore } from '../src/partition-store.ts';
import { N, S, baseRequest, key, put, readAllPages, table, temporaryDirectory } from './helpers.ts';

const schema = table(1, key('pk', 'S'));

/** An in-memory database that records the mutations of every batch. */
async function recordingDatabase(): Promise<{ database: Database; batches: Mutation[][] }> {
  const database = await openDatabase({ inMemory: true });
  const batches: Mutation[][] = [];
  return {
    batches,
    database: {
      ...database,
      writeBatch(mutations) {
        batches.push(mutations);
        return database.writeBatch(mutations);
      },
    },
  };
}

describe('StoredItem', () => {
  it('answers a size stored with the text without parsing it', () => {
    const stored = StoredItem.of({ json: '{not json', size: 7 });
    expect(stored.size).toBe(7);
    expect(() => stored.item).toThrow(SyntaxError);
  });

  it('measures a text stored without its size once, and keeps the size in the cache entry it came from', () => {
    const item: Item = { pk: S('a'), v: N(12) };
    const cached = { json: JSON.stringify(item), size: undefined };
    expect(StoredItem.of(cached).size).toBe(itemSize(item));
    expect(cached.size).toBe(itemSize(item));
  });
});

describe('values written as text', () => {
  let store: LocalStore | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  it('writes an item as its JSON text with its size, and caches both for the write that replaces it', async () => {
    const { database, batches } = await recordingDatabase();
    const commits = new CommitQueue(database);
    const partitions = new PartitionStore(database.level, commits);
    const first: Item = { pk: S('a'), v: S('x'.repeat(40)) };
    await put(partitions, schema, first);
    const itemMutation = batches[0].find((m) => typeof m.value === 'string');
    expect(itemMutation).toMatchObject({ value: JSON.stringify(first), size: itemSize(first) });
    expect(commits.durableText(itemMutation!.key)).toEqual({ json: JSON.stringify(first), size: itemSize(first) });

    const second: Item = { pk: S('a'), v: S('y') };
    await put(partitions, schema, second);
    await put(partitions, schema, { pk: S('b') });
    expect(await partitions.statistics(schema)).toEqual({ itemCount: 2, sizeBytes: itemSize(second) + itemSize({ pk: S('b') }) });
    await partitions.write({ operations: [{ table: schema, kind: 'Delete', key: { pk: S('a') } }] });
    expect(await partitions.statistics(schema)).toEqual({ itemCount: 1, sizeBytes: itemSize({ pk: S('b') }) });
    await commits.close();
    await database.close();
  });

  it('keeps non-ASCII text intact through LevelDB and a reopen, for reads, scans and sizes', async () => {
    const directory = await temporaryDirectory();
    try {
      const item: Item = { pk: S('Grüße €'), v: S('😀 ß \u0000 "quoted" \\ end') };
      store = await openLocalStore({ dataDir: directory.path });
      await put(store.partitions, schema, item);
      await store.close();
      store = await openLocalStore({ dataDir: directory.path });
      const found = await store.partitions.get({ table: schema, key: { pk: item.pk } }, { consistent: true });
      expect(found?.json).toBe(JSON.stringify(item));
      expect(found?.item).toEqual(item);
      expect(found?.size).toBe(itemSize(item));
      const pages = await readAllPages(store.partitions, baseRequest(schema));
      expect(pages.flatMap((page) => page.items)).toEqual([item]);
      // A write over the item read back from disk counts off the bytes it held.
      await put(store.partitions, schema, { pk: item.pk });
      expect(await store.partitions.statistics(schema)).toEqual({ itemCount: 1, sizeBytes: itemSize({ pk: item.pk }) });
    } finally {
      await store?.close();
      store = undefined;
      await directory.remove();
    }
  });
});
