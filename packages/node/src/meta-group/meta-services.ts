/**
 * MetaService and AdminService on a node that hosts a meta group replica. Only the meta leader
 * answers: any other replica answers FAILED_PRECONDITION with a NotLeader detail (partition id 0,
 * the leader it knows of), so callers follow the hint or try the next meta peer. Changes are meta
 * commands proposed in the group's log; reads are served after a ReadIndex.
 *
 * Heartbeats are recorded in the log (liveness must survive a change of meta leader), every one or
 * at most every `heartbeatLogIntervalMs` per node; the replica reports they carry are kept in this
 * leader's memory only (NodeReports), for Status and the placement driver.
 */
import { create } from '@bufbuild/protobuf';
import { encodeCollectionPrefix, getOwn, partitionContains, resourceInUse, resourceNotFound, type AttributeValue, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import { hashWidth, MetaCommandError, middleSplitKey, partitionList, type MetaState, type NodeRecord } from '@shoal/meta';
import {
  AdminService,
  addService,
  ErrorDetailSchema,
  MetaService,
  NodeDescriptorSchema,
  NodeState,
  RpcError,
  Status,
  dynamoDbErrorToRpc,
  partitionDescriptorToWire,
  partitionMapResponseToWire,
  tableRecordFromWire,
  tableRecordToWire,
  type NodeDescriptor,
  type PartitionLoad,
  type Server,
  type SplitRequest,
  type TableRecordJson,
} from '@shoal/proto';
import type { NodeId } from '@shoal/raft';
import { GroupNotHostedError, NotLeaderError, ProposalOutcomeUnknownError, RaftTimeoutError, type MultiRaftHost } from '../host/index.ts';
import { MetaGroup } from './meta-group.ts';
import { META_GROUP_ID, type MetaReplica } from './meta-replica.ts';
import { HotKeys } from './auto-splitter.ts';
import { LeadershipTransfers } from './leadership-transfers.ts';
import { NodeReports } from './node-reports.ts';
import { PartitionSplitter, splitAndRecord } from './partition-splits.ts';
import { groupMatchesDescriptor } from './placement-driver.ts';
import { PlacementPins } from './placement-pins.ts';

export interface MetaServiceDeps {
  host: MultiRaftHost;
  meta: MetaReplica;
  nodeId: NodeId;
  /** The gRPC address of a node, for NotLeader hints; else the address the node registered with. */
  nodeAddress(nodeId: NodeId): string | undefined;
  /** Milliseconds since the epoch, stamped on node commands (default Date.now). */
  clock?: () => number;
  /** Partitions of a new table when CreateTable asks for 0 (default 1). */
  defaultPartitions?: number;
  /** How often an idle WatchPartitionMap stream checks that this node still leads (default 1,000 ms). */
  watchLeadershipCheckMs?: number;
  /**
   * A heartbeat is recorded in the meta log (which is not compacted yet) only when the node's
   * recorded one is at least this old, or the node is marked down (default 0: every heartbeat).
   * Raise it only with a PlacementDriver given `reports`: its liveness then counts the heartbeats
   * kept in memory too.
   */
  heartbeatLogIntervalMs?: number;
}

export interface MetaServices {
  /** The nodes' heartbeat reports, for the PlacementDriver's `reports`. */
  readonly reports: NodeReports;
  /** Leadership moves told to the leading nodes in heartbeat answers (PlacementDriver splitting, TransferLeader). */
  readonly transfers: LeadershipTransfers;
  /** Partitions operators moved (Move), which the PlacementDriver's rebalancing leaves where they are. */
  readonly pins: PlacementPins;
  /** Hot items the placement driver found, shown by Status. */
  readonly hotKeys: HotKeys;
  /** Splits partitions through their leaders (Split, and the PlacementDriver's splitting). */
  readonly splitter: PartitionSplitter;
  /** Splits asked by operators (AdminService.Split) and made while this node led the meta group. */
  readonly stats: { adminSplits: number };
  /** Ends every WatchPartitionMap stream (before the server shuts down). */
  close(): void;
}

const NODE_STATES: Record<NodeRecord['state'], NodeState> = {
  up: NodeState.UP,
  draining: NodeState.DRAINING,
  down: NodeState.DOWN,
};

export function addMetaServices(server: Server, deps: MetaServiceDeps): MetaServices {
  const group = new MetaGroup(deps.host, deps.meta, deps.nodeId);
  const clock = deps.clock ?? Date.now;
  const checkMs = deps.watchLeadershipCheckMs ?? 1_000;
  const reports = new NodeReports();
  const stats = { adminSplits: 0 };
  const transfers = new LeadershipTransfers();
  const pins = new PlacementPins();
  const hotKeys = new HotKeys();
  const splitter = new PartitionSplitter({ nodeAddress: (id) => deps.nodeAddress(id) ?? deps.meta.state.nodes[id]?.address });
  const closing = new AbortController();

  const notLeader = (leader: NodeId, why: string): RpcError => {
    const address = leader === 0 ? '' : (deps.nodeAddress(leader) ?? deps.meta.state.nodes[leader]?.address ?? '');
    return RpcError.withDetail(Status.FAILED_PRECONDITION, `node ${deps.nodeId} ${why}`, ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId: BigInt(META_GROUP_ID), leader: leader === 0 ? undefined : { id: BigInt(leader), address } } },
    });
  };

  /** A failure as the gRPC error the caller acts on; `table` names the table a request is about. */
  const answerError = (error: unknown, table?: string): RpcError => {
    if (error instanceof RpcError) return error;
    if (error instanceof NotLeaderError) {
      return notLeader(error.leader, `is not the meta leader${error.leader === 0 ? ' (none known)' : ` (node ${error.leader} is)`}`);
    }
    if (error instanceof GroupNotHostedError) return notLeader(0, 'hosts no meta group replica');
    if (error instanceof RaftTimeoutError || error instanceof ProposalOutcomeUnknownError) return new RpcError(Status.UNAVAILABLE, `meta group: ${error.message}`);
    if (error instanceof MetaCommandError) return commandError(error, table);
    // The host stopped or failed: another meta peer may answer.
    return new RpcError(Status.UNAVAILABLE, `meta group unavailable on node ${deps.nodeId}: ${error instanceof Error ? error.message : String(error)}`);
  };

  /** Runs a handler's work, answering its failure with answerError. */
  const answer = async <T>(work: () => Promise<T>, table?: string): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw answerError(error, table);
    }
  };

  const nodesToWire = (state: MetaState): NodeDescriptor[] =>
    Object.values(state.nodes)
      .sort((a, b) => a.id - b.id)
      .map((n) => create(NodeDescriptorSchema, { id: BigInt(n.id), address: n.address, state: NODE_STATES[n.state] }));

  /** The map, or "not modified" when the caller holds its version (0: the caller holds nothing). */
  const mapAnswer = (state: MetaState, knownVersion: number) =>
    partitionMapResponseToWire(
      state.mapVersion === knownVersion && knownVersion !== 0
        ? { notModified: true, version: state.mapVersion }
        : { notModified: false, version: state.mapVersion, partitions: partitionList(state), nodes: nodesToWire(state), tables: sortedTables(state) },
    );

  /** Resolves at the next change of the meta state, after `checkMs`, or when the call or the services end. */
  const nextChange = (signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stop();
        signal.removeEventListener('abort', done);
        closing.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, checkMs);
      const stop = deps.meta.onApplied(done);
      signal.addEventListener('abort', done);
      closing.signal.addEventListener('abort', done);
    });

  addService(server, MetaService, {
    getPartitionMap: (request) =>
      answer(async () => mapAnswer(await group.read(), counterFromWire(request.knownVersion, 'known version'))),

    watchPartitionMap: async function* (request, context) {
      // -1: a caller holding nothing (version 0) gets the map even while it is empty.
      let known = counterFromWire(request.knownVersion, 'known version') || -1;
      // Caught up with everything committed before the call; changes then arrive by apply.
      await answer(() => group.read());
      while (!context.signal.aborted && !closing.signal.aborted) {
        if (!group.isLeader()) throw answerError(new NotLeaderError(META_GROUP_ID, group.leaderId()));
        const state = deps.meta.state;
        if (state.mapVersion !== known) {
          yield mapAnswer(state, known);
          known = state.mapVersion;
          continue;
        }
        await nextChange(context.signal);
      }
    },

    registerNode: (request) =>
      answer(async () => {
        const nodeId = counterFromWire(request.nodeId, 'node id');
        const result = await group.propose({ type: 'registerNode', address: request.address, nodeId, at: clock() });
        return { nodeId: BigInt(result.nodeId!) };
      }),

    heartbeat: (request) =>
      answer(async () => {
        const nodeId = counterFromWire(request.nodeId, 'node id');
        const at = clock();
        const recorded = deps.meta.state.nodes[nodeId];
        if (recorded === undefined || recorded.state === 'down' || at - recorded.lastHeartbeatAt >= (deps.heartbeatLogIntervalMs ?? 0)) {
          await group.propose({ type: 'heartbeat', nodeId, at });
        } else if (!group.isLeader()) {
          throw new NotLeaderError(META_GROUP_ID, group.leaderId());
        }
        reports.record(nodeId, at, request.loads);
        await recordLeaderHints(group, reports, nodeId, request.loads);
        const state = deps.meta.state;
        const leadershipTransfers = transfers.dueFor(nodeId, reports, at).map((t) => ({ partitionId: BigInt(t.partitionId), toNode: BigInt(t.toNode) }));
        return { state: NODE_STATES[state.nodes[nodeId].state], mapVersion: BigInt(state.mapVersion), leadershipTransfers };
      }),

    createTable: (request) => {
      const record = recordFromRequest(request.record);
      return answer(async () => {
        const partitionCount = request.initialPartitions === 0 ? (deps.defaultPartitions ?? 1) : request.initialPartitions;
        const result = await group.propose({ type: 'createTable', record, partitionCount });
        return { record: tableRecordToWire(result.table!) };
      }, claimedName(record));
    },

    updateTable: (request) => {
      const record = recordFromRequest(request.record);
      return answer(async () => {
        const result = await group.propose({ type: 'updateTable', record });
        return { record: tableRecordToWire(result.table!) };
      }, claimedName(record));
    },

    deleteTable: (request) =>
      answer(async () => {
        const result = await group.propose({ type: 'deleteTable', name: request.name });
        return { record: tableRecordToWire(result.table!) };
      }, request.name),

    getTable: (request) =>
      answer(async () => {
        const record = getOwn((await group.read()).tables, request.name);
        return record === undefined ? {} : { record: tableRecordToWire(record) };
      }),

    listTables: () => answer(async () => ({ records: sortedTables(await group.read()).map(tableRecordToWire) })),

    allocateSpaceId: () =>
      answer(async () => {
        const result = await group.propose({ type: 'allocateSpaceId' });
        return { spaceId: result.spaceId! };
      }),
  });

  addService(server, AdminService, {
    status: () =>
      answer(async () => {
        const state = await group.read();
        const now = clock();
        const replicas = new Map<number, number>();
        const leaders = new Map<number, number>();
        for (const p of Object.values(state.partitions)) {
          for (const r of p.replicas) replicas.set(r.nodeId, (replicas.get(r.nodeId) ?? 0) + 1);
          if (p.leaderHint !== undefined) leaders.set(p.leaderHint, (leaders.get(p.leaderHint) ?? 0) + 1);
        }
        const metaStatus = deps.host.status().find((s) => s.groupId === META_GROUP_ID);
        return {
          nodes: nodesToWire(state).map((node) => {
            const id = Number(node.id);
            const report = reports.get(id);
            return {
              node,
              replicas: replicas.get(id) ?? 0,
              leaders: leaders.get(id) ?? 0,
              secondsSinceHeartbeat: Math.max(0, now - (report?.at ?? state.nodes[id].lastHeartbeatAt)) / 1000,
              reportedReplicas: report?.loads ?? [],
            };
          }),
          partitions: partitionList(state).map(partitionDescriptorToWire),
          mapVersion: BigInt(state.mapVersion),
          metaLeaderId: BigInt(deps.nodeId),
          metaTerm: BigInt(metaStatus?.term ?? 0),
          metaCommitIndex: BigInt(metaStatus?.commit ?? 0),
          metaAppliedIndex: BigInt(metaStatus?.applied ?? 0),
          hotKeys: hotKeys.list().map((hot) => ({
            partitionId: BigInt(hot.partitionId),
            key: hot.key,
            share: hot.share,
            utilization: hot.utilization,
            seconds: Math.max(0, now - hot.since) / 1000,
          })),
        };
      }),

    drain: (request) =>
      answer(async () => {
        const nodeId = counterFromWire(request.nodeId, 'node id');
        await group.propose({ type: 'markNodeDraining', nodeId });
        const remaining = Object.values(deps.meta.state.partitions).filter((p) => p.replicas.some((r) => r.nodeId === nodeId)).length;
        return { remainingReplicas: remaining };
      }),

    undrain: (request) =>
      answer(async () => {
        await group.propose({ type: 'undrainNode', nodeId: counterFromWire(request.nodeId, 'node id') });
        return {};
      }),

    transferLeader: (request) =>
      answer(async () => {
        const partitionId = counterFromWire(request.partitionId, 'partition id');
        const toNode = counterFromWire(request.toNode, 'node id');
        const state = await group.read();
        const partition = state.partitions[partitionId];
        if (partition === undefined) throw new RpcError(Status.NOT_FOUND, `no partition ${partitionId}`);
        if (!partition.replicas.some((r) => r.nodeId === toNode && r.role === 'voter')) {
          throw new RpcError(Status.INVALID_ARGUMENT, `node ${toNode} is not a voter of partition ${partitionId}`);
        }
        if (state.nodes[toNode]?.state === 'down') throw new RpcError(Status.FAILED_PRECONDITION, `node ${toNode} is down: it cannot take the leadership of partition ${partitionId}`);
        transfers.request(partitionId, toNode, clock());
        return {};
      }),
    move: (request) =>
      answer(async () => {
        const partitionId = counterFromWire(request.partitionId, 'partition id');
        const from = counterFromWire(request.fromNode, 'node id');
        const to = counterFromWire(request.toNode, 'node id');
        const state = await group.read();
        const partition = movable(state, reports, partitionId, from, to);
        // The replica on `to` takes the place (and role) of the one on `from`: the partition's
        // leader adds it as a learner, promotes it once caught up, then removes `from`.
        const replicas = partition.replicas.map((r) => (r.nodeId === from ? { nodeId: to, role: r.role } : r));
        const { state: moved } = await group.propose({ type: 'setReplicas', partitionId, replicas, expectedEpoch: partition.epoch });
        pins.pin(partitionId, to);
        return { partition: partitionDescriptorToWire(moved.partitions[partitionId]) };
      }),
    split: (request) =>
      answer(async () => {
        const { parent, splitKey } = splitTarget(await group.read(), request);
        const { left, right } = await splitAndRecord(group, splitter, parent, splitKey);
        stats.adminSplits++;
        return { left: partitionDescriptorToWire(left), right: partitionDescriptorToWire(right) };
      }, request.table),
  });

  return { reports, transfers, pins, hotKeys, splitter, stats, close: () => closing.abort() };
}

