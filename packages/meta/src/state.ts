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
  /**
   * Space ids of deleted tables and indexes, ascending: never kept for a record again, so a router
   * writing a table record read before a deletion cannot bring the deleted index back under its id
   * (its entries gone, its partitions new). Absent in states written before it was kept.
   */
  retiredSpaceIds?: number[];
  /** Grows with every change of partitions, nodes or tables (GetPartitionMapResponse.version). */
  mapVersion: number;
}

export function emptyMetaState(replicationFactor = 3): MetaState {
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new RangeError(`bad replication factor ${replicationFactor}`);
  }
  return { replicationFactor, tables: {}, partitions: {}, nodes: {}, nextNodeId: 1, nextPartitionId: 1, nextSpaceId: 1, mapVersion: 0 };
}

export type MetaCommand =
  /**
   * A node announces itself: `nodeId` 0 for a new node (it gets a fresh id), else its own id, fixed
   * by its configuration or kept from before a restart.
   */
  | { type: 'registerNode'; address: string; nodeId: number; at: number }
  | { type: 'heartbeat'; nodeId: number; at: number }
  | { type: 'markNodeDown'; nodeId: number; at: number }
  /** Empties the node of replicas before it leaves; asked of a down node, it applies once it is back. */
  | { type: 'markNodeDraining'; nodeId: number }
  /** Cancels a drain: the node takes replicas again (a down node stays down, and is up once back). */
  | { type: 'undrainNode'; nodeId: number }
  /**
   * A new table. It keeps the space ids its record carries (table and each index) where they are
   * valid (see `spaceIdFor`), others are allocated here. The table gets `partitionCount`
   * partitions, with replicas placed on up nodes, and so does each GSI (in its own space: a GSI's
   * entries are kept asynchronously in partitions of their own); LSIs get none (their entries live
   * in the partition of their item).
   */
  | { type: 'createTable'; record: TableRecord; partitionCount: number }
  /**
   * A changed table record (status, throughput, TTL, tags, indexes), made to the table's current
   * revision and table id (else refused: staleRevision; a record with no revision, from a log written
   * before revisions were kept, applies unchecked) and stored with the next revision. Existing indexes keep their
   * space ids; new ones keep a valid id of the record's or get a fresh one. A new GSI gets as many
   * partitions as its table has now; a GSI the record no longer lists loses its partitions.
   */
  | { type: 'updateTable'; record: TableRecord }
  | { type: 'deleteTable'; name: string }
  /** A space id for a caller's own use (AllocateSpaceId). */
  | { type: 'allocateSpaceId' }
  /**
   * Splits a partition at `splitKey`: the left half keeps the id, the right half gets a new one, or
   * `rightId` when given: a split its partition's Raft group already applied, with the id reserved
   * for it (reservePartitionId) and `parentEnd` the end the group split (a parent that is not that
   * wide any more is a conflict). Recording such a split again changes nothing.
   */
  | { type: 'splitPartition'; partitionId: number; splitKey: Uint8Array; expectedEpoch?: number; rightId?: number; parentEnd?: Uint8Array }
  /** A partition id for a split about to be made in a partition's group, so that ids never collide. */
  | { type: 'reservePartitionId' }
  /** The result of a membership change; bumps the epoch. */
  | { type: 'setReplicas'; partitionId: number; replicas: ReplicaDescriptor[]; expectedEpoch?: number }
  | { type: 'setLeaderHint'; partitionId: number; nodeId: number };

export type MetaCommandType = MetaCommand['type'];

/**
 * Why a command was refused, for the service that answers its proposer: invalid (a bad request),
 * tableExists / noSuchTable (DynamoDB's ResourceInUse / ResourceNotFound), noSuchNode (a node must
 * register first), noSuchPartition, conflict (another holder, a stale epoch), staleRevision (a table
 * change made to an older record: DynamoDB's ResourceInUse, the table being updated), unavailable (no node
 * is up, ids exhausted).
 */
