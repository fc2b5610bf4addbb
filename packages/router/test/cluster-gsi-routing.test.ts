import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCollectionPrefix, initialPartitions, partitionContains, type PartitionDescriptor, type TableRecord, type TableSchema } from '@shoal/model';
import {
  MetaService,
  NodeState,
  PartitionService,
  Server,
  addService,
  backfillIndexRequestFromWire,
  dropIndexRequestFromWire,
  listen,
  rangeReadRequestFromWire,
  rangeReadResultToWire,
  shutdown,
  statisticsRequestFromWire,
  statisticsToWire,
} from '@shoal/proto';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY } from '../src/cluster/retry.ts';

/**
 * Which partitions a router asks for a GSI: its own (tableId = the GSI's space id) for reads,
 * statistics, readiness and the replicas' confirmation of a backfill, the base table's for its backfill
 * and to stop it when the GSI is dropped (the meta group removed the GSI's partitions). The node is a PartitionService stub on 127.0.0.1 recording what it was asked.
 */

const table: TableSchema = {
  name: 'orders',
  tableId: 9,
  hashKey: { name: 'pk', type: 'S' },
  indexes: [
    { name: 'byUser', kind: 'GSI', indexId: 10, hashKey: { name: 'user', type: 'S' }, projection: { type: 'KEYS_ONLY' } },
    { name: 'byDate', kind: 'LSI', indexId: 11, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'date', type: 'S' }, projection: { type: 'ALL' } },
  ],
};
const record: TableRecord = { schema: table, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {} };
const voters = [{ nodeId: 1, role: 'voter' as const }];
const tablePartitions = initialPartitions(table.tableId, 2, 1).map((p): PartitionDescriptor => ({ ...p, replicas: voters }));
const gsiPartitions = initialPartitions(10, 3, 3).map((p): PartitionDescriptor => ({ ...p, replicas: voters }));

interface Asked {
  rpc: string;
  partitionId: number;
  indexName?: string;
  consistent?: boolean;
  waitMs?: number;
  /** A backfill call's GSI creation map version. */
  createdAt?: number;
}

