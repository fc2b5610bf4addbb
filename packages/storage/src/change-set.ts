import { compareBytes, getOwn, itemSize, setOwn, spaceKeyAttributes, type IndexSchema, type Item, type TableSchema } from '@shoal/model';
import type { StateReader } from './commit-queue.ts';
import type { Mutation } from './database.ts';
import type { OutboxWriter } from './index-outbox.ts';
import type { CachedItem } from './item-cache.ts';
import { entryKey, mapKey } from './layout.ts';
import type { StatisticsBook } from './statistics.ts';

/**
 * An item as the state holds it: its JSON text, parsed and measured only when asked. A plain put
 * over an item needs its size alone (for the statistics), which its writer stored with it.
 */
export class StoredItem {
  readonly json: string;
  private parsed: Item | undefined;
  private measured: number | undefined;
  /** The cache entry the text came from: a size measured here is kept there for later readers. */
  private cache: CachedItem | undefined;

  constructor(json: string, size: number | undefined, item?: Item, cache?: CachedItem) {
    this.json = json;
    this.measured = size;
    this.parsed = item;
    this.cache = cache;
  }

  static of(stored: CachedItem): StoredItem {
    return new StoredItem(stored.json, stored.size, undefined, stored);
  }

  get item(): Item {
    return (this.parsed ??= JSON.parse(this.json) as Item);
  }

  get size(): number {
    if (this.measured === undefined) {
      this.measured = itemSize(this.item);
      if (this.cache !== undefined) this.cache.size = this.measured;
    }
    return this.measured;
  }
}

/** The attributes an index entry keeps of an item: table and index keys, plus its projection. */
function projectEntry(table: TableSchema, index: IndexSchema, item: Item): Item {
  if (index.projection.type === 'ALL') return item;
  const entry: Item = {};
  const names = [table.hashKey.name, table.rangeKey?.name, index.hashKey.name, index.rangeKey?.name];
  if (index.projection.type === 'INCLUDE') names.push(...(index.projection.nonKeyAttributes ?? []));
  for (const name of names) {
    const value = name === undefined ? undefined : getOwn(item, name);
    if (value !== undefined) setOwn(entry, name as string, value);
  }
  return entry;
}

/**
 * Whether an item belongs in an index: it has the index's key attributes, of the declared types and
 * not empty. Writes refuse items that break the types, but items written before the index existed may
 * (DynamoDB leaves those out of the index as violations).
 */
function isIndexed(index: IndexSchema, item: Item): boolean {
  for (const attribute of index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey]) {
    const value = getOwn(item, attribute.name);
    if (value === undefined || !(attribute.type in value)) return false;
    if (('S' in value && value.S === '') || ('B' in value && value.B === '')) return false;
  }
  return true;
}

/** Decides whether a write maintains `index` for the item at `itemKey` (false while a backfill has not reached it). */
export type IndexGate = (index: IndexSchema, itemKey: Uint8Array) => boolean;

interface StagedValue {
  key: Uint8Array;
  /** Undefined: deleted. */
  stored: StoredItem | undefined;
}

/**
 * The changes of one command, staged over the current state: items, their index entries and the
 * statistics of every space touched. Reads see the command's own earlier changes. With an outbox (a
 * cluster node's replica: index-outbox.ts), GSI entries are not written here: each change of one
 * becomes an outbox record of the group, in the order the command makes them.
 */
export class ChangeSet {
  private readonly state: StateReader;
  private readonly outbox: OutboxWriter | undefined;
  private readonly staged = new Map<string, StagedValue>();
  private readonly deltas = new Map<number, { itemCount: number; sizeBytes: number }>();

  constructor(state: StateReader, outbox?: OutboxWriter) {
    this.state = state;
    this.outbox = outbox;
  }

  readItem(key: Uint8Array): Item | undefined {
    return this.readStored(key)?.item;
  }

  /** The item at `key`, including this change's own writes, parsed only if its reader asks. */
  readStored(key: Uint8Array): StoredItem | undefined {
    const cacheKey = mapKey(key);
    const staged = this.staged.get(cacheKey);
    if (staged) return staged.stored;
    const stored = this.state.readText(key, cacheKey);
    return stored === undefined ? undefined : StoredItem.of(stored);
  }

