import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { compareBytes, findPartitionMapProblems, spaceRange, type PartitionDescriptor, type TableRecord } from '@shoal/model';
import {
  applyMetaCommand,
  chooseSplitKey,
  emptyMetaState,
  partitionList,
  planSplits,
  splitCommand,
  type MetaState,
  type PartitionLoadReport,
  type SampledKey,
} from '../src/index.ts';

// Fixed seed: the properties explore the same cases on every run.
fc.configureGlobal({ seed: 20261125 });

const key = (...bytes: number[]) => Buffer.concat([spaceRange(1).start, Buffer.from(bytes)]);
/** The bytes after the space id, in hex. */
const hex = (k: Uint8Array | undefined) => (k ? Buffer.from(k).toString('hex').slice(8) : undefined);

const whole: PartitionDescriptor = { id: 1, tableId: 1, startKey: spaceRange(1).start, endKey: spaceRange(1).end, epoch: 1, replicas: [] };

const thresholds = { maxSizeBytes: 1000, maxReadUnitsPerSecond: 3000, maxWriteUnitsPerSecond: 1000 };

function cluster(): MetaState {
  let state = emptyMetaState();
  for (let i = 1; i <= 3; i++) state = applyMetaCommand(state, { type: 'registerNode', address: `n${i}:1`, nodeId: 0, at: 0 }).state;
  const record: TableRecord = {
    schema: { name: 'T', tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt: 0,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  };
  return applyMetaCommand(state, { type: 'createTable', record, partitionCount: 1 }).state;
}

function load(partitionId: number, sampledKeys: SampledKey[], over: Partial<PartitionLoadReport> = {}): PartitionLoadReport {
  return { partitionId, sizeBytes: 0, readUnitsPerSecond: 0, writeUnitsPerSecond: 0, sampledKeys, ...over };
}

describe('chooseSplitKey', () => {
  it('picks the key that halves the sampled weight', () => {
    const samples = [key(0x10), key(0x20), key(0x30), key(0x40)].map((k) => ({ key: k, weight: 1 }));
    expect(hex(chooseSplitKey(whole, samples)?.key)).toBe('30');
    expect(hex(chooseSplitKey(whole, [{ key: key(0x10), weight: 5 }, { key: key(0x20), weight: 1 }, { key: key(0x30), weight: 4 }])?.key)).toBe('20');
  });

  it('adds up repeated samples of a key and names a key holding most of the weight', () => {
    const samples = [
      { key: key(0x10), weight: 1 },
      { key: key(0x50), weight: 2 },
      { key: key(0x50), weight: 2 },
      { key: key(0x90), weight: 1 },
    ];
    const choice = chooseSplitKey(whole, samples)!;
    expect(hex(choice.key)).toBe('50');
    expect(hex(choice.dominantKey)).toBe('50');
    expect(chooseSplitKey(whole, [samples[0], samples[1], samples[3]])?.dominantKey).toBeUndefined();
  });

  it('ignores samples outside the partition, at its start, or without weight', () => {
    const part: PartitionDescriptor = { ...whole, startKey: key(0x40), endKey: key(0x80) };
    expect(chooseSplitKey(part, [{ key: key(0x10), weight: 9 }, { key: key(0x90), weight: 9 }])).toBeUndefined();
    expect(chooseSplitKey(part, [{ key: key(0x40), weight: 9 }])).toBeUndefined();
    expect(chooseSplitKey(part, [{ key: key(0x50), weight: 0 }])).toBeUndefined();
    expect(hex(chooseSplitKey(part, [{ key: key(0x40), weight: 9 }, { key: key(0x60), weight: 1 }])?.key)).toBe('60');
  });

  it('always returns a key strictly inside the partition that splits it into two non-empty halves', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => key(...b)), weight: fc.double({ min: 0, max: 100, noNaN: true }) }), { maxLength: 30 }),
        (samples) => {
          const choice = chooseSplitKey(whole, samples);
          const usable = samples.filter((s) => s.weight > 0 && compareBytes(s.key, whole.startKey) > 0);
          if (usable.length === 0) {
            expect(choice).toBeUndefined();
            return;
          }
          expect(choice).toBeDefined();
          expect(compareBytes(choice!.key, whole.startKey)).toBeGreaterThan(0);
          expect(compareBytes(choice!.key, whole.endKey)).toBeLessThan(0);
          // No other sampled key would have balanced the halves better.
          const total = samples.reduce((s, x) => s + (x.weight > 0 ? x.weight : 0), 0);
          const below = (k: Uint8Array) => samples.filter((s) => s.weight > 0 && compareBytes(s.key, k) < 0).reduce((s, x) => s + x.weight, 0);
          const imbalance = (k: Uint8Array) => Math.abs(below(k) - total / 2);
          for (const s of usable) expect(imbalance(choice!.key)).toBeLessThanOrEqual(imbalance(s.key) + 1e-9);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('planSplits', () => {
  const spread = [0x20, 0x40, 0x60, 0x80, 0xa0].map((b) => ({ key: key(b), weight: 1 }));

  it('splits for size and for heat at the median, and leaves cool partitions alone', () => {
    const state = cluster();
    expect(planSplits(state, [load(1, spread, { sizeBytes: 1000, readUnitsPerSecond: 3000, writeUnitsPerSecond: 1000 })], thresholds)).toEqual([]);
    for (const over of [{ sizeBytes: 1001 }, { readUnitsPerSecond: 3001 }, { writeUnitsPerSecond: 1001 }]) {
      const [decision] = planSplits(state, [load(1, spread, over)], thresholds);
      expect(decision).toMatchObject({ kind: 'split', partitionId: 1, epoch: 1, reason: 'sizeBytes' in over ? 'size' : 'heat' });
      expect(hex(decision.kind === 'split' ? decision.splitKey : undefined)).toBe('60');
    }
  });

  it('reports a single hot item instead of splitting for its heat, but still splits for size', () => {
    const state = cluster();
    const hot = [...spread, { key: key(0x33), weight: 50 }];
    expect(planSplits(state, [load(1, hot, { writeUnitsPerSecond: 5000 })], thresholds)).toEqual([
      { kind: 'hotKey', partitionId: 1, key: key(0x33), reason: 'heat' },
    ]);
    expect(planSplits(state, [load(1, hot, { sizeBytes: 5000 })], thresholds)[0]).toMatchObject({ kind: 'split', reason: 'size' });
    expect(planSplits(state, [load(1, [], { sizeBytes: 5000 })], thresholds)).toEqual([{ kind: 'hotKey', partitionId: 1, reason: 'size' }]);
  });

  it('ignores reports about unknown partitions; its decisions apply as meta commands', () => {
    let state = cluster();
    expect(planSplits(state, [load(9, spread, { sizeBytes: 5000 })], thresholds)).toEqual([]);
    for (let round = 0; round < 4; round++) {
      const loads = partitionList(state).map((p) => load(p.id, spread.filter((s) => compareBytes(s.key, p.startKey) > 0), { sizeBytes: 5000 }));
      for (const decision of planSplits(state, loads, thresholds)) {
        if (decision.kind === 'split') state = applyMetaCommand(state, splitCommand(decision)).state;
      }
    }
    expect(findPartitionMapProblems(partitionList(state))).toEqual([]);
    const starts = partitionList(state)
      .sort((a, b) => compareBytes(a.startKey, b.startKey))
      .map((p) => hex(p.startKey));
    expect(starts).toEqual(['', '20', '40', '60', '80', 'a0']);
  });
});
