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
  const level = new ClassicLevel<Uint8Array, Uint8Array>(join(options.dataDir, 'data'), encodings);
  await level.open();
  const sync = options.sync === true;
  return {
    level,
    writeBatch: (mutations) => level.batch(toOperations(mutations), { sync }),
    close: () => level.close(),
  };
}
