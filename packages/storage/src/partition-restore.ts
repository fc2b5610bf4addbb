/**
 * Restoring a partition replica from a snapshot staged in a file (the wire form of
 * partition-snapshot.ts, as the node's transport received it) without holding it in memory: the pairs
 * are read from the file chunk by chunk and written in bounded batches (`batchBytes`, 4 MiB by
 * default), crash-safe behind a restore marker. In order, each step one or more batches:
 *   1. the marker (the group, the scopes replaced, the snapshot's index, where its file is) is
 *      recorded, and the intents on the replaced ranges are released;
 *   2. every entry of the replaced scopes is deleted (read from a LevelDB snapshot taken after 1);
 *   3. the snapshot's pairs are put (intents through the store's intent index);
 *   4. the applied mark is set (max(the snapshot data's applied index, the snapshot's index)) and
 *      the marker cleared.
 * Every batch of 2 and 3 carries the statistics of what it removes or adds, so they are exact for
 * what is on disk after any batch, and the restore may start over from step 1 at any point and end
 * in exactly the snapshot's state: a store that finds a marker when it opens (a crash mid-restore)
 * runs the restore again from the staged file before anything else reads or writes it. The file is
 * checked whole (checkPartitionSnapshot) before a marker names it, and must stay until the marker is
 * cleared (whoever staged it deletes it once the restore resolved).
 *
 * Key: 00000000 09 <u32 BE group id> -> JSON RestoreMarkerJson
 */
import { open } from 'node:fs/promises';
import { itemSize, type Item, type TableSchema } from '@shoal/model';
import type { ByteLevel, Mutation } from './database.ts';
import { appliedIndexKey, decodeJson, decodeU32, encodeJson, encodeU32, type PartitionBound } from './layout.ts';
import {
  decodeSnapshotHeader,
  intentItemKey,
  isIntent,
  partitionEntries,
  PartitionSnapshotFormatError,
  spaceOf,
  type PartitionScope,
  type PartitionSnapshotHeader,
  type ScopeOptions,
} from './partition-snapshot.ts';
import type { StoredIntent } from './transactions.ts';

/** Bytes of keys and values a restore batch holds, at most about (one pair may pass it). */
const RESTORE_BATCH_BYTES = 4 * 1024 * 1024;
/** Bytes read from the staged file at a time. */
const READ_CHUNK_BYTES = 1024 * 1024;
const RESTORE_MARKER_TAG = 9;

/** A partition snapshot (partition-snapshot.ts wire form) in a file: `size` bytes from `offset`. */
export interface StagedPartitionSnapshot {
  path: string;
  offset: number;
  size: number;
}

/** A staged snapshot whose framing was read whole (checkPartitionSnapshot), with what its header says. */
export interface CheckedPartitionSnapshot extends StagedPartitionSnapshot, PartitionSnapshotHeader {}

/** A restore under way: the replica's scopes it replaces (all of group `snapshot.groupId`), from what. */
export interface PartitionRestore {
  scopes: readonly PartitionScope[];
  snapshot: CheckedPartitionSnapshot;
  snapshotIndex: number;
}

/** What a restore needs of the store's in-memory books, under the commit lock (PartitionStore holds them). */
export interface RestoreBooks {
  /** Stops the index backfills running over the scope (the snapshot's index commands are resumed after). */
  stopBackfills(scope: PartitionScope): void;
  /** The mutations releasing every intent on items in `bound`. */
  releaseIntents(bound: PartitionBound): Mutation[];
  /** The mutations recording these intents. */
  putIntents(intents: Array<{ itemKey: Uint8Array; intent: StoredIntent }>): Mutation[];
  /** The mutation recording a space's statistics moved by `delta`. */
  adjustStatistics(spaceId: number, delta: StatisticsDelta): Mutation;
}

export interface StatisticsDelta {
  itemCount: number;
  sizeBytes: number;
}

/** The store a restore writes to. */
export interface RestoreTarget {
  level: ByteLevel;
  scopeOptions: ScopeOptions;
  /** Runs `plan` under the commit lock and writes the mutations it returns as one batch, durably before it resolves. */
  batch(plan: (books: RestoreBooks) => Mutation[]): Promise<void>;
}

