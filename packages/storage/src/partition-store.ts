import {
  attributeValuesEqual,
  compareBytes,
  compilePartitionExpressions,
  DynamoDbError,
  getOwn,
  itemSize,
  MAX_ITEM_SIZE,
  spaceKeyAttributes,
  spaceRange,
  validationError,
  type CompiledUpdate,
  type FoundItem,
  type GetRequest,
  type IndexSchema,
  type Item,
  type PartitionClient,
  type PartitionWrite,
  type PartitionWriteResult,
  type RangeReadRequest,
  type ReadOptions,
  type RangeReadResult,
  type TableSchema,
  type TableStatistics,
  type WriteOperation,
  type WriteOutcome,
} from '@shoal/model';
import { ChangeSet, StoredItem, type IndexGate } from './change-set.ts';
import {
  decodeF64,
  indexCursorMutation,
  allRunningBackfillsRange,
  decodeRunningBackfill,
  runningBackfillKey,
  runningBackfillMutation,
  runningBackfillsRange,
  type RunningBackfill,
  indexCursorsRange,
  indexOutboxRanges,
  sourceFenceKey,
  sourceFencesRange,
  nextSeqMutation,
  OutboxBacklogs,
  outboxSeqKey,
  OutboxWriter,
  outboxKey,
  outboxRange,
  decodeOutboxRecord,
  decodeOutboxMove,
  decodeOutboxSplit,
  outboxMoveKey,
  outboxMoveMutation,
  outboxMovesRange,
  outboxSplitMutation,
  outboxSplitsRange,
  type IndexOutboxMove,
  readIndexCursor,
  readNextSeq,
  readOutbox,
  readTrimmedThrough,
  stillToMove,
  trimmedThroughMutation,
  type IndexEntryChange,
  type IndexOutboxRecord,
  type OutboxReadLimits,
} from './index-outbox.ts';
import type { CommitQueue, Staged, StateReader } from './commit-queue.ts';
import type { AbstractSnapshot } from 'abstract-level';
import type { ByteLevel, Mutation } from './database.ts';
import {
  appliedIndexKey,
  boundContains,
  boundsOverlap,
  clampRange,
  decodeJson,
  entryInBound,
  entryKey,
  findIndex,
  indexEntriesRange,
  encodeJson,
  mapKey,
  decodeU32,
  runningIndexCommandKey,
  runningIndexCommandsRange,
  type KeyRange,
  type PartitionBound,
} from './layout.ts';
import { readRange } from './range-read.ts';
import { openPartitionSnapshot, PartitionSnapshotFormatError, syncToDisk, type PartitionScope, type PartitionSnapshotStream } from './partition-snapshot.ts';
import { readRestoreMarkers, runPartitionRestore, type CheckedPartitionSnapshot, type RestoreTarget } from './partition-restore.ts';
import { measureRange, StatisticsBook } from './statistics.ts';
import {
  IntentIndex,
  readTransactionRecord,
  transactionRecordKey,
  transactionRecordMutation,
  type IntentAccess,
  type IntentChange,
  type TransactionRecord,
  type TransactionRef,
  type TransactionState,
} from './transactions.ts';

/** Entries per batch of a backfill or a range delete: bounds the time the commit lock is held. */
const MAINTENANCE_CHUNK = 512;

/** How much one chunk of a GSI backfill walks (store with outboxes): its apply holds the node's other groups that long. */
export interface BackfillChunkLimits {
  maxItems: number;
  /** Stop once this many bytes of items are read (at least one item is). */
  maxBytes: number;
}

const DEFAULT_BACKFILL_CHUNK: BackfillChunkLimits = { maxItems: 1_000, maxBytes: 1024 * 1024 };

/** How much one step of a split's outbox move reads (a moveIndexOutbox entry): its apply holds the node's other groups that long. */
export interface OutboxMoveLimits {
  maxRecords: number;
  /** Stop once this many bytes of records are read (at least one record is). */
  maxBytes: number;
}

const DEFAULT_OUTBOX_MOVE_STEP: OutboxMoveLimits = { maxRecords: 1_000, maxBytes: 1024 * 1024 };

/** An outbox move step's outcome: records moved, and whether the move goes on (`moving`), ended (`done`), or the entry was stale. */
export interface OutboxMoveStep {
  status: 'moving' | 'done' | 'stale';
  moved: number;
}

/** A backfill chunk's outcome: items walked, and whether the backfill goes on (`walked`), ended (`done`), or the entry was stale. */
export interface BackfillChunkResult {
  status: 'walked' | 'done' | 'stale';
  items: number;
}

/** A snapshot of a split half that outbox records are still being moved to here: it would lack them; sent once they are in. */
export class OutboxMoveUnderWayError extends Error {
  constructor(groupId: number) {
    super(`group ${groupId} awaits outbox records its parent's split moves to it here: no snapshot until they are in`);
    this.name = 'OutboxMoveUnderWayError';
  }
}

/**
 * The Raft log position a write applies, for a replicated partition: stored in the same batch as the
 * write's changes, so after a restart the replica knows exactly which commands its data holds.
 */
export interface AppliedMark {
  groupId: number;
  index: number;
}

/**
 * An index being backfilled over the table's items in `bound` (all of them without one). The
 * backfill walks them in key order; items below `cursor` already have their entry and writes
 * maintain it, items from `cursor` on are left to the backfill, which reads them later under the
 * commit lock.
 */
interface Backfill {
  bound: PartitionBound | undefined;
  cursor: Uint8Array;
}

/** An index command of a replicated partition (contracts #9): the backfill or drop of one index within its bound. */
export interface IndexCommand {
  kind: 'backfillIndex' | 'dropIndex';
  table: TableSchema;
  indexName: string;
  /**
   * A GSI backfill's: a partition map version at or after the one that created the index (the router
   * knows one: the first map it saw the index in), recorded with the backfill (RunningBackfill). A
   * node's map view at or past it that does not show the index proves the index deleted. Absent in
   * commands of older routers and logs.
   */
  indexCreatedAtMapVersion?: number;
}

/** An index command recorded while it runs, with the bound it runs within (base64 keys). */
interface IndexCommandRecord extends IndexCommand {
  bound?: { start: string; end: string };
}

/** A backfillIndex call's run: waiting for overlapping runs, then walking (Backfill). */
interface BackfillRun {
  indexId: number;
  bound: PartitionBound | undefined;
  /** A drop of the index came first: the run does not start. */
  cancelled: boolean;
  done: Promise<void>;
}

/** Whether two bounds share a key (undefined: the whole table). */
function overlaps(a: PartitionBound | undefined, b: PartitionBound | undefined): boolean {
  return a === undefined || b === undefined || boundsOverlap(a, b);
}

/**
 * The data of every table on one node: the partition state machine. Writes are atomic and
 * serialized through the commit queue; indexes and statistics change in the same batch as the items.
 * Reads see what is durable.
 *
 * In a cluster the store holds every partition replica of the node in one key space: reads,
 * statistics and index maintenance then take the partition's bound (PartitionBound), and without one
 * they cover whole tables (a single node, where one store holds everything).
 */
export class PartitionStore implements PartitionClient {
  private readonly level: ByteLevel;
  private readonly commits: CommitQueue;
  private readonly statisticsBook: StatisticsBook;
  /** Intents of prepared cross-partition transactions (transactions.ts): their items refuse other writes. */
  private readonly intents: IntentIndex;
  /** Backfills walking the table, by index id: at most one over any key (backfillIndex runs overlapping ones in turn). */
  private readonly backfills = new Map<number, Set<Backfill>>();
  /** Backfill runs, waiting or walking, by index id and bound start. */
  private readonly runningBackfills = new Map<string, BackfillRun>();
  /**
   * Counts what may have started a GSI backfill in a group (a backfill command, a split, a snapshot
   * restored): a cheap check for whoever drives them, on every apply, and for whoever looks up the
   * creation versions backfill records hold (indexCreatedAtMapVersion: only these writes bring one).
   * Moved once the write is in the store.
   */
  get backfillsStarted(): number {
    return this.startedBackfills;
  }

  private startedBackfills = 0;
  /** Callers waiting for the GSI backfills (store with outboxes) an index command started to end. */
  private readonly backfillWaiters = new Set<{ indexId: number; origin: number; resolve(): void; reject(error: unknown): void }>();
  private checkingBackfills = false;
  /** A backfill may have ended while the waiters were being checked: check again after. */
  private recheckBackfills = false;
  /**
   * Cluster nodes: GSI entries go to each group's outbox (index-outbox.ts), not into this store, and
   * every write makes its GSI records, a GSI backfill running or not: its chunks walk the items not
   * reached yet later, with their newest state, so their records follow those of earlier writes.
   */
  readonly indexOutbox: boolean;
  /** Each group's outbox records not trimmed yet, kept with every change (indexOutboxBacklog). */
  private readonly outboxBacklogs = new OutboxBacklogs();
  private readonly maintains: IndexGate = (index, itemKey) => {
    if (this.indexOutbox && index.kind === 'GSI') return true;
    for (const backfill of this.backfills.get(index.indexId) ?? []) {
      if ((backfill.bound === undefined || boundContains(backfill.bound, itemKey)) && compareBytes(itemKey, backfill.cursor) >= 0) return false;
    }
    return true;
  };

