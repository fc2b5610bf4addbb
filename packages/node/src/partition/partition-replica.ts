/**
 * The replicated partition state machine: one Raft group's replica of a partition, applying
 * partition commands to this node's PartitionStore, which holds every replica of the node: so index
 * commands apply within the partition's bound (its key range in the node's map view).
 *
 * A command is the JSON of a small envelope (PartitionCommand): a write (PartitionWrite), or the
 * backfill or drop of an index. The model's partition contract is plain data made to enter a Raft
 * log unchanged (AttributeValues are JSON-native: numbers travel as strings, binaries as base64),
 * the store already keeps items as JSON, and every replica decodes the same bytes to the same
 * request. Conditions are evaluated by the store at apply time, so every replica decides alike.
 *
 * A write's applied index is written in the same batch as its changes (even when a condition fails
 * and nothing else changes), so a replica restarted from disk skips exactly the entries its data
 * already holds. Those batches are not synced: the Raft log, which is, replays what was lost.
 *
 * An index command is applied by recording it as running (with its applied index) and starting it:
 * a backfill of a large partition runs for seconds, and the host, which applies every group's
 * entries in one loop, must not wait for it. The group's next writes are maintained meanwhile (the
 * store's backfill gate), its next index commands run in turn, and a replica restarted before one
 * finished runs it again from the start when it opens. Only GSIs are ever backfilled (an LSI comes
 * with its table), and a GSI answers eventually consistent reads only: a replica still building its
 * entries answers as one that has not applied the command yet would. On storage nodes (a store with
 * index outboxes: asynchronous GSIs) a GSI backfill writes outbox records instead, as a series of
 * `backfillChunk` entries of one bounded chunk each, which the group's leader proposes one after
 * another (BackfillDriver), so every replica numbers them alike and no apply holds the node's other
 * groups for long; a split hands the right half the rest of its range (@shoal/storage).
 *
 * Asynchronous GSIs: a base partition's writes put their GSI changes in its outbox (the store), which
 * the node's index shipper ships; `trimIndexOutbox` drops what every GSI partition acknowledged; a GSI
 * partition applies shipped records with `applyIndexEntries` (refused whole when a key lies beyond a
 * split applied before the entry, decided from the splits as writes are); a split copies a GSI
 * partition's cursors before the halves exist, and records the move of a base partition's right-half
 * outbox records, which `moveIndexOutbox` entries of the group (proposed by its leader's shipper) carry
 * out one bounded step at a time, so no apply holds the node's other groups for long; the group's next
 * split is refused until its move ended (decided from its own state, so alike on every replica).
 *
 * A split (`shoal admin split`) is a command of the partition's own log, so every replica splits at
 * the same entry: the replica keeps [start, splitKey), the host creates the right half's group on
 * this node (`onSplit`, same members, its data already in the shared store: nothing is copied), and
 * every write entry after the split whose key lies at or beyond the split key is refused at apply
 * time (a KeyOutOfRange outcome for its proposer). Which entries a split cuts off is decided by the
 * splits this group applied (`splitsOf`, kept with the replica's descriptor), never by the node's
 * map view, so a replica replaying its log after a restart decides each entry as it did the first time.
 *
 * Snapshots (partition-snapshot.ts; the store's part in @shoal/storage): the partition's state is the
 * store's, so the snapshot Raft records is a descriptor, taken once the store's writes are synced
 * (the host then compacts the log: the store, not the log, holds what it applied). When the leader
 * sends one, the host opens the payload at once (openSnapshotPayload: a LevelDB snapshot of the
 * store, with the replica's range and applied splits read at the same moment, between two applies of
 * the group) and streams it after the descriptor. A receiver's transport stages it in a file and the
 * replica installs it from there (installSnapshot): the range and splits recorded first, then the
 * replica's old and new ranges replaced in bounded store batches behind a restore marker, the last
 * setting the applied mark to the payload's (at least the snapshot's index); a crash part way is
 * completed from the staged file when the store opens again. Reads are refused meanwhile (restoring()).
 * Entries up to that mark are then not applied again, splits among them included: the right half of
 * such a split is created from the map like any new replica, and caught up by its own snapshot.
 */
import {
  compareBytes,
  DynamoDbError,
  encodeItemKey,
  getOwn,
  spaceRange,
  validationError,
  type Item,
  type PartitionDescriptor,
  type PartitionWrite,
  type PartitionWriteResult,
  type TableSchema,
  type WriteOperation,
} from '@shoal/model';
import {
  checkPartitionSnapshot,
  type AppliedIndexEntries,
  type BackfillChunkLimits,
  type BackfillChunkResult,
  type IndexCommand,
  type OutboxMoveStep,
  type PartitionBound,
  type PartitionScope,
  type PartitionStore,
  type ShippedIndexRecord,
  type SourceFence,
} from '@shoal/storage';
import type { MultiRaftHost, ReplicaStateMachine, StagedPayload } from '../host/index.ts';
import { withPrefix, type SnapshotData } from '../transport/raft-transport.ts';
import { encodePartitionPayloadHeader, readPartitionPayloadHeader, isPartitionSnapshotDescriptor, PARTITION_SNAPSHOT_DESCRIPTOR } from './partition-snapshot.ts';
import { applyTransactionCommand, decodeTransactionCommand, isTransactionCommand, type TransactionCommand, type TransactionCommandResult } from './transaction-commands.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A snapshot this replica cannot take or take in. */
export class PartitionSnapshotError extends Error {
  constructor(groupId: number, what: string) {
    super(`Partition replica of group ${groupId}: ${what}`);
    this.name = 'PartitionSnapshotError';
  }
}