  /**
   * Replaces the item at `itemKey` (`next` undefined: deletes it) and its index entries. `nextSize`:
   * itemSize(next), when the caller measured it already.
   */
  writeItem(
    table: TableSchema,
    itemKey: Uint8Array,
    previous: StoredItem | undefined,
    next: Item | undefined,
    maintains: IndexGate,
    nextSize?: number,
  ): void {
    if (previous === undefined && next === undefined) return;
    const written = next && this.set(itemKey, next, nextSize);
    if (!next) this.delete(itemKey);
    this.count(table.tableId, previous?.size, written?.size);
    for (const index of table.indexes) {
      if (maintains(index, itemKey)) this.writeEntry(table, index, itemKey, previous?.item, next);
    }
  }

  /** Adds `item`'s entry (at `itemKey`) to an index being backfilled. */
  addEntry(table: TableSchema, index: IndexSchema, itemKey: Uint8Array, item: Item): void {
    this.writeEntry(table, index, itemKey, undefined, item);
  }

  /**
   * Puts `entry` at `key` of a space, or deletes what is there (`entry` undefined), counting the change
   * in the space's statistics: a GSI partition applying the records its sources shipped.
   */
  replaceEntry(spaceId: number, key: Uint8Array, entry: Item | undefined): void {
    const previous = this.readStored(key);
    if (previous === undefined && entry === undefined) return;
    const written = entry && this.set(key, entry);
    if (!entry) this.delete(key);
    this.count(spaceId, previous?.size, written?.size);
  }

  private writeEntry(table: TableSchema, index: IndexSchema, itemKey: Uint8Array, previous: Item | undefined, next: Item | undefined): void {
    const attributes = spaceKeyAttributes(table, index);
    const oldKey = previous && isIndexed(index, previous) ? entryKey(index.indexId, attributes, previous) : undefined;
    const newKey = next && isIndexed(index, next) ? entryKey(index.indexId, attributes, next) : undefined;
    const oldEntry = oldKey && previous && projectEntry(table, index, previous);
    const newEntry = newKey && next && projectEntry(table, index, next);
    const sameKey = oldKey !== undefined && newKey !== undefined && compareBytes(oldKey, newKey) === 0;
    if (sameKey && JSON.stringify(oldEntry) === JSON.stringify(newEntry)) {
      return;
    }
    if (this.outbox !== undefined && index.kind === 'GSI') {
      // A put over the same key replaces the entry: no delete record before it.
      if (oldKey && !sameKey) this.outbox.append({ indexId: index.indexId, itemKey, entryKey: oldKey });
      if (newKey && newEntry) this.outbox.append({ indexId: index.indexId, itemKey, entryKey: newKey, entry: newEntry });
      return;
    }
    if (oldKey) this.delete(oldKey);
    const written = newKey && newEntry && this.set(newKey, newEntry);
    this.count(index.indexId, oldEntry && itemSize(oldEntry), written?.size);
  }

  private set(key: Uint8Array, item: Item, size?: number): StoredItem {
    const stored = new StoredItem(JSON.stringify(item), size, item);
    this.staged.set(mapKey(key), { key, stored });
    return stored;
  }

  private delete(key: Uint8Array): void {
    this.staged.set(mapKey(key), { key, stored: undefined });
  }

  /** Counts an entry of the space replaced: sizes of the one before and the one after, undefined where there is none. */
  private count(spaceId: number, previousSize: number | undefined, nextSize: number | undefined): void {
    const delta = this.deltas.get(spaceId) ?? { itemCount: 0, sizeBytes: 0 };
    if (previousSize !== undefined) {
      delta.itemCount -= 1;
      delta.sizeBytes -= previousSize;
    }
    if (nextSize !== undefined) {
      delta.itemCount += 1;
      delta.sizeBytes += nextSize;
    }
    this.deltas.set(spaceId, delta);
  }

  /** The mutations of the whole change, statistics included; call once, under the commit lock. */
  finish(statistics: StatisticsBook): Mutation[] {
    const mutations: Mutation[] = this.outbox?.finish() ?? [];
    for (const [cacheKey, { key, stored }] of this.staged) {
      mutations.push(stored === undefined ? { key, value: undefined, cacheKey } : { key, value: stored.json, size: stored.size, cacheKey });
    }
    for (const [spaceId, delta] of this.deltas) {
      if (delta.itemCount === 0 && delta.sizeBytes === 0) continue;
      const current = statistics.current(spaceId, this.state);
      mutations.push(
        statistics.record(spaceId, {
          itemCount: current.itemCount + delta.itemCount,
          sizeBytes: current.sizeBytes + delta.sizeBytes,
        }),
      );
    }
    return mutations;
  }
}
