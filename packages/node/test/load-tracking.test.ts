/**
 * Load tracking and admission control of a partition, on a driven clock: sliding rates, the weighted
 * key sample (seeded: the same run twice gives the same sample), the split key it finds, the hot key
 * it reports, and token buckets letting requests through at the configured rate.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseSplitKey, hotKeyOf } from '@shoal/meta';
import { DynamoDbError, TokenBucket, encodeItemKey, spaceRange, type PartitionDescriptor, type PartitionWriteResult, type TableSchema } from '@shoal/model';
import { KeySample, PartitionLoadTracker, SlidingRate, recordGet, recordRangeRead, recordWrite, seededRandom } from '@shoal/node';

const table: TableSchema = { name: 'heat', tableId: 7, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const keyOf = (i: number): Uint8Array => encodeItemKey(table.tableId, { S: `k${String(i).padStart(4, '0')}` });
const whole: PartitionDescriptor = { id: 1, tableId: table.tableId, ...rangeOf(spaceRange(table.tableId)), epoch: 1, replicas: [] };
const splitKeyOf = (sample: KeySample): Uint8Array | undefined => chooseSplitKey(whole, sample.keys());
const hotKeyIn = (sample: KeySample): Uint8Array | undefined => hotKeyOf(sample.keys())?.key;

function rangeOf(range: { start: Uint8Array; end: Uint8Array }): { startKey: Uint8Array; endKey: Uint8Array } {
  return { startKey: range.start, endKey: range.end };
}

describe('SlidingRate', () => {
  it('averages over the time covered, then forgets what left the window', () => {
    const rate = new SlidingRate(10_000);
    rate.add(50, 0);
    // Never less than one bucket (1 s) of time: no wild rates just after the start.
    expect(rate.perSecond(500)).toBe(50);
    expect(rate.perSecond(2_000)).toBe(25);
    for (let t = 1_000; t < 10_000; t += 1_000) rate.add(50, t);
    expect(rate.perSecond(9_999)).toBeCloseTo(50, 0);
    // 25 s later every bucket has left the window.
    expect(rate.perSecond(35_000)).toBe(0);
    rate.add(10, 35_000);
    // At a bucket boundary the window holds 9 whole seconds.
    expect(rate.perSecond(36_000)).toBeCloseTo(10 / 9, 5);
  });
});

describe('TokenBucket', () => {
  it('admits while it holds tokens, goes into debt by the units served, refills at its rate up to the burst', () => {
    const bucket = new TokenBucket(100, 100);
    expect(bucket.admits(0)).toBe(true);
    bucket.charge(150, 0);
    expect(bucket.tokens(0)).toBe(-50);
    expect(bucket.admits(400)).toBe(false);
    expect(bucket.admits(501)).toBe(true);
    expect(bucket.tokens(10_000)).toBe(100);
    bucket.charge(1_000, 10_000);
    expect(bucket.tokens(10_000)).toBe(-100);
  });

  it('lets through the rate and no more over a long run', () => {
    const bucket = new TokenBucket(1_000, 1_000);
    let admitted = 0;
    // One 1-unit request every 0.1 ms for 10 s: 10x the rate.
    for (let t = 0; t < 10_000; t += 0.1) {
      if (!bucket.admits(t)) continue;
      bucket.charge(1, t);
      admitted++;
    }
    expect(admitted).toBeGreaterThanOrEqual(10_000);
    expect(admitted).toBeLessThanOrEqual(11_001);
  });
});

describe('KeySample', () => {
  const run = (seed: number): string[] => {
    const sample = new KeySample(8, seededRandom(seed));
    for (let i = 0; i < 1_000; i++) sample.record({ start: keyOf(i % 100) }, 1 + (i % 3));
    return sample.keys().map((k) => Buffer.from(k.key).toString('hex'));
  };

  it('is deterministic for a seed, and keeps at most its capacity', () => {
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
    expect(run(3)).toHaveLength(8);
  });

  it('samples in proportion to weight', () => {
    const sample = new KeySample(20, seededRandom(9));
    // Key 1 carries 99% of the weight.
    for (let i = 0; i < 2_000; i++) sample.record({ start: i % 2 === 0 ? keyOf(1) : keyOf(2 + i) }, i % 2 === 0 ? 99 : 1);
    const hot = sample.keys().filter((k) => Buffer.compare(k.key, keyOf(1)) === 0).length;
    expect(hot).toBeGreaterThan(15);
    expect(Buffer.compare(hotKeyIn(sample)!, keyOf(1))).toBe(0);
  });

  it('counts left, right and spanning weight of every sampled key and finds a balancing split key', () => {
    const sample = new KeySample(20, seededRandom(5));
    for (let round = 0; round < 20; round++) for (let i = 0; i < 100; i++) sample.record({ start: keyOf(i) }, 1);
    const split = splitKeyOf(sample);
    expect(split).toBeDefined();
    // Keys are in hash order: count the uniform load on each side of the split key.
    const left = Array.from({ length: 100 }, (_, i) => keyOf(i)).filter((key) => Buffer.compare(key, split!) < 0).length;
    expect(left).toBeGreaterThan(35);
    expect(left).toBeLessThan(65);
    const chosen = sample.keys().find((k) => Buffer.compare(k.key, split!) === 0)!;
    expect(Math.abs(chosen.leftWeight - chosen.rightWeight) / (chosen.leftWeight + chosen.rightWeight)).toBeLessThan(0.3);
    for (const key of sample.keys()) expect(key.spanningWeight).toBe(0);
    expect(hotKeyIn(sample)).toBeUndefined();
  });

  it('refuses split keys that requests span', () => {
    const sample = new KeySample(10, seededRandom(2));
    // Every request covers [k0000, k0100): no key inside relieves anything.
    for (let i = 0; i < 500; i++) sample.record({ start: keyOf(i % 50), end: keyOf(100) }, 1);
    const keys = sample.keys();
    expect(keys.some((k) => k.spanningWeight > 0)).toBe(true);
    expect(splitKeyOf(sample)).toBeUndefined();
    // Unbounded ranges span every key after their start.
    const [low, high] = [keyOf(5), keyOf(9)].sort(Buffer.compare);
    const unbounded = new KeySample(10, seededRandom(2));
    unbounded.record({ start: high }, 1);
    unbounded.record({ start: low, unboundedEnd: true }, 2);
    unbounded.record({ start: high, unboundedEnd: true }, 3);
    expect(unbounded.keys().find((k) => Buffer.compare(k.key, high) === 0)).toMatchObject({ leftWeight: 0, spanningWeight: 2, rightWeight: 3 });
  });
});

/**
 * The sample as defined: every sampled key compared with every request (KeySample finds the same
 * split of its keys by binary search over them in key order).
 */
