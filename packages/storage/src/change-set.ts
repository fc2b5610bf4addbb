import { compareBytes, getOwn, itemSize, setOwn, spaceKeyAttributes, type IndexSchema, type Item, type TableSchema } from '@shoal/model';
import type { StateReader } from './commit-queue.ts';
import type { Mutation } from './database.ts';
import { entryKey, mapKey } from './layout.ts';
import type { StatisticsBook } from './statistics.ts';

const utf8 = new TextEncoder();

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
  text: string | undefined;
  item: Item | undefined;
}

/**
 * The changes of one command, staged over the current state: items, their index entries and the
 * statistics of every space touched. Reads see the command's own earlier changes.
 */
export class ChangeSet {
  private readonly state: StateReader;
  private readonly staged = new Map<string, StagedValue>();
  private readonly deltas = new Map<number, { itemCount: number; sizeBytes: number }>();

  constructor(state: StateReader) {
    this.state = state;
  }

  readItem(key: Uint8Array): Item | undefined {
    const staged = this.staged.get(mapKey(key));
    if (staged) return staged.item;
    const text = this.state.readText(key);
    return text === undefined ? undefined : (JSON.parse(text) as Item);
  }

  /** Replaces the item at `itemKey` (`next` undefined: deletes it) and its index entries. */
  writeItem(
    table: TableSchema,
    itemKey: Uint8Array,
    previous: Item | undefined,
    next: Item | undefined,
    maintains: IndexGate,
  ): void {
    if (previous === undefined && next === undefined) return;
    this.set(itemKey, next);
    this.count(table.tableId, previous, next);
    for (const index of table.indexes) {
      if (maintains(index, itemKey)) this.writeEntry(table, index, previous, next);
    }
  }

  /** Adds `item`'s entry to an index being backfilled. */
  addEntry(table: TableSchema, index: IndexSchema, item: Item): void {
    this.writeEntry(table, index, undefined, item);
  }

  private writeEntry(table: TableSchema, index: IndexSchema, previous: Item | undefined, next: Item | undefined): void {
    const attributes = spaceKeyAttributes(table, index);
    const oldKey = previous && isIndexed(index, previous) ? entryKey(index.indexId, attributes, previous) : undefined;
    const newKey = next && isIndexed(index, next) ? entryKey(index.indexId, attributes, next) : undefined;
    const oldEntry = oldKey && previous && projectEntry(table, index, previous);
    const newEntry = newKey && next && projectEntry(table, index, next);
    if (oldKey && newKey && compareBytes(oldKey, newKey) === 0 && JSON.stringify(oldEntry) === JSON.stringify(newEntry)) {
      return;
    }
    if (oldKey) this.set(oldKey, undefined);
    if (newKey) this.set(newKey, newEntry);
    this.count(index.indexId, oldEntry, newEntry);
  }

  private set(key: Uint8Array, item: Item | undefined): void {
    this.staged.set(mapKey(key), { key, text: item && JSON.stringify(item), item });
  }

  private count(spaceId: number, previous: Item | undefined, next: Item | undefined): void {
    const delta = this.deltas.get(spaceId) ?? { itemCount: 0, sizeBytes: 0 };
    if (previous) {
      delta.itemCount -= 1;
      delta.sizeBytes -= itemSize(previous);
    }
    if (next) {
      delta.itemCount += 1;
      delta.sizeBytes += itemSize(next);
    }
    this.deltas.set(spaceId, delta);
  }

  /** The mutations of the whole change, statistics included; call once, under the commit lock. */
  finish(statistics: StatisticsBook): Mutation[] {
    const mutations: Mutation[] = [];
    for (const { key, text } of this.staged.values()) {
      mutations.push(text === undefined ? { key, value: undefined } : { key, value: utf8.encode(text), text });
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
