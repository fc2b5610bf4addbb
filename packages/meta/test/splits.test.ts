import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { compareBytes, findPartitionMapProblems, partitionContains, spaceRange, type PartitionDescriptor } from '@shoal/model';
import {
  applyMetaCommand,
  chooseSplitKey,
  DEFAULT_SPLIT_POLICY,
  DEFAULT_SPLIT_SIZE_BYTES,
  emptyMetaState,
  hotKeyOf,
  isSplitSize,
  MAX_SPLIT_SIZE_BYTES,
  middleSplitKey,
  partitionList,
  planSplits,
  tableSplitPolicy,
  type MetaState,
  type PartitionLoadReport,
  type SampledKeyLoad,
  type SplitDecision,
  type SplitPolicy,
} from '../src/index.ts';
import { run, tableRecord } from './support/meta-state.ts';

// Fixed seed: the properties explore the same cases on every run.
fc.configureGlobal({ seed: 20261126 });

const key = (...bytes: number[]) => Buffer.concat([spaceRange(1).start, Buffer.from(bytes)]);
/** The bytes after the space id, in hex. */
const hex = (k: Uint8Array | undefined) => (k ? Buffer.from(k).toString('hex').slice(8) : undefined);

const whole: PartitionDescriptor = { id: 1, tableId: 1, startKey: spaceRange(1).start, endKey: spaceRange(1).end, epoch: 1, replicas: [] };

const policy: SplitPolicy = { enabled: true, maxSizeBytes: 1000, heatShare: 0.5, heatMs: 10_000 };

function cluster(): MetaState {
  let state = emptyMetaState();
  for (let i = 1; i <= 3; i++) state = run(state, { type: 'registerNode', address: `n${i}:1`, nodeId: 0, at: 0 });
  return run(state, { type: 'createTable', record: tableRecord('T'), partitionCount: 1 });
}

/**
 * The sample a stream of single-key requests (key, weight) leaves, each key entering it once, with
 * exact left/right counts over the whole stream (what KeySample counts, without the sampling).
 */
function sampleOf(requests: Array<[Uint8Array, number]>, spanning = 0): SampledKeyLoad[] {
  return requests.map(([k, weight]) => {
    let leftWeight = 0;
    let rightWeight = 0;
    for (const [other, w] of requests) {
      if (compareBytes(other, k) < 0) leftWeight += w;
      else rightWeight += w;
    }
    return { key: k, weight, leftWeight, rightWeight, spanningWeight: spanning };
  });
}

const evenly = (bytes: number[]): SampledKeyLoad[] => sampleOf(bytes.map((b) => [key(b), 1]));

function load(partitionId: number, sampledKeys: SampledKeyLoad[], over: Partial<PartitionLoadReport> = {}): PartitionLoadReport {
  return { partitionId, sizeBytes: 0, readUnitsPerSecond: 0, writeUnitsPerSecond: 0, readUnitLimit: 3000, writeUnitLimit: 1000, sampledKeys, ...over };
}

/** Rounds of planning over the same reports, `stepMs` apart: each round's decisions. */
function rounds(state: MetaState, loads: PartitionLoadReport[], times: number[], pol: SplitPolicy = policy): SplitDecision[][] {
  let heatSince = new Map<number, number>();
  return times.map((now) => {
    const plan = planSplits({ state, loads, policyOf: () => pol, now, heatSince });
    heatSince = plan.heatSince;
    return plan.decisions;
  });
}

const TEN = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0];

