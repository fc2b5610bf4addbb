/**
 * The storage node's view of the cluster, kept from the meta group's partition map (GetPartitionMap
 * and WatchPartitionMap answers): partition descriptors, node addresses and table schemas, at one
 * map version. It may lag the meta group; requests carrying a newer epoch tell the node so
 * (contracts #8) and the watch brings the newer map.
 */
import type { PartitionDescriptor, TableSchema } from '@shoal/model';
import { NodeState, type PartitionMapAnswer } from '@shoal/proto';
import type { NodeId } from '@shoal/raft';

export class ClusterView {
  #version: number | undefined;
  #partitions = new Map<number, PartitionDescriptor>();
  #nodes = new Map<NodeId, string>();
  /** Nodes the meta group is draining (`shoal admin drain`). */
  #draining = new Set<NodeId>();
  /** Nodes the meta group marked down (heartbeats missed). */
  #down = new Set<NodeId>();
  /** Table schemas by key space id (TableSchema.tableId, PartitionDescriptor.tableId). */
  #tables = new Map<number, TableSchema>();

  /** Whether a map arrived yet. */
  hasMap(): boolean {
    return this.#version !== undefined;
  }

  /** The map version held; 0 before any. */
  get version(): number {
    return this.#version ?? 0;
  }

  /** Takes a map answer; returns whether the view changed (an older or unchanged map is ignored). */
  apply(answer: PartitionMapAnswer): boolean {
    if (answer.notModified) {
      // "Not modified" since version 0, before any map: the meta group's empty initial state.
      if (this.#version !== undefined || answer.version !== 0) return false;
      this.#version = 0;
      return true;
    }
    if (this.#version !== undefined && answer.version <= this.#version) return false;
    this.#version = answer.version;
    this.#partitions = new Map(answer.partitions.map((p) => [p.id, p]));
    this.#nodes = new Map(answer.nodes.map((n) => [Number(n.id), n.address]));
    this.#draining = new Set(answer.nodes.filter((n) => n.state === NodeState.DRAINING).map((n) => Number(n.id)));
    this.#down = new Set(answer.nodes.filter((n) => n.state === NodeState.DOWN).map((n) => Number(n.id)));
    this.#tables = new Map(answer.tables.map((t) => [t.schema.tableId, t.schema]));
    return true;
  }

  descriptorOf(partitionId: number): PartitionDescriptor | undefined {
    return this.#partitions.get(partitionId);
  }

  partitions(): IterableIterator<PartitionDescriptor> {
    return this.#partitions.values();
  }

  /** The schema of the table whose key space is `tableId`. */
  tableOf(tableId: number): TableSchema | undefined {
    return this.#tables.get(tableId);
  }

  /** A registered node's gRPC address. */
  nodeAddress(nodeId: NodeId): string | undefined {
    return this.#nodes.get(nodeId);
  }

  /** Whether the map shows the node draining: its replicas are moving away. */
  isDraining(nodeId: NodeId): boolean {
    return this.#draining.has(nodeId);
  }

  /** Whether the map shows the node down (it missed its heartbeats to the meta group). */
  isDown(nodeId: NodeId): boolean {
    return this.#down.has(nodeId);
  }

  /** Every registered node's gRPC address. */
  nodeAddresses(): ReadonlyMap<NodeId, string> {
    return this.#nodes;
  }
}
