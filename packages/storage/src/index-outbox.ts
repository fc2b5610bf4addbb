/**
 * Asynchronous GSIs in a cluster (docs/architecture.md, "Asynchronous GSIs"): a base partition's
 * replica does not write its items' GSI entries; it writes, in the same batch as the item, one outbox
 * record per GSI entry change under its group, numbered by a per-group sequence. The node leading the
 * group ships the records in sequence order to the GSI partitions owning their entry keys, which apply
 * them through their own Raft log, skipping every record at or below the cursor they keep per source
 * group (written in the same batch as the entries), and the source trims what every target acknowledged.
 *
 * Keys (space 0, layout.ts):
 *   00000000 0a <u32 BE group id> <f64 BE seq>        -> JSON OutboxRecordJson   (the group's outbox)
 *   00000000 0b <u32 BE group id>                     -> f64 BE: the group's next seq (1 before any)
 *   00000000 0c <u32 BE group id> <u32 BE source id>  -> f64 BE: highest seq of `source` applied by the group
 *   00000000 0e <u32 BE group id> <u32 BE index id>   -> JSON RunningBackfillJson: a GSI backfill of the group,
 *                                                        walked chunk by chunk (backfillChunk entries), or done
 *   00000000 0d <u32 BE group id> <u32 BE source id>  -> key: the group skips records of `source` whose
 *                                                        item key is at or beyond it (a fence: the source
 *                                                        split, its records of those items moved to a half)
 *   00000000 12 <u32 BE group id>                     -> JSON OutboxMoveJson: the group split, the records of
 *                                                        its right half's items are being moved (moveIndexOutbox entries)
 *   00000000 13 <u32 BE group id> <split key>         -> u32 BE: the group split there, its right half is that group
 *                                                        (where a move routes records of a half that split since)
 *   00000000 14 <u32 BE group id>                     -> f64 BE: the group trimmed its outbox through this seq (the
 *                                                        highest trim, or inherited at a split): a move drops such records
 */
import { compareBytes, prefixEnd, type Item, type TableSchema } from '@shoal/model';
import type { StateReader } from './commit-queue.ts';
import type { ByteLevel, Mutation } from './database.ts';
import { decodeJson, decodeU32, encodeJson, encodeU32, type KeyRange } from './layout.ts';

const OUTBOX_TAG = 0x0a;
const OUTBOX_SEQ_TAG = 0x0b;
const INDEX_CURSOR_TAG = 0x0c;
const SOURCE_FENCE_TAG = 0x0d;
const BACKFILL_TAG = 0x0e;
const OUTBOX_MOVE_TAG = 0x12;
const OUTBOX_SPLIT_TAG = 0x13;
const TRIMMED_THROUGH_TAG = 0x14;

/** One change of one GSI entry: put `entry` at `entryKey`, or delete it (`entry` undefined). */
export interface IndexEntryChange {
  indexId: number;
  /** The entry's key in the index's space (encodeItemKey(indexId, gsiHash, gsiRange?, tableHash, tableRange?)). */
  entryKey: Uint8Array;
  /** The projected entry; undefined: the entry goes. */
  entry?: Item;
}

/** An outbox record: a change of a GSI entry of an item of the group, in the group's order. */
export interface IndexOutboxRecord extends IndexEntryChange {
  seq: number;
  /** The key of the base item whose write made the change (a split moves the records of its right half). */
  itemKey: Uint8Array;
}

interface OutboxRecordJson {
  indexId: number;
  itemKey: string;
  entryKey: string;
  entry?: Item;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

function tagKey(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((sum, part) => sum + part.length, 5);
  const key = new Uint8Array(length);
  key[4] = tag;
  let at = 5;
  for (const part of parts) {
    key.set(part, at);
    at += part.length;
  }
  return key;
}

function encodeF64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, value, false);
  return bytes;
}

export function decodeF64(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(0, false);
}