export type MetaErrorReason = 'invalid' | 'tableExists' | 'noSuchTable' | 'noSuchNode' | 'noSuchPartition' | 'conflict' | 'staleRevision' | 'unavailable';

export class MetaCommandError extends Error {
  readonly command: MetaCommandType;
  readonly reason: MetaErrorReason;

  constructor(command: MetaCommandType, message: string, reason: MetaErrorReason = 'invalid') {
    super(`${command}: ${message}`);
    this.name = 'MetaCommandError';
    this.command = command;
    this.reason = reason;
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
  /** createTable, updateTable (a new GSI's), splitPartition: partitions created. */
  createdPartitions?: PartitionDescriptor[];
  /** reservePartitionId: the id. */
  partitionId?: number;
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
    case 'undrainNode': {
      const node = requireNode(state, command.type, command.nodeId);
      if (!node.drainRequested) return { state };
      const { drainRequested: _drain, ...rest } = node;
      const next: NodeRecord = { ...rest, state: node.state === 'down' ? 'down' : 'up' };
      return { state: withNode(state, next, next.state !== node.state) };
    }
    case 'createTable':
      return createTable(state, command.record, command.partitionCount);
    case 'updateTable':
      return updateTable(state, command.record);
    case 'deleteTable': {
      const record = getOwn(state.tables, command.name);
      if (!record) throw new MetaCommandError(command.type, `no table named ${command.name}`, 'noSuchTable');
      const tables = { ...state.tables };
      delete tables[command.name];
      const spaces = new Set([record.schema.tableId, ...gsiSpaceIds(record)]);
      const partitions = Object.fromEntries(Object.entries(state.partitions).filter(([, p]) => !spaces.has(p.tableId)));
      const retiredSpaceIds = retire(state, [record.schema.tableId, ...record.schema.indexes.map((index) => index.indexId)]);
      return { state: { ...state, tables, partitions, retiredSpaceIds, mapVersion: state.mapVersion + 1 }, table: record };
    }
    case 'allocateSpaceId': {
      if (state.nextSpaceId > MAX_SPACE_ID) throw new MetaCommandError(command.type, 'space ids exhausted', 'unavailable');
      return { state: { ...state, nextSpaceId: state.nextSpaceId + 1 }, spaceId: state.nextSpaceId };
    }
    case 'splitPartition':
      return splitPartition(state, command);
    case 'reservePartitionId':
      return { state: { ...state, nextPartitionId: state.nextPartitionId + 1 }, partitionId: state.nextPartitionId };
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
  if (holder) throw new MetaCommandError(command.type, `address ${command.address} belongs to live node ${holder.id}`, 'conflict');
  if (command.nodeId === 0) {
    const id = state.nextNodeId;
    const node: NodeRecord = { id, address: command.address, state: 'up', lastHeartbeatAt: command.at };
    return { state: { ...withNode(state, node, true), nextNodeId: id + 1 }, nodeId: id };
  }
  if (!Number.isSafeInteger(command.nodeId) || command.nodeId < 0) throw new MetaCommandError(command.type, `bad node id ${command.nodeId}`);
  const known = state.nodes[command.nodeId];
  if (!known) {
    // A node with a fixed id joins; fresh ids stay above every id seen.
    const node: NodeRecord = { id: command.nodeId, address: command.address, state: 'up', lastHeartbeatAt: command.at };
    return { state: { ...withNode(state, node, true), nextNodeId: Math.max(state.nextNodeId, node.id + 1) }, nodeId: node.id };
  }
  return { state: withNode(state, backUp(known, command.address, Math.max(known.lastHeartbeatAt, command.at)), true), nodeId: known.id };
}

/** A node heard from again: up, or draining if a drain was asked for. */
function backUp(node: NodeRecord, address: string, lastHeartbeatAt: number): NodeRecord {
  const next: NodeRecord = { id: node.id, address, state: node.drainRequested ? 'draining' : 'up', lastHeartbeatAt };
  if (node.drainRequested) next.drainRequested = true;
  return next;
}

function createTable(state: MetaState, requested: TableRecord, partitionCount: number): MetaApplyResult {
  checkTableRecord('createTable', requested);
  const name = requested.schema.name;
  if (getOwn(state.tables, name)) throw new MetaCommandError('createTable', `table ${name} already exists`, 'tableExists');
  checkPartitionCount('createTable', partitionCount);
  const spaces = new SpaceIds(state, 'createTable');
  const tableId = spaces.keepOrAllocate(requested.schema.tableId);
  const indexes = requested.schema.indexes.map((index) => ({ ...index, indexId: spaces.keepOrAllocate(index.indexId) }));
  const record: TableRecord = { ...requested, schema: { ...requested.schema, tableId, indexes }, revision: 1 };
  let next: MetaState = { ...state, nextSpaceId: spaces.nextSpaceId, tables: { ...state.tables, [name]: record } };
  const createdPartitions: PartitionDescriptor[] = [];
  for (const space of [tableId, ...gsiSpaceIds(record)]) {
    const { state: after, created } = createPartitions(next, 'createTable', space, partitionCount);
    next = after;
    createdPartitions.push(...created);
  }
  return { state: { ...next, mapVersion: state.mapVersion + 1 }, table: record, createdPartitions };
}

function updateTable(state: MetaState, requested: TableRecord): MetaApplyResult {
  checkTableRecord('updateTable', requested);
  const name = requested.schema.name;
  const current = getOwn(state.tables, name);
  if (!current) throw new MetaCommandError('updateTable', `no table named ${name}`, 'noSuchTable');
  // A record of a table deleted and created again under this name since it was read: as stale as an older revision.
  if (requested.schema.tableId !== current.schema.tableId) {
    throw new MetaCommandError('updateTable', `table ${name} has space id ${current.schema.tableId}, not ${requested.schema.tableId}`, 'staleRevision');
  }
  // Compare-and-set: a record computed from an older revision would undo the changes made since
  // (another router's new GSI removed, a deleted one brought back); its router reads again and redoes its change.
  // A record without a revision is a log entry written before revisions were kept: it applies as it did then.
  const revision = current.revision ?? 0;
  if (requested.revision !== undefined && requested.revision !== revision) {
    throw new MetaCommandError('updateTable', `table ${name} is at revision ${revision}, the change was made to revision ${requested.revision}`, 'staleRevision');
  }
  const kept = new Map(current.schema.indexes.map((i) => [i.name, i]));
  const spaces = new SpaceIds(state, 'updateTable');
  const retired = new Set(state.retiredSpaceIds ?? []);
  const indexes = requested.schema.indexes.map((index) => {
    const old = kept.get(index.name);
    if (old && old.kind !== index.kind) throw new MetaCommandError('updateTable', `index ${index.name} cannot change kind`);
    if (!old && retired.has(index.indexId)) {
      // A record read before the index was deleted (a router's view behind): refused, not the index recreated.
      throw new MetaCommandError('updateTable', `index ${index.name} has the space id ${index.indexId} of a deleted index: the record was read before the deletion`, 'conflict');
    }
    return { ...index, indexId: old ? old.indexId : spaces.keepOrAllocate(index.indexId) };
  });
  const record: TableRecord = { ...requested, schema: { ...requested.schema, indexes }, revision: revision + 1 };
  const dropped = current.schema.indexes.filter((index) => !indexes.some((kept) => kept.indexId === index.indexId)).map((index) => index.indexId);
  const before = new Set(gsiSpaceIds(current));
  const after = new Set(gsiSpaceIds(record));
  const removed = [...before].filter((id) => !after.has(id));
  const added = [...after].filter((id) => !before.has(id));
  let next: MetaState = { ...state, nextSpaceId: spaces.nextSpaceId, tables: { ...state.tables, [name]: record }, mapVersion: state.mapVersion + 1 };
  if (dropped.length > 0) next = { ...next, retiredSpaceIds: retire(state, dropped) };
  if (removed.length > 0) {
    const gone = new Set(removed);
    next = { ...next, partitions: Object.fromEntries(Object.entries(next.partitions).filter(([, p]) => !gone.has(p.tableId))) };
  }
  if (added.length === 0) return { state: next, table: record };
  // The new index holds about as many entries as the table has items: as many partitions as it has now.
  const count = Math.min(MAX_PARTITION_COUNT, Math.max(1, Object.values(state.partitions).filter((p) => p.tableId === current.schema.tableId).length));
  const createdPartitions: PartitionDescriptor[] = [];
  for (const space of added) {
    const { state: withIndex, created } = createPartitions(next, 'updateTable', space, count);
    next = withIndex;
    createdPartitions.push(...created);
  }
  // One change of the map, however many partitions it took.
  return { state: { ...next, mapVersion: state.mapVersion + 1 }, table: record, createdPartitions };
}

/** The state's retired space ids with `ids` added, ascending. */
function retire(state: MetaState, ids: readonly number[]): number[] {
  return [...new Set([...(state.retiredSpaceIds ?? []), ...ids])].sort((a, b) => a - b);
}

/** The space ids of a table's GSIs: each has partitions of its own (LSIs live with their items). */
function gsiSpaceIds(record: TableRecord): number[] {
  return record.schema.indexes.filter((index) => index.kind === 'GSI').map((index) => index.indexId);
}

/**
 * The space ids of one table change. A router allocates ids (AllocateSpaceId) before it writes the
 * record, so a record's id is kept when it is one meta handed out (nonzero, below nextSpaceId), no
 * table uses it yet (nor an earlier index of the same record) and none used it before (retired); any other id is replaced by a
 * fresh one, so two tables never share a key space.
 */
class SpaceIds {
  readonly #command: MetaCommandType;
  readonly #limit: number;
  readonly #taken = new Set<number>();
  nextSpaceId: number;

