import type { Item, TableSchema } from '@shoal/model';
import { afterEach, describe, expect, it } from 'vitest';
import { ItemCache } from '../src/item-cache.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkPartitionSnapshot, openLocalStore, type LocalStore } from '../src/index.ts';
import { key, memoryStore, put, S, N, table, temporaryDirectory } from './helpers.ts';

describe('ItemCache', () => {
  it('holds texts by key up to its capacity, dropping the oldest first', () => {
    const cache = new ItemCache(320);
    cache.set('a', 'x'.repeat(9));
    cache.set('b', 'y'.repeat(9));
    expect(cache.get('a')?.json).toBe('x'.repeat(9));
    expect(cache.heldCharacters).toBe(20);
    for (let i = 10; i < 50; i++) cache.set(`k${i}`, 'z'.repeat(10)); // 13 characters each
    expect(cache.heldCharacters).toBeLessThanOrEqual(320);
    expect(cache.heldCharacters).toBeGreaterThan(320 - 13);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('k10')).toBeUndefined();
    expect(cache.get('k49')?.json).toBe('z'.repeat(10));
  });

  it('replaces a key and forgets a deleted one, keeping its count exact', () => {
    const cache = new ItemCache(1000);
    cache.set('a', 'one');
    cache.set('a', 'three');
    expect(cache.get('a')?.json).toBe('three');
    expect(cache.heldCharacters).toBe(6);
    cache.delete('a');
    cache.delete('missing');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.heldCharacters).toBe(0);
  });

  it('does not take an entry over a sixteenth of its capacity', () => {
    const cache = new ItemCache(160);
    expect(cache.set('a', 'x'.repeat(20)).json).toBe('x'.repeat(20));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.heldCharacters).toBe(0);
  });

  it('forgets a key whose new text is too large to take (its old text is no longer its value)', () => {
    const cache = new ItemCache(160);
    cache.set('a', 'small');
    expect(cache.set('a', 'x'.repeat(20)).json).toBe('x'.repeat(20));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.heldCharacters).toBe(0);
  });
});

describe('PartitionStore reads through its item cache', () => {
  const schema: TableSchema = table(1, key('pk', 'S'));
  const withRange: TableSchema = table(2, key('pk', 'S'), key('sk', 'N'));
  let store: LocalStore | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  const read = async (target: LocalStore, t: TableSchema, itemKey: Item) => (await target.partitions.get({ table: t, key: itemKey }, { consistent: true }))?.item;

  it('answers every write at once after it, whatever the write', async () => {
    store = await memoryStore();
    const { partitions } = store;
    const k = { pk: S('a') };
    await put(partitions, schema, { ...k, v: N(1) });
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(1) }); // cached now
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(1) });
    await put(partitions, schema, { ...k, v: N(2) });
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(2) });
    await partitions.write({ operations: [{ table: schema, kind: 'Update', key: k, expressions: { update: 'SET v = v + :one', values: { ':one': N(1) } } }] });
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(3) });
    const refused = await partitions.write({ operations: [{ table: schema, kind: 'Put', key: k, item: { ...k, v: N(9) }, expressions: { condition: 'attribute_not_exists(pk)' } }] });
    expect(refused.applied).toBe(false);
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(3) });
    await partitions.write({ operations: [{ table: schema, kind: 'Delete', key: k }] });
    expect(await read(store, schema, k)).toBeUndefined();
    await put(partitions, schema, { ...k, v: N(4) });
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(4) });
  });

  it('keeps the size measured with the cached item, and measures a written item anew', async () => {
    store = await memoryStore();
    const { partitions } = store;
    const k = { pk: S('a') };
    await put(partitions, schema, { ...k, v: S('xx') });
    const first = await partitions.get({ table: schema, key: k }, { consistent: true });
    expect(first?.size).toBe(2 + 1 + 1 + 2); // pk a, v xx
    const again = await partitions.get({ table: schema, key: k }, { consistent: true });
    expect(again?.size).toBe(6);
    await put(partitions, schema, { ...k, v: S('xxxxx') });
    expect((await partitions.get({ table: schema, key: k }, { consistent: true }))?.size).toBe(9);
  });

  it('answers what a concurrent write left once it is durable, and what was there before it', async () => {
    store = await memoryStore();
    const { partitions } = store;
    const k = { pk: S('a') };
    await put(partitions, schema, { ...k, v: N(1) });
    await read(store, schema, k);
    const writing = put(partitions, schema, { ...k, v: N(2) });
    const during = await read(store, schema, k);
    expect([N(1), N(2)]).toContainEqual(during?.v);
    await writing;
    expect(await read(store, schema, k)).toEqual({ ...k, v: N(2) });
  });

  it('forgets the items of a dropped table and of a deleted partition range', async () => {
    store = await memoryStore();
    const { partitions } = store;
    const keys = [0, 1, 2].map((i) => ({ pk: S('p'), sk: N(i) }));
    for (const k of keys) await put(partitions, withRange, { ...k, v: S('x') });
    for (const k of keys) expect(await read(store, withRange, k)).toBeDefined();
    await partitions.dropPartitionData(withRange, { start: new Uint8Array(0), end: new Uint8Array(0) });
    for (const k of keys) expect(await read(store, withRange, k)).toBeUndefined();
    await put(partitions, withRange, { ...keys[0], v: S('y') });
    expect(await read(store, withRange, keys[0])).toEqual({ ...keys[0], v: S('y') });
    await partitions.dropTable(withRange);
    expect(await read(store, withRange, keys[0])).toBeUndefined();
  });

  it('answers a restored partition snapshot, not what the replica held before', async () => {
    store = await memoryStore();
    const source = await memoryStore();
    const directory = await temporaryDirectory();
    try {
      const k = { pk: S('a') };
      const scope = { groupId: 7, table: schema, bound: { start: new Uint8Array(0), end: new Uint8Array(0) } };
      await put(source.partitions, schema, { ...k, v: S('snapshot') });
      const stream = await source.partitions.openPartitionSnapshot(scope)();
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream.chunks) chunks.push(chunk);
      stream.release();
      await put(store.partitions, schema, { ...k, v: S('before') });
      expect(await read(store, schema, k)).toEqual({ ...k, v: S('before') });
      const staged = { path: join(directory.path, 'staged'), offset: 0, size: Buffer.concat(chunks).length };
      await writeFile(staged.path, Buffer.concat(chunks));
      await store.partitions.restorePartitionSnapshot([scope], await checkPartitionSnapshot(staged), 5);
      expect(await read(store, schema, k)).toEqual({ ...k, v: S('snapshot') });
    } finally {
      await source.close();
      await directory.remove();
    }
  });

  it('answers from the database after a reopen', async () => {
    const directory = await temporaryDirectory();
    try {
      const k = { pk: S('a') };
      store = await openLocalStore({ dataDir: directory.path });
      await put(store.partitions, schema, { ...k, v: S('one') });
      expect(await read(store, schema, k)).toEqual({ ...k, v: S('one') });
      await store.close();
      store = await openLocalStore({ dataDir: directory.path });
      expect(await read(store, schema, k)).toEqual({ ...k, v: S('one') });
    } finally {
      await store?.close();
      store = undefined;
      await directory.remove();
    }
  });
});
