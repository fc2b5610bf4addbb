import { describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import { NodeState, type NodeDescriptor, type PartitionMapAnswer } from '@shoal/proto';
import { ClusterView } from '../src/cluster/cluster-view.ts';

/**
 * What a router's view keeps per partition besides the map (leaders learned, replicas known to be
 * behind): bounded by the map, each entry going with its partition when a newer map no longer lists it.
 */

const mapOf = (version: number, partitions: PartitionDescriptor[], nodes: NodeDescriptor[] = []): PartitionMapAnswer => ({ notModified: false, version, partitions, nodes, tables: [] });
const [left, right] = initialPartitions(9, 2, 1);

describe('the leaders a router learned', () => {
  it('are forgotten with their partition when a newer map no longer lists it, and only then', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.learnLeader(left.id, { id: 1, address: '' });
    view.learnLeader(right.id, { id: 2, address: '' });
    // An older map changes nothing.
    view.apply(mapOf(1, [left]));
    expect(view.leaderOf(right.id)).toBe(2);
    view.apply(mapOf(2, [left]));
    expect(view.leaderOf(left.id)).toBe(1);
    expect(view.leaderOf(right.id)).toBeUndefined();
  });

  it('teach the address of a node the map does not know yet, not over the map', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left], [{ $typeName: 'shoal.v1.NodeDescriptor', id: 1n, address: 'mapped:1', state: NodeState.UP }]));
    view.learnLeader(left.id, { id: 1, address: 'other:1' });
    view.learnLeader(left.id, { id: 2, address: 'new:2' });
    expect(view.nodeAddress(1)).toBe('mapped:1');
    expect(view.nodeAddress(2)).toBe('new:2');
    expect(view.leaderOf(left.id)).toBe(2);
  });
});

describe('the replicas a router knows to be behind', () => {
  it('skip reads asking more than they said they applied, from when they said it on', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.noteReplicaBehind(left.id, 2, 10n, 1_000);
    // Reads asking for what it has are its to serve; more is not, while the record holds.
    expect(view.replicaBehind(left.id, 2, 10n, 500)).toBe(false);
    expect(view.replicaBehind(left.id, 2, 11n, 500)).toBe(true);
    expect(view.replicaBehind(left.id, 2, 11n, 1_000)).toBe(true);
    // Other replicas and partitions are not concerned.
    expect(view.replicaBehind(left.id, 3, 11n, 500)).toBe(false);
    expect(view.replicaBehind(right.id, 2, 11n, 500)).toBe(false);
    // A newer answer replaces the older one.
    view.noteReplicaBehind(left.id, 2, 20n, 1_200);
    expect(view.replicaBehind(left.id, 2, 15n, 1_100)).toBe(false);
    expect(view.replicaBehind(left.id, 2, 21n, 1_100)).toBe(true);
    // A record older than the caller's window is dropped: not behind, and not again once the window moves back.
    expect(view.replicaBehind(left.id, 2, 21n, 1_201)).toBe(false);
    expect(view.replicaBehind(left.id, 2, 21n, 0)).toBe(false);
  });

  it('are no longer behind once they answered a read', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left]));
    view.noteReplicaBehind(left.id, 2, 10n, 1_000);
    view.noteReplicaBehind(left.id, 3, 10n, 1_000);
    view.forgetReplicaBehind(left.id, 2);
    expect(view.replicaBehind(left.id, 2, 11n, 0)).toBe(false);
    expect(view.replicaBehind(left.id, 3, 11n, 0)).toBe(true);
    // Forgetting what was never said changes nothing.
    view.forgetReplicaBehind(left.id, 2);
    view.forgetReplicaBehind(right.id, 2);
    expect(view.replicaBehind(left.id, 3, 11n, 0)).toBe(true);
  });

  it('are forgotten with their partition when a newer map no longer lists it', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.noteReplicaBehind(left.id, 2, 10n, 1_000);
    view.noteReplicaBehind(right.id, 2, 10n, 1_000);
    view.apply(mapOf(2, [left]));
    expect(view.replicaBehind(left.id, 2, 11n, 0)).toBe(true);
    expect(view.replicaBehind(right.id, 2, 11n, 0)).toBe(false);
  });
});

describe('the table records a router holds', () => {
  const record = (tableId: number, revision: number, tags: Record<string, string> = {}): TableRecord => ({
    schema: { name: 'T', tableId, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt: 1,
    billingMode: 'PAY_PER_REQUEST',
    tags,
    revision,
  });

  it("never go back to an older revision when the router's own change lands after a map with a later one", () => {
    const view = new ClusterView();
    // Another router's change (revision 7) arrived by the map before this router recorded its own (6).
    view.apply({ notModified: false, version: 102, partitions: [left], nodes: [], tables: [record(9, 7, { by: 'other' })] });
    view.putTable(record(9, 6, { by: 'this' }));
    expect(view.table('T')?.revision).toBe(7);
    view.putTable(record(9, 8, { by: 'this' }));
    expect(view.table('T')?.tags).toEqual({ by: 'this' });
    // A table deleted and created again under the name (another id) is taken whatever its revision.
    view.putTable(record(12, 1));
    expect([view.table('T')?.schema.tableId, view.table('T')?.revision]).toEqual([12, 1]);
  });
});
