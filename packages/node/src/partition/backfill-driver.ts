/**
 * Drives the GSI backfills of the base partition groups this node leads (asynchronous GSIs; the
 * backfill itself: @shoal/storage applyBackfillChunk): for each group with a backfill running, it
 * proposes `backfillChunk` entries one after another, the next once the previous applied here, from
 * the next key the store recorded. A chunk is one bounded entry, so the node's other groups (and the
 * group's own writes) apply between chunks. A new leader (failover, restart) continues from the
 * recorded next key: a chunk applied whole or not at all, nothing is redone. A chunk proposed twice
 * (two leaders a moment apart) is stale at its second apply and changes nothing.
 *
 * Woken when a replica settles (an index command or a split may have started a backfill) and by a
 * pass every `intervalMs` (a leadership gained, a failed proposal retried).
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
  /** The partition groups this node leads now (the meta group left out). */
  ledGroups(): number[];
  /** Between passes over every group led here (default 500 ms). */
  intervalMs?: number;
  log?: BackfillDriverLog;
}

const DEFAULT_INTERVAL_MS = 500;

export class BackfillDriver {
  /** Chunks proposed and applied here, for tests and metrics. */
  readonly stats = { chunksApplied: 0, itemsWalked: 0 };
  readonly #options: BackfillDriverOptions;
  /** Groups whose backfills are being driven now. */
  readonly #driving = new Map<number, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: BackfillDriverOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer = setInterval(() => this.#pass(), this.#options.intervalMs ?? DEFAULT_INTERVAL_MS);
    this.#timer.unref();
    this.#pass();
  }

  /** The group may have a backfill to drive (it settled). */
  wake(groupId: number): void {
    if (this.#closed || this.#driving.has(groupId) || !this.#options.ledGroups().includes(groupId)) return;
    this.#drive(groupId);
  }

  /** Stops proposing; resolves once the chunks on the way are answered. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#driving.values()]);
  }

  #pass(): void {
    for (const groupId of this.#options.ledGroups()) this.wake(groupId);
  }

  #drive(groupId: number): void {
    const run = this.#run(groupId)
      .catch((error: unknown) => {
        // Leadership lost or the group gone: its new leader drives it. Anything else is retried at the next pass.
        if (error instanceof NotLeaderError || error instanceof WriteOutOfRangeError) return;
        this.#options.log?.warn('backfill chunk failed', { groupId, error: error instanceof Error ? error.message : String(error) });
      })
      .finally(() => this.#driving.delete(groupId));
    this.#driving.set(groupId, run);
  }

  async #run(groupId: number): Promise<void> {
    const { store, host } = this.#options;
    while (!this.#closed && this.#options.ledGroups().includes(groupId)) {
      const [backfill] = await store.runningIndexBackfills(groupId);
      if (backfill === undefined) return;
      const result = await proposeBackfillChunk(host, groupId, backfill.indexId, backfill.nextKey);
      this.stats.chunksApplied += 1;
      this.stats.itemsWalked += result.items;
    }
  }
}
