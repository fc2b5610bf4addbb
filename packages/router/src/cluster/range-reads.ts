/**
 * Query and Scan over many partitions, as one DynamoDB page (pure logic: the partition reads are
 * passed in).
 *
 * Table and GSI reads (Query, Scan, a parallel-scan segment): the partitions of the space read (the
 * table's, or the GSI's own: a GSI's entries are kept asynchronously in partitions of its space) own
 * disjoint key ranges and a partition reads its entries in key order, so the page walks the
 * partitions in key order (backwards for a backward Query), resuming after ExclusiveStartKey in the
 * partition that holds it, and carrying Limit and the 1 MB page over the boundaries: a partition that
 * stops early (its LastEvaluatedKey) ends the page there.
 *
 * LSI reads whose collection spans partitions: LSI entries live with their base items (contracts #6),
 * so each of those partitions holds entries anywhere in the index's key order. The page is a k-way
 * merge of the partitions' entry streams in index key order. Limit, the 1 MB page and the filter
 * count entries in that merged order, so the partitions are asked for raw entries (no filter, no
 * projection) and the merge evaluates filter, projection and Select itself, exactly as a single
 * partition would have.
 */
import {
  compareBytes,
  compilePartitionExpressions,
  encodeCollectionPrefix,
  encodeItemKey,
  getOwn,
  hashSliceRange,
  itemSize,
  prefixEnd,
  setOwn,
  spaceKeyAttributes,
  spaceRange,
  validationError,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type KeyAttribute,
  type PartitionDescriptor,
  type PartitionMap,
  type RangeReadRequest,
  type RangeReadResult,
  type TableSchema,
} from '@shoal/model';

/**
 * Reads a page of one partition. `locate` names the partition at each attempt (it may change as the
 * map learns newer descriptors); the answer says which descriptor served the read.
 */
export type PartitionRangeReader = (
  locate: () => PartitionDescriptor | undefined,
  request: RangeReadRequest,
) => Promise<{ result: RangeReadResult; partition: PartitionDescriptor }>;

/** The part of the cluster state the planning reads: the current map (it is replaced on refresh). */
export interface MapSource {
  map(): PartitionMap;
}

/** The error of a read that needs what is not built yet: a clear message, never a wrong page. */
function notSupported(message: string): Error {
  return validationError(`${message} is not supported by this Shoal cluster yet`);
}

/**
 * A key space read in key order over its own partitions: the table's, or a GSI's. `attributes` make
 * its keys (a GSI's: its own key, then the table's).
 */
interface WalkedSpace {
  spaceId: number;
  attributes: readonly KeyAttribute[];
}

/** The keys of `space` a read covers: a collection (Query), a parallel-scan slice or the whole space. */
function spaceReadRange(request: RangeReadRequest, spaceId: number): { start: Uint8Array; end: Uint8Array } {
  if (request.hashValue !== undefined) {
    const start = encodeCollectionPrefix(spaceId, request.hashValue);
    return { start, end: prefixEnd(start) ?? spaceRange(spaceId).end };
  }
  if (request.segment !== undefined) return hashSliceRange(spaceId, request.segment.segment, request.segment.total);
  return spaceRange(spaceId);
}


/** The values of `attributes` in `item`, or undefined when one is missing. */
function keyValues(item: Item, attributes: readonly KeyAttribute[]): AttributeValue[] | undefined {
  const values: AttributeValue[] = [];
  for (const attribute of attributes) {
    const value = getOwn(item, attribute.name);
    if (value === undefined) return undefined;
    values.push(value);
  }
  return values;
}

function invalidKey(): Error {
  return validationError('The provided key element does not match the schema');
}

/** The encoded key of an item (or of a key) in `space`. */
function spaceItemKey(space: WalkedSpace, key: Item): Uint8Array {
  const values = keyValues(key, space.attributes);
  if (values === undefined) throw invalidKey();
  try {
    return encodeItemKey(space.spaceId, values[0], ...values.slice(1));
  } catch {
    throw invalidKey();
  }
}

function tableSpace(table: TableSchema): WalkedSpace {
  return { spaceId: table.tableId, attributes: spaceKeyAttributes(table) };
}

/** The encoded key of an item (or of a table key) in the table's space. */
export function tableItemKey(table: TableSchema, key: Item): Uint8Array {
  return spaceItemKey(tableSpace(table), key);
}

/** Sums of a page's counters. */
function emptyResult(): RangeReadResult {
  return { items: [], count: 0, scannedCount: 0, bytesRead: 0 };
}

