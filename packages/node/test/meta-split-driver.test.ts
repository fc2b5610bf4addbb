/**
 * The placement driver and splits, on a meta group of three peers over gRPC: a split its meta leader
 * never recorded is recorded from the halves' descriptors the nodes report in their heartbeats, and
 * when a node of both halves stays down, both are repaired (a new member of a right half is caught
 * up by a partition snapshot, like any other). A split for size whose call failed but which applied
 * all the same, recorded from the reports, has its right half's leadership moved like any split's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SPLIT_POLICY, middleSplitKey, type SplitPolicy } from '@shoal/meta';
import type { PartitionDescriptor, TableRecord } from '@shoal/model';
import { ReplicaRole, partitionDescriptorToWire, tableRecordToWire, type PartitionLoad } from '@shoal/proto';
import { eventually } from './fixtures/eventually.ts';
import { DOWN_TIMEOUT_MS, HEARTBEAT_TIMEOUT_MS, MetaCluster } from './fixtures/meta-cluster.ts';

const table = (name: string): TableRecord => ({
  schema: { name, tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
  status: 'ACTIVE',
  createdAt: 1_700_000_000,
  billingMode: 'PAY_PER_REQUEST',
  tags: {},
});

/** A meta group of three peers for the describe block it is called in (started before its tests, stopped after), splitting by `splitPolicy` if given. */
function metaClusterForSuite(splitPolicy?: SplitPolicy): () => MetaCluster {
  let root = '';
  let cluster: MetaCluster | undefined;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-meta-split-'));
    cluster = new MetaCluster(root, [1, 2, 3], splitPolicy);
    for (const id of cluster.ids) await cluster.start(id);
  });
  afterAll(async () => {
    await cluster?.stopAll();
    await rm(root, { recursive: true, force: true });
  });
  return () => cluster!;
}

describe('the placement driver and splits', () => {
  const clusterNow = metaClusterForSuite();
  let cluster: MetaCluster;
  beforeAll(() => {
    cluster = clusterNow();
  });

  /** Each node reports its replicas with the map's roles (the groups converged), plus `extra` loads. */
  const heartbeat = async (nodes: number[], extra: Map<number, PartitionLoad[]> = new Map()): Promise<void> => {
    const partitions = await cluster.partitions();
    for (const nodeId of nodes) {
      const loads = partitions.flatMap((p) =>
        p.replicas
          .filter((r) => r.nodeId === nodeId)
          .map((r) => ({ partitionId: BigInt(p.id), leader: p.replicas[0].nodeId === nodeId, role: r.role === 'voter' ? ReplicaRole.VOTER : ReplicaRole.LEARNER, term: 2n })),
      );
      await cluster.call((p) => p.metaClient.heartbeat({ nodeId: BigInt(nodeId), loads: [...loads, ...(extra.get(nodeId) ?? [])] as PartitionLoad[] }));
    }
  };

  it('records a split from the reports, then repairs both halves alike', async () => {
    const nodes = [1, 2, 3, 4];
    for (const id of nodes) await cluster.call((p) => p.metaClient.registerNode({ nodeId: BigInt(id), address: `127.0.0.1:${10_000 + id}` }));
    const leader = await cluster.waitForLeader();
    // An id meta handed out that no partition holds any more: that of a table created and deleted.
    await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('Scratch')), initialPartitions: 1 }));
    const reservedId = (await cluster.partitions())[0].id;
    await cluster.call((p) => p.metaClient.deleteTable({ name: 'Scratch' }));
    await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('Orders')), initialPartitions: 1 }));
    const [parent] = await cluster.partitions();
    expect(parent.epoch).toBe(1);

    // The partition's group split (right half = the reserved id); meta never heard of it.
    const middle = middleSplitKey(parent)!;
    const right: PartitionDescriptor = { ...parent, id: reservedId, startKey: middle, epoch: 2 };
    const reported = new Map(parent.replicas.map((r) => [r.nodeId, [{ partitionId: BigInt(reservedId), role: ReplicaRole.VOTER, descriptor: partitionDescriptorToWire(right) } as PartitionLoad]]));
    await heartbeat(nodes, reported);
    const round = await leader.driver.runOnce();
    expect(round?.splitsRecorded).toEqual([reservedId]);
    // The same round may start rebalancing (two partitions on three of four nodes), either half.
    const halves = await cluster.partitions();
    const left = halves.find((p) => p.id === parent.id)!;
    const recorded = halves.find((p) => p.id === reservedId)!;
    expect(halves).toHaveLength(2);
    expect(recorded.epoch).toBeGreaterThanOrEqual(2);
    expect(left.epoch).toBeGreaterThanOrEqual(2);
    expect(Buffer.compare(Buffer.from(left.endKey), Buffer.from(middle))).toBe(0);
    expect(Buffer.compare(Buffer.from(recorded.startKey), Buffer.from(middle))).toBe(0);
    for (const replica of parent.replicas) expect(recorded.replicas.map((r) => r.nodeId)).toContain(replica.nodeId);

    // A node of both halves falls silent past the down timeout: both halves get a new replica.
    const victim = parent.replicas[parent.replicas.length - 1].nodeId;
    const alive = nodes.filter((id) => id !== victim);
    cluster.now += HEARTBEAT_TIMEOUT_MS;
    await heartbeat(alive);
    expect((await leader.driver.runOnce())?.markedDown).toEqual([victim]);
    cluster.now += DOWN_TIMEOUT_MS;
    await heartbeat(alive);
    const holdingVictim = (await cluster.partitions()).filter((p) => p.replicas.some((r) => r.nodeId === victim)).map((p) => p.id);
    expect(holdingVictim).toContain(reservedId);
    const repair = await leader.driver.runOnce();
    // Every partition on the dead node is being moved off it, the right half included.
    for (const half of holdingVictim) expect([...(repair?.applied ?? []), ...(repair?.waiting ?? [])].some((a) => a.partitionId === half)).toBe(true);
  });
});

