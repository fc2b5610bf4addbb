import type { TableCatalog } from '@shoal/model';
import { LevelTableCatalog } from './catalog.ts';
import { CommitQueue } from './commit-queue.ts';
import { openDatabase, type DatabaseOptions } from './database.ts';
import { PartitionStore } from './partition-store.ts';

export {
  PartitionStore,
  type AppliedIndexEntries,
  type AppliedMark,
  type BackfillChunkLimits,
  type BackfillChunkResult,
  type IndexCommand,
  OutboxMoveUnderWayError,
  type OutboxMoveLimits,
  type OutboxMoveStep,
  type ResolvedIntents,
  type ShippedIndexRecord,
  type SourceFence,
} from './partition-store.ts';
export type { IndexEntryChange, IndexOutboxMove, IndexOutboxRecord, OutboxReadLimits, RunningBackfill } from './index-outbox.ts';
export { LevelTableCatalog } from './catalog.ts';
export type { TransactionRecord, TransactionRef, TransactionState } from './transactions.ts';
export { indexSpaceSchema, partitionBound, type PartitionBound } from './layout.ts';
export { PartitionSnapshotFormatError, type PartitionScope, type PartitionSnapshotStream } from './partition-snapshot.ts';
export { checkPartitionSnapshot, type CheckedPartitionSnapshot, type StagedPartitionSnapshot } from './partition-restore.ts';

/** Everything one node keeps: the data of its tables and their definitions, in one LevelDB. */
export interface LocalStore {
  /** A PartitionClient; a replicated partition also uses its applied-index marks. */
  partitions: PartitionStore;
  catalog: TableCatalog;
  /** Waits for pending writes, then closes the database. */
  close(): Promise<void>;
}

export interface LocalStoreOptions extends DatabaseOptions {
  /**
   * A cluster node's store: GSI entries of base partitions go to their groups' outboxes (shipped to
   * the GSI partitions) instead of being written with the item. Off: GSIs stay synchronous (one node).
   */
  indexOutbox?: boolean;
}

export async function openLocalStore(options: LocalStoreOptions): Promise<LocalStore> {
  const database = await openDatabase(options);
  const commits = new CommitQueue(database);
  const partitions = new PartitionStore(database.level, commits, { indexOutbox: options.indexOutbox ?? false });
  try {
    // A restore a crash interrupted is completed before anything reads or writes the store.
    await partitions.finishInterruptedRestores();
    if (partitions.hasIndexOutboxes) await partitions.loadIndexOutboxBacklogs();
  } catch (error) {
    await commits.close();
    await database.close();
    throw error;
  }
  return {
    partitions,
    catalog: new LevelTableCatalog(database.level, commits),
    async close() {
      await commits.close();
      await database.close();
    },
  };
}
