/**
 * Splits a partition's group applied that the meta map missed (its meta leader died between asking
 * for the split and recording it) are found in the nodes' reports: a right half the map lacks, with
 * a reserved id, over a parent that is older and ends where it ends. A parent split twice is
 * recorded one right half at a time, the outermost first.
 */
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { applyMetaCommand, emptyMetaState, middleSplitKey, partitionList, type MetaCommand, type MetaState } from '@shoal/meta';
import { compareBytes, findPartitionMapProblems, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import { PartitionLoadSchema, partitionDescriptorToWire, type PartitionLoad } from '@shoal/proto';
import { unrecordedSplits } from '../src/meta-group/partition-splits.ts';

const record: TableRecord = {
  schema: { name: 'T', tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
  status: 'ACTIVE',
  createdAt: 1_700_000_000,
  billingMode: 'PAY_PER_REQUEST',
  tags: {},
};

const run = (state: MetaState, ...commands: MetaCommand[]): MetaState => commands.reduce((s, c) => applyMetaCommand(s, c).state, state);

function reported(descriptor: PartitionDescriptor): PartitionLoad {
  return create(PartitionLoadSchema, { partitionId: BigInt(descriptor.id), leader: true, descriptor: partitionDescriptorToWire(descriptor) });
}

describe('splits recorded from the nodes\' reports', () => {
  let state = emptyMetaState(3);
  for (let id = 1; id <= 3; id++) state = run(state, { type: 'registerNode', address: `10.0.0.${id}:7000`, nodeId: id, at: 1 });
  state = run(state, { type: 'createTable', record, partitionCount: 1 }, { type: 'reservePartitionId' }, { type: 'reservePartitionId' });
  const parent = state.partitions[1];
  // The group split at the middle (right half 2), then its left half again at a quarter (right half 3).
  const middle = middleSplitKey(parent)!;
  const quarter = middleSplitKey({ ...parent, endKey: middle })!;
  const outer: PartitionDescriptor = { ...parent, id: 2, startKey: middle, epoch: 2 };
  const inner: PartitionDescriptor = { ...parent, id: 3, startKey: quarter, endKey: middle, epoch: 3 };

  it('records the outermost right half first, then the next, leaving a consistent map', () => {
    const loads = [reported(inner), reported(outer)];
    const first = unrecordedSplits(state, loads);
    expect(first.map((c) => c.rightId)).toEqual([2]);
    const once = run(state, ...first);
    const second = unrecordedSplits(once, loads);
    expect(second.map((c) => c.rightId)).toEqual([3]);
    const twice = run(once, ...second);
    expect(unrecordedSplits(twice, loads)).toEqual([]);
    const partitions = partitionList(twice);
    expect(findPartitionMapProblems(partitions)).toEqual([]);
    expect(partitions.map((p) => p.id)).toEqual([1, 2, 3]);
    expect(compareBytes(twice.partitions[1].endKey, quarter)).toBe(0);
    expect(compareBytes(twice.partitions[3].endKey, middle)).toBe(0);
  });

  it('ignores descriptors the map already shows, ids never reserved, and a parent not older', () => {
    const recorded = run(state, ...unrecordedSplits(state, [reported(outer)]));
    expect(unrecordedSplits(recorded, [reported(outer), reported({ ...parent, id: 1, endKey: middle, epoch: 2 })])).toEqual([]);
    expect(unrecordedSplits(state, [reported({ ...outer, id: 7 })])).toEqual([]);
    expect(unrecordedSplits(state, [reported({ ...outer, epoch: 1 })])).toEqual([]);
  });
});