  constructor(level: ByteLevel, commits: CommitQueue, options: { indexOutbox?: boolean } = {}) {
    this.level = level;
    this.commits = commits;
    this.indexOutbox = options.indexOutbox ?? false;
    this.statisticsBook = new StatisticsBook(level);
    this.intents = new IntentIndex(level);
  }

  /** With `mark`, the applied index is recorded in the same batch, even when nothing else changes. */
  async write(request: PartitionWrite, mark?: AppliedMark): Promise<PartitionWriteResult> {
    const { result, durable } = await this.stageWrite(request, mark);
    await durable;
    return result;
  }

  /**
   * As `write`, but resolves once the write is decided and staged (the next writes see it, readers of
   * the store once `durable` resolves): a replica applies a whole round of entries, and the round's
   * writes share one batch, before it answers any of them.
   */
  stageWrite(request: PartitionWrite, mark?: AppliedMark): Promise<Staged<PartitionWriteResult>> {
    return this.commits.stageExclusive<PartitionWriteResult>(async (state) => {
      await this.intents.load(state);
      const changes = this.changeSet(state, mark);
      const wounded: WoundedReads = [];
      const outcomes = request.operations.map((operation) => this.applyOperation(request, operation, changes, accessOf(operation), wounded));
      const marks = mark ? [appliedMutation(mark)] : [];
      if (!outcomes.every((outcome) => outcome.status === 'ok')) return { result: refused(outcomes), mutations: marks };
      return { result: { applied: true, outcomes }, mutations: [...changes.finish(this.statisticsBook), ...this.intents.put(wounded), ...marks] };
    });
  }

  /**
   * Independent single-operation writes (requests a router coalesced into one Raft entry), decided in
   * order on one state, each with its own outcome (a refused one changes nothing), and staged as ONE
   * batch with the applied mark: a restart finds all of them applied, or none.
   */
  stageWrites(requests: readonly PartitionWrite[], mark?: AppliedMark): Promise<Staged<PartitionWriteResult[]>> {
    return this.commits.stageExclusive<PartitionWriteResult[]>(async (state) => {
      await this.intents.load(state);
      const changes = this.changeSet(state, mark);
      const wounded: WoundedReads = [];
      const results = requests.map((request): PartitionWriteResult => {
        const [operation] = request.operations;
        if (operation === undefined || request.operations.length !== 1) throw new TypeError('stageWrites takes writes of one operation each');
        const woundedBefore = wounded.length;
        const outcome = this.applyOperation(request, operation, changes, accessOf(operation), wounded);
        if (outcome.status === 'ok') return { applied: true, outcomes: [outcome] };
        // A refused write went through no read (as stageWrite drops its wounds when refused).
        wounded.length = woundedBefore;
        return refused([outcome]);
      });
      const marks = mark ? [appliedMutation(mark)] : [];
      return { result: results, mutations: [...changes.finish(this.statisticsBook), ...this.intents.put(wounded), ...marks] };
    });
  }

  /**
   * Prepares this partition's operations of a cross-partition transaction: evaluated exactly as a
   * write, but stored as intents (the item images the transaction writes) instead of applied. All or
   * none: when any operation fails (a condition, another transaction's intent), nothing is stored.
   */
  prepareTransaction(transaction: TransactionRef, request: PartitionWrite, mark?: AppliedMark): Promise<PartitionWriteResult> {
    return this.commits.exclusive<PartitionWriteResult>(async (state) => {
      await this.intents.load(state);
      const changes = new ChangeSet(state);
      const wounded: WoundedReads = [];
      const access = (operation: WriteOperation): IntentAccess => (transaction.readOnly ? 'read' : accessOf(operation));
      const outcomes = request.operations.map((operation) => this.applyOperation(request, operation, changes, access(operation), wounded));
      const marks = mark ? [appliedMutation(mark)] : [];
      if (!outcomes.every((outcome) => outcome.status === 'ok')) return { result: refused(outcomes), mutations: marks };
      const intents = request.operations.map((operation) => {
        const { table, key } = operation;
        // Every key made an item key: applyOperation refuses those that do not.
        const itemKey = entryKey(table.tableId, spaceKeyAttributes(table), key) as Uint8Array;
        const next = operation.kind === 'ConditionCheck' ? undefined : changes.readItem(itemKey);
        const kind = access(operation);
        const change: IntentChange = kind !== 'write' ? { kind } : next ? { kind: 'put', item: next } : { kind: 'delete' };
        return { itemKey, intent: { transaction, table, change } };
      });
      return { result: { applied: true, outcomes }, mutations: [...this.intents.put(wounded), ...this.intents.put(intents), ...marks] };
    });
  }

  /**
   * Resolves a transaction's intents on the items in `bound` (a partition's: the store holds other
   * partitions' intents too; all without one): committed, their images are written (with their index
   * entries, as a write would) and they go, in one batch; aborted, they go. Answers how many there
   * were (0: resolved before, or never prepared here), and how many of them were reads a write went through.
   */
  resolveTransaction(transactionId: string, commit: boolean, bound: PartitionBound | undefined, mark?: AppliedMark): Promise<ResolvedIntents> {
    return this.commits.exclusive(async (state) => {
      await this.intents.load(state);
      const intents = this.intents.of(transactionId, bound);
      const resolved = { intents: intents.length, wounded: intents.filter(({ intent }) => intent.wounded === true).length };
      const changes = this.changeSet(state, mark);
      for (const { itemKey, intent } of commit ? intents : []) {
        if (intent.change.kind !== 'put' && intent.change.kind !== 'delete') continue;
        const next = intent.change.kind === 'put' ? intent.change.item : undefined;
        changes.writeItem(intent.table, itemKey, changes.readStored(itemKey), next, this.maintains);
      }
      const written = commit ? changes.finish(this.statisticsBook) : [];
      return { result: resolved, mutations: [...written, ...this.intents.release(transactionId, bound), ...(mark ? [appliedMutation(mark)] : [])] };
    });
  }

  /** Records a new PENDING transaction; one already recorded (decided, maybe) stays as it is. Answers the record now. */
  beginTransaction(record: TransactionRecord, mark?: AppliedMark): Promise<TransactionRecord> {
    return this.commits.exclusive(async (state) => {
      const current = readTransactionRecord(state, record.id);
      const marks = mark ? [appliedMutation(mark)] : [];
      if (current) return { result: current, mutations: marks };
      const begun: TransactionRecord = { ...record, state: 'PENDING' };
      return { result: begun, mutations: [transactionRecordMutation(begun), ...marks] };
    });
  }

  /**
   * Decides a PENDING transaction; a decided one keeps its decision. A transaction never begun here
   * is recorded ABORTED, whatever was asked, so that it can never commit later. Answers the state now.
   */
  decideTransaction(transactionId: string, decision: 'COMMITTED' | 'ABORTED', mark?: AppliedMark): Promise<TransactionState> {
    return this.commits.exclusive(async (state) => {
      const current = readTransactionRecord(state, transactionId);
      const marks = mark ? [appliedMutation(mark)] : [];
      if (current && current.state !== 'PENDING') return { result: current.state, mutations: marks };
      const decided: TransactionRecord = current ? { ...current, state: decision } : { id: transactionId, state: 'ABORTED', participants: [], deadline: 0 };
      return { result: decided.state, mutations: [transactionRecordMutation(decided), ...marks] };
    });
  }

  /** Deletes a decided transaction's record (every participant resolved it); a PENDING one stays. Answers whether it went. */
  forgetTransaction(transactionId: string, mark?: AppliedMark): Promise<boolean> {
    return this.commits.exclusive(async (state) => {
      const current = readTransactionRecord(state, transactionId);
      const forget = current !== undefined && current.state !== 'PENDING';
      const mutations = [...(forget ? [{ key: transactionRecordKey(transactionId), value: undefined }] : []), ...(mark ? [appliedMutation(mark)] : [])];
      return { result: forget, mutations };
    });
  }

  /** A transaction's record, if this store holds it. */
  transactionRecord(transactionId: string): Promise<TransactionRecord | undefined> {
    return this.commits.exclusive(async (state) => ({ result: readTransactionRecord(state, transactionId), mutations: [] }));
  }

  /** The transactions holding intents in this store, each with its items, for those resolving the ones left behind. */
  transactionsWithIntents(): Promise<Array<{ transaction: TransactionRef; itemKeys: Uint8Array[] }>> {
    return this.commits.exclusive(async (state) => {
      await this.intents.load(state);
      return { result: this.intents.transactions(), mutations: [] };
    });
  }

  /** Whether GSI entries go to the groups' outboxes (a cluster node's store), not with their items. */
  get hasIndexOutboxes(): boolean {
    return this.indexOutbox;
  }

  /**
   * The records the group's outbox holds, as decided so far (staged writes included), counted in
   * memory with every change, so asking costs no read (a leader asks before every write to a table
   * with a GSI).
   */
  indexOutboxBacklog(groupId: number): number {
    return this.outboxBacklogs.of(groupId);
  }

