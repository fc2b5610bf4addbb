/**
 * The byte layout of one Shoal LevelDB. Every key starts with a 4-byte big-endian space id.
 *
 *   space 0 (reserved, never allocated): metadata
 *     00000000 01 <utf8 table name>      -> JSON TableRecord              (the table catalog)
 *     00000000 02                        -> u32 BE: last allocated space id
 *     00000000 03 <u32 BE space id>      -> 2 x f64 BE: item count, bytes (per-space statistics)
 *     00000000 04 <u32 BE group id>      -> f64 BE: last Raft index applied by that replica group
 *     00000000 05 <u32 BE group id> <f64 BE Raft index>
 *                                        -> JSON IndexCommandRecord   (an index command still running)
 *   table items (space = table.tableId):
 *     encodeItemKey(tableId, hash, range?)                               -> JSON item
 *   LSI entries (space = index.indexId):
 *     encodeItemKey(indexId, tableHash, lsiRange, tableRange)            -> JSON projected item
 *   GSI entries (space = index.indexId):
 *     encodeItemKey(indexId, gsiHash, gsiRange?, tableHash, tableRange?) -> JSON projected item
 *
 * encodeItemKey = space id | fingerprint64(hash) | enc(hash) | enc(sort values...), with every enc()
 * self-delimiting and order-preserving, so all entries of one item collection share the collection
 * prefix and sort by their sort values. Statistics are exact: they change in the same batch as the
 * entries they count. Values are JSON: parsing and size accounting stay simple; see the bench script
 * for what that costs.
 */
import {
  compareBytes,
  encodeItemKey,
  getOwn,
  prefixEnd,
  setOwn,
  spaceKeyAttributes,
  spaceRange,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type KeyAttribute,
  type PartitionDescriptor,
  type TableSchema,
} from '@shoal/model';

const META_SPACE = new Uint8Array([0, 0, 0, 0]);
const CATALOG_TAG = 1;
const SPACE_COUNTER_TAG = 2;
const STATISTICS_TAG = 3;
const APPLIED_INDEX_TAG = 4;
const RUNNING_INDEX_COMMAND_TAG = 5;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

function metaKey(tag: number, rest: Uint8Array = new Uint8Array(0)): Uint8Array {
  const key = new Uint8Array(META_SPACE.length + 1 + rest.length);
  key.set(META_SPACE, 0);
  key[META_SPACE.length] = tag;
  key.set(rest, META_SPACE.length + 1);
  return key;
}

export function catalogKey(tableName: string): Uint8Array {
  return metaKey(CATALOG_TAG, utf8.encode(tableName));
}

/** The range holding every catalog record, in table name order. */
export function catalogRange(): { start: Uint8Array; end: Uint8Array } {
  return { start: metaKey(CATALOG_TAG), end: metaKey(CATALOG_TAG + 1) };
}

export function spaceCounterKey(): Uint8Array {
  return metaKey(SPACE_COUNTER_TAG);
}

export function statisticsKey(spaceId: number): Uint8Array {
  return metaKey(STATISTICS_TAG, encodeU32(spaceId));
}

export function appliedIndexKey(groupId: number): Uint8Array {
  return metaKey(APPLIED_INDEX_TAG, encodeU32(groupId));
}

/** Index commands a replica group applied and has not finished running, in log order. */
export function runningIndexCommandKey(groupId: number, index: number): Uint8Array {
  const rest = new Uint8Array(12);
  const view = new DataView(rest.buffer);
  view.setUint32(0, groupId, false);
  view.setFloat64(4, index, false);
  return metaKey(RUNNING_INDEX_COMMAND_TAG, rest);
}

export function runningIndexCommandsRange(groupId: number): KeyRange {
  const start = metaKey(RUNNING_INDEX_COMMAND_TAG, encodeU32(groupId));
  return { start, end: prefixEnd(start) ?? metaKey(RUNNING_INDEX_COMMAND_TAG + 1) };
}

export function encodeU32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, false);
  return bytes;
}

export function decodeU32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false);
}

export interface SpaceStatistics {
  itemCount: number;
  sizeBytes: number;
}

export function encodeStatistics(stats: SpaceStatistics): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setFloat64(0, stats.itemCount, false);
  view.setFloat64(8, stats.sizeBytes, false);
  return bytes;
}

export function decodeStatistics(bytes: Uint8Array): SpaceStatistics {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { itemCount: view.getFloat64(0, false), sizeBytes: view.getFloat64(8, false) };
}

