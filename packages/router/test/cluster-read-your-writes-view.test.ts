import { describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor } from '@shoal/model';
import type { PartitionMapAnswer } from '@shoal/proto';
import { ClusterView } from '../src/cluster/cluster-view.ts';

/** What a router remembers of its own writes for read-your-writes: the highest index per partition, bounded by the map. */

const mapOf = (version: number, partitions: PartitionDescriptor[]): PartitionMapAnswer => ({ notModified: false, version, partitions, nodes: [], tables: [] });

describe('the written indexes a router keeps', () => {
  const [left, right] = initialPartitions(9, 2, 1);

  it('keeps the highest applied index answered per partition', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    expect(view.writtenThrough(left.id)).toBe(0n);
    view.noteWritten(left.id, 12n);
    view.noteWritten(left.id, 7n);
    view.noteWritten(right.id, 3n);
    // An answer without an index (0n) changes nothing.
    view.noteWritten(right.id, 0n);
    expect(view.writtenThrough(left.id)).toBe(12n);
    expect(view.writtenThrough(right.id)).toBe(3n);
  });

  it('forgets the partitions a newer map no longer lists, and only those', () => {
    const view = new ClusterView();
    view.apply(mapOf(1, [left, right]));
    view.noteWritten(left.id, 5n);
    view.noteWritten(right.id, 6n);
    expect(view.writtenPartitions).toBe(2);
    // An older map changes nothing.
    view.apply(mapOf(1, [left]));
    expect(view.writtenPartitions).toBe(2);
    view.apply(mapOf(2, [left]));
    expect(view.writtenPartitions).toBe(1);
    expect(view.writtenThrough(left.id)).toBe(5n);
    expect(view.writtenThrough(right.id)).toBe(0n);
  });
});
