/**
 * The heat map's source: AdminService.Status from the meta leader (NotLeader hints followed), turned
 * into one row per partition (its range, epoch, replicas, leader and the load its replicas reported
 * in their heartbeats), and the changes between two looks: splits, leaders and replicas moving.
 */
import { MetaClient } from '@shoal/node';
import { AdminService, createClient, tableRecordFromWire, type ClientOf, type StatusResponse } from '@shoal/proto';

const CALL_TIMEOUT_MS = 2_000;
const ATTEMPTS = 8;

export interface PartitionHeat {
  id: number;
  table: string;
  epoch: number;
  /** Hex of the range's bounds; end '' is unbounded. */
  start: string;
  end: string;
  replicas: number[];
  /** The replica that reported leading it, undefined when none did. */
  leader: number | undefined;
  /** Sums over the replicas' reports (writes are served by the leader, eventual reads by any). */
  readsPerSecond: number;
  writesPerSecond: number;
  readUnitsPerSecond: number;
  writeUnitsPerSecond: number;
  throttledPerSecond: number;
  readUnitLimit: number;
  writeUnitLimit: number;
  /** Bytes of its items as its leader last measured them (0 before a measure). */
  sizeBytes: number;
  /**
   * The key carrying most of its load, as the meta leader reports it once the partition ran hot for
   * its split policy's time: no split relieves it (hex of the encoded key, its share of the load).
   */
  hotKey?: { key: string; share: number };
}

export interface HeatSnapshot {
  /** ms since the run started. */
  at: number;
  partitions: PartitionHeat[];
}

export interface HeatEvent {
  at: number;
  kind: 'split' | 'new' | 'gone' | 'leader' | 'replicas';
  partition: number;
  text: string;
}

/** How hot a partition runs: its units over its limits, the larger of reads and writes (0..1+). */
export function utilization(partition: PartitionHeat): number {
  const reads = partition.readUnitLimit > 0 ? partition.readUnitsPerSecond / partition.readUnitLimit : 0;
  const writes = partition.writeUnitLimit > 0 ? partition.writeUnitsPerSecond / partition.writeUnitLimit : 0;
  return Math.max(reads, writes);
}

export function partitionsFromStatus(status: StatusResponse, tableNames: ReadonlyMap<number, string>): PartitionHeat[] {
  const rows = new Map<bigint, PartitionHeat>();
  for (const descriptor of status.partitions) {
    rows.set(descriptor.id, {
      id: Number(descriptor.id),
      table: tableNames.get(descriptor.tableId) ?? `#${descriptor.tableId}`,
      epoch: Number(descriptor.epoch),
      start: Buffer.from(descriptor.startKey).toString('hex'),
      end: Buffer.from(descriptor.endKey).toString('hex'),
      replicas: descriptor.replicas.map((replica) => Number(replica.nodeId)),
      leader: undefined,
      readsPerSecond: 0,
      writesPerSecond: 0,
      readUnitsPerSecond: 0,
      writeUnitsPerSecond: 0,
      throttledPerSecond: 0,
      readUnitLimit: 0,
      writeUnitLimit: 0,
      sizeBytes: 0,
    });
  }
  for (const node of status.nodes) {
    const nodeId = Number(node.node?.id ?? 0n);
    for (const load of node.reportedReplicas) {
      const row = rows.get(load.partitionId);
      if (row === undefined) continue;
      if (load.leader) row.leader = nodeId;
      row.readsPerSecond += load.readsPerSecond;
      row.writesPerSecond += load.writesPerSecond;
      row.readUnitsPerSecond += load.readUnitsPerSecond;
      row.writeUnitsPerSecond += load.writeUnitsPerSecond;
      row.throttledPerSecond += load.throttledReadsPerSecond + load.throttledWritesPerSecond;
      row.readUnitLimit = Math.max(row.readUnitLimit, load.readUnitLimit);
      row.writeUnitLimit = Math.max(row.writeUnitLimit, load.writeUnitLimit);
      if (load.leader) row.sizeBytes = Number(load.sizeBytes);
    }
  }
  for (const hot of status.hotKeys) {
    const row = rows.get(hot.partitionId);
    if (row !== undefined) row.hotKey = { key: Buffer.from(hot.key).toString('hex'), share: hot.share };
  }
  return [...rows.values()].sort((a, b) => a.id - b.id);
}