/** The replicated state a snapshot brings besides the store's: the replica's range and applied splits. */
export interface RestoredPartition {
  bound: PartitionBound;
  splits: AppliedSplit[];
  table: TableSchema;
}

/** An entry of the partition log that is not a partition command: a corrupt log, never a client's input. */
export class PartitionCommandError extends Error {
  constructor(groupId: number, index: number, reason: string) {
    super(`Partition replica of group ${groupId}: entry ${index} is not a partition command (${reason})`);
    this.name = 'PartitionCommandError';
  }
}

/**
 * Splits the partition at `splitKey` (hex in the log): the right half [splitKey, parentEnd) becomes
 * group `rightId`, both halves at `epoch` (the parent's + 1 where it was proposed). `parentEnd` is the
 * end the proposer saw: a split whose parent already split since is refused, on every replica alike.
 */
export interface SplitCommand {
  kind: 'split';
  splitKey: string;
  parentEnd: string;
  rightId: number;
  epoch: number;
}

/**
 * Asynchronous GSIs (@shoal/storage index-outbox.ts): a GSI partition applies records a source
 * partition shipped (those above its cursor for the source), entry keys in hex.
 */
export interface ApplyIndexEntriesCommand {
  kind: 'applyIndexEntries';
  sourceGroupId: number;
  records: Array<{ seq: number; indexId: number; entryKey: string; itemKey: string; entry?: Item }>;
  /** The source's ancestors it split from (keys in hex): their records of its items are stale. */
  fences?: Array<{ sourceGroupId: number; fromKey: string }>;
}

/** A base partition forgets its outbox records up to `throughSeq`: every GSI partition they went to applied them. */
export interface TrimIndexOutboxCommand {
  kind: 'trimIndexOutbox';
  throughSeq: number;
}

/**
 * One chunk of a running GSI backfill of the group (@shoal/storage applyBackfillChunk), proposed by
 * its leader one after another: the items from `fromKey` (hex), the backfill's next key when proposed.
 * `proposer`: that leader's node, which counts the chunk when it applies there (its proposal may have
 * timed out or lost its leadership, and committed all the same); absent in older logs.
 */
export interface BackfillChunkCommand {
  kind: 'backfillChunk';
  indexId: number;
  fromKey: string;
  proposer?: number;
}

/** A backfill chunk entry as a replica applied it (PartitionReplicaOptions.onBackfillChunk). */
export interface AppliedBackfillChunk {
  proposer: number | undefined;
  result: BackfillChunkResult;
}

/**
 * One step of the group's outbox move to its split half (@shoal/storage applyIndexOutboxMove),
 * proposed by its leader one after another: the records numbered `fromSeq` (the move's next seq when
 * proposed) to `toSeq` (at most 1,000 records / 1 MiB in the leader's store).
 */
export interface MoveIndexOutboxCommand {
  kind: 'moveIndexOutbox';
  fromSeq: number;
  toSeq: number;
}

/** A trim's outcome: the records it deleted here. */
export interface OutboxTrimmed {
  trimmed: number;
}

/** What a partition's Raft log holds (contracts #9). Deleting a table needs no command: its replicas go. */
export type PartitionCommand =
  | { kind: 'write'; write: PartitionWrite }
  | WritesCommand
  | IndexCommand
  | SplitCommand
  | TransactionCommand
  | ApplyIndexEntriesCommand
  | TrimIndexOutboxCommand
  | BackfillChunkCommand
  | MoveIndexOutboxCommand;

/**
 * Independent writes of one operation each, coalesced by a router into one entry (WriteMany): applied
 * in order, each with its own condition and outcome, all in one store batch with the entry's mark.
 */
export interface WritesCommand {
  kind: 'writes';
  writes: PartitionWrite[];
}

/** A split this group applied: entries after `index` own no key at or beyond `splitKey`. */
export interface AppliedSplit {
  index: number;
  splitKey: Uint8Array;
}

/** A split as the host carries it out on this node (PartitionReplicaOptions.onSplit). */
export interface PartitionSplit {
  /** The entry of the parent's log that splits it. */
  index: number;
  splitKey: Uint8Array;
  parentEnd: Uint8Array;
  rightId: number;
  epoch: number;
}

/** What applying a partition command answers its proposer. */
export type PartitionCommandResult =
  | PartitionWriteResult
  | WriteOutOfRange
  | WritesResult
  | IndexCommandResult
  | SplitResult
  | TransactionCommandResult
  | AppliedIndexEntries
  | OutboxTrimmed
  | BackfillChunkResult
  | OutboxMoveStep;

/** A write entry applied after a split cut its key off: nothing changed, the proposer is redirected. */
export interface WriteOutOfRange {
  status: 'keyOutOfRange';
}

/** A WritesCommand's outcome: one per write, in order. */
export type WritesResult = Array<PartitionWriteResult | WriteOutOfRange>;

/** A split's outcome where it was applied: the two halves, or refused (the parent split since), on every replica alike. */
export type SplitResult = { status: 'split'; left: PartitionDescriptor; right: PartitionDescriptor } | { status: 'refused'; message: string };

