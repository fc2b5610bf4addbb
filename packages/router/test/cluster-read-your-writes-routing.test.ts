import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  getRequestFromWire,
  getResultToWire,
  listen,
  shutdown,
  writeResultToWire,
  type PartitionMapAnswer,
} from '@shoal/proto';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../src/cluster/partition-client.ts';
import { classifyFailure, DEFAULT_RETRY_POLICY } from '../src/cluster/retry.ts';

/**
 * What a router does for read-your-writes: it keeps the applied index its acknowledged writes were
 * answered with, per partition and bounded by the map, sends it with its eventual reads, and sends a
 * read a replica refused as behind to the leader. The nodes here are PartitionService stubs on
 * 127.0.0.1 that record what they were asked.
 */

const mapOf = (version: number, partitions: PartitionDescriptor[]): PartitionMapAnswer => ({ notModified: false, version, partitions, nodes: [], tables: [] });

describe('the written indexes a router keeps', () => {
  const [left, right] = initialPartitions(9, 2, 1);

  it('keeps the highest applied index answered per partition', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    expect(view.writtenThrough(left.id)).toBe(0n);
    view.noteWritten(left.id, 12n);
    view.noteWritten(left.id, 7n);
    view.noteWritten(right.id, 3n);
    // An answer without an index (0n) changes nothing.
    view.noteWritten(right.id, 0n);
    expect(view.writtenThrough(left.id)).toBe(12n);
    expect(view.writtenThrough(right.id)).toBe(3n);
  });

  it('forgets the partitions a newer map no longer lists, and only those', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.noteWritten(left.id, 5n);
    view.noteWritten(right.id, 6n);
    expect(view.writtenPartitions).toBe(2);
    // An older map changes nothing.
    view.apply(mapOf(1, [left]));
    expect(view.writtenPartitions).toBe(2);
    view.apply(mapOf(2, [left]));
    expect(view.writtenPartitions).toBe(1);
    expect(view.writtenThrough(left.id)).toBe(5n);
    expect(view.writtenThrough(right.id)).toBe(0n);
  });

  it('a ReplicaBehind answer is its own kind of failure', () => {
    const error = RpcError.withDetail(Status.FAILED_PRECONDITION, 'behind', ErrorDetailSchema, {
      kind: { case: 'replicaBehind', value: { partitionId: 1n, appliedIndex: 3n, minAppliedIndex: 5n } },
    });
    expect(classifyFailure(error)).toEqual({ kind: 'replicaBehind', message: 'behind' });
  });
});

describe('eventual reads of a router that wrote', () => {
  const LEADER = 1;
  const WRITTEN_AT = 42n;
  const table: TableSchema = { name: 't', tableId: 9, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const partition: PartitionDescriptor = {
    ...initialPartitions(table.tableId, 1, 1)[0],
    replicas: [1, 2, 3].map((nodeId) => ({ nodeId, role: 'voter' as const })),
    leaderHint: LEADER,
  };
  /** Per node: the min_applied_index of every Get it was asked, in order. */
  const asked = new Map<number, bigint[]>();
  const servers: Server[] = [];
  const addresses = new Map<number, string>();

  beforeAll(async () => {
    for (const nodeId of [1, 2, 3]) {
      const server = new Server();
      asked.set(nodeId, []);
      addService(server, PartitionService, {
        write: async () => {
          if (nodeId !== LEADER) throw new RpcError(Status.INTERNAL, 'a write reached a follower');
          return writeResultToWire({ applied: true, outcomes: [{ status: 'ok' }] }, WRITTEN_AT);
        },
        get: async (request) => {
          const { options } = getRequestFromWire(request);
          asked.get(nodeId)!.push(options.minAppliedIndex ?? 0n);
          // The followers have applied less than the write; the leader has applied it.
          if (nodeId !== LEADER && (options.minAppliedIndex ?? 0n) > 0n) {
            throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'behind', ErrorDetailSchema, {
              kind: { case: 'replicaBehind', value: { partitionId: BigInt(partition.id), appliedIndex: 1n, minAppliedIndex: options.minAppliedIndex ?? 0n } },
            });
          }
          return getResultToWire({ item: { pk: { S: 'k' }, from: { N: String(nodeId) } }, size: 10 });
        },
      });
      addresses.set(nodeId, `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`);
      servers.push(server);
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 1_000)));
  });

  it('send the index the write was answered with, and go to the leader when a follower is behind', async () => {
    const counters = zeroCounters();
    const channels = new ChannelPool();
    const view = new ClusterView();
    view.apply(mapOf(1, [partition]));
    // The stubs' addresses, as NotLeader hints would teach them; the leader last.
    for (const nodeId of [3, 2, LEADER]) view.learnLeader(partition.id, { id: nodeId, address: addresses.get(nodeId)! });
    // Never asked: the view holds the map.
    const meta = new MetaClient({ addresses: [addresses.get(LEADER)!], channels, policy: DEFAULT_RETRY_POLICY, counters });
    const client = new ClusterPartitionClient({ view, meta, channels, policy: DEFAULT_RETRY_POLICY, rpcTimeoutMs: 5_000, counters });
    try {
      const key = { pk: { S: 'k' } };
      // Before any write: eventual reads ask for nothing and any voter answers.
      for (let i = 0; i < 3; i++) await client.get({ table, key }, { consistent: false });
      expect([1, 2, 3].flatMap((nodeId) => asked.get(nodeId)!)).toEqual([0n, 0n, 0n]);
      expect(counters.replicaBehindRedirectsTotal).toBe(0);

      await client.write({ operations: [{ table, kind: 'Put', key, item: key }] });
      expect(view.writtenThrough(partition.id)).toBe(WRITTEN_AT);
      for (const nodeId of [1, 2, 3]) asked.set(nodeId, []);
      const READS = 6;
      for (let i = 0; i < READS; i++) expect((await client.get({ table, key }, { consistent: false }))?.item.from).toEqual({ N: String(LEADER) });
      const followerAsks = asked.get(2)!.length + asked.get(3)!.length;
      // Every read asked for the write's index; each follower asked refused once and the leader answered.
      expect([1, 2, 3].flatMap((nodeId) => asked.get(nodeId)!).every((index) => index === WRITTEN_AT)).toBe(true);
      expect(asked.get(LEADER)!.length).toBe(READS);
      expect(followerAsks).toBeGreaterThan(0);
      expect(followerAsks).toBeLessThanOrEqual(READS);
      expect(counters.replicaBehindRedirectsTotal).toBe(followerAsks);

      // A consistent read goes to the leader and needs no index.
      asked.set(LEADER, []);
      await client.get({ table, key }, { consistent: true });
      expect(asked.get(LEADER)).toEqual([0n]);
    } finally {
      channels.close();
    }
  });
});