interface RestoreMarkerJson {
  snapshotIndex: number;
  scopes: Array<{ table: TableSchema; bound: { start: string; end: string } }>;
  snapshot: CheckedPartitionSnapshot;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

function restoreMarkerKey(groupId: number): Uint8Array {
  const key = new Uint8Array(9);
  key[4] = RESTORE_MARKER_TAG;
  key.set(encodeU32(groupId), 5);
  return key;
}

/** The restores a crash interrupted: their markers, in group order. */
export async function readRestoreMarkers(level: ByteLevel): Promise<PartitionRestore[]> {
  const start = new Uint8Array([0, 0, 0, 0, RESTORE_MARKER_TAG]);
  const end = new Uint8Array([0, 0, 0, 0, RESTORE_MARKER_TAG + 1]);
  const markers = await level.values({ gte: start, lt: end }).all();
  return markers.map((value) => {
    const marker = decodeJson<RestoreMarkerJson>(value);
    const groupId = marker.snapshot.groupId;
    const scopes = marker.scopes.map(({ table, bound }) => ({ groupId, table, bound: { start: fromHex(bound.start), end: fromHex(bound.end) } }));
    return { scopes, snapshot: marker.snapshot, snapshotIndex: marker.snapshotIndex };
  });
}

/** The staged file's bytes, read chunk by chunk (each chunk its own buffer: pairs taken from it stay valid). */
async function* fileChunks(staged: StagedPartitionSnapshot): AsyncGenerator<Buffer> {
  if (staged.size === 0) return;
  const file = await open(staged.path, 'r');
  try {
    const end = staged.offset + staged.size;
    for (let position = staged.offset; position < end; ) {
      const length = Math.min(READ_CHUNK_BYTES, end - position);
      const chunk = Buffer.allocUnsafeSlow(length);
      const { bytesRead } = await file.read(chunk, 0, length, position);
      if (bytesRead === 0) throw new PartitionSnapshotFormatError(`${staged.path} ends ${end - position} bytes before the snapshot does`);
      position += bytesRead;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}

/** `length` bytes at `position` of the staged snapshot, which must hold them. */
async function readStaged(staged: StagedPartitionSnapshot, at: number, length: number, what: string): Promise<Uint8Array> {
  if (at + length > staged.size) throw new PartitionSnapshotFormatError(`${what} runs past the end`);
  const bytes = new Uint8Array(length);
  const file = await open(staged.path, 'r');
  try {
    const { bytesRead } = await file.read(bytes, 0, length, staged.offset + at);
    if (bytesRead !== length) throw new PartitionSnapshotFormatError(`${staged.path} ends before ${what} does`);
    return bytes;
  } finally {
    await file.close();
  }
}

/** The snapshot's header, and where its pairs lie. */
async function readHeader(staged: StagedPartitionSnapshot): Promise<{ header: PartitionSnapshotHeader; pairs: StagedPartitionSnapshot }> {
  const length = decodeU32(await readStaged(staged, 0, 4, 'the header length'));
  const header = decodeSnapshotHeader(await readStaged(staged, 4, length, 'the header'));
  return { header, pairs: { path: staged.path, offset: staged.offset + 4 + length, size: staged.size - 4 - length } };
}

/**
 * The pairs (`u32 key length | key | u32 value length | value`, repeated) of the staged range, as the
 * chunks read from it are parsed: each yield the pairs one chunk completed (views of the chunks).
 */
async function* stagedPairs(staged: StagedPartitionSnapshot): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
  let buffer: Buffer = Buffer.alloc(0);
  for await (const chunk of fileChunks(staged)) {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    const pairs: Array<[Uint8Array, Uint8Array]> = [];
    let at = 0;
    while (buffer.length - at >= 4) {
      const keyLength = buffer.readUInt32BE(at);
      if (buffer.length - at < 8 + keyLength) break;
      const valueLength = buffer.readUInt32BE(at + 4 + keyLength);
      const end = at + 8 + keyLength + valueLength;
      if (end > buffer.length) break;
      pairs.push([buffer.subarray(at + 4, at + 4 + keyLength), buffer.subarray(at + 8 + keyLength, end)]);
      at = end;
    }
    buffer = buffer.subarray(at);
    if (pairs.length > 0) yield pairs;
  }
  if (buffer.length > 0) throw new PartitionSnapshotFormatError(`a pair runs past the end (${buffer.length} bytes left)`);
}

/**
 * Reads the staged snapshot's framing whole (a pass over the file that keeps nothing), so that a
 * restore never starts on a file it cannot finish: its header says the group and applied index.
 */
export async function checkPartitionSnapshot(staged: StagedPartitionSnapshot): Promise<CheckedPartitionSnapshot> {
  const { header, pairs } = await readHeader(staged);
  for await (const _pairs of stagedPairs(pairs));
  return { ...staged, ...header };
}

/** Mutations of one restore batch being gathered, with the statistics they move and the intents they put. */
class RestoreBatch {
  readonly #target: RestoreTarget;
  readonly #batchBytes: number;
  #mutations: Mutation[] = [];
  #intents: Array<{ itemKey: Uint8Array; intent: StoredIntent }> = [];
  #deltas = new Map<number, StatisticsDelta>();
  #bytes = 0;

  constructor(target: RestoreTarget, batchBytes: number) {
    this.#target = target;
    this.#batchBytes = batchBytes;
  }

  get full(): boolean {
    return this.#bytes >= this.#batchBytes;
  }

  /** Deletes (`value` the entry's current one) or puts a pair. */
  add(key: Uint8Array, value: Uint8Array, put: boolean): void {
    this.#bytes += key.length + value.length;
    if (isIntent(key)) {
      // Intents go through the store's intent index (releaseIntents took the old ones).
      if (put) this.#intents.push(intentItemKey(value));
      return;
    }
    this.#mutations.push({ key, value: put ? value : undefined });
    const space = spaceOf(key);
    if (space === 0) return;
    const delta = this.#deltas.get(space) ?? { itemCount: 0, sizeBytes: 0 };
    const sign = put ? 1 : -1;
    delta.itemCount += sign;
    delta.sizeBytes += sign * itemSize(decodeJson<Item>(value));
    this.#deltas.set(space, delta);
  }

  async flush(): Promise<void> {
    if (this.#bytes === 0) return;
    const mutations = this.#mutations;
    const intents = this.#intents;
    const deltas = this.#deltas;
    this.#mutations = [];
    this.#intents = [];
    this.#deltas = new Map();
    this.#bytes = 0;
    await this.#target.batch((books) => {
      const adjusted = [...deltas].filter(([, d]) => d.itemCount !== 0 || d.sizeBytes !== 0).map(([space, d]) => books.adjustStatistics(space, d));
      return [...mutations, ...books.putIntents(intents), ...adjusted];
    });
  }
}

/**
 * Runs a restore from its first step (see the file comment): a new one, or one a marker names. Resolves
 * with the applied mark it set. The caller checked the snapshot (checkPartitionSnapshot) and that its
 * group is the scopes'.
 */
export async function runPartitionRestore(target: RestoreTarget, restore: PartitionRestore, batchBytes = RESTORE_BATCH_BYTES): Promise<number> {
  const { scopes, snapshot, snapshotIndex } = restore;
  const groupId = snapshot.groupId;
  const marker: RestoreMarkerJson = {
    snapshotIndex,
    scopes: scopes.map(({ table, bound }) => ({ table, bound: { start: hex(bound.start), end: hex(bound.end) } })),
    snapshot,
  };
  await target.batch((books) => {
    for (const scope of scopes) books.stopBackfills(scope);
    return [{ key: restoreMarkerKey(groupId), value: encodeJson(marker) }, ...scopes.flatMap((scope) => books.releaseIntents(scope.bound))];
  });

  const batch = new RestoreBatch(target, batchBytes);
  const before = target.level.snapshot();
  try {
    for await (const [key, value] of partitionEntries(target.level, scopes, target.scopeOptions, before)) {
      batch.add(key, value, false);
      if (batch.full) await batch.flush();
    }
    await batch.flush();
  } finally {
    await before.close();
  }

  const { pairs } = await readHeader(snapshot);
  for await (const chunk of stagedPairs(pairs)) {
    for (const [key, value] of chunk) {
      batch.add(key, value, true);
      if (batch.full) await batch.flush();
    }
  }
  await batch.flush();

  const applied = Math.max(snapshot.appliedIndex, snapshotIndex);
  const mark = new Uint8Array(8);
  new DataView(mark.buffer).setFloat64(0, applied, false);
  await target.batch(() => [{ key: appliedIndexKey(groupId), value: mark }, { key: restoreMarkerKey(groupId), value: undefined }]);
  return applied;
}
