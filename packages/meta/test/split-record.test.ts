import { describe, expect, it } from 'vitest';
import { compareBytes, findPartitionMapProblems, spaceRange } from '@shoal/model';
import {
  applyMetaCommand,
  decodeMetaCommand,
  emptyMetaState,
  encodeMetaCommand,
  hashWidth,
  MetaCommandError,
  middleSplitKey,
  partitionList,
  type MetaCommand,
  type MetaState,
} from '../src/index.ts';
import { run, tableRecord } from './support/meta-state.ts';

/**
 * Splits made in a partition's Raft group and recorded in meta afterwards: the right half's id is
 * reserved first, the record names it and the end the group split, and recording twice is a no-op.
 */

const record = tableRecord('T');

function withTable(): MetaState {
  let state = emptyMetaState(3);
  for (let id = 1; id <= 3; id++) state = run(state, { type: 'registerNode', address: `10.0.0.${id}:7000`, nodeId: id, at: 1 });
  return run(state, { type: 'createTable', record, partitionCount: 1 });
}

const reason = (state: MetaState, command: MetaCommand): string | undefined => {
  try {
    applyMetaCommand(state, command);
    return undefined;
  } catch (error) {
    return error instanceof MetaCommandError ? error.reason : String(error);
  }
};

describe('splits recorded after their partition group applied them', () => {
  const base = withTable();
  const parent = base.partitions[1];
  const splitKey = middleSplitKey(parent)!;

  it('reserves ids that no later partition takes', () => {
    const reserved = applyMetaCommand(base, { type: 'reservePartitionId' });
    expect(reserved.partitionId).toBe(2);
    const after = run(reserved.state, { type: 'createTable', record: { ...record, schema: { ...record.schema, name: 'U' } }, partitionCount: 1 });
    expect(Object.keys(after.partitions).map(Number)).toEqual([1, 3]);
  });

  it('records the split with the reserved id, both halves at epoch + 1, and a second record changes nothing', () => {
    const reserved = run(base, { type: 'reservePartitionId' });
    const command: MetaCommand = { type: 'splitPartition', partitionId: 1, splitKey, rightId: 2, parentEnd: parent.endKey };
    const once = applyMetaCommand(reserved, command);
    const [left, right] = partitionList(once.state);
    expect(left).toMatchObject({ id: 1, epoch: 2, replicas: parent.replicas });
    expect(right).toMatchObject({ id: 2, epoch: 2, replicas: parent.replicas });
    expect(compareBytes(left.endKey, splitKey)).toBe(0);
    expect(compareBytes(right.startKey, splitKey)).toBe(0);
    expect(findPartitionMapProblems(partitionList(once.state))).toEqual([]);
    expect(once.state.nextPartitionId).toBe(reserved.nextPartitionId);
    expect(applyMetaCommand(once.state, command).state).toBe(once.state);
  });

  it('refuses an id not reserved, or a parent that is not as wide as when the group split', () => {
    const reserved = run(base, { type: 'reservePartitionId' });
    expect(reason(reserved, { type: 'splitPartition', partitionId: 1, splitKey, rightId: 3, parentEnd: parent.endKey })).toBe('conflict');
    expect(reason(reserved, { type: 'splitPartition', partitionId: 1, splitKey, rightId: 1, parentEnd: parent.endKey })).toBe('conflict');
    expect(reason(reserved, { type: 'splitPartition', partitionId: 1, splitKey, rightId: 2, parentEnd: splitKey })).toBe('conflict');
    // A membership change since (epoch 2) does not matter: the range does.
    const moved = run(reserved, { type: 'setReplicas', partitionId: 1, replicas: parent.replicas });
    const recorded = applyMetaCommand(moved, { type: 'splitPartition', partitionId: 1, splitKey, rightId: 2, parentEnd: parent.endKey });
    expect(partitionList(recorded.state).map((p) => p.epoch)).toEqual([3, 3]);
  });

  it('keeps the record through the log codec', () => {
    const command: MetaCommand = { type: 'splitPartition', partitionId: 1, splitKey, rightId: 2, parentEnd: Uint8Array.from(parent.endKey) };
    expect(decodeMetaCommand(encodeMetaCommand(command))).toEqual(command);
    expect(decodeMetaCommand(encodeMetaCommand({ type: 'reservePartitionId' }))).toEqual({ type: 'reservePartitionId' });
  });

  it('splits in the middle of the hash range, halving it', () => {
    const whole = hashWidth(parent);
    expect(whole).toBe(1n << 64n);
    expect(Buffer.from(splitKey).toString('hex')).toBe(`${Buffer.from(spaceRange(parent.tableId).start).toString('hex')}8000000000000000`);
    const halves = partitionList(run(base, { type: 'splitPartition', partitionId: 1, splitKey }));
    expect(halves.map(hashWidth)).toEqual([whole / 2n, whole / 2n]);
    const quarter = middleSplitKey(halves[1])!;
    expect(Buffer.from(quarter).subarray(4).toString('hex')).toBe('c000000000000000');
    // One hash value wide: no middle.
    const narrow = { ...parent, startKey: Buffer.from(`${Buffer.from(spaceRange(1).start).toString('hex')}0000000000000001`, 'hex'), endKey: Buffer.from(`${Buffer.from(spaceRange(1).start).toString('hex')}0000000000000002`, 'hex') };
    expect(middleSplitKey(narrow)).toBeUndefined();
  });
});