export function outboxKey(groupId: number, seq: number): Uint8Array {
  return tagKey(OUTBOX_TAG, encodeU32(groupId), encodeF64(seq));
}

/** The group's outbox, in seq order (positive f64s sort as their big-endian bytes). */
export function outboxRange(groupId: number): KeyRange {
  return prefixRange(tagKey(OUTBOX_TAG, encodeU32(groupId)));
}

function prefixRange(start: Uint8Array): KeyRange {
  // A prefix ending in 0xff bytes only (group 0xffffffff) ends where the tag does.
  return { start, end: prefixEnd(start) ?? tagKey(start[4] + 1) };
}

export function outboxSeqKey(groupId: number): Uint8Array {
  return tagKey(OUTBOX_SEQ_TAG, encodeU32(groupId));
}

export function indexCursorKey(groupId: number, sourceGroupId: number): Uint8Array {
  return tagKey(INDEX_CURSOR_TAG, encodeU32(groupId), encodeU32(sourceGroupId));
}

export function indexCursorsRange(groupId: number): KeyRange {
  return prefixRange(tagKey(INDEX_CURSOR_TAG, encodeU32(groupId)));
}

export function sourceFenceKey(groupId: number, sourceGroupId: number): Uint8Array {
  return tagKey(SOURCE_FENCE_TAG, encodeU32(groupId), encodeU32(sourceGroupId));
}

export function sourceFencesRange(groupId: number): KeyRange {
  return prefixRange(tagKey(SOURCE_FENCE_TAG, encodeU32(groupId)));
}

export function runningBackfillKey(groupId: number, indexId: number): Uint8Array {
  return tagKey(BACKFILL_TAG, encodeU32(groupId), encodeU32(indexId));
}

/** The group's GSI backfills (running or done), by index id. */
export function runningBackfillsRange(groupId: number): KeyRange {
  return prefixRange(tagKey(BACKFILL_TAG, encodeU32(groupId)));
}

/** Every group's running GSI backfills (a backfill call waits for those its own one split into). */
export function allRunningBackfillsRange(): KeyRange {
  return { start: tagKey(BACKFILL_TAG), end: tagKey(BACKFILL_TAG + 1) };
}

/**
 * A GSI backfill of a base partition group: under way, the items of [nextKey, end) are still to
 * walk; `done`, every item of the group had its record (kept, so the backfill command sent again,
 * or to a split half, does not walk the items again). `origin`: the group whose backfillIndex
 * command started it (a split half inherits it, with the origin kept, so the command's caller waits
 * for the halves too). `lastSeq` (once done): the group's last outbox seq when its walk ended, so
 * every record the walk made is at or below it (its records are applied by the GSI partitions once
 * the outbox holds none at or below it). `dropped`: the index was dropped (a tombstone, done: a
 * backfill command of it arriving later, or sent again, walks nothing). `indexCreatedAtMapVersion`:
 * the command's (IndexCommand), kept by split halves and the tombstone; absent in records of older
 * commands. Keys in hex.
 */
export interface RunningBackfill {
  done: boolean;
  lastSeq?: number;
  dropped?: boolean;
  indexCreatedAtMapVersion?: number;
  groupId: number;
  indexId: number;
  table: TableSchema;
  indexName: string;
  origin: number;
  nextKey: Uint8Array;
  end: Uint8Array;
}

interface RunningBackfillJson {
  done?: true;
  lastSeq?: number;
  dropped?: true;
  indexCreatedAtMapVersion?: number;
  table: TableSchema;
  indexName: string;
  origin: number;
  nextKey: string;
  end: string;
}

export function runningBackfillMutation(backfill: RunningBackfill): Mutation {
  const json: RunningBackfillJson = { table: backfill.table, indexName: backfill.indexName, origin: backfill.origin, nextKey: hex(backfill.nextKey), end: hex(backfill.end) };
  if (backfill.done) json.done = true;
  if (backfill.lastSeq !== undefined) json.lastSeq = backfill.lastSeq;
  if (backfill.dropped === true) json.dropped = true;
  if (backfill.indexCreatedAtMapVersion !== undefined) json.indexCreatedAtMapVersion = backfill.indexCreatedAtMapVersion;
  return { key: runningBackfillKey(backfill.groupId, backfill.indexId), value: encodeJson(json) };
}

