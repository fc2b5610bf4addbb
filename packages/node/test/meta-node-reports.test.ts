import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { NodeReports } from '@shoal/node';
import { PartitionLoadSchema, ReplicaRole, type PartitionLoad } from '@shoal/proto';

const load = (partitionId: number, role: ReplicaRole, leader = false, term = 1n): PartitionLoad =>
  create(PartitionLoadSchema, { partitionId: BigInt(partitionId), role, leader, term });

describe('NodeReports', () => {
  it('keeps each node’s last report: when it came and the role of each of its replicas', () => {
    const reports = new NodeReports();
    reports.record(1, 100, [load(7, ReplicaRole.VOTER), load(8, ReplicaRole.LEARNER), load(9, ReplicaRole.UNSPECIFIED)]);
    expect(reports.get(1)?.at).toBe(100);
    expect(reports.roleOf(1, 7)).toBe('voter');
    expect(reports.roleOf(1, 8)).toBe('learner');
    expect(reports.roleOf(1, 9)).toBeUndefined();
    expect(reports.roleOf(2, 7)).toBeUndefined();
    // A later report replaces the whole of the earlier one.
    reports.record(1, 200, [load(8, ReplicaRole.VOTER)]);
    expect(reports.get(1)?.at).toBe(200);
    expect(reports.roleOf(1, 7)).toBeUndefined();
    expect(reports.roleOf(1, 8)).toBe('voter');
  });

  it('names the leader of a partition by the highest term claimed', () => {
    const reports = new NodeReports();
    reports.record(1, 100, [load(7, ReplicaRole.VOTER, true, 4n)]);
    expect(reports.leaderOf(7)).toBe(1);
    // A deposed leader still claiming an older term does not take it back...
    reports.record(2, 110, [load(7, ReplicaRole.VOTER, true, 3n)]);
    expect(reports.leaderOf(7)).toBe(1);
    // ...a leader of a later term does.
    reports.record(3, 120, [load(7, ReplicaRole.VOTER, true, 5n)]);
    expect(reports.leaderOf(7)).toBe(3);
    expect(reports.leaderOf(8)).toBeUndefined();
  });
});
