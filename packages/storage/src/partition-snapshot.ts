/**
 * Snapshots of one partition replica held in a node's shared store (the store holds every replica of
 * the node in one key space): what a new or lagging replica of the group receives instead of the log
 * its leader compacted.
 *
 * What belongs to the replica of group G over table T within bound B = [start, end) (layout.ts,
 * transactions.ts):
 *   - T's items whose key lies in B                      space T.tableId, clamped to B
 *   - the entries of T's LSIs and co-located GSIs        indexEntriesRange(T, index, B), each entry
 *     whose base item lies in B                          filtered by entryInBound
 *   - G's applied mark                                   00000000 04 G (the snapshot's appliedIndex)
 *   - G's running index commands                         00000000 05 G <index>
 *   - the intents on T's items in B                      00000000 06 <item key> <transaction id>
 *   - the transaction records G coordinates              00000000 07 <transaction id>, whose first
 *                                                        participant is G (the router's coordinator)
 *   - G's GSI outbox, next seq and cursors               00000000 0a/0b/0c G ... (index-outbox.ts)
 * A store with index outboxes (cluster nodes) keeps no GSI entries with the base partition: its
 * scopes leave GSIs out (the index space's entries on the node are GSI partitions'). A GSI partition's
 * scope names the index space as its table (indexSpaceSchema: tableId = indexId, no indexes), its bound
 * lying in that space.
 * Not per replica: the catalog, the space counter, and the per-space statistics (a restore adjusts
 * them by what it removes and adds). A record decided ABORTED for a transaction never begun here names
 * no participant, so it belongs to no snapshot (and no restore deletes it).
 *
 * Consistency: every command a replica applies writes its applied mark in the same LevelDB batch as
 * its changes, so one LevelDB snapshot of the store holds, for G, data and applied mark that match.
 * `openPartitionSnapshot` takes that LevelDB snapshot synchronously, at the moment it is called; the
 * caller calls it when no command of G is being applied, so the mark it reads is G's applied index at
 * that moment (commands applied since are not in it). The pairs are then read from the LevelDB
 * snapshot, whatever the group applies meanwhile. The only writes into B not made by an applied
 * command are index backfills; a backfill's running record travels with the snapshot and the
 * receiver runs it again from the start.
 *
 * Wire form (the node streams it in bounded chunks):
 *   u32 header length | header JSON { format, groupId, appliedIndex } | (u32 key length | key | u32 value length | value)*
 */
import { compareBytes, spaceRange, type Item, type TableSchema } from '@shoal/model';
import type { AbstractSnapshot } from 'abstract-level';
import type { ByteLevel } from './database.ts';
import {
  appliedIndexKey,
  boundContains,
  clampRange,
  decodeJson,
  decodeU32,
  entryInBound,
  indexEntriesRange,
  runningIndexCommandsRange,
  type KeyRange,
  type PartitionBound,
} from './layout.ts';
import { indexOutboxRanges } from './index-outbox.ts';
import type { StoredIntent, TransactionRecord } from './transactions.ts';

const FORMAT = 'shoal-partition-snapshot-1';
/** 00000000 08: written synced by `syncToDisk` alone. */
const SYNC_MARK_KEY = new Uint8Array([0, 0, 0, 0, 8]);
/** Tags of the metadata space (transactions.ts): intents and transaction records. */
const INTENT_TAG = 6;
const TRANSACTION_RECORD_TAG = 7;

/** One partition replica: its group, its table, its key range. */
export interface PartitionScope {
  groupId: number;
  table: TableSchema;
  bound: PartitionBound;
}

/**
 * A snapshot read as it is sent: its size (a first pass over the LevelDB snapshot), then its bytes in
 * chunks of about SNAPSHOT_CHUNK_BYTES (a second pass over the same LevelDB snapshot), so a large
 * partition is never held in memory at once. `release` closes the LevelDB snapshot (call it once done,
 * whether or not the chunks were read).
 */
export interface PartitionSnapshotStream {
  size: number;
  chunks: AsyncIterable<Uint8Array>;
  release(): void;
}

const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/** A snapshot whose bytes are not one this version writes. */
export class PartitionSnapshotFormatError extends Error {
  constructor(reason: string) {
    super(`not a partition snapshot: ${reason}`);
    this.name = 'PartitionSnapshotFormatError';
  }
}

const metaTagRange = (tag: number): KeyRange => ({ start: new Uint8Array([0, 0, 0, 0, tag]), end: new Uint8Array([0, 0, 0, 0, tag + 1]) });

/** An intent's item key (its value carries it in hex: the key's end is the transaction id). */
export function intentItemKey(value: Uint8Array): { itemKey: Uint8Array; intent: StoredIntent } {
  const { itemKey, ...intent } = decodeJson<StoredIntent & { itemKey: string }>(value);
  return { itemKey: new Uint8Array(Buffer.from(itemKey, 'hex')), intent };
}

/** A part of the store a replica owns: a key range, and which of its entries belong (all without `belongs`). */
type ScopePart = { range: KeyRange; belongs?(value: Uint8Array): boolean };

/** Whether the base partitions' scopes hold their GSI entries (a store without index outboxes) or not. */
export interface ScopeOptions {
  coLocatedGsis: boolean;
}

