import type { TableCatalog, TableRecord } from '@shoal/model';
import type { CommitQueue } from './commit-queue.ts';
import type { ByteLevel } from './database.ts';
import { catalogKey, catalogRange, decodeJson, decodeU32, encodeJson, encodeU32, spaceCounterKey } from './layout.ts';

/**
 * Table definitions in the node's own LevelDB, under the reserved metadata space. Changes go through
 * the commit queue like item writes, so they are as durable as the store's `sync` setting makes them.
 */
export class LevelTableCatalog implements TableCatalog {
  private readonly level: ByteLevel;
  private readonly commits: CommitQueue;

  constructor(level: ByteLevel, commits: CommitQueue) {
    this.level = level;
    this.commits = commits;
  }

  async get(name: string): Promise<TableRecord | undefined> {
    const stored = await this.level.get(catalogKey(name));
    return stored ? decodeJson<TableRecord>(stored) : undefined;
  }

  async list(): Promise<TableRecord[]> {
    const range = catalogRange();
    const values = await this.level.values({ gte: range.start, lt: range.end }).all();
    return values.map((value) => decodeJson<TableRecord>(value));
  }

  put(record: TableRecord): Promise<void> {
    return this.commits.exclusive(async () => ({
      result: undefined,
      mutations: [{ key: catalogKey(record.schema.name), value: encodeJson(record) }],
    }));
  }

  delete(name: string): Promise<void> {
    return this.commits.exclusive(async () => ({ result: undefined, mutations: [{ key: catalogKey(name), value: undefined }] }));
  }

  /** Space 0 holds the metadata, so ids start at 1; the last id handed out is persisted. */
  allocateSpaceId(): Promise<number> {
    return this.commits.exclusive(async (state) => {
      const stored = state.read(spaceCounterKey());
      const id = (stored ? decodeU32(stored) : 0) + 1;
      return { result: id, mutations: [{ key: spaceCounterKey(), value: encodeU32(id) }] };
    });
  }
}