export function decodeRunningBackfill(key: Uint8Array, value: Uint8Array): RunningBackfill {
  const json = decodeJson<RunningBackfillJson>(value);
  return {
    done: json.done === true,
    ...(json.lastSeq === undefined ? {} : { lastSeq: json.lastSeq }),
    ...(json.dropped === true ? { dropped: true } : {}),
    ...(json.indexCreatedAtMapVersion === undefined ? {} : { indexCreatedAtMapVersion: json.indexCreatedAtMapVersion }),
    groupId: decodeU32(key.subarray(5, 9)),
    indexId: decodeU32(key.subarray(9, 13)),
    table: json.table,
    indexName: json.indexName,
    origin: json.origin,
    nextKey: fromHex(json.nextKey),
    end: fromHex(json.end),
  };
}

/**
 * A split's move of outbox records, under way (docs/architecture.md, "Asynchronous GSIs", Splits): the
 * records of the group's outbox numbered `nextSeq` to `throughSeq` whose item key is at or beyond
 * `splitKey` belong to the right half `rightGroupId` (or to a half it split into since) and are moved
 * there by the group's `moveIndexOutbox` entries, in seq order, each KEEPING its seq: the split
 * reserved them (the right group's next seq starts past `throughSeq`), so every replica writes the
 * same record under the same key whichever way and whenever it gets there.
 */
export interface IndexOutboxMove {
  groupId: number;
  rightGroupId: number;
  splitKey: Uint8Array;
  nextSeq: number;
  throughSeq: number;
}

interface OutboxMoveJson {
  rightGroupId: number;
  splitKey: string;
  nextSeq: number;
  throughSeq: number;
}

export function outboxMoveKey(groupId: number): Uint8Array {
  return tagKey(OUTBOX_MOVE_TAG, encodeU32(groupId));
}

/** Every group's outbox moves under way. */
export function outboxMovesRange(): KeyRange {
  return { start: tagKey(OUTBOX_MOVE_TAG), end: tagKey(OUTBOX_MOVE_TAG + 1) };
}

export function outboxMoveMutation(move: IndexOutboxMove): Mutation {
  const json: OutboxMoveJson = { rightGroupId: move.rightGroupId, splitKey: hex(move.splitKey), nextSeq: move.nextSeq, throughSeq: move.throughSeq };
  return { key: outboxMoveKey(move.groupId), value: encodeJson(json) };
}

export function decodeOutboxMove(key: Uint8Array, value: Uint8Array): IndexOutboxMove {
  const json = decodeJson<OutboxMoveJson>(value);
  return { groupId: decodeU32(key.subarray(5, 9)), rightGroupId: json.rightGroupId, splitKey: fromHex(json.splitKey), nextSeq: json.nextSeq, throughSeq: json.throughSeq };
}

/** Whether `move` is still to carry this record of its group's outbox to a half: a right-half item's, at or past the move's next seq. */
export function stillToMove(move: IndexOutboxMove, record: IndexOutboxRecord): boolean {
  return record.seq >= move.nextSeq && record.seq <= move.throughSeq && compareBytes(record.itemKey, move.splitKey) >= 0;
}

/** The group's split at `splitKey` (its right half: the value), as its outbox moves route records. */
export function outboxSplitMutation(groupId: number, splitKey: Uint8Array, rightGroupId: number): Mutation {
  return { key: tagKey(OUTBOX_SPLIT_TAG, encodeU32(groupId), splitKey), value: encodeU32(rightGroupId) };
}

/** The group's splits (outboxSplitMutation), by split key. */
export function outboxSplitsRange(groupId: number): KeyRange {
  return prefixRange(tagKey(OUTBOX_SPLIT_TAG, encodeU32(groupId)));
}

