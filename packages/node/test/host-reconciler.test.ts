/**
 * The replica reconciler against a partition map fed by the test, over in-process MultiRaftHosts:
 * replicas are created for the partitions listing a node, a leader converges its group to a changed
 * descriptor one membership change at a time, and replicas of partitions that stop listing a node
 * (or are deleted) are removed with their data, also, after a grace period, when the node never
 * learns that it left the group.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { ReplicaReconciler, type NodeLog, type PartitionMapView } from '@shoal/node';
import { encodeWrite, KvStateMachine } from './fixtures/host-kv.ts';
import { agreedLeader, pump, startKvMember, stopKvMember, whilePumping, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const PARTITION = 1;

/** The map every node sees: the test changes it. */
class FedMap implements PartitionMapView {
  descriptors = new Map<number, PartitionDescriptor>();
  hasMap(): boolean {
    return true;
  }
  partitions(): Iterable<PartitionDescriptor> {
    return this.descriptors.values();
  }
  descriptorOf(partitionId: number): PartitionDescriptor | undefined {
    return this.descriptors.get(partitionId);
  }
  set(id: number, epoch: number, voters: NodeId[]): void {
    const start = new Uint8Array([0, 0, 0, 1]);
    this.descriptors.set(id, { id, tableId: 1, startKey: start, endKey: new Uint8Array([0, 0, 0, 2]), epoch, replicas: voters.map((nodeId) => ({ nodeId, role: 'voter' })) });
  }
}

interface Member extends KvMember {
  dropped: number[];
  reconciler: ReplicaReconciler;
  logs: string[];
}

/** The reconcilers' clock, for the grace period of a replica that never learns it was removed. */
let clock = 0;

async function startMember(network: MemoryNetwork, map: FedMap, root: string, nodeId: NodeId): Promise<Member> {
  const dropped: number[] = [];
  const logs: string[] = [];
  // The reconciler opens each replica's state machine before the host starts its group.
  const member = await startKvMember(network, nodeId, join(root, `node-${nodeId}`), {
    seed: 3,
    stateMachine: (groupId, machines) => {
      const machine = machines.get(groupId);
      if (machine === undefined) throw new Error(`no state machine opened for group ${groupId}`);
      return machine;
    },
  });
  const { host, machines } = member;
  const record = (message: string, fields?: Record<string, unknown>): void => void logs.push(`${message} ${JSON.stringify(fields)}`);
  const log: NodeLog = { debug: record, info: record, warn: record, error: record };
  const reconciler = new ReplicaReconciler({
    nodeId,
    host,
    view: map,
    log,
    now: () => clock,
    replicas: {
      open: async (partition) => void machines.set(partition.id, new KvStateMachine()),
      drop: async (partitionId) => {
        machines.delete(partitionId);
        dropped.push(partitionId);
      },
      // No splits in these tests: every replica is built from its log, none is ahead of the map.
      aheadOfMap: () => false,
      holdsRangeOf: () => false,
    },
  });
  return { ...member, dropped, reconciler, logs };
}