class ReferenceSample {
  readonly entries: Array<{ key: Uint8Array; weight: number; leftWeight: number; rightWeight: number; spanningWeight: number; priority: number }> = [];
  readonly #random: () => number;
  readonly #capacity: number;

  constructor(capacity: number, random: () => number) {
    this.#capacity = capacity;
    this.#random = random;
  }

  record(span: { start: Uint8Array; end?: Uint8Array; unboundedEnd?: boolean }, weight: number): void {
    for (const entry of this.entries) {
      if (span.end === undefined && span.unboundedEnd !== true) {
        if (Buffer.compare(span.start, entry.key) < 0) entry.leftWeight += weight;
        else entry.rightWeight += weight;
      } else if (span.unboundedEnd !== true && span.end !== undefined && Buffer.compare(span.end, entry.key) <= 0) entry.leftWeight += weight;
      else if (Buffer.compare(span.start, entry.key) >= 0) entry.rightWeight += weight;
      else entry.spanningWeight += weight;
    }
    const priority = Math.log(1 - this.#random()) / weight;
    const entry = { key: span.start, weight, leftWeight: 0, rightWeight: 0, spanningWeight: 0, priority };
    if (this.entries.length < this.#capacity) {
      this.entries.push(entry);
      return;
    }
    let lowest = 0;
    for (let i = 1; i < this.entries.length; i++) if (this.entries[i]!.priority < this.entries[lowest]!.priority) lowest = i;
    if (priority > this.entries[lowest]!.priority) this.entries[lowest] = entry;
  }