export function encodeJson(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

export function decodeJson<T>(bytes: Uint8Array): T {
  return JSON.parse(utf8Decoder.decode(bytes)) as T;
}

/**
 * The entry key of `item` in a space whose key is made of `attributes`, or undefined when the item
 * lacks one of them (an item without an index's key attributes is not in the index).
 */
export function entryKey(spaceId: number, attributes: KeyAttribute[], item: Item): Uint8Array | undefined {
  const values: AttributeValue[] = [];
  for (const attribute of attributes) {
    const value = getOwn(item, attribute.name);
    if (value === undefined) return undefined;
    values.push(value);
  }
  const [hash, ...sort] = values;
  return encodeItemKey(spaceId, hash, ...sort);
}

/** The key attributes of `item` for a space (its LastEvaluatedKey). */
export function keyOf(attributes: KeyAttribute[], item: Item): Item {
  const key: Item = {};
  for (const attribute of attributes) {
    const value = getOwn(item, attribute.name);
    if (value !== undefined) setOwn(key, attribute.name, value);
  }
  return key;
}

export function findIndex(table: TableSchema, indexName: string): IndexSchema | undefined {
  return table.indexes.find((index) => index.name === indexName);
}

/**
 * The space of a GSI's entries as the schema of a table of its own: what a GSI partition's replica
 * holds (its snapshot scope, the data a removal deletes). Its key attributes are the index's (entries
 * carry the table's key after them): never encode keys with it.
 */
export function indexSpaceSchema(table: TableSchema, index: IndexSchema): TableSchema {
  return { name: `${table.name}/${index.name}`, tableId: index.indexId, hashKey: index.hashKey, ...(index.rangeKey ? { rangeKey: index.rangeKey } : {}), indexes: [] };
}

/** A key as a Map key: one char per byte. */
export function mapKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/**
 * The key range of one partition replica on a node whose store holds many: `[start, end)` in the
 * table's space, an empty `end` unbounded above (as PartitionDescriptor's startKey/endKey). Table
 * items belong to it when their key lies in it, index entries (LSI, co-located GSI) when the key of
 * their base item does.
 */
export interface PartitionBound {
  start: Uint8Array;
  end: Uint8Array;
}

export function partitionBound(descriptor: Pick<PartitionDescriptor, 'startKey' | 'endKey'>): PartitionBound {
  return { start: descriptor.startKey, end: descriptor.endKey };
}

/** A key range `[start, end)`; empty when start >= end. */
export interface KeyRange {
  start: Uint8Array;
  end: Uint8Array;
}

export function boundContains(bound: PartitionBound, key: Uint8Array): boolean {
  return compareBytes(bound.start, key) <= 0 && (bound.end.length === 0 || compareBytes(key, bound.end) < 0);
}

/** Whether two bounds share a key. */
export function boundsOverlap(a: PartitionBound, b: PartitionBound): boolean {
  const beforeEnd = (key: Uint8Array, end: Uint8Array) => end.length === 0 || compareBytes(key, end) < 0;
  return beforeEnd(a.start, b.end) && beforeEnd(b.start, a.end);
}

/** `range` narrowed to `bound` (`range.end` is never empty: ranges here lie within one space). */
export function clampRange(range: KeyRange, bound: PartitionBound | KeyRange | undefined): KeyRange {
  if (bound === undefined) return range;
  const start = compareBytes(bound.start, range.start) > 0 ? bound.start : range.start;
  const end = bound.end.length > 0 && compareBytes(bound.end, range.end) < 0 ? bound.end : range.end;
  return { start, end };
}

/** Space id and key fingerprint: the bytes a table key and the LSI keys of its item have alike (but the space id). */
const HASH_PREFIX_BYTES = 12;

/**
 * Where an index's entries of the partition's items lie: the whole space for a GSI (its keys start
 * with the index's own hash), a narrower range for an LSI, whose keys share the table key's hash
 * fingerprint: a table key in `[start, end)` has an LSI key in the range made of the bound's first
 * 12 bytes with the index's space id. It may hold entries of neighbouring items too (when the bound
 * cuts inside a fingerprint): entries are still filtered one by one (entryInBound).
 */
export function indexEntriesRange(table: TableSchema, index: IndexSchema, bound: PartitionBound | undefined): KeyRange {
  const space = spaceRange(index.indexId);
  if (bound === undefined || index.kind !== 'LSI') return space;
  const tableSpace = spaceRange(table.tableId);
  const inIndexSpace = (key: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(key.subarray(0, HASH_PREFIX_BYTES));
    out.set(space.start, 0);
    return out;
  };
  const start = compareBytes(bound.start, tableSpace.start) <= 0 ? space.start : inIndexSpace(bound.start);
  let end = space.end;
  if (bound.end.length > 0 && compareBytes(bound.end, tableSpace.end) < 0) {
    // Up to 12 bytes, a key below the bound is below it in those bytes already; beyond, only up to them.
    end = bound.end.length <= HASH_PREFIX_BYTES ? inIndexSpace(bound.end) : (prefixEnd(inIndexSpace(bound.end)) ?? space.end);
  }
  return { start, end };
}

/**
 * Whether an index entry belongs to the partition: its base item's key (which every entry carries,
 * whatever the projection) lies in the bound.
 */
export function entryInBound(table: TableSchema, bound: PartitionBound, entry: Item): boolean {
  const baseKey = entryKey(table.tableId, spaceKeyAttributes(table), entry);
  return baseKey !== undefined && boundContains(bound, baseKey);
}