  /** Counts every group's outbox records (indexOutboxBacklog) in the store: once, when it opens. */
  loadIndexOutboxBacklogs(): Promise<void> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      await this.outboxBacklogs.load(this.level);
      return { result: undefined, mutations: [] };
    });
  }

  /** The group's first outbox records (index-outbox.ts), in seq order, as LevelDB holds them: a shipper's batch. */
  readIndexOutbox(groupId: number, limits: OutboxReadLimits): Promise<IndexOutboxRecord[]> {
    return readOutbox(this.level, groupId, limits);
  }

  /**
   * How many records the group's outbox holds (after `afterSeq`, with one), from its first record's
   * seq to its next seq: one key read, not a scan (holes a split left by moving records count too).
   */
  async indexOutboxSize(groupId: number, afterSeq?: number): Promise<number> {
    const range = outboxRange(groupId);
    const start = afterSeq === undefined ? { gte: range.start } : { gt: outboxKey(groupId, afterSeq) };
    const [first] = await this.level.keys({ ...start, lt: range.end, limit: 1 }).all();
    if (first === undefined) return 0;
    const next = await this.level.get(outboxSeqKey(groupId));
    return (next === undefined ? 1 : decodeF64(next)) - decodeF64(first.subarray(9, 17));
  }

  /**
   * Deletes the group's outbox records up to `throughSeq` (every GSI partition they went to applied
   * them), with the command's applied mark, and raises the group's trimmed-through seq to it (a move
   * step drops the records at or below it that reach the group later: readTrimmedThrough). Records its
   * own outbox move (a split's) is still to move stay: they go to the half, whose replicas may be
   * receiving them from the move directly, where this trim cannot reach them (they are sent again
   * from the half, skipped by the GSI partitions' cursors, or applied again before the half's newer
   * records of the item). Answers how many went.
   */
  trimIndexOutbox(groupId: number, throughSeq: number, mark?: AppliedMark): Promise<number> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const range = { gte: outboxRange(groupId).start, lte: outboxKey(groupId, throughSeq) };
      const stored = state.read(outboxMoveKey(groupId));
      const move = stored && decodeOutboxMove(outboxMoveKey(groupId), stored);
      const keys: Uint8Array[] = [];
      if (move === undefined) keys.push(...(await this.level.keys(range).all()));
      else for await (const [key, value] of this.level.iterator(range)) if (!stillToMove(move, decodeOutboxRecord(key, value))) keys.push(key);
      const mutations: Mutation[] = keys.map((key) => ({ key, value: undefined }));
      if (throughSeq > readTrimmedThrough(state, groupId)) mutations.push(trimmedThroughMutation(groupId, throughSeq));
      this.outboxBacklogs.add(groupId, -keys.length);
      return { result: keys.length, mutations: [...mutations, ...(mark ? [appliedMutation(mark)] : [])] };
    });
  }

  /**
   * A split of the group at `splitKey`, in its apply: bounded work whatever the outbox holds. The
   * right half's records are NOT moved here (a backlog of 100,000 records would hold every group of
   * the node for seconds): the split records where it split (moves route by it), reserves the seqs
   * of the group's outbox in the right group (its next seq starts past the group's), and, when the
   * group's outbox holds records, records the move of its right half's records (IndexOutboxMove, from
   * seq 1: decided by the group's next seq alone, never by which records are here, since a split half
   * may still be receiving its parent's), which the group's `moveIndexOutbox` entries carry out
   * (applyIndexOutboxMove). Answers that move. Applied again (a replay after a restart lost what
   * followed), it finds the move it recorded, or the same state: it changes nothing.
   */
  splitIndexOutbox(groupId: number, rightGroupId: number, splitKey: Uint8Array): Promise<IndexOutboxMove | undefined> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const next = readNextSeq(state, groupId);
      const mutations: Mutation[] = await this.splitRunningBackfills(state, groupId, rightGroupId, splitKey, next - 1);
      mutations.push(outboxSplitMutation(groupId, splitKey, rightGroupId));
      const stored = state.read(outboxMoveKey(groupId));
      const pending = stored && decodeOutboxMove(outboxMoveKey(groupId), stored);
      if (pending !== undefined && pending.rightGroupId === rightGroupId) return { result: pending, mutations };
      // A replica refuses such a split (decided from this same state, so on every replica alike).
      if (pending !== undefined) throw new Error(`group ${groupId} cannot split again before its outbox move to group ${pending.rightGroupId} ended`);
      // Moved records keep their seqs: the right group numbers its own from the group's next seq on.
      if (readNextSeq(state, rightGroupId) < next) mutations.push(nextSeqMutation(rightGroupId, next));
      // What the group trimmed before the split is trimmed for the right half too: a record of its
      // items that reaches this replica only now (its parent's move, slower here) was deleted where
      // it came before that trim.
      const trimmed = readTrimmedThrough(state, groupId);
      if (trimmed > readTrimmedThrough(state, rightGroupId)) mutations.push(trimmedThroughMutation(rightGroupId, trimmed));
      if (next === 1) return { result: undefined, mutations };
      const move: IndexOutboxMove = { groupId, rightGroupId, splitKey: Uint8Array.from(splitKey), nextSeq: 1, throughSeq: next - 1 };
      return { result: move, mutations: [...mutations, outboxMoveMutation(move)] };
    }).finally(() => {
      this.startedBackfills += 1;
      this.wakeBackfillWaiters();
    });
  }

  /**
   * The move of the group's outbox records to its right half under way (a split's), if any, as
   * applied: the steps and the split that write it apply in batches of their own, written before
   * their apply returns.
   */
  async indexOutboxMove(groupId: number): Promise<IndexOutboxMove | undefined> {
    const stored = await this.level.get(outboxMoveKey(groupId));
    return stored === undefined ? undefined : decodeOutboxMove(outboxMoveKey(groupId), stored);
  }

  /**
   * The next step of the group's outbox move, as its leader proposes it: from the move's next seq
   * through the seq of the last record `limits` allow in this store's outbox there (the move's last
   * seq when fewer are left). Undefined: no move under way.
   */
  async nextIndexOutboxMoveStep(groupId: number, limits: OutboxMoveLimits = DEFAULT_OUTBOX_MOVE_STEP): Promise<{ fromSeq: number; toSeq: number } | undefined> {
    const move = await this.indexOutboxMove(groupId);
    return move && { fromSeq: move.nextSeq, toSeq: await this.outboxMoveStepEnd(move, limits) };
  }

  private async outboxMoveStepEnd(move: IndexOutboxMove, limits: OutboxMoveLimits): Promise<number> {
    let read = 0;
    let bytes = 0;
    const range = { gte: outboxKey(move.groupId, move.nextSeq), lte: outboxKey(move.groupId, move.throughSeq) };
    for await (const [key, value] of this.level.iterator({ ...range, limit: limits.maxRecords })) {
      read += 1;
      bytes += value.length;
      if (read >= limits.maxRecords || bytes >= limits.maxBytes) return decodeF64(key.subarray(9, 17));
    }
    return move.throughSeq;
  }

  /**
   * One step of the group's outbox move (a `moveIndexOutbox` entry of its log, proposed by its leader
   * one after another): when `fromSeq` is the move's next seq (else the entry is stale: proposed
   * twice, and changes nothing but the applied mark), moves the records of the group's outbox
   * numbered `fromSeq` to `toSeq` (within the move) of right-half items to the outbox of the half that
   * holds the item now (the right group, or a half it split into since: recorded splits), each under
   * its own seq; writes them, the move's next seq (`toSeq` + 1, or its end) and the applied mark in one
   * batch. A record the half trimmed through already is dropped (readTrimmedThrough: on a replica
   * where the record came before the trim, the trim deleted it), and so is one of a half this store
   * does not hold (no next seq here: its replica was removed, or never created here, as when a
   * snapshot of the parent brought the move): nobody would ship or delete it. The leader chose
   * `toSeq` so that its own store holds at most 1,000 records / 1 MiB there; so does every replica's,
   * but for a group that is itself a split half still receiving its parent's records (a replica may
   * hold more of those than the leader did).
   */
  async applyIndexOutboxMove(groupId: number, fromSeq: number, toSeq: number, mark: AppliedMark): Promise<OutboxMoveStep> {
    return this.commits.exclusive<OutboxMoveStep>(async (state) => {
      await state.durable();
      const stored = state.read(outboxMoveKey(groupId));
      const move = stored && decodeOutboxMove(outboxMoveKey(groupId), stored);
      if (move === undefined || move.nextSeq !== fromSeq || toSeq < fromSeq) return { result: { status: 'stale', moved: 0 }, mutations: [appliedMutation(mark)] };
      const step = await this.outboxMoveStep(state, move, toSeq);
      return { result: step.result, mutations: [...step.mutations, appliedMutation(mark)] };
    });
  }

  /** One step of `move` through `toSeq`, under the commit lock once staged changes are durable; counts the records in and out in the backlogs. */
  private async outboxMoveStep(state: StateReader, move: IndexOutboxMove, toSeq: number): Promise<{ result: OutboxMoveStep; mutations: Mutation[] }> {
    const mutations: Mutation[] = [];
    const halves = new Map<number, Array<{ splitKey: Uint8Array; rightGroupId: number }>>();
    /**
     * Per half: whether this store holds it, the seq it trimmed through, the seqs of the step it has
     * already (a snapshot of the half brought them: not counted again; one seek, mostly empty), and
     * the records coming in.
     */
    const targets = new Map<number, { held: boolean; trimmedThrough: number; present: Set<number>; added: number }>();
    let moved = 0;
    let taken = 0;
    const lastSeq = Math.min(toSeq, move.throughSeq);
    const range = { gte: outboxKey(move.groupId, move.nextSeq), lte: outboxKey(move.groupId, lastSeq) };
    for await (const [key, value] of this.level.iterator(range)) {
      const record = decodeOutboxRecord(key, value);
      if (compareBytes(record.itemKey, move.splitKey) < 0) continue;
      mutations.push({ key, value: undefined });
      taken += 1;
      const holder = await this.outboxHolder(move.rightGroupId, record.itemKey, halves);
      let target = targets.get(holder);
      if (target === undefined) {
        const held = state.read(outboxSeqKey(holder)) !== undefined;
        const present = held ? await this.level.keys({ gte: outboxKey(holder, move.nextSeq), lte: outboxKey(holder, lastSeq) }).all() : [];
        target = { held, trimmedThrough: readTrimmedThrough(state, holder), present: new Set(present.map((k) => decodeF64(k.subarray(9, 17)))), added: 0 };
        targets.set(holder, target);
      }
      if (!target.held || record.seq <= target.trimmedThrough) continue;
      if (!target.present.has(record.seq)) target.added += 1;
      mutations.push({ key: outboxKey(holder, record.seq), value });
      moved += 1;
    }
    const done = toSeq >= move.throughSeq;
    mutations.push(done ? { key: outboxMoveKey(move.groupId), value: undefined } : outboxMoveMutation({ ...move, nextSeq: toSeq + 1 }));
    this.outboxBacklogs.add(move.groupId, -taken);
    for (const [holder, target] of targets) this.outboxBacklogs.add(holder, target.added);
    return { result: { status: done ? 'done' : 'moving', moved }, mutations };
  }

  /** The group holding `itemKey` among `groupId` and the halves it split into (recorded splits, read once per step into `halves`). */
  private async outboxHolder(groupId: number, itemKey: Uint8Array, halves: Map<number, Array<{ splitKey: Uint8Array; rightGroupId: number }>>): Promise<number> {
    let holder = groupId;
    for (;;) {
      let splits = halves.get(holder);
      if (splits === undefined) {
        const range = outboxSplitsRange(holder);
        splits = (await this.level.iterator({ gte: range.start, lt: range.end }).all()).map(([key, value]) => decodeOutboxSplit(key, value));
        halves.set(holder, splits);
      }
      // Splits by key: a group splits within what it holds, so its latest split at or before the key holds it.
      let next: number | undefined;
      for (const split of splits) if (compareBytes(split.splitKey, itemKey) <= 0) next = split.rightGroupId;
      if (next === undefined) return holder;
      holder = next;
    }
  }

  /**
   * Whether records may still be moved into the group's outbox here: it is the right half of an
   * outbox move under way in this store, or a half split from one. Its records are not complete
   * here until then (a shipper holds them, a snapshot of it is not sent).
   */
  async awaitsIndexOutboxMove(groupId: number, options: { snapshot?: AbstractSnapshot } = {}): Promise<boolean> {
    const read = options.snapshot === undefined ? {} : { snapshot: options.snapshot };
    const moves = outboxMovesRange();
    const pending: number[] = [];
    for (const [key, value] of await this.level.iterator({ gte: moves.start, lt: moves.end, ...read }).all()) pending.push(decodeOutboxMove(key, value).rightGroupId);
    const seen = new Set<number>();
    for (let target = pending.pop(); target !== undefined; target = pending.pop()) {
      if (target === groupId) return true;
      if (seen.has(target)) continue;
      seen.add(target);
      const splits = outboxSplitsRange(target);
      for (const [key, value] of await this.level.iterator({ gte: splits.start, lt: splits.end, ...read }).all()) pending.push(decodeOutboxSplit(key, value).rightGroupId);
    }
    return false;
  }

  /**
   * Ends the group's outbox move in this store at once, in bounded batches (not entries of its log):
   * before its replica's data goes (a removal, or a snapshot replacing it), so the halves it moves
   * records to here get every one (under the seqs the log's steps would give them).
   */
  private async finishIndexOutboxMoveHere(groupId: number): Promise<void> {
    for (let done = false; !done; ) {
      done = await this.commits.exclusive(async (state) => {
        await state.durable();
        const stored = state.read(outboxMoveKey(groupId));
        if (stored === undefined) return { result: true, mutations: [] };
        const move = decodeOutboxMove(outboxMoveKey(groupId), stored);
        const step = await this.outboxMoveStep(state, move, await this.outboxMoveStepEnd(move, DEFAULT_OUTBOX_MOVE_STEP));
        return { result: step.result.status === 'done', mutations: step.mutations };
      });
    }
  }

  /**
   * A split of a group with GSI backfills: the right group inherits each for its range (next key: the
   * later of the backfill's and the split key; the origin kept; a done one done), the left one's ends
   * at the split key (done when its walk is past it). A replayed split finds the right's written and
   * the left's already cut (its end at the split key, or done): it changes nothing. `lastSeq`: the
   * group's last outbox seq at the split, the last seq of a backfill done here in both halves (the
   * right half's records keep their seqs when its outbox move carries them over).
   */
  private async splitRunningBackfills(
    state: StateReader,
    groupId: number,
    rightGroupId: number,
    splitKey: Uint8Array,
    lastSeq: number,
  ): Promise<Mutation[]> {
    const range = runningBackfillsRange(groupId);
    const mutations: Mutation[] = [];
    for (const [key, value] of await this.level.iterator({ gte: range.start, lt: range.end }).all()) {
      const backfill = decodeRunningBackfill(key, value);
      if (state.read(runningBackfillKey(rightGroupId, backfill.indexId)) === undefined) {
        const rightStart = compareBytes(backfill.nextKey, splitKey) > 0 ? backfill.nextKey : splitKey;
        const inherited = backfill.done ? { ...backfill, nextKey: backfill.end, ...(backfill.dropped === true ? {} : { lastSeq }) } : { ...backfill, nextKey: rightStart };
        mutations.push(runningBackfillMutation({ ...inherited, groupId: rightGroupId }));
      }
      if (backfill.done || compareBytes(backfill.end, splitKey) <= 0) continue;
      const walkedPast = compareBytes(backfill.nextKey, splitKey) >= 0;
      mutations.push(runningBackfillMutation(walkedPast ? { ...backfill, nextKey: splitKey, end: splitKey, done: true, lastSeq } : { ...backfill, end: splitKey }));
    }
    return mutations;
  }

  /**
   * A GSI partition (group `groupId`, entries in `bound` of the index's own space) applies records a
   * source group shipped: those at or below its cursor for that source are skipped (applied before),
   * the others put or delete their entries in seq order, with the index space's statistics, the new
   * cursor and the applied mark, in one batch. A record outside the bound (the partition split since
   * the records were routed) refuses the whole call, which then applies nothing but the mark.
   * `fences` (the source's ancestors it split from) are kept first (the lowest key per source): a
   * record of a fenced source for an item at or beyond its fence is skipped (its item's records moved
   * to a split half, which ships them and newer ones: the fenced source's copy is stale).
   */
  applyIndexEntries(
    groupId: number,
    bound: PartitionBound,
    sourceGroupId: number,
    records: readonly ShippedIndexRecord[],
    mark?: AppliedMark,
    fences: readonly SourceFence[] = [],
  ): Promise<AppliedIndexEntries> {
    return this.commits.exclusive<AppliedIndexEntries>(async (state) => {
      const marks = mark ? [appliedMutation(mark)] : [];
      const stray = records.find((record) => !boundContains(bound, record.entryKey));
      if (stray !== undefined) return { result: { status: 'outOfRange', applied: 0, skipped: 0 }, mutations: marks };
      const fenced: Mutation[] = [];
      for (const fence of fences) {
        const current = state.read(sourceFenceKey(groupId, fence.sourceGroupId));
        if (current === undefined || compareBytes(fence.fromKey, current) < 0) fenced.push({ key: sourceFenceKey(groupId, fence.sourceGroupId), value: Uint8Array.from(fence.fromKey) });
      }
      const fence = fences.reduce<Uint8Array | undefined>((lowest, f) => (f.sourceGroupId !== sourceGroupId || (lowest !== undefined && compareBytes(lowest, f.fromKey) <= 0) ? lowest : f.fromKey), state.read(sourceFenceKey(groupId, sourceGroupId)));
      let cursor = readIndexCursor(state, groupId, sourceGroupId);
      const changes = new ChangeSet(state);
      let applied = 0;
      for (const record of records) {
        if (record.seq <= cursor) continue;
        cursor = record.seq;
        if (fence !== undefined && compareBytes(record.itemKey, fence) >= 0) continue;
        changes.replaceEntry(record.indexId, record.entryKey, record.entry);
        applied += 1;
      }
      const advanced = cursor > readIndexCursor(state, groupId, sourceGroupId) ? [indexCursorMutation(groupId, sourceGroupId, cursor)] : [];
      return { result: { status: 'applied', applied, skipped: records.length - applied }, mutations: [...fenced, ...changes.finish(this.statisticsBook), ...advanced, ...marks] };
    });
  }

  /** The highest seq of `sourceGroupId` the GSI partition group applied; 0 when none. */
  indexCursor(groupId: number, sourceGroupId: number): Promise<number> {
    return this.commits.exclusive(async (state) => ({ result: readIndexCursor(state, groupId, sourceGroupId), mutations: [] }));
  }

  /**
   * A split of a GSI partition group: the right group starts with a copy of the left's cursors (the
   * records a source shipped to the left before the split are applied for the right half too) and fences.
   */
  copyIndexCursors(groupId: number, rightGroupId: number): Promise<void> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const range = indexCursorsRange(groupId);
      const cursors = await this.level.iterator({ gte: range.start, lt: range.end }).all();
      const mutations = cursors.map(([key, value]): Mutation => {
        const source = decodeU32(key.subarray(9, 13));
        return indexCursorMutation(rightGroupId, source, Math.max(decodeF64(value), readIndexCursor(state, rightGroupId, source)));
      });
      const fences = sourceFencesRange(groupId);
      for (const [key, value] of await this.level.iterator({ gte: fences.start, lt: fences.end }).all()) {
        const target = sourceFenceKey(rightGroupId, decodeU32(key.subarray(9, 13)));
        const current = state.read(target);
        if (current === undefined || compareBytes(value, current) < 0) mutations.push({ key: target, value });
      }
      return { result: undefined, mutations };
    });
  }

  /** Records a command's applied index alone (a command that changed nothing else, or did in earlier batches). */
  markApplied(mark: AppliedMark): Promise<void> {
    return this.commits.exclusive(async () => ({ result: undefined, mutations: [appliedMutation(mark)] }));
  }

  /**
   * Applies an index command of a replica group: records it as running, with its applied index, in
   * one batch, and starts it; resolves then, while the command runs on (`done`), so that the group's
   * next commands (and the node's other groups) are not held up by a long backfill. Writes applied
   * meanwhile are maintained as usual (the backfill's gate). A restart finds the record and runs the
   * command again from the start (resumeIndexCommands). An index the table lacks throws DynamoDB's
   * ValidationException before anything is recorded.
   */
  async startIndexCommand(command: IndexCommand, bound: PartitionBound | undefined, mark: AppliedMark): Promise<{ done: Promise<void> }> {
    const index = requireIndex(command.table, command.indexName);
    if (this.indexOutbox && index.kind === 'GSI') {
      if (command.kind === 'backfillIndex') return this.startOutboxBackfill(command, index, bound, mark);
      // A drop ends the group's backfill of the index, if one runs, and leaves a tombstone: a backfill
      // command of the index applied later (a router's call after the drop) walks nothing.
      const items = clampRange(spaceRange(command.table.tableId), bound);
      await this.commits.exclusive(async (state) => {
        // The tombstone keeps the index's creation version: the shipper still tells its records deleted by it.
        const key = runningBackfillKey(mark.groupId, index.indexId);
        const stored = state.read(key);
        const createdAt = stored === undefined ? undefined : decodeRunningBackfill(key, stored).indexCreatedAtMapVersion;
        const dropped: RunningBackfill = {
          done: true,
          dropped: true,
          groupId: mark.groupId,
          indexId: index.indexId,
          table: command.table,
          indexName: index.name,
          origin: mark.groupId,
          nextKey: items.end,
          end: items.end,
          ...(createdAt === undefined ? {} : { indexCreatedAtMapVersion: createdAt }),
        };
        return { result: undefined, mutations: [runningBackfillMutation(dropped), appliedMutation(mark)] };
      });
      this.wakeBackfillWaiters();
      return { done: Promise.resolve() };
    }
    const key = runningIndexCommandKey(mark.groupId, mark.index);
    const record: IndexCommandRecord = { kind: command.kind, table: command.table, indexName: command.indexName };
    if (bound !== undefined) record.bound = { start: Buffer.from(bound.start).toString('base64'), end: Buffer.from(bound.end).toString('base64') };
    await this.commits.exclusive(async () => ({ result: undefined, mutations: [appliedMutation(mark), { key, value: encodeJson(record) }] }));
    return { done: this.runIndexCommand(key, command, bound) };
  }

  /**
   * A GSI backfill of a store with outboxes, started by its command's apply: recorded as running over
   * the bound's items (next key: the bound's start), with the applied mark, in one batch. The walk
   * is the group's `backfillChunk` entries, which its leader proposes one after another
   * (applyBackfillChunk): each chunk's records are numbered from the group's next seq at its log
   * position, so every replica's outbox holds the same records under the same seqs, and no apply
   * holds the node's other groups for longer than one chunk. A backfill of the index already running
   * here (the command sent again: a router retrying after a leader change) is joined, not restarted.
   * `done` resolves once it and the backfills split halves inherited from it ended in this store.
   */
  private async startOutboxBackfill(command: IndexCommand, index: IndexSchema, bound: PartitionBound | undefined, mark: AppliedMark): Promise<{ done: Promise<void> }> {
    const { groupId } = mark;
    const { table, indexCreatedAtMapVersion } = command;
    const origin = await this.commits.exclusive(async (state) => {
      const running = state.read(runningBackfillKey(groupId, index.indexId));
      if (running !== undefined) return { result: decodeRunningBackfill(runningBackfillKey(groupId, index.indexId), running).origin, mutations: [appliedMutation(mark)] };
      const items = clampRange(spaceRange(table.tableId), bound);
      const started: RunningBackfill = {
        done: false,
        groupId,
        indexId: index.indexId,
        table,
        indexName: index.name,
        origin: groupId,
        nextKey: items.start,
        end: items.end,
        ...(indexCreatedAtMapVersion === undefined ? {} : { indexCreatedAtMapVersion }),
      };
      return { result: groupId, mutations: [runningBackfillMutation(started), appliedMutation(mark)] };
    });
    this.startedBackfills += 1;
    return { done: this.backfillsEnded(index.indexId, origin) };
  }

  /**
   * One chunk of a running GSI backfill of the group (a `backfillChunk` entry): when the backfill of
   * `indexId` still runs and its next key is `fromKey` (else the entry is stale: proposed twice, or
   * the backfill ended or was dropped, and changes nothing), a put record for each of at most
   * `limits.maxItems` items (about `limits.maxBytes` of them) from there, the new next key (or the
   * backfill's end) and the applied mark, in one batch.
   */
  applyBackfillChunk(groupId: number, indexId: number, fromKey: Uint8Array, mark: AppliedMark, limits: BackfillChunkLimits = DEFAULT_BACKFILL_CHUNK): Promise<BackfillChunkResult> {
    return this.commits.exclusive<BackfillChunkResult>(async (state) => {
      const key = runningBackfillKey(groupId, indexId);
      const stored = state.read(key);
      const backfill = stored && decodeRunningBackfill(key, stored);
      if (backfill === undefined || backfill.done || compareBytes(backfill.nextKey, fromKey) !== 0) return { result: { status: 'stale', items: 0 }, mutations: [appliedMutation(mark)] };
      const index = requireIndex(backfill.table, backfill.indexName);
      await state.durable();
      const outbox = new OutboxWriter(state, groupId, this.outboxBacklogs);
      const changes = new ChangeSet(state, outbox);
      let items = 0;
      let bytes = 0;
      let last: Uint8Array | undefined;
      let full = false;
      for await (const [itemKey, value] of this.level.iterator({ gte: backfill.nextKey, lt: backfill.end, limit: limits.maxItems })) {
        changes.addEntry(backfill.table, index, itemKey, decodeJson<Item>(value));
        items += 1;
        bytes += value.length;
        last = itemKey;
        if (items >= limits.maxItems || bytes >= limits.maxBytes) {
          full = true;
          break;
        }
      }
      const progress = runningBackfillMutation(full && last !== undefined ? { ...backfill, nextKey: keyAfter(last) } : { ...backfill, nextKey: backfill.end, done: true, lastSeq: outbox.lastSeq() });
      return { result: { status: full ? 'walked' : 'done', items }, mutations: [...changes.finish(this.statisticsBook), progress, appliedMutation(mark)] };
    }).finally(() => this.wakeBackfillWaiters());
  }

  /**
   * The running GSI backfills (applied state) of the group (of every group without one), by group and
   * index id: what a group's leader proposes chunks for.
   */
  runningIndexBackfills(groupId?: number): Promise<RunningBackfill[]> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const range = groupId === undefined ? allRunningBackfillsRange() : runningBackfillsRange(groupId);
      const records = await this.level.iterator({ gte: range.start, lt: range.end }).all();
      return { result: records.map(([key, value]) => decodeRunningBackfill(key, value)).filter((backfill) => !backfill.done), mutations: [] };
    });
  }

  /**
   * The right halves the group split into (its split records, kept in its snapshot scope whichever
   * node holds it), in split key order: a backfill caller asks them too, as a half moved to other
   * nodes is not waited for here (indexBackfillState sees this store only).
   */
  splitHalvesOf(groupId: number): Promise<number[]> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const range = outboxSplitsRange(groupId);
      const splits = await this.level.iterator({ gte: range.start, lt: range.end }).all();
      return { result: splits.map(([key, value]) => decodeOutboxSplit(key, value).rightGroupId), mutations: [] };
    });
  }

  /**
   * The creation map version of a GSI as a backfill record of any group here holds it (running, done
   * or dropped; RunningBackfill.indexCreatedAtMapVersion), or undefined (no such record, or only
   * records of older commands): the index shipper tells a deleted GSI's records by it.
   */
  indexCreatedAtMapVersion(indexId: number): Promise<number | undefined> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const range = allRunningBackfillsRange();
      for (const [key, value] of await this.level.iterator({ gte: range.start, lt: range.end }).all()) {
        const backfill = decodeRunningBackfill(key, value);
        if (backfill.indexId === indexId && backfill.indexCreatedAtMapVersion !== undefined) return { result: backfill.indexCreatedAtMapVersion, mutations: [] };
      }
      return { result: undefined, mutations: [] };
    });
  }

  /**
   * Where the group's GSI backfill of `indexId` stands in this store, with the backfills split halves
   * here inherited from the same origin: `none` (no backfill command of the index applied here),
   * `running` (a group still walks), `shipping` (walked; an outbox still holds records at or below
   * its walk's last seq: not yet acknowledged by the GSI partitions and trimmed), `applied` (every
   * record of the walks acknowledged; a dropped index's backfill too, whose records are dropped).
   */
  indexBackfillState(groupId: number, indexId: number): Promise<'none' | 'running' | 'shipping' | 'applied'> {
    return this.commits.exclusive(async (state) => {
      await state.durable();
      const own = state.read(runningBackfillKey(groupId, indexId));
      if (own === undefined) return { result: 'none', mutations: [] };
      const { origin } = decodeRunningBackfill(runningBackfillKey(groupId, indexId), own);
      const range = allRunningBackfillsRange();
      let result: 'running' | 'shipping' | 'applied' = 'applied';
      for (const [key, value] of await this.level.iterator({ gte: range.start, lt: range.end }).all()) {
        const backfill = decodeRunningBackfill(key, value);
        if (backfill.indexId !== indexId || backfill.origin !== origin) continue;
        if (!backfill.done) return { result: 'running', mutations: [] };
        if (backfill.lastSeq === undefined) continue;
        const outbox = outboxRange(backfill.groupId);
        const [first] = await this.level.keys({ gte: outbox.start, lt: outbox.end, limit: 1 }).all();
        if (first !== undefined && decodeF64(first.subarray(9, 17)) <= backfill.lastSeq) result = 'shipping';
      }
      return { result, mutations: [] };
    });
  }

  /** Resolves once no group of this store runs a backfill of `indexId` started by group `origin`. */
  private backfillsEnded(indexId: number, origin: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.backfillWaiters.add({ indexId, origin, resolve, reject });
      this.wakeBackfillWaiters();
    });
  }

  /** Checks the backfill waiters against the store (after anything that may end a backfill). */
  private wakeBackfillWaiters(): void {
    if (this.backfillWaiters.size === 0) return;
    if (this.checkingBackfills) {
      this.recheckBackfills = true;
      return;
    }
    this.checkingBackfills = true;
    this.recheckBackfills = false;
    Promise.resolve()
      .then(() => this.runningIndexBackfills())
      .then(
        (running) => {
          for (const waiter of this.backfillWaiters) {
            if (running.some((backfill) => backfill.indexId === waiter.indexId && backfill.origin === waiter.origin)) continue;
            this.backfillWaiters.delete(waiter);
            waiter.resolve();
          }
        },
        (error: unknown) => {
          for (const waiter of this.backfillWaiters) waiter.reject(error);
          this.backfillWaiters.clear();
        },
      )
      .finally(() => {
        this.checkingBackfills = false;
        if (this.recheckBackfills) this.wakeBackfillWaiters();
      });
  }

  /** Starts again, in log order, the index commands of a group that were running when the store last closed. */
  async resumeIndexCommands(groupId: number): Promise<Array<Promise<void>>> {
    const range = runningIndexCommandsRange(groupId);
    const records = await this.level.iterator({ gte: range.start, lt: range.end }).all();
    return records.map(([key, value]) => {
      const { bound, ...command } = decodeJson<IndexCommandRecord>(value);
      const decoded = bound && { start: Uint8Array.from(Buffer.from(bound.start, 'base64')), end: Uint8Array.from(Buffer.from(bound.end, 'base64')) };
      return this.runIndexCommand(key, command, decoded);
    });
  }

  /** Starts the command at once (in log order with the group's next commands), and forgets its record once it ran. */
  private runIndexCommand(key: Uint8Array, command: IndexCommand, bound: PartitionBound | undefined): Promise<void> {
    const run = command.kind === 'backfillIndex'
      ? this.backfillIndex(command.table, command.indexName, bound)
      : this.dropIndex(command.table, command.indexName, bound);
    return run.then(() => this.commits.exclusive(async () => ({ result: undefined, mutations: [{ key, value: undefined }] })));
  }

  /** LevelDB batches written so far: the writes (and other changes) decided between two batches share one. */
  batchesWritten(): number {
    return this.commits.batchesWritten;
  }

  /** The last index recorded by a `write` with a mark of this group; 0 when none was. */
  appliedIndex(groupId: number): Promise<number> {
    return this.commits.exclusive(async (state) => {
      const stored = state.read(appliedIndexKey(groupId));
      const index = stored ? new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getFloat64(0, false) : 0;
      return { result: index, mutations: [] };
    });
  }

  /** `access`: how the operation meets intents on its item; reads it goes through are added to `wounded`. */
  private applyOperation(request: PartitionWrite, operation: WriteOperation, changes: ChangeSet, access: IntentAccess, wounded: WoundedReads): WriteOutcome {
    const { table } = operation;
    try {
      const itemKey = entryKey(table.tableId, spaceKeyAttributes(table), operation.key);
      if (itemKey === undefined) return invalid('The provided key element does not match the schema');
      if (this.intents.conflicts(itemKey, access)) return { status: 'transactionConflict' };
      if (access === 'write') wounded.push(...this.intents.wounds(itemKey));
      // Parsed only when something reads it: a plain put over an item needs its stored size alone.
      const stored = changes.readStored(itemKey);
      const input = operation.expressions;
      const compiled = input
        ? compilePartitionExpressions({
            condition: input.condition,
            update: operation.kind === 'Update' ? input.update : undefined,
            names: input.names,
            values: input.values,
          })
        : {};
      if (compiled.condition && !compiled.condition.evaluate(stored?.item)) {
        return stored ? { status: 'conditionFailed', item: stored.item } : { status: 'conditionFailed' };
      }
      if (operation.kind === 'ConditionCheck') {
        return request.returnItems && stored ? { status: 'ok', oldItem: stored.item } : { status: 'ok' };
      }
      const next = nextItem(operation, operation.kind === 'Update' ? stored?.item : undefined, compiled.update);
      let nextSize: number | undefined;
      if (next) {
        nextSize = itemSize(next);
        const problem = checkNewItem(table, operation, next, nextSize, compiled.update);
        if (problem) return invalid(problem);
      }
      changes.writeItem(table, itemKey, stored, next, this.maintains, nextSize);
      if (!request.returnItems) return { status: 'ok' };
      const oldItem = stored?.item;
      return { status: 'ok', ...(oldItem ? { oldItem } : {}), ...(next ? { newItem: next } : {}) };
    } catch (error) {
      if (error instanceof DynamoDbError && error.type === 'ValidationException') return invalid(error.message);
      throw error;
    }
  }

  /** Every read is served from this store's state, whatever the ReadOptions ask: that is the caller's to ensure. */
  async get(request: GetRequest, _options?: ReadOptions): Promise<FoundItem | undefined> {
    const key = entryKey(request.table.tableId, spaceKeyAttributes(request.table), request.key);
    if (key === undefined) throw validationError('The provided key element does not match the schema');
    // Synchronous (a thread pool round trip costs more CPU than the read of a cached block), and
    // from the commit queue's cache of values when it holds the item.
    const stored = this.commits.durableText(key);
    return stored && foundItem(StoredItem.of(stored));
  }

  /** With `bound`, only the partition's items (or index entries of its items) are read. */
  readRange(request: RangeReadRequest, _options?: ReadOptions, bound?: PartitionBound): Promise<RangeReadResult> {
    return readRange(this.level, request, bound);
  }

  /**
   * A Query or Scan of a GSI partition (`request.indexName` a GSI of `request.table`): its entries in
   * `bound`, a range of the index's own space.
   */
  readIndexPartition(request: RangeReadRequest, bound: PartitionBound): Promise<RangeReadResult> {
    return readRange(this.level, request, bound, 'index');
  }

  /** Item count and bytes of a GSI partition's entries (`bound` in the index's space), read whole. */
  indexPartitionStatistics(index: IndexSchema, bound: PartitionBound): Promise<TableStatistics> {
    return measureRange(this.level, clampRange(spaceRange(index.indexId), bound));
  }

  /**
   * Item count and bytes of a table or index: kept per space, so at once without a bound; with one,
   * counted by reading the partition's part of the space. (Per-space counters serve single-node
   * stores: with bounds, a write between adding an index to the schema and the partition's backfill
   * may count off the entry of an item the index never had, which the bounded backfill does not reset.)
   */
  async statistics(table: TableSchema, indexName?: string, bound?: PartitionBound): Promise<TableStatistics> {
    const index = indexName === undefined ? undefined : requireIndex(table, indexName);
    if (bound === undefined) return this.statisticsBook.peek(index?.indexId ?? table.tableId);
    if (index === undefined) return measureRange(this.level, clampRange(spaceRange(table.tableId), bound));
    return measureRange(this.level, indexEntriesRange(table, index, bound), (entry) => entryInBound(table, bound, entry));
  }

  /**
   * Builds an index from the table's items (those in `bound` only, with one). A run of the same index
   * and bound under way is joined; one over overlapping keys (a whole-table run and a bounded one) is
   * waited for first: two walks over one item would each take the other's entries for their own.
   * A store with outboxes backfills a GSI as a command of its group only (startIndexCommand).
   */
  backfillIndex(table: TableSchema, indexName: string, bound?: PartitionBound): Promise<void> {
    const index = requireIndex(table, indexName);
    if (this.indexOutbox && index.kind === 'GSI') throw new TypeError('a store with index outboxes backfills a GSI within its group\'s command (startIndexCommand)');
    const runKey = `${index.indexId}/${bound === undefined ? '' : mapKey(bound.start)}`;
    const running = this.runningBackfills.get(runKey);
    if (running) return running.done;
    const overlapping = [...this.runningBackfills.values()].filter((other) => other.indexId === index.indexId && overlaps(other.bound, bound));
    const run: BackfillRun = { indexId: index.indexId, bound, cancelled: false, done: Promise.resolve() };
    // Started at once when nothing overlaps: it takes the commit lock before any later drop does.
    const started =
      overlapping.length === 0
        ? this.runBackfill(table, index, bound)
        : Promise.all(overlapping.map((other) => other.done.catch(() => undefined))).then(() => (run.cancelled ? undefined : this.runBackfill(table, index, bound)));
    run.done = started.finally(() => this.runningBackfills.delete(runKey));
    this.runningBackfills.set(runKey, run);
    return run.done;
  }

  /**
   * Starts over from an empty index (a backfill interrupted by a restart left a partial one), then
   * adds the entries of the table's items chunk by chunk, each chunk one batch under the commit lock.
   */
  private async runBackfill(table: TableSchema, index: IndexSchema, bound: PartitionBound | undefined): Promise<void> {
    const items = clampRange(spaceRange(table.tableId), bound);
    const backfill: Backfill = { bound, cursor: items.start };
    await this.commits.exclusive(async () => {
      const running = this.backfills.get(index.indexId) ?? new Set<Backfill>();
      running.add(backfill);
      this.backfills.set(index.indexId, running);
      return { result: undefined, mutations: [] };
    });
    await this.clearEntries(table, index, bound);
    for (let done = false; !done; ) {
      done = await this.commits.exclusive(async (state) => {
        const running = this.backfills.get(index.indexId);
        if (!running?.has(backfill)) return { result: true, mutations: [] }; // dropped meanwhile
        await state.durable();
        const entries = await this.level
          .iterator({ gte: backfill.cursor, lt: items.end, limit: MAINTENANCE_CHUNK })
          .all();
        const changes = new ChangeSet(state);
        for (const [key, value] of entries) changes.addEntry(table, index, key, decodeJson<Item>(value));
        const finished = entries.length < MAINTENANCE_CHUNK;
        if (finished) this.endBackfill(index.indexId, backfill);
        else backfill.cursor = keyAfter(entries[entries.length - 1][0]);
        return { result: finished, mutations: changes.finish(this.statisticsBook) };
      });
    }
  }

  private endBackfill(indexId: number, backfill: Backfill): void {
    const running = this.backfills.get(indexId);
    running?.delete(backfill);
    if (running?.size === 0) this.backfills.delete(indexId);
  }

  /** Deletes the index's entries (those of the items in `bound` only, with one). */
  async dropIndex(table: TableSchema, indexName: string, bound?: PartitionBound): Promise<void> {
    await this.dropIndexEntries(table, requireIndex(table, indexName), bound);
  }

  async dropTable(table: TableSchema): Promise<void> {
    for (const index of this.localIndexes(table)) await this.dropIndexEntries(table, index, undefined);
    await this.clearSpace(table.tableId);
  }

  /**
   * Deletes a partition replica's data: the table's items in `bound` and their index entries. With
   * `groupId`, the replica group's applied index (and its running index commands) go too, so that a
   * replica of the group created here again later applies its log from the start, and so do its GSI
   * outbox, next seq and cursors (without its next seq, a move of its parent's records skips it here).
   */
  async dropPartitionData(table: TableSchema, bound: PartitionBound, groupId?: number): Promise<void> {
    for (const index of this.localIndexes(table)) await this.dropIndexEntries(table, index, bound);
    await this.clearRange(table.tableId, clampRange(spaceRange(table.tableId), bound));
    if (groupId !== undefined) {
      await this.finishIndexOutboxMoveHere(groupId);
      // A half still receiving its parent's records here keeps its splits: the move routes records
      // of its own halves (perhaps held here) by them. A few keys, left behind.
      // Read under the lock that deletes them: a parent's move step applied in between would write
      // records into this group (still held) that the delete then missed.
      await this.commits.exclusive(async (state) => {
        await state.durable();
        const splits = outboxSplitsRange(groupId);
        const routes = await this.awaitsIndexOutboxMove(groupId);
        const owned = [runningIndexCommandsRange(groupId), ...indexOutboxRanges(groupId).filter((range) => !routes || compareBytes(range.start, splits.start) !== 0)];
        const records = (await Promise.all(owned.map((range) => this.level.keys({ gte: range.start, lt: range.end }).all()))).flat();
        this.outboxBacklogs.forget(groupId);
        return { result: undefined, mutations: [appliedIndexKey(groupId), ...records].map((key): Mutation => ({ key, value: undefined })) };
      });
      this.wakeBackfillWaiters();
    }
  }

  /**
   * Stops the index's backfills in `bound` (under the lock, so they see that at their next chunk), then
   * deletes its entries there. With outboxes a GSI's entries are not the base partition's: they stay.
   */
  private async dropIndexEntries(table: TableSchema, index: IndexSchema, bound: PartitionBound | undefined): Promise<void> {
    await this.commits.exclusive(async () => {
      this.stopBackfills(index.indexId, bound);
      return { result: undefined, mutations: [] };
    });
    if (this.indexOutbox && index.kind === 'GSI') return;
    await this.clearEntries(table, index, bound);
  }

  /** The indexes whose entries a table's partitions keep in this store: all, or the LSIs only with outboxes. */
  private localIndexes(table: TableSchema): IndexSchema[] {
    return this.indexOutbox ? table.indexes.filter((index) => index.kind === 'LSI') : table.indexes;
  }

  /** The change set of a command of `mark`'s group (with outboxes, its GSI changes become the group's outbox records). */
  private changeSet(state: StateReader, mark: AppliedMark | undefined): ChangeSet {
    if (!this.indexOutbox) return new ChangeSet(state);
    if (mark === undefined) throw new TypeError('a store with index outboxes writes only commands of a replica group (an applied mark)');
    return new ChangeSet(state, new OutboxWriter(state, mark.groupId, this.outboxBacklogs));
  }

  /** Ends the index's backfills over `bound`; runs still waiting for their turn do not start. Under the commit lock. */
  private stopBackfills(indexId: number, bound: PartitionBound | undefined): void {
    for (const backfill of this.backfills.get(indexId) ?? []) {
      if (overlaps(bound, backfill.bound)) this.endBackfill(indexId, backfill);
    }
    for (const run of this.runningBackfills.values()) {
      if (run.indexId === indexId && overlaps(bound, run.bound)) run.cancelled = true;
    }
  }

  /**
   * Opens a consistent read of one partition replica's state now, for a snapshot of its group
   * (partition-snapshot.ts: call it while no command of the group is being applied); the function
   * returned reads it.
   */
  openPartitionSnapshot(scope: PartitionScope): () => Promise<PartitionSnapshotStream> {
    // A split half still awaiting moved outbox records here would send an outbox without them.
    const complete = async (snapshot: AbstractSnapshot): Promise<void> => {
      if (await this.awaitsIndexOutboxMove(scope.groupId, { snapshot })) throw new OutboxMoveUnderWayError(scope.groupId);
    };
    return openPartitionSnapshot(this.level, scope, { coLocatedGsis: !this.indexOutbox }, this.indexOutbox ? complete : undefined);
  }

  /** Makes every write completed so far durable on disk (partition-snapshot.ts syncToDisk). */
  syncToDisk(): Promise<void> {
    return syncToDisk(this.level);
  }

  /**
   * Replaces a partition replica's state (each scope of `replaced`) with a snapshot staged in a file,
   * in bounded batches behind a restore marker (partition-restore.ts), so that a crash part way is
   * completed when the store opens again; durably (synced) once it resolves, with the applied mark it
   * set: max(the snapshot data's, `snapshotIndex`). The replica's index backfills stop (the snapshot's running index commands
   * are the replica's to resume).
   */
  async restorePartitionSnapshot(replaced: readonly PartitionScope[], snapshot: CheckedPartitionSnapshot, snapshotIndex: number, options: { batchBytes?: number } = {}): Promise<number> {
    const stray = replaced.find((scope) => scope.groupId !== snapshot.groupId);
    if (stray !== undefined) throw new PartitionSnapshotFormatError(`a snapshot of group ${snapshot.groupId} cannot replace group ${stray.groupId}`);
    // The outbox records this replica still had to move go first: the snapshot's outbox may lack them (moved on the sender).
    await this.finishIndexOutboxMoveHere(snapshot.groupId);
    const applied = await runPartitionRestore(this.restoreTarget(), { scopes: replaced, snapshot, snapshotIndex }, options.batchBytes);
    // Synced: the log then records the snapshot, and its staged file goes (no log replays a restore).
    await this.syncToDisk();
    await this.commits.exclusive(async (state) => {
      await state.durable();
      await this.outboxBacklogs.recount(this.level, snapshot.groupId);
      return { result: undefined, mutations: [] };
    });
    this.startedBackfills += 1;
    this.wakeBackfillWaiters();
    return applied;
  }

  /**
   * Completes the restores a crash interrupted (their markers name their staged files): to call once
   * the store opens, before anything else reads or writes it. Answers their groups.
   */
  async finishInterruptedRestores(): Promise<number[]> {
    const restores = await readRestoreMarkers(this.level);
    for (const restore of restores) await runPartitionRestore(this.restoreTarget(), restore);
    // Synced, as a restore is: whoever staged the files may delete them once the store is open.
    if (restores.length > 0) await this.syncToDisk();
    return restores.map((restore) => restore.snapshot.groupId);
  }

  private restoreTarget(): RestoreTarget {
    return {
      level: this.level,
      scopeOptions: { coLocatedGsis: !this.indexOutbox },
      batch: (plan) =>
        this.commits.exclusive(async (state) => {
          await this.intents.load(state);
          await state.durable();
          const mutations = plan({
            stopBackfills: ({ table, bound }) => {
              for (const index of table.indexes) this.stopBackfills(index.indexId, bound);
            },
            releaseIntents: (bound) => this.intents.transactions().flatMap(({ transaction }) => this.intents.release(transaction.id, bound)),
            putIntents: (intents) => this.intents.put(intents),
            adjustStatistics: (spaceId, delta) => {
              const current = this.statisticsBook.current(spaceId, state);
              return this.statisticsBook.record(spaceId, { itemCount: current.itemCount + delta.itemCount, sizeBytes: current.sizeBytes + delta.sizeBytes });
            },
          });
          return { result: undefined, mutations };
        }),
    };
  }

  /** Deletes an index's entries: all of them, or those whose base item lies in `bound`. */
  private clearEntries(table: TableSchema, index: IndexSchema, bound: PartitionBound | undefined): Promise<void> {
    if (bound === undefined) return this.clearSpace(index.indexId);
    return this.clearRange(index.indexId, indexEntriesRange(table, index, bound), (entry) => entryInBound(table, bound, entry));
  }

  /**
   * Deletes the entries of `range` (within one space) that `belongs` accepts (all without it), in
   * bounded batches, taking them off the space's statistics in the same batch: other partitions'
   * entries in the space stay, and so do their counts.
   */
  private async clearRange(spaceId: number, range: KeyRange, belongs?: (entry: Item) => boolean): Promise<void> {
    let after: Uint8Array | undefined;
    for (let done = false; !done; ) {
      done = await this.commits.exclusive(async (state) => {
        await state.durable();
        const entries = await this.level
          .iterator({ ...(after === undefined ? { gte: range.start } : { gt: after }), lt: range.end, limit: MAINTENANCE_CHUNK })
          .all();
        const mutations: Mutation[] = [];
        let itemCount = 0;
        let sizeBytes = 0;
        for (const [key, value] of entries) {
          const entry = decodeJson<Item>(value);
          if (belongs !== undefined && !belongs(entry)) continue;
          mutations.push({ key, value: undefined });
          itemCount += 1;
          sizeBytes += itemSize(entry);
        }
        if (itemCount > 0) {
          const current = this.statisticsBook.current(spaceId, state);
          mutations.push(this.statisticsBook.record(spaceId, { itemCount: current.itemCount - itemCount, sizeBytes: current.sizeBytes - sizeBytes }));
        }
        const finished = entries.length < MAINTENANCE_CHUNK;
        if (!finished) after = entries[entries.length - 1][0];
        return { result: finished, mutations };
      });
    }
  }

  /** Deletes every entry of a space and its statistics, in bounded batches. */
  private async clearSpace(spaceId: number): Promise<void> {
    const range = spaceRange(spaceId);
    for (let done = false; !done; ) {
      done = await this.commits.exclusive(async (state) => {
        await state.durable();
        const keys = await this.level.keys({ gte: range.start, lt: range.end, limit: MAINTENANCE_CHUNK }).all();
        const mutations: Mutation[] = keys.map((key) => ({ key, value: undefined }));
        const finished = keys.length < MAINTENANCE_CHUNK;
        if (finished) mutations.push(this.statisticsBook.reset(spaceId));
        return { result: finished, mutations };
      });
    }
  }
}