describe('chooseSplitKey', () => {
  it('picks the sampled key that balances the load left and right of it', () => {
    expect(hex(chooseSplitKey(whole, evenly([0x10, 0x20, 0x30, 0x40])))).toBe('30');
    expect(hex(chooseSplitKey(whole, sampleOf([[key(0x10), 5], [key(0x20), 1], [key(0x30), 4]])))).toBe('20');
  });

  it('avoids keys that range reads span, and keys with no load on one side', () => {
    const sample = evenly([0x10, 0x20, 0x30, 0x40]);
    // The balanced key is spanned by a Query of its collection a quarter of the time: the next best.
    const spanned = sample.map((s) => (hex(s.key) === '30' ? { ...s, spanningWeight: 2 } : s));
    expect(hex(chooseSplitKey(whole, spanned))).toBe('20');
    expect(chooseSplitKey(whole, sample.map((s) => ({ ...s, spanningWeight: 5 })))).toBeUndefined();
    expect(chooseSplitKey(whole, [{ key: key(0x10), weight: 1, leftWeight: 0, rightWeight: 9, spanningWeight: 0 }])).toBeUndefined();
  });

  it('ignores keys outside the partition or at its start', () => {
    const part: PartitionDescriptor = { ...whole, startKey: key(0x40), endKey: key(0x80) };
    const sample = evenly([0x10, 0x40, 0x50, 0x90]);
    expect(hex(chooseSplitKey(part, sample))).toBe('50');
    expect(chooseSplitKey(part, sample.filter((s) => hex(s.key) !== '50'))).toBeUndefined();
  });

  it('returns a key strictly inside the partition, no worse balanced than any other candidate', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 100 })), { minLength: 1, maxLength: 30 }),
        (requests) => {
          const sample = sampleOf(requests.map(([bytes, w]) => [key(...bytes), w]));
          const choice = chooseSplitKey(whole, sample);
          const imbalance = (s: SampledKeyLoad) => Math.abs(s.leftWeight - s.rightWeight) / (s.leftWeight + s.rightWeight);
          const candidates = sample.filter((s) => s.leftWeight > 0 && s.rightWeight > 0);
          if (candidates.length === 0) {
            expect(choice).toBeUndefined();
            return;
          }
          expect(compareBytes(choice!, whole.startKey)).toBeGreaterThan(0);
          expect(compareBytes(choice!, whole.endKey)).toBeLessThan(0);
          const chosen = sample.find((s) => compareBytes(s.key, choice!) === 0)!;
          for (const s of candidates) expect(imbalance(chosen)).toBeLessThanOrEqual(imbalance(s) + 1e-12);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('hotKeyOf', () => {
  it('names a key holding a majority of the sampled weight, and no key otherwise', () => {
    const hot = [...evenly([0x10, 0x20]), ...Array.from({ length: 3 }, () => ({ key: key(0x33), weight: 1, leftWeight: 0, rightWeight: 0, spanningWeight: 0 }))];
    expect(hotKeyOf(hot)).toEqual({ key: key(0x33), share: 0.6 });
    expect(hotKeyOf(evenly(TEN))).toBeUndefined();
    expect(hotKeyOf(hot.slice(0, 4))).toBeUndefined();
  });
});

describe('tableSplitPolicy', () => {
  it('takes the table tags over the cluster policy and names the invalid ones', () => {
    expect(tableSplitPolicy(DEFAULT_SPLIT_POLICY, {})).toEqual({ policy: DEFAULT_SPLIT_POLICY, invalid: [] });
    expect(
      tableSplitPolicy(DEFAULT_SPLIT_POLICY, { 'shoal:split': 'off', 'shoal:split-size-bytes': '4096', 'shoal:split-heat-share': '0.2', 'shoal:split-heat-seconds': '3', other: 'x' }),
    ).toEqual({ policy: { enabled: false, maxSizeBytes: 4096, heatShare: 0.2, heatMs: 3000 }, invalid: [] });
    expect(tableSplitPolicy({ ...DEFAULT_SPLIT_POLICY, enabled: false }, { 'shoal:split': 'on' }).policy.enabled).toBe(true);
    const bad = tableSplitPolicy(DEFAULT_SPLIT_POLICY, { 'shoal:split': 'yes', 'shoal:split-size-bytes': '-1', 'shoal:split-heat-share': '', 'shoal:split-heat-seconds': 'soon' });
    expect(bad.policy).toEqual(DEFAULT_SPLIT_POLICY);
    expect(bad.invalid.toSorted()).toEqual(['shoal:split', 'shoal:split-heat-seconds', 'shoal:split-heat-share', 'shoal:split-size-bytes']);
  });

  it('splits at 512 MiB by default; a split size above MAX_SPLIT_SIZE_BYTES (2 GiB: a snapshot install holds up its node) is invalid', () => {
    expect(DEFAULT_SPLIT_POLICY.maxSizeBytes).toBe(DEFAULT_SPLIT_SIZE_BYTES);
    expect(DEFAULT_SPLIT_SIZE_BYTES).toBe(512 * 2 ** 20);
    expect(MAX_SPLIT_SIZE_BYTES).toBe(2 * 2 ** 30);
    expect(tableSplitPolicy(DEFAULT_SPLIT_POLICY, { 'shoal:split-size-bytes': String(MAX_SPLIT_SIZE_BYTES) }).policy.maxSizeBytes).toBe(MAX_SPLIT_SIZE_BYTES);
    const tooLarge = tableSplitPolicy(DEFAULT_SPLIT_POLICY, { 'shoal:split-size-bytes': String(10 * 2 ** 30) });
    expect(tooLarge).toEqual({ policy: DEFAULT_SPLIT_POLICY, invalid: ['shoal:split-size-bytes'] });
    expect([0, -1, Number.NaN, Number.POSITIVE_INFINITY, MAX_SPLIT_SIZE_BYTES + 1].some(isSplitSize)).toBe(false);
    expect([1, 4096, MAX_SPLIT_SIZE_BYTES].every(isSplitSize)).toBe(true);
  });
});

describe('planSplits', () => {
  it('splits for heat only once the load stayed over the threshold for the configured time', () => {
    const state = cluster();
    const hot = [load(1, evenly(TEN), { writeUnitsPerSecond: 500 })];
    const [first, early, due] = rounds(state, hot, [0, 9_999, 10_000]);
    expect(first).toEqual([]);
    expect(early).toEqual([]);
    expect(due).toEqual([{ kind: 'split', partitionId: 1, epoch: 1, splitKey: key(0x60), reason: 'heat', sizeBytes: 0, utilization: 0.5 }]);
  });

  it('respects the thresholds: load below the share, or a break in the heat, splits nothing', () => {
    const state = cluster();
    expect(rounds(state, [load(1, evenly(TEN), { writeUnitsPerSecond: 499, readUnitsPerSecond: 1499, sizeBytes: 1000 })], [0, 60_000]).flat()).toEqual([]);
    // Hot, then cool for one round, then hot again: the clock starts over.
    let heatSince = new Map<number, number>();
    const plan = (writes: number, now: number) => {
      const result = planSplits({ state, loads: [load(1, evenly(TEN), { writeUnitsPerSecond: writes })], policyOf: () => policy, now, heatSince });
      heatSince = result.heatSince;
      return result.decisions;
    };
    expect([plan(900, 0), plan(100, 5_000), plan(900, 8_000), plan(900, 17_000)].flat()).toEqual([]);
    expect(plan(900, 18_000)).toHaveLength(1);
  });

  it('judges heat by the hottest replica and its sample, reads against the read limit', () => {
    const state = cluster();
    const follower = load(1, evenly([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80]), { readUnitsPerSecond: 1800 });
    const leader = load(1, evenly(TEN), { readUnitsPerSecond: 300, writeUnitsPerSecond: 10 });
    const [, due] = rounds(state, [leader, follower], [0, 10_000]);
    expect(due).toMatchObject([{ kind: 'split', reason: 'heat', utilization: 0.6 }]);
    expect(hex((due[0] as Extract<SplitDecision, { kind: 'split' }>).splitKey)).toBe('50');
  });

  it('reports a hot item instead of splitting for its heat', () => {
    const state = cluster();
    const item = { key: key(0x33), weight: 1, leftWeight: 2, rightWeight: 30, spanningWeight: 0 };
    const sample = [...evenly([0x10, 0x20, 0x40, 0x50]), ...Array.from({ length: 6 }, () => item)];
    const [, due] = rounds(state, [load(1, sample, { writeUnitsPerSecond: 1000 })], [0, 10_000]);
    expect(due).toEqual([{ kind: 'hotKey', partitionId: 1, key: key(0x33), share: 0.6, utilization: 1 }]);
  });

  it('waits for a sample of enough keys before judging heat', () => {
    const state = cluster();
    expect(rounds(state, [load(1, evenly([0x10, 0x20, 0x30]), { writeUnitsPerSecond: 1000 })], [0, 10_000, 20_000]).flat()).toEqual([]);
  });

  it('says why a hot partition cannot split when range reads span every sampled key', () => {
    const state = cluster();
    const spanned = evenly(TEN).map((s) => ({ ...s, spanningWeight: 100 }));
    const [, due] = rounds(state, [load(1, spanned, { readUnitsPerSecond: 3000 })], [0, 10_000]);
    expect(due).toMatchObject([{ kind: 'unsplittable', partitionId: 1, reason: 'heat' }]);
  });

  it('splits for size at once, in the middle of the hash range, whatever the traffic', () => {
    const state = cluster();
    const partition = partitionList(state)[0];
    const [now] = rounds(state, [load(1, [], { sizeBytes: 1001 }), load(1, [], { sizeBytes: 0 })], [0]);
    expect(now).toEqual([{ kind: 'split', partitionId: partition.id, epoch: 1, splitKey: middleSplitKey(partition), reason: 'size', sizeBytes: 1001, utilization: 0 }]);
    expect(rounds(state, [load(1, [], { sizeBytes: 1000 })], [0]).flat()).toEqual([]);
  });

  it('leaves a table whose splitting is off, and partitions the map lacks, alone', () => {
    const state = cluster();
    const loads = [load(1, evenly(TEN), { sizeBytes: 5000, writeUnitsPerSecond: 1000 }), load(9, evenly(TEN), { sizeBytes: 5000 })];
    expect(rounds(state, loads, [0, 20_000], { ...policy, enabled: false }).flat()).toEqual([]);
    expect(rounds(state, [loads[1]], [0]).flat()).toEqual([]);
  });

  it('decisions applied as splits keep the map whole, and decide alike every time', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 8, maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (bytes, splits) => {
        let state = cluster();
        let heatSince = new Map<number, number>();
        for (let round = 0; round < splits; round++) {
          const loads = partitionList(state).map((p) =>
            load(p.id, sampleOf(bytes.map((b): [Uint8Array, number] => [key(b), 1]).filter(([k]) => partitionContains(p, k))), { writeUnitsPerSecond: 1000 }),
          );
          const input = { state, loads, policyOf: () => ({ ...policy, heatMs: 0 }), now: round, heatSince };
          const plan = planSplits(input);
          expect(planSplits(input)).toEqual(plan);
          heatSince = plan.heatSince;
          for (const decision of plan.decisions) {
            if (decision.kind !== 'split') continue;
            state = applyMetaCommand(state, { type: 'splitPartition', partitionId: decision.partitionId, splitKey: decision.splitKey, expectedEpoch: decision.epoch }).state;
          }
        }
        expect(findPartitionMapProblems(partitionList(state).filter((p) => p.tableId === 1))).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});

