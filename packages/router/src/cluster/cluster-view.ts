/**
 * What a router knows of the cluster: the partition map, node addresses and table records from the
 * meta group (one versioned answer of GetPartitionMap / WatchPartitionMap), plus what nodes taught it
 * since (newer descriptors from StaleEpoch / KeyOutOfRange, leaders from NotLeader).
 */
import { PartitionMap, type TableRecord } from '@shoal/model';
import type { PartitionMapAnswer } from '@shoal/proto';

export class ClusterView {
  /** Version of the last map taken from the meta group; 0 before the first. */
  version = 0;
  map = new PartitionMap();
  readonly #nodes = new Map<number, string>();
  readonly #tables = new Map<string, TableRecord>();
  /**
   * By GSI space id: the version of the first map taken from the meta group that showed the index,
   * at or after the one that created it (a map answer is the meta state at its version). Only map
   * answers count: a record this router put ahead of its map (putTable) has no version yet.
   */
  readonly #gsiShownSince = new Map<number, number>();
  /** Leaders learned from NotLeader answers and answered writes, by partition id; they beat the map's hints. */
  readonly #leaders = new Map<number, number>();
  /**
   * By partition id, the highest applied index this router's acknowledged writes were answered with:
   * its eventual reads of the partition ask a replica to have applied that much (read-your-writes).
   */
  readonly #writtenThrough = new Map<number, bigint>();
  /**
   * By partition id, then node id: the applied index a replica last refused an eventual read with
   * (ReplicaBehind) and when (ms, the caller's clock), so that reads asking for more skip it a while.
   */
  readonly #replicasBehind = new Map<number, Map<number, { appliedIndex: bigint; atMs: number }>>();
  readonly #firstMap: Promise<void>;
  #markFirstMap: () => void = () => {};
  /** Aborted by the next map taken from the meta group (nextMap). */
  #nextMap: AbortController | undefined;

