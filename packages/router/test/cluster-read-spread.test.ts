import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { PartitionService, Server, addService, getManyResultsToWire, getResultToWire, listen, shutdown, type PartitionMapAnswer } from '@shoal/proto';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY } from '../src/cluster/retry.ts';

/**
 * How a router spreads eventually consistent reads over a partition's voters: the reads of one
 * event-loop turn all go to one voter, as one GetMany (not one call per voter), and the next turn's
 * reads to the next voter. The nodes are PartitionService stubs on 127.0.0.1 that count their calls.
 */

const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const NODES = [1, 2, 3];
const partition: PartitionDescriptor = {
  ...initialPartitions(table.tableId, 1, 1)[0],
  replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })),
  leaderHint: 1,
};
const found = (nodeId: number) => ({ item: { pk: { S: 'k' }, from: { N: String(nodeId) } }, size: 10 });

/** Per node: the number of gets each call carried, in order (1 for a plain Get). */
const calls = new Map<number, number[]>();
const servers: Server[] = [];
const addresses = new Map<number, string>();

beforeAll(async () => {
  for (const nodeId of NODES) {
    const server = new Server();
    calls.set(nodeId, []);
    addService(server, PartitionService, {
      get: async () => {
        calls.get(nodeId)!.push(1);
        return getResultToWire(found(nodeId));
      },
      getMany: async (request) => {
        calls.get(nodeId)!.push(request.gets.length);
        return getManyResultsToWire(request.gets.map(() => found(nodeId)));
      },
    });
    addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
    servers.push(server);
  }
});

afterAll(async () => {
  await Promise.all(servers.map((server) => shutdown(server, 1_000)));
});

describe('eventual reads spread over the voters', () => {
  it('go to one voter per turn as one GetMany, the next turn to the next voter', async () => {
    const counters = zeroCounters();
    const channels = new ChannelPool();
    const view = new ClusterView();
    view.apply({ notModified: false, version: 1, partitions: [partition], nodes: [], tables: [] } satisfies PartitionMapAnswer);
    for (const nodeId of NODES) view.learnLeader(partition.id, { id: nodeId, address: addresses.get(nodeId)! });
    const meta = new MetaClient({ addresses: [addresses.get(1)!], channels, policy: DEFAULT_RETRY_POLICY, counters });
    const client = new ClusterPartitionClient({ view, meta, channels, policy: DEFAULT_RETRY_POLICY, rpcTimeoutMs: 5_000, counters });
    const READS = 30;
    const servedBy = (read: { item: { from?: unknown } } | undefined) => (read?.item.from as { N: string } | undefined)?.N;
    try {
      const rounds: string[][] = [];
      for (let round = 0; round < NODES.length; round++) {
        // Made in one turn: every read of the round joins one call.
        const reads = await Promise.all(Array.from({ length: READS }, (_, i) => client.get({ table, key: { pk: { S: `k${i}` } } }, { consistent: false })));
        rounds.push([...new Set(reads.map(servedBy))] as string[]);
      }
      // Each round served whole by one voter, each voter serving one round.
      expect(rounds.every((servers) => servers.length === 1)).toBe(true);
      expect(rounds.flat().sort()).toEqual(NODES.map(String));
      expect(NODES.map((nodeId) => calls.get(nodeId))).toEqual(NODES.map(() => [READS]));

      // Reads one after the other (each in a turn of its own) still take the voters in turn.
      for (const nodeId of NODES) calls.set(nodeId, []);
      const alone: string[] = [];
      for (let i = 0; i < NODES.length; i++) alone.push(servedBy(await client.get({ table, key: { pk: { S: 'k' } } }, { consistent: false }))!);
      expect(alone.sort()).toEqual(NODES.map(String));
      expect(NODES.map((nodeId) => calls.get(nodeId))).toEqual(NODES.map(() => [1]));
    } finally {
      channels.close();
    }
  });
});
