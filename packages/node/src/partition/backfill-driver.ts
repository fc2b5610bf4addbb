/**
 * Drives the GSI backfills of the base partition groups this node leads (asynchronous GSIs; the
 * backfill itself: @shoal/storage applyBackfillChunk): for each group with a backfill running, it
 * proposes `backfillChunk` entries one after another, the next once the previous applied here, from
 * the next key the store recorded. A chunk is one bounded entry, so the node's other groups (and the
 * group's own writes) apply between chunks. A new leader (failover, restart) continues from the
 * recorded next key: a chunk applies whole or not at all, nothing is redone. A chunk proposed twice
 * (two leaders a moment apart, a leader still applying its log) is stale at its apply and changes
 * nothing.
 *
 * Each node counts the chunks it proposed (their items walked) when they apply on its replica, not when
 * its proposal answers: one that timed out, or whose leader lost the group before it applied, may
 * commit all the same (and the next proposal goes on after it), so every chunk applied is counted
 * once, by its proposer, however slow the group (a proposer that never applies it, killed or given a
 * snapshot past it, does not count it).
 *
 * A pass reads the store's running backfills once and drives those of the groups led here: every
 * `intervalMs` (a leadership gained, a failed proposal retried, a paused walk resumed), and when a
 * replica settles after something may have started one (the store's `backfillsStarted` moved: a
 * backfill command, a split, a snapshot), so that settling, on every apply, costs a number
 * comparison otherwise.
 *
 * A backfill of a deleted GSI (DeletedIndexes `deleted`: the node's map showed it and shows it no
 * more, or the map is at or past the creation version the backfill recorded and does not show it) is
 * ended by a `dropIndex` entry of the group (the tombstone UpdateTable's drop leaves), so the walk
 * stops even when the router that deleted the GSI in the meta group died before asking the base
 * partitions, and even when this node's map never showed the GSI.
 * A walk pauses while the group's outbox holds `pauseAtBacklog` records (half the back-pressure
 * limit): a backfill far ahead of the shipping would otherwise fill the outbox up to the limit, where
 * the table's writes are refused; the next pass goes on once the shipper drained it below.
 */
import { NotLeaderError, type MultiRaftHost } from '../host/index.ts';
import type { PartitionStore } from '@shoal/storage';
import { DeletedIndexes, type DeletedIndexesOptions } from './deleted-indexes.ts';
import { PeriodicPass } from './periodic-pass.ts';
import { proposeBackfillChunk, proposeIndexCommandApplied, WriteOutOfRangeError, type AppliedBackfillChunk } from './partition-replica.ts';

export interface BackfillDriverLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface BackfillDriverOptions {
  store: PartitionStore;
  host: Pick<MultiRaftHost, 'nodeId' | 'hasGroup' | 'leaderOf' | 'propose'>;
  /** Whether a group is a partition group (the meta group is not). */
  isPartition(groupId: number): boolean;
  /** The node's map view: a backfill of a GSI it shows no more ends. */
  view: DeletedIndexesOptions['view'];
  /** A group's walk pauses while its outbox holds this many records (default: never). */
  pauseAtBacklog?: number;
  /** Between passes (default 500 ms). */
  intervalMs?: number;
  log?: BackfillDriverLog;
}

const DEFAULT_INTERVAL_MS = 500;

export class BackfillDriver {
  /**
   * Chunks proposed here, counted as they applied here (not stale ones, which walk nothing), and the
   * items they walked; backfills ended because their GSI left the map; walks paused for a full outbox:
   * for metrics and tests.
   */
  readonly stats = { chunksApplied: 0, itemsWalked: 0, backfillsOfDeletedIndexes: 0, pausesForBacklog: 0 };
  readonly #options: BackfillDriverOptions;
  readonly #indexes: DeletedIndexes;
  /** Groups whose backfills are being driven now. */
  readonly #driving = new Map<number, Promise<void>>();
  readonly #pass: PeriodicPass<void>;
  /** The store's backfillsStarted at the last pass. */
  #seen = -1;