describe('ReplicaReconciler: replicas follow the partition map', () => {
  const network = new MemoryNetwork();
  const map = new FedMap();
  let root = '';
  let members: Member[] = [];

  /** Ticks the hosts and runs every node's reconciler until `done`. */
  const converge = (done: () => boolean, what: string): Promise<void> =>
    pump(members, () => {
      for (const m of members) void m.reconciler.reconcile();
      return done();
    }, what);
  const hosting = (): Member[] => members.filter((m) => m.host.hasGroup(PARTITION));
  const configOf = (m: Member) => m.host.status().find((s) => s.groupId === PARTITION);
  const leaderOf = (): Member | undefined => agreedLeader(hosting().filter((m) => configOf(m)?.voters.includes(m.nodeId)), PARTITION);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-reconciler-'));
    members = await Promise.all([1, 2, 3, 4].map((id) => startMember(network, map, root, id)));
  });

  afterAll(async () => {
    for (const m of members) {
      await m.reconciler.close();
      await stopKvMember(network, m);
    }
    await rm(root, { recursive: true, force: true });
  });

  it('creates the replicas of a new partition on the nodes it lists, bootstrapped alike', async () => {
    map.set(PARTITION, 1, [1, 2, 3]);
    await converge(() => leaderOf() !== undefined, 'a leader of the new partition');
    expect(hosting().map((m) => m.nodeId)).toEqual([1, 2, 3]);
    for (const m of hosting()) expect(configOf(m)!.voters.sort()).toEqual([1, 2, 3]);
    for (let i = 0; i < 10; i++) await whilePumping(members, leaderOf()!.host.propose(PARTITION, encodeWrite({ key: `k${i}`, value: `v${i}` })), 'write');
  });

  it('moves the partition from node 1 to node 4: learner, promotion, removal, data dropped', async () => {
    // Node 1 leads: a leader that must leave hands leadership over first.
    leaderOf()!.host.transferLeadership(PARTITION, 1);
    await converge(() => leaderOf()?.nodeId === 1, 'node 1 leading');
    map.set(PARTITION, 2, [2, 3, 4]);
    const node4 = members[3];
    await converge(
      () => members[0].dropped.length === 1 && [2, 3, 4].every((id) => configOf(members[id - 1])?.voters.sort().join() === '2,3,4'),
      'the group converged to nodes 2, 3, 4',
    );
    expect(members[0].dropped).toEqual([PARTITION]);
    expect(members[0].store.hasGroup(PARTITION)).toBe(false);
    expect(node4.machines.get(PARTITION)!.dump()).toEqual(members[1].machines.get(PARTITION)!.dump());
    expect(node4.machines.get(PARTITION)!.dump()).toHaveLength(10);
    expect(node4.logs.some((line) => line.startsWith('replica created') && line.includes('"bootstrap":false'))).toBe(true);
    expect(members[0].logs.some((line) => line.startsWith('replica removed') && line.includes('removed from the group'))).toBe(true);
    const changes = members.flatMap((m) => m.logs.filter((line) => line.startsWith('membership changed')).map((line) => JSON.parse(line.slice(line.indexOf('{'))).change as string));
    // In this order (a new leader that has not applied its predecessor's change may repeat it: a no-op).
    expect([...new Set(changes)]).toEqual(['addLearner', 'promote', 'remove']);
    expect(members[0].reconciler.stats.leadershipTransfers).toBeGreaterThan(0);
    expect(leaderOf()!.nodeId).not.toBe(1);

    await whilePumping(members, leaderOf()!.host.propose(PARTITION, encodeWrite({ key: 'after-move', value: 'ok' })), 'write after the move');
    await converge(() => [2, 3, 4].every((id) => members[id - 1].machines.get(PARTITION)!.entries.get('after-move') === 'ok'), 'the moved group applying');
  });

  it('removes a replica created for a listing that was withdrawn before the node joined', async () => {
    map.set(PARTITION, 3, [2, 3, 4, 1]);
    // Only node 1 sees this map: the leader never adds it.
    await members[0].reconciler.reconcile();
    expect(members[0].host.hasGroup(PARTITION)).toBe(true);
    map.set(PARTITION, 4, [2, 3, 4]);
    await converge(() => members[0].dropped.length === 2, 'node 1 dropping it again');
    expect(members[0].logs.some((line) => line.startsWith('replica removed') && line.includes('never joined'))).toBe(true);
    expect(members[0].dropped).toEqual([PARTITION, PARTITION]);
  });

  it('removes an unlisted replica that never learns it was removed once the grace period is over', async () => {
    const node4 = members[3];
    map.set(PARTITION, 5, [2, 3]);
    // Only node 4 sees this map: the leader does not remove it from the group yet.
    await node4.reconciler.reconcile();
    expect(node4.host.hasGroup(PARTITION)).toBe(true);
    clock += 299_999;
    await node4.reconciler.reconcile();
    expect(node4.host.hasGroup(PARTITION)).toBe(true);
    clock += 1;
    await node4.reconciler.reconcile();
    expect(node4.host.hasGroup(PARTITION)).toBe(false);
    expect(node4.dropped).toEqual([PARTITION]);
    expect(node4.logs.some((line) => line.startsWith('replica removed') && line.includes('unlisted past the grace period'))).toBe(true);
    // The leader then takes the voter out of the group.
    await converge(() => [2, 3].every((id) => configOf(members[id - 1])?.voters.sort().join() === '2,3'), 'the group down to nodes 2 and 3');
  });

  it('removes every replica of a deleted partition and drops its data', async () => {
    map.descriptors.delete(PARTITION);
    await converge(() => [2, 3].every((id) => members[id - 1].dropped.length === 1), 'replicas removed');
    for (const id of [2, 3]) {
      expect(members[id - 1].dropped).toEqual([PARTITION]);
      expect(members[id - 1].store.hasGroup(PARTITION)).toBe(false);
    }
    expect(members.every((m) => !m.host.hasGroup(PARTITION))).toBe(true);
  });
});