/**
 * A stored item, parsed and measured only when asked: a GetItem without projection or consumed
 * capacity answers with the JSON text alone. A size measured is kept with the cached text, so the
 * next reads of the item reporting consumed capacity neither parse nor measure it.
 */
function foundItem(stored: StoredItem): FoundItem {
  return {
    json: stored.json,
    get item(): Item {
      return stored.item;
    },
    get size(): number {
      return stored.size;
    },
  };
}

function appliedMutation(mark: AppliedMark): Mutation {
  const value = new Uint8Array(8);
  new DataView(value.buffer).setFloat64(0, mark.index, false);
  return { key: appliedIndexKey(mark.groupId), value };
}

/** Reads of read-only transactions a write goes through, marked wounded, stored with the write. */
type WoundedReads = ReturnType<IntentIndex['wounds']>;

/** An outbox record as a GSI partition receives it. */
export interface ShippedIndexRecord extends IndexEntryChange {
  seq: number;
  itemKey: Uint8Array;
}

/** Records of `sourceGroupId` for items at or beyond `fromKey` are not that source's any more (it split: they moved to a half). */
export interface SourceFence {
  sourceGroupId: number;
  fromKey: Uint8Array;
}

/** What a GSI partition did with shipped records: applied those past its cursor, skipped the others; or refused them all. */
export interface AppliedIndexEntries {
  status: 'applied' | 'outOfRange';
  applied: number;
  skipped: number;
}

