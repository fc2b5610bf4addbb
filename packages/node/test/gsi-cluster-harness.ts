/**
 * What the GSI tests on three storage node processes share (index-shipping, index-backfill): the
 * meta group's partition map, calls to whichever node answers, every entry of a GSI read from its
 * partitions, AdminService on the meta leader, and shipped GSI records refused (fault injection).
 */
import { expect } from 'vitest';
import { PartitionMap, type IndexSchema, type Item, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import {
  AdminService,
  ErrorDetailSchema,
  FaultInjectionService,
  RpcError,
  Status,
  createClient,
  partitionMapResponseFromWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  statisticsFromWire,
  statisticsRequestToWire,
  type ClientOf,
} from '@shoal/proto';
import type { StorageNodeChild, StorageNodeChildren } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';

/** A GSI as its partitions hold it: every entry, partition by partition in key order, and the summed statistics. */
export interface GsiContents {
  items: Item[];
  itemCount: number;
  sizeBytes: number;
}

/** Entries of a list shown when a read differs from what was wanted. */
const SHOWN_ENTRIES = 5;

/**
 * `got` against `want`, field by field: a list as its length, its first entries missing from `got`
 * and extra in it (compared as JSON), and whether it is in `want`'s order; any other field as it is.
 */
function difference(got: object, want: object): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  const wanted = want as Record<string, unknown>;
  for (const [field, value] of Object.entries(got)) {
    const other = wanted[field];
    if (!Array.isArray(value) || !Array.isArray(other)) {
      summary[field] = value;
      continue;
    }
    const has = new Set(value.map((entry) => JSON.stringify(entry)));
    const wants = new Set(other.map((entry) => JSON.stringify(entry)));
    summary[field] = {
      length: value.length,
      missing: [...wants].filter((entry) => !has.has(entry)).slice(0, SHOWN_ENTRIES),
      extra: [...has].filter((entry) => !wants.has(entry)).slice(0, SHOWN_ENTRIES),
      inOrder: JSON.stringify(value) === JSON.stringify(other),
    };
  }
  return summary;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class GsiClusterHarness {
  readonly cluster: StorageNodeChildren;
  #admin: ClientOf<typeof AdminService> | undefined;

  constructor(cluster: StorageNodeChildren) {
    this.cluster = cluster;
  }

  /** The meta group's partition map now. */
  async partitionMap(): Promise<PartitionDescriptor[]> {
    const answer = partitionMapResponseFromWire(await this.cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (answer.notModified) throw new Error('no map');
    return answer.partitions;
  }

  /** A new key space id (a table's or an index's), from the meta group. */
  async allocateSpaceId(): Promise<number> {
    return (await this.cluster.meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
  }

  /** The partitions of a key space (a table's, or a GSI's) in key order. */
  async partitionsOf(spaceId: number): Promise<PartitionDescriptor[]> {
    return new PartitionMap(await this.partitionMap()).partitionsOf(spaceId);
  }

  /**
   * Asks the nodes of `live` in turn (a follower's NotLeader, an election, a map behind: the next),
   * bounded; a refusal that asking again does not change (invalid, a routing error) is thrown.
   */
  async onAnyNode<T>(call: (node: StorageNodeChild) => Promise<T>, live: readonly StorageNodeChild[] = this.cluster.nodes): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt < 60; attempt++) {
      try {
        return await call(live[attempt % live.length]);
      } catch (error) {
        last = error;
        const routing = error instanceof RpcError ? error.detail(ErrorDetailSchema)?.kind.case : undefined;
        if (!(error instanceof RpcError) || error.code === Status.INVALID_ARGUMENT || routing === 'keyOutOfRange' || routing === 'staleEpoch') throw error;
        await pause(50);
      }
    }
    throw last;
  }

  /** Every entry of the GSI (consistent reads of each of its partitions, `table` the schema naming it), with the summed statistics. */
  async gsiContents(table: TableSchema, index: IndexSchema, live: readonly StorageNodeChild[] = this.cluster.nodes): Promise<GsiContents> {
    const contents: GsiContents = { items: [], itemCount: 0, sizeBytes: 0 };
    for (const partition of await this.partitionsOf(index.indexId)) {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      let exclusiveStartKey: Item | undefined;
      for (let page = 0; page < 1_000; page++) {
        const request = { table, indexName: index.name, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const, ...(exclusiveStartKey ? { exclusiveStartKey } : {}) };
        const result = rangeReadResultFromWire(await this.onAnyNode((node) => this.cluster.partitionClient(node.address).readRange(rangeReadRequestToWire(target, request, { consistent: true }), { timeoutMs: 5_000 }), live));
        contents.items.push(...result.items);
        exclusiveStartKey = result.lastEvaluatedKey;
        if (exclusiveStartKey === undefined) break;
      }
      const statistics = statisticsFromWire(await this.onAnyNode((node) => this.cluster.partitionClient(node.address).statistics(statisticsRequestToWire(target, { table, indexName: index.name }), { timeoutMs: 5_000 }), live));
      contents.itemCount += statistics.itemCount;
      contents.sizeBytes += statistics.sizeBytes;
    }
    return contents;
  }

  /**
   * Waits (bounded) until `read` gives what `want` is, then checks it; on timeout the last read is
   * compared, so the failure shows the difference: summed up (see `difference`), as a diff of
   * thousands of entries would bury every other line of a test run's output.
   */
  async converges<T extends object>(what: string, read: () => Promise<T>, want: T, attempts: number): Promise<void> {
    let last: T | undefined;
    await eventually(async () => {
      last = await read();
      return JSON.stringify(last) === JSON.stringify(want) ? true : undefined;
    }, what, attempts).catch((error: unknown) => {
      expect(difference(last ?? {}, want)).toEqual(difference(want, want));
      throw error;
    });
  }

  /** A call of AdminService on the meta group's leader (found again while the group elects), bounded. */
  async adminCall<T>(call: (client: ClientOf<typeof AdminService>) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      await this.cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options));
      this.#admin?.close();
      this.#admin = createClient(AdminService, this.cluster.meta.leaderAddress!);
      try {
        return await call(this.#admin);
      } catch (error) {
        if (attempt >= 20 || !(error instanceof RpcError)) throw error;
        await pause(100);
      }
    }
  }

  /**
   * The live nodes refuse (or take again) shipped GSI records: nothing leaves the outboxes, so a
   * backfill's walk pauses once its outbox holds half the outbox limit (the nodes started with
   * `faultInjection`).
   */
  async refuseIndexEntries(refuse: boolean): Promise<void> {
    for (const node of this.cluster.nodes.filter((n) => n.alive)) {
      const faults = createClient(FaultInjectionService, node.address);
      try {
        // Asked again while it does not answer (right after a kill, under load, a node may take seconds).
        const { indexEntriesRefused } = await this.onAnyNode(() => faults.setIndexEntriesFault({ refuse }, { timeoutMs: 5_000 }), [node]);
        if (indexEntriesRefused !== refuse) throw new Error(`node ${node.nodeId} answered indexEntriesRefused ${indexEntriesRefused}, not ${refuse}`);
      } finally {
        faults.close();
      }
    }
  }

  close(): void {
    this.#admin?.close();
  }
}
