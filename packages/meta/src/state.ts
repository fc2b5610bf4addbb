/**
 * The meta group's state machine: tables, the partition map and node membership, changed only by
 * `applyMetaCommand`. Commands are plain data (they are entries of the meta group's Raft log) and
 * carry the time they were proposed at, so applying them is pure and every replica computes the same
 * state. An invalid command throws `MetaCommandError`; the state passed in is never modified.
 */
import {
  compareBytes,
  getOwn,
  initialPartitions,
  MAX_SPACE_ID,
  partitionContains,
  type PartitionDescriptor,
  type ReplicaDescriptor,
  type TableRecord,
} from '@shoal/model';
import { placeReplicas } from './rendezvous.ts';

export type NodeState = 'up' | 'draining' | 'down';

export interface NodeRecord {
  id: number;
  /** host:port of the node's gRPC server. */
  address: string;
  state: NodeState;
  /** Milliseconds since the epoch, from the last registerNode or heartbeat command. */
  lastHeartbeatAt: number;
  /** When the node was marked down (only while down). */
  downSince?: number;
  /** Set by markNodeDraining and kept while the node is down, so that it drains again once back. */
  drainRequested?: true;
}

export interface MetaState {
  /** Replicas per partition the placement driver aims for. */
  replicationFactor: number;
  /** By table name (any name, `__proto__` too: read with getOwn). */
  tables: Record<string, TableRecord>;
  /** By partition id. */
  partitions: Record<number, PartitionDescriptor>;
  /** By node id. */
  nodes: Record<number, NodeRecord>;
  nextNodeId: number;
  nextPartitionId: number;
  nextSpaceId: number;
  /** Grows with every change of partitions or nodes (GetPartitionMapResponse.version). */
  mapVersion: number;
}

export function emptyMetaState(replicationFactor = 3): MetaState {
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new RangeError(`bad replication factor ${replicationFactor}`);
  }
  return { replicationFactor, tables: {}, partitions: {}, nodes: {}, nextNodeId: 1, nextPartitionId: 1, nextSpaceId: 1, mapVersion: 0 };
}

export type MetaCommand =
  /** A node announces itself; `nodeId` 0 for a new node, its old id after a restart. */
  | { type: 'registerNode'; address: string; nodeId: number; at: number }
  | { type: 'heartbeat'; nodeId: number; at: number }
  | { type: 'markNodeDown'; nodeId: number; at: number }
  /** Empties the node of replicas before it leaves; asked of a down node, it applies once it is back. */
  | { type: 'markNodeDraining'; nodeId: number }
  /**
   * A new table. Its space ids (table and every index) are allocated here, whatever the record
   * says; the table and each GSI get `partitionCount` partitions, with replicas placed on up nodes.
   */
  | { type: 'createTable'; record: TableRecord; partitionCount: number }
  /**
   * A changed table record (status, throughput, TTL, tags, indexes). Existing indexes keep their
   * space ids; new ones get fresh ids (and a new GSI `partitionCount` partitions); a removed GSI's
   * partitions go.
   */
  | { type: 'updateTable'; record: TableRecord; partitionCount: number }
  | { type: 'deleteTable'; name: string }
  /** A space id for a caller's own use (AllocateSpaceId). */
  | { type: 'allocateSpaceId' }
  /** Splits a partition at `splitKey`: the left half keeps the id, the right half gets a new one. */
  | { type: 'splitPartition'; partitionId: number; splitKey: Uint8Array; expectedEpoch?: number }
  /** The result of a membership change; bumps the epoch. */
  | { type: 'setReplicas'; partitionId: number; replicas: ReplicaDescriptor[]; expectedEpoch?: number }
  | { type: 'setLeaderHint'; partitionId: number; nodeId: number };

export type MetaCommandType = MetaCommand['type'];

export class MetaCommandError extends Error {
  readonly command: MetaCommandType;

  constructor(command: MetaCommandType, message: string) {
    super(`${command}: ${message}`);
    this.name = 'MetaCommandError';
    this.command = command;
  }
}

export interface MetaApplyResult {
  state: MetaState;
  /** registerNode: the node's id. */
  nodeId?: number;
  /** createTable, updateTable, deleteTable: the table record (with its space ids). */
  table?: TableRecord;
  /** allocateSpaceId: the id. */
  spaceId?: number;
  /** createTable, updateTable, splitPartition: partitions created. */
  createdPartitions?: PartitionDescriptor[];
}

