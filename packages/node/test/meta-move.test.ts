import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMetaCommand, planRebalance, type MetaState } from '@shoal/meta';
import type { PartitionDescriptor, TableRecord } from '@shoal/model';
import { partitionDescriptorFromWire, ReplicaRole, RpcError, Status, tableRecordToWire } from '@shoal/proto';
import { HEARTBEAT_TIMEOUT_MS, MetaCluster, type MetaPeer } from './fixtures/meta-cluster.ts';

/**
 * AdminService.Move on three meta peers, the nodes' heartbeats sent by the test: its refusals, the
 * replica set it records, and the pin that keeps the placement driver's rebalancing from moving the
 * partition back.
 */

const NODES = [1, 2, 3, 4];
const PARTITIONS = 4;

const record: TableRecord = {
  schema: { name: 'Moved', tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
  status: 'ACTIVE',
  createdAt: 1_700_000_000,
  billingMode: 'PAY_PER_REQUEST',
  tags: {},
};

async function refusal(call: Promise<unknown>): Promise<RpcError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof RpcError) return error;
    throw error;
  }
  throw new Error('the call succeeded');
}

describe('AdminService.Move', () => {
  let root = '';
  let cluster: MetaCluster;
  let leader: MetaPeer;

  const move = (partitionId: number, from: number, to: number) =>
    cluster.call((p) => p.adminClient.move({ partitionId: BigInt(partitionId), fromNode: BigInt(from), toNode: BigInt(to) }));

  /** Placement rounds on the leader, every node reporting its groups converged between them, until nothing is left to do (bounded). */
  const settle = async (): Promise<void> => {
    for (let round = 0; round < 30; round++) {
      await cluster.heartbeatConverged(NODES);
      const done = await leader.driver.runOnce();
      if (done === undefined) throw new Error(`node ${leader.nodeId} no longer leads`);
      if (done.applied.length + done.refused.length + done.waiting.length === 0) return;
    }
    throw new Error('placement did not settle');
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-meta-move-'));
    cluster = new MetaCluster(root, [1, 2, 3]);
    for (const id of cluster.ids) await cluster.start(id);
    leader = await cluster.waitForLeader();
    for (const id of NODES) await cluster.call((p) => p.metaClient.registerNode({ nodeId: BigInt(id), address: `127.0.0.1:${7000 + id}` }));
    await cluster.call((p) => p.metaClient.createTable({ record: tableRecordToWire(record), initialPartitions: PARTITIONS }));
    await settle();
  });

  afterAll(async () => {
    await cluster.stopAll();
    await rm(root, { recursive: true, force: true });
  });

  it('refuses an unknown partition or node, a source without the replica, a target with one, a move to itself', async () => {
    const [partition] = await cluster.partitions();
    const holders = partition.replicas.map((r) => r.nodeId);
    const outsider = NODES.find((id) => !holders.includes(id))!;
    const cases: [Promise<unknown>, Status, RegExp][] = [
      [move(999, holders[0], outsider), Status.NOT_FOUND, /no partition 999/],
      [move(partition.id, holders[0], 42), Status.NOT_FOUND, /no node 42/],
      [move(partition.id, outsider, holders[0]), Status.INVALID_ARGUMENT, new RegExp(`node ${outsider} holds no replica of partition ${partition.id}`)],
      [move(partition.id, holders[0], holders[1]), Status.INVALID_ARGUMENT, new RegExp(`node ${holders[1]} already holds a replica`)],
      [move(partition.id, holders[0], holders[0]), Status.INVALID_ARGUMENT, /to itself/],
    ];
    for (const [call, code, message] of cases) {
      const error = await refusal(call);
      expect(error.code, error.message).toBe(code);
      expect(error.message).toMatch(message);
    }
  });

  it('refuses a target that is not up, and a partition whose group has not caught up with its descriptor', async () => {
    const [partition] = await cluster.partitions();
    const outsider = NODES.find((id) => !partition.replicas.some((r) => r.nodeId === id))!;
    await cluster.call((p) => p.adminClient.drain({ nodeId: BigInt(outsider) }));
    const draining = await refusal(move(partition.id, partition.replicas[0].nodeId, outsider));
    expect(draining.code).toBe(Status.FAILED_PRECONDITION);
    expect(draining.message).toMatch(new RegExp(`node ${outsider} is draining: a replica moves only to an up node`));
    await cluster.call((p) => p.adminClient.undrain({ nodeId: BigInt(outsider) }));

    // The first holder reports the replica as a learner: the group is not where the map is.
    const first = partition.replicas[0].nodeId;
    await cluster.call((p) =>
      p.metaClient.heartbeat({ nodeId: BigInt(first), loads: [{ partitionId: BigInt(partition.id), role: ReplicaRole.LEARNER, term: 2n }] }),
    );
    const changing = await refusal(move(partition.id, first, outsider));
    expect(changing.code).toBe(Status.FAILED_PRECONDITION);
    expect(changing.message).toMatch(new RegExp(`partition ${partition.id} is changing its replicas`));
    await cluster.heartbeatConverged(NODES);
  });

  it('records the target in the source\'s place and role, and rebalancing does not move the partition back', async () => {
    // A move after which rebalancing (as planned without pins) would move that partition again.
    const state = leader.meta.state;
    const candidate = movesUndoneByRebalancing(state)[0];
    expect(candidate, 'a move rebalancing would undo').toBeDefined();
    const { partition, from, to } = candidate;
    const answer = partitionDescriptorFromWire((await move(partition.id, from, to)).partition);
    const role = partition.replicas.find((r) => r.nodeId === from)!.role;
    expect(answer.epoch).toBe(partition.epoch + 1);
    expect(answer.replicas).toEqual(
      partition.replicas.map((r) => (r.nodeId === from ? { nodeId: to, role } : r)).sort((a, b) => a.nodeId - b.nodeId),
    );
    expect(planRebalance(leader.meta.state).some((a) => a.partitionId === partition.id)).toBe(true);
    await settle();
    const after = (await cluster.partitions()).find((p) => p.id === partition.id)!;
    expect(after.replicas).toEqual(answer.replicas);
    expect(after.epoch).toBe(answer.epoch);
    // A second move of the same replica is refused: the source holds none any more.
    expect((await refusal(move(partition.id, from, to))).code).toBe(Status.INVALID_ARGUMENT);
  });

  it('refuses to move a replica to a down node, or to give it a leadership', async () => {
    const silent = 4;
    cluster.now += HEARTBEAT_TIMEOUT_MS;
    await cluster.heartbeatConverged(NODES.filter((id) => id !== silent));
    expect((await leader.driver.runOnce())?.markedDown).toEqual([silent]);
    const partitions = await cluster.partitions();
    const held = partitions.find((p) => p.replicas.some((r) => r.nodeId === silent && r.role === 'voter'))!;
    const leadership = await refusal(cluster.call((p) => p.adminClient.transferLeader({ partitionId: BigInt(held.id), toNode: BigInt(silent) })));
    expect(leadership.code).toBe(Status.FAILED_PRECONDITION);
    expect(leadership.message).toMatch(new RegExp(`node ${silent} is down: it cannot take the leadership of partition ${held.id}`));
    const other = partitions.find((p) => !p.replicas.some((r) => r.nodeId === silent))!;
    const moved = await refusal(move(other.id, other.replicas[0].nodeId, silent));
    expect(moved.code).toBe(Status.FAILED_PRECONDITION);
    expect(moved.message).toMatch(new RegExp(`node ${silent} is down: a replica moves only to an up node`));
  });
});

/** Moves (partition, from, to) that `planRebalance`, unaware of pins, would follow by a move of the same partition. */
function movesUndoneByRebalancing(state: MetaState): { partition: PartitionDescriptor; from: number; to: number }[] {
  const found: { partition: PartitionDescriptor; from: number; to: number }[] = [];
  for (const partition of Object.values(state.partitions)) {
    for (const from of partition.replicas.map((r) => r.nodeId)) {
      for (const to of NODES.filter((id) => !partition.replicas.some((r) => r.nodeId === id))) {
        const replicas = partition.replicas.map((r) => (r.nodeId === from ? { nodeId: to, role: r.role } : r));
        const after = applyMetaCommand(state, { type: 'setReplicas', partitionId: partition.id, replicas }).state;
        if (planRebalance(after).some((a) => a.partitionId === partition.id)) found.push({ partition, from, to });
      }
    }
  }
  return found;
}
