/**
 * The storage node's gRPC PartitionService: serves the partitions whose replicas this node's
 * MultiRaftHost runs (partition id = Raft group id), registered on the node's one gRPC server.
 *
 * Routing (contracts #8): every request names a partition and the epoch it was routed with, checked
 * against the node's own view of the map before anything else. A partition the node does not know or
 * host answers PartitionNotFound; an older epoch StaleEpoch, and a key outside the partition's range
 * KeyOutOfRange, both with the current descriptor so the router updates its map; a newer epoch means
 * the node's map is behind: UNAVAILABLE (retry), and the node is told.
 *
 * Every replica of the node shares one store, so each request is served within its partition's
 * bound: table reads stop at the range, index entries of other partitions' items are skipped.
 *
 * Write, BackfillIndex, DropIndex: only the group's leader proposes (the index commands go through
 * the log like writes; DropIndex answers once run on the leader, BackfillIndex once its GSI records
 * are applied or its wait_ms passed); any other replica answers FAILED_PRECONDITION with a NotLeader
 * detail carrying the leader it knows of, as does a leader that stops leading while BackfillIndex waits.
 * Get / ReadRange: a consistent read first passes the group's ReadIndex (linearizable on any replica),
 * an eventual read is served from this replica's store at once, whatever its role; one naming a
 * `minAppliedIndex` (read-your-writes: the router's own writes) first waits, briefly, until reads of
 * the replica see that index, else answers FAILED_PRECONDITION + ReplicaBehind (the router then asks
 * the leader). Every acknowledged write answers the index reads of its leader see (`appliedIndex`).
 * Statistics: any replica, counted over its partition.
 *
 * GSI partitions (descriptor.tableId is a GSI's space id: asynchronous GSIs, @shoal/storage
 * index-outbox.ts): ReadRange and Statistics name the base table's schema and the GSI as index, and
 * are served from the partition's range of the index space; ApplyIndexEntries (the shipped outbox
 * records of a base partition) is proposed by the leader like a write, every entry key checked
 * against the range first, under the GSI partition's admission control (a refusal only delays the
 * records: the shipper keeps them and retries), its records counted as the partition's write load.
 *
 * GSI back-pressure: while a base partition's outbox holds `indexOutboxLimit` records or more (its
 * GSI partitions do not keep up, or cannot be reached), its leader refuses new writes and transaction
 * prepares of tables with a GSI with DynamoDB's ProvisionedThroughputExceededException, before
 * proposing them, as DynamoDB throttles a table's writes when a GSI falls behind. Everything that
 * drains or finishes (reads, writes of tables without GSIs, trims, resolves of prepared
 * transactions, backfill chunks) goes on.
 *
 * Refused requests (undecodable, not routable) are logged as one structured line each. A frame that
 * is not protobuf at all is refused by the gRPC adapter (INVALID_ARGUMENT) before it reaches here.
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  DynamoDbError,
  encodeCollectionPrefix,
  encodeItemKey,
  getOwn,
  partitionContains,
  prefixEnd,
  rangesOverlap,
  spaceRange,
  validationError,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type PartitionDescriptor,
  type PartitionWrite,
  type PartitionWriteResult,
  type TableSchema,
} from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Status,
  addService,
  applyIndexEntriesRequestFromWire,
  backfillIndexRequestFromWire,
  dropIndexRequestFromWire,
  decodeGetManyRequest,
  decodeGetRequest,
  decodeWriteManyRequest,
  decodeWriteRequest,
  dynamoDbErrorToRpc,
  encodeGetManyResponse,
  encodeGetResponse,
  encodeWriteManyResponse,
  encodeWriteResponse,
  getRequestFromWire,
  partitionDescriptorToWire,
  rangeReadRequestFromWire,
  rangeReadResultToWire,
  statisticsRequestFromWire,
  statisticsToWire,
  writeRequestFromWire,
  writeResultToWire,
  writeManyRequestFromWire,
  getManyRequestFromWire,
  prepareTransactionRequestFromWire,
  resolveTransactionRequestFromWire,
  beginTransactionRequestFromWire,
  decideTransactionRequestFromWire,
  forgetTransactionRequestFromWire,
  transactionStateToWire,
  type GetResult,
  type IndexRequest,
  type BackfillIndexRequest,
  type PartitionReadOptions,
  type RoutedTo,
  type Server,
} from '@shoal/proto';
import { partitionBound } from '@shoal/storage';
import { GroupNotHostedError, NotLeaderError, ProposalOutcomeUnknownError, RaftTimeoutError, type MultiRaftHost } from '../host/index.ts';
import { indexBacklogThrottled, recordGet, recordIndexEntries, recordRangeRead, recordWrite, type Access, type NodeLoad, type PartitionLoadTracker } from '../load/index.ts';
import {
  proposeBeginTransaction,
  proposeDecideTransaction,
  proposeForgetTransaction,
  proposeIndexCommand,
  proposeIndexCommandApplied,
  proposeIndexEntries,
  proposePartitionSplit,
  SplitRefusedError,
  WriteOutOfRangeError,
  proposePartitionWrite,
  proposePartitionWrites,
  proposePrepareTransaction,
  proposeResolveTransaction,
  type PartitionReplica,
} from '../partition/index.ts';

/** Where refused requests are logged (the node's structured log fits). */
export interface StorageNodeServerLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface StorageNodeServerOptions {
  /** The node's gRPC server: PartitionService is added to it; its owner listens and shuts it down. */
  server: Server;
  host: MultiRaftHost;
  /** This node's replica of a partition, or undefined when it holds none. */
  replicaOf(partitionId: number): PartitionReplica | undefined;
  /** The partition's descriptor in this node's view of the map, or undefined when the view has none (deleted, or not seen yet). */
  descriptorOf(partitionId: number): PartitionDescriptor | undefined;
  /** The gRPC address of a node, for the NotLeader hint (absent: the hint carries the id only). */
  nodeAddress?(nodeId: NodeId): string | undefined;
  /** A request carried a newer epoch than this node's map has: the map is behind, worth refreshing. */
  onMapBehind?(partitionId: number, epoch: bigint): void;
  /** Default: one JSON object a line on stderr. */
  log?: StorageNodeServerLog;
  /** Load tracking and admission control of the partitions served (absent: neither). */
  load?: NodeLoad;
  /**
   * A base partition's outbox records (not yet trimmed) at which its leader refuses writes of tables
   * with a GSI (GSI back-pressure). Absent: no limit.
   */
  indexOutboxLimit?: number;
  /** The table and GSI of an index space in this node's view (a GSI partition's names, for its throttling answers). */
  gsiOf?(spaceId: number): { table: TableSchema; index: IndexSchema } | undefined;
  /** TEST ONLY (fault injection): requests refused on purpose. */
  faults?: PartitionServiceFaults;
  /**
   * How long an eventual read waits for its replica to apply its `minAppliedIndex` before answering
   * ReplicaBehind (never past the call's deadline). Default 100 ms: a follower is usually one
   * heartbeat behind, and the leader answers at once.
   */
  replicaWaitMs?: number;
}

