import { internalError } from '@shoal/model';
import type { Database, Mutation } from './database.ts';
import { ItemCache, type CachedItem } from './item-cache.ts';
import { mapKey } from './layout.ts';

/** Characters of value text (about bytes) the queue keeps of values read or written lately (ItemCache). */
const VALUE_CACHE_CHARACTERS = 32 * 1024 * 1024;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();
/** getSync's options for a value read as text: LevelDB's binding makes the string from the bytes it holds. */
const AS_TEXT = { valueEncoding: 'utf8' } as const;

/** Read access to the latest state, including changes staged but not yet durable. */
export interface StateReader {
  /**
   * Synchronous (LevelDB's getSync): reads under the lock are on the critical path of every write,
   * and a thread pool round trip each would cap the write rate.
   */
  read(key: Uint8Array): Uint8Array | undefined;
  /**
   * The value at `key` as UTF-8 text (an item's JSON), with its item size when known, from the value
   * cache when it holds it. `cacheKey` is mapKey(key), when the caller has it already.
   */
  readText(key: Uint8Array, cacheKey?: string): CachedItem | undefined;
  /**
   * Resolves once every staged change is in LevelDB (so iterators see everything); rejects with the
   * batch's error when one failed (what was staged never will be).
   */
  durable(): Promise<void>;
}

/** A decided change: its result, and when it is in the database. */
export interface Staged<T> {
  result: T;
  durable: Promise<void>;
}

/**
 * The changes staged since the last LevelDB batch started: they go into the next one together, and
 * their callers share one promise of it (a promise per change cost more than the rest of its staging).
 */