/** Up nodes (not draining, not down), by id: where new replicas may go. */
export function placeableNodeIds(state: MetaState): number[] {
  return Object.values(state.nodes)
    .filter((n) => n.state === 'up')
    .map((n) => n.id)
    .sort((a, b) => a - b);
}

/** All partitions sorted by id. */
export function partitionList(state: MetaState): PartitionDescriptor[] {
  return Object.values(state.partitions).sort((a, b) => a.id - b.id);
}

/** The space ids holding partitions of a table: its own and its GSIs'. */
export function partitionedSpaces(record: TableRecord): number[] {
  return [record.schema.tableId, ...record.schema.indexes.filter((i) => i.kind === 'GSI').map((i) => i.indexId)];
}

export function applyMetaCommand(state: MetaState, command: MetaCommand): MetaApplyResult {
  switch (command.type) {
    case 'registerNode':
      return registerNode(state, command);
    case 'heartbeat': {
      const node = requireNode(state, command.type, command.nodeId);
      const lastHeartbeatAt = Math.max(node.lastHeartbeatAt, command.at);
      // A down node that heartbeats again is back; its replicas may still be there.
      const next = node.state === 'down' ? backUp(node, node.address, lastHeartbeatAt) : { ...node, lastHeartbeatAt };
      return { state: withNode(state, next, node.state !== next.state) };
    }
    case 'markNodeDown': {
      const node = requireNode(state, command.type, command.nodeId);
      if (node.state === 'down') return { state };
      return { state: withNode(state, { ...node, state: 'down', downSince: command.at }, true) };
    }
    case 'markNodeDraining': {
      const node = requireNode(state, command.type, command.nodeId);
      if (node.drainRequested) return { state };
      const next: NodeRecord = { ...node, state: node.state === 'down' ? 'down' : 'draining', drainRequested: true };
      return { state: withNode(state, next, next.state !== node.state) };
    }
    case 'createTable':
      return createTable(state, command.record, command.partitionCount);
    case 'updateTable':
      return updateTable(state, command.record, command.partitionCount);
    case 'deleteTable': {
      const record = getOwn(state.tables, command.name);
      if (!record) throw new MetaCommandError(command.type, `no table named ${command.name}`);
      const tables = { ...state.tables };
      delete tables[command.name];
      const spaces = new Set(partitionedSpaces(record));
      const partitions = Object.fromEntries(Object.entries(state.partitions).filter(([, p]) => !spaces.has(p.tableId)));
      return { state: { ...state, tables, partitions, mapVersion: state.mapVersion + 1 }, table: record };
    }
    case 'allocateSpaceId': {
      const [spaceId, nextSpaceId] = allocateSpaceIds(state, command.type, 1);
      return { state: { ...state, nextSpaceId }, spaceId: spaceId[0] };
    }
    case 'splitPartition':
      return splitPartition(state, command);
    case 'setReplicas': {
      const partition = requirePartition(state, command.type, command.partitionId, command.expectedEpoch);
      const replicas = checkReplicas(state, command.type, command.replicas);
      const { leaderHint, ...rest } = partition;
      const next: PartitionDescriptor = { ...rest, replicas, epoch: partition.epoch + 1 };
      // The hint survives only while the node is still a voter.
      if (replicas.some((r) => r.nodeId === leaderHint && r.role === 'voter')) next.leaderHint = leaderHint;
      return { state: withPartitions(state, [next]) };
    }
    case 'setLeaderHint': {
      const partition = requirePartition(state, command.type, command.partitionId);
      if (!partition.replicas.some((r) => r.nodeId === command.nodeId && r.role === 'voter')) {
        throw new MetaCommandError(command.type, `node ${command.nodeId} is not a voter of partition ${partition.id}`);
      }
      if (partition.leaderHint === command.nodeId) return { state };
      return { state: withPartitions(state, [{ ...partition, leaderHint: command.nodeId }]) };
    }
  }
}

