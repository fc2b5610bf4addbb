/**
 * Partitions of the ordered key space (key-encoding.ts) and the router's cached map of them.
 *
 * A partition owns `[startKey, endKey)`. An empty `endKey` means "unbounded above", as on the wire
 * (meta.proto); Shoal itself never creates one: every table's (or GSI's) partitions end at the end of
 * its space, so one table's partitions cover exactly `spaceRange(tableId)`.
 *
 * Epochs: a split gives both halves the parent's epoch + 1, a membership change bumps the partition's
 * epoch, and partitions never merge. So for any key, the epoch of the partition owning it only grows
 * over time, and a descriptor is newer than every descriptor it overlaps that has a lower epoch. That
 * is what `PartitionMap.update` relies on.
 */
import { compareBytes, hashSliceRange, spaceRange } from './key-encoding.ts';

export type ReplicaRole = 'voter' | 'learner';

export interface ReplicaDescriptor {
  nodeId: number;
  role: ReplicaRole;
}

/** One partition; field names follow meta.proto's PartitionDescriptor (ids are safe integers here). */
export interface PartitionDescriptor {
  /** Also the Raft group id. */
  id: number;
  /** The key space id (table or GSI) whose keys the partition holds. */
  tableId: number;
  startKey: Uint8Array;
  /** Exclusive; empty = unbounded above. */
  endKey: Uint8Array;
  epoch: number;
  replicas: ReplicaDescriptor[];
  /** The last known leader's node id; a hint only. */
  leaderHint?: number;
}

/** `key` < `end`, where an empty `end` is +infinity. */
function beforeEnd(key: Uint8Array, end: Uint8Array): boolean {
  return end.length === 0 || compareBytes(key, end) < 0;
}

/** Whether `key` lies in the partition's range. */
export function partitionContains(partition: PartitionDescriptor, key: Uint8Array): boolean {
  return compareBytes(partition.startKey, key) <= 0 && beforeEnd(key, partition.endKey);
}

/** Whether `[aStart, aEnd)` and `[bStart, bEnd)` share a key (empty ends unbounded). */
export function rangesOverlap(aStart: Uint8Array, aEnd: Uint8Array, bStart: Uint8Array, bEnd: Uint8Array): boolean {
  return beforeEnd(aStart, bEnd) && beforeEnd(bStart, aEnd);
}

/**
 * A new table's (or GSI's) partitions: `count` equal slices of its hash space, ids `firstId`,
 * `firstId + 1`, ..., epoch 1, no replicas yet (the meta group places them).
 */
export function initialPartitions(tableId: number, count: number, firstId: number): PartitionDescriptor[] {
  if (!Number.isSafeInteger(firstId) || firstId < 1) throw new RangeError(`bad first partition id ${firstId}`);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`bad partition count ${count}`);
  const partitions: PartitionDescriptor[] = [];
  for (let segment = 0; segment < count; segment++) {
    const { start, end } = hashSliceRange(tableId, segment, count);
    partitions.push({ id: firstId + segment, tableId, startKey: start, endKey: end, epoch: 1, replicas: [] });
  }
  return partitions;
}

/**
 * What is wrong with a set of partitions as a whole map: overlaps, ranges that are empty or leave
 * their table's space, and gaps in a table's coverage of its space. Empty when consistent.
 */
export function findPartitionMapProblems(partitions: readonly PartitionDescriptor[]): string[] {
  const problems: string[] = [];
  const sorted = [...partitions].sort((a, b) => compareBytes(a.startKey, b.startKey));
  const ids = new Set<number>();
  for (const p of sorted) {
    if (ids.has(p.id)) problems.push(`partition id ${p.id} appears twice`);
    ids.add(p.id);
    const space = spaceRange(p.tableId);
    if (p.endKey.length > 0 && compareBytes(p.startKey, p.endKey) >= 0) problems.push(`partition ${p.id} has an empty range`);
    if (compareBytes(p.startKey, space.start) < 0 || p.endKey.length === 0 || compareBytes(p.endKey, space.end) > 0) {
      problems.push(`partition ${p.id} leaves the space of table ${p.tableId}`);
    }
  }
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const next = sorted[i];
    if (beforeEnd(next.startKey, prev.endKey)) problems.push(`partitions ${prev.id} and ${next.id} overlap`);
  }
  const byTable = new Map<number, PartitionDescriptor[]>();
  for (const p of sorted) {
    const list = byTable.get(p.tableId) ?? [];
    list.push(p);
    byTable.set(p.tableId, list);
  }
  for (const [tableId, list] of byTable) {
    const space = spaceRange(tableId);
    let covered = space.start;
    for (const p of list) {
      if (compareBytes(p.startKey, covered) > 0) problems.push(`table ${tableId} has a gap before partition ${p.id}`);
      if (p.endKey.length === 0 || compareBytes(p.endKey, covered) > 0) covered = p.endKey;
    }
    if (covered.length > 0 && compareBytes(covered, space.end) < 0) problems.push(`table ${tableId} has a gap at the end of its space`);
  }
  return problems;
}