/** A Query or Scan page over the cluster's partitions. */
export async function readRangeAcross(request: RangeReadRequest, source: MapSource, read: PartitionRangeReader): Promise<RangeReadResult> {
  if (request.indexName === undefined) return walkPartitions(request, tableSpace(request.table), source, read);
  const index = request.table.indexes.find((candidate) => candidate.name === request.indexName);
  if (index === undefined) throw validationError(`The table does not have the specified index: ${request.indexName}`);
  if (index.kind === 'GSI') return walkPartitions(request, { spaceId: index.indexId, attributes: spaceKeyAttributes(request.table, index) }, source, read);
  if (request.hashValue !== undefined) {
    // An LSI collection lives with its table collection: normally in one partition, read directly.
    const { start, end } = spaceReadRange(request, request.table.tableId);
    if (source.map().overlapping(start, end).length === 1) return (await read(() => source.map().lookup(start), request)).result;
  }
  return mergeIndexPartitions(request, index, source, read);
}

/**
 * Table and GSI reads: the partitions of the space overlapping the read's range, one after the other
 * in key order, each asked for what is left of Limit and of the page's bytes.
 */
async function walkPartitions(request: RangeReadRequest, space: WalkedSpace, source: MapSource, read: PartitionRangeReader): Promise<RangeReadResult> {
  const range = spaceReadRange(request, space.spaceId);
  const forward = request.forward || request.hashValue === undefined;
  const total = emptyResult();
  let startKey = request.exclusiveStartKey;
  // The part of the range not read yet: [from, to).
  let from = range.start;
  let to = range.end;
  if (startKey !== undefined) {
    // Partitions before the start key (after it, backwards) hold nothing of this page.
    const resumeAt = spaceItemKey(space, startKey);
    if (forward) from = resumeAt;
    else to = resumeAt;
  }
  for (;;) {
    const locate = (): PartitionDescriptor | undefined => {
      // The partition holding the start key, which it checks (a start key outside the segment).
      if (startKey !== undefined) return source.map().lookup(spaceItemKey(space, startKey));
      const candidates = source.map().overlapping(from, to);
      // The map may lack a split's right half for a while: a partition past such a gap is not the
      // next one (its keys would be skipped). Undefined: the map is fetched again.
      if (forward) {
        const first = candidates[0];
        return first !== undefined && compareBytes(first.startKey, from) <= 0 ? first : undefined;
      }
      const last = candidates[candidates.length - 1];
      return last !== undefined && (last.endKey.length === 0 || compareBytes(last.endKey, to) >= 0) ? last : undefined;
    };
    const step: RangeReadRequest = {
      ...request,
      maxBytes: request.maxBytes - total.bytesRead,
      ...(request.limit === undefined ? {} : { limit: request.limit - total.scannedCount }),
    };
    if (startKey === undefined) delete step.exclusiveStartKey;
    else step.exclusiveStartKey = startKey;
    const { result, partition } = await read(locate, step);
    total.items.push(...result.items);
    total.count += result.count;
    total.scannedCount += result.scannedCount;
    total.bytesRead += result.bytesRead;
    // A partition stops before its end only at Limit or the page's bytes: so does the page.
    if (result.lastEvaluatedKey !== undefined) return { ...total, lastEvaluatedKey: result.lastEvaluatedKey };
    startKey = undefined;
    if (forward) {
      if (partition.endKey.length === 0 || compareBytes(partition.endKey, to) >= 0) return total;
      from = partition.endKey;
    } else {
      if (compareBytes(partition.startKey, from) <= 0) return total;
      to = partition.startKey;
    }
  }
}

interface Entry {
  item: Item;
  key: Uint8Array;
  size: number;
}

/** One partition's stream of index entries, read a page at a time. */
interface EntryStream {
  /** Where the base table range of this stream starts: the partition is looked up there. */
  partition: PartitionDescriptor;
  buffer: Entry[];
  next: number;
  /** Where its next page resumes; undefined before the first page. */
  resumeKey: Item | undefined;
  exhausted: boolean;
}

/** Attempts of a merge page before giving up on a map that keeps changing under it. */
const MERGE_ATTEMPTS = 3;

/**
 * LSI reads across partitions: a k-way merge, in index key order, of the entries of every partition
 * of the base table.
 */
async function mergeIndexPartitions(request: RangeReadRequest, index: IndexSchema, source: MapSource, read: PartitionRangeReader): Promise<RangeReadResult> {
  const fetchesTableItem = index.projection.type !== 'ALL' &&
    (request.select === 'ALL_ATTRIBUTES' || request.select === 'SPECIFIC_ATTRIBUTES' || request.filter !== undefined);
  if (fetchesTableItem) {
    throw notSupported(`Reading attributes that local secondary index ${index.name} does not project, across partitions,`);
  }
  for (let attempt = 1; ; attempt++) {
    const partitions = source.map().partitionsOf(request.table.tableId);
    if (partitions.length === 0) throw new PartitionMapChangedError(`no partition of table ${request.table.name} is known`);
    try {
      return await mergePage(request, index, partitions, source, read);
    } catch (error) {
      if (!(error instanceof PartitionMapChangedError) || attempt >= MERGE_ATTEMPTS) throw error;
    }
  }
}