  constructor() {
    this.#firstMap = new Promise((resolve) => {
      this.#markFirstMap = resolve;
    });
  }

  get hasMap(): boolean {
    return this.version > 0;
  }

  /** Resolves once a map has arrived. */
  firstMap(): Promise<void> {
    return this.#firstMap;
  }

  /**
   * Takes a map answer newer than the one held (an older or "not modified" one changes nothing).
   * The map replaces every descriptor: the meta group's answer is the truth as of its version.
   */
  apply(answer: PartitionMapAnswer): boolean {
    if (answer.notModified || answer.version <= this.version) return false;
    this.version = answer.version;
    this.map = new PartitionMap(answer.partitions);
    // Bounded by the map: a partition gone from it (deleted, its table dropped) is read no more.
    const listed = new Set(answer.partitions.map((partition) => partition.id));
    const byPartition: Map<number, unknown>[] = [this.#writtenThrough, this.#leaders, this.#replicasBehind];
    for (const entries of byPartition) for (const id of entries.keys()) if (!listed.has(id)) entries.delete(id);
    this.#nodes.clear();
    for (const node of answer.nodes) {
      if (node.id > 0n && node.id <= BigInt(Number.MAX_SAFE_INTEGER)) this.#nodes.set(Number(node.id), node.address);
    }
    this.#tables.clear();
    for (const record of answer.tables) this.#tables.set(record.schema.name, record);
    const shownSince = new Map<number, number>();
    for (const record of answer.tables) {
      for (const index of record.schema.indexes) if (index.kind === 'GSI') shownSince.set(index.indexId, this.#gsiShownSince.get(index.indexId) ?? answer.version);
    }
    // Bounded by the map: a GSI gone from it is never shown again (space ids are not reused).
    this.#gsiShownSince.clear();
    for (const [indexId, version] of shownSince) this.#gsiShownSince.set(indexId, version);
    this.#markFirstMap();
    this.#nextMap?.abort();
    this.#nextMap = undefined;
    return true;
  }

  /**
   * A signal that aborts when a newer map is taken (from the watch stream or a refresh): a call
   * waiting for a partition or address the map lacks (a split's right half, recorded by the meta group
   * shortly after the split applied) resumes then, instead of sleeping out its backoff.
   */
  nextMap(): AbortSignal {
    return (this.#nextMap ??= new AbortController()).signal;
  }

  /** The version of the first map that showed the GSI (undefined: none did yet), for its backfill command. */
  gsiShownSince(indexId: number): number | undefined {
    return this.#gsiShownSince.get(indexId);
  }

  table(name: string): TableRecord | undefined {
    return this.#tables.get(name);
  }

  /** Every table record, sorted by name. */
  tables(): TableRecord[] {
    return [...this.#tables.values()].sort((a, b) => (a.schema.name < b.schema.name ? -1 : a.schema.name > b.schema.name ? 1 : 0));
  }

  /**
   * Records this router's own catalog change at once, ahead of the map that will carry it; unless the
   * view already holds a newer revision of the same table (a map with another router's later change
   * arrived first), which must not go back: changes made from it would be refused over and over.
   */
  putTable(record: TableRecord): void {
    const held = this.#tables.get(record.schema.name);
    if (held !== undefined && held.schema.tableId === record.schema.tableId && (held.revision ?? 0) > (record.revision ?? 0)) return;
    this.#tables.set(record.schema.name, record);
  }

  /** Forgets a table this router deleted, with its partitions and its GSIs'. */
  removeTable(name: string): void {
    const record = this.#tables.get(name);
    if (record === undefined) return;
    this.#tables.delete(name);
    this.map.dropTable(record.schema.tableId);
    for (const index of record.schema.indexes) if (index.kind === 'GSI') this.map.dropTable(index.indexId);
  }

  nodeAddress(nodeId: number): string | undefined {
    return this.#nodes.get(nodeId);
  }

  get nodeCount(): number {
    return this.#nodes.size;
  }

  get tableCount(): number {
    return this.#tables.size;
  }

  leaderOf(partitionId: number): number | undefined {
    return this.#leaders.get(partitionId);
  }

  /** A leader a node named; its address too when the map does not know the node yet. */
  learnLeader(partitionId: number, leader: { id: number; address: string }): void {
    this.#leaders.set(partitionId, leader.id);
    if (leader.address !== '' && !this.#nodes.has(leader.id)) this.#nodes.set(leader.id, leader.address);
  }

  forgetLeader(partitionId: number): void {
    this.#leaders.delete(partitionId);
  }

  /** Records the applied index an acknowledged write (or committed transaction) of the partition was answered with (0n: none said). */
  noteWritten(partitionId: number, appliedIndex: bigint): void {
    if (appliedIndex > (this.#writtenThrough.get(partitionId) ?? 0n)) this.#writtenThrough.set(partitionId, appliedIndex);
  }

  /** The applied index an eventual read of the partition asks for (0n: this router wrote nothing there). */
  writtenThrough(partitionId: number): bigint {
    return this.#writtenThrough.get(partitionId) ?? 0n;
  }

  /** How many partitions the router remembers written indexes of (bounded by the map). */
  get writtenPartitions(): number {
    return this.#writtenThrough.size;
  }

  /** Records that a replica refused an eventual read at `atMs`, having applied only `appliedIndex`. */
  noteReplicaBehind(partitionId: number, nodeId: number, appliedIndex: bigint, atMs: number): void {
    let replicas = this.#replicasBehind.get(partitionId);
    if (replicas === undefined) this.#replicasBehind.set(partitionId, (replicas = new Map()));
    replicas.set(nodeId, { appliedIndex, atMs });
  }

  /** A replica answered an eventual read of the partition: what it said before holds no more. */
  forgetReplicaBehind(partitionId: number, nodeId: number): void {
    const replicas = this.#replicasBehind.get(partitionId);
    if (replicas?.delete(nodeId) === true && replicas.size === 0) this.#replicasBehind.delete(partitionId);
  }

  /**
   * Whether the replica said, at `sinceMs` or later, that it had applied less than `minAppliedIndex`
   * (a read asking that much would wait there, then be refused). Older records are dropped.
   */
  replicaBehind(partitionId: number, nodeId: number, minAppliedIndex: bigint, sinceMs: number): boolean {
    const replicas = this.#replicasBehind.get(partitionId);
    const record = replicas?.get(nodeId);
    if (replicas === undefined || record === undefined) return false;
    if (record.atMs >= sinceMs) return record.appliedIndex < minAppliedIndex;
    replicas.delete(nodeId);
    if (replicas.size === 0) this.#replicasBehind.delete(partitionId);
    return false;
  }
}
