import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type IncomingHttpHeaders } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeItemKey,
  initialPartitions,
  partitionContains,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type PartitionDescriptor,
  type PartitionWrite,
  type PartitionWriteResult,
  type RangeReadRequest,
  type TableSchema,
} from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Status,
  backfillIndexRequestToWire,
  createClient,
  dropIndexRequestToWire,
  getRequestToWire,
  getResultFromWire,
  partitionDescriptorFromWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  statisticsFromWire,
  statisticsRequestToWire,
  writeRequestToWire,
  writeResultFromWire,
  type ClientOf,
  type ErrorDetail,
  type GetResult,
  type RoutedTo,
} from '@shoal/proto';
import { ForkedNode } from './fixtures/forked-node.ts';
import type { NodeServerAddresses, NodeServerCommand, NodeServerState } from './fixtures/node-server-process.ts';
import { eventually } from './fixtures/eventually.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/node-server-process.ts', import.meta.url));
const NODES: NodeId[] = [1, 2, 3];
const BY_V: IndexSchema = { name: 'byV', kind: 'GSI', indexId: 6, hashKey: { name: 'v', type: 'S' }, projection: { type: 'ALL' } };
const TABLE: TableSchema = { name: 'orders', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const INDEXED: TableSchema = { ...TABLE, indexes: [BY_V] };
/** The table's two partitions (hash halves of its space), replicated on all three nodes. */
const PARTITIONS: PartitionDescriptor[] = initialPartitions(TABLE.tableId, 2, 1).map((p) => ({
  ...p,
  replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' as const })),
}));
const [P1, P2] = PARTITIONS;
/** A descriptor as it comes off the wire: plain Uint8Array keys (initialPartitions makes Buffers). */
const asDecoded = (partition: PartitionDescriptor): PartitionDescriptor => ({
  ...partition,
  startKey: Uint8Array.from(partition.startKey),
  endKey: Uint8Array.from(partition.endKey),
});
const S = (value: string): AttributeValue => ({ S: value });

/** Partition key values that fall in `partition`: `${prefix}0`, `${prefix}1`, ... skipping the others'. */
function keysIn(partition: PartitionDescriptor, prefix: string, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count && i < 10_000; i++) {
    if (partitionContains(partition, encodeItemKey(TABLE.tableId, S(`${prefix}${i}`)))) keys.push(`${prefix}${i}`);
  }
  return keys;
}
const keyIn = (partition: PartitionDescriptor, prefix: string): string => keysIn(partition, prefix, 1)[0];

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

const at = (partition: PartitionDescriptor, epoch = partition.epoch): RoutedTo => ({ partitionId: BigInt(partition.id), epoch: BigInt(epoch) });

const put = (pk: string, value: string, condition?: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S(value) }, ...(condition ? { expressions: { condition } } : {}) }],
});

async function write(node: NodeChild, partition: PartitionDescriptor, request: PartitionWrite, target = at(partition)): Promise<PartitionWriteResult> {
  return writeResultFromWire(await node.rpc.write(writeRequestToWire(target, request)));
}

async function get(node: NodeChild, partition: PartitionDescriptor, pk: string, consistent: boolean, target = at(partition)): Promise<GetResult> {
  return getResultFromWire(await node.rpc.get(getRequestToWire(target, { table: TABLE, key: { pk: S(pk) } }, { consistent })));
}

const scanRequest = (extra: Partial<RangeReadRequest> = {}): RangeReadRequest => ({ table: TABLE, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES', ...extra });

async function readRange(node: NodeChild, partition: PartitionDescriptor, request: RangeReadRequest, consistent: boolean, target = at(partition)) {
  return rangeReadResultFromWire(await node.rpc.readRange(rangeReadRequestToWire(target, request, { consistent })));
}

async function scan(node: NodeChild, partition: PartitionDescriptor, consistent: boolean): Promise<Item[]> {
  return (await readRange(node, partition, scanRequest(), consistent)).items;
}

const pkOf = (item: Item): string => (item.pk as { S: string }).S;

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
async function agreedLeader(nodes: readonly NodeChild[], partition: PartitionDescriptor): Promise<NodeChild | undefined> {
  const states = await Promise.all(nodes.map((n) => n.state()));
  const groups = states.map((s) => s.status.find((g) => g.groupId === partition.id));
  const leaders = new Set(groups.map((g) => g?.leader ?? 0));
  if (leaders.size !== 1) return undefined;
  return nodes.find((n, i) => n.nodeId === groups[i]?.leader && groups[i]?.role === 'leader');
}

/** Sends one gRPC frame holding bytes no protobuf message can contain (a tag of wire type 7); resolves with the call's status. */
async function sendCorruptFrame(address: string, path: string): Promise<{ status: number; message: string }> {
  const session = connect(`http://${address}`);
  try {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const trailers = new Promise<IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve));
    const headers = new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
    stream.resume();
    stream.end(Buffer.from([0, 0, 0, 0, 1, 0x0f]));
    // A trailers-only answer puts the status in the headers.
    const answer = await headers.then((h) => ('grpc-status' in h ? h : trailers));
    return { status: Number(answer['grpc-status']), message: decodeURIComponent(String(answer['grpc-message'] ?? '')) };
  } finally {
    session.close();
  }
}

