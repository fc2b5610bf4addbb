/**
 * Split decisions from the load partition leaders report (HeartbeatRequest.loads): a partition splits
 * for size above a byte threshold and for heat above a throughput threshold, at the weighted median of
 * the keys it sampled from its traffic. The leader's sliding window already smooths the rates, so
 * "load that stays high" is what the report says.
 */
import { compareBytes, partitionContains, type PartitionDescriptor } from '@shoal/model';
import type { MetaCommand, MetaState } from './state.ts';

export interface SampledKey {
  key: Uint8Array;
  weight: number;
}

/** One partition's load as its leader measured it. */
export interface PartitionLoadReport {
  partitionId: number;
  sizeBytes: number;
  readUnitsPerSecond: number;
  writeUnitsPerSecond: number;
  sampledKeys: SampledKey[];
}

export interface SplitThresholds {
  maxSizeBytes: number;
  /** DynamoDB's per-partition limits are 3,000 read and 1,000 write units. */
  maxReadUnitsPerSecond: number;
  maxWriteUnitsPerSecond: number;
}

export type SplitReason = 'size' | 'heat';

export type SplitDecision =
  | { kind: 'split'; partitionId: number; epoch: number; splitKey: Uint8Array; reason: SplitReason }
  /**
   * The partition should split but cannot usefully: one key carries most of the sampled load (or
   * there is no key to split at). Reported so an operator sees the hot item; its eventually
   * consistent reads spread over followers.
   */
  | { kind: 'hotKey'; partitionId: number; key?: Uint8Array; reason: SplitReason };

/**
 * The weighted median of the samples that lie inside the partition, strictly above its start;
 * undefined without such samples. `dominantKey` is the key holding more than half of the weight, if
 * one does: splitting cannot divide that load.
 */
export function chooseSplitKey(
  partition: PartitionDescriptor,
  samples: readonly SampledKey[],
): { key: Uint8Array; dominantKey?: Uint8Array } | undefined {
  const byKey = new Map<string, SampledKey>();
  for (const s of samples) {
    if (!(s.weight > 0) || !partitionContains(partition, s.key)) continue;
    const id = Buffer.from(s.key).toString('hex');
    const known = byKey.get(id);
    byKey.set(id, { key: s.key, weight: (known?.weight ?? 0) + s.weight });
  }
  const sorted = [...byKey.values()].sort((a, b) => compareBytes(a.key, b.key));
  const total = sorted.reduce((sum, s) => sum + s.weight, 0);
  if (total === 0) return undefined;
  const heaviest = sorted.reduce((x, y) => (y.weight > x.weight ? y : x));
  // Split at the key that leaves the left half (the keys below it) closest to half the weight; a
  // split at the partition's start would leave the left half empty.
  let best: { key: Uint8Array; imbalance: number } | undefined;
  let below = 0;
  for (const s of sorted) {
    const imbalance = Math.abs(below - total / 2);
    if (compareBytes(s.key, partition.startKey) > 0 && (!best || imbalance < best.imbalance)) best = { key: s.key, imbalance };
    below += s.weight;
  }
  if (!best) return undefined;
  return heaviest.weight > total / 2 ? { key: best.key, dominantKey: heaviest.key } : { key: best.key };
}

function overThreshold(load: PartitionLoadReport, thresholds: SplitThresholds): SplitReason | undefined {
  if (load.sizeBytes > thresholds.maxSizeBytes) return 'size';
  if (load.readUnitsPerSecond > thresholds.maxReadUnitsPerSecond || load.writeUnitsPerSecond > thresholds.maxWriteUnitsPerSecond) return 'heat';
  return undefined;
}

/**
 * Splits for every reported partition over a threshold, in partition id order. A size split goes
 * ahead at the median even when one key dominates the traffic (the bytes still divide); a heat split
 * with a dominant key is reported as a hot key instead.
 */
export function planSplits(state: MetaState, loads: readonly PartitionLoadReport[], thresholds: SplitThresholds): SplitDecision[] {
  const decisions: SplitDecision[] = [];
  for (const load of [...loads].sort((a, b) => a.partitionId - b.partitionId)) {
    const partition = state.partitions[load.partitionId];
    const reason = partition && overThreshold(load, thresholds);
    if (!partition || !reason) continue;
    const choice = chooseSplitKey(partition, load.sampledKeys);
    if (!choice) {
      decisions.push({ kind: 'hotKey', partitionId: partition.id, reason });
    } else if (reason === 'heat' && choice.dominantKey) {
      decisions.push({ kind: 'hotKey', partitionId: partition.id, key: choice.dominantKey, reason });
    } else {
      decisions.push({ kind: 'split', partitionId: partition.id, epoch: partition.epoch, splitKey: choice.key, reason });
    }
  }
  return decisions;
}

/** The meta command recording a split once the partition's Raft group has applied it. */
export function splitCommand(decision: Extract<SplitDecision, { kind: 'split' }>): MetaCommand {
  return { type: 'splitPartition', partitionId: decision.partitionId, splitKey: decision.splitKey, expectedEpoch: decision.epoch };
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
