/**
 * Split decisions, as pure functions the meta leader's placement driver runs every round over the
 * load its nodes report (HeartbeatRequest.loads). A partition splits
 *   - for size: its leader measured more than `maxSizeBytes` of items; at the middle of its hash
 *     range (equal shares of item collections), else at the sampled key that balances its traffic;
 *   - for heat: a replica served at least `heatShare` of the partition's read or write unit limit for
 *     `heatMs` on end; at the sampled key that best balances the load left and right of it among the
 *     keys few requests span (a Query's item collection, a Scan's range), in the manner of
 *     CockroachDB's load-based splitter.
 * A partition whose sampled load sits mostly on one key (a hot item) is not split for heat: no split
 * divides one item's load. It is reported instead (its eventually consistent reads already spread
 * over the replicas). Tables with a local secondary index are sampled by item collection by the
 * nodes (an LSI Query must stay in one partition), so their split keys fall between collections.
 */
import { compareBytes, getOwn, partitionContains, type PartitionDescriptor } from '@shoal/model';
import type { MetaState } from './state.ts';

/** A key sampled from a partition's traffic, with what the requests seen after it did about it. */
export interface SampledKeyLoad {
  key: Uint8Array;
  /** The weight (capacity units) of the request that put the key in the sample. */
  weight: number;
  /** Weight of later requests below the key, at or above it, and over a range containing it. */
  leftWeight: number;
  rightWeight: number;
  spanningWeight: number;
}

/** One replica's measure of its partition. */
export interface PartitionLoadReport {
  partitionId: number;
  /** Bytes of the partition's items (its leader measures them now and then; 0 elsewhere). */
  sizeBytes: number;
  readUnitsPerSecond: number;
  writeUnitsPerSecond: number;
  /** The replica's admission limits, units a second. */
  readUnitLimit: number;
  writeUnitLimit: number;
  sampledKeys: SampledKeyLoad[];
}

export interface SplitPolicy {
  /** The switch: no split for size or heat when off. */
  enabled: boolean;
  /** A partition holding more bytes splits; at most MAX_SPLIT_SIZE_BYTES. */
  maxSizeBytes: number;
  /** Load at this share of a partition's read or write unit limit counts as heat. */
  heatShare: number;
  /** ... when it lasts this long. */
  heatMs: number;
}

/**
 * The size a partition splits at by default. New and lagging replicas catch up by snapshot: a node
 * never holds one whole (it is staged on disk and restored in bounded batches), but installing it
 * holds up every group of the receiving node while it runs, about 18 s per GiB of payload measured
 * (scripts/bench-snapshot-install.ts, a loaded 2-core machine): small partitions re-replicate fast
 * (CockroachDB's ranges split at 512 MiB too; DynamoDB's own partitions hold about 10 GB).
 */
export const DEFAULT_SPLIT_SIZE_BYTES = 512 * 2 ** 20;

/** The largest split size a policy may set: installing a snapshot of its items takes about 40 s at that rate. */
export const MAX_SPLIT_SIZE_BYTES = 2 * 2 ** 30;

/** Cluster defaults: a partition splits at 512 MiB, or after 10 s at half its unit limits. */
export const DEFAULT_SPLIT_POLICY: SplitPolicy = { enabled: true, maxSizeBytes: DEFAULT_SPLIT_SIZE_BYTES, heatShare: 0.5, heatMs: 10_000 };

/** Whether `bytes` may be a policy's `maxSizeBytes`. */
export function isSplitSize(bytes: number): boolean {
  return Number.isFinite(bytes) && bytes > 0 && bytes <= MAX_SPLIT_SIZE_BYTES;
}

/**
 * Table tags that override the cluster's policy for one table (DynamoDB's own API sets them:
 * CreateTable Tags, TagResource): `shoal:split` on|off, `shoal:split-size-bytes`,
 * `shoal:split-heat-share`, `shoal:split-heat-seconds`.
 */
export const SPLIT_TAGS = {
  enabled: 'shoal:split',
  maxSizeBytes: 'shoal:split-size-bytes',
  heatShare: 'shoal:split-heat-share',
  heatSeconds: 'shoal:split-heat-seconds',
} as const;

/** A split may cut at most this share of the requests a candidate key saw (ranges spanning it). */
export const MAX_SPANNING_SHARE = 0.1;
/** One key holding more than this share of the sampled weight is a hot item. */
export const HOT_KEY_SHARE = 0.5;
/** Fewer sampled keys than this is too little traffic to judge a heat split by. */
export const MIN_SAMPLED_KEYS = 8;

