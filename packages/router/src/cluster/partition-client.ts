/**
 * The PartitionClient of a router over the cluster: each request goes to the partition owning its
 * key (model key encoding -> PartitionMap.lookup), to the leader for writes and consistent reads, to
 * any voter (round robin) for eventual reads. Typed redirects from the nodes update the router's view
 * and the request is sent again, within a bounded number of attempts and time.
 *
 * Read-your-writes: every acknowledged write (and committed transaction) answers the partition's
 * applied index on its leader; the router keeps the highest per partition (ClusterView.noteWritten)
 * and sends it with its eventual reads of that partition as `minAppliedIndex`. A replica that has not
 * applied that far within a short wait answers ReplicaBehind with what it applied, and the read goes
 * to the leader; reads asking more than that skip the replica for REPLICA_BEHIND_HOLD_MS, so that a
 * follower lagging long costs one wait, not one every few reads.
 */
import {
  internalError,
  validationError,
  type FoundItem,
  type GetRequest,
  type IndexSchema,
  type PartitionClient,
  type PartitionDescriptor,
  type PartitionWrite,
  type PartitionWriteResult,
  type RangeReadRequest,
  type RangeReadResult,
  type ReadOptions,
  type TableSchema,
  type TableStatistics,
} from '@shoal/model';
import {
  type PartitionService,
  appliedWriteFromWire,
  encodeGetManyRequest,
  encodeGetRequest,
  encodeWriteManyCalls,
  encodeWriteRequest,
  getResultFromWire,
  getManyResultsFromWire,
  type GetResult,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  backfillIndexRequestToWire,
  dropIndexRequestToWire,
  statisticsFromWire,
  statisticsRequestToWire,
  writeManyResultsFromWire,
  type AppliedWrite,
  type CallOptions,
  type ClientOf,
  type PartitionReadOptions,
  type RoutedTo,
} from '@shoal/proto';
import type { ChannelPool } from './channels.ts';
import { RequestCoalescer, type CoalescerStats } from './coalescer.ts';
import type { ClusterView } from './cluster-view.ts';
import type { MetaClient } from './meta-client.ts';
import type { ClusterCounters, ClusterLogger } from './metrics.ts';
import { PartitionMapChangedError, readRangeAcross, tableItemKey } from './range-reads.ts';
import { ambiguousWrite, classifyFailure, describeFailure, RetryBudget, serviceUnavailable, type RetryPolicy } from './retry.ts';
import { TransactionCoordinator, type TransactionCoordinatorOptions } from './transactions.ts';

type PartitionRpc = ClientOf<typeof PartitionService>;

/**
 * Where a request goes and what a failure allows:
 * - write: the leader; sent again only when a failure proves it was not proposed (contracts #10);
 * - leader: the leader; idempotent (consistent reads, index backfill and drop), sent again after any
 *   transient failure;
 * - eventual: any voter, spread round robin, having applied this router's writes to the partition
 *   (eventual reads: a replica behind refuses them);
 * - any: any voter, spread round robin (statistics).
 */
type Mode = 'write' | 'leader' | 'eventual' | 'any';

/**
 * Write calls (WriteMany / Write) in flight to one partition's leader at once: the writes made while
 * they are out wait and go together in the next call, one Raft entry (a node's cost is mostly per
 * entry and per call, not per write). A held write's deadline runs from when it was made; held past
 * it, or when a call before it fails, it is given back unsent and retried like a write that found no
 * connection (coalescer.ts).
 */
const WRITE_CALLS_IN_FLIGHT = 2;

/**
 * Bytes of one WriteMany call at most: writes coalesced in one turn (a BatchWriteItem of 25 items of
 * 400 KB, a burst of large PutItems) go as several calls, since the node makes each call one Raft
 * entry and an entry must travel to the followers in one message.
 */
export const MAX_WRITE_CALL_BYTES = 1024 * 1024;

