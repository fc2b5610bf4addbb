import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';

/** A LevelDB (or its in-memory twin) with byte keys and byte values. */
export type ByteLevel = AbstractLevel<string | Buffer | Uint8Array, Uint8Array, Uint8Array>;

/**
 * One change of a write batch: a put, or a delete when `value` is undefined. A text value (an item's
 * or an index entry's JSON) is stored as its UTF-8 bytes, converted by LevelDB's binding as it copies
 * them (no encoded copy on the JS heap), and the commit queue caches it.
 */
export interface Mutation {
  key: Uint8Array;
  value: Uint8Array | string | undefined;
  /** The item size of a text value (DynamoDB's measure of the item it holds), when the writer measured it. */
  size?: number;
  /** mapKey(key), when the writer has it already (the commit queue keys its overlay and cache by it). */
  cacheKey?: string;
}

export interface Database {
  level: ByteLevel;
  /** Writes the mutations atomically; with `sync` on, fsyncs LevelDB's log before resolving. */
  writeBatch(mutations: Mutation[]): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Directory of the LevelDB files (the database lives in `<dataDir>/data`). */
  dataDir?: string;
  /** Keep everything in memory (memory-level); nothing survives close. */
  inMemory?: boolean;
  /** fsync every write batch. */
  sync?: boolean;
}

type BatchOperation =
  | { type: 'del'; key: Uint8Array }
  | { type: 'put'; key: Uint8Array; value: Uint8Array }
  | { type: 'put'; key: Uint8Array; value: string; valueEncoding: 'utf8' };

function toOperations(mutations: Mutation[]): BatchOperation[] {
  return mutations.map((m): BatchOperation => {
    if (m.value === undefined) return { type: 'del', key: m.key };
    if (typeof m.value === 'string') return { type: 'put', key: m.key, value: m.value, valueEncoding: 'utf8' };
    return { type: 'put', key: m.key, value: m.value };
  });
}

/**
 * LevelDB's defaults (8 MB block cache, 4 MB memtable) are sized for embedded use: a node serving
 * tables re-reads and decompresses blocks on most reads of a working set above 8 MB, and compacts
 * often under steady writes. The cache fills on demand, so small stores pay nothing for it.
 */
const LEVEL_TUNING = { cacheSize: 64 * 1024 * 1024, writeBufferSize: 16 * 1024 * 1024 } as const;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const encodings = { keyEncoding: 'view', valueEncoding: 'view' } as const;
  if (options.inMemory) {
    if (options.dataDir !== undefined) throw new Error('openLocalStore: choose dataDir or inMemory, not both');
    const level = new MemoryLevel<Uint8Array, Uint8Array>({ ...encodings, storeEncoding: 'view' });
    await level.open();
    return {
      level,
      writeBatch: (mutations) => level.batch<Uint8Array, Uint8Array | string>(toOperations(mutations), {}),
      close: () => level.close(),
    };
  }
  if (options.dataDir === undefined) throw new Error('openLocalStore: dataDir or inMemory is required');
  await mkdir(options.dataDir, { recursive: true });
  const level = new ClassicLevel<Uint8Array, Uint8Array>(join(options.dataDir, 'data'), { ...encodings, ...LEVEL_TUNING });
  await level.open();
  const sync = options.sync === true;
  return {
    level,
    writeBatch: (mutations) => level.batch<Uint8Array, Uint8Array | string>(toOperations(mutations), { sync }),
    close: () => level.close(),
  };
}