interface PendingBatch {
  mutations: Mutation[];
  /** mapKey of each mutation's key, in order. */
  cacheKeys: string[];
  /** The sequence of the last change staged into it. */
  lastSequence: number;
  durable: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Serializes every change to the database and commits them in groups.
 *
 * `exclusive(fn)` runs `fn` alone: writes see a consistent state and apply one after another. The
 * mutations `fn` returns are staged in an in-memory overlay (so the next `fn` sees them at once) and
 * queued. A batch starts at the end of the event loop turn that staged its first change (setImmediate),
 * so everything staged in that turn (a burst of requests, a Raft round's applied entries) shares it, and
 * whatever queues while one LevelDB batch is being written goes into the next: with fsync on, many
 * concurrent writes share one fsync (group commit). `exclusive` resolves once its mutations are
 * durable; `stageExclusive` as soon as they are staged, handing over that promise instead.
 *
 * A failed batch leaves the overlay ahead of the disk, and later writes may have been decided on it,
 * so the queue stops: every later call fails until the store is reopened, and so does the call
 * running when it failed (its `durable()` rejects, its changes are refused).
 */
export class CommitQueue {
  private readonly database: Database;
  private readonly overlay = new Map<string, { value: Uint8Array | string | undefined; size: number | undefined; sequence: number }>();
  /**
   * Values (as text) the database holds, of keys read or written lately: a batch's values are set
   * once the batch is in the database, before its writers hear of it, and a value read is cached at
   * once (getSync: nothing runs in between), so it holds what the database holds.
   */
  private readonly values = new ItemCache(VALUE_CACHE_CHARACTERS);
  private pending: PendingBatch | undefined;
  private writing = false;
  private idleWaiters: Array<() => void> = [];
  private nextSequence = 1;
  /** Resolves once the last batch staged is in the database. */
  private lastStaged: Promise<void> = Promise.resolve();
  private locked = false;
  /** Callers waiting for the lock, in the order they asked. */
  private lockWaiters: Array<() => void> = [];
  private failure: unknown;
  private closed = false;
  private readonly reader: StateReader;
  /** LevelDB batches written (counters for tests, benchmarks and metrics). */
  batchesWritten = 0;

  constructor(database: Database) {
    this.database = database;
    this.reader = {
      read: (key) => this.read(key),
      readText: (key, cacheKey) => this.readText(key, cacheKey),
      durable: () => this.durable(),
    };
  }

  async exclusive<T>(fn: (state: StateReader) => Promise<{ result: T; mutations: Mutation[] }>): Promise<T> {
    const { result, durable } = await this.stageExclusive(fn);
    await durable;
    return result;
  }

  /**
   * Runs `fn` alone as `exclusive` does, but resolves once its mutations are staged: later calls see
   * them, readers of the database do not until `durable` resolves (rejects: the batch failed). For a
   * caller deciding many writes before it answers any of them.
   */
  async stageExclusive<T>(fn: (state: StateReader) => Promise<{ result: T; mutations: Mutation[] }>): Promise<Staged<T>> {
    const waiting = this.lock();
    if (waiting !== undefined) await waiting;
    try {
      this.checkUsable();
      const { result, mutations } = await fn(this.reader);
      // A batch may have failed while `fn` waited: it decided on state that never reached the disk.
      this.checkUsable();
      // A change decided on staged state (a condition that failed on it, say) is answered only once
      // that state is readable too: its caller must not read something older than what decided it.
      const durable = mutations.length > 0 ? this.stage(mutations) : this.lastStaged;
      return { result, durable };
    } finally {
      this.unlock();
    }
  }

  /** Waits for queued batches and refuses further work. */
  async close(): Promise<void> {
    const waiting = this.lock();
    if (waiting !== undefined) await waiting;
    try {
      this.closed = true;
      // Idle, not durable: a store whose batch failed is closed all the same, to be reopened.
      await this.idle();
    } finally {
      this.unlock();
    }
  }

  private checkUsable(): void {
    if (this.closed) throw internalError('The store is closed');
    if (this.failure !== undefined) {
      throw internalError(`The store stopped after a failed write: ${String(this.failure)}`);
    }
  }

  /**
   * Takes the lock: at once when it is free (no promise: most writes find it so), else the promise
   * of its turn, after every caller that asked before. Released by `unlock`.
   */
  private lock(): Promise<void> | undefined {
    if (!this.locked) {
      this.locked = true;
      return undefined;
    }
    return new Promise((resolve) => this.lockWaiters.push(resolve));
  }

  /** Hands the lock to the next caller waiting, or frees it. */
  private unlock(): void {
    const next = this.lockWaiters.shift();
    if (next !== undefined) next();
    else this.locked = false;
  }

  private read(key: Uint8Array): Uint8Array | undefined {
    const staged = this.overlay.get(mapKey(key));
    if (staged) return typeof staged.value === 'string' ? utf8.encode(staged.value) : staged.value;
    return this.database.level.getSync(key);
  }

  private readText(key: Uint8Array, cacheKey = mapKey(key)): CachedItem | undefined {
    const staged = this.overlay.get(cacheKey);
    if (staged) {
      const { value, size } = staged;
      if (value === undefined) return undefined;
      return { json: typeof value === 'string' ? value : utf8Decoder.decode(value), size };
    }
    return this.durableText(key, cacheKey);
  }

  /**
   * The value at `key` as text, as the database holds it now (staged changes aside), cached: the
   * read of GetItem. A value not valid UTF-8 is not one to read as text.
   */
  durableText(key: Uint8Array, cacheKey = mapKey(key)): CachedItem | undefined {
    const cached = this.values.get(cacheKey);
    if (cached !== undefined) return cached;
    const stored = this.database.level.getSync<Uint8Array, string>(key, AS_TEXT);
    return stored === undefined ? undefined : this.values.set(cacheKey, stored);
  }

  private async durable(): Promise<void> {
    await this.idle();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Resolves once no batch is being written (the last one written, or failed). */
  private idle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stages `mutations` under the lock, once `checkUsable` passed after the call that decided them. */
  private stage(mutations: Mutation[]): Promise<void> {
    const sequence = this.nextSequence++;
    const batch = (this.pending ??= this.newPendingBatch());
    for (const m of mutations) {
      const cacheKey = m.cacheKey ?? mapKey(m.key);
      this.overlay.set(cacheKey, { value: m.value, size: m.size, sequence });
      batch.mutations.push(m);
      batch.cacheKeys.push(cacheKey);
    }
    batch.lastSequence = sequence;
    if (!this.writing) {
      this.writing = true;
      setImmediate(() => void this.drain());
    }
    return batch.durable;
  }

  private newPendingBatch(): PendingBatch {
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const durable = new Promise<void>((resolveBatch, rejectBatch) => {
      resolve = resolveBatch;
      reject = rejectBatch;
    });
    // Handled here too: a caller that awaits it later still sees the failure, and none goes unhandled meanwhile.
    durable.catch(() => undefined);
    this.lastStaged = durable;
    return { mutations: [], cacheKeys: [], lastSequence: 0, durable, resolve, reject };
  }

  /** The changes staged so far, for the next batch; from now on changes go into a new one. */
  private takePending(): PendingBatch | undefined {
    const batch = this.pending;
    this.pending = undefined;
    return batch;
  }

  /** Writes the pending batches, one LevelDB batch per round of the loop; `writing` is set by the caller. */
  private async drain(): Promise<void> {
    for (let batch = this.takePending(); batch !== undefined; batch = this.takePending()) {
      try {
        await this.database.writeBatch(latestPerKey(batch.mutations, batch.cacheKeys));
      } catch (error) {
        this.failure = error;
        batch.reject(error);
        // Changes staged meanwhile were decided on the failed ones: they fail with them.
        this.takePending()?.reject(error);
        break;
      }
      this.batchesWritten++;
      const { mutations, cacheKeys, lastSequence } = batch;
      for (let i = 0; i < mutations.length; i++) {
        const { value, size } = mutations[i];
        const key = cacheKeys[i];
        if (typeof value === 'string') this.values.set(key, value, size);
        else this.values.delete(key);
        const staged = this.overlay.get(key);
        if (staged && staged.sequence <= lastSequence) this.overlay.delete(key);
      }
      batch.resolve();
    }
    this.writing = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * A batch's mutations, only the last of each key: an earlier one would be overwritten within the
 * same batch (every write of a table rewrites its statistics record), and each costs LevelDB's
 * binding a marshalling, a memtable insert and log bytes.
 */
function latestPerKey(mutations: Mutation[], cacheKeys: string[]): Mutation[] {
  const seen = new Set<string>();
  const latest: Mutation[] = [];
  for (let i = mutations.length - 1; i >= 0; i--) {
    const key = cacheKeys[i];
    if (seen.has(key)) continue;
    seen.add(key);
    latest.push(mutations[i]);
  }
  return latest;
}
