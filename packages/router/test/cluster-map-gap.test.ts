import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { MetaService, NodeState, PartitionService, Server, addService, listen, shutdown, writeResultToWire } from '@shoal/proto';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import type { RetryPolicy } from '../src/cluster/retry.ts';

/**
 * A key whose partition the map lacks (a split's right half before the meta group recorded it) waits
 * for the next map, not out its backoff: the write goes as soon as the watch stream brings the map.
 * The backoff here is a minute, far beyond the test's timeout, so only the wait for the map can
 * finish the call. The node and the meta group are stubs on 127.0.0.1.
 */
describe('a write whose partition is missing from the map', () => {
  const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const key = { pk: { S: 'k' } };
  const policy: RetryPolicy = { attempts: 8, totalMs: 120_000, baseDelayMs: 60_000, maxDelayMs: 60_000 };
  const servers: Server[] = [];
  let nodeAddress = '';
  let metaAddress = '';
  let writes = 0;
  /** Called when the router asks the meta group for the map (it answers "not modified"). */
  let onMapAsked: () => void = () => {};

  beforeAll(async () => {
    const node = new Server();
    addService(node, PartitionService, {
      write: async () => {
        writes++;
        return writeResultToWire({ applied: true, outcomes: [{ status: 'ok' }] }, 3n);
      },
    });
    nodeAddress = `127.0.0.1:${await listen(node, '127.0.0.1', 0)}`;
    const meta = new Server();
    addService(meta, MetaService, {
      getPartitionMap: async (request) => {
        onMapAsked();
        return { version: request.knownVersion, notModified: true, partitions: [], nodes: [], tables: [] };
      },
    });
    metaAddress = `127.0.0.1:${await listen(meta, '127.0.0.1', 0)}`;
    servers.push(node, meta);
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  it('goes once the next map holds it', async () => {
    const counters = zeroCounters();
    const channels = new ChannelPool();
    const view = new ClusterView();
    const nodes = [{ $typeName: 'shoal.v1.NodeDescriptor' as const, id: 1n, address: nodeAddress, state: NodeState.UP }];
    view.apply({ notModified: false, version: 1, partitions: [], nodes, tables: [] });
    const partition: PartitionDescriptor = { ...initialPartitions(table.tableId, 1, 1)[0], replicas: [{ nodeId: 1, role: 'voter' }], leaderHint: 1 };
    // The watch stream's next map, delivered after the router found the partition missing and asked.
    onMapAsked = () => {
      onMapAsked = () => {};
      setTimeout(() => view.apply({ notModified: false, version: 2, partitions: [partition], nodes, tables: [] }), 20);
    };
    const meta = new MetaClient({ addresses: [metaAddress], channels, policy, counters });
    const client = new ClusterPartitionClient({ view, meta, channels, policy, rpcTimeoutMs: 5_000, counters });
    try {
      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      expect(writes).toBe(1);
      expect(counters.mapRefreshesTotal).toBe(1);
      expect(counters.exhaustedRetriesTotal).toBe(0);
    } finally {
      channels.close();
    }
  }, 20_000);

  it('the view signals the next map, and only a newer one', () => {
    const view = new ClusterView();
    view.apply({ notModified: false, version: 4, partitions: [], nodes: [], tables: [] });
    const next = view.nextMap();
    expect(view.nextMap()).toBe(next);
    view.apply({ notModified: true, version: 4 });
    view.apply({ notModified: false, version: 3, partitions: [], nodes: [], tables: [] });
    expect(next.aborted).toBe(false);
    view.apply({ notModified: false, version: 5, partitions: [], nodes: [], tables: [] });
    expect(next.aborted).toBe(true);
    expect(view.nextMap().aborted).toBe(false);
  });
});