  keys() {
    return this.entries.map(({ priority: _, ...rest }) => rest).sort((a, b) => Buffer.compare(a.key, b.key));
  }
}

describe('KeySample against its definition', () => {
  it('counts left, right and spanning weight exactly as comparing every sampled key, for keys, ranges and unbounded ranges', () => {
    const key = fc.integer({ min: 0, max: 30 }).map(keyOf);
    const span = fc.oneof(
      key.map((start) => ({ start })),
      fc.tuple(key, key).map(([start, end]) => ({ start, end })),
      key.map((start) => ({ start, unboundedEnd: true })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.nat(), fc.array(fc.tuple(span, fc.constantFrom(0.5, 1, 2, 7)), { maxLength: 120 }), (capacity, seed, requests) => {
        const sample = new KeySample(capacity, seededRandom(seed));
        const reference = new ReferenceSample(capacity, seededRandom(seed));
        for (const [request, weight] of requests) {
          sample.record(request, weight);
          reference.record(request, weight);
        }
        expect(sample.keys()).toEqual(reference.keys());
      }),
      { numRuns: 300, seed: 31 },
    );
  });
});

describe('PartitionLoadTracker', () => {
  const ok: PartitionWriteResult = { applied: true, outcomes: [{ status: 'ok' }] };

  it('throttles at the write limit with the burst allowance, then lets requests in again', () => {
    let now = 0;
    const tracker = new PartitionLoadTracker(1, { limits: { writeUnitsPerSecond: 10, readUnitsPerSecond: 20, burstSeconds: 1 }, now: () => now, seed: 1 });
    const write = { operations: [{ table, kind: 'Put' as const, key: { pk: { S: 'a' } }, item: { pk: { S: 'a' } } }] };
    let admitted = 0;
    let throttled = 0;
    for (let i = 0; i < 30; i++) {
      try {
        tracker.admit('write', table.name);
        recordWrite(tracker, write, ok);
        admitted++;
      } catch (error) {
        expect(error).toBeInstanceOf(DynamoDbError);
        const refused = error as DynamoDbError;
        expect(refused.type).toBe('ProvisionedThroughputExceededException');
        expect(refused.fields.ThrottlingReasons).toEqual([{ reason: 'TableWriteKeyRangeThroughputExceeded', resource: 'arn:aws:dynamodb::000000000000:table/heat' }]);
        throttled++;
      }
    }
    expect(admitted).toBe(10);
    expect(throttled).toBe(20);
    // Reads have their own bucket.
    expect(() => tracker.admit('read', table.name)).not.toThrow();
    now = 1_000;
    expect(() => tracker.admit('write', table.name)).not.toThrow();
    const report = tracker.report();
    expect(report.writesPerSecond).toBe(10);
    expect(report.writeUnitsPerSecond).toBe(10);
    expect(report.throttledWritesPerSecond).toBe(20);
    expect(report.writeUnitLimit).toBe(10);
    expect(report.readUnitLimit).toBe(20);
  });

  it('reports reads in DynamoDB units and the key sample of the last complete window', () => {
    let now = 0;
    const tracker = new PartitionLoadTracker(2, { windowMs: 1_000, now: () => now });
    recordGet(tracker, table, { pk: { S: 'x' } }, true, 5_000);
    recordGet(tracker, table, { pk: { S: 'y' } }, false, 100);
    recordRangeRead(
      tracker,
      { id: 2, tableId: table.tableId, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: 1, replicas: [] },
      { table, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' },
      true,
      10_000,
    );
    now = 500;
    const report = tracker.report();
    expect(report.readsPerSecond).toBe(6);
    // 2 (5 KB strong) + 0.5 (eventual) + 3 (10 KB strong) units in half a second.
    expect(report.readUnitsPerSecond).toBe(11);
    expect(report.bytesPerSecond).toBe(30_200);
    expect(report.sampledKeys).toHaveLength(3);
    now = 1_200;
    recordGet(tracker, table, { pk: { S: 'z' } }, true, 10);
    // A new window began: the report still shows the complete one.
    expect(tracker.report().sampledKeys).toHaveLength(3);
  });
});