/** The table's policy: the cluster's, with the table's tags over it; `invalid` names tags ignored. */
export function tableSplitPolicy(cluster: SplitPolicy, tags: Readonly<Record<string, string>>): { policy: SplitPolicy; invalid: string[] } {
  const policy = { ...cluster };
  const invalid: string[] = [];
  const read = (tag: string, valid: (value: number) => boolean, set: (value: number) => void): void => {
    const text = getOwn(tags, tag);
    if (text === undefined) return;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || !valid(value)) invalid.push(tag);
    else set(value);
  };
  const enabled = getOwn(tags, SPLIT_TAGS.enabled);
  if (enabled !== undefined) {
    if (enabled === 'on' || enabled === 'off') policy.enabled = enabled === 'on';
    else invalid.push(SPLIT_TAGS.enabled);
  }
  read(SPLIT_TAGS.maxSizeBytes, isSplitSize, (v) => (policy.maxSizeBytes = v));
  read(SPLIT_TAGS.heatShare, (v) => v > 0, (v) => (policy.heatShare = v));
  read(SPLIT_TAGS.heatSeconds, (v) => v >= 0, (v) => (policy.heatMs = v * 1000));
  return { policy, invalid };
}

/** How hot a report runs: its units over its limits, the larger of reads and writes. */
export function utilization(load: PartitionLoadReport): number {
  const reads = load.readUnitLimit > 0 ? load.readUnitsPerSecond / load.readUnitLimit : 0;
  const writes = load.writeUnitLimit > 0 ? load.writeUnitsPerSecond / load.writeUnitLimit : 0;
  return Math.max(reads, writes);
}

/**
 * The sampled key holding more than `share` of the sample's weight (a majority check: a hot key
 * enters a weighted reservoir once per request it is drawn for), with that share.
 */
export function hotKeyOf(samples: readonly SampledKeyLoad[], share = HOT_KEY_SHARE): { key: Uint8Array; share: number } | undefined {
  const byKey = new Map<string, { key: Uint8Array; weight: number }>();
  let total = 0;
  for (const sample of samples) {
    if (!(sample.weight > 0)) continue;
    const id = Buffer.from(sample.key).toString('hex');
    const known = byKey.get(id) ?? { key: sample.key, weight: 0 };
    known.weight += sample.weight;
    byKey.set(id, known);
    total += sample.weight;
  }
  for (const { key, weight } of byKey.values()) if (total > 0 && weight > share * total) return { key, share: weight / total };
  return undefined;
}

/**
 * The sampled key inside the partition (strictly above its start) that best balances the load
 * recorded left and right of it (least |left - right| over what it saw), among the keys with load
 * on both sides that requests spanned at most `maxSpanningShare` of the time; undefined when none
 * qualifies.
 */
export function chooseSplitKey(partition: PartitionDescriptor, samples: readonly SampledKeyLoad[], maxSpanningShare = MAX_SPANNING_SHARE): Uint8Array | undefined {
  let best: { key: Uint8Array; imbalance: number } | undefined;
  for (const sample of samples) {
    if (compareBytes(sample.key, partition.startKey) <= 0 || !partitionContains(partition, sample.key)) continue;
    const seen = sample.leftWeight + sample.rightWeight + sample.spanningWeight;
    if (!(sample.leftWeight > 0) || !(sample.rightWeight > 0) || sample.spanningWeight > maxSpanningShare * seen) continue;
    const imbalance = Math.abs(sample.leftWeight - sample.rightWeight) / seen;
    // Equal imbalance: the lower key, so that the choice does not depend on the sample's order.
    if (best === undefined || imbalance < best.imbalance || (imbalance === best.imbalance && compareBytes(sample.key, best.key) < 0)) best = { key: sample.key, imbalance };
  }
  return best?.key;
}

export type SplitReason = 'size' | 'heat';

export type SplitDecision =
  | {
      kind: 'split';
      partitionId: number;
      /** The partition's epoch when decided (a split of another epoch is refused by its group). */
      epoch: number;
      splitKey: Uint8Array;
      reason: SplitReason;
      sizeBytes: number;
      /** The hottest replica's units over its limits. */
      utilization: number;
    }
  /** Hot for long enough, but one key carries most of the sampled load: reported, not split. */
  | { kind: 'hotKey'; partitionId: number; key: Uint8Array; share: number; utilization: number }
  /** Should split, but no key qualifies (requests span every candidate, or none balances). */
  | { kind: 'unsplittable'; partitionId: number; reason: SplitReason; why: string };

export interface SplitPlanInput {
  state: MetaState;
  /** The replicas' reports, any number per partition; reports of partitions the map lacks are ignored. */
  loads: readonly PartitionLoadReport[];
  /** The policy of a table's partitions (tableSplitPolicy of the cluster's and the table's tags). */
  policyOf(tableId: number): SplitPolicy;
  /** The driver's clock, ms. */
  now: number;
  /** Since when each partition has run hot without a break: the previous plan's `heatSince`. */
  heatSince: ReadonlyMap<number, number>;
}