export function decodeOutboxSplit(key: Uint8Array, value: Uint8Array): { splitKey: Uint8Array; rightGroupId: number } {
  return { splitKey: key.slice(9), rightGroupId: decodeU32(value) };
}

export function trimmedThroughKey(groupId: number): Uint8Array {
  return tagKey(TRIMMED_THROUGH_TAG, encodeU32(groupId));
}

/**
 * The highest seq the group trimmed its outbox through (0: none), as replicated state: a record a
 * split's move brings in at or below it was trimmed on replicas where it arrived before the trim (a
 * replica slower in the parent's log gets it after), so the move drops it there too.
 */
export function readTrimmedThrough(state: StateReader, groupId: number): number {
  const stored = state.read(trimmedThroughKey(groupId));
  return stored === undefined ? 0 : decodeF64(stored);
}

export function trimmedThroughMutation(groupId: number, seq: number): Mutation {
  return { key: trimmedThroughKey(groupId), value: encodeF64(seq) };
}

/** The parts of space 0 a group owns for its GSIs: outbox, next seq, cursors, fences, running backfills, outbox move, splits and trimmed-through seq (snapshots carry them, a removal deletes them). */
export function indexOutboxRanges(groupId: number): KeyRange[] {
  const single = (key: Uint8Array): KeyRange => ({ start: key, end: Uint8Array.from([...key, 0]) });
  return [
    outboxRange(groupId),
    single(outboxSeqKey(groupId)),
    indexCursorsRange(groupId),
    sourceFencesRange(groupId),
    runningBackfillsRange(groupId),
    single(outboxMoveKey(groupId)),
    outboxSplitsRange(groupId),
    single(trimmedThroughKey(groupId)),
  ];
}

export function encodeOutboxRecord(record: Omit<IndexOutboxRecord, 'seq'>): Uint8Array {
  const json: OutboxRecordJson = { indexId: record.indexId, itemKey: hex(record.itemKey), entryKey: hex(record.entryKey) };
  if (record.entry !== undefined) json.entry = record.entry;
  return encodeJson(json);
}

export function decodeOutboxRecord(key: Uint8Array, value: Uint8Array): IndexOutboxRecord {
  const json = decodeJson<OutboxRecordJson>(value);
  const record: IndexOutboxRecord = { seq: outboxKeySeq(key), indexId: json.indexId, itemKey: fromHex(json.itemKey), entryKey: fromHex(json.entryKey) };
  if (json.entry !== undefined) record.entry = json.entry;
  return record;
}

/** The group's next seq in the state (including staged changes). */
export function readNextSeq(state: StateReader, groupId: number): number {
  const stored = state.read(outboxSeqKey(groupId));
  return stored === undefined ? 1 : decodeF64(stored);
}

export function nextSeqMutation(groupId: number, next: number): Mutation {
  return { key: outboxSeqKey(groupId), value: encodeF64(next) };
}

export function readIndexCursor(state: StateReader, groupId: number, sourceGroupId: number): number {
  const stored = state.read(indexCursorKey(groupId, sourceGroupId));
  return stored === undefined ? 0 : decodeF64(stored);
}

export function indexCursorMutation(groupId: number, sourceGroupId: number, seq: number): Mutation {
  return { key: indexCursorKey(groupId, sourceGroupId), value: encodeF64(seq) };
}

/** The seq of an outbox record's key. */
function outboxKeySeq(key: Uint8Array): number {
  return decodeF64(key.subarray(9, 17));
}

/**
 * Each group's outbox backlog, in memory: the records its outbox holds (appended or moved in, not yet
 * trimmed or moved out), counted as they change: a base partition's leader asks it before every
 * write to a table with a GSI (admission: GSI back-pressure), so asking reads nothing. Appends count
 * up (OutboxWriter), trims down, a split's move steps down in the parent and up in the halves; a
 * restored snapshot counts its group's records again, an open every group's.
 */