/** What changed between two looks at the cluster. */
export function changes(before: HeatSnapshot, after: HeatSnapshot): HeatEvent[] {
  const events: HeatEvent[] = [];
  const old = new Map(before.partitions.map((p) => [p.id, p]));
  const now = new Map(after.partitions.map((p) => [p.id, p]));
  for (const partition of after.partitions) {
    const previous = old.get(partition.id);
    if (previous === undefined) {
      // Born of a split when a partition of its table ended where it now starts.
      const parent = after.partitions.find((p) => p.table === partition.table && p.id !== partition.id && p.end === partition.start && old.get(p.id)?.end !== p.end);
      events.push(
        parent === undefined
          ? { at: after.at, kind: 'new', partition: partition.id, text: `partition ${partition.id} of ${partition.table} appeared` }
          : { at: after.at, kind: 'split', partition: parent.id, text: `split: partition ${parent.id} of ${partition.table} -> ${parent.id} + ${partition.id}` },
      );
      continue;
    }
    if (previous.leader !== undefined && partition.leader !== undefined && previous.leader !== partition.leader) {
      events.push({ at: after.at, kind: 'leader', partition: partition.id, text: `leader of partition ${partition.id}: node ${previous.leader} -> node ${partition.leader}` });
    }
    if (previous.replicas.join(',') !== partition.replicas.join(',')) {
      events.push({ at: after.at, kind: 'replicas', partition: partition.id, text: `replicas of partition ${partition.id}: [${previous.replicas.join(', ')}] -> [${partition.replicas.join(', ')}]` });
    }
  }
  for (const partition of before.partitions) {
    if (!now.has(partition.id)) events.push({ at: after.at, kind: 'gone', partition: partition.id, text: `partition ${partition.id} of ${partition.table} is gone` });
  }
  return events;
}

export class ClusterWatcher {
  readonly #meta: MetaClient;
  readonly #admins = new Map<string, ClientOf<typeof AdminService>>();
  readonly #tableNames = new Map<number, string>();

  constructor(metaAddresses: readonly string[]) {
    this.#meta = new MetaClient({ peers: metaAddresses.map((address, index) => ({ nodeId: index + 1, address })), callTimeoutMs: CALL_TIMEOUT_MS });
  }

  async look(at: number): Promise<HeatSnapshot> {
    let lastError: unknown;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        const status = await this.#admin(this.#meta.leaderAddress).status({}, { timeoutMs: CALL_TIMEOUT_MS });
        if (status.partitions.some((partition) => !this.#tableNames.has(partition.tableId))) {
          const { records } = await this.#meta.call((client, options) => client.listTables({}, options));
          for (const { schema } of records.map(tableRecordFromWire)) {
            this.#tableNames.set(schema.tableId, schema.name);
            // A GSI's partitions hold its space: named table/index, as shoal admin status does.
            for (const index of schema.indexes) this.#tableNames.set(index.indexId, `${schema.name}/${index.name}`);
          }
        }
        return { at, partitions: partitionsFromStatus(status, this.#tableNames) };
      } catch (error) {
        lastError = error;
        const redirect = this.#meta.redirect(error);
        if (redirect === undefined) throw error;
        if ('next' in redirect) await new Promise((done) => setTimeout(done, 100));
      }
    }
    throw lastError;
  }

  #admin(address: string): ClientOf<typeof AdminService> {
    let client = this.#admins.get(address);
    if (client === undefined) {
      client = createClient(AdminService, address);
      this.#admins.set(address, client);
    }
    return client;
  }

  close(): void {
    this.#meta.close();
    for (const client of this.#admins.values()) client.close();
  }
}
