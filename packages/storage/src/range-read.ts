import {
  compareBytes,
  compilePartitionExpressions,
  encodeCollectionPrefix,
  encodeItemKey,
  encodeKeyValuePrefix,
  hashSliceRange,
  itemSize,
  prefixEnd,
  spaceKeyAttributes,
  spaceRange,
  validationError,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type KeyAttribute,
  type RangeReadRequest,
  type RangeReadResult,
  type SortKeyCondition,
  type TableSchema,
} from '@shoal/model';
import type { ByteLevel } from './database.ts';
import {
  clampRange,
  decodeJson,
  entryInBound,
  entryKey,
  findIndex,
  indexEntriesRange,
  keyOf,
  type KeyRange,
  type PartitionBound,
} from './layout.ts';

/** Iterator bounds: `gte` (or `gt`) and `lt`. */
interface KeyBounds {
  start: Uint8Array;
  startExclusive: boolean;
  end: Uint8Array;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The key range of an item collection narrowed by a sort key condition. Key encodings are
 * self-delimiting, so the entries whose first sort value is `v` are exactly those starting with
 * `prefix | enc(v)`, and everything below `v` sorts before that prefix, everything above after its end.
 */
export function queryBounds(spaceId: number, hashValue: AttributeValue, condition?: SortKeyCondition): { start: Uint8Array; end: Uint8Array } {
  const collection = encodeCollectionPrefix(spaceId, hashValue);
  const collectionEnd = prefixEnd(collection) ?? spaceRange(spaceId).end;
  if (!condition) return { start: collection, end: collectionEnd };
  const at = (value: AttributeValue): Uint8Array => encodeItemKey(spaceId, hashValue, value);
  const after = (value: AttributeValue): Uint8Array => prefixEnd(at(value)) ?? collectionEnd;
  const [first, second] = condition.values;
  switch (condition.op) {
    case 'EQ':
      return { start: at(first), end: after(first) };
    case 'LT':
      return { start: collection, end: at(first) };
    case 'LE':
      return { start: collection, end: after(first) };
    case 'GT':
      return { start: after(first), end: collectionEnd };
    case 'GE':
      return { start: at(first), end: collectionEnd };
    case 'BETWEEN':
      return { start: at(first), end: after(second) };
    case 'BEGINS_WITH': {
      if ('N' in first) {
        throw validationError('Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N');
      }
      const prefix = concat(collection, encodeKeyValuePrefix(first));
      return { start: prefix, end: prefixEnd(prefix) ?? collectionEnd };
    }
  }
}

/** `within`: where the partition's entries of the space lie, when reading one partition. */
function readBounds(spaceId: number, request: RangeReadRequest, keyAttributes: KeyAttribute[], within: KeyRange | undefined): KeyBounds {
  const range = request.hashValue !== undefined
    ? queryBounds(spaceId, request.hashValue, request.sortCondition)
    : request.segment
      ? hashSliceRange(spaceId, request.segment.segment, request.segment.total)
      : spaceRange(spaceId);
  const read = clampRange(range, within);
  const bounds: KeyBounds = { start: read.start, startExclusive: false, end: read.end };
  if (request.exclusiveStartKey === undefined) return bounds;
  const startKey = entryKey(spaceId, keyAttributes, request.exclusiveStartKey);
  if (startKey === undefined) {
    throw validationError('The provided starting key is invalid: The provided key element does not match the schema');
  }
  if (request.segment && (compareBytes(startKey, range.start) < 0 || compareBytes(startKey, range.end) >= 0)) {
    throw validationError(
      'The provided starting key is invalid: Invalid ExclusiveStartKey. Please use ExclusiveStartKey with correct Segment. ' +
        `TotalSegments: ${request.segment.total} Segment: ${request.segment.segment}`,
    );
  }
  // Resume strictly after the start key in the direction of the read.
  if (request.forward || request.hashValue === undefined) {
    if (compareBytes(startKey, bounds.start) >= 0) {
      bounds.start = startKey;
      bounds.startExclusive = true;
    }
  } else if (compareBytes(startKey, bounds.end) < 0) {
    bounds.end = startKey;
  }
  return bounds;
}

function resolveSpace(table: TableSchema, indexName: string | undefined): { spaceId: number; index?: IndexSchema } {
  if (indexName === undefined) return { spaceId: table.tableId };
  const index = findIndex(table, indexName);
  if (!index) throw validationError(`The table does not have the specified index: ${indexName}`);
  return { spaceId: index.indexId, index };
}

const READ_CHUNK = 256;

/**
 * A Query or Scan over one space of the database; see RangeReadRequest for the semantics. With a
 * partition bound, only the partition's items and index entries are read: the table read stops at the
 * bound, index entries of other partitions' items are skipped before Limit counts them. `boundSpace`
 * 'index': the bound is a GSI partition's, in the index's own space (the read stops at it).
 */
export async function readRange(level: ByteLevel, request: RangeReadRequest, bound?: PartitionBound, boundSpace: 'table' | 'index' = 'table'): Promise<RangeReadResult> {
  const { table } = request;
  const { spaceId, index } = resolveSpace(table, request.indexName);
  const keyAttributes = spaceKeyAttributes(table, index);
  const ownSpace = boundSpace === 'index' || index === undefined;
  const within = bound === undefined || ownSpace ? bound : indexEntriesRange(table, index, bound);
  const bounds = readBounds(spaceId, request, keyAttributes, within);
  // Index entries of other partitions' items may lie within that range: skipped one by one.
  const indexBound = ownSpace ? undefined : bound;
  const expressions = request.filter !== undefined || request.projection !== undefined
    ? compilePartitionExpressions({ filter: request.filter, projection: request.projection, names: request.names, values: request.values })
    : {};
  // An LSI answers for attributes it does not project by reading the table item, as DynamoDB does.
  const fetchesTableItem = index?.kind === 'LSI' && index.projection.type !== 'ALL' &&
    (request.select === 'ALL_ATTRIBUTES' || request.select === 'SPECIFIC_ATTRIBUTES' || request.filter !== undefined);
  const tableKeyAttributes = spaceKeyAttributes(table);
  const forward = request.forward || request.hashValue === undefined;

  const result: RangeReadResult = { items: [], count: 0, scannedCount: 0, bytesRead: 0 };
  const iterator = level.iterator({
    ...(bounds.startExclusive ? { gt: bounds.start } : { gte: bounds.start }),
    lt: bounds.end,
    reverse: !forward,
  });
  try {
    for (;;) {
      const chunk = request.limit === undefined ? READ_CHUNK : Math.min(READ_CHUNK, request.limit - result.scannedCount);
      if (chunk <= 0) return result;
      const entries = await iterator.nextv(chunk);
      if (entries.length === 0) return result;
      for (const [, value] of entries) {
        const entry = decodeJson<Item>(value);
        if (indexBound !== undefined && !entryInBound(table, indexBound, entry)) continue;
        let evaluated = entry;
        let size = itemSize(entry);
        if (fetchesTableItem) {
          const tableItemKey = entryKey(table.tableId, tableKeyAttributes, entry);
          const stored = tableItemKey && (await level.get(tableItemKey));
          if (stored) {
            evaluated = decodeJson<Item>(stored);
            size += itemSize(evaluated);
          }
        }
        result.scannedCount += 1;
        result.bytesRead += size;
        if (!expressions.filter || expressions.filter.evaluate(evaluated)) {
          result.count += 1;
          if (request.select !== 'COUNT') {
            const returned = request.select === 'ALL_PROJECTED_ATTRIBUTES' ? entry : evaluated;
            result.items.push(expressions.projection ? expressions.projection.apply(returned) : returned);
          }
        }
        const limitReached = request.limit !== undefined && result.scannedCount >= request.limit;
        if (limitReached || result.bytesRead >= request.maxBytes) {
          result.lastEvaluatedKey = keyOf(keyAttributes, entry);
          return result;
        }
      }
    }
  } finally {
    await iterator.close();
  }
}
