/**
 * Conversion between model's partition metadata (partition-map.ts) and MetaService messages
 * (meta.proto), for the meta group that answers GetPartitionMap/WatchPartitionMap and the routers
 * and nodes that read it. Ids are safe integers in model and uint64 on the wire: a wire id beyond
 * 2^53 - 1 is refused rather than rounded to another partition's or node's id.
 *
 * Nodes cross as the generated NodeDescriptor messages: the node record type lives in @shoal/meta,
 * which depends on this package, and model has no node type to convert to.
 */
import { create } from '@bufbuild/protobuf';
import type * as model from '@shoal/model';
import { GetPartitionMapResponseSchema, PartitionDescriptorSchema, ReplicaRole } from './gen/shoal/v1/meta_pb.ts';
import type {
  GetPartitionMapResponse,
  NodeDescriptor as WireNodeDescriptor,
  PartitionDescriptor as WirePartitionDescriptor,
  ReplicaDescriptor as WireReplicaDescriptor,
} from './gen/shoal/v1/meta_pb.ts';
import { RpcError, Status } from './grpc.ts';
import { tableRecordFromWire, tableRecordToWire } from './partition-codec.ts';

function invalid(what: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, `invalid partition map: ${what}`);
}

const REPLICA_ROLES: Record<model.ReplicaRole, ReplicaRole> = {
  voter: ReplicaRole.VOTER,
  learner: ReplicaRole.LEARNER,
};
const REPLICA_ROLE_NAMES = new Map(
  Object.entries<ReplicaRole>(REPLICA_ROLES).map(([name, value]) => [value as number, name as model.ReplicaRole]),
);

/** A model counter (an epoch, a map version) as uint64; a non-integer or unsafe number is a caller's bug. */
function counterToWire(count: number, what: string): bigint {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`${what} ${count} is not a non-negative safe integer`);
  return BigInt(count);
}

/** A model id as uint64: ids start at 1 because 0 is the wire's "absent". */
function idToWire(id: number, what: string): bigint {
  if (id === 0) throw new RangeError(`${what} is 0, which the wire reads as absent`);
  return counterToWire(id, what);
}

/** A uint64 counter as a model number; above 2^53 - 1 it is refused rather than rounded. */
function counterFromWire(count: bigint, what: string): number {
  if (count > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${count} exceeds 2^53 - 1`);
  return Number(count);
}

/** A uint64 id as a model number: 0 means the field is missing. */
function idFromWire(id: bigint, what: string): number {
  if (id === 0n) throw invalid(`${what} missing`);
  return counterFromWire(id, what);
}

function replicaFromWire(replica: WireReplicaDescriptor): model.ReplicaDescriptor {
  const role = REPLICA_ROLE_NAMES.get(replica.role);
  if (role === undefined) throw invalid(`replica role ${replica.role}`);
  return { nodeId: idFromWire(replica.nodeId, 'replica node id'), role };
}

export function partitionDescriptorToWire(partition: model.PartitionDescriptor): WirePartitionDescriptor {
  if (!Number.isInteger(partition.tableId) || partition.tableId < 0 || partition.tableId > 0xffffffff) {
    throw new RangeError(`partition ${partition.id} table id ${partition.tableId} is not a uint32`);
  }
  return create(PartitionDescriptorSchema, {
    id: idToWire(partition.id, 'partition id'),
    tableId: partition.tableId,
    startKey: partition.startKey,
    endKey: partition.endKey,
    epoch: counterToWire(partition.epoch, `partition ${partition.id} epoch`),
    replicas: partition.replicas.map((replica) => ({
      nodeId: idToWire(replica.nodeId, `partition ${partition.id} replica node id`),
      role: REPLICA_ROLES[replica.role],
    })),
    leaderHint: partition.leaderHint === undefined ? 0n : idToWire(partition.leaderHint, `partition ${partition.id} leader hint`),
  });
}

export function partitionDescriptorFromWire(partition: WirePartitionDescriptor | undefined): model.PartitionDescriptor {
  if (partition === undefined) throw invalid('partition descriptor missing');
  const id = idFromWire(partition.id, 'partition id');
  const out: model.PartitionDescriptor = {
    id,
    tableId: partition.tableId,
    startKey: partition.startKey,
    endKey: partition.endKey,
    epoch: counterFromWire(partition.epoch, `partition ${id} epoch`),
    replicas: partition.replicas.map(replicaFromWire),
  };
  // Zero is "leader unknown", the wire's absent hint.
  if (partition.leaderHint !== 0n) out.leaderHint = idFromWire(partition.leaderHint, `partition ${id} leader hint`);
  return out;
}

/**
 * What GetPartitionMap and every WatchPartitionMap message carry, or "not modified" since a known
 * version. `tables` are every table record, sorted by name.
 */
export type PartitionMapAnswer =
  | { notModified: true; version: number }
  | {
      notModified: false;
      version: number;
      partitions: model.PartitionDescriptor[];
      nodes: WireNodeDescriptor[];
      tables: model.TableRecord[];
    };

export function partitionMapResponseToWire(answer: PartitionMapAnswer): GetPartitionMapResponse {
  const version = counterToWire(answer.version, 'partition map version');
  if (answer.notModified) return create(GetPartitionMapResponseSchema, { version, notModified: true });
  return create(GetPartitionMapResponseSchema, {
    version,
    partitions: answer.partitions.map(partitionDescriptorToWire),
    nodes: answer.nodes,
    tables: answer.tables.map(tableRecordToWire),
  });
}

export function partitionMapResponseFromWire(response: GetPartitionMapResponse): PartitionMapAnswer {
  const version = counterFromWire(response.version, 'partition map version');
  if (response.notModified) {
    if (response.partitions.length > 0 || response.nodes.length > 0 || response.tables.length > 0) {
      throw invalid('not modified, yet with contents');
    }
    return { notModified: true, version };
  }
  return {
    notModified: false,
    version,
    partitions: response.partitions.map(partitionDescriptorFromWire),
    nodes: response.nodes,
    tables: response.tables.map(tableRecordFromWire),
  };
}
