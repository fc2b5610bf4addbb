import { resourceNotFound, type TableCatalog, type TableChange, type TableRecord } from '@shoal/model';
import type { CommitQueue } from './commit-queue.ts';
import type { ByteLevel } from './database.ts';
import { catalogKey, catalogRange, decodeJson, decodeU32, encodeJson, encodeU32, spaceCounterKey } from './layout.ts';

/**
 * Table definitions in the node's own LevelDB, under the reserved metadata space. Changes go through
 * the commit queue like item writes, so they are as durable as the store's `sync` setting makes them.
 *
 * Every item request looks its table up, so records read are kept in memory (frozen, as callers share
 * them). A change drops the cached record once it is durable; the next read loads it again. Reads are
 * synchronous, so no read started before a change can put a stale record back afterwards.
 */
export class LevelTableCatalog implements TableCatalog {
  private readonly level: ByteLevel;
  private readonly commits: CommitQueue;
  private readonly cached = new Map<string, TableRecord>();

  constructor(level: ByteLevel, commits: CommitQueue) {
    this.level = level;
    this.commits = commits;
  }

  async get(name: string): Promise<TableRecord | undefined> {
    const cached = this.cached.get(name);
    if (cached !== undefined) return cached;
    const stored = this.level.getSync(catalogKey(name));
    if (!stored) return undefined; // not cached: unknown names must not grow the map
    const record = deepFreeze(decodeJson<TableRecord>(stored));
    this.cached.set(name, record);
    return record;
  }

  async list(): Promise<TableRecord[]> {
    const range = catalogRange();
    const values = await this.level.values({ gte: range.start, lt: range.end }).all();
    return values.map((value) => decodeJson<TableRecord>(value));
  }

  async create(record: TableRecord): Promise<void> {
    await this.write(record);
  }

  /** One process owns this catalog, and its callers hold the table's lock: no concurrent change to compare against. */
  async update(name: string, change: TableChange): Promise<TableRecord | undefined> {
    const current = await this.get(name);
    if (current === undefined) throw resourceNotFound(`Requested resource not found: Table: ${name} not found`);
    const next = await change(current);
    if (next === undefined) return undefined;
    await this.write(next);
    return next;
  }

  private async write(record: TableRecord): Promise<void> {
    const name = record.schema.name;
    try {
      await this.commits.exclusive(async () => ({
        result: undefined,
        mutations: [{ key: catalogKey(name), value: encodeJson(record) }],
      }));
    } finally {
      this.cached.delete(name);
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await this.commits.exclusive(async () => ({ result: undefined, mutations: [{ key: catalogKey(name), value: undefined }] }));
    } finally {
      this.cached.delete(name);
    }
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

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}