/** The write's key lies outside the partition by the time its entry applied: the router follows the new map. */
export class WriteOutOfRangeError extends Error {
  readonly groupId: number;

  constructor(groupId: number) {
    super(`partition ${groupId} split before the write applied: its key now lies outside the partition`);
    this.name = 'WriteOutOfRangeError';
    this.groupId = groupId;
  }
}

/**
 * An index command's outcome where it was applied: started (`done` once it ran here), or `invalid`
 * (an index its table does not have), which changed nothing, on every replica alike.
 */
export type IndexCommandResult = { status: 'started'; done: Promise<void> } | { status: 'invalid'; message: string };

/**
 * The largest partition command proposed: an entry travels whole to the followers in one transport
 * message (MAX_MESSAGE_BYTES, 16 MiB). DynamoDB's own limits keep commands far below it (a
 * transaction's items: 4 MB, about 5.5 MB of JSON with binary values; coalesced writes: 1 MiB calls).
 */
export const MAX_PARTITION_COMMAND_BYTES = 8 * 1024 * 1024;

/** The command as its log entry; one too large to replicate is refused before anything is proposed. */
export function encodePartitionCommand(command: PartitionCommand): Uint8Array {
  const entry = encoder.encode(JSON.stringify(command));
  if (entry.length > MAX_PARTITION_COMMAND_BYTES) {
    throw validationError(`The request is too large to replicate: its log entry would be ${entry.length} bytes, more than ${MAX_PARTITION_COMMAND_BYTES}`);
  }
  return entry;
}

export interface PartitionReplicaOptions {
  /**
   * The partition's key range in the node's current map view, read at each index command; undefined
   * (or no function): the whole table, for a store holding no other partition of it.
   */
  boundOf?(): PartitionBound | undefined;
  /** The splits this group applied, oldest first (none: it never split). */
  splitsOf?(): readonly AppliedSplit[];
  /**
   * Carries out a split on this node once (again after a restart that lost its applied mark): the
   * halves' descriptors recorded and the right half's group created, before the entry counts as
   * applied. Without it a split is refused.
   */
  onSplit?(split: PartitionSplit): Promise<SplitResult>;
  /** The partition's table schema (undefined: unknown here, and no snapshot can be sent). */
  tableOf?(): TableSchema | undefined;
  /** Records the range and splits of a snapshot being installed, before the store takes its data. */
  onRestore?(restored: RestoredPartition): Promise<void>;
  /**
   * Once what the replica applied is in the store (settled): its outbox may hold new records to ship.
   * Not called when every entry applied since the last settle was a plain write to tables without a
   * GSI (no outbox record, no backfill started): the index shipper's read of the outbox would find
   * nothing new.
   */
  onSettled?(): void;
  /** How much one chunk of a GSI backfill walks (default: the store's, 1,000 items or 1 MiB). */
  backfillChunk?: BackfillChunkLimits;
  /** Told of every backfill chunk entry applied, stale ones too (the backfill driver counts its own). */
  onBackfillChunk?(chunk: AppliedBackfillChunk): void;
}

export class PartitionReplica implements ReplicaStateMachine {
  readonly groupId: number;
  /** The node's store; reads of this replica's applied state go to it. */
  readonly store: PartitionStore;
  readonly #boundOf: () => PartitionBound | undefined;
  readonly #splitsOf: () => readonly AppliedSplit[];
  readonly #onSplit: ((split: PartitionSplit) => Promise<SplitResult>) | undefined;
  readonly #tableOf: () => TableSchema | undefined;
  readonly #onRestore: ((restored: RestoredPartition) => Promise<void>) | undefined;
  readonly #onSettled: (() => void) | undefined;
  readonly #backfillChunk: BackfillChunkLimits | undefined;
  readonly #onBackfillChunk: ((chunk: AppliedBackfillChunk) => void) | undefined;
  /** Index commands started here and still running. */
  readonly #running = new Set<Promise<void>>();
  /** Writes applied, not yet known to be in the store (settled()). */
  readonly #unsettled: Array<Promise<void>> = [];
  /** Whether an entry applied since the last settle may interest onSettled (anything but a write to tables without a GSI). */
  #settleNews = false;
  #applied: number;
  #restoring = false;
  /** The last index whose effects reads of the store see (applied and settled). */
  #visible: number;
  /** Eventual reads waiting for `#visible` to reach their index (read-your-writes). */
  readonly #visibleWaiters = new Set<{ index: number; resolve(reached: boolean): void }>();

  private constructor(groupId: number, store: PartitionStore, applied: number, options: PartitionReplicaOptions) {
    this.groupId = groupId;
    this.store = store;
    this.#applied = applied;
    this.#visible = applied;
    this.#boundOf = options.boundOf ?? (() => undefined);
    this.#splitsOf = options.splitsOf ?? (() => []);
    this.#onSplit = options.onSplit;
    this.#tableOf = options.tableOf ?? (() => undefined);
    this.#onRestore = options.onRestore;
    this.#onSettled = options.onSettled;
    this.#backfillChunk = options.backfillChunk;
    this.#onBackfillChunk = options.onBackfillChunk;
  }