/**
 * How long eventual reads asking more than a replica said it had applied (ReplicaBehind) skip it,
 * while another replica is left: long enough that a follower lagging long refuses about once a
 * second per partition rather than one read in three; short enough that it serves again soon after.
 */
const REPLICA_BEHIND_HOLD_MS = 1_000;

/** Redirects to a named leader followed at once; more in one call wait for the backoff (an election). */
const IMMEDIATE_REDIRECTS = 2;
/** Rounds of a backfill call: the partitions the map shows, then the split halves it shows after each round. */
const BACKFILL_ROUNDS = 4;
/**
 * How long a base partition's leader waits for its backfill to be done before it answers "not yet"
 * (BackfillIndex's wait_ms): the router then asks again, so every call has a deadline (this plus
 * rpcTimeoutMs) and a leader that left the group is noticed within one.
 */
const BACKFILL_WAIT_MS = 5_000;

export interface ClusterPartitionClientOptions {
  view: ClusterView;
  meta: MetaClient;
  channels: ChannelPool;
  policy: RetryPolicy;
  /** Deadline of one attempt of a write or read (a backfill call's: this plus the time the node waits for the backfill). */
  rpcTimeoutMs: number;
  counters: ClusterCounters;
  log?: ClusterLogger;
  /** Writes spanning partitions (transactions): two-phase commit options. */
  transactions?: TransactionCoordinatorOptions;
  /** Milliseconds, monotonic (default performance.now): when a replica said it was behind. */
  clock?: () => number;
}