describe('a router over a table with a GSI of its own partitions', () => {
  let asked: Asked[] = [];
  let server: Server;
  let address = '';
  let client: ClusterPartitionClient;
  let channels: ChannelPool;

  beforeAll(async () => {
    server = new Server();
    addService(server, PartitionService, {
      readRange: async (request) => {
        const { target, request: read, options } = rangeReadRequestFromWire(request);
        asked.push({ rpc: 'readRange', partitionId: Number(target.partitionId), ...(read.indexName === undefined ? {} : { indexName: read.indexName }), consistent: options.consistent });
        return rangeReadResultToWire({ items: [], count: 0, scannedCount: 0, bytesRead: 0 });
      },
      statistics: async (request) => {
        const { target, request: statistics } = statisticsRequestFromWire(request);
        asked.push({ rpc: 'statistics', partitionId: Number(target.partitionId), ...(statistics.indexName === undefined ? {} : { indexName: statistics.indexName }) });
        // Each partition counts its id in items, ten times that in bytes: the sum tells which answered.
        return statisticsToWire({ itemCount: Number(target.partitionId), sizeBytes: 10 * Number(target.partitionId) });
      },
      backfillIndex: async (request) => {
        const { target, request: index, waitMs } = backfillIndexRequestFromWire(request);
        asked.push({ rpc: 'backfillIndex', partitionId: Number(target.partitionId), indexName: index.indexName, waitMs, ...(index.indexCreatedAtMapVersion === undefined ? {} : { createdAt: index.indexCreatedAtMapVersion }) });
        // Not done at the first call of a partition: the router asks again.
        return { done: asked.filter((a) => a.rpc === 'backfillIndex' && a.partitionId === Number(target.partitionId)).length > 1 };
      },
      dropIndex: async (request) => {
        const { target, request: index } = dropIndexRequestFromWire(request);
        asked.push({ rpc: 'dropIndex', partitionId: Number(target.partitionId), indexName: index.indexName });
        return {};
      },
    });
    // The map after a backfill round: unchanged (the router asks it to find split halves).
    addService(server, MetaService, {
      getPartitionMap: async (request) => ({ version: request.knownVersion, notModified: true, partitions: [], nodes: [], tables: [] }),
    });
    address = `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
    const counters = zeroCounters();
    channels = new ChannelPool();
    const view = new ClusterView();
    const nodes = [{ $typeName: 'shoal.v1.NodeDescriptor' as const, id: 1n, address, state: NodeState.UP }];
    // The first map showing the GSI: version 7, the version every backfill call carries.
    view.apply({ notModified: false, version: 7, partitions: [...tablePartitions, ...gsiPartitions], nodes, tables: [record] });
    const meta = new MetaClient({ addresses: [address], channels, policy: DEFAULT_RETRY_POLICY, counters });
    client = new ClusterPartitionClient({ view, meta, channels, policy: DEFAULT_RETRY_POLICY, rpcTimeoutMs: 5_000, counters });
  });

  afterAll(async () => {
    channels.close();
    await shutdown(server, 1_000);
  });

  const askedNow = (): Asked[] => {
    const all = asked.toSorted((a, b) => a.partitionId - b.partitionId);
    asked = [];
    return all;
  };

  it('reads a GSI Query from the GSI partition holding its hash key, eventually consistent, the request naming the index', async () => {
    asked = [];
    await client.readRange({ table, indexName: 'byUser', hashValue: { S: 'u7' }, forward: true, maxBytes: 1 << 20, select: 'ALL_PROJECTED_ATTRIBUTES' }, { consistent: false });
    const owner = gsiPartitions.find((p) => partitionContains(p, encodeCollectionPrefix(10, { S: 'u7' })))!;
    expect(askedNow()).toEqual([{ rpc: 'readRange', partitionId: owner.id, indexName: 'byUser', consistent: false }]);
  });

  it('scans a GSI over its partitions in key order, and an LSI over the table partitions', async () => {
    asked = [];
    await client.readRange({ table, indexName: 'byUser', forward: true, maxBytes: 1 << 20, select: 'COUNT' }, { consistent: false });
    expect(asked.map((a) => a.partitionId)).toEqual(gsiPartitions.map((p) => p.id));
    asked = [];
    await client.readRange({ table, indexName: 'byDate', forward: true, maxBytes: 1 << 20, select: 'COUNT' }, { consistent: false });
    expect(askedNow().map((a) => [a.partitionId, a.indexName])).toEqual(tablePartitions.map((p) => [p.id, 'byDate']));
  });

  it('counts a GSI on its own partitions, the table and an LSI on the table partitions', async () => {
    asked = [];
    expect(await client.statistics(table, 'byUser')).toEqual({ itemCount: 3 + 4 + 5, sizeBytes: 10 * (3 + 4 + 5) });
    expect(askedNow()).toEqual(gsiPartitions.map((p) => ({ rpc: 'statistics', partitionId: p.id, indexName: 'byUser' })));
    expect(await client.statistics(table)).toEqual({ itemCount: 1 + 2, sizeBytes: 10 * (1 + 2) });
    expect(askedNow()).toEqual(tablePartitions.map((p) => ({ rpc: 'statistics', partitionId: p.id })));
    expect(await client.statistics(table, 'byDate')).toEqual({ itemCount: 1 + 2, sizeBytes: 10 * (1 + 2) });
    expect(askedNow()).toEqual(tablePartitions.map((p) => ({ rpc: 'statistics', partitionId: p.id, indexName: 'byDate' })));
  });

  it('waits for leaders of a new table and its GSI, or of a GSI just added only', async () => {
    asked = [];
    await client.awaitLeaders(table, 5_000);
    expect(askedNow()).toEqual([
      ...tablePartitions.map((p) => ({ rpc: 'readRange', partitionId: p.id, consistent: true })),
      ...gsiPartitions.map((p) => ({ rpc: 'readRange', partitionId: p.id, indexName: 'byUser', consistent: true })),
    ]);
    await client.awaitLeaders(table, 5_000, ['byUser']);
    expect(askedNow()).toEqual(gsiPartitions.map((p) => ({ rpc: 'readRange', partitionId: p.id, indexName: 'byUser', consistent: true })));
  });

  it('backfills a GSI on the table partitions, asking each until it answers done (with the version of the first map showing the GSI), then reads each GSI replica consistently; a drop asks the table partitions to stop it', async () => {
    asked = [];
    await client.backfillIndex(table, 'byUser');
    const backfillCall = (p: PartitionDescriptor): Asked => ({ rpc: 'backfillIndex', partitionId: p.id, indexName: 'byUser', waitMs: 5_000, createdAt: 7 });
    expect(askedNow()).toEqual([
      ...tablePartitions.flatMap((p) => [backfillCall(p), backfillCall(p)]),
      ...gsiPartitions.map((p) => ({ rpc: 'readRange', partitionId: p.id, indexName: 'byUser', consistent: true })),
    ]);
    await client.dropIndex(table, 'byUser');
    expect(askedNow()).toEqual(tablePartitions.map((p) => ({ rpc: 'dropIndex', partitionId: p.id, indexName: 'byUser' })));
  });

  it('forgets the partitions of a deleted table and of its GSIs', () => {
    const view = new ClusterView();
    view.apply({ notModified: false, version: 1, partitions: [...tablePartitions, ...gsiPartitions], nodes: [], tables: [record] });
    view.removeTable(table.name);
    expect(view.map.size).toBe(0);
  });

  it('keeps the version of the first map showing a GSI while later maps show it, forgets it once a map does not, and takes none from a record put ahead of the map', () => {
    const view = new ClusterView();
    const other: TableRecord = { ...record, schema: { ...table, name: 'other', tableId: 20, indexes: [{ ...table.indexes[0]!, indexId: 21 }] } };
    view.apply({ notModified: false, version: 3, partitions: [], nodes: [], tables: [] });
    view.putTable(record);
    expect(view.gsiShownSince(10)).toBeUndefined();
    view.apply({ notModified: false, version: 4, partitions: [], nodes: [], tables: [record] });
    view.apply({ notModified: false, version: 6, partitions: [], nodes: [], tables: [record, other] });
    expect([view.gsiShownSince(10), view.gsiShownSince(21)]).toEqual([4, 6]);
    view.apply({ notModified: false, version: 7, partitions: [], nodes: [], tables: [other] });
    expect([view.gsiShownSince(10), view.gsiShownSince(21)]).toEqual([undefined, 6]);
  });
});
