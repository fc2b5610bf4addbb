/**
 * The storage node's cluster parts on their own: the MetaClient following NotLeader hints over real
 * gRPC servers on 127.0.0.1, and the ClusterView taking partition map answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import type { PartitionDescriptor, TableRecord } from '@shoal/model';
import { ErrorDetailSchema, MetaService, NodeDescriptorSchema, NodeState, RpcError, Server, Status, addService, listen, shutdown, type ServiceImplementation } from '@shoal/proto';
import { ClusterView, MetaClient } from '@shoal/node';

type MetaMethods = typeof MetaService extends GenService<infer M> ? M : never;

const notLeader = (leader: { id: bigint; address: string } | undefined): RpcError =>
  RpcError.withDetail(Status.FAILED_PRECONDITION, 'not the meta leader', ErrorDetailSchema, { kind: { case: 'notLeader', value: { partitionId: 0n, leader } } });

describe('MetaClient', () => {
  const servers: Server[] = [];
  const calls = { follower: 0, leader: 0, leaderless: 0 };
  let follower = '';
  let leader = '';
  let leaderless = '';
  /** A loopback port nothing listens on: bound once, then shut down. */
  let dead = '';

  const serve = async (implementation: ServiceImplementation<MetaMethods>): Promise<string> => {
    const server = new Server();
    addService(server, MetaService, implementation);
    servers.push(server);
    return `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
  };

  beforeAll(async () => {
    leader = await serve({
      getPartitionMap: async () => {
        calls.leader++;
        return { version: 5n };
      },
      allocateSpaceId: async () => {
        calls.leader++;
        throw new RpcError(Status.RESOURCE_EXHAUSTED, 'no space ids left');
      },
    });
    follower = await serve({
      getPartitionMap: async () => {
        calls.follower++;
        throw notLeader({ id: 3n, address: leader });
      },
    });
    leaderless = await serve({
      getPartitionMap: async () => {
        calls.leaderless++;
        throw notLeader(undefined);
      },
    });
    const gone = new Server();
    dead = `127.0.0.1:${await listen(gone, '127.0.0.1', 0)}`;
    await shutdown(gone, 0);
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => shutdown(server, 0)));
  });

  it('follows the NotLeader hint to the leader, and goes there first afterwards', async () => {
    const client = new MetaClient({ peers: [{ nodeId: 1, address: follower }, { nodeId: 3, address: leader }] });
    try {
      const before = { ...calls };
      expect((await client.call((meta, options) => meta.getPartitionMap({}, options))).version).toBe(5n);
      expect(client.leaderAddress).toBe(leader);
      await client.call((meta, options) => meta.getPartitionMap({}, options));
      expect(calls.follower - before.follower).toBe(1);
      expect(calls.leader - before.leader).toBe(2);
    } finally {
      client.close();
    }
  });

  it('moves past an unreachable peer and one that knows no leader', async () => {
    const client = new MetaClient({ peers: [{ nodeId: 1, address: dead }, { nodeId: 2, address: leaderless }, { nodeId: 3, address: leader }], retryDelayMs: 5 });
    try {
      expect((await client.call((meta, options) => meta.getPartitionMap({}, options))).version).toBe(5n);
      expect(client.leaderAddress).toBe(leader);
    } finally {
      client.close();
    }
  });

  it('answers an error of the call itself at once, without trying other peers', async () => {
    const client = new MetaClient({ peers: [{ nodeId: 3, address: leader }, { nodeId: 1, address: follower }] });
    try {
      const before = { ...calls };
      const error = await client.call((meta, options) => meta.allocateSpaceId({}, options)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcError);
      expect((error as RpcError).code).toBe(Status.RESOURCE_EXHAUSTED);
      expect(calls.leader - before.leader).toBe(1);
      expect(calls.follower).toBe(before.follower);
    } finally {
      client.close();
    }
  });

  it('gives up after its bounded attempts when no peer knows a leader', async () => {
    const client = new MetaClient({ peers: [{ nodeId: 2, address: leaderless }], maxAttempts: 4, retryDelayMs: 5 });
    try {
      const before = calls.leaderless;
      const error = await client.call((meta, options) => meta.getPartitionMap({}, options)).catch((e: unknown) => e);
      expect((error as RpcError).code).toBe(Status.FAILED_PRECONDITION);
      expect(calls.leaderless - before).toBe(4);
    } finally {
      client.close();
    }
  });
});

describe('ClusterView', () => {
  const partition = (id: number, tableId: number, epoch: number): PartitionDescriptor => ({
    id, tableId, epoch, startKey: new Uint8Array([0, 0, 0, tableId]), endKey: new Uint8Array([0, 0, 0, tableId + 1]), replicas: [{ nodeId: 1, role: 'voter' }],
  });
  const record = (name: string, tableId: number): TableRecord => ({
    schema: { name, tableId, hashKey: { name: 'pk', type: 'S' }, indexes: [] }, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {},
  });
  const node = (id: number, address: string) => create(NodeDescriptorSchema, { id: BigInt(id), address, state: NodeState.UP });

  it('holds the newest map it was given and ignores older or unchanged ones', () => {
    const view = new ClusterView();
    expect(view.hasMap()).toBe(false);
    expect(view.apply({ notModified: false, version: 4, partitions: [partition(1, 7, 1)], nodes: [node(1, 'a:1')], tables: [record('t', 7)] })).toBe(true);
    expect(view.version).toBe(4);
    expect(view.descriptorOf(1)?.epoch).toBe(1);
    expect(view.tableOf(7)?.name).toBe('t');
    expect(view.nodeAddress(1)).toBe('a:1');
    expect(view.apply({ notModified: false, version: 3, partitions: [], nodes: [], tables: [] })).toBe(false);
    expect(view.apply({ notModified: true, version: 4 })).toBe(false);
    expect(view.apply({ notModified: false, version: 6, partitions: [partition(1, 7, 2), partition(2, 8, 1)], nodes: [node(1, 'a:1'), node(2, 'b:2')], tables: [record('u', 8)] })).toBe(true);
    expect([...view.partitions()].map((p) => [p.id, p.epoch])).toEqual([[1, 2], [2, 1]]);
    expect(view.tableOf(7)).toBeUndefined();
    expect(view.nodeAddress(2)).toBe('b:2');
  });

  it('takes "not modified since version 0" before any map as the empty initial map', () => {
    const view = new ClusterView();
    expect(view.apply({ notModified: true, version: 3 })).toBe(false);
    expect(view.hasMap()).toBe(false);
    expect(view.apply({ notModified: true, version: 0 })).toBe(true);
    expect(view.hasMap()).toBe(true);
    expect([...view.partitions()]).toEqual([]);
  });
});