/**
 * A node that reports leading a partition it is a voter of, in the highest term heard of, becomes
 * the partition's leader hint (routers send there first). A hint is advice: one that fails to
 * record is simply left as it was.
 */
async function recordLeaderHints(group: MetaGroup, reports: NodeReports, nodeId: NodeId, loads: readonly PartitionLoad[]): Promise<void> {
  const state = group.meta.state;
  const hints: Promise<unknown>[] = [];
  for (const load of loads) {
    if (!load.leader || load.partitionId > BigInt(Number.MAX_SAFE_INTEGER)) continue;
    const partition = state.partitions[Number(load.partitionId)];
    if (partition === undefined || partition.leaderHint === nodeId || reports.leaderOf(partition.id) !== nodeId) continue;
    if (!partition.replicas.some((r) => r.nodeId === nodeId && r.role === 'voter')) continue;
    hints.push(group.propose({ type: 'setLeaderHint', partitionId: partition.id, nodeId }).catch(() => undefined));
  }
  await Promise.all(hints);
}

/**
 * The partition a Move request names, once checked: `from` holds a replica of it, `to` is an up node
 * without one, and the partition's group matches its descriptor (a descriptor more than one change
 * ahead of its group could list a node again before the group let it go).
 */
function movable(state: MetaState, reports: NodeReports, partitionId: number, from: NodeId, to: NodeId): PartitionDescriptor {
  const partition = state.partitions[partitionId];
  if (partition === undefined) throw new RpcError(Status.NOT_FOUND, `no partition ${partitionId}`);
  for (const nodeId of [from, to]) {
    if (state.nodes[nodeId] === undefined) throw new RpcError(Status.NOT_FOUND, `no node ${nodeId}`);
  }
  const holders = partition.replicas.map((r) => r.nodeId).join(', ');
  if (from === to) throw new RpcError(Status.INVALID_ARGUMENT, `move partition ${partitionId} from node ${from} to itself: give another node`);
  if (!partition.replicas.some((r) => r.nodeId === from)) {
    throw new RpcError(Status.INVALID_ARGUMENT, `node ${from} holds no replica of partition ${partitionId} (its replicas are on nodes ${holders})`);
  }
  if (partition.replicas.some((r) => r.nodeId === to)) {
    throw new RpcError(Status.INVALID_ARGUMENT, `node ${to} already holds a replica of partition ${partitionId} (its replicas are on nodes ${holders})`);
  }
  const target = state.nodes[to];
  if (target.state !== 'up') throw new RpcError(Status.FAILED_PRECONDITION, `node ${to} is ${target.state}: a replica moves only to an up node`);
  if (!groupMatchesDescriptor(state, reports, partition)) {
    throw new RpcError(
      Status.FAILED_PRECONDITION,
      `partition ${partitionId} is changing its replicas (its Raft group does not match its descriptor at epoch ${partition.epoch} yet): retry once it settles (shoal admin status)`,
    );
  }
  return partition;
}