/** TEST ONLY (fault injection, FaultInjectionService): requests the partition service refuses on purpose. */
export interface PartitionServiceFaults {
  /** ApplyIndexEntries answered UNAVAILABLE: the GSI partitions led here take no shipped records. */
  refuseIndexEntries: boolean;
}

/** Requests served per kind, counted when they succeed, and requests refused before being served. */
export interface StorageNodeServerStats {
  writes: number;
  consistentReads: number;
  eventualReads: number;
  statistics: number;
  indexCommands: number;
  /** Undecodable or misrouted (NotFound, StaleEpoch, KeyOutOfRange, map behind) requests. */
  refused: number;
  /** Refused by admission control (ProvisionedThroughputExceededException). */
  throttled: number;
  /** Of those, reads and writes (DynamoDB's reasons TableReadKeyRangeThroughputExceeded / TableWriteKeyRangeThroughputExceeded). */
  throttledReads: number;
  throttledWrites: number;
  /** Of those, ApplyIndexEntries calls (a GSI partition's IndexWriteKeyRangeThroughputExceeded): the shipper retries them. */
  throttledIndexEntries: number;
  /** Writes and transaction prepares refused because the partition's outbox is full (GSI back-pressure). */
  indexBacklogRefusals: number;
  /** Eventual reads (calls) that waited for their replica to apply their minAppliedIndex. */
  replicaWaits: number;
  /** Of those, refused with ReplicaBehind after the wait. */
  replicaBehind: number;
  /** Shipped GSI records this node's GSI partitions applied (as leader), and skipped as applied before. */
  indexEntriesApplied: number;
  indexEntriesSkipped: number;
}

/** A request's partition as this node holds it. */
interface Routed {
  replica: PartitionReplica;
  descriptor: PartitionDescriptor;
}

const DEFAULT_REPLICA_WAIT_MS = 100;
/** How often a BackfillIndex call looks at its backfill (and at the replica's leadership) while it waits. */
const BACKFILL_POLL_MS = 100;

/** The index an acknowledged write answers: what reads of its (leader's) replica see now, its own entry included. */
const visibleIndex = (replica: PartitionReplica): bigint => BigInt(replica.visibleIndex());

