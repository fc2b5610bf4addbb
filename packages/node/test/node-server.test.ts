import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttributeValue, Item, PartitionWrite, PartitionWriteResult, TableSchema } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Status,
  createClient,
  getRequestToWire,
  getResultFromWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  writeRequestToWire,
  writeResultFromWire,
  type ClientOf,
  type ErrorDetail,
  type GetResult,
} from '@shoal/proto';
import { ForkedNode } from './fixtures/forked-node.ts';
import type { NodeServerAddresses, NodeServerCommand, NodeServerState } from './fixtures/node-server-process.ts';
import { eventually } from './fixtures/transport-harness.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/node-server-process.ts', import.meta.url));
const NODES: NodeId[] = [1, 2, 3];
const PARTITIONS = [1, 2];
const TABLE: TableSchema = { name: 'orders', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const S = (value: string): AttributeValue => ({ S: value });

/** A storage node process and a PartitionService client to its gRPC server. */
class NodeChild extends ForkedNode<NodeServerCommand> {
  grpcAddress = '';
  client: ClientOf<typeof PartitionService> | undefined;

  constructor(nodeId: NodeId) {
    super(FIXTURE, nodeId);
  }

  get rpc(): ClientOf<typeof PartitionService> {
    this.client ??= createClient(PartitionService, this.grpcAddress);
    return this.client;
  }

  state(): Promise<NodeServerState> {
    return this.request<NodeServerState>({ op: 'state' });
  }
}

const target = (partition: number) => ({ partitionId: BigInt(partition), epoch: 1n });

const put = (pk: string, value: string, condition?: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S(value) }, ...(condition ? { expressions: { condition } } : {}) }],
});

async function write(node: NodeChild, partition: number, request: PartitionWrite): Promise<PartitionWriteResult> {
  return writeResultFromWire(await node.rpc.write(writeRequestToWire(target(partition), request)));
}

async function get(node: NodeChild, partition: number, pk: string, consistent: boolean): Promise<GetResult> {
  return getResultFromWire(await node.rpc.get(getRequestToWire(target(partition), { table: TABLE, key: { pk: S(pk) } }, { consistent })));
}

async function scan(node: NodeChild, partition: number, consistent: boolean): Promise<Item[]> {
  const request = { table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const };
  return rangeReadResultFromWire(await node.rpc.readRange(rangeReadRequestToWire(target(partition), request, { consistent }))).items;
}