export class OutboxBacklogs {
  readonly #held = new Map<number, number>();

  /** The records the group's outbox holds (0 for a group without any). */
  of(groupId: number): number {
    return this.#held.get(groupId) ?? 0;
  }

  /** `delta` records came into the group's outbox (negative: went). */
  add(groupId: number, delta: number): void {
    const held = this.of(groupId) + delta;
    if (held === 0) this.#held.delete(groupId);
    else this.#held.set(groupId, held);
  }

  /**
   * Counts the group's records in the store again: call under the commit lock, once what is staged
   * is durable (`state.durable()`), so that the store holds every change.
   */
  async recount(level: ByteLevel, groupId: number): Promise<void> {
    const range = outboxRange(groupId);
    let held = 0;
    for await (const _ of level.keys({ gte: range.start, lt: range.end })) held += 1;
    this.#held.delete(groupId);
    this.add(groupId, held);
  }

  /** Counts every group's records in the store (when it opens: nothing else runs yet), in one pass over the outboxes. */
  async load(level: ByteLevel): Promise<void> {
    this.#held.clear();
    for await (const key of level.keys({ gte: tagKey(OUTBOX_TAG), lt: tagKey(OUTBOX_TAG + 1) })) this.add(decodeU32(key.subarray(5, 9)), 1);
  }

  /** The group's outbox went (its replica removed). */
  forget(groupId: number): void {
    this.#held.delete(groupId);
  }
}

/**
 * The records of one command for one group's outbox: numbered from the group's next seq at the
 * moment the command is decided (under the commit lock), written with the command's other changes.
 */
export class OutboxWriter {
  readonly groupId: number;
  readonly #state: StateReader;
  readonly #backlogs: OutboxBacklogs | undefined;
  #first: number | undefined;
  #next: number | undefined;
  readonly #mutations: Mutation[] = [];

  /** `backlogs`: told of the records appended once `finish` hands them over to be staged. */
  constructor(state: StateReader, groupId: number, backlogs?: OutboxBacklogs) {
    this.#state = state;
    this.groupId = groupId;
    this.#backlogs = backlogs;
  }

  append(record: Omit<IndexOutboxRecord, 'seq'>): void {
    if (this.#next === undefined) this.#next = this.#first = readNextSeq(this.#state, this.groupId);
    const seq = this.#next;
    this.#mutations.push({ key: outboxKey(this.groupId, seq), value: encodeOutboxRecord(record) });
    this.#next = seq + 1;
  }

  /** The group's last seq once the records appended so far are written (0: none ever). */
  lastSeq(): number {
    return (this.#next ?? readNextSeq(this.#state, this.groupId)) - 1;
  }

  /** The records and the new next seq (nothing when no record was appended). */
  finish(): Mutation[] {
    if (this.#next === undefined || this.#first === undefined) return [];
    this.#backlogs?.add(this.groupId, this.#next - this.#first);
    return [...this.#mutations, nextSeqMutation(this.groupId, this.#next)];
  }
}

/** Limits of one read of an outbox (a shipper's batch). */
export interface OutboxReadLimits {
  /** Records after this seq only. */
  afterSeq?: number;
  maxRecords: number;
  /** Stop once this many bytes of record values are read (at least one record is). */
  maxBytes: number;
}

/** The group's first records, in seq order, within the limits. */
export async function readOutbox(level: ByteLevel, groupId: number, limits: OutboxReadLimits): Promise<IndexOutboxRecord[]> {
  const range = outboxRange(groupId);
  const start = limits.afterSeq === undefined ? { gte: range.start } : { gt: outboxKey(groupId, limits.afterSeq) };
  const records: IndexOutboxRecord[] = [];
  let bytes = 0;
  for await (const [key, value] of level.iterator({ ...start, lt: range.end, limit: limits.maxRecords })) {
    records.push(decodeOutboxRecord(key, value));
    bytes += value.length;
    if (bytes >= limits.maxBytes) break;
  }
  return records;
}