  /** The replica of `groupId` over `store`, resuming at the applied index recorded there. */
  static async open(groupId: number, store: PartitionStore, options: PartitionReplicaOptions = {}): Promise<PartitionReplica> {
    const replica = new PartitionReplica(groupId, store, await store.appliedIndex(groupId), options);
    for (const done of await store.resumeIndexCommands(groupId)) replica.#track(done);
    return replica;
  }

  /** The partition's bound now (undefined: unbounded). */
  bound(): PartitionBound | undefined {
    return this.#boundOf();
  }

  async apply(data: Uint8Array, index: number): Promise<PartitionCommandResult> {
    const command = decodePartitionCommand(this.groupId, index, data);
    const mark = { groupId: this.groupId, index };
    if (!this.#settleNews) this.#settleNews = !isWriteWithoutGsi(command);
    let result: PartitionCommandResult;
    if (command.kind === 'write') result = await this.#applyWrite(command.write, mark);
    else if (command.kind === 'applyIndexEntries') result = await this.#applyIndexEntries(command, mark);
    else if (command.kind === 'trimIndexOutbox') result = { trimmed: await this.store.trimIndexOutbox(this.groupId, command.throughSeq, mark) };
    else if (command.kind === 'backfillChunk') result = await this.#applyBackfillChunk(command, mark);
    else if (command.kind === 'moveIndexOutbox') result = await this.store.applyIndexOutboxMove(this.groupId, command.fromSeq, command.toSeq, mark);
    else if (command.kind === 'writes') result = await this.#applyWrites(command.writes, mark);
    else if (command.kind === 'split') result = await this.#applySplit(command, mark);
    else if (command.kind === 'prepareTransaction' && this.#cutOff(command.write, index)) result = await this.#refuseOutOfRange(mark);
    else if (command.kind === 'resolveTransaction') result = await applyTransactionCommand(this.store, this.#clampResolve(command, index), mark);
    else if (isTransactionCommand(command)) result = await applyTransactionCommand(this.store, command, mark);
    else result = await this.#applyIndexCommand(command, mark);
    this.#applied = index;
    return result;
  }

  async #applyBackfillChunk(command: BackfillChunkCommand, mark: { groupId: number; index: number }): Promise<BackfillChunkResult> {
    const result = await this.store.applyBackfillChunk(this.groupId, command.indexId, fromHex(command.fromKey), mark, this.#backfillChunk);
    this.#onBackfillChunk?.({ proposer: command.proposer, result });
    return result;
  }

  async #applyWrite(write: PartitionWrite, mark: { groupId: number; index: number }): Promise<PartitionWriteResult | WriteOutOfRange> {
    if (this.#cutOff(write, mark.index)) return this.#refuseOutOfRange(mark);
    const { result, durable } = await this.store.stageWrite(write, mark);
    this.#unsettled.push(durable);
    return result;
  }

  /** Each write's result in order; a write a split cut off is refused alone (the others apply). */
  async #applyWrites(writes: readonly PartitionWrite[], mark: { groupId: number; index: number }): Promise<WritesResult> {
    const cutOff = writes.map((write) => this.#cutOff(write, mark.index));
    const { result, durable } = await this.store.stageWrites(writes.filter((_, position) => !cutOff[position]), mark);
    this.#unsettled.push(durable);
    let next = 0;
    return cutOff.map((cut): PartitionWriteResult | WriteOutOfRange => (cut ? { status: 'keyOutOfRange' } : (result[next++] as PartitionWriteResult)));
  }

  /**
   * Resolves once every write applied so far is in the store, where reads see it (rejects when its
   * batch failed). A write's `apply` resolves as soon as it is decided, so that a round's writes share
   * one batch of the store: the host calls this before it answers anything the round applied.
   */
  async settled(): Promise<void> {
    const through = this.#applied;
    const news = this.#settleNews;
    this.#settleNews = false;
    await Promise.all(this.#unsettled.splice(0));
    this.#reveal(through);
    if (news) this.#onSettled?.();
  }

  /**
   * Shipped GSI records: every key must lie before the end the group's splits gave it at this entry
   * (decided from the splits alone, as writes are, so a replay decides alike), else nothing applies.
   */
  async #applyIndexEntries(command: ApplyIndexEntriesCommand, mark: { groupId: number; index: number }): Promise<AppliedIndexEntries> {
    const end = this.#endAt(mark.index) ?? new Uint8Array(0);
    const records = command.records.map((record): ShippedIndexRecord => ({ ...record, entryKey: fromHex(record.entryKey), itemKey: fromHex(record.itemKey) }));
    const fences = (command.fences ?? []).map((fence): SourceFence => ({ sourceGroupId: fence.sourceGroupId, fromKey: fromHex(fence.fromKey) }));
    return this.store.applyIndexEntries(this.groupId, { start: new Uint8Array(0), end }, command.sourceGroupId, records, mark, fences);
  }

  /** The last index of the partition's log whose effects reads of this replica see. */
  visibleIndex(): number {
    return this.#visible;
  }

  /**
   * Resolves true once reads of this replica see everything up to `index` (at once when they do),
   * false when `timeoutMs` passes or `signal` aborts first. Woken by the apply progress, no polling.
   */
  awaitVisible(index: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#visible >= index) return Promise.resolve(true);
    if (signal?.aborted === true || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        index,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', giveUp);
          this.#visibleWaiters.delete(waiter);
          resolve(reached);
        },
      };
      const giveUp = (): void => waiter.resolve(false);
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.#visibleWaiters.add(waiter);
    });
  }