export interface SplitPlan {
  /** In partition id order. */
  decisions: SplitDecision[];
  /** Partitions running hot now, and since when: the next plan's input. */
  heatSince: Map<number, number>;
}

/**
 * One round of split decisions. A partition's heat is that of its hottest replica (each replica
 * admits up to the limits, eventually consistent reads spread over all of them), judged by that
 * replica's key sample; its size is its leader's measure. Size goes first: a partition too big
 * splits whatever its traffic.
 */
export function planSplits(input: SplitPlanInput): SplitPlan {
  const { state, now } = input;
  const reports = new Map<number, PartitionLoadReport[]>();
  for (const load of input.loads) {
    if (state.partitions[load.partitionId] === undefined) continue;
    reports.set(load.partitionId, [...(reports.get(load.partitionId) ?? []), load]);
  }
  const decisions: SplitDecision[] = [];
  const heatSince = new Map<number, number>();
  for (const [partitionId, loads] of [...reports].sort(([a], [b]) => a - b)) {
    const partition = state.partitions[partitionId];
    const policy = input.policyOf(partition.tableId);
    if (!policy.enabled) continue;
    const hottest = loads.reduce((a, b) => (utilization(b) > utilization(a) ? b : a));
    const heat = utilization(hottest);
    if (heat >= policy.heatShare) heatSince.set(partitionId, input.heatSince.get(partitionId) ?? now);
    const sizeBytes = Math.max(...loads.map((load) => load.sizeBytes));
    if (sizeBytes > policy.maxSizeBytes) {
      const splitKey = middleSplitKey(partition) ?? chooseSplitKey(partition, hottest.sampledKeys);
      decisions.push(
        splitKey === undefined
          ? { kind: 'unsplittable', partitionId, reason: 'size', why: 'its hash range is one value and no sampled key splits it' }
          : { kind: 'split', partitionId, epoch: partition.epoch, splitKey, reason: 'size', sizeBytes, utilization: heat },
      );
      continue;
    }
    const since = heatSince.get(partitionId);
    if (since === undefined || now - since < policy.heatMs || hottest.sampledKeys.length < MIN_SAMPLED_KEYS) continue;
    const hot = hotKeyOf(hottest.sampledKeys);
    if (hot !== undefined) {
      decisions.push({ kind: 'hotKey', partitionId, key: hot.key, share: hot.share, utilization: heat });
      continue;
    }
    const splitKey = chooseSplitKey(partition, hottest.sampledKeys);
    decisions.push(
      splitKey === undefined
        ? { kind: 'unsplittable', partitionId, reason: 'heat', why: 'every sampled key is spanned by range reads or leaves one side without load' }
        : { kind: 'split', partitionId, epoch: partition.epoch, splitKey, reason: 'heat', sizeBytes, utilization: heat },
    );
  }
  return { decisions, heatSince };
}

const SPACE_ID_BYTES = 4;
const HASH_SPACE = 1n << 64n;

/** The 64-bit hash position of a key of space `spaceId`: a key past the space is at 2^64. */
function hashPosition(spaceId: number, key: Uint8Array): bigint {
  const bytes = Buffer.from(key);
  if (bytes.length < SPACE_ID_BYTES || bytes.readUInt32BE(0) !== spaceId) return bytes.length === 0 || compareBytes(key, spacePrefix(spaceId)) > 0 ? HASH_SPACE : 0n;
  const hash = Buffer.alloc(8);
  bytes.copy(hash, 0, SPACE_ID_BYTES, SPACE_ID_BYTES + 8);
  return hash.readBigUInt64BE(0);
}

function spacePrefix(spaceId: number): Buffer {
  const prefix = Buffer.alloc(SPACE_ID_BYTES);
  prefix.writeUInt32BE(spaceId);
  return prefix;
}

/**
 * The key in the middle of the partition's hash range (a split without load samples): the start of
 * the hash value halfway between its ends. Undefined when the range spans too few hash values.
 */
export function middleSplitKey(partition: PartitionDescriptor): Uint8Array | undefined {
  const low = hashPosition(partition.tableId, partition.startKey);
  const high = hashPosition(partition.tableId, partition.endKey);
  const middle = (low + high) / 2n;
  if (middle >= HASH_SPACE) return undefined;
  const key = Buffer.alloc(SPACE_ID_BYTES + 8);
  key.writeUInt32BE(partition.tableId);
  key.writeBigUInt64BE(middle, SPACE_ID_BYTES);
  const inside = compareBytes(key, partition.startKey) > 0 && partitionContains(partition, key);
  return inside ? new Uint8Array(key) : undefined;
}

/** How many hash values the partition's range spans (for picking the widest partition of a table). */
export function hashWidth(partition: PartitionDescriptor): bigint {
  return hashPosition(partition.tableId, partition.endKey) - hashPosition(partition.tableId, partition.startKey);
}
