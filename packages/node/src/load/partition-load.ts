/**
 * Load tracking and admission control of the partition replicas on one node. Each partition served
 * here has a tracker: requests, capacity units and bytes per second over a sliding window, throttled
 * requests, and a weighted key sample (key-sample.ts) that restarts every window, the last complete
 * one being what the node reports (a split decision wants a whole window). Admission follows
 * DynamoDB's per-partition limits (3,000 read and 1,000 write units a second by default) with token
 * buckets holding `burstSeconds` of the rate: a request is refused with
 * ProvisionedThroughputExceededException while its bucket is empty, and charged its units once served.
 */

import { DynamoDbError, LEAST_CAPACITY_UNITS, TokenBucket, type TableSchema } from '@shoal/model';
import type { SampledKeyLoad } from '@shoal/meta';
import { KeySample, seededRandom, type KeySpan } from './key-sample.ts';
import { SlidingRate } from './rate-window.ts';

export interface AdmissionLimits {
  /** Read capacity units a second per partition (DynamoDB: 3,000). */
  readUnitsPerSecond: number;
  /** Write capacity units a second per partition (DynamoDB: 1,000). */
  writeUnitsPerSecond: number;
  /** The burst allowance: a bucket holds this many seconds of its rate. */
  burstSeconds: number;
}

/**
 * 30 s of burst: short next to DynamoDB's 300 s of burst capacity, yet a sequence of 400 KB writes
 * (390 units each) to one partition, as clients do when loading blobs, passes before the limit bites.
 */
export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = { readUnitsPerSecond: 3_000, writeUnitsPerSecond: 1_000, burstSeconds: 30 };

export interface LoadTrackingOptions {
  limits?: Partial<AdmissionLimits>;
  /** Length of the sliding window of rates and of one key sample. Default 10,000 ms. */
  windowMs?: number;
  /** Keys kept in a sample. Default 20. */
  sampleSize?: number;
  /** Seed of the samplers (each partition's derived from it and its id): runs repeat. Default 1. */
  seed?: number;
  /** The clock, in ms. Default performance.now. */
  now?: () => number;
  /** Between measures of the sizes of the partitions led here (PartitionSizes). Default 30,000 ms. */
  sizeIntervalMs?: number;
}

export type Access = 'read' | 'write';

/** What a replica measured, as its heartbeat reports it. */
export interface PartitionLoadReport {
  readsPerSecond: number;
  writesPerSecond: number;
  readUnitsPerSecond: number;
  writeUnitsPerSecond: number;
  bytesPerSecond: number;
  throttledReadsPerSecond: number;
  throttledWritesPerSecond: number;
  readUnitLimit: number;
  writeUnitLimit: number;
  /** Bytes of the partition's items at its last measure (PartitionSizes), 0 before one. */
  sizeBytes: bigint;
  sampledKeys: SampledKeyLoad[];
}

const HOT_KEY_MESSAGE =
  'Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. ' +
  'If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html';

const INDEX_BACKLOG_MESSAGE =
  'The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. ' +
  'Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API';

/** A table's or index's ARN, the region left empty (a node has none): the router fills in its own. */
function resourceArn(tableName: string, indexName?: string): string {
  return `arn:aws:dynamodb::000000000000:table/${tableName}${indexName === undefined ? '' : `/index/${indexName}`}`;
}

/**
 * DynamoDB's answer to a request over a partition's limits, with its throttling reason: of the table,
 * or with `indexName` of one of its GSIs (a GSI partition taking shipped entries).
 */
export function keyRangeThrottled(access: Access, tableName: string, indexName?: string): DynamoDbError {
  const kind = `${indexName === undefined ? 'Table' : 'Index'}${access === 'read' ? 'Read' : 'Write'}`;
  return new DynamoDbError('ProvisionedThroughputExceededException', HOT_KEY_MESSAGE, {
    ThrottlingReasons: [{ reason: `${kind}KeyRangeThroughputExceeded`, resource: resourceArn(tableName, indexName) }],
  });
}

/**
 * DynamoDB's answer to a write of a table whose GSIs do not keep up (GSI back-pressure: the base
 * partition's outbox is full), with DynamoDB's message: the write is refused, the SDKs retry it. The
 * reasons name every GSI of the table, the partition not knowing which one is behind.
 */
export function indexBacklogThrottled(table: TableSchema): DynamoDbError {
  const gsis = table.indexes.filter((index) => index.kind === 'GSI');
  return new DynamoDbError('ProvisionedThroughputExceededException', INDEX_BACKLOG_MESSAGE, {
    ThrottlingReasons: gsis.map((index) => ({ reason: 'IndexWriteKeyRangeThroughputExceeded', resource: resourceArn(table.name, index.name) })),
  });
}

class Counters {
  readonly requests: SlidingRate;
  readonly units: SlidingRate;
  readonly throttled: SlidingRate;

  constructor(windowMs: number) {
    this.requests = new SlidingRate(windowMs);
    this.units = new SlidingRate(windowMs);
    this.throttled = new SlidingRate(windowMs);
  }
}

export class PartitionLoadTracker {
  readonly partitionId: number;
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #limits: AdmissionLimits;
  readonly #buckets: Record<Access, TokenBucket>;
  #counters: Record<Access, Counters>;
  #bytes: SlidingRate;
  readonly #random: () => number;
  readonly #sampleSize: number;
  #sample: KeySample;
  #sampleStartedAt: number;
  /** Bytes of the partition's items, as last measured. */
  sizeBytes = 0;
  #lastSample: KeySample | undefined;