  #reveal(index: number): void {
    if (index <= this.#visible) return;
    this.#visible = index;
    for (const waiter of this.#visibleWaiters) if (waiter.index <= index) waiter.resolve(true);
  }

  /** Whether a split applied before entry `index` cut off a key the write (or transaction prepare) touches. */
  #cutOff(write: PartitionWrite, index: number): boolean {
    const limit = this.#endAt(index);
    return limit !== undefined && write.operations.some((operation) => beyond(operation, limit));
  }

  async #refuseOutOfRange(mark: { groupId: number; index: number }): Promise<WriteOutOfRange> {
    await this.store.markApplied(mark);
    return { status: 'keyOutOfRange' };
  }

  /**
   * A resolve names the range its proposer saw; a split applied before the entry narrows it to where
   * the group then ended (its intents beyond are the right half's to resolve: resolved here, their
   * GSI records would enter this group's outbox, as replicas that applied the split at another point
   * of the proposer's view would not agree on).
   */
  #clampResolve(command: Extract<TransactionCommand, { kind: 'resolveTransaction' }>, index: number): TransactionCommand {
    const end = this.#endAt(index);
    if (end === undefined) return command;
    const proposed = fromHex(command.bound.end);
    if (proposed.length > 0 && compareBytes(proposed, end) <= 0) return command;
    return { ...command, bound: { ...command.bound, end: toHex(end) } };
  }

  /** The lowest split key of the splits applied before entry `index`: where the partition then ended. */
  #endAt(index: number): Uint8Array | undefined {
    let end: Uint8Array | undefined;
    for (const split of this.#splitsOf()) {
      if (split.index < index && (end === undefined || compareBytes(split.splitKey, end) < 0)) end = split.splitKey;
    }
    return end;
  }

  async #applySplit(command: SplitCommand, mark: { groupId: number; index: number }): Promise<SplitResult> {
    const split: PartitionSplit = {
      index: mark.index,
      splitKey: fromHex(command.splitKey),
      parentEnd: fromHex(command.parentEnd),
      rightId: command.rightId,
      epoch: command.epoch,
    };
    const end = this.#endAt(mark.index + 1);
    // Applied again after a restart: the recorded split stands (the host redoes what may be missing).
    const again = this.#splitsOf().some((s) => s.index === mark.index);
    // A move to another half: an earlier split's. A move to this split's own right half: this split
    // applied again after a crash between recording its move and recording the split (go on).
    const pendingMove = again ? undefined : await this.store.indexOutboxMove(this.groupId);
    let result: SplitResult;
    if (!again && end !== undefined && compareBytes(end, split.parentEnd) !== 0) {
      result = { status: 'refused', message: `partition ${this.groupId} split since the split at ${command.splitKey} was proposed` };
    } else if (pendingMove !== undefined && pendingMove.rightGroupId !== split.rightId) {
      result = { status: 'refused', message: `partition ${this.groupId} is still moving GSI outbox records to the half of its last split; retry once they are moved` };
    } else if (this.#onSplit === undefined) {
      result = { status: 'refused', message: `partition ${this.groupId} cannot split on this node` };
    } else {
      // Before the halves exist: the move of the right half's outbox records is recorded (a base
      // partition; moveIndexOutbox entries carry it out), cursors copied (a GSI partition). Both are
      // idempotent, so a replay after a crash redoes what is missing.
      await this.store.splitIndexOutbox(this.groupId, split.rightId, split.splitKey);
      await this.store.copyIndexCursors(this.groupId, split.rightId);
      result = await this.#onSplit(split);
    }
    await this.store.markApplied(mark);
    return result;
  }

  async #applyIndexCommand(command: IndexCommand, mark: { groupId: number; index: number }): Promise<IndexCommandResult> {
    try {
      const { done } = await this.store.startIndexCommand(command, this.#boundOf(), mark);
      this.#track(done);
      return { status: 'started', done };
    } catch (error) {
      // Decided by the command alone (the index is not in its table): the same no-op on every replica.
      if (!(error instanceof DynamoDbError && error.type === 'ValidationException')) throw error;
      await this.store.markApplied(mark);
      return { status: 'invalid', message: error.message };
    }
  }

  /** Resolves once every index command started here so far has run (or failed). */
  async indexCommandsRun(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  /**
   * Keeps a run until it ends. Nobody else may wait for it (on a follower, or resumed at open): a
   * failed run is a failed store write, which stops the store's commit queue, and every later write
   * of the node reports that.
   */
  #track(run: Promise<void>): void {
    this.#running.add(run);
    run.then(
      () => this.#running.delete(run),
      () => this.#running.delete(run),
    );
  }

  /** The descriptor Raft records, once what the replica applied is durable in the store (the log before it may go). */
  async snapshot(): Promise<Uint8Array> {
    if (this.#applied > 0) await this.store.syncToDisk();
    return PARTITION_SNAPSHOT_DESCRIPTOR;
  }

  /**
   * The snapshot the log store holds stands for the store's state, which holds at least it: a
   * snapshot taken here was synced first, one received was installed before it was recorded. The
   * entries between the store's applied mark and the snapshot's index change no data (membership
   * changes, a new leader's empty entry): nothing to do.
   */
  restore(data: Uint8Array): void {
    if (!isPartitionSnapshotDescriptor(data)) throw new PartitionSnapshotError(this.groupId, 'the snapshot in the Raft log is not a partition snapshot');
  }

  /** The replica as it is now: its group, table and range (the whole table without a bound). */
  #scope(table: TableSchema | undefined = this.#tableOf()): PartitionScope | undefined {
    if (table === undefined) return undefined;
    const space = spaceRange(table.tableId);
    return { groupId: this.groupId, table, bound: this.#boundOf() ?? { start: space.start, end: space.end } };
  }

  openSnapshotPayload(): () => Promise<SnapshotData> {
    const scope = this.#scope();
    if (scope === undefined) throw new PartitionSnapshotError(this.groupId, 'its table schema is not known here: no snapshot can be sent yet');
    const header = encodePartitionPayloadHeader({ bound: scope.bound, splits: [...this.#splitsOf()], table: scope.table });
    const read = this.store.openPartitionSnapshot(scope);
    return async () => withPrefix(header, await read());
  }

  /**
   * Installs a payload the host staged in a file: its framing read whole first (nothing changes when it
   * is not a snapshot of this group), the range and splits recorded, then the store restored from the
   * file in bounded batches (completed when the store opens again if a crash cuts it short).
   */
  async installSnapshot(snapshot: { index: number; data: Uint8Array; payload: StagedPayload }): Promise<void> {
    const { header, store } = await readPartitionPayloadHeader(snapshot.payload);
    const checked = await checkPartitionSnapshot(store);
    if (checked.groupId !== this.groupId) throw new PartitionSnapshotError(this.groupId, `received a snapshot of group ${checked.groupId}`);
    // What goes: the range held here before (it may reach past splits this replica missed) and the snapshot's.
    const before = this.#scope(this.#tableOf() ?? header.table);
    const after: PartitionScope = { groupId: this.groupId, table: header.table, bound: header.bound };
    // Set until the restore completes: one that fails leaves the store partly restored (its marker
    // redoes it at the next open), and this replica must not serve reads from it meanwhile.
    this.#restoring = true;
    await this.#onRestore?.(header);
    const applied = await this.store.restorePartitionSnapshot(before === undefined ? [after] : [before, after], checked, snapshot.index);
    this.#applied = applied;
    // The state now is the snapshot's, which may be older than what was visible (a store that was ahead
    // of its log, sent an older leader's snapshot): reads asking for more wait for the log again.
    this.#visible = Math.min(this.#visible, applied);
    this.#reveal(applied);
    this.#restoring = false;
    for (const done of await this.store.resumeIndexCommands(this.groupId)) this.#track(done);
  }

  /**
   * Whether a snapshot is being restored: the store holds part of it only (its batches are bounded),
   * so no read of the replica may be served meanwhile.
   */
  restoring(): boolean {
    return this.#restoring;
  }

  appliedIndex(): number {
    return this.#applied;
  }
}

/**
 * A write (or coalesced writes) whose every operation's table has no GSI: it puts no record in the
 * group's outbox. Anything it cannot tell (a shape the store will refuse) counts as not.
 */
function isWriteWithoutGsi(command: PartitionCommand): boolean {
  const writes = command.kind === 'write' ? [command.write] : command.kind === 'writes' ? command.writes : undefined;
  return (
    writes !== undefined &&
    writes.every((write) =>
      write.operations.every((operation) => {
        const indexes: unknown = operation.table?.indexes;
        return Array.isArray(indexes) && indexes.every((index) => isObject(index) && index.kind === 'LSI');
      }),
    )
  );
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The command an entry holds; its shape is checked as far as a replica relies on it, the rest is the store's to refuse. */
export function decodePartitionCommand(groupId: number, index: number, data: Uint8Array): PartitionCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new PartitionCommandError(groupId, index, (error as Error).message);
  }
  if (!isObject(parsed)) throw new PartitionCommandError(groupId, index, 'not an object');
  switch (parsed.kind) {
    case 'write':
      if (!isObject(parsed.write) || !Array.isArray(parsed.write.operations)) throw new PartitionCommandError(groupId, index, 'a write without operations');
      return parsed as PartitionCommand;
    case 'writes':
      if (!Array.isArray(parsed.writes) || !parsed.writes.every((write) => isObject(write) && Array.isArray(write.operations) && write.operations.length === 1)) {
        throw new PartitionCommandError(groupId, index, 'writes that are not each of one operation');
      }
      return parsed as unknown as WritesCommand;
    case 'split':
      if (typeof parsed.splitKey !== 'string' || typeof parsed.parentEnd !== 'string' || !Number.isSafeInteger(parsed.rightId) || !Number.isSafeInteger(parsed.epoch)) {
        throw new PartitionCommandError(groupId, index, 'a split without its key, end, right partition and epoch');
      }
      return parsed as unknown as SplitCommand;
    case 'applyIndexEntries': {
      const records = parsed.records;
      const wellFormed = (record: unknown): boolean =>
        isObject(record) &&
        Number.isSafeInteger(record.seq) &&
        Number.isSafeInteger(record.indexId) &&
        typeof record.entryKey === 'string' &&
        typeof record.itemKey === 'string' &&
        (record.entry === undefined || isObject(record.entry));
      const fence = (value: unknown): boolean => isObject(value) && Number.isSafeInteger(value.sourceGroupId) && typeof value.fromKey === 'string';
      const fences = parsed.fences;
      if (!Number.isSafeInteger(parsed.sourceGroupId) || !Array.isArray(records) || !records.every(wellFormed) || (fences !== undefined && (!Array.isArray(fences) || !fences.every(fence)))) {
        throw new PartitionCommandError(groupId, index, 'index entries without their source or records');
      }
      return parsed as unknown as ApplyIndexEntriesCommand;
    }
    case 'backfillChunk':
      if (!Number.isSafeInteger(parsed.indexId) || typeof parsed.fromKey !== 'string') throw new PartitionCommandError(groupId, index, 'a backfill chunk without its index and key');
      // The proposer only feeds a metric: a bad one is not worth stopping the group for.
      if (parsed.proposer !== undefined && !Number.isSafeInteger(parsed.proposer)) delete parsed.proposer;
      return parsed as unknown as BackfillChunkCommand;
    case 'moveIndexOutbox':
      if (!Number.isSafeInteger(parsed.fromSeq) || !Number.isSafeInteger(parsed.toSeq)) throw new PartitionCommandError(groupId, index, 'an outbox move step without its seqs');
      return parsed as unknown as MoveIndexOutboxCommand;
    case 'trimIndexOutbox':
      if (!Number.isSafeInteger(parsed.throughSeq)) throw new PartitionCommandError(groupId, index, 'an outbox trim without its seq');
      return parsed as unknown as TrimIndexOutboxCommand;
    case 'backfillIndex':
    case 'dropIndex': {
      const table = parsed.table;
      if (!isObject(table) || typeof table.tableId !== 'number' || !Array.isArray(table.indexes) || typeof parsed.indexName !== 'string') {
        throw new PartitionCommandError(groupId, index, `a ${parsed.kind} without its table and index name`);
      }
      // Absent in commands of older routers (and logs written before it): the index's creation is then unknown.
      // A map version is at least 1: 0 would make every view "past the creation", ending a live walk.
      if (parsed.indexCreatedAtMapVersion !== undefined && !(Number.isSafeInteger(parsed.indexCreatedAtMapVersion) && (parsed.indexCreatedAtMapVersion as number) >= 1)) {
        throw new PartitionCommandError(groupId, index, `a ${parsed.kind} with a bad index creation version`);
      }
      return parsed as PartitionCommand;
    }
    default: {
      const transaction = decodeTransactionCommand(parsed);
      if (transaction === undefined) throw new PartitionCommandError(groupId, index, `unknown command ${JSON.stringify(parsed.kind)}`);
      if ('invalid' in transaction) throw new PartitionCommandError(groupId, index, transaction.invalid);
      return transaction;
    }
  }
}

/**
 * Proposes a write through `host` (the group's leader here) and resolves with its result once it is
 * applied on this replica: the result its PartitionReplica returned.
 */
export async function proposePartitionWrite(host: MultiRaftHost, groupId: number, write: PartitionWrite): Promise<PartitionWriteResult> {
  const result = (await host.propose(groupId, encodePartitionCommand({ kind: 'write', write }))) as PartitionWriteResult | WriteOutOfRange;
  if ('status' in result) throw new WriteOutOfRangeError(groupId);
  return result;
}

/**
 * Proposes independent writes of one operation each as ONE entry (a router's coalesced WriteMany);
 * resolves once applied here with each write's result in order, or a WriteOutOfRangeError for a
 * write a split cut off before the entry applied (nothing of it applied, the others did).
 */
export async function proposePartitionWrites(host: MultiRaftHost, groupId: number, writes: PartitionWrite[]): Promise<Array<PartitionWriteResult | WriteOutOfRangeError>> {
  const results = (await host.propose(groupId, encodePartitionCommand({ kind: 'writes', writes }))) as WritesResult;
  return results.map((result) => ('status' in result ? new WriteOutOfRangeError(groupId) : result));
}

/**
 * Proposes splitting `parent` (this node leads its group; `parent` is its descriptor here) at
 * `splitKey`, the right half becoming partition `rightId`; resolves with the halves once the split
 * applied here. A split key not strictly inside the partition is DynamoDB's ValidationException; a
 * split refused at apply (the partition split since) a SplitRefusedError.
 */
export async function proposePartitionSplit(host: MultiRaftHost, parent: PartitionDescriptor, splitKey: Uint8Array, rightId: number): Promise<{ left: PartitionDescriptor; right: PartitionDescriptor }> {
  const inside = compareBytes(parent.startKey, splitKey) < 0 && (parent.endKey.length === 0 || compareBytes(splitKey, parent.endKey) < 0);
  if (!inside) throw validationError(`split key ${toHex(splitKey)} is not strictly inside partition ${parent.id}`);
  // The right half gets the group's members: only once they are the descriptor's (no move under way),
  // so that the map's right half lists exactly the nodes that hold its data.
  const conf = host.configuration(parent.id);
  const wanted = (role: 'voter' | 'learner'): string => parent.replicas.filter((r) => r.role === role).map((r) => r.nodeId).sort((a, b) => a - b).join(',');
  const held = (ids: readonly number[]): string => [...ids].sort((a, b) => a - b).join(',');
  if (conf !== undefined && (held(conf.voters) !== wanted('voter') || held(conf.learners) !== wanted('learner'))) {
    throw new SplitRefusedError(parent.id, `partition ${parent.id} is changing members (group ${held(conf.voters)} / ${held(conf.learners)}, descriptor ${wanted('voter')} / ${wanted('learner')}); retry once they converged`);
  }
  const command: SplitCommand = { kind: 'split', splitKey: toHex(splitKey), parentEnd: toHex(parent.endKey), rightId, epoch: parent.epoch + 1 };
  const result = (await host.propose(parent.id, encodePartitionCommand(command))) as SplitResult;
  if (result.status === 'refused') throw new SplitRefusedError(parent.id, result.message);
  return { left: result.left, right: result.right };
}

export class SplitRefusedError extends Error {
  readonly groupId: number;

  constructor(groupId: number, message: string) {
    super(message);
    this.name = 'SplitRefusedError';
    this.groupId = groupId;
  }
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

/** Whether the operation's item key lies at or beyond `end` (a key it cannot encode: the store refuses it). */
function beyond(operation: WriteOperation, end: Uint8Array): boolean {
  const { table, key } = operation;
  const hash = getOwn(key, table.hashKey.name);
  const range = table.rangeKey === undefined ? undefined : getOwn(key, table.rangeKey.name);
  if (hash === undefined || (table.rangeKey !== undefined && range === undefined)) return false;
  try {
    const encoded = range === undefined ? encodeItemKey(table.tableId, hash) : encodeItemKey(table.tableId, hash, range);
    return compareBytes(encoded, end) >= 0;
  } catch (error) {
    if (error instanceof TypeError) return false;
    throw error;
  }
}

/**
 * Proposes an index backfill or drop through `host` (the group's leader here); resolves once this
 * replica has run it over its partition, and fails with DynamoDB's ValidationException when the table
 * has no such index.
 */
export async function proposeIndexCommand(host: MultiRaftHost, groupId: number, command: IndexCommand): Promise<void> {
  await (await proposeIndexCommandApplied(host, groupId, command)).done;
}

/**
 * Proposes an index command through `host` (the group's leader here); resolves once applied here,
 * with its run (`done`): a GSI backfill of a store with outboxes is then recorded (or joined), its
 * walk driven by the group's leader (BackfillDriver).
 */
export async function proposeIndexCommandApplied(host: Pick<MultiRaftHost, 'propose'>, groupId: number, command: IndexCommand): Promise<{ done: Promise<void> }> {
  const result = (await host.propose(groupId, encodePartitionCommand(command))) as IndexCommandResult;
  if (result.status === 'invalid') throw validationError(result.message);
  return { done: result.done };
}


/**
 * Proposes shipped GSI records through `host` (the GSI partition's leader here); resolves once applied
 * here with how many applied and how many were skipped (applied before), or a WriteOutOfRangeError
 * when a split applied first cut off one of their keys (nothing applied).
 */
export async function proposeIndexEntries(
  host: MultiRaftHost,
  groupId: number,
  sourceGroupId: number,
  records: readonly ShippedIndexRecord[],
  fences: readonly SourceFence[] = [],
): Promise<AppliedIndexEntries> {
  const command: ApplyIndexEntriesCommand = {
    kind: 'applyIndexEntries',
    sourceGroupId,
    records: records.map(({ entryKey, itemKey, ...record }) => ({ ...record, entryKey: toHex(entryKey), itemKey: toHex(itemKey) })),
    ...(fences.length === 0 ? {} : { fences: fences.map((fence) => ({ sourceGroupId: fence.sourceGroupId, fromKey: toHex(fence.fromKey) })) }),
  };
  const result = (await host.propose(groupId, encodePartitionCommand(command))) as AppliedIndexEntries;
  if (result.status === 'outOfRange') throw new WriteOutOfRangeError(groupId);
  return result;
}

/**
 * Proposes the next chunk of the group's backfill of `indexId` (this node leads it, and is named its
 * proposer), from `fromKey` (its next key here); resolves with the chunk's outcome once applied here.
 */
export async function proposeBackfillChunk(host: Pick<MultiRaftHost, 'propose' | 'nodeId'>, groupId: number, indexId: number, fromKey: Uint8Array): Promise<BackfillChunkResult> {
  return (await host.propose(groupId, encodePartitionCommand({ kind: 'backfillChunk', indexId, fromKey: toHex(fromKey), proposer: host.nodeId }))) as BackfillChunkResult;
}

/**
 * Proposes the next step of the group's outbox move (this node leads it), the records `fromSeq` (the
 * move's next seq here) to `toSeq`; resolves with the step's outcome once applied here.
 */
export async function proposeIndexOutboxMove(host: Pick<MultiRaftHost, 'propose'>, groupId: number, step: { fromSeq: number; toSeq: number }): Promise<OutboxMoveStep> {
  return (await host.propose(groupId, encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: step.fromSeq, toSeq: step.toSeq }))) as OutboxMoveStep;
}

/** Proposes trimming the group's outbox through `throughSeq` (this node leads it); resolves with how many records went here. */
export async function proposeIndexOutboxTrim(host: Pick<MultiRaftHost, 'propose'>, groupId: number, throughSeq: number): Promise<number> {
  return ((await host.propose(groupId, encodePartitionCommand({ kind: 'trimIndexOutbox', throughSeq }))) as OutboxTrimmed).trimmed;
}