const stderrLog: StorageNodeServerLog = {
  warn(message, fields = {}) {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg: message, component: 'partition-service', ...fields })}\n`);
  },
};

export class StorageNodeServer {
  readonly stats: StorageNodeServerStats = {
    writes: 0,
    consistentReads: 0,
    eventualReads: 0,
    statistics: 0,
    indexCommands: 0,
    refused: 0,
    throttled: 0,
    throttledReads: 0,
    throttledWrites: 0,
    throttledIndexEntries: 0,
    indexBacklogRefusals: 0,
    replicaWaits: 0,
    replicaBehind: 0,
    indexEntriesApplied: 0,
    indexEntriesSkipped: 0,
  };
  readonly #options: StorageNodeServerOptions;
  readonly #log: StorageNodeServerLog;

  constructor(options: StorageNodeServerOptions) {
    this.#options = options;
    this.#log = options.log ?? stderrLog;
    addService(options.server, PartitionService, {
      // Cross-partition transactions: commands of the target partition's log, like writes.
      prepareTransaction: async (request, context) => {
        const { replica, transaction, write } = this.#admit('PrepareTransaction', context.peer, () => {
          const { target, transaction, write } = prepareTransactionRequestFromWire(request);
          const { replica, descriptor } = this.#route(target);
          for (const operation of write.operations) {
            checkTable(descriptor, operation.table);
            checkKey(descriptor, tableKey(operation.table, operation.key));
          }
          return { replica, transaction, write };
        });
        this.#admitIndexBacklog(replica, write);
        const result = await this.#answer(replica.groupId, () => proposePrepareTransaction(this.#options.host, replica.groupId, transaction, write));
        this.stats.writes++;
        return writeResultToWire(result, visibleIndex(replica));
      },
      resolveTransaction: async (request, context) => {
        const { replica, descriptor, id, commit } = this.#admit('ResolveTransaction', context.peer, () => {
          const { target, id, commit } = resolveTransactionRequestFromWire(request);
          return { ...this.#route(target), id, commit };
        });
        const resolved = await this.#answer(replica.groupId, () => proposeResolveTransaction(this.#options.host, descriptor, id, commit));
        return { ...resolved, appliedIndex: visibleIndex(replica) };
      },
      beginTransaction: async (request, context) => {
        const { replica, transaction, participants } = this.#admit('BeginTransaction', context.peer, () => {
          const { target, transaction, participants } = beginTransactionRequestFromWire(request);
          return { replica: this.#route(target).replica, transaction, participants };
        });
        const record = await this.#answer(replica.groupId, () =>
          proposeBeginTransaction(this.#options.host, replica.groupId, { id: transaction.id, state: 'PENDING', participants, deadline: transaction.deadline }),
        );
        return transactionStateToWire(record.state);
      },
      decideTransaction: async (request, context) => {
        const { replica, id, decision } = this.#admit('DecideTransaction', context.peer, () => {
          const { target, id, decision } = decideTransactionRequestFromWire(request);
          return { replica: this.#route(target).replica, id, decision };
        });
        return transactionStateToWire(await this.#answer(replica.groupId, () => proposeDecideTransaction(this.#options.host, replica.groupId, id, decision)));
      },
      forgetTransaction: async (request, context) => {
        const { replica, id } = this.#admit('ForgetTransaction', context.peer, () => {
          const { target, id } = forgetTransactionRequestFromWire(request);
          return { replica: this.#route(target).replica, id };
        });
        await this.#answer(replica.groupId, () => proposeForgetTransaction(this.#options.host, replica.groupId, id));
        return {};
      },
      readRange: async (request, context) => {
        const { replica, descriptor, range, options, gsi } = this.#admit('ReadRange', context.peer, () => {
          const { target, request: range, options } = rangeReadRequestFromWire(request);
          const { replica, descriptor } = this.#route(target);
          const gsi = gsiPartitionIndex(descriptor, range.table, range.indexName);
          if (gsi !== undefined) {
            // The GSI's item collection may span partitions (a split inside it): it must reach this one.
            if (range.hashValue !== undefined) checkCollectionOverlaps(descriptor, gsi, range.hashValue);
            return { replica, descriptor, range, options, gsi };
          }
          checkTable(descriptor, range.table);
          if (replica.store.hasIndexOutboxes) checkNotGsi(descriptor, range.table, range.indexName);
          const lsi = range.indexName !== undefined && range.table.indexes.find((index) => index.name === range.indexName)?.kind === 'LSI';
          // A table or LSI Query reads one item collection, which lies in one partition.
          if (range.hashValue !== undefined && (range.indexName === undefined || lsi)) checkKey(descriptor, collectionKey(range.table, range.hashValue));
          return { replica, descriptor, range, options, gsi };
        });
        const bound = partitionBound(descriptor);
        const tracker = this.#admitLoad(replica, 'read', range.table.name);
        const result = await this.#read(replica, options, context, () =>
          gsi === undefined ? replica.store.readRange(range, options, bound) : replica.store.readIndexPartition(range, bound),
        );
        if (tracker !== undefined) recordRangeRead(tracker, descriptor, range, options.consistent, result.bytesRead);
        return rangeReadResultToWire(result);
      },
      statistics: async (request, context) => {
        const { replica, descriptor, statistics, gsi } = this.#admit('Statistics', context.peer, () => {
          const { target, request: statistics } = statisticsRequestFromWire(request);
          const { replica, descriptor } = this.#route(target);
          const gsi = gsiPartitionIndex(descriptor, statistics.table, statistics.indexName);
          if (gsi === undefined) {
            checkTable(descriptor, statistics.table);
            if (replica.store.hasIndexOutboxes) checkNotGsi(descriptor, statistics.table, statistics.indexName);
          }
          return { replica, descriptor, statistics, gsi };
        });
        const result = await this.#answer(replica.groupId, () =>
          gsi === undefined
            ? replica.store.statistics(statistics.table, statistics.indexName, partitionBound(descriptor))
            : replica.store.indexPartitionStatistics(gsi, partitionBound(descriptor)),
        );
        this.stats.statistics++;
        return statisticsToWire(result);
      },
      splitPartition: async (request, context) => {
        const { replica, descriptor, rightId } = this.#admit('SplitPartition', context.peer, () => {
          if (request.target === undefined) throw new RpcError(Status.INVALID_ARGUMENT, 'invalid split: target partition missing');
          const rightId = Number(request.rightPartitionId);
          if (rightId < 1 || !Number.isSafeInteger(rightId)) throw new RpcError(Status.INVALID_ARGUMENT, `invalid split: right partition id ${request.rightPartitionId}`);
          return { ...this.#route({ partitionId: request.target.partitionId, epoch: request.target.epoch }), rightId };
        });
        const halves = await this.#answer(replica.groupId, () => proposePartitionSplit(this.#options.host, descriptor, request.splitKey, rightId));
        return { left: partitionDescriptorToWire(halves.left), right: partitionDescriptorToWire(halves.right) };
      },
      applyIndexEntries: async (request, context) => {
        const { replica, descriptor, batch } = this.#admit('ApplyIndexEntries', context.peer, () => {
          const { target, batch } = applyIndexEntriesRequestFromWire(request);
          const { replica, descriptor } = this.#route(target);
          for (const record of batch.records) {
            if (record.indexId !== descriptor.tableId) {
              throw new RpcError(Status.INVALID_ARGUMENT, `invalid partition request: partition ${descriptor.id} holds space ${descriptor.tableId}, not index space ${record.indexId}`);
            }
            checkKey(descriptor, record.entryKey);
          }
          return { replica, descriptor, batch };
        });
        if (this.#options.faults?.refuseIndexEntries === true) throw new RpcError(Status.UNAVAILABLE, `fault injected: partition ${replica.groupId} takes no index entries`);
        const gsi = this.#options.gsiOf?.(descriptor.tableId);
        const unknown = `space-${descriptor.tableId}`;
        const tracker = this.#admitLoad(replica, 'write', gsi?.table.name ?? unknown, gsi?.index.name ?? unknown);
        const fences = batch.fences.map((fence) => ({ sourceGroupId: fence.sourcePartitionId, fromKey: fence.fromKey }));
        const applied = await this.#answer(replica.groupId, () => proposeIndexEntries(this.#options.host, replica.groupId, batch.sourcePartitionId, batch.records, fences));
        if (tracker !== undefined) recordIndexEntries(tracker, batch.records);
        this.stats.indexEntriesApplied += applied.applied;
        this.stats.indexEntriesSkipped += applied.skipped;
        return { applied: applied.applied, skipped: applied.skipped };
      },
      backfillIndex: async (request, context) => {
        const { replica, request: index, waitMs } = this.#admit('BackfillIndex', context.peer, () => {
          const { waitMs, ...routed } = backfillIndexRequestFromWire(request);
          return { ...this.#routeIndexRequest(routed), waitMs };
        });
        const done = await this.#answer(replica.groupId, () => this.#backfill(replica, index, waitMs, context.signal));
        this.stats.indexCommands++;
        // Halves moved elsewhere were not waited for: the caller asks them.
        const halves = done && replica.store.indexOutbox ? await replica.store.splitHalvesOf(replica.groupId) : [];
        return { done, splitPartitionIds: halves.map(BigInt) };
      },
      dropIndex: async (request, context) => {
        const { replica, request: index } = this.#admit('DropIndex', context.peer, () => this.#routeIndexRequest(dropIndexRequestFromWire(request)));
        await this.#answer(replica.groupId, () => proposeIndexCommand(this.#options.host, replica.groupId, { kind: 'dropIndex', table: index.table, indexName: this.#requireIndex(index).name }));
        this.stats.indexCommands++;
        return {};
      },
    }, {
      // The hot calls, served on their bytes: requests decoded and answers encoded by hand (partition-answers.ts).
      write: async (bytes, context) => {
        const { replica, write, firstKey } = this.#admit('Write', context.peer, () => {
          const { target, write } = writeRequestFromWire(decodeWriteRequest(bytes));
          const { replica, descriptor } = this.#route(target);
          let firstKey: Uint8Array | undefined;
          for (const operation of write.operations) {
            checkTable(descriptor, operation.table);
            const key = tableKey(operation.table, operation.key);
            checkKey(descriptor, key);
            firstKey ??= key;
          }
          return { replica, write, firstKey };
        });
        this.#admitIndexBacklog(replica, write);
        const tracker = this.#admitLoad(replica, 'write', write.operations[0]?.table.name ?? '');
        const result = await this.#answer(replica.groupId, () => proposePartitionWrite(this.#options.host, replica.groupId, write));
        if (tracker !== undefined) recordWrite(tracker, write, result, firstKey);
        this.stats.writes++;
        return encodeWriteResponse(result, visibleIndex(replica));
      },
      // Coalesced writes: the call is routed as a whole; each write is checked and admitted on its own,
      // and those admitted are proposed as ONE entry (a failure to propose it fails the whole call).
      writeMany: async (bytes, context) => {
        const { replica, descriptor, writes } = this.#admit('WriteMany', context.peer, () => {
          const { target, writes } = writeManyRequestFromWire(decodeWriteManyRequest(bytes));
          return { ...this.#route(target), writes };
        });
        const results: Array<PartitionWriteResult | RpcError> = [];
        const admitted: Array<{ position: number; write: PartitionWrite; key: Uint8Array | undefined; tracker: PartitionLoadTracker | undefined }> = [];
        writes.forEach((write, position) => {
          const refusal = this.#own(replica.groupId, () => {
            const [operation] = write.operations;
            if (operation === undefined || write.operations.length !== 1) throw new RpcError(Status.INVALID_ARGUMENT, 'invalid partition request: a coalesced write has exactly one operation');
            checkTable(descriptor, operation.table);
            const key = tableKey(operation.table, operation.key);
            checkKey(descriptor, key);
            this.#admitIndexBacklog(replica, write);
            admitted.push({ position, write, key, tracker: this.#admitLoad(replica, 'write', operation.table.name) });
          });
          if (refusal instanceof RpcError) results[position] = refusal;
        });
        if (admitted.length > 0) {
          const outcomes = await this.#answer(replica.groupId, () => proposePartitionWrites(this.#options.host, replica.groupId, admitted.map((entry) => entry.write)));
          admitted.forEach(({ position, write, key, tracker }, at) => {
            const outcome = outcomes[at] as PartitionWriteResult | WriteOutOfRangeError;
            if (outcome instanceof WriteOutOfRangeError) {
              results[position] = this.#ownRpcFailure(replica.groupId, outcome);
              return;
            }
            if (tracker !== undefined) recordWrite(tracker, write, outcome, key);
            this.stats.writes++;
            results[position] = outcome;
          });
        }
        return encodeWriteManyResponse(results, visibleIndex(replica));
      },
      get: async (bytes, context) => {
        const { replica, get, options, key } = this.#admit('Get', context.peer, () => {
          const { target, request: get, options } = getRequestFromWire(decodeGetRequest(bytes));
          const { replica, descriptor } = this.#route(target);
          checkTable(descriptor, get.table);
          const key = tableKey(get.table, get.key);
          checkKey(descriptor, key);
          return { replica, get, options, key };
        });
        const tracker = this.#admitLoad(replica, 'read', get.table.name);
        const found = await this.#read(replica, options, context, () => replica.store.get(get, options));
        if (tracker !== undefined) recordGet(tracker, get.table, get.key, options.consistent, found?.size ?? 0, key);
        return encodeGetResponse(found);
      },
      // Coalesced gets: routed as a whole, one ReadIndex when consistent, each get checked, admitted and read on its own.
      getMany: async (bytes, context) => {
        const { replica, descriptor, gets, options } = this.#admit('GetMany', context.peer, () => {
          const { target, gets, options } = getManyRequestFromWire(decodeGetManyRequest(bytes));
          return { ...this.#route(target), gets, options };
        });
        const admitted = gets.map((get) =>
          this.#own(replica.groupId, () => {
            checkTable(descriptor, get.table);
            const key = tableKey(get.table, get.key);
            checkKey(descriptor, key);
            return { get, key, tracker: this.#admitLoad(replica, 'read', get.table.name) };
          }),
        );
        const results = await this.#read(replica, options, context, () =>
          Promise.all(
            admitted.map(async (entry): Promise<GetResult | RpcError> => {
              if (entry instanceof RpcError) return entry;
              const { get, key, tracker } = entry;
              try {
                const found = await replica.store.get(get, options);
                if (tracker !== undefined) recordGet(tracker, get.table, get.key, options.consistent, found?.size ?? 0, key);
                return found;
              } catch (error) {
                return this.#ownRpcFailure(replica.groupId, error);
              }
            }),
          ),
          gets.length,
        );
        return encodeGetManyResponse(results);
      },
    });
  }

  #routeIndexRequest<Request extends IndexRequest>({ target, request }: { target: RoutedTo; request: Request }): { replica: PartitionReplica; request: Request } {
    const { replica, descriptor } = this.#route(target);
    checkTable(descriptor, request.table);
    return { replica, request };
  }

  /** The index a request names; refused before anything enters the log (every replica would refuse it alike). */
  #requireIndex({ table, indexName }: IndexRequest): IndexSchema {
    const index = table.indexes.find((candidate) => candidate.name === indexName);
    if (index === undefined) throw validationError(`The table does not have the specified index: ${indexName}`);
    return index;
  }

  /**
   * A GSI backfill of the partition, answered done once the store's indexBackfillState says applied:
   * its walk ended (the halves it split into here included) AND every record of it was acknowledged
   * by the GSI partitions (trimmed from the outboxes). Proposed unless the store has it already (the
   * call again, or a new leader: it is in the log). Waits at most `waitMs`, then answers false (the
   * caller asks again). Checked before each look: a replica no longer leading, or removed, answers
   * NotLeader with the leader it knows (else the map's hint), so the caller follows the group. The
   * command carries the index's creation map version when the caller sent one (DeletedIndexes).
   */
  async #backfill(replica: PartitionReplica, request: BackfillIndexRequest, waitMs: number, signal: AbortSignal): Promise<boolean> {
    const { host } = this.#options;
    const { groupId } = replica;
    const index = this.#requireIndex(request);
    const { indexCreatedAtMapVersion } = request;
    const command = { kind: 'backfillIndex' as const, table: request.table, indexName: index.name, ...(indexCreatedAtMapVersion === undefined ? {} : { indexCreatedAtMapVersion }) };
    // Without outboxes (or not a GSI: an LSI comes with its table) the index is built in this store: run whole.
    if (index.kind !== 'GSI' || !replica.store.indexOutbox) {
      await proposeIndexCommand(host, groupId, command);
      return true;
    }
    const deadline = performance.now() + waitMs;
    let proposed = false;
    for (;;) {
      this.#requireLeading(groupId);
      const state = await replica.store.indexBackfillState(groupId, index.indexId);
      if (state === 'applied') return true;
      if (state === 'none' && !proposed) {
        await proposeIndexCommandApplied(host, groupId, command);
        proposed = true;
        continue;
      }
      if (performance.now() >= deadline || signal.aborted) return false;
      await delay(BACKFILL_POLL_MS);
    }
  }

  #requireLeading(groupId: number): void {
    const { host } = this.#options;
    const leader = host.leaderOf(groupId);
    if (leader === host.nodeId) return;
    throw new NotLeaderError(groupId, leader || (this.#options.descriptorOf(groupId)?.leaderHint ?? 0));
  }

  /**
   * Serves `requests` reads (a coalesced call: several) after one ReadIndex when consistent, or once
   * the replica shows the read's minAppliedIndex when eventual.
   */
  async #read<T>(replica: PartitionReplica, options: PartitionReadOptions, call: { readonly signal: AbortSignal }, read: () => Promise<T>, requests = 1): Promise<T> {
    const { consistent, minAppliedIndex } = options;
    const result = await this.#answer(replica.groupId, async () => {
      if (consistent) await this.#options.host.readIndex(replica.groupId);
      else if (minAppliedIndex !== undefined) await this.#awaitApplied(replica, minAppliedIndex, call);
      // Installing a snapshot, the replica's store holds part of it (bounded batches): behind any read.
      if (replica.restoring()) throw replicaBehind(replica, minAppliedIndex ?? BigInt(replica.visibleIndex()) + 1n);
      return read();
    });
    if (consistent) this.stats.consistentReads += requests;
    else this.stats.eventualReads += requests;
    return result;
  }

  /**
   * Waits (bounded by replicaWaitMs and the call's deadline) until reads of the replica see
   * `index`; still behind: ReplicaBehind, and nothing is served.
   */
  async #awaitApplied(replica: PartitionReplica, index: bigint, call: { readonly signal: AbortSignal }): Promise<void> {
    const wanted = index > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(index);
    if (replica.visibleIndex() >= wanted) return;
    this.stats.replicaWaits++;
    // The signal (made on first use) aborts when the caller cancels or its deadline passes.
    if (await replica.awaitVisible(wanted, this.#options.replicaWaitMs ?? DEFAULT_REPLICA_WAIT_MS, call.signal)) return;
    this.stats.replicaBehind++;
    throw replicaBehind(replica, index);
  }

  /**
   * The partition's load tracker, once its admission control let the request in (else DynamoDB's
   * throttling error); `indexName`: a GSI partition taking shipped entries.
   */
  #admitLoad(replica: PartitionReplica, access: Access, tableName: string, indexName?: string): PartitionLoadTracker | undefined {
    const tracker = this.#options.load?.of(replica.groupId);
    try {
      tracker?.admit(access, tableName, indexName);
    } catch (error) {
      if (!(error instanceof DynamoDbError)) throw error;
      this.stats.throttled++;
      if (indexName !== undefined) this.stats.throttledIndexEntries++;
      else if (access === 'read') this.stats.throttledReads++;
      else this.stats.throttledWrites++;
      throw dynamoDbErrorToRpc(error);
    }
    return tracker;
  }

  /**
   * GSI back-pressure: a write (or transaction prepare) of a table with a GSI is refused while the
   * partition's outbox holds `indexOutboxLimit` records or more, on its leader (a follower's
   * proposal answers NotLeader), before it is proposed. The write is not evaluated: a table with a
   * GSI is enough, as a cheap check on every write must be. The backlog is the store's count kept
   * in memory (no read).
   */
  #admitIndexBacklog(replica: PartitionReplica, write: PartitionWrite): void {
    const limit = this.#options.indexOutboxLimit;
    if (limit === undefined || replica.store.indexOutboxBacklog(replica.groupId) < limit) return;
    const indexed = write.operations.find((operation) => operation.table.indexes.some((index) => index.kind === 'GSI'));
    const { host } = this.#options;
    if (indexed === undefined || host.leaderOf(replica.groupId) !== host.nodeId) return;
    this.stats.indexBacklogRefusals++;
    throw dynamoDbErrorToRpc(indexBacklogThrottled(indexed.table));
  }

  /** This node's replica of the partition a request targets, if the request's routing is current. */
  #route(target: RoutedTo): Routed {
    const id = target.partitionId;
    if (id === 0n || id > MAX_SAFE_ID) throw partitionNotFound(id);
    const partitionId = Number(id);
    const descriptor = this.#options.descriptorOf(partitionId);
    const replica = this.#options.replicaOf(partitionId);
    // A replica created empty that its group has not taken in yet holds none of the partition's data
    // (a split half cannot take new members at all before partition snapshots exist).
    if (descriptor === undefined || replica === undefined || !this.#options.host.hasMembers(partitionId)) throw partitionNotFound(id);
    const epoch = BigInt(descriptor.epoch);
    if (target.epoch < epoch) {
      throw routingError(`partition ${partitionId} is at epoch ${epoch}, the request was routed at epoch ${target.epoch}`, 'staleEpoch', descriptor);
    }
    if (target.epoch > epoch) {
      this.#options.onMapBehind?.(partitionId, target.epoch);
      throw new RpcError(Status.UNAVAILABLE, `partition ${partitionId}: this node knows epoch ${epoch}, the request was routed at epoch ${target.epoch}; its map is behind, retry`);
    }
    return { replica, descriptor };
  }

  /** Runs `work` for a group, answering its failures with the gRPC error the router acts on. */
  async #answer<T>(groupId: number, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw this.#rpcFailure(groupId, error);
    }
  }

  /** A failure of a group's request as the gRPC error the router acts on (anything unforeseen as is, logged). */
  #rpcFailure(groupId: number, error: unknown): unknown {
    if (error instanceof RpcError) return error;
    if (error instanceof NotLeaderError) return this.#notLeader(error);
    if (error instanceof GroupNotHostedError) return partitionNotFound(BigInt(groupId));
    if (error instanceof RaftTimeoutError || error instanceof ProposalOutcomeUnknownError) return new RpcError(Status.UNAVAILABLE, error.message);
    // A split applied before the write did: the router follows the partition's new range.
    if (error instanceof WriteOutOfRangeError) {
      const current = this.#options.descriptorOf(groupId);
      return current === undefined ? partitionNotFound(BigInt(groupId)) : routingError(error.message, 'keyOutOfRange', current);
    }
    if (error instanceof SplitRefusedError) return new RpcError(Status.ABORTED, error.message);
    if (error instanceof DynamoDbError) return dynamoDbErrorToRpc(error);
    // Answered INTERNAL by the adapter; the node goes on serving, and its log says what failed.
    this.#log.warn('partition request failed', { event: 'partition_request_failed', partition: groupId, error: error instanceof Error ? error.message : String(error) });
    return error;
  }

  /**
   * One request of a coalesced call: `work`'s value, or its refusal as the RpcError it would have
   * failed with alone; a failure that is no request's own (unforeseen) fails the whole call.
   */
  #own<T>(groupId: number, work: () => T): T | RpcError {
    try {
      return work();
    } catch (error) {
      return this.#ownRpcFailure(groupId, error);
    }
  }

  #ownRpcFailure(groupId: number, error: unknown): RpcError {
    const failure = this.#rpcFailure(groupId, error);
    if (!(failure instanceof RpcError)) throw failure;
    if (failure.detail(ErrorDetailSchema)?.kind.case !== 'dynamodb') this.stats.refused++;
    return failure;
  }

  /**
   * Decodes and routes a request (synchronously, before anything is served): a request refused there
   * (undecodable, misrouted) is counted and logged as one line, then answered with its error.
   */
  #admit<T>(method: string, peer: string, admit: () => T): T {
    try {
      return admit();
    } catch (error) {
      if (error instanceof RpcError) {
        this.stats.refused++;
        this.#log.warn('partition request refused', {
          event: 'partition_request_refused',
          method,
          peer,
          code: Status[error.code],
          detail: error.detail(ErrorDetailSchema)?.kind.case ?? null,
          error: error.message,
        });
      }
      throw error;
    }
  }

  #notLeader(error: NotLeaderError): RpcError {
    const leader = error.leader === 0 ? undefined : { id: BigInt(error.leader), address: this.#options.nodeAddress?.(error.leader) ?? '' };
    return RpcError.withDetail(Status.FAILED_PRECONDITION, error.message, ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId: BigInt(error.groupId), leader } },
    });
  }
}

const MAX_SAFE_ID = BigInt(Number.MAX_SAFE_INTEGER);

function partitionNotFound(partitionId: bigint): RpcError {
  return RpcError.withDetail(Status.NOT_FOUND, `partition ${partitionId} is not hosted on this node`, ErrorDetailSchema, {
    kind: { case: 'partitionNotFound', value: { partitionId } },
  });
}

function routingError(message: string, kind: 'staleEpoch' | 'keyOutOfRange', current: PartitionDescriptor): RpcError {
  return RpcError.withDetail(Status.FAILED_PRECONDITION, message, ErrorDetailSchema, {
    kind: { case: kind, value: { current: partitionDescriptorToWire(current) } },
  });
}

/** A request for another table than the partition's is a caller's bug, not stale routing. */
function checkTable(descriptor: PartitionDescriptor, table: TableSchema): void {
  if (table.tableId !== descriptor.tableId) {
    throw new RpcError(Status.INVALID_ARGUMENT, `invalid partition request: partition ${descriptor.id} holds table space ${descriptor.tableId}, not ${table.tableId} (${table.name})`);
  }
}

/** The GSI of `table` named `indexName` when the partition holds its entries (a GSI partition), else undefined. */
function gsiPartitionIndex(descriptor: PartitionDescriptor, table: TableSchema, indexName: string | undefined): IndexSchema | undefined {
  if (indexName === undefined || descriptor.tableId === table.tableId) return undefined;
  const index = table.indexes.find((candidate) => candidate.name === indexName);
  return index?.kind === 'GSI' && index.indexId === descriptor.tableId ? index : undefined;
}

/**
 * With index outboxes a base partition holds no GSI entries (asynchronous GSIs: they have partitions
 * of their own, and the index space here holds those GSI partitions' entries): a GSI read sent to it
 * is a caller's bug. (A store without outboxes keeps them with their items, as node tests use it.)
 */
function checkNotGsi(descriptor: PartitionDescriptor, table: TableSchema, indexName: string | undefined): void {
  if (indexName === undefined || table.indexes.find((index) => index.name === indexName)?.kind !== 'GSI') return;
  throw new RpcError(Status.INVALID_ARGUMENT, `invalid partition request: partition ${descriptor.id} holds table space ${descriptor.tableId}; GSI ${indexName} is read from its own partitions`);
}

/** Refuses a GSI Query whose item collection has no key in the partition's range. */
function checkCollectionOverlaps(descriptor: PartitionDescriptor, index: IndexSchema, hashValue: AttributeValue): void {
  const start = encodable(() => encodeCollectionPrefix(index.indexId, hashValue));
  if (start === undefined) return;
  const end = prefixEnd(start) ?? spaceRange(index.indexId).end;
  if (rangesOverlap(descriptor.startKey, descriptor.endKey, start, end)) return;
  throw routingError(`the index key lies outside partition ${descriptor.id}'s range`, 'keyOutOfRange', descriptor);
}

