/**
 * The storage node's view of the cluster, kept from the meta group's partition map (GetPartitionMap
 * and WatchPartitionMap answers): partition descriptors, node addresses and table schemas, at one
 * map version. It may lag the meta group; requests carrying a newer epoch tell the node so
 * (contracts #8) and the watch brings the newer map.
 */
import { PartitionMap, type IndexSchema, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { NodeState, type PartitionMapAnswer } from '@shoal/proto';
import { indexSpaceSchema } from '@shoal/storage';
import type { NodeId } from '@shoal/raft';

export class ClusterView {
  #version: number | undefined;
  #partitions = new Map<number, PartitionDescriptor>();
  #nodes = new Map<NodeId, string>();
  /** Nodes the meta group is draining (`shoal admin drain`). */
  #draining = new Set<NodeId>();
  /** Nodes the meta group marked down (heartbeats missed). */
  #down = new Set<NodeId>();
  /**
   * Schemas by key space id (TableSchema.tableId, PartitionDescriptor.tableId): each table's, and for
   * each GSI (whose entries have partitions of their own) its space as a table (indexSpaceSchema).
   */
  #tables = new Map<number, TableSchema>();
  /** GSIs by space id, with their table. */
  #gsis = new Map<number, { table: TableSchema; index: IndexSchema }>();
  /** The partitions in key order, for lookups by key (the index shipper's routing). */
  #map = new PartitionMap();

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
    this.#map = new PartitionMap(answer.partitions);
    this.#nodes = new Map(answer.nodes.map((n) => [Number(n.id), n.address]));
    this.#draining = new Set(answer.nodes.filter((n) => n.state === NodeState.DRAINING).map((n) => Number(n.id)));
    this.#down = new Set(answer.nodes.filter((n) => n.state === NodeState.DOWN).map((n) => Number(n.id)));
    this.#tables = new Map(answer.tables.map((t) => [t.schema.tableId, t.schema]));
    this.#gsis = new Map();
    for (const { schema } of answer.tables) {
      for (const index of schema.indexes) {
        if (index.kind !== 'GSI') continue;
        this.#gsis.set(index.indexId, { table: schema, index });
        this.#tables.set(index.indexId, indexSpaceSchema(schema, index));
      }
    }
    return true;
  }

  /** The GSI whose entries the space holds, with its table; undefined for a table's space or an unknown one. */
  gsiOf(spaceId: number): { table: TableSchema; index: IndexSchema } | undefined {
    return this.#gsis.get(spaceId);
  }

  /** The partition of the map owning an encoded key (of any space), or undefined (a gap: a split half not known yet). */
  partitionOwning(key: Uint8Array): PartitionDescriptor | undefined {
    return this.#map.lookup(key);
  }

  descriptorOf(partitionId: number): PartitionDescriptor | undefined {
    return this.#partitions.get(partitionId);
  }

  partitions(): IterableIterator<PartitionDescriptor> {
    return this.#partitions.values();
  }

  /** The schema of the table whose key space is `tableId` (a GSI's space: indexSpaceSchema). */
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