function registerNode(state: MetaState, command: Extract<MetaCommand, { type: 'registerNode' }>): MetaApplyResult {
  if (command.address.length === 0) throw new MetaCommandError(command.type, 'empty address');
  const holder = Object.values(state.nodes).find((n) => n.address === command.address && n.id !== command.nodeId && n.state !== 'down');
  if (holder) throw new MetaCommandError(command.type, `address ${command.address} belongs to live node ${holder.id}`);
  if (command.nodeId === 0) {
    const id = state.nextNodeId;
    const node: NodeRecord = { id, address: command.address, state: 'up', lastHeartbeatAt: command.at };
    return { state: { ...withNode(state, node, true), nextNodeId: id + 1 }, nodeId: id };
  }
  const known = requireNode(state, command.type, command.nodeId);
  return { state: withNode(state, backUp(known, command.address, Math.max(known.lastHeartbeatAt, command.at)), true), nodeId: known.id };
}

/** A node heard from again: up, or draining if a drain was asked for. */
function backUp(node: NodeRecord, address: string, lastHeartbeatAt: number): NodeRecord {
  const next: NodeRecord = { id: node.id, address, state: node.drainRequested ? 'draining' : 'up', lastHeartbeatAt };
  if (node.drainRequested) next.drainRequested = true;
  return next;
}

function createTable(state: MetaState, requested: TableRecord, partitionCount: number): MetaApplyResult {
  const name = requested.schema.name;
  if (getOwn(state.tables, name)) throw new MetaCommandError('createTable', `table ${name} already exists`);
  checkPartitionCount('createTable', partitionCount);
  const indexes = requested.schema.indexes;
  const [ids, nextSpaceId] = allocateSpaceIds(state, 'createTable', 1 + indexes.length);
  const record: TableRecord = {
    ...requested,
    schema: { ...requested.schema, tableId: ids[0], indexes: indexes.map((index, i) => ({ ...index, indexId: ids[i + 1] })) },
  };
  const afterIds: MetaState = { ...state, nextSpaceId, tables: { ...state.tables, [name]: record } };
  const { state: next, created } = createPartitions(afterIds, 'createTable', partitionedSpaces(record), partitionCount);
  return { state: next, table: record, createdPartitions: created };
}

function updateTable(state: MetaState, requested: TableRecord, partitionCount: number): MetaApplyResult {
  const name = requested.schema.name;
  const current = getOwn(state.tables, name);
  if (!current) throw new MetaCommandError('updateTable', `no table named ${name}`);
  if (requested.schema.tableId !== current.schema.tableId) {
    throw new MetaCommandError('updateTable', `table ${name} has space id ${current.schema.tableId}, not ${requested.schema.tableId}`);
  }
  const kept = new Map(current.schema.indexes.map((i) => [i.name, i]));
  const added = requested.schema.indexes.filter((i) => !kept.has(i.name));
  if (added.length > 0) checkPartitionCount('updateTable', partitionCount);
  const [ids, nextSpaceId] = added.length > 0 ? allocateSpaceIds(state, 'updateTable', added.length) : [[], state.nextSpaceId];
  const newIds = new Map(added.map((index, i) => [index.name, ids[i]]));
  const indexes = requested.schema.indexes.map((index) => {
    const old = kept.get(index.name);
    if (old && old.kind !== index.kind) throw new MetaCommandError('updateTable', `index ${index.name} cannot change kind`);
    return { ...index, indexId: old ? old.indexId : newIds.get(index.name)! };
  });
  const record: TableRecord = { ...requested, schema: { ...requested.schema, indexes } };
  const remaining = new Set(partitionedSpaces(record));
  const dropped = new Set(partitionedSpaces(current).filter((id) => !remaining.has(id)));
  const partitions = Object.fromEntries(Object.entries(state.partitions).filter(([, p]) => !dropped.has(p.tableId)));
  const base: MetaState = {
    ...state,
    nextSpaceId,
    tables: { ...state.tables, [name]: record },
    partitions,
    mapVersion: state.mapVersion + (dropped.size > 0 ? 1 : 0),
  };
  const newGsis = added.filter((i) => i.kind === 'GSI').map((i) => newIds.get(i.name)!);
  const { state: next, created } = createPartitions(base, 'updateTable', newGsis, partitionCount);
  return { state: next, table: record, createdPartitions: created };
}

