import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';

/** A LevelDB (or its in-memory twin) with byte keys and byte values. */
export type ByteLevel = AbstractLevel<string | Buffer | Uint8Array, Uint8Array, Uint8Array>;

/** One change of a write batch: a put, or a delete when `value` is undefined. */
export interface Mutation {
  key: Uint8Array;
  value: Uint8Array | undefined;
  /** `value` as text, when it is JSON the writer had as such (items, index entries): the commit queue caches it. */
  text?: string;
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

function toOperations(mutations: Mutation[]) {
  return mutations.map((m) =>
    m.value === undefined
      ? { type: 'del' as const, key: m.key }
      : { type: 'put' as const, key: m.key, value: m.value },
  );
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
      writeBatch: (mutations) => level.batch(toOperations(mutations)),
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
    writeBatch: (mutations) => level.batch(toOperations(mutations), { sync }),
    close: () => level.close(),
  };
}