/** What a transaction's resolve found in a partition. */
export interface ResolvedIntents {
  intents: number;
  /** Reads a write went through meanwhile: the read-only transaction did not read at one instant. */
  wounded: number;
}

/** How a write's operation meets intents: a condition check only reads its item. */
function accessOf(operation: WriteOperation): IntentAccess {
  return operation.kind === 'ConditionCheck' ? 'check' : 'write';
}

/** A write refused: nothing is written, and operations that would have succeeded say only that. */
function refused(outcomes: WriteOutcome[]): PartitionWriteResult {
  return { applied: false, outcomes: outcomes.map((outcome): WriteOutcome => (outcome.status === 'ok' ? { status: 'ok' } : outcome)) };
}

function invalid(message: string): WriteOutcome {
  return { status: 'invalid', message };
}

function requireIndex(table: TableSchema, indexName: string): IndexSchema {
  const index = findIndex(table, indexName);
  if (!index) throw validationError(`The table does not have the specified index: ${indexName}`);
  return index;
}

/** The smallest key greater than `key`. */
function keyAfter(key: Uint8Array): Uint8Array {
  const after = new Uint8Array(key.length + 1);
  after.set(key, 0);
  return after;
}

function nextItem(operation: WriteOperation, existing: Item | undefined, update: CompiledUpdate | undefined): Item | undefined {
  switch (operation.kind) {
    case 'Put':
      if (!operation.item) throw validationError('A Put operation needs an item');
      return operation.item;
    case 'Update':
      // UpdateItem without an update expression still creates the item, with its key only (one that
      // only removes creates none: update.apply answers undefined).
      return update ? update.apply(existing, operation.key) : (existing ?? { ...operation.key });
    case 'Delete':
      return undefined;
    case 'ConditionCheck':
      return existing;
  }
}

