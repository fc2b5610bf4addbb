import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { PartitionMap, type AttributeValue, type PartitionWrite, type TableSchema } from '@shoal/model';
import type { ClusterView } from '../src/cluster/cluster-view.ts';
import { MAX_COALESCED, type CoalescerStats } from '../src/cluster/coalescer.ts';
import { zeroCounters, type ClusterCounters } from '../src/cluster/metrics.ts';
import type { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { withOwnClusterClient } from './support/own-cluster-client.ts';
import { startRoutedCluster, type RoutedCluster } from './support/routed-cluster.ts';

/**
 * Coalescing of single-item requests over a real three-node cluster (child processes): concurrent
 * writes to one partition go as one WriteMany (one Raft entry, counted by the node tests), each with
 * its own outcome; a redirect of the whole call sends every write of it again; gets go as GetMany.
 * Counted, not timed: the requests of one test are issued in the same event-loop turn.
 */

const NODE_IDS = [1, 2, 3];
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

let cluster: RoutedCluster | undefined;
let metaAddresses: string[] = [];

/** A cluster client of the test's own (its counters and coalescing stats start at zero). */
interface TestClient {
  partitions: ClusterPartitionClient;
  view: ClusterView;
  /** Counted from the first request of the test (after the warm-up). */
  counters: ClusterCounters;
  table: TableSchema;
  /** Coalescing since the warm-up: calls of several requests, requests in them, requests sent alone. */
  coalesced(): { writes: CoalescerStats; gets: CoalescerStats };
}

const since = (now: CoalescerStats, then: CoalescerStats): CoalescerStats => ({
  coalescedCalls: now.coalescedCalls - then.coalescedCalls,
  coalescedRequests: now.coalescedRequests - then.coalescedRequests,
  singleCalls: now.singleCalls - then.singleCalls,
});

async function withClient<T>(work: (client: TestClient) => Promise<T>): Promise<T> {
  return withOwnClusterClient(
    metaAddresses,
    async ({ partitions, view, counters }) => {
      const table = view.table('coalesced')!.schema;
      // One write first: the client learns the leader, so the next ones are not redirected.
      await partitions.write(put(table, 'warm-up', 0));
      const before = partitions.coalescing();
      Object.assign(counters, zeroCounters());
      const coalesced = () => {
        const now = partitions.coalescing();
        return { writes: since(now.writes, before.writes), gets: since(now.gets, before.gets) };
      };
      return await work({ partitions, view, counters, table, coalesced });
    },
    { rpcTimeoutMs: 10_000 },
  );
}

const put = (table: TableSchema, pk: string, n: number, condition?: string): PartitionWrite => ({
  operations: [{ table, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), n: N(n) }, ...(condition === undefined ? {} : { expressions: { condition } }) }],
});