/**
 * The router's cached partition map: descriptors sorted by start key, found by binary search. It
 * may lag the meta group (a missing or stale entry makes a node answer with the newer descriptor,
 * which goes into `update`), so it tolerates gaps while updates arrive; it never holds overlaps.
 */
export class PartitionMap {
  private readonly sorted: PartitionDescriptor[] = [];

  constructor(descriptors: Iterable<PartitionDescriptor> = []) {
    // In key order, each update appends: building a map is O(n log n).
    for (const d of [...descriptors].sort((a, b) => compareBytes(a.startKey, b.startKey))) this.update(d);
  }

  get size(): number {
    return this.sorted.length;
  }

  /** All descriptors in key order. */
  all(): readonly PartitionDescriptor[] {
    return this.sorted;
  }

  /** Index of the last descriptor whose start is <= key, or -1. */
  private floorIndex(key: Uint8Array): number {
    let lo = 0;
    let hi = this.sorted.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(this.sorted[mid].startKey, key) <= 0) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /**
   * The descriptors overlapping `[start, end)` are `sorted[from..to)`: the map has no overlaps, so
   * they are contiguous. When there are none, `from` is where a descriptor starting at `start` goes.
   */
  private overlapIndexes(start: Uint8Array, end: Uint8Array): { from: number; to: number } {
    let from = this.floorIndex(start);
    if (from < 0 || !beforeEnd(start, this.sorted[from].endKey)) from++;
    let to = from;
    while (to < this.sorted.length && beforeEnd(this.sorted[to].startKey, end)) to++;
    return { from, to };
  }

  /** The partition owning an encoded key, or undefined when the map does not know it. */
  lookup(key: Uint8Array): PartitionDescriptor | undefined {
    const i = this.floorIndex(key);
    if (i < 0) return undefined;
    const p = this.sorted[i];
    return beforeEnd(key, p.endKey) ? p : undefined;
  }

  /** The known partitions sharing a key with `[start, end)` (empty end = unbounded), in key order. */
  overlapping(start: Uint8Array, end: Uint8Array): PartitionDescriptor[] {
    const { from, to } = this.overlapIndexes(start, end);
    return this.sorted.slice(from, to);
  }

  /** The known partitions of one space (table or GSI), in key order. */
  partitionsOf(tableId: number): PartitionDescriptor[] {
    const { start, end } = spaceRange(tableId);
    return this.overlapping(start, end);
  }

  /**
   * Takes a descriptor if it is newer than everything it overlaps (a higher epoch), replacing those:
   * a split's halves replace their parent. The same partition at the same epoch and range replaces
   * itself (a new leader hint). Returns whether the map changed; an older descriptor is ignored.
   */
  update(descriptor: PartitionDescriptor): boolean {
    const { startKey, endKey } = descriptor;
    if (endKey.length > 0 && compareBytes(startKey, endKey) >= 0) {
      throw new RangeError(`partition ${descriptor.id} has an empty range`);
    }
    const { from, to } = this.overlapIndexes(startKey, endKey);
    for (let i = from; i < to; i++) {
      const old = this.sorted[i];
      const sameVersion =
        old.id === descriptor.id &&
        old.epoch === descriptor.epoch &&
        compareBytes(old.startKey, startKey) === 0 &&
        compareBytes(old.endKey, endKey) === 0;
      if (old.epoch >= descriptor.epoch && !sameVersion) return false;
    }
    this.sorted.splice(from, to - from, descriptor);
    return true;
  }

  /** Forgets every partition of a space (a deleted table). */
  dropTable(tableId: number): void {
    const dropped = new Set(this.partitionsOf(tableId));
    const kept = this.sorted.filter((p) => !dropped.has(p));
    this.sorted.length = 0;
    this.sorted.push(...kept);
  }
}