/** A partition of the merge changed its range (split) while the page was read: the page starts over. */
export class PartitionMapChangedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartitionMapChangedError';
  }
}

async function mergePage(
  request: RangeReadRequest,
  index: IndexSchema,
  partitions: readonly PartitionDescriptor[],
  source: MapSource,
  read: PartitionRangeReader,
): Promise<RangeReadResult> {
  const attributes = spaceKeyAttributes(request.table, index);
  // The request carries the key condition's placeholders too, which the merge does not evaluate.
  const expressions = request.filter !== undefined || request.projection !== undefined
    ? compilePartitionExpressions({ filter: request.filter, projection: request.projection, names: request.names, values: request.values })
    : {};
  const forward = request.forward || request.hashValue === undefined;
  const streams: EntryStream[] = partitions.map((partition) => ({ partition, buffer: [], next: 0, resumeKey: undefined, exhausted: false }));
  const total = emptyResult();
  let last: Entry | undefined;

  const refill = async (stream: EntryStream): Promise<void> => {
    const page: RangeReadRequest = {
      table: request.table,
      indexName: index.name,
      forward: request.forward,
      select: 'ALL_PROJECTED_ATTRIBUTES',
      maxBytes: Math.max(1, request.maxBytes - total.bytesRead),
    };
    if (request.hashValue !== undefined) page.hashValue = request.hashValue;
    if (request.sortCondition !== undefined) page.sortCondition = request.sortCondition;
    if (request.segment !== undefined) page.segment = request.segment;
    if (request.limit !== undefined) page.limit = Math.max(1, request.limit - total.scannedCount);
    const resumeKey = stream.resumeKey ?? request.exclusiveStartKey;
    if (resumeKey !== undefined) page.exclusiveStartKey = resumeKey;
    const { result, partition } = await read(() => source.map().lookup(stream.partition.startKey), page);
    if (compareBytes(partition.startKey, stream.partition.startKey) !== 0 || compareBytes(partition.endKey, stream.partition.endKey) !== 0) {
      throw new PartitionMapChangedError(`partition ${stream.partition.id} changed its range during an index read`);
    }
    stream.buffer = result.items.map((item) => {
      const values = keyValues(item, attributes);
      if (values === undefined) throw new Error(`an entry of index ${index.name} lacks its key attributes`);
      return { item, key: encodeItemKey(index.indexId, values[0], ...values.slice(1)), size: itemSize(item) };
    });
    stream.next = 0;
    stream.resumeKey = result.lastEvaluatedKey;
    stream.exhausted = result.lastEvaluatedKey === undefined;
    // Without a filter every entry read is returned: a page that stops with none would never end.
    if (stream.buffer.length === 0 && !stream.exhausted) throw new Error(`partition ${partition.id} stopped an index page without an entry`);
  };

  for (;;) {
    const limitReached = request.limit !== undefined && total.scannedCount >= request.limit;
    if (limitReached || total.bytesRead >= request.maxBytes) break;
    // Every stream that may hold the next entry must show its head before one is chosen.
    await Promise.all(streams.filter((s) => s.next >= s.buffer.length && !s.exhausted).map(refill));
    let chosen: EntryStream | undefined;
    for (const stream of streams) {
      if (stream.next >= stream.buffer.length) continue;
      if (chosen === undefined) {
        chosen = stream;
        continue;
      }
      const order = compareBytes(stream.buffer[stream.next].key, chosen.buffer[chosen.next].key);
      if (forward ? order < 0 : order > 0) chosen = stream;
    }
    if (chosen === undefined) return total;
    const entry = chosen.buffer[chosen.next++];
    last = entry;
    total.scannedCount++;
    total.bytesRead += entry.size;
    if (expressions.filter === undefined || expressions.filter.evaluate(entry.item)) {
      total.count++;
      if (request.select !== 'COUNT') total.items.push(expressions.projection ? expressions.projection.apply(entry.item) : entry.item);
    }
  }
  if (last === undefined) return total;
  const lastEvaluatedKey: Item = {};
  for (const attribute of attributes) setOwn(lastEvaluatedKey, attribute.name, getOwn(last.item, attribute.name) as AttributeValue);
  return { ...total, lastEvaluatedKey };
}