/**
 * The partition a Split request names and where to split it: the partition of the table (or of its
 * GSI, named `table/index`: a GSI's entries have partitions of their own) holding the key (given
 * encoded, or as a partition key value: the start of its item collection), else the widest one, in
 * the middle of its hash range.
 */
function splitTarget(state: MetaState, request: SplitRequest): { parent: PartitionDescriptor; splitKey: Uint8Array } {
  // DynamoDB names never hold a '/': `table/index` is unambiguous.
  const [tableName = '', indexName] = request.table.split('/', 2);
  const record = getOwn(state.tables, tableName);
  if (record === undefined) throw new MetaCommandError('splitPartition', `no table named ${tableName}`, 'noSuchTable');
  const index = indexName === undefined ? undefined : record.schema.indexes.find((candidate) => candidate.name === indexName);
  if (indexName !== undefined && index?.kind !== 'GSI') {
    throw new RpcError(Status.INVALID_ARGUMENT, `table ${tableName} has no global secondary index ${indexName} (only GSIs have partitions of their own)`);
  }
  const tableId = index === undefined ? record.schema.tableId : index.indexId;
  const hashKey = index === undefined ? record.schema.hashKey : index.hashKey;
  const partitions = partitionList(state).filter((p) => p.tableId === tableId);
  let splitKey = request.splitKey;
  if (splitKey === undefined && request.hashValue !== undefined) {
    let value: AttributeValue;
    try {
      value = JSON.parse(request.hashValue) as AttributeValue;
      if (typeof value !== 'object' || value === null || Object.keys(value).join() !== hashKey.type) throw new TypeError(`not a ${hashKey.type} value`);
      splitKey = encodeCollectionPrefix(tableId, value);
    } catch (error) {
      throw new RpcError(Status.INVALID_ARGUMENT, `split at ${request.hashValue}: not a partition key value of ${request.table} (${hashKey.name}, ${hashKey.type}): ${(error as Error).message}`);
    }
  }
  if (splitKey !== undefined) {
    const key = splitKey;
    const parent = partitions.find((p) => partitionContains(p, key));
    if (parent === undefined) throw new RpcError(Status.INVALID_ARGUMENT, `split key ${Buffer.from(key).toString('hex')} lies outside table ${request.table}`);
    return { parent, splitKey: key };
  }
  const parent = partitions.reduce<PartitionDescriptor | undefined>((widest, p) => (widest === undefined || hashWidth(p) > hashWidth(widest) ? p : widest), undefined);
  const middle = parent === undefined ? undefined : middleSplitKey(parent);
  if (parent === undefined || middle === undefined) throw new RpcError(Status.INVALID_ARGUMENT, `table ${request.table} has no partition wide enough to split in the middle; give the key (--at)`);
  return { parent, splitKey: middle };
}