/** Why `next` (of `size` bytes) cannot be stored, in DynamoDB's words, or undefined when it can. */
function checkNewItem(table: TableSchema, operation: WriteOperation, next: Item, size: number, update: CompiledUpdate | undefined): string | undefined {
  if (size > MAX_ITEM_SIZE) {
    return operation.kind === 'Update'
      ? 'Item size to update has exceeded the maximum allowed size'
      : 'Item size has exceeded the maximum allowed size';
  }
  for (const attribute of spaceKeyAttributes(table)) {
    const value = getOwn(next, attribute.name);
    if (value === undefined || !attributeValuesEqual(value, operation.key[attribute.name])) {
      return `One or more parameter values were invalid: Cannot update attribute ${attribute.name}. This attribute is part of the key`;
    }
  }
  for (const index of table.indexes) {
    for (const attribute of index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey]) {
      const value = getOwn(next, attribute.name);
      if (value === undefined) continue;
      const actual = Object.keys(value)[0];
      if (actual !== attribute.type) {
        // An update that gives an index key a value read from the item (SET c = e) has DynamoDB's
        // own message (dynalite's UpdateItem tests, captured from DynamoDB).
        if (operation.kind === 'Update' && update?.staticTypeOf(attribute.name) === undefined) {
          return 'The update expression attempted to update the secondary index key to unsupported type';
        }
        return `One or more parameter values were invalid: Type mismatch for Index Key ${attribute.name} Expected: ${attribute.type} Actual: ${actual} IndexName: ${index.name}`;
      }
      const emptyString = 'S' in value && value.S === '';
      if (emptyString || ('B' in value && value.B === '')) {
        return `One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty ${emptyString ? 'string' : 'binary'} value. IndexName: ${index.name}, IndexKey: ${attribute.name}`;
      }
    }
  }
  return undefined;
}