/** The parts of the store a replica owns. */
function scopeParts(scope: PartitionScope, options: ScopeOptions): ScopePart[] {
  const { table, bound, groupId } = scope;
  const indexes = options.coLocatedGsis ? table.indexes : table.indexes.filter((index) => index.kind === 'LSI');
  return [
    { range: clampRange(spaceRange(table.tableId), bound) },
    ...indexOutboxRanges(groupId).map((range) => ({ range })),
    ...indexes.map((index) => ({
      range: indexEntriesRange(table, index, bound),
      belongs: (value: Uint8Array) => entryInBound(table, bound, decodeJson<Item>(value)),
    })),
    { range: runningIndexCommandsRange(groupId) },
    {
      range: metaTagRange(INTENT_TAG),
      belongs: (value: Uint8Array) => {
        const { itemKey, intent } = intentItemKey(value);
        return intent.table.tableId === table.tableId && boundContains(bound, itemKey);
      },
    },
    { range: metaTagRange(TRANSACTION_RECORD_TAG), belongs: (value: Uint8Array) => decodeJson<TransactionRecord>(value).participants[0] === groupId },
  ];
}

const partHolds = (part: ScopePart, key: Uint8Array, value: Uint8Array): boolean =>
  compareBytes(part.range.start, key) <= 0 && compareBytes(key, part.range.end) < 0 && (part.belongs === undefined || part.belongs(value));

/**
 * Every entry of the replicas in `scopes` (each key once: an entry an earlier scope holds too is
 * left to it, checked entry by entry, so no set of keys grows with the partition), read from
 * `snapshot` when given.
 */
export async function* partitionEntries(level: ByteLevel, scopes: readonly PartitionScope[], options: ScopeOptions, snapshot?: AbstractSnapshot): AsyncGenerator<[Uint8Array, Uint8Array]> {
  const earlier: ScopePart[] = [];
  for (const scope of scopes) {
    const parts = scopeParts(scope, options);
    for (const part of parts) {
      const { range, belongs } = part;
      if (compareBytes(range.start, range.end) >= 0) continue;
      for await (const [key, value] of level.iterator({ gte: range.start, lt: range.end, ...(snapshot === undefined ? {} : { snapshot }) })) {
        if (belongs !== undefined && !belongs(value)) continue;
        if (earlier.some((other) => partHolds(other, key, value))) continue;
        yield [key, value];
      }
    }
    earlier.push(...parts);
  }
}

function decodeIndex(stored: Uint8Array | undefined): number {
  return stored === undefined ? 0 : new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getFloat64(0, false);
}

const u32 = (value: number): Uint8Array => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, false);
  return bytes;
};

/**
 * Opens a consistent read of the replica's state NOW (a LevelDB snapshot, taken synchronously) and
 * returns the function that measures it and streams it (PartitionSnapshotStream); call that function
 * once, and release what it returns (a failure releases it). See the file comment for when to call this.
 */
export function openPartitionSnapshot(
  level: ByteLevel,
  scope: PartitionScope,
  options: ScopeOptions,
  /** Reads the snapshot before anything else; throws (the snapshot released) to refuse sending it. */
  check?: (snapshot: AbstractSnapshot) => Promise<void>,
): () => Promise<PartitionSnapshotStream> {
  const snapshot = level.snapshot();
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    void snapshot.close();
  };
  return async () => {
    try {
      await check?.(snapshot);
      const appliedIndex = decodeIndex(await level.get(appliedIndexKey(scope.groupId), { snapshot }));
      const header = Buffer.from(JSON.stringify({ format: FORMAT, groupId: scope.groupId, appliedIndex }));
      let size = 4 + header.length;
      for await (const [key, value] of partitionEntries(level, [scope], options, snapshot)) size += 8 + key.length + value.length;
      async function* chunks(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array(Buffer.concat([u32(header.length), header]));
        let parts: Uint8Array[] = [];
        let bytes = 0;
        for await (const [key, value] of partitionEntries(level, [scope], options, snapshot)) {
          parts.push(u32(key.length), key, u32(value.length), value);
          bytes += 8 + key.length + value.length;
          if (bytes < SNAPSHOT_CHUNK_BYTES) continue;
          yield new Uint8Array(Buffer.concat(parts));
          parts = [];
          bytes = 0;
        }
        if (parts.length > 0) yield new Uint8Array(Buffer.concat(parts));
      }
      return { size, chunks: chunks(), release };
    } catch (error) {
      release();
      throw error;
    }
  };
}

/** What a snapshot's header says: its group and the applied index its data holds. */
export interface PartitionSnapshotHeader {
  groupId: number;
  appliedIndex: number;
}

export function decodeSnapshotHeader(bytes: Uint8Array): PartitionSnapshotHeader {
  let header: { format?: unknown; groupId?: unknown; appliedIndex?: unknown };
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as typeof header;
  } catch (error) {
    throw new PartitionSnapshotFormatError(`its header is not JSON (${(error as Error).message})`);
  }
  if (header.format !== FORMAT || !Number.isSafeInteger(header.groupId) || !Number.isSafeInteger(header.appliedIndex)) {
    throw new PartitionSnapshotFormatError(`unknown header ${JSON.stringify(header)}`);
  }
  return { groupId: header.groupId as number, appliedIndex: header.appliedIndex as number };
}

export const spaceOf = (key: Uint8Array): number => decodeU32(key.subarray(0, 4));
export const isIntent = (key: Uint8Array): boolean => spaceOf(key) === 0 && key[4] === INTENT_TAG;

/**
 * Makes every write the store completed durable: a synced write of a key nothing else writes (LevelDB
 * syncs its log up to it, and compactions sync what they write). The store's batches are not synced,
 * as the Raft log replays them; before a group's log is compacted past its applied index, they must be.
 */
export async function syncToDisk(level: ByteLevel): Promise<void> {
  // `sync` is classic-level's own option (memory-level has nothing to sync and ignores it).
  const options = { sync: true, valueEncoding: 'view' as const };
  await level.put(SYNC_MARK_KEY, new Uint8Array(0), options);
}