  constructor(options: BackfillDriverOptions) {
    this.#options = options;
    this.#indexes = new DeletedIndexes({ view: options.view });
    this.#pass = new PeriodicPass(() => this.#passOnce(), { intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS, onError: (error) => this.#warnPassFailed(error) });
  }

  start(): void {
    this.#pass.start();
    void this.pass();
  }

  /** A group settled: a pass when a backfill may have started since the last one. */
  wake(): void {
    if (!this.#pass.closed && this.#options.store.backfillsStarted !== this.#seen) void this.pass();
  }

  /** One pass (joined when one runs): drives the running backfills of the groups led here. */
  pass(): Promise<void> {
    return this.#pass.run().catch((error: unknown) => this.#warnPassFailed(error));
  }

  /** A replica here applied a backfill chunk entry: counted when this node proposed it and it walked. */
  chunkApplied({ proposer, result }: AppliedBackfillChunk): void {
    if (proposer !== this.#options.host.nodeId || result.status === 'stale') return;
    this.stats.chunksApplied += 1;
    this.stats.itemsWalked += result.items;
  }

  /** Stops proposing; resolves once the chunks on the way are answered. */
  async close(): Promise<void> {
    await this.#pass.close();
    await Promise.allSettled([...this.#driving.values()]);
  }

  #warnPassFailed(error: unknown): void {
    this.#options.log?.warn('backfill pass failed', { error: error instanceof Error ? error.message : String(error) });
  }

  async #passOnce(): Promise<void> {
    if (this.#pass.closed) return;
    this.#seen = this.#options.store.backfillsStarted;
    for (const { groupId } of await this.#options.store.runningIndexBackfills()) {
      if (!this.#pass.closed && !this.#driving.has(groupId) && this.#leads(groupId)) this.#drive(groupId);
    }
  }

  #leads(groupId: number): boolean {
    const { host, isPartition } = this.#options;
    return isPartition(groupId) && host.hasGroup(groupId) && host.leaderOf(groupId) === host.nodeId;
  }

  #drive(groupId: number): void {
    const run = this.#run(groupId)
      .catch((error: unknown) => {
        // Leadership lost or the group gone: its new leader drives it. Anything else: the next pass retries.
        if (error instanceof NotLeaderError || error instanceof WriteOutOfRangeError) return;
        this.#options.log?.warn('backfill chunk failed', { groupId, error: error instanceof Error ? error.message : String(error) });
      })
      .finally(() => this.#driving.delete(groupId));
    this.#driving.set(groupId, run);
  }

  async #run(groupId: number): Promise<void> {
    const { store, host, pauseAtBacklog } = this.#options;
    while (!this.#pass.closed && this.#leads(groupId)) {
      const running = await store.runningIndexBackfills(groupId);
      const deleted = running.find((candidate) => this.#indexes.status(candidate.indexId, candidate.indexCreatedAtMapVersion) === 'deleted');
      if (deleted !== undefined) {
        await proposeIndexCommandApplied(host, groupId, { kind: 'dropIndex', table: deleted.table, indexName: deleted.indexName });
        this.stats.backfillsOfDeletedIndexes += 1;
        this.#options.log?.warn('a GSI backfill ended: the map shows its index no more', { groupId, index: deleted.indexName });
        continue;
      }
      const [backfill] = running;
      if (backfill === undefined) return;
      if (pauseAtBacklog !== undefined && store.indexOutboxBacklog(groupId) >= pauseAtBacklog) {
        this.stats.pausesForBacklog += 1;
        return;
      }
      // Counted as it applies here (chunkApplied); a stale one (proposed twice, the other applied first) walked nothing.
      await proposeBackfillChunk(host, groupId, backfill.indexId, backfill.nextKey);
    }
  }
}