export class ClusterPartitionClient implements PartitionClient {
  readonly #view: ClusterView;
  readonly #meta: MetaClient;
  readonly #channels: ChannelPool;
  readonly #policy: RetryPolicy;
  readonly #counters: ClusterCounters;
  readonly #log: ClusterLogger | undefined;
  readonly #clock: () => number;
  /**
   * Spreads eventual reads over the voters, turn by turn: the reads of one event-loop turn go to the
   * same voter (one GetMany per partition rather than one per voter), the next turn's to the next.
   */
  #spread = 0;
  #spreadMoves = false;
  /** The options of a call with a deadline (one object for every call). */
  readonly #deadline: CallOptions;
  /** A BackfillIndex call's: it waits up to BACKFILL_WAIT_MS on the node. */
  readonly #backfillDeadline: CallOptions;
  /** One map refresh at a time, shared by every request that needs it. */
  #refreshing: Promise<void> | undefined;
  readonly #transactions: TransactionCoordinator;
  /** Single-operation writes of one turn to one partition: one WriteMany, one Raft entry. */
  readonly #writes = new RequestCoalescer<PartitionRpc, PartitionWrite, AppliedWrite>({
    one: async (rpc, target, write, options) => appliedWriteFromWire(await rpc.write(encodeWriteRequest(target, write), options)),
    many: async (rpc, target, writes, options) => {
      const calls = encodeWriteManyCalls(target, writes, MAX_WRITE_CALL_BYTES);
      const [only] = calls;
      if (calls.length === 1 && only !== undefined) return writeManyResultsFromWire(await rpc.writeMany(only.message, options), only.count);
      // Several calls: each answers for its own writes, and one failing as a whole fails only them.
      const answers = await Promise.all(
        calls.map(async ({ message, count }): Promise<Array<AppliedWrite | Error>> => {
          try {
            return writeManyResultsFromWire(await rpc.writeMany(message, options), count);
          } catch (error) {
            return new Array<Error>(count).fill(error instanceof Error ? error : new Error(String(error)));
          }
        }),
      );
      return answers.flat();
    },
  }, {
    maxInFlight: WRITE_CALLS_IN_FLIGHT,
    // A lone write's DynamoDB error (a condition failed) is its own answer; any other failure says the
    // node did not serve the call, and the writes held behind it are given back unsent (retried).
    isCallFailure: (error) => classifyFailure(error).kind !== 'dynamodb',
  });
  /** Gets of one turn to one partition with the same consistency: one GetMany. */
  readonly #gets = new RequestCoalescer<PartitionRpc, { request: GetRequest; options: ReadOptions }, GetResult>({
    one: async (rpc, target, { request, options }, callOptions) =>
      getResultFromWire(await rpc.get(encodeGetRequest(target, request, this.#readOptions(target, options)), callOptions)),
    many: async (rpc, target, gets, callOptions) => {
      const [first] = gets;
      const options = this.#readOptions(target, first === undefined ? { consistent: false } : first.options);
      const response = await rpc.getMany(encodeGetManyRequest(target, gets.map((get) => get.request), options), callOptions);
      return getManyResultsFromWire(response, gets.length);
    },
  }, {
    // A get's own DynamoDB error (throttled) is its answer, not a sign that the node did not serve.
    isCallFailure: (error) => classifyFailure(error).kind !== 'dynamodb',
  });

  constructor(options: ClusterPartitionClientOptions) {
    this.#view = options.view;
    this.#meta = options.meta;
    this.#channels = options.channels;
    this.#policy = options.policy;
    this.#deadline = { timeoutMs: options.rpcTimeoutMs };
    this.#backfillDeadline = { timeoutMs: options.rpcTimeoutMs + BACKFILL_WAIT_MS };
    this.#counters = options.counters;
    this.#log = options.log;
    this.#clock = options.clock ?? (() => performance.now());
    this.#transactions = new TransactionCoordinator(
      async (mode, locate, call) => {
        const { value, partition } = await this.#onPartition(mode, locate, call);
        // A prepare's or a committing resolve's answer: its partition's reads must see it from now on.
        this.#view.noteWritten(partition.id, answeredAppliedIndex(value));
        return value;
      },
      (id) => this.#view.map.all().find((partition) => partition.id === id),
      options.transactions,
      options.log,
    );
  }

  /**
   * One partition write when every operation falls in the same partition (one Raft command, atomic);
   * across partitions (a transaction over keys or tables of several partitions), a two-phase commit
   * coordinated here (transactions.ts).
   */
  async write(request: PartitionWrite): Promise<PartitionWriteResult> {
    if (request.operations.length === 0) throw validationError('A write needs at least one operation');
    // Encoded (and hashed) once: every attempt looks the same keys up in the map as it is then.
    const keys = request.operations.map((operation) => tableItemKey(operation.table, operation.key));
    if (keys.length > 1) {
      const positions = await this.#positionsByPartition(keys);
      if (positions.size > 1) return this.#transactions.run(request, positions);
    }
    const [only] = keys;
    const locate = (): PartitionDescriptor | undefined => {
      if (keys.length === 1 && only !== undefined) return this.#view.map.lookup(only);
      const owners = new Map<number, PartitionDescriptor>();
      for (const key of keys) {
        const owner = this.#view.map.lookup(key);
        if (owner === undefined) return undefined;
        owners.set(owner.id, owner);
      }
      // The map changed since the write was split by partition: nothing was sent, the client may retry.
      if (owners.size > 1) throw serviceUnavailable(`The write's partitions changed while it was routed (${owners.size} partitions now)`);
      return owners.values().next().value;
    };
    // A single-item write joins the others of this turn for its partition (one Raft entry); a
    // transaction's operations stay one write of their own (all or none).
    const { value, partition } = await this.#onPartition('write', locate, (rpc, target, options) =>
      request.operations.length === 1
        ? this.#writes.submit(rpc, target, request, options)
        : rpc.write(encodeWriteRequest(target, request), options).then(appliedWriteFromWire),
    );
    this.#view.noteWritten(partition.id, value.appliedIndex);
    return value.result;
  }

  /**
   * The positions of a write's operations by partition (the first operation's partition first), once
   * the map has an owner for every key: an operation left out would be lost from its transaction (a
   * table this router just created is in its catalog before its partitions are in its map when the
   * refresh after the creation failed).
   */
  async #positionsByPartition(keys: readonly Uint8Array[]): Promise<Map<number, number[]>> {
    const byPartition = (): Map<number, number[]> | undefined => {
      const positions = new Map<number, number[]>();
      for (const [position, key] of keys.entries()) {
        const owner = this.#view.map.lookup(key);
        if (owner === undefined) return undefined;
        positions.set(owner.id, [...(positions.get(owner.id) ?? []), position]);
      }
      return positions;
    };
    const budget = new RetryBudget(this.#policy);
    while (budget.next()) {
      const positions = byPartition();
      if (positions !== undefined) return positions;
      await this.#refresh();
      const nextMap = this.#view.nextMap();
      if (byPartition() === undefined) await budget.pause(nextMap);
    }
    this.#counters.exhaustedRetriesTotal++;
    throw serviceUnavailable('The partition map has no partition for a key of the write yet');
  }

  /**
   * The options an eventual read is sent with: the partition's applied index this router's writes
   * were acknowledged at, which the replica must have applied (read-your-writes). Taken when the call
   * goes, so a write acknowledged before the read was made is always in it.
   */
  #readOptions(target: RoutedTo, options: ReadOptions): PartitionReadOptions {
    if (options.consistent) return options;
    const minAppliedIndex = this.#view.writtenThrough(Number(target.partitionId));
    return minAppliedIndex === 0n ? options : { consistent: false, minAppliedIndex };
  }

  async get(request: GetRequest, options: ReadOptions): Promise<FoundItem | undefined> {
    const key = tableItemKey(request.table, request.key);
    const { value } = await this.#onPartition(
      options.consistent ? 'leader' : 'eventual',
      () => this.#view.map.lookup(key),
      (rpc, target, callOptions) => this.#gets.submit(rpc, target, { request, options }, callOptions, options.consistent ? 'consistent' : 'eventual'),
    );
    return value;
  }

  /** How many requests went coalesced (WriteMany / GetMany) and how many alone. */
  coalescing(): { writes: CoalescerStats; gets: CoalescerStats } {
    return { writes: { ...this.#writes.stats }, gets: { ...this.#gets.stats } };
  }

  async readRange(request: RangeReadRequest, options: ReadOptions): Promise<RangeReadResult> {
    const mode: Mode = options.consistent ? 'leader' : 'eventual';
    try {
      return await readRangeAcross(request, { map: () => this.#view.map }, async (locate, page) => {
        const { value, partition } = await this.#onPartition(mode, locate, (rpc, target, callOptions) =>
          rpc.readRange(rangeReadRequestToWire(target, page, this.#readOptions(target, options)), callOptions),
        );
        return { result: rangeReadResultFromWire(value), partition };
      });
    } catch (error) {
      if (error instanceof PartitionMapChangedError) throw serviceUnavailable(`The partition map changed during the read: ${error.message}`);
      throw error;
    }
  }

  /**
   * The sum over the partitions holding the table (or the index: a GSI's own partitions, an LSI's
   * the table's), each counted by any replica (as approximate as DynamoDB's).
   */
  async statistics(table: TableSchema, indexName?: string): Promise<TableStatistics> {
    const gsi = indexName === undefined ? undefined : globalIndex(table, indexName);
    const space = gsi === undefined ? table.tableId : gsi.indexId;
    const parts = await Promise.all(
      (await this.#partitionsOf(space, gsi === undefined ? table.name : `${table.name}/${gsi.name}`)).map(async (partition) => {
        const { value } = await this.#onPartition('any', () => this.#view.map.lookup(partition.startKey), (rpc, target, options) =>
          rpc.statistics(statisticsRequestToWire(target, indexName === undefined ? { table } : { table, indexName }), options),
        );
        return statisticsFromWire(value);
      }),
    );
    return parts.reduce((sum, part) => ({ itemCount: sum.itemCount + part.itemCount, sizeBytes: sum.sizeBytes + part.sizeBytes }), { itemCount: 0, sizeBytes: 0 });
  }

  /**
   * Resolves once every partition of a new table, or of the GSIs named, has a leader able to serve
   * it (one consistent read of each), so that a table is usable when CreateTable returns, as ACTIVE
   * promises, and a new GSI's partitions are ready before its backfill. Without `indexNames`: the
   * table's partitions and every GSI's. Bounded by the retry budget of each read; a failure is the
   * caller's to report.
   */
  async awaitLeaders(table: TableSchema, timeoutMs: number, indexNames?: readonly string[]): Promise<void> {
    const probe: RangeReadRequest = { table, forward: true, limit: 1, maxBytes: 1, select: 'COUNT' };
    const gsis = table.indexes.filter((index) => index.kind === 'GSI' && (indexNames === undefined || indexNames.includes(index.name)));
    const spaces = [
      ...(indexNames === undefined ? [{ spaceId: table.tableId, name: table.name, probe }] : []),
      ...gsis.map((gsi) => ({ spaceId: gsi.indexId, name: `${table.name}/${gsi.name}`, probe: { ...probe, indexName: gsi.name } })),
    ];
    const policy = { ...this.#policy, totalMs: Math.min(this.#policy.totalMs, timeoutMs) };
    await Promise.all(
      spaces.map(async (space) =>
        Promise.all(
          (await this.#partitionsOf(space.spaceId, space.name)).map((partition) =>
            this.#onPartition(
              'leader',
              () => this.#view.map.lookup(partition.startKey),
              (rpc, target, options) => rpc.readRange(rangeReadRequestToWire(target, space.probe, { consistent: true }), options),
              { policy },
            ),
          ),
        ),
      ),
    );
  }

  /**
   * Each partition's leader builds the index from its own items (a command of its Raft log). A GSI's
   * entries go to its own partitions (created by the meta group with the index, before this is
   * called): on cluster nodes the backfill writes them to the partition's outbox, shipped from there,
   * and a partition answers done only once the GSI partitions acknowledged every record of its walk.
   * Resolves once every partition did, and every voter of the GSI's partitions applied them too
   * (#awaitIndexReplicas), so that an eventual read of the index sees every backfilled item.
   */
  async backfillIndex(table: TableSchema, indexName: string): Promise<void> {
    // A partition that split while its backfill ran hands the rest to its right half (the call waits
    // for it where the node holds that half too): the halves the map shows after a round are asked in
    // the next, where a half already backfilled answers at once.
    const asked = new Set<number>();
    for (let round = 0; round < BACKFILL_ROUNDS; round++) {
      if (round > 0) await this.#refresh();
      const partitions = (await this.#partitionsOf(table.tableId, table.name)).filter((partition) => !asked.has(partition.id));
      if (partitions.length === 0) break;
      for (const partition of partitions) asked.add(partition.id);
      await Promise.all(partitions.map((partition) => this.#backfillPartition(table, indexName, partition)));
    }
    const gsi = globalIndex(table, indexName);
    if (gsi !== undefined) await this.#awaitIndexReplicas(table, gsi);
  }

  /**
   * Asks the partition's leader until it answers done. Each call has a deadline and waits at most
   * BACKFILL_WAIT_MS on the node; a failure (a leader that stopped leading or left the group answers
   * NotLeader, followed to the new one) is retried within the retry budget of that call, and the new
   * leader goes on with the backfill recorded in the group's log.
   */
  async #backfillPartition(table: TableSchema, indexName: string, partition: PartitionDescriptor): Promise<void> {
    for (;;) {
      const { value } = await this.#onPartition(
        'leader',
        () => this.#view.map.lookup(partition.startKey),
        (rpc, target, options) => rpc.backfillIndex(backfillIndexRequestToWire(target, { table, indexName }, BACKFILL_WAIT_MS), options),
        { callOptions: this.#backfillDeadline },
      );
      if (value.done) return;
    }
  }

  /**
   * A consistent read served by each voter of each of the GSI's partitions: it passes the group's
   * ReadIndex, so that voter has applied every entry its leader acknowledged before (the backfill's
   * records). One attempt each: a voter that does not answer (down, or the index deleted meanwhile) is
   * passed over, and catches up from its group's log when it comes back.
   */
  async #awaitIndexReplicas(table: TableSchema, gsi: IndexSchema): Promise<void> {
    const probe: RangeReadRequest = { table, indexName: gsi.name, forward: true, limit: 1, maxBytes: 1, select: 'COUNT' };
    const reads = this.#view.map.partitionsOf(gsi.indexId).flatMap((partition) =>
      partition.replicas
        .filter((replica) => replica.role === 'voter')
        .map(async ({ nodeId }) => {
          const address = this.#view.nodeAddress(nodeId);
          if (address === undefined) return;
          const target: RoutedTo = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
          try {
            await this.#channels.partition(address).readRange(rangeReadRequestToWire(target, probe, { consistent: true }), this.#deadline);
          } catch (error) {
            this.#log?.debug('a GSI replica did not confirm the backfill', { partition: partition.id, node: nodeId, error: error instanceof Error ? error.message : String(error) });
          }
        }),
    );
    await Promise.all(reads);
  }

  /**
   * A GSI: the meta group removed its partitions with it (UpdateTable, called first) and every node
   * removes their replicas and data; each base partition's leader stops its backfill of the index if
   * one runs (leaving a tombstone, so a backfill call arriving later walks nothing), and the shippers
   * drop the records still in the outboxes. An LSI: each partition's leader drops its entries.
   */
  async dropIndex(table: TableSchema, indexName: string): Promise<void> {
    await this.#onEveryLeader(table, (rpc, target, options) => rpc.dropIndex(dropIndexRequestToWire(target, { table, indexName }), options));
  }

  /**
   * Nothing to do in the cluster: the meta group deleting the table (catalog.delete, called first)
   * removes its partitions, and every node then removes its replicas and their data (contracts #9).
   */
  async dropTable(_table: TableSchema): Promise<void> {}

  /** `call` on the leader of each partition of the table (located by its start key: a split since leads to its left half). */
  async #onEveryLeader(table: TableSchema, call: (rpc: PartitionRpc, target: RoutedTo, options: CallOptions) => Promise<unknown>): Promise<void> {
    const partitions = await this.#partitionsOf(table.tableId, table.name);
    await Promise.all(partitions.map((partition) => this.#onPartition('leader', () => this.#view.map.lookup(partition.startKey), call)));
  }

  /** The partitions of a space (`name`: its table, or table/index), in key order, after a map refresh when the map knows none yet. */
  async #partitionsOf(spaceId: number, name: string): Promise<PartitionDescriptor[]> {
    const budget = new RetryBudget(this.#policy);
    while (budget.next()) {
      const partitions = this.#view.map.partitionsOf(spaceId);
      if (partitions.length > 0) return partitions;
      await this.#refresh();
      const nextMap = this.#view.nextMap();
      if (this.#view.map.partitionsOf(spaceId).length === 0) await budget.pause(nextMap);
    }
    this.#counters.exhaustedRetriesTotal++;
    throw serviceUnavailable(`No partition of ${name} is known yet`);
  }

  /** Fetches the partition map again (one fetch at a time for everyone); failures are logged only. */
  #refresh(): Promise<void> {
    this.#refreshing ??= this.#meta
      .refresh(this.#view)
      .catch((error: unknown) => this.#log?.warn('partition map refresh failed', { error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  /**
   * The node to ask: for the leader modes (and an eventual read a replica refused) the known leader
   * (learned, else the map's hint), else a voter in turn; for `eventual` and `any`, the voters in
   * turn. Passed over while another is left: a node failed in this call, and for a read asking
   * `minAppliedIndex` (0n: none) a replica that said within REPLICA_BEHIND_HOLD_MS it had applied
   * less (it would wait, then refuse).
   */
  #pickNode(partition: PartitionDescriptor, mode: Mode, avoid: ReadonlySet<number>, turn: number, minAppliedIndex: bigint): number | undefined {
    const voters = partition.replicas.filter((replica) => replica.role === 'voter').map((replica) => replica.nodeId);
    if (voters.length === 0) return undefined;
    const sinceMs = minAppliedIndex === 0n ? 0 : this.#clock() - REPLICA_BEHIND_HOLD_MS;
    const ready = (nodeId: number): boolean =>
      !avoid.has(nodeId) && (minAppliedIndex === 0n || !this.#view.replicaBehind(partition.id, nodeId, minAppliedIndex, sinceMs));
    let candidates = voters;
    if (avoid.size > 0 || minAppliedIndex > 0n) {
      const readyVoters = voters.filter(ready);
      // Every replica behind (a leader just elected, still applying): the untried ones, behind or not.
      const untried = readyVoters.length > 0 ? readyVoters : voters.filter((nodeId) => !avoid.has(nodeId));
      if (untried.length > 0) candidates = untried;
    }
    if (mode === 'eventual' || mode === 'any') return candidates[turn % candidates.length];
    // A leader may be missing from a stale descriptor's voters (it just joined): asked all the same.
    for (const leader of [this.#view.leaderOf(partition.id), partition.leaderHint]) {
      if (leader !== undefined && ready(leader)) return leader;
    }
    return candidates[turn % candidates.length];
  }

  /**
   * Sends `call` to the partition `locate` names, following redirects, within the retry budget.
   * Answers which descriptor the call was routed with (a range read continues after its range).
   */
  async #onPartition<T>(
    mode: Mode,
    locate: () => PartitionDescriptor | undefined,
    call: (rpc: PartitionRpc, target: RoutedTo, options: CallOptions) => Promise<T>,
    { callOptions = this.#deadline, policy = this.#policy }: { callOptions?: CallOptions; policy?: RetryPolicy } = {},
  ): Promise<{ value: T; partition: PartitionDescriptor }> {
    const budget = new RetryBudget(policy);
    const avoid = new Set<number>();
    const turn = this.#spreadTurn();
    // An eventual read a replica refused as behind goes to the leader, which applied what it acknowledged.
    let pick = mode;
    let redirects = 0;
    let last = 'no attempt made';
    while (budget.next()) {
      if (budget.attempts > 1) this.#counters.nodeRetriesTotal++;
      const partition = locate();
      if (partition === undefined) {
        last = 'the partition map has no partition for the key yet';
        await this.#refresh();
        // A split's right half: the meta group records it shortly after the split applied, and the
        // watch stream brings it; waiting for that map, not out the backoff, resumes the call then.
        const nextMap = this.#view.nextMap();
        if (locate() === undefined) await budget.pause(nextMap);
        continue;
      }
      const minAppliedIndex = mode === 'eventual' ? this.#view.writtenThrough(partition.id) : 0n;
      const nodeId = this.#pickNode(partition, pick, avoid, turn + budget.attempts - 1, minAppliedIndex);
      const address = nodeId === undefined ? undefined : this.#view.nodeAddress(nodeId);
      if (nodeId === undefined || address === undefined) {
        last = nodeId === undefined ? `partition ${partition.id} has no voter yet` : `the address of node ${nodeId} is not known yet`;
        if (nodeId !== undefined) avoid.add(nodeId);
        await this.#refresh();
        await budget.pause();
        continue;
      }
      this.#counters.nodeRequestsTotal++;
      try {
        const target: RoutedTo = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
        const value = await call(this.#channels.partition(address), target, callOptions);
        // Only a leader answers a write (any other replica answers NotLeader); a consistent read passes
        // ReadIndex on any replica and an eventual one is served by any: their answers name no leader.
        if (mode === 'write' && this.#view.leaderOf(partition.id) !== nodeId) this.#view.learnLeader(partition.id, { id: nodeId, address: '' });
        // It applied what this read asked: a refusal of it before (a leader just elected) is over.
        else if (minAppliedIndex > 0n) this.#view.forgetReplicaBehind(partition.id, nodeId);
        return { value, partition };
      } catch (error) {
        const failure = classifyFailure(error);
        last = `node ${nodeId} (${address}), partition ${partition.id}: ${describeFailure(failure)}`;
        switch (failure.kind) {
          case 'dynamodb':
            throw failure.error;
          case 'notLeader':
            this.#counters.notLeaderRedirectsTotal++;
            if (failure.leader !== undefined && failure.leader.id !== nodeId) {
              this.#view.learnLeader(partition.id, failure.leader);
              // Newer news than its own failure earlier in this call (a candidate then, or its half of a
              // split not created yet): passed over, it would leave only followers pointing at it.
              avoid.delete(failure.leader.id);
              if (redirects++ < IMMEDIATE_REDIRECTS) continue;
            } else {
              this.#view.forgetLeader(partition.id);
              avoid.add(nodeId);
            }
            break;
          case 'staleEpoch':
          case 'keyOutOfRange':
            if (failure.kind === 'staleEpoch') this.#counters.staleEpochRedirectsTotal++;
            else this.#counters.keyOutOfRangeRedirectsTotal++;
            if (this.#view.map.update(failure.current)) continue;
            await this.#refresh();
            break;
          case 'partitionNotFound':
            this.#counters.partitionNotFoundTotal++;
            this.#forgetFailedLeader(partition.id, nodeId);
            avoid.add(nodeId);
            await this.#refresh();
            break;
          case 'unreachable':
            this.#counters.unreachableNodeTotal++;
            this.#forgetFailedLeader(partition.id, nodeId);
            avoid.add(nodeId);
            break;
          case 'nodeMapBehind':
            // The node fetches the newer map itself; the same node is asked again after the pause.
            this.#counters.nodeMapBehindTotal++;
            break;
          case 'replicaBehind':
            this.#counters.replicaBehindRedirectsTotal++;
            // Not asked again in this call, nor by reads asking more for a while; a leader behind
            // (just elected, still applying) is, after the pause, once every voter was tried.
            this.#view.noteReplicaBehind(partition.id, nodeId, failure.appliedIndex, this.#clock());
            avoid.add(nodeId);
            if (pick === 'eventual') {
              pick = 'leader';
              continue;
            }
            break;
          case 'transient':
            if (mode === 'write') {
              this.#counters.ambiguousWritesTotal++;
              throw ambiguousWrite(last);
            }
            this.#forgetFailedLeader(partition.id, nodeId);
            avoid.add(nodeId);
            break;
          case 'broken':
            if (mode === 'write') {
              this.#counters.ambiguousWritesTotal++;
              throw ambiguousWrite(last);
            }
            throw internalError(`Internal server error: ${last}`);
        }
        this.#log?.debug('partition request failed, retrying', { reason: last, attempt: budget.attempts });
        await budget.pause();
      }
    }
    this.#counters.exhaustedRetriesTotal++;
    throw serviceUnavailable(`The cluster could not serve the request after ${budget.attempts} attempts: ${last}`);
  }

  /** This turn's place in the spread of eventual reads; it moves on once the turn is over. */
  #spreadTurn(): number {
    if (!this.#spreadMoves) {
      this.#spreadMoves = true;
      setImmediate(() => {
        this.#spread++;
        this.#spreadMoves = false;
      });
    }
    return this.#spread;
  }

  #forgetFailedLeader(partitionId: number, nodeId: number): void {
    if (this.#view.leaderOf(partitionId) === nodeId) this.#view.forgetLeader(partitionId);
  }
}

/** The GSI of the table named so (its entries have partitions of their own), if it is one. */
function globalIndex(table: TableSchema, indexName: string): IndexSchema | undefined {
  return table.indexes.find((index) => index.name === indexName && index.kind === 'GSI');
}

/**
 * The applied index a partition's answer carries: write-like answers (WriteResponse,
 * ResolveTransactionResponse) have one; any other (a transaction record's state) answers 0n.
 */
function answeredAppliedIndex(answer: unknown): bigint {
  return typeof answer === 'object' && answer !== null && 'appliedIndex' in answer && typeof answer.appliedIndex === 'bigint' ? answer.appliedIndex : 0n;
}
