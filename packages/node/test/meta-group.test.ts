import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMetaSnapshot } from '@shoal/meta';
import { findPartitionMapProblems, spaceRange, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import {
  NodeState,
  ReplicaRole,
  RpcError,
  Status,
  dynamoDbErrorFromRpc,
  partitionMapResponseFromWire,
  tableRecordFromWire,
  tableRecordToWire,
  type GetPartitionMapResponse,
} from '@shoal/proto';
import { eventually } from './fixtures/eventually.ts';
import { DOWN_TIMEOUT_MS, HEARTBEAT_TIMEOUT_MS, MetaCluster, firstVoter, notLeaderOf, type MetaPeer } from './fixtures/meta-cluster.ts';

function table(name: string, tableId = 0): TableRecord {
  return {
    schema: { name, tableId, hashKey: { name: 'pk', type: 'S' }, indexes: [{ name: 'byUser', kind: 'GSI', indexId: 0, hashKey: { name: 'user', type: 'S' }, projection: { type: 'ALL' } }] },
    status: 'ACTIVE',
    createdAt: 1_700_000_000,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  };
}

async function rpcFailure(call: Promise<unknown>): Promise<RpcError> {
  try {
    await call;
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    return error as RpcError;
  }
  throw new Error('the call succeeded');
}

describe('the meta group on three nodes, MetaService over gRPC', () => {
  let root = '';
  let cluster: MetaCluster;
  /** A fourth storage node, only registered: the test sends its heartbeats. */
  const EXTRA_NODE = 4;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-meta-group-'));
    cluster = new MetaCluster(root, [1, 2, 3]);
    for (const id of cluster.ids) await cluster.start(id);
  });

  afterAll(async () => {
    await cluster.stopAll();
    await rm(root, { recursive: true, force: true });
  });

  const mapNow = async () => {
    const map = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: 0n })));
    if (map.notModified) throw new Error('expected a full map');
    return map;
  };

  /** Heartbeats of these nodes as if every partition group had converged to its descriptor. */
  const heartbeat = (nodes: number[]): Promise<void> => cluster.heartbeatConverged(nodes);

  /** Placement rounds on the leader, the nodes heartbeating between them, until nothing is left to do (bounded). */
  const settle = async (leader: MetaPeer, nodes: number[]): Promise<void> => {
    for (let round = 0; round < 30; round++) {
      await heartbeat(nodes);
      const done = await leader.driver.runOnce();
      if (done === undefined) throw new Error(`node ${leader.nodeId} no longer leads`);
      if (done.applied.length + done.refused.length + done.waiting.length === 0) return;
    }
    throw new Error('placement did not settle');
  };

  const listTableNames = async (): Promise<string[]> =>
    (await cluster.call((p) => p.metaClient.listTables({}))).records.map((r) => tableRecordFromWire(r).schema.name);

  it('answers from the leader only: a follower sends NotLeader with the leader id and address', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.other(leader.nodeId);
    const error = await rpcFailure(follower.metaClient.getPartitionMap({ knownVersion: 0n }));
    expect(notLeaderOf(error)).toEqual({ leaderId: leader.nodeId, address: leader.address });
    const status = await rpcFailure(follower.adminClient.status({}));
    expect(notLeaderOf(status)?.leaderId).toBe(leader.nodeId);
    const map = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: 0n })));
    expect(map).toEqual({ notModified: false, version: 0, partitions: [], nodes: [], tables: [] });
  });

  it('registers nodes under their fixed ids', async () => {
    for (const id of cluster.ids) {
      const { nodeId } = await cluster.call((p) => p.metaClient.registerNode({ nodeId: BigInt(id), address: cluster.addresses.get(id)! }));
      expect(nodeId).toBe(BigInt(id));
    }
    const extra = await cluster.call((p) => p.metaClient.registerNode({ nodeId: BigInt(EXTRA_NODE), address: '127.0.0.1:1' }));
    expect(extra.nodeId).toBe(BigInt(EXTRA_NODE));
    const taken = await rpcFailure(cluster.call((p) => p.metaClient.registerNode({ nodeId: 0n, address: '127.0.0.1:1' })));
    expect(taken.code).toBe(Status.ABORTED);
    const map = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: 0n })));
    expect(map.notModified ? [] : map.nodes.map((n) => [Number(n.id), n.state])).toEqual([1, 2, 3, 4].map((id) => [id, NodeState.UP]));
  });

  it('creates, lists, gets and deletes tables, with DynamoDB errors where a client sees them', async () => {
    const created = tableRecordFromWire((await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('Orders')) }))).record!);
    expect(created.schema.tableId).toBeGreaterThan(0);
    expect(created.schema.indexes[0].indexId).toBeGreaterThan(created.schema.tableId);
    // A router allocates the space ids first; the record keeps them.
    const spaceId = (await cluster.call((p) => p.metaClient.allocateSpaceId({}))).spaceId;
    const users = { ...table('Users'), schema: { ...table('Users').schema, tableId: spaceId, indexes: [] } };
    const kept = await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(users), initialPartitions: 3 }));
    expect(tableRecordFromWire(kept.record!).schema.tableId).toBe(spaceId);
    expect(await listTableNames()).toEqual(['Orders', 'Users']);

    const got = await cluster.call((p) => p.metaClient.getTable({ name: 'Orders' }));
    expect(tableRecordFromWire(got.record!)).toEqual(created);
    expect((await cluster.call((p) => p.metaClient.getTable({ name: 'Nope' }))).record).toBeUndefined();

    const exists = await rpcFailure(cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('Orders')) })));
    expect(dynamoDbErrorFromRpc(exists)).toMatchObject({ type: 'ResourceInUseException', message: 'Table already exists: Orders' });
    const missing = await rpcFailure(cluster.call((p) => p.metaClient.deleteTable({ name: 'Nope' })));
    expect(dynamoDbErrorFromRpc(missing)).toMatchObject({ type: 'ResourceNotFoundException', message: 'Requested resource not found: Table: Nope not found' });
    const updateMissing = await rpcFailure(cluster.call((p) => p.metaClient.updateTable({ record: tableRecordToWire(table('Nope')) })));
    expect(dynamoDbErrorFromRpc(updateMissing)?.type).toBe('ResourceNotFoundException');

    const map = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: 0n })));
    if (map.notModified) throw new Error('expected a full map');
    // The default of 2 partitions for Orders and as many for its GSI, 3 asked for Users, 3 replicas each.
    const ordersGsi = created.schema.indexes[0].indexId;
    expect(map.partitions.map((p) => p.tableId)).toEqual([created.schema.tableId, created.schema.tableId, ordersGsi, ordersGsi, spaceId, spaceId, spaceId]);
    expect(map.partitions.every((p) => p.epoch === 1 && p.replicas.length === 3)).toBe(true);
    expect(map.tables.map((t) => t.schema.name)).toEqual(['Orders', 'Users']);
    const unchanged = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: BigInt(map.version) })));
    expect(unchanged).toEqual({ notModified: true, version: map.version });

    const deleted = await cluster.call((p) => p.metaClient.deleteTable({ name: 'Users' }));
    expect(tableRecordFromWire(deleted.record!).schema.name).toBe('Users');
    expect(await listTableNames()).toEqual(['Orders']);
  });

  it('updates a table: a new GSI keeps the id the router allocated and gets partitions, the version grows; a deleted GSI loses them', async () => {
    const before = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: 0n })));
    if (before.notModified) throw new Error('expected a full map');
    const orders = before.tables.find((t) => t.schema.name === 'Orders')!;
    const spaceId = (await cluster.call((p) => p.metaClient.allocateSpaceId({}))).spaceId;
    const byDate = { name: 'byDate', kind: 'GSI' as const, indexId: spaceId, hashKey: { name: 'date', type: 'S' as const }, projection: { type: 'KEYS_ONLY' as const } };
    const requested: TableRecord = { ...orders, schema: { ...orders.schema, indexes: [...orders.schema.indexes, byDate] } };
    const updated = tableRecordFromWire((await cluster.call((p) => p.metaClient.updateTable({ record: tableRecordToWire(requested) }))).record!);
    expect(updated.schema.indexes.map((i) => [i.name, i.indexId])).toEqual([...orders.schema.indexes.map((i) => [i.name, i.indexId]), ['byDate', spaceId]]);
    const after = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: BigInt(before.version) })));
    if (after.notModified) throw new Error('expected a full map');
    expect(after.version).toBe(before.version + 1);
    // As many partitions as Orders has, covering the index's space, placed like any.
    const ordersPartitions = before.partitions.filter((p) => p.tableId === orders.schema.tableId);
    const added = after.partitions.filter((p) => p.tableId === spaceId);
    expect(added).toHaveLength(ordersPartitions.length);
    expect(added.every((p) => p.epoch === 1 && p.replicas.length === 3)).toBe(true);
    expect(after.partitions.filter((p) => p.tableId !== spaceId)).toEqual(before.partitions);
    expect(findPartitionMapProblems(after.partitions)).toEqual([]);
    expect(after.tables.find((t) => t.schema.name === 'Orders')).toEqual(updated);

    // UpdateTable deleting the GSI: its partitions leave the map, nothing else does.
    const dropped = tableRecordFromWire((await cluster.call((p) => p.metaClient.updateTable({ record: tableRecordToWire({ ...updated, schema: { ...updated.schema, indexes: orders.schema.indexes } }) }))).record!);
    expect(dropped.schema.indexes.map((i) => i.name)).toEqual(orders.schema.indexes.map((i) => i.name));
    const afterDrop = partitionMapResponseFromWire(await cluster.call((p) => p.metaClient.getPartitionMap({ knownVersion: BigInt(after.version) })));
    if (afterDrop.notModified) throw new Error('expected a full map');
    expect(afterDrop.partitions).toEqual(before.partitions);

    const noRecord = await rpcFailure(cluster.call((p) => p.metaClient.createTable({})));
    expect(noRecord.code).toBe(Status.INVALID_ARGUMENT);
    const malformed = await rpcFailure(cluster.call((p) => p.metaClient.createTable({ record: { json: new TextEncoder().encode('{"schema":{}}') } })));
    expect(malformed.code).toBe(Status.INVALID_ARGUMENT);
    expect(malformed.message).toMatch(/malformed table record/);
    const notAnObject = await rpcFailure(cluster.call((p) => p.metaClient.updateTable({ record: { json: new TextEncoder().encode('null') } })));
    expect(notAnObject.code).toBe(Status.INVALID_ARGUMENT);
    // A record of another incarnation of the table, or made to an older revision: DynamoDB's ResourceInUse (the router reads again).
    const otherSpace = await rpcFailure(cluster.call((p) => p.metaClient.updateTable({ record: tableRecordToWire({ ...dropped, schema: { ...dropped.schema, tableId: 999 } }) })));
    expect(dynamoDbErrorFromRpc(otherSpace)).toMatchObject({ type: 'ResourceInUseException', message: expect.stringMatching(/^Attempt to change a resource which is still in use: Table is being updated: Orders \(updateTable: table Orders has space id/) });
    const olderRevision = await rpcFailure(cluster.call((p) => p.metaClient.updateTable({ record: tableRecordToWire({ ...updated, tags: { stale: 'yes' } }) })));
    expect(dynamoDbErrorFromRpc(olderRevision)).toMatchObject({ type: 'ResourceInUseException', message: expect.stringMatching(/is at revision 3, the change was made to revision 2/) });
  });

  it('answers a watch on a follower with NotLeader, a Move to a node holding a replica already with INVALID_ARGUMENT, a split of an unknown table with ResourceNotFound', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.other(leader.nodeId);
    const watch = follower.metaClient.watchPartitionMap({ knownVersion: 0n })[Symbol.asyncIterator]();
    const refused = await rpcFailure(watch.next());
    expect(notLeaderOf(refused)?.leaderId).toBe(leader.nodeId);
    const error = await rpcFailure(leader.adminClient.move({ partitionId: 1n, fromNode: 1n, toNode: 2n }));
    expect(error.code).toBe(Status.INVALID_ARGUMENT);
    expect(error.message).toMatch(/node 2 already holds a replica of partition 1/);
    // Split is built: a table it does not know is DynamoDB's ResourceNotFoundException.
    const split = await rpcFailure(leader.adminClient.split({ table: 'nosuch' }));
    expect(split.message).toMatch(/Table: nosuch not found/);
    // A GSI's partitions are split as `table/index`; an LSI or unknown index has none.
    const noIndex = await rpcFailure(leader.adminClient.split({ table: 'Orders/nosuch' }));
    expect(noIndex.code).toBe(Status.INVALID_ARGUMENT);
    expect(noIndex.message).toMatch(/table Orders has no global secondary index nosuch/);
    // A key of the table's space lies outside the GSI's partitions: the GSI's space was chosen.
    const orders = (await mapNow()).tables.find((t) => t.schema.name === 'Orders')!;
    const tableKey = spaceRange(orders.schema.tableId).start;
    const outside = await rpcFailure(leader.adminClient.split({ table: 'Orders/byUser', splitKey: tableKey }));
    expect(outside.message).toMatch(/lies outside table Orders\/byUser/);
    const wrongType = await rpcFailure(leader.adminClient.split({ table: 'Orders/byUser', hashValue: '{"N":"1"}' }));
    expect(wrongType.message).toMatch(/not a partition key value of Orders\/byUser \(user, S\)/);
  });

  it('streams the map to a watcher at every change', async () => {
    const leader = await cluster.waitForLeader();
    const watch = leader.metaClient.watchPartitionMap({ knownVersion: 0n })[Symbol.asyncIterator]();
    const next = async (): Promise<GetPartitionMapResponse> => {
      const { value, done } = await watch.next();
      if (done === true) throw new Error('the watch ended');
      return value;
    };
    const first = partitionMapResponseFromWire(await next());
    if (first.notModified) throw new Error('expected a full map');
    expect(first.tables.map((t) => t.schema.name)).toEqual(['Orders']);
    const pending = next();
    await leader.metaClient.createTable({ record: tableRecordToWire(table('Watched')) });
    const second = partitionMapResponseFromWire(await pending);
    if (second.notModified) throw new Error('expected a full map');
    expect(second.version).toBeGreaterThan(first.version);
    expect(second.tables.map((t) => t.schema.name)).toEqual(['Orders', 'Watched']);
    await watch.return?.();
  });

  it('records heartbeats and leader hints, reports them in Status, and marks a silent node down and replaces its replicas', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.other(leader.nodeId);
    expect(await follower.driver.runOnce()).toBeUndefined();
    // The leader's first round starts its grace period for heartbeats: nobody is marked down yet,
    // but the fourth node gets its share of replicas (rebalancing) over a few rounds.
    expect((await leader.driver.runOnce())?.markedDown).toEqual([]);
    await settle(leader, [1, 2, 3, EXTRA_NODE]);

    await heartbeat([1, 2, 3, EXTRA_NODE]);
    const answer = await cluster.call((p) => p.metaClient.heartbeat({ nodeId: 1n }));
    expect(answer.state).toBe(NodeState.UP);
    const hinted = await mapNow();
    expect(answer.mapVersion).toBe(BigInt(hinted.version));
    for (const p of hinted.partitions) expect(p.leaderHint).toBe(firstVoter(p));
    // Another voter claiming the partition: not from an older term (a deposed leader), from a newer one.
    const claimed = hinted.partitions[0];
    const claimant = claimed.replicas.find((r) => r.role === 'voter' && r.nodeId !== firstVoter(claimed))!.nodeId;
    const claim = (term: bigint) =>
      cluster.call((p) =>
        p.metaClient.heartbeat({ nodeId: BigInt(claimant), loads: [{ partitionId: BigInt(claimed.id), leader: true, role: ReplicaRole.VOTER, term }] }),
      );
    await claim(1n);
    expect((await mapNow()).partitions.find((p) => p.id === claimed.id)?.leaderHint).toBe(firstVoter(claimed));
    await claim(3n);
    expect((await mapNow()).partitions.find((p) => p.id === claimed.id)?.leaderHint).toBe(claimant);
    // Within the log interval a heartbeat is kept in the leader's memory only.
    const appliedBefore = (await leader.adminClient.status({})).metaAppliedIndex;
    await leader.metaClient.heartbeat({ nodeId: 2n });
    expect((await leader.adminClient.status({})).metaAppliedIndex).toBe(appliedBefore);
    const unknown = await rpcFailure(cluster.call((p) => p.metaClient.heartbeat({ nodeId: 99n })));
    expect(unknown.code).toBe(Status.NOT_FOUND);

    const victimPartitions = hinted.partitions.filter((p) => p.replicas.some((r) => r.nodeId === EXTRA_NODE)).map((p) => p.id);
    expect(victimPartitions.length).toBeGreaterThan(0);

    // The extra node falls silent.
    cluster.now += HEARTBEAT_TIMEOUT_MS;
    await heartbeat([1, 2, 3]);
    expect((await leader.driver.runOnce())?.markedDown).toEqual([EXTRA_NODE]);
    const status = await leader.adminClient.status({});
    expect(status.metaLeaderId).toBe(BigInt(leader.nodeId));
    expect(status.metaAppliedIndex).toBeGreaterThan(0n);
    const byId = new Map(status.nodes.map((n) => [Number(n.node!.id), n]));
    expect(byId.get(EXTRA_NODE)?.node?.state).toBe(NodeState.DOWN);
    expect(byId.get(EXTRA_NODE)?.secondsSinceHeartbeat).toBe(HEARTBEAT_TIMEOUT_MS / 1000);
    expect(byId.get(1)?.secondsSinceHeartbeat).toBe(0);
    expect(byId.get(1)?.reportedReplicas.length).toBeGreaterThan(0);
    expect(byId.get(1)?.reportedReplicas.every((r) => r.appliedIndex === 7n && r.role === ReplicaRole.VOTER)).toBe(true);
    expect(byId.get(1)?.replicas).toBe(hinted.partitions.filter((p) => p.replicas.some((r) => r.nodeId === 1)).length);
    const hintsNow = (await mapNow()).partitions;
    for (const id of [1, 2, 3]) expect(byId.get(id)?.leaders).toBe(hintsNow.filter((p) => p.leaderHint === id).length);
    expect(status.partitions.map((p) => Number(p.id))).toEqual(hintsNow.map((p) => p.id));
    expect(status.mapVersion).toBe(BigInt((await mapNow()).version));

    // Within its grace period it keeps its replicas; after it, they are replaced step by step, each
    // step once the partition's group reports the previous one done.
    expect((await leader.driver.runOnce())?.applied).toEqual([]);
    cluster.now += DOWN_TIMEOUT_MS;
    await heartbeat([1, 2, 3]);
    const adding = await leader.driver.runOnce();
    expect(adding?.applied.map((a) => [a.kind, a.partitionId])).toEqual(victimPartitions.map((id) => ['addLearner', id]));
    const stalled = await leader.driver.runOnce();
    expect(stalled?.applied).toEqual([]);
    expect(stalled?.waiting.map((a) => [a.kind, a.partitionId])).toEqual(victimPartitions.map((id) => ['promoteLearner', id]));
    await settle(leader, [1, 2, 3]);
    const repaired = await mapNow();
    for (const p of repaired.partitions) {
      expect(p.replicas.map((r) => [r.nodeId, r.role]).sort()).toEqual([1, 2, 3].map((id) => [id, 'voter']));
      const before = hinted.partitions.find((h) => h.id === p.id)!;
      // add learner, promote, remove: three epochs for a replaced replica, none otherwise.
      expect(p.epoch).toBe(victimPartitions.includes(p.id) ? before.epoch + 3 : before.epoch);
    }
  });

  it('drains a node on request', async () => {
    const leader = await cluster.waitForLeader();
    // The extra node is back; node 3 is drained onto it.
    await heartbeat([EXTRA_NODE]);
    const drain = await cluster.call((p) => p.adminClient.drain({ nodeId: 3n }));
    expect(drain.remainingReplicas).toBeGreaterThan(0);
    await settle(leader, [1, 2, 3, EXTRA_NODE]);
    expect((await cluster.call((p) => p.adminClient.drain({ nodeId: 3n }))).remainingReplicas).toBe(0);
    // A leadership transfer is refused for a partition that does not exist or a node that holds no vote in it.
    const unknown = await rpcFailure(leader.adminClient.transferLeader({ partitionId: 999n, toNode: 1n }));
    expect(unknown.code).toBe(Status.NOT_FOUND);
    const drained = await rpcFailure(leader.adminClient.transferLeader({ partitionId: 1n, toNode: 3n }));
    expect(drained.code).toBe(Status.INVALID_ARGUMENT);
    expect(drained.message).toMatch(/node 3 is not a voter of partition 1/);
  });

  it('runs the placement loop on the leader only', async () => {
    const leader = await cluster.waitForLeader();
    for (const peer of cluster.peers.values()) peer.placementEvents.length = 0;
    for (const peer of cluster.peers.values()) peer.driver.start();
    cluster.now += HEARTBEAT_TIMEOUT_MS;
    // Nobody heartbeats: the leader's loop marks every node down.
    await eventually(async () => {
      const status = await cluster.call((p) => p.adminClient.status({}));
      return status.nodes.every((n) => n.node?.state === NodeState.DOWN) ? true : undefined;
    }, 'every node marked down');
    for (const peer of cluster.peers.values()) await peer.driver.stop();
    const markedBy = [...cluster.peers.values()].filter((p) => p.placementEvents.some((e) => e.event === 'node_marked_down')).map((p) => p.nodeId);
    expect(markedBy).toEqual([leader.nodeId]);
    // Heartbeats bring them back.
    for (const id of [1, 2, 3, EXTRA_NODE]) await cluster.call((p) => p.metaClient.heartbeat({ nodeId: BigInt(id) }));
  });

  it('survives the loss of its leader: a new leader answers with the same state, and the old one replays its log', async () => {
    const leader = await cluster.waitForLeader();
    const watch = leader.metaClient.watchPartitionMap({ knownVersion: 0n })[Symbol.asyncIterator]();
    await watch.next();
    const watchEnded = watch.next().then(
      () => 'ended',
      () => 'failed',
    );
    const before = encodeMetaSnapshot(leader.meta.state);
    const tables = await listTableNames();
    await cluster.stop(leader.nodeId);
    expect(await watchEnded).toBe('ended');

    const next = await cluster.waitForLeader();
    expect(next.nodeId).not.toBe(leader.nodeId);
    expect(await listTableNames()).toEqual(tables);
    expect(Buffer.from(encodeMetaSnapshot(next.meta.state))).toEqual(Buffer.from(before));
    // A new leader gives the nodes a heartbeat timeout to find it before it judges them.
    cluster.now += 2 * HEARTBEAT_TIMEOUT_MS;
    expect((await next.driver.runOnce())?.markedDown).toEqual([]);
    cluster.now += HEARTBEAT_TIMEOUT_MS;
    expect((await next.driver.runOnce())?.markedDown).toEqual([1, 2, 3, EXTRA_NODE]);
    await heartbeat([1, 2, 3, EXTRA_NODE]);
    await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('AfterFailover')) }));

    const restarted: MetaPeer = await cluster.start(leader.nodeId);
    await eventually(() => restarted.meta.state.tables.AfterFailover, 'the restarted peer caught up');
    expect(Buffer.from(encodeMetaSnapshot(restarted.meta.state))).toEqual(Buffer.from(encodeMetaSnapshot(next.meta.state)));
  });

  it('comes back whole after every peer restarts: each rebuilds its state by replaying its log', async () => {
    const leader = await cluster.waitForLeader();
    const before = Buffer.from(encodeMetaSnapshot(leader.meta.state));
    await cluster.stopAll();
    for (const id of cluster.ids) await cluster.start(id);
    await cluster.waitForLeader();
    await eventually(() => ([...cluster.peers.values()].every((p) => Buffer.from(encodeMetaSnapshot(p.meta.state)).equals(before)) ? true : undefined), 'every peer replayed its log');
    expect(await listTableNames()).toEqual(['AfterFailover', 'Orders', 'Watched']);
  });
});