/** The RpcError a call fails with, and its error detail. */
async function failure(call: Promise<unknown>): Promise<{ error: RpcError; detail: ErrorDetail['kind'] | undefined }> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(error)}`);
  return { error, detail: error.detail(ErrorDetailSchema)?.kind };
}

/** The leader of `partition` all the given nodes agree on, if they do. */
async function agreedLeader(nodes: readonly NodeChild[], partition: number): Promise<NodeChild | undefined> {
  const states = await Promise.all(nodes.map((n) => n.state()));
  const groups = states.map((s) => s.status.find((g) => g.groupId === partition));
  const leaders = new Set(groups.map((g) => g?.leader ?? 0));
  if (leaders.size !== 1) return undefined;
  return nodes.find((n, i) => n.nodeId === groups[i]?.leader && groups[i]?.role === 'leader');
}

describe('StorageNodeServer: PartitionService of three storage node processes', () => {
  let root = '';
  let nodes: NodeChild[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-node-server-'));
    nodes = NODES.map((id) => new NodeChild(id));
    const addresses = await Promise.all(
      nodes.map((n) => n.request<NodeServerAddresses>({ op: 'start', nodeId: n.nodeId, dir: join(root, `node-${n.nodeId}`), partitions: PARTITIONS })),
    );
    nodes.forEach((n, i) => {
      n.address = addresses[i].raftAddress;
      n.grpcAddress = addresses[i].grpcAddress;
    });
    for (const n of nodes) {
      for (const peer of nodes) {
        if (peer !== n) await n.request({ op: 'setPeer', nodeId: peer.nodeId, raftAddress: peer.address, grpcAddress: peer.grpcAddress });
      }
    }
    for (const n of nodes) await n.request({ op: 'createGroups', voters: NODES });
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) n.client?.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(root, { recursive: true, force: true });
  });

  it('a follower answers a write with NotLeader naming the leader, which takes the write', { timeout: 30_000 }, async () => {
    for (const partition of PARTITIONS) {
      const leader = await eventually(() => agreedLeader(nodes, partition), `a leader of partition ${partition}`);
      const follower = nodes.find((n) => n !== leader)!;
      const { error, detail } = await failure(write(follower, partition, put(`k${partition}`, 'one')));
      expect(error.code).toBe(Status.FAILED_PRECONDITION);
      expect(detail?.case).toBe('notLeader');
      if (detail?.case !== 'notLeader') return;
      expect(detail.value.partitionId).toBe(BigInt(partition));
      expect(detail.value.leader?.id).toBe(BigInt(leader.nodeId));
      const hinted = nodes.find((n) => n.grpcAddress === detail.value.leader?.address)!;
      expect(hinted).toBe(leader);
      expect(await write(hinted, partition, put(`k${partition}`, 'one'))).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
      expect(await get(leader, partition, `k${partition}`, true)).toMatchObject({ item: { pk: S(`k${partition}`), v: S('one') } });
    }
  });

  it('serves consistent reads through ReadIndex and eventual reads from a follower’s own store', { timeout: 30_000 }, async () => {
    const leader = await eventually(() => agreedLeader(nodes, 1), 'a leader of partition 1');
    const follower = nodes.find((n) => n !== leader)!;
    expect(await write(leader, 1, put('read-me', 'fresh'))).toMatchObject({ applied: true });
    expect((await scan(leader, 1, true)).map((item) => item.pk)).toContainEqual(S('read-me'));

    const [leaderBefore, followerBefore] = await Promise.all([leader.state(), follower.state()]);
    // The follower may not have applied the write yet: an eventual read is allowed to miss it.
    const found = await eventually(async () => (await get(follower, 1, 'read-me', false)) ?? undefined, 'the write on the follower');
    expect(found.item).toEqual({ pk: S('read-me'), v: S('fresh') });
    const [leaderAfter, followerAfter] = await Promise.all([leader.state(), follower.state()]);
    // The follower's own server answered (nothing is forwarded): its counter moved, the leader's did not.
    expect(followerAfter.stats.eventualReads).toBeGreaterThan(followerBefore.stats.eventualReads);
    expect(leaderAfter.stats.eventualReads).toBe(leaderBefore.stats.eventualReads);
    // A consistent read on the follower passes ReadIndex and sees the write at once.
    expect(await get(follower, 1, 'read-me', true)).toMatchObject({ item: { v: S('fresh') } });
    expect((await follower.state()).stats.consistentReads).toBe(followerAfter.stats.consistentReads + 1);
  });

  it('answers a failed condition with a conditionFailed outcome and changes nothing', { timeout: 30_000 }, async () => {
    const leader = await eventually(() => agreedLeader(nodes, 2), 'a leader of partition 2');
    await write(leader, 2, put('taken', 'first'));
    const result = await write(leader, 2, put('taken', 'second', 'attribute_not_exists(pk)'));
    // The outcome carries the current item (for ReturnValuesOnConditionCheckFailure).
    expect(result).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S('taken'), v: S('first') } }] });
    expect(await get(leader, 2, 'taken', true)).toMatchObject({ item: { v: S('first') } });
  });

  it('answers a DynamoDB error of the store with its gRPC status and DynamoDbError detail', async () => {
    const request = { table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const, filter: 'v = = :x' };
    const { error, detail } = await failure(nodes[0].rpc.readRange(rangeReadRequestToWire(target(1), request, { consistent: false })));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(detail?.case).toBe('dynamodb');
    if (detail?.case === 'dynamodb') expect(detail.value.type).toBe('ValidationException');
  });

  it('answers a partition it does not host with PartitionNotFound', async () => {
    for (const call of [() => get(nodes[0], 99, 'x', true), () => write(nodes[0], 99, put('x', 'y')), () => scan(nodes[0], 99, false)]) {
      const { error, detail } = await failure(call());
      expect(error.code).toBe(Status.NOT_FOUND);
      expect(detail).toEqual(expect.objectContaining({ case: 'partitionNotFound', value: expect.objectContaining({ partitionId: 99n }) }));
    }
  });

  it('after SIGKILL of a leader, writes succeed through the new leader and earlier writes survive', { timeout: 60_000 }, async () => {
    const leader = await eventually(() => agreedLeader(nodes, 1), 'a leader of partition 1');
    await leader.kill();
    const survivors = nodes.filter((n) => n.alive);
    const successor = await eventually(() => agreedLeader(survivors, 1), 'a new leader of partition 1');
    expect(successor.nodeId).not.toBe(leader.nodeId);
    expect(await write(successor, 1, put('after', 'kill'))).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
    const pks = (await scan(successor, 1, true)).map((item) => item.pk);
    expect(pks).toEqual(expect.arrayContaining([S('k1'), S('read-me'), S('after')]));
    // Partition 2 keeps serving too (its leader may have been the killed node as well).
    const leader2 = await eventually(() => agreedLeader(survivors, 2), 'a leader of partition 2');
    expect(await write(leader2, 2, put('after', 'kill'))).toMatchObject({ applied: true });
  });
});
