/**
 * What one served request weighs for load tracking and admission: its capacity units (DynamoDB's
 * rules: reads in 4 KB units, half when eventually consistent; writes as servedWriteUnits counts
 * them), its bytes and the keys it touched. The router's ReturnConsumedCapacity is computed on its
 * side, exactly; this is the partition's own account, which leaves out index entry writes.
 */
import {
  encodeCollectionPrefix,
  encodeItemKey,
  getOwn,
  itemSize,
  prefixEnd,
  readCapacityUnits,
  servedWriteUnits,
  writeCapacityUnits,
  type AttributeValue,
  type Item,
  type PartitionDescriptor,
  type PartitionWrite,
  type PartitionWriteResult,
  type RangeReadRequest,
  type TableSchema,
} from '@shoal/model';
import type { KeySpan } from './key-sample.ts';
import type { PartitionLoadTracker } from './partition-load.ts';

/** `firstKey`: the encoded item key of the first operation, when the caller has it already. */
export function recordWrite(tracker: PartitionLoadTracker, write: PartitionWrite, result: PartitionWriteResult, firstKey?: Uint8Array): void {
  let units = 0;
  let bytes = 0;
  for (const served of servedWriteUnits(write, result).values()) {
    units += served.units;
    bytes += served.bytes;
  }
  const first = write.operations[0];
  const key = first === undefined ? undefined : itemKey(first.table, first.key, firstKey);
  tracker.record('write', units, bytes, key === undefined ? undefined : { start: key });
}

/**
 * Shipped GSI entries a GSI partition applied (ApplyIndexEntries): each record one index write of its
 * entry (one unit per 1 KB started; a delete one unit), sampled at its entry key, so that the GSI
 * partition's heat and split keys follow the index's own key space.
 */
export function recordIndexEntries(tracker: PartitionLoadTracker, records: ReadonlyArray<{ entryKey: Uint8Array; entry?: Item }>): void {
  records.forEach((record, position) => {
    const bytes = record.entry === undefined ? 0 : itemSize(record.entry);
    // The call was admitted once: its first record's least units were taken then.
    tracker.record('write', writeCapacityUnits(bytes), bytes, { start: record.entryKey }, position === 0);
  });
}

/** `encodedKey`: the item's encoded key, when the caller has it already. */
export function recordGet(tracker: PartitionLoadTracker, table: TableSchema, key: Item, consistent: boolean, size: number, encodedKey?: Uint8Array): void {
  const encoded = itemKey(table, key, encodedKey);
  tracker.record('read', readCapacityUnits(size, consistent), size, encoded === undefined ? undefined : { start: encoded });
}

/** A Query spans its item collection (when on the table or an LSI), a Scan or GSI Query the partition's range. */
export function recordRangeRead(tracker: PartitionLoadTracker, descriptor: PartitionDescriptor, range: RangeReadRequest, consistent: boolean, bytesRead: number): void {
  const lsi = range.indexName !== undefined && range.table.indexes.find((index) => index.name === range.indexName)?.kind === 'LSI';
  let span: KeySpan;
  const prefix = range.hashValue !== undefined && (range.indexName === undefined || lsi) ? collectionPrefix(range.table, range.hashValue) : undefined;
  if (prefix !== undefined) {
    const end = prefixEnd(prefix);
    span = end === undefined ? { start: prefix, unboundedEnd: true } : { start: prefix, end };
  } else span = descriptor.endKey.length === 0 ? { start: descriptor.startKey, unboundedEnd: true } : { start: descriptor.startKey, end: descriptor.endKey };
  tracker.record('read', readCapacityUnits(bytesRead, consistent), bytesRead, span);
}

/**
 * The key an item request is sampled at: the item's, or for a table with a local secondary index the
 * start of its item collection, since such a table splits only between collections (an LSI Query
 * reads one collection, which must stay in one partition): every split key the sample offers is then
 * a collection's start, its left/right counts exact for it.
 */
function itemKey(table: TableSchema, key: Item, encoded: Uint8Array | undefined): Uint8Array | undefined {
  const hash = getOwn(key, table.hashKey.name);
  const range = table.rangeKey === undefined ? undefined : getOwn(key, table.rangeKey.name);
  if (hash === undefined || (table.rangeKey !== undefined && range === undefined)) return undefined;
  if (table.indexes.some((index) => index.kind === 'LSI')) return collectionPrefix(table, hash);
  if (encoded !== undefined) return encoded;
  try {
    return range === undefined ? encodeItemKey(table.tableId, hash) : encodeItemKey(table.tableId, hash, range);
  } catch {
    return undefined;
  }
}

function collectionPrefix(table: TableSchema, hashValue: AttributeValue): Uint8Array | undefined {
  try {
    return encodeCollectionPrefix(table.tableId, hashValue);
  } catch {
    return undefined;
  }
}