/** Refuses a key outside the partition's range (undefined: a key the store will refuse itself). */
function checkKey(descriptor: PartitionDescriptor, key: Uint8Array | undefined): void {
  if (key === undefined || partitionContains(descriptor, key)) return;
  throw routingError(`the key lies outside partition ${descriptor.id}'s range`, 'keyOutOfRange', descriptor);
}

/**
 * The encoded key of a table item, or undefined when `key` does not make one (a missing or non-key
 * value): such a request is refused by the store with DynamoDB's own message.
 */
function tableKey(table: TableSchema, key: Item): Uint8Array | undefined {
  const hash = getOwn(key, table.hashKey.name);
  const range = table.rangeKey === undefined ? undefined : getOwn(key, table.rangeKey.name);
  if (hash === undefined || (table.rangeKey !== undefined && range === undefined)) return undefined;
  return encodable(() => (range === undefined ? encodeItemKey(table.tableId, hash) : encodeItemKey(table.tableId, hash, range)));
}

function collectionKey(table: TableSchema, hashValue: AttributeValue): Uint8Array | undefined {
  return encodable(() => encodeCollectionPrefix(table.tableId, hashValue));
}

function encodable(encode: () => Uint8Array): Uint8Array | undefined {
  try {
    return encode();
  } catch (error) {
    if (error instanceof TypeError) return undefined;
    throw error;
  }
}

/** ReplicaBehind: the replica's reads do not see `index` yet; the router reads from the leader. */
function replicaBehind(replica: PartitionReplica, index: bigint): RpcError {
  const applied = BigInt(replica.visibleIndex());
  return RpcError.withDetail(
    Status.FAILED_PRECONDITION,
    `partition ${replica.groupId}: this replica has applied index ${applied}, the read asks for ${index}; read from the leader`,
    ErrorDetailSchema,
    { kind: { case: 'replicaBehind', value: { partitionId: BigInt(replica.groupId), appliedIndex: applied, minAppliedIndex: index } } },
  );
}