const leaderOf = (nodes: readonly NodeChild[], partition: PartitionDescriptor): Promise<NodeChild> =>
  eventually(() => agreedLeader(nodes, partition), `a leader of partition ${partition.id}`);

describe('StorageNodeServer: PartitionService of three storage node processes, one table in two partitions', () => {
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
      const pk = keyIn(partition, 'k');
      const leader = await leaderOf(nodes, partition);
      const follower = nodes.find((n) => n !== leader)!;
      const { error, detail } = await failure(write(follower, partition, put(pk, 'one')));
      expect(error.code).toBe(Status.FAILED_PRECONDITION);
      expect(detail?.case).toBe('notLeader');
      if (detail?.case !== 'notLeader') return;
      expect(detail.value.partitionId).toBe(BigInt(partition.id));
      expect(detail.value.leader?.id).toBe(BigInt(leader.nodeId));
      const hinted = nodes.find((n) => n.grpcAddress === detail.value.leader?.address)!;
      expect(hinted).toBe(leader);
      expect(await write(hinted, partition, put(pk, 'one'))).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
      expect(await get(leader, partition, pk, true)).toMatchObject({ item: { pk: S(pk), v: S('one') } });
    }
  });

  it('serves consistent reads through ReadIndex and eventual reads from a follower’s own store', { timeout: 30_000 }, async () => {
    const pk = keyIn(P1, 'read-me');
    const leader = await leaderOf(nodes, P1);
    const follower = nodes.find((n) => n !== leader)!;
    expect(await write(leader, P1, put(pk, 'fresh'))).toMatchObject({ applied: true });
    expect((await scan(leader, P1, true)).map(pkOf)).toContain(pk);

    const [leaderBefore, followerBefore] = await Promise.all([leader.state(), follower.state()]);
    // The follower may not have applied the write yet: an eventual read is allowed to miss it.
    const found = await eventually(async () => (await get(follower, P1, pk, false)) ?? undefined, 'the write on the follower');
    expect(found.item).toEqual({ pk: S(pk), v: S('fresh') });
    // The stored JSON text crossed the wire as is.
    expect(JSON.parse(found.json!)).toEqual(found.item);
    const [leaderAfter, followerAfter] = await Promise.all([leader.state(), follower.state()]);
    // The follower's own server answered (nothing is forwarded): its counter moved, the leader's did not.
    expect(followerAfter.stats.eventualReads).toBeGreaterThan(followerBefore.stats.eventualReads);
    expect(leaderAfter.stats.eventualReads).toBe(leaderBefore.stats.eventualReads);
    // A consistent read on the follower passes ReadIndex and sees the write at once.
    expect(await get(follower, P1, pk, true)).toMatchObject({ item: { v: S('fresh') } });
    expect((await follower.state()).stats.consistentReads).toBe(followerAfter.stats.consistentReads + 1);
  });

  it('answers a failed condition with a conditionFailed outcome and changes nothing', { timeout: 30_000 }, async () => {
    const pk = keyIn(P2, 'taken');
    const leader = await leaderOf(nodes, P2);
    await write(leader, P2, put(pk, 'first'));
    const result = await write(leader, P2, put(pk, 'second', 'attribute_not_exists(pk)'));
    // The outcome carries the current item (for ReturnValuesOnConditionCheckFailure).
    expect(result).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S(pk), v: S('first') } }] });
    expect(await get(leader, P2, pk, true)).toMatchObject({ item: { v: S('first') } });
  });

  it('answers a DynamoDB error of the store with its gRPC status and DynamoDbError detail', async () => {
    const { error, detail } = await failure(readRange(nodes[0], P1, scanRequest({ filter: 'v = = :x' }), false));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(detail?.case).toBe('dynamodb');
    if (detail?.case === 'dynamodb') expect(detail.value.type).toBe('ValidationException');
  });

  it('scans and counts each partition within its own range, on any replica', { timeout: 30_000 }, async () => {
    const written = new Map<PartitionDescriptor, string[]>(PARTITIONS.map((p) => [p, keysIn(p, 'scan-', 12)]));
    for (const [partition, keys] of written) {
      const leader = await leaderOf(nodes, partition);
      for (const pk of keys) expect(await write(leader, partition, put(pk, 'scanned'))).toMatchObject({ applied: true });
    }
    for (const partition of PARTITIONS) {
      const leader = await leaderOf(nodes, partition);
      const items = await scan(leader, partition, true);
      // Only the partition's own items, though one store on each node holds both partitions.
      expect(items.every((item) => partitionContains(partition, encodeItemKey(TABLE.tableId, item.pk)))).toBe(true);
      expect(items.map(pkOf)).toEqual(expect.arrayContaining(written.get(partition)!));
      // A follower counts the same partition (once it applied everything the leader did).
      const follower = nodes.find((n) => n !== leader)!;
      const count = async (node: NodeChild) => statisticsFromWire(await node.rpc.statistics(statisticsRequestToWire(at(partition), { table: TABLE })));
      const expected = await count(leader);
      expect(expected.itemCount).toBe(items.length);
      await eventually(async () => ((await count(follower)).itemCount === expected.itemCount ? true : undefined), 'the follower to count alike');
      expect(await count(follower)).toEqual(expected);
    }
  });

  it('refuses an older epoch with StaleEpoch and a newer one as UNAVAILABLE (its map is behind), logging both', { timeout: 30_000 }, async () => {
    const node = nodes[0];
    const stale = await failure(get(node, P1, keyIn(P1, 'k'), false, at(P1, 0)));
    expect(stale.error.code).toBe(Status.FAILED_PRECONDITION);
    expect(stale.detail?.case).toBe('staleEpoch');
    if (stale.detail?.case === 'staleEpoch') expect(partitionDescriptorFromWire(stale.detail.value.current)).toEqual(asDecoded(P1));

    const ahead = await failure(write(node, P1, put(keyIn(P1, 'k'), 'x'), at(P1, 2)));
    expect(ahead.error.code).toBe(Status.UNAVAILABLE);
    expect(ahead.detail).toBeUndefined();
    const state = await node.state();
    expect(state.mapBehind).toContainEqual({ partitionId: P1.id, epoch: '2' });
    expect(state.log.map((line) => line.fields)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ event: 'partition_request_refused', method: 'Get', code: 'FAILED_PRECONDITION', detail: 'staleEpoch' }),
        expect.objectContaining({ event: 'partition_request_refused', method: 'Write', code: 'UNAVAILABLE', detail: null }),
      ]),
    );
  });

  it('refuses keys outside the partition’s range with KeyOutOfRange and the current descriptor', { timeout: 30_000 }, async () => {
    const leader = await leaderOf(nodes, P1);
    const elsewhere = keyIn(P2, 'far');
    const calls = [
      () => write(leader, P1, put(elsewhere, 'misrouted')),
      () => get(leader, P1, elsewhere, true),
      () => readRange(leader, P1, scanRequest({ hashValue: S(elsewhere) }), true),
    ];
    for (const call of calls) {
      const { error, detail } = await failure(call());
      expect(error.code).toBe(Status.FAILED_PRECONDITION);
      expect(detail?.case).toBe('keyOutOfRange');
      if (detail?.case === 'keyOutOfRange') expect(partitionDescriptorFromWire(detail.value.current)).toEqual(asDecoded(P1));
    }
    // Nothing was written anywhere.
    expect(await get(await leaderOf(nodes, P2), P2, elsewhere, true)).toBeUndefined();
  });

  it('answers a partition it does not host, or whose table is gone from its map, with PartitionNotFound', { timeout: 30_000 }, async () => {
    const unknown: PartitionDescriptor = { ...P1, id: 99 };
    for (const call of [() => get(nodes[0], unknown, 'x', true), () => write(nodes[0], unknown, put('x', 'y')), () => scan(nodes[0], unknown, false)]) {
      const { error, detail } = await failure(call());
      expect(error.code).toBe(Status.NOT_FOUND);
      expect(detail).toEqual(expect.objectContaining({ case: 'partitionNotFound', value: expect.objectContaining({ partitionId: 99n }) }));
    }
    // A deleted table: the node's map loses the partition before the replica is removed.
    const node = nodes[1];
    await node.request({ op: 'forgetDescriptor', partitionId: P2.id });
    try {
      const { error, detail } = await failure(get(node, P2, keyIn(P2, 'k'), false));
      expect(error.code).toBe(Status.NOT_FOUND);
      expect(detail?.case).toBe('partitionNotFound');
      // Partition 1 on the same node is not disturbed.
      expect((await scan(node, P1, false)).length).toBeGreaterThan(0);
    } finally {
      await node.request({ op: 'setDescriptor', descriptor: P2 });
    }
  });

  it('refuses an undecodable request and a corrupt frame with INVALID_ARGUMENT, and keeps serving', async () => {
    const node = nodes[2];
    const request = writeRequestToWire(at(P1), put(keyIn(P1, 'k'), 'x'));
    request.operations[0].key = new TextEncoder().encode('{not json');
    const undecodable = await failure(node.rpc.write(request));
    expect(undecodable.error.code).toBe(Status.INVALID_ARGUMENT);
    expect(undecodable.error.message).toContain('key is not JSON');
    // Another table's request sent to this partition: a caller's bug, not stale routing.
    const otherTable = await failure(node.rpc.get(getRequestToWire(at(P1), { table: { ...TABLE, tableId: 77 }, key: { pk: S('k') } }, { consistent: false })));
    expect(otherTable.error.code).toBe(Status.INVALID_ARGUMENT);
    expect(otherTable.error.message).toContain('holds table space 5, not 77');
    // Bytes that are not a protobuf message at all: refused by the gRPC adapter before the server.
    const corrupt = await sendCorruptFrame(node.grpcAddress, '/shoal.v1.PartitionService/Get');
    expect(corrupt.status).toBe(Status.INVALID_ARGUMENT);
    expect(corrupt.message).toContain('corrupt shoal.v1.GetRequest message');
    const state = await node.state();
    expect(state.log.map((line) => line.fields)).toContainEqual(
      expect.objectContaining({ event: 'partition_request_refused', method: 'Write', code: 'INVALID_ARGUMENT', error: expect.stringContaining('key is not JSON') }),
    );
    expect((await scan(node, P1, false)).length).toBeGreaterThan(0);
  });

  it('backfills and drops a co-located index per partition through its leader', { timeout: 30_000 }, async () => {
    const query = scanRequest({ table: INDEXED, indexName: 'byV', hashValue: S('scanned'), select: 'ALL_PROJECTED_ATTRIBUTES' });
    const leader2 = await leaderOf(nodes, P2);
    const follower = nodes.find((n) => n !== leader2)!;
    for (const partition of PARTITIONS) {
      const leader = await leaderOf(nodes, partition);
      const notLeader = nodes.find((n) => n !== leader)!;
      const refused = await failure(notLeader.rpc.backfillIndex(backfillIndexRequestToWire(at(partition), { table: INDEXED, indexName: 'byV' })));
      expect(refused.detail?.case).toBe('notLeader');
      await leader.rpc.backfillIndex(backfillIndexRequestToWire(at(partition), { table: INDEXED, indexName: 'byV' }));
      // Each partition's answer holds the entries of its own items only, the ones written earlier.
      const entries = (await readRange(leader, partition, query, true)).items;
      expect(entries.map(pkOf).sort()).toEqual(keysIn(partition, 'scan-', 12).sort());
    }
    // Every replica ran the command from the log.
    await eventually(async () => ((await readRange(follower, P2, query, false)).items.length === 12 ? true : undefined), 'the index on a follower');

    const missing = await failure((await leaderOf(nodes, P1)).rpc.backfillIndex(backfillIndexRequestToWire(at(P1), { table: TABLE, indexName: 'byV' })));
    expect(missing.error.code).toBe(Status.INVALID_ARGUMENT);
    expect(missing.detail?.case).toBe('dynamodb');

    const leader1 = await leaderOf(nodes, P1);
    await leader1.rpc.dropIndex(dropIndexRequestToWire(at(P1), { table: INDEXED, indexName: 'byV' }));
    expect((await readRange(leader1, P1, query, true)).items).toEqual([]);
    // Partition 2's entries stay.
    expect((await readRange(await leaderOf(nodes, P2), P2, query, true)).items).toHaveLength(12);
  });

  it('after SIGKILL of a leader, writes succeed through the new leader and earlier writes survive', { timeout: 60_000 }, async () => {
    const leader = await leaderOf(nodes, P1);
    await leader.kill();
    const survivors = nodes.filter((n) => n.alive);
    const successor = await leaderOf(survivors, P1);
    expect(successor.nodeId).not.toBe(leader.nodeId);
    const after = keyIn(P1, 'after');
    expect(await write(successor, P1, put(after, 'kill'))).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
    const pks = (await scan(successor, P1, true)).map(pkOf);
    expect(pks).toEqual(expect.arrayContaining([keyIn(P1, 'k'), keyIn(P1, 'read-me'), after]));
    // Partition 2 keeps serving too (its leader may have been the killed node as well).
    const leader2 = await leaderOf(survivors, P2);
    expect(await write(leader2, P2, put(keyIn(P2, 'after'), 'kill'))).toMatchObject({ applied: true });
  });
});