function commandError(error: MetaCommandError, table: string | undefined): RpcError {
  switch (error.reason) {
    case 'tableExists':
      return dynamoDbErrorToRpc(resourceInUse(`Table already exists: ${table}`));
    case 'noSuchTable':
      return dynamoDbErrorToRpc(resourceNotFound(`Requested resource not found: Table: ${table} not found`));
    case 'noSuchNode':
    case 'noSuchPartition':
      return new RpcError(Status.NOT_FOUND, error.message);
    case 'staleRevision':
      // The router reads the table again and redoes its change (ClusterCatalog.update).
      return dynamoDbErrorToRpc(resourceInUse(`Attempt to change a resource which is still in use: Table is being updated: ${table} (${error.message})`));
    case 'conflict':
      return new RpcError(Status.ABORTED, error.message);
    case 'unavailable':
      return new RpcError(Status.UNAVAILABLE, error.message);
    case 'invalid':
      return new RpcError(Status.INVALID_ARGUMENT, error.message);
  }
}

/** The name a record gives its table, for error messages (meta checks the record itself). */
function claimedName(record: unknown): string | undefined {
  if (typeof record !== 'object' || record === null || !('schema' in record)) return undefined;
  const schema: unknown = record.schema;
  if (typeof schema !== 'object' || schema === null || !('name' in schema)) return undefined;
  return typeof schema.name === 'string' ? schema.name : undefined;
}

function recordFromRequest(record: TableRecordJson | undefined): TableRecord {
  if (record === undefined) throw new RpcError(Status.INVALID_ARGUMENT, 'table record missing');
  return tableRecordFromWire(record);
}

/** Table records sorted by name (ListTables' order, and the partition map's). */
function sortedTables(state: MetaState): TableRecord[] {
  return Object.values(state.tables).sort((a, b) => (a.schema.name < b.schema.name ? -1 : a.schema.name > b.schema.name ? 1 : 0));
}

/** A uint64 id or counter as a number; beyond 2^53 - 1 it is refused rather than rounded. */
function counterFromWire(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RpcError(Status.INVALID_ARGUMENT, `${what} ${value} exceeds 2^53 - 1`);
  return Number(value);
}