describe('a split for size whose call failed, recorded from the reports', () => {
  // Any partition reporting over 1,000 bytes splits.
  const clusterNow = metaClusterForSuite({ ...DEFAULT_SPLIT_POLICY, maxSizeBytes: 1_000 });

  it('moves the right half\'s leadership off the node leading both halves once the map shows it', { timeout: 60_000 }, async () => {
    const cluster = clusterNow();
    const nodes = [1, 2, 3];
    // Split calls go to the addresses the fixture gives node ids: the meta peers' own servers, which
    // serve no PartitionService, so every split call fails (UNIMPLEMENTED, refused at once).
    for (const id of nodes) await cluster.call((p) => p.metaClient.registerNode({ nodeId: BigInt(id), address: `127.0.0.1:${id}` }));
    const leader = await cluster.waitForLeader();
    await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(table('Events')), initialPartitions: 1 }));
    const [parent] = await cluster.partitions();
    const leading = parent.replicas[0].nodeId;
    const load = (partition: PartitionDescriptor, nodeId: number, sizeBytes: number) =>
      ({ partitionId: BigInt(partition.id), leader: nodeId === leading, role: ReplicaRole.VOTER, term: 2n, leaderId: BigInt(leading), sizeBytes: BigInt(sizeBytes), descriptor: partitionDescriptorToWire(partition) }) as PartitionLoad;
    const heartbeat = async (partitions: Array<{ partition: PartitionDescriptor; sizeBytes: number }>) => {
      for (const nodeId of nodes) {
        const answer = await cluster.call((p) => p.metaClient.heartbeat({ nodeId: BigInt(nodeId), loads: partitions.map(({ partition, sizeBytes }) => load(partition, nodeId, sizeBytes)) }));
        if (nodeId === leading) transfersToLeader = answer.leadershipTransfers.map((t) => ({ partitionId: Number(t.partitionId), toNode: Number(t.toNode) }));
      }
    };
    let transfersToLeader: Array<{ partitionId: number; toNode: number }> = [];

    // Too big: the meta leader splits it, and the call fails (its id was reserved all the same).
    await heartbeat([{ partition: parent, sizeBytes: 10_000 }]);
    await leader.driver.runOnce();
    await eventually(() => (leader.placementEvents.some((e) => e.event === 'split_failed' && e.partition === parent.id) ? true : undefined), 'the split to fail', 1_200);
    expect(leader.placementEvents.some((e) => e.event === 'leadership_move_requested')).toBe(false);
    const rightId = leader.meta.state.nextPartitionId - 1;

    // It had applied: the nodes report both halves, one node leading both; the driver records the split.
    const middle = middleSplitKey(parent)!;
    const left: PartitionDescriptor = { ...parent, endKey: middle, epoch: parent.epoch + 1 };
    const right: PartitionDescriptor = { ...parent, id: rightId, startKey: middle, epoch: parent.epoch + 1 };
    await heartbeat([{ partition: left, sizeBytes: 500 }, { partition: right, sizeBytes: 500 }]);
    const round = await leader.driver.runOnce();
    expect(round?.splitsRecorded).toEqual([rightId]);
    const move = leader.placementEvents.find((e) => e.event === 'leadership_move_requested');
    expect(move).toMatchObject({ partition: rightId, from: leading });
    expect(move?.to).not.toBe(leading);
    // Told to the node leading the right half in its next heartbeat answer.
    await heartbeat([{ partition: left, sizeBytes: 500 }, { partition: right, sizeBytes: 500 }]);
    expect(transfersToLeader).toEqual([{ partitionId: rightId, toNode: move?.to }]);
  });
});
