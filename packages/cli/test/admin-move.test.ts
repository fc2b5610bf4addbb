import { create } from '@bufbuild/protobuf';
import { NodeState, ReplicaRole, StatusResponseSchema } from '@shoal/proto';
import type { StatusResponse } from '@shoal/proto';
import { describe, expect, it } from 'vitest';
import { moveProgress, partitionLeader } from '../src/commands/admin-move.ts';

/**
 * Partition 7 moving its replica from node 3 to node 4: `mapped` the replicas the map lists,
 * `reported` what each node reports hosting (role, leadership, term).
 */
function status(
  mapped: [number, ReplicaRole][],
  reported: Record<number, { role: ReplicaRole; leader?: boolean; term?: bigint } | undefined>,
  downNodes: number[] = [],
): StatusResponse {
  return create(StatusResponseSchema, {
    nodes: [1, 2, 3, 4].map((id) => ({
      node: { id: BigInt(id), address: `127.0.0.1:700${id}`, state: downNodes.includes(id) ? NodeState.DOWN : NodeState.UP },
      reportedReplicas: reported[id] === undefined ? [] : [{ partitionId: 7n, role: reported[id].role, leader: reported[id].leader ?? false, term: reported[id].term ?? 1n }],
    })),
    partitions: [{ id: 7n, tableId: 5, epoch: 4n, replicas: mapped.map(([nodeId, role]) => ({ nodeId: BigInt(nodeId), role })) }],
  });
}

const V = ReplicaRole.VOTER;
const L = ReplicaRole.LEARNER;
const moved: [number, ReplicaRole][] = [[1, V], [2, V], [4, V]];

describe('shoal admin move --wait', () => {
  it('is done once the target reports its replica in the role the map gives it and the source reports none', () => {
    expect(moveProgress(status(moved, { 1: { role: V }, 2: { role: V }, 3: { role: V } }), 7, 3, 4)).toBe('moving');
    expect(moveProgress(status(moved, { 1: { role: V }, 2: { role: V }, 3: { role: V }, 4: { role: L } }), 7, 3, 4)).toBe('moving');
    expect(moveProgress(status(moved, { 1: { role: V }, 2: { role: V }, 3: { role: V }, 4: { role: V } }), 7, 3, 4)).toBe('moving');
    expect(moveProgress(status(moved, { 1: { role: V }, 2: { role: V }, 4: { role: V } }), 7, 3, 4)).toBe('done');
  });

  it('does not wait for a down source (its last report is stale)', () => {
    expect(moveProgress(status(moved, { 1: { role: V }, 2: { role: V }, 3: { role: V }, 4: { role: V } }, [3]), 7, 3, 4)).toBe('done');
  });

  it('says when the map moved on: the partition gone or no replica on the target', () => {
    expect(moveProgress(status([[1, V], [2, V], [3, V]], {}), 7, 3, 4)).toBe('overtaken');
    expect(moveProgress(status(moved, {}), 8, 3, 4)).toBe('overtaken');
    // The map still lists the source: a move not recorded (yet).
    expect(moveProgress(status([[1, V], [3, V], [4, V]], {}), 7, 3, 4)).toBe('moving');
  });
});

describe('shoal admin transfer-leader --wait', () => {
  it('follows the leadership claim of the latest term', () => {
    expect(partitionLeader(status(moved, { 1: { role: V } }), 7)).toBeUndefined();
    expect(partitionLeader(status(moved, { 1: { role: V, leader: true, term: 3n }, 2: { role: V } }), 7)).toBe(1);
    // A deposed leader's report from an older term loses to the new leader's.
    expect(partitionLeader(status(moved, { 1: { role: V, leader: true, term: 3n }, 2: { role: V, leader: true, term: 4n } }), 7)).toBe(2);
  });
});
