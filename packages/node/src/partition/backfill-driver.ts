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
 * A pass reads the store's running backfills once and drives those of the groups led here: every
 * `intervalMs` (a leadership gained, a failed proposal retried), and when a replica settles after
 * something may have started one (the store's `backfillsStarted` moved: a backfill command, a split,
 * a snapshot), so that settling, on every apply, costs a number comparison otherwise.
 */
import { NotLeaderError, type MultiRaftHost } from '../host/index.ts';
import type { PartitionStore } from '@shoal/storage';
import { proposeBackfillChunk, WriteOutOfRangeError } from './partition-replica.ts';

export interface BackfillDriverLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface BackfillDriverOptions {
  store: PartitionStore;
  host: MultiRaftHost;
  /** Whether a group is a partition group (the meta group is not). */
  isPartition(groupId: number): boolean;
  /** Between passes (default 500 ms). */
  intervalMs?: number;
  log?: BackfillDriverLog;
}

const DEFAULT_INTERVAL_MS = 500;

export class BackfillDriver {
  /** Chunks proposed and applied here, and the items they walked: for metrics and tests. */
  readonly stats = { chunksApplied: 0, itemsWalked: 0 };
  readonly #options: BackfillDriverOptions;
  /** Groups whose backfills are being driven now. */
  readonly #driving = new Map<number, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<void> | undefined;
  /** The store's backfillsStarted at the last pass. */
  #seen = -1;
  #closed = false;

  constructor(options: BackfillDriverOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer = setInterval(() => void this.pass(), this.#options.intervalMs ?? DEFAULT_INTERVAL_MS);
    this.#timer.unref();
    void this.pass();
  }

  /** A group settled: a pass when a backfill may have started since the last one. */
  wake(): void {
    if (!this.#closed && this.#options.store.backfillsStarted !== this.#seen) void this.pass();
  }

  /** One pass (joined when one runs): drives the running backfills of the groups led here. */
  pass(): Promise<void> {
    this.#pass ??= this.#passOnce()
      .catch((error: unknown) => this.#options.log?.warn('backfill pass failed', { error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.#pass = undefined;
      });
    return this.#pass;
  }

  /** Stops proposing; resolves once the chunks on the way are answered. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#pass;
    await Promise.allSettled([...this.#driving.values()]);
  }

  async #passOnce(): Promise<void> {
    if (this.#closed) return;
    this.#seen = this.#options.store.backfillsStarted;
    for (const { groupId } of await this.#options.store.runningIndexBackfills()) {
      if (!this.#closed && !this.#driving.has(groupId) && this.#leads(groupId)) this.#drive(groupId);
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
    const { store, host } = this.#options;
    while (!this.#closed && this.#leads(groupId)) {
      const [backfill] = await store.runningIndexBackfills(groupId);
      if (backfill === undefined) return;
      const result = await proposeBackfillChunk(host, groupId, backfill.indexId, backfill.nextKey);
      this.stats.chunksApplied += 1;
      this.stats.itemsWalked += result.items;
    }
  }
}