  constructor(state: MetaState, command: MetaCommandType) {
    this.#command = command;
    this.#limit = state.nextSpaceId;
    this.nextSpaceId = state.nextSpaceId;
    for (const id of state.retiredSpaceIds ?? []) this.#taken.add(id);
    for (const record of Object.values(state.tables)) {
      this.#taken.add(record.schema.tableId);
      for (const index of record.schema.indexes) this.#taken.add(index.indexId);
    }
  }

  keepOrAllocate(requested: number): number {
    const valid = Number.isInteger(requested) && requested > 0 && requested < this.#limit && !this.#taken.has(requested);
    let id = requested;
    if (!valid) {
      if (this.nextSpaceId > MAX_SPACE_ID) throw new MetaCommandError(this.#command, 'space ids exhausted', 'unavailable');
      id = this.nextSpaceId++;
    }
    this.#taken.add(id);
    return id;
  }
}

function splitPartition(state: MetaState, command: Extract<MetaCommand, { type: 'splitPartition' }>): MetaApplyResult {
  const parent = requirePartition(state, command.type, command.partitionId, command.expectedEpoch);
  const key = command.splitKey;
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
  const { rightId, parentEnd } = command;
  if (rightId !== undefined) {
    const recorded = state.partitions[rightId];
    if (recorded !== undefined && recorded.tableId === parent.tableId && compareBytes(recorded.startKey, key) === 0 && compareBytes(parent.endKey, key) === 0) {
      return { state };
    }
    if (!Number.isSafeInteger(rightId) || rightId < 1 || rightId >= state.nextPartitionId || recorded !== undefined) {
      throw new MetaCommandError(command.type, `partition id ${rightId} was not reserved for a split`, 'conflict');
    }
  }
  if (!partitionContains(parent, key) || compareBytes(key, parent.startKey) === 0) {
    throw new MetaCommandError(command.type, `split key ${hex(key)} is not inside partition ${parent.id}`, rightId === undefined ? 'invalid' : 'conflict');
  }
  if (parentEnd !== undefined && compareBytes(parentEnd, parent.endKey) !== 0) {
    throw new MetaCommandError(command.type, `partition ${parent.id} ends at ${hex(parent.endKey)}, the split was made when it ended at ${hex(parentEnd)}`, 'conflict');
  }
  const epoch = parent.epoch + 1;
  const id = rightId ?? state.nextPartitionId;
  const left: PartitionDescriptor = { ...parent, endKey: Uint8Array.from(key), epoch };
  const right: PartitionDescriptor = { ...parent, id, startKey: Uint8Array.from(key), epoch };
  const next = withPartitions(
    { ...state, nextPartitionId: rightId === undefined ? state.nextPartitionId + 1 : state.nextPartitionId },
    [left, right],
  );
  return { state: next, createdPartitions: [right] };
}

function createPartitions(
  state: MetaState,
  command: MetaCommandType,
  space: number,
  count: number,
): { state: MetaState; created: PartitionDescriptor[] } {
  const nodes = placeableNodeIds(state);
  if (nodes.length === 0) throw new MetaCommandError(command, 'no node is up to place replicas on', 'unavailable');
  const created = initialPartitions(space, count, state.nextPartitionId).map((p): PartitionDescriptor => {
    const replicas = placeReplicas(p.id, nodes, state.replicationFactor).map((nodeId): ReplicaDescriptor => ({ nodeId, role: 'voter' }));
    return { ...p, replicas };
  });
  return { state: withPartitions({ ...state, nextPartitionId: state.nextPartitionId + count }, created), created };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isKeyAttribute = (value: unknown): boolean =>
  isObject(value) && typeof value.name === 'string' && value.name.length > 0 && (value.type === 'S' || value.type === 'N' || value.type === 'B');
const isSpaceId = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_SPACE_ID;

/**
 * The shape meta relies on in a table record (it arrives as JSON from a router): a refusal rather
 * than an exception in the middle of applying it. The DynamoDB rules were checked by the router.
 */
function checkTableRecord(command: MetaCommandType, record: unknown): void {
  const bad = (what: string): never => {
    throw new MetaCommandError(command, `malformed table record: ${what}`);
  };
  if (!isObject(record) || !isObject(record.schema)) return bad('no schema');
  const schema = record.schema;
  if (typeof schema.name !== 'string' || schema.name.length === 0) bad('no table name');
  if (!isSpaceId(schema.tableId)) bad('bad table space id');
  if (!isKeyAttribute(schema.hashKey) || (schema.rangeKey !== undefined && !isKeyAttribute(schema.rangeKey))) bad('bad key schema');
  if (!Array.isArray(schema.indexes)) return bad('no index list');
  const names = new Set<unknown>();
  for (const index of schema.indexes as unknown[]) {
    if (!isObject(index) || typeof index.name !== 'string' || names.has(index.name)) return bad('an index without a name, or two of one name');
    names.add(index.name);
    if ((index.kind !== 'LSI' && index.kind !== 'GSI') || !isSpaceId(index.indexId) || !isKeyAttribute(index.hashKey)) bad(`bad index ${index.name}`);
  }
  if (!isObject(record.tags)) bad('no tags');
  if (record.revision !== undefined && !(Number.isSafeInteger(record.revision) && (record.revision as number) >= 0)) bad('bad revision');
}

/** Partitions a table (or a GSI) may start with. */
const MAX_PARTITION_COUNT = 4096;

function checkPartitionCount(command: MetaCommandType, count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_PARTITION_COUNT) {
    throw new MetaCommandError(command, `partition count must be an integer from 1 to ${MAX_PARTITION_COUNT}, not ${count}`);
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
  if (!node) throw new MetaCommandError(command, `no node ${nodeId}`, 'noSuchNode');
  return node;
}

function requirePartition(state: MetaState, command: MetaCommandType, partitionId: number, expectedEpoch?: number): PartitionDescriptor {
  const partition = state.partitions[partitionId];
  if (!partition) throw new MetaCommandError(command, `no partition ${partitionId}`, 'noSuchPartition');
  if (expectedEpoch !== undefined && expectedEpoch !== partition.epoch) {
    throw new MetaCommandError(command, `partition ${partitionId} is at epoch ${partition.epoch}, not ${expectedEpoch}`, 'conflict');
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