beforeAll(async () => {
  // One partition: every key of the table goes to the same group.
  cluster = await startRoutedCluster(NODE_IDS, 'coalescing', { initialPartitions: 1, maxAttempts: 3 });
  ({ metaAddresses } = cluster);
  await cluster.client.send(
    new CreateTableCommand({
      TableName: 'coalesced',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}, 120_000);

afterAll(async () => {
  await cluster?.close();
}, 60_000);

describe('coalesced requests between a router and the nodes', () => {
  it('sends concurrent puts to one partition as one WriteMany, each answered on its own', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, counters, table, coalesced }) => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => partitions.write(put(table, `many-${i}`, i))));
      expect(results).toEqual(Array.from({ length: 20 }, () => ({ applied: true, outcomes: [{ status: 'ok' }] })));
      expect(coalesced().writes).toEqual({ coalescedCalls: 1, coalescedRequests: 20, singleCalls: 0 });
      expect(counters.nodeRequestsTotal).toBe(20);
      const found = await Promise.all(Array.from({ length: 20 }, (_, i) => partitions.get({ table, key: { pk: S(`many-${i}`) } }, { consistent: true })));
      expect(found.map((item) => item?.item.n)).toEqual(Array.from({ length: 20 }, (_, i) => N(i)));
      expect(coalesced().gets).toEqual({ coalescedCalls: 1, coalescedRequests: 20, singleCalls: 0 });
    });
  });

  it('carries at most MAX_COALESCED requests in one call: more in one turn go as several calls', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, coalesced, table }) => {
      const count = MAX_COALESCED + 2;
      const results = await Promise.all(Array.from({ length: count }, (_, i) => partitions.write(put(table, `chunked-${i}`, i))));
      expect(results.every((result) => result.applied)).toBe(true);
      // The last chunk of two.
      expect(coalesced().writes).toEqual({ coalescedCalls: 2, coalescedRequests: count, singleCalls: 0 });
    });
  });

  it('gives each write of one call its own outcome: applied, condition failed, refused, and a transaction alone', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, table, coalesced }) => {
      await partitions.write(put(table, 'taken', 1));
      const [conditional, plain, invalid, transaction] = await Promise.all([
        partitions.write(put(table, 'taken', 2, 'attribute_not_exists(pk)')),
        partitions.write(put(table, 'free', 3)),
        partitions.write({ operations: [{ table, kind: 'Update', key: { pk: S('taken') }, expressions: { update: 'SET pk = :x', values: { ':x': S('other') } } }] }),
        // Two operations: all or none, so never coalesced with the others.
        partitions.write({ operations: [put(table, 'tx-a', 4).operations[0]!, put(table, 'tx-b', 5).operations[0]!] }),
      ]);
      expect(conditional).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S('taken'), n: N(1) } }] });
      expect(plain).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
      expect(invalid.applied).toBe(false);
      expect(invalid.outcomes[0]?.status).toBe('invalid');
      expect(transaction).toEqual({ applied: true, outcomes: [{ status: 'ok' }, { status: 'ok' }] });
      // The first put alone, the three single-item writes in one call, the transaction on its own (a plain Write).
      expect(coalesced().writes).toEqual({ coalescedCalls: 1, coalescedRequests: 3, singleCalls: 1 });
      expect((await partitions.get({ table, key: { pk: S('taken') } }, { consistent: true }))?.item).toEqual({ pk: S('taken'), n: N(1) });
    });
  });

  it('answers each get of one call with its own item or none; consistent and eventual gets go in separate calls', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, view, table, coalesced }) => {
      await partitions.write(put(table, 'readable', 7));
      const [found, missing] = await Promise.all([
        partitions.get({ table, key: { pk: S('readable') } }, { consistent: true }),
        partitions.get({ table, key: { pk: S('never-written') } }, { consistent: true }),
      ]);
      expect(found?.item).toEqual({ pk: S('readable'), n: N(7) });
      expect(missing).toBeUndefined();
      expect(coalesced().gets).toEqual({ coalescedCalls: 1, coalescedRequests: 2, singleCalls: 0 });
      // The eventual gets of one turn go to one voter in one call (the next turn's to the next voter),
      // apart from the consistent ones.
      const voters = view.map.partitionsOf(table.tableId)[0]!.replicas.filter((replica) => replica.role === 'voter').length;
      await Promise.all([
        ...Array.from({ length: 3 * voters }, () => partitions.get({ table, key: { pk: S('readable') } }, { consistent: false })),
        partitions.get({ table, key: { pk: S('readable') } }, { consistent: true }),
        partitions.get({ table, key: { pk: S('readable') } }, { consistent: true }),
      ]);
      expect(coalesced().gets).toEqual({ coalescedCalls: 3, coalescedRequests: 2 + 3 * voters + 2, singleCalls: 0 });
    });
  });

  it('sends every write of a call redirected by NotLeader again, each applied once', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, view, counters, table, coalesced }) => {
      const partition = view.map.partitionsOf(table.tableId)[0]!;
      const leader = view.leaderOf(partition.id)!;
      const follower = partition.replicas.find((replica) => replica.role === 'voter' && replica.nodeId !== leader)!.nodeId;
      view.learnLeader(partition.id, { id: follower, address: '' });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          partitions.write({ operations: [{ table, kind: 'Update', key: { pk: S(`redirected-${i}`) }, expressions: { update: 'ADD #n :one', names: { '#n': 'n' }, values: { ':one': N(1) } } }], returnItems: true }),
        ),
      );
      // Refused before proposing: every write proven unproposed, sent again (together), applied once.
      expect(counters.notLeaderRedirectsTotal).toBe(10);
      expect(counters.ambiguousWritesTotal).toBe(0);
      expect(results.map((result) => result.outcomes[0])).toEqual(Array.from({ length: 10 }, () => ({ status: 'ok', newItem: expect.objectContaining({ n: N(1) }) })));
      expect(coalesced().writes).toEqual({ coalescedCalls: 2, coalescedRequests: 20, singleCalls: 0 });
    });
  });

  it('sends every write of a call refused for a stale epoch again with the current descriptor', { timeout: 60_000 }, async () => {
    await withClient(async ({ partitions, view, counters, table, coalesced }) => {
      view.map = new PartitionMap(view.map.all().map((partition) => ({ ...partition, epoch: partition.epoch - 1 })));
      await Promise.all(Array.from({ length: 6 }, (_, i) => partitions.write(put(table, `stale-${i}`, i))));
      expect(counters.staleEpochRedirectsTotal).toBe(6);
      expect(counters.ambiguousWritesTotal).toBe(0);
      const found = await Promise.all(Array.from({ length: 6 }, (_, i) => partitions.get({ table, key: { pk: S(`stale-${i}`) } }, { consistent: true })));
      expect(found.map((item) => item?.item.n)).toEqual(Array.from({ length: 6 }, (_, i) => N(i)));
    });
  });
});