  constructor(partitionId: number, options: LoadTrackingOptions = {}) {
    this.partitionId = partitionId;
    this.#now = options.now ?? (() => performance.now());
    this.#windowMs = options.windowMs ?? 10_000;
    this.#limits = { ...DEFAULT_ADMISSION_LIMITS, ...options.limits };
    const { readUnitsPerSecond, writeUnitsPerSecond, burstSeconds } = this.#limits;
    this.#buckets = {
      read: new TokenBucket(readUnitsPerSecond, readUnitsPerSecond * burstSeconds),
      write: new TokenBucket(writeUnitsPerSecond, writeUnitsPerSecond * burstSeconds),
    };
    this.#counters = { read: new Counters(this.#windowMs), write: new Counters(this.#windowMs) };
    this.#bytes = new SlidingRate(this.#windowMs);
    this.#random = seededRandom(((options.seed ?? 1) * 0x9e3779b1 + partitionId) >>> 0);
    this.#sampleSize = options.sampleSize ?? 20;
    this.#sample = new KeySample(this.#sampleSize, this.#random);
    this.#sampleStartedAt = this.#now();
  }

  /**
   * Throws ProvisionedThroughputExceededException (counted) when the partition's bucket for `access`
   * is empty; `indexName`: the partition is one of that GSI's (taking shipped entries).
   */
  admit(access: Access, tableName: string, indexName?: string): void {
    const now = this.#now();
    if (this.#buckets[access].take(LEAST_CAPACITY_UNITS[access], now)) return;
    this.#counters[access].throttled.add(1, now);
    throw keyRangeThrottled(access, tableName, indexName);
  }

  /**
   * A request admitted and served: the rest of its units are charged and it enters the rates and the
   * key sample. `admitted` false: one more request served under the same admission (a batch of
   * shipped GSI records), charged its units whole.
   */
  record(access: Access, units: number, bytes: number, span: KeySpan | undefined, admitted = true): void {
    const now = this.#now();
    this.#buckets[access].charge(units - (admitted ? LEAST_CAPACITY_UNITS[access] : 0), now);
    const counters = this.#counters[access];
    counters.requests.add(1, now);
    counters.units.add(units, now);
    this.#bytes.add(bytes, now);
    this.#rollSample(now);
    if (span !== undefined) this.#sample.record(span, units);
  }

  /** The sample of the last complete window (the current one before any completed). */
  sample(): KeySample {
    this.#rollSample(this.#now());
    return this.#lastSample ?? this.#sample;
  }

  report(): PartitionLoadReport {
    const now = this.#now();
    const { read, write } = this.#counters;
    return {
      readsPerSecond: read.requests.perSecond(now),
      writesPerSecond: write.requests.perSecond(now),
      readUnitsPerSecond: read.units.perSecond(now),
      writeUnitsPerSecond: write.units.perSecond(now),
      bytesPerSecond: this.#bytes.perSecond(now),
      throttledReadsPerSecond: read.throttled.perSecond(now),
      throttledWritesPerSecond: write.throttled.perSecond(now),
      readUnitLimit: this.#limits.readUnitsPerSecond,
      writeUnitLimit: this.#limits.writeUnitsPerSecond,
      sizeBytes: BigInt(this.sizeBytes),
      sampledKeys: this.sample().keys(),
    };
  }

  /**
   * Starts the rates and the key sample over (not the admission buckets): the partition's range
   * changed (a split), so what was measured before tells of a range it no longer serves.
   */
  restartMeasures(): void {
    const now = this.#now();
    this.#counters = { read: new Counters(this.#windowMs), write: new Counters(this.#windowMs) };
    this.#bytes = new SlidingRate(this.#windowMs);
    this.#sample = new KeySample(this.#sampleSize, this.#random);
    this.#lastSample = undefined;
    this.#sampleStartedAt = now;
  }

  #rollSample(now: number): void {
    if (now - this.#sampleStartedAt < this.#windowMs) return;
    this.#lastSample = this.#sample;
    this.#sample = new KeySample(this.#sampleSize, this.#random);
    this.#sampleStartedAt = now;
  }
}

/** The trackers of the partitions served on one node, made on first use. */
export class NodeLoad {
  readonly #options: LoadTrackingOptions;
  readonly #trackers = new Map<number, PartitionLoadTracker>();
  /** The range each tracker last reported for, as start/end hex. */
  readonly #ranges = new Map<number, string>();

  constructor(options: LoadTrackingOptions = {}) {
    this.#options = options;
  }

  of(partitionId: number): PartitionLoadTracker {
    let tracker = this.#trackers.get(partitionId);
    if (tracker === undefined) {
      tracker = new PartitionLoadTracker(partitionId, this.#options);
      this.#trackers.set(partitionId, tracker);
    }
    return tracker;
  }

  /**
   * What a partition's replica here measured; undefined when it served and measured nothing yet.
   * Given the replica's range, the measures start over when it differs from the last one reported
   * (the replica split).
   */
  report(partitionId: number, range?: { startKey: Uint8Array; endKey: Uint8Array }): PartitionLoadReport | undefined {
    const tracker = this.#trackers.get(partitionId);
    if (tracker === undefined) return undefined;
    if (range !== undefined) {
      const id = `${Buffer.from(range.startKey).toString('hex')}/${Buffer.from(range.endKey).toString('hex')}`;
      const previous = this.#ranges.get(partitionId);
      this.#ranges.set(partitionId, id);
      if (previous !== undefined && previous !== id) tracker.restartMeasures();
    }
    return tracker.report();
  }

  /** Drops the trackers of partitions no longer hosted here. */
  retain(hosted: (partitionId: number) => boolean): void {
    for (const id of this.#trackers.keys()) {
      if (hosted(id)) continue;
      this.#trackers.delete(id);
      this.#ranges.delete(id);
    }
  }
}
