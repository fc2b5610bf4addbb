import { itemSize, type Item } from '@shoal/model';
import type { StateReader } from './commit-queue.ts';
import type { ByteLevel, Mutation } from './database.ts';
import { decodeJson, decodeStatistics, encodeStatistics, statisticsKey, type KeyRange, type SpaceStatistics } from './layout.ts';

/**
 * Item count and bytes of every space, cached in memory and persisted in the same batch as the
 * entries they count. Only code holding the commit lock changes them.
 */
export class StatisticsBook {
  private readonly level: ByteLevel;
  private readonly cache = new Map<number, SpaceStatistics>();

  constructor(level: ByteLevel) {
    this.level = level;
  }

  /** The statistics including staged changes; call under the commit lock. */
  current(spaceId: number, state: StateReader): SpaceStatistics {
    const cached = this.cache.get(spaceId);
    if (cached) return cached;
    const stored = state.read(statisticsKey(spaceId));
    const stats = stored ? decodeStatistics(stored) : { itemCount: 0, sizeBytes: 0 };
    this.cache.set(spaceId, stats);
    return stats;
  }

  /** Records new statistics; returns the mutation to write with the entries they count. */
  record(spaceId: number, stats: SpaceStatistics): Mutation {
    this.cache.set(spaceId, stats);
    return { key: statisticsKey(spaceId), value: encodeStatistics(stats) };
  }

  /** Forgets a space's statistics (the space was emptied). */
  reset(spaceId: number): Mutation {
    this.cache.set(spaceId, { itemCount: 0, sizeBytes: 0 });
    return { key: statisticsKey(spaceId), value: undefined };
  }

  /** For readers outside the lock: never fills the cache, which only the lock holder may do. */
  async peek(spaceId: number): Promise<SpaceStatistics> {
    const cached = this.cache.get(spaceId);
    if (cached) return { ...cached };
    const stored = await this.level.get(statisticsKey(spaceId));
    return stored ? decodeStatistics(stored) : { itemCount: 0, sizeBytes: 0 };
  }
}

/**
 * Counts the entries of `range` that `belongs` accepts (all without it), and their bytes: the
 * statistics of one partition of a space, which the book does not keep (it counts whole spaces). A
 * read of the whole range, as DynamoDB's own counts are periodic, not per write: fine for
 * DescribeTable, not for a hot path.
 */
export async function measureRange(level: ByteLevel, range: KeyRange, belongs?: (entry: Item) => boolean): Promise<SpaceStatistics> {
  const stats = { itemCount: 0, sizeBytes: 0 };
  for await (const value of level.values({ gte: range.start, lt: range.end })) {
    const entry = decodeJson<Item>(value);
    if (belongs !== undefined && !belongs(entry)) continue;
    stats.itemCount += 1;
    stats.sizeBytes += itemSize(entry);
  }
  return stats;
}