function splitPartition(state: MetaState, command: Extract<MetaCommand, { type: 'splitPartition' }>): MetaApplyResult {
  const parent = requirePartition(state, command.type, command.partitionId, command.expectedEpoch);
  const key = command.splitKey;
  if (!partitionContains(parent, key) || compareBytes(key, parent.startKey) === 0) {
    throw new MetaCommandError(command.type, `split key ${Buffer.from(key).toString('hex')} is not inside partition ${parent.id}`);
  }
  const epoch = parent.epoch + 1;
  const left: PartitionDescriptor = { ...parent, endKey: Uint8Array.from(key), epoch };
  const right: PartitionDescriptor = { ...parent, id: state.nextPartitionId, startKey: Uint8Array.from(key), epoch };
  const next = withPartitions({ ...state, nextPartitionId: state.nextPartitionId + 1 }, [left, right]);
  return { state: next, createdPartitions: [right] };
}

function createPartitions(
  state: MetaState,
  command: MetaCommandType,
  spaces: number[],
  count: number,
): { state: MetaState; created: PartitionDescriptor[] } {
  if (spaces.length === 0) return { state, created: [] };
  const nodes = placeableNodeIds(state);
  if (nodes.length === 0) throw new MetaCommandError(command, 'no node is up to place replicas on');
  let nextPartitionId = state.nextPartitionId;
  const created: PartitionDescriptor[] = [];
  for (const space of spaces) {
    for (const p of initialPartitions(space, count, nextPartitionId)) {
      const replicas = placeReplicas(p.id, nodes, state.replicationFactor).map((nodeId): ReplicaDescriptor => ({ nodeId, role: 'voter' }));
      created.push({ ...p, replicas });
    }
    nextPartitionId += count;
  }
  return { state: withPartitions({ ...state, nextPartitionId }, created), created };
}

function allocateSpaceIds(state: MetaState, command: MetaCommandType, count: number): [number[], number] {
  const first = state.nextSpaceId;
  if (first + count - 1 > MAX_SPACE_ID) throw new MetaCommandError(command, 'space ids exhausted');
  return [Array.from({ length: count }, (_, i) => first + i), first + count];
}

function checkPartitionCount(command: MetaCommandType, count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > 4096) {
    throw new MetaCommandError(command, `partition count must be an integer from 1 to 4096, not ${count}`);
  }
}

function checkReplicas(state: MetaState, command: MetaCommandType, replicas: ReplicaDescriptor[]): ReplicaDescriptor[] {
  const seen = new Set<number>();
  for (const r of replicas) {
    if (seen.has(r.nodeId)) throw new MetaCommandError(command, `node ${r.nodeId} holds two replicas`);
    seen.add(r.nodeId);
    if (!state.nodes[r.nodeId]) throw new MetaCommandError(command, `no node ${r.nodeId}`);
    if (r.role !== 'voter' && r.role !== 'learner') throw new MetaCommandError(command, `bad replica role ${String(r.role)}`);
  }
  if (!replicas.some((r) => r.role === 'voter')) throw new MetaCommandError(command, 'a partition needs a voter');
  return [...replicas].sort((a, b) => a.nodeId - b.nodeId).map((r) => ({ nodeId: r.nodeId, role: r.role }));
}

function requireNode(state: MetaState, command: MetaCommandType, nodeId: number): NodeRecord {
  const node = state.nodes[nodeId];
  if (!node) throw new MetaCommandError(command, `no node ${nodeId}`);
  return node;
}

function requirePartition(state: MetaState, command: MetaCommandType, partitionId: number, expectedEpoch?: number): PartitionDescriptor {
  const partition = state.partitions[partitionId];
  if (!partition) throw new MetaCommandError(command, `no partition ${partitionId}`);
  if (expectedEpoch !== undefined && expectedEpoch !== partition.epoch) {
    throw new MetaCommandError(command, `partition ${partitionId} is at epoch ${partition.epoch}, not ${expectedEpoch}`);
  }
  return partition;
}

function withNode(state: MetaState, node: NodeRecord, mapChanged: boolean): MetaState {
  return { ...state, nodes: { ...state.nodes, [node.id]: node }, mapVersion: state.mapVersion + (mapChanged ? 1 : 0) };
}

function withPartitions(state: MetaState, changed: PartitionDescriptor[]): MetaState {
  const partitions = { ...state.partitions };
  for (const p of changed) partitions[p.id] = p;
  return { ...state, partitions, mapVersion: state.mapVersion + 1 };
}
