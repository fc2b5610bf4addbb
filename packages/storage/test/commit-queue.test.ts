import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommitQueue } from '../src/commit-queue.ts';
import { openDatabase, type Database, type Mutation } from '../src/database.ts';
import { checkPartitionSnapshot } from '../src/partition-restore.ts';
import { PartitionStore } from '../src/partition-store.ts';
import { N, S, key, put, table, temporaryDirectory } from './helpers.ts';

const schema = table(1, key('pk', 'S'));
const utf8 = new TextEncoder();

/** An in-memory database whose batches can be held back or made to fail. */
async function observedDatabase() {
  const database = await openDatabase({ inMemory: true });
  const batches: Mutation[][] = [];
  let hold: Promise<void> | undefined;
  let failure: Error | undefined;
  const observed: Database = {
    ...database,
    async writeBatch(mutations) {
      batches.push(mutations);
      if (hold) await hold;
      if (failure) {
        const error = failure;
        failure = undefined;
        throw error;
      }
      return database.writeBatch(mutations);
    },
  };
  return {
    database: observed,
    batches,
    holdBatches(): () => void {
      let release!: () => void;
      hold = new Promise((resolve) => {
        release = resolve;
      });
      return () => {
        hold = undefined;
        release();
      };
    },
    /** The next batch fails with `error` (a passing fault, as a full disk: the ones after it would succeed). */
    failNextBatch(error: Error) {
      failure = error;
    },
  };
}

/** The items a batch writes (JSON values), in its order. */
function itemValues(batch: Mutation[]): unknown[] {
  return batch.flatMap(({ value }) => (typeof value === 'string' ? [JSON.parse(value)] : []));
}

async function settle(rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('commit queue', () => {
  it('commits the writes of one event loop turn in one batch, and those that arrive during a batch in the next, in order', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    const release = observed.holdBatches();
    const increment = () =>
      store.write({ operations: [{ table: schema, kind: 'Update', key: { pk: S('n') }, expressions: { update: 'ADD n :one', values: { ':one': N(1) } } }], returnItems: true });
    const writes = Array.from({ length: 30 }, increment);
    await settle();
    expect(observed.batches).toHaveLength(1);
    // The 30 item changes, not the first write alone: the batch holds the last of them (each key once).
    expect(itemValues(observed.batches[0])).toEqual([{ pk: S('n'), n: N(30) }]);
    writes.push(...Array.from({ length: 20 }, increment));
    await settle();
    expect(observed.batches).toHaveLength(1);
    release();
    const results = await Promise.all(writes);
    expect(observed.batches).toHaveLength(2);
    // Each write saw the one before it, although none was on disk when it applied.
    expect(results.map((result) => result.outcomes[0])).toEqual(
      Array.from({ length: 50 }, (_, i) => ({ status: 'ok', ...(i > 0 ? { oldItem: { pk: S('n'), n: N(i) } } : {}), newItem: { pk: S('n'), n: N(i + 1) } })),
    );
    expect(await store.get({ table: schema, key: { pk: S('n') } })).toMatchObject({ item: { pk: S('n'), n: N(50) } });
    await observed.database.close();
  });

  it('writes each key once per batch, its last value: a batch of puts to one table rewrites its statistics once', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    await put(store, schema, { pk: S('first') });
    const batchesBefore = observed.batches.length;
    const writes = [
      ...Array.from({ length: 10 }, (_, i) => put(store, schema, { pk: S(`k${i}`), v: N(i) })),
      put(store, schema, { pk: S('k3'), v: N(33) }),
      store.write({ operations: [{ table: schema, kind: 'Delete', key: { pk: S('k5') } }] }),
      put(store, schema, { pk: S('first'), v: N(1) }),
    ];
    await Promise.all(writes);
    expect(observed.batches).toHaveLength(batchesBefore + 1);
    const batch = observed.batches[batchesBefore];
    const keys = batch.map((mutation) => Buffer.from(mutation.key).toString('hex'));
    expect(new Set(keys).size).toBe(keys.length);
    // 10 item keys and `first`, plus one statistics record: not 13 item writes and 13 records.
    expect(batch).toHaveLength(12);
    expect(itemValues(batch)).toEqual(
      expect.arrayContaining([{ pk: S('k3'), v: N(33) }, { pk: S('first'), v: N(1) }, { pk: S('k4'), v: N(4) }]),
    );
    expect(batch.filter((mutation) => mutation.value === undefined)).toHaveLength(1);
    expect(await store.get({ table: schema, key: { pk: S('k3') } })).toMatchObject({ item: { pk: S('k3'), v: N(33) } });
    expect(await store.get({ table: schema, key: { pk: S('k5') } })).toBeUndefined();
    expect(await store.statistics(schema)).toMatchObject({ itemCount: 10 });
    await observed.database.close();
  });

  it('answers a write refused on staged state once that state is readable', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    const release = observed.holdBatches();
    const created = put(store, schema, { pk: S('once') });
    const again = store.write({ operations: [{ table: schema, kind: 'Put', key: { pk: S('once') }, item: { pk: S('once') }, expressions: { condition: 'attribute_not_exists(pk)' } }] });
    let answered = false;
    void again.then(() => {
      answered = true;
    });
    await settle();
    expect(answered).toBe(false);
    release();
    expect((await again).outcomes).toEqual([{ status: 'conditionFailed', item: { pk: S('once') } }]);
    await created;
    expect(await store.get({ table: schema, key: { pk: S('once') } })).toBeDefined();
    await observed.database.close();
  });

  it('hands a staged write over before it is durable, with the promise of its batch', async () => {
    const observed = await observedDatabase();
    const commits = new CommitQueue(observed.database);
    const store = new PartitionStore(observed.database.level, commits);
    const release = observed.holdBatches();
    const staged = await Promise.all(['a', 'b', 'c'].map((pk) => store.stageWrite({ operations: [{ table: schema, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk) } }] }, { groupId: 7, index: 1 })));
    expect(staged.map(({ result }) => result.applied)).toEqual([true, true, true]);
    // Staged before their batch started: they share its one promise.
    expect(new Set(staged.map(({ durable }) => durable)).size).toBe(1);
    expect(await store.get({ table: schema, key: { pk: S('a') } })).toBeUndefined();
    await settle();
    release();
    await Promise.all(staged.map(({ durable }) => durable));
    expect(observed.batches).toHaveLength(1);
    expect(await store.get({ table: schema, key: { pk: S('c') } })).toBeDefined();
    expect(await store.appliedIndex(7)).toBe(1);
    await observed.database.close();
  });

  it('runs exclusive calls one at a time, in the order they were made, also when they wait inside', async () => {
    const observed = await observedDatabase();
    const commits = new CommitQueue(observed.database);
    const started: number[] = [];
    let running = 0;
    let mostRunning = 0;
    const calls = Array.from({ length: 20 }, (_, i) =>
      commits.exclusive(async () => {
        started.push(i);
        mostRunning = Math.max(mostRunning, ++running);
        for (let turn = 0; turn < i % 3; turn++) await new Promise((resolve) => setImmediate(resolve));
        running--;
        return { result: i, mutations: [] };
      }),
    );
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(started).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(mostRunning).toBe(1);
    // A call after they all finished finds the lock free again.
    expect(await commits.exclusive(async () => ({ result: 'free', mutations: [] }))).toBe('free');
    await observed.database.close();
  });

  it('fails the writes staged while a failing batch was being written, with its error', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    const release = observed.holdBatches();
    const first = put(store, schema, { pk: S('first') });
    await settle();
    const second = put(store, schema, { pk: S('second') });
    await settle();
    observed.failNextBatch(new Error('disk full'));
    release();
    await expect(first).rejects.toThrow('disk full');
    await expect(second).rejects.toThrow('disk full');
    expect(observed.batches).toHaveLength(1);
    expect(await store.get({ table: schema, key: { pk: S('second') } })).toBeUndefined();
    await observed.database.close();
  });

  it('stops after a failed batch instead of building on state that never reached the disk', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    await put(store, schema, { pk: S('before') });
    observed.failNextBatch(new Error('disk full'));
    await expect(put(store, schema, { pk: S('lost') })).rejects.toThrow('disk full');
    await expect(put(store, schema, { pk: S('after') })).rejects.toMatchObject({ type: 'InternalServerError' });
    expect(await store.get({ table: schema, key: { pk: S('lost') } })).toBeUndefined();
    expect(await store.get({ table: schema, key: { pk: S('before') } })).toBeDefined();
    await observed.database.close();
  });

  it('fails a call that waited inside the lock for staged changes across a failed batch, and writes nothing of it', async () => {
    const observed = await observedDatabase();
    const commits = new CommitQueue(observed.database);
    const release = observed.holdBatches();
    const doomed = commits.exclusive(async () => ({ result: 'a', mutations: [{ key: utf8.encode('a'), value: '"A"' }] }));
    await settle();
    // As a backfill chunk, a range clear or a snapshot restore does: waits for the staged changes to be
    // in LevelDB, then decides on the state (whose overlay still shows the failed change).
    let decided = false;
    const waitedInside = commits.exclusive(async (state) => {
      await state.durable();
      decided = true;
      return { result: 'b', mutations: [{ key: utf8.encode('b'), value: JSON.stringify(state.readText(utf8.encode('a'))?.json) }] };
    });
    await settle();
    observed.failNextBatch(new Error('disk full'));
    release();
    await expect(doomed).rejects.toThrow('disk full');
    await expect(waitedInside).rejects.toThrow('disk full');
    expect(decided).toBe(false);
    expect(observed.batches).toHaveLength(1);
    expect(await observed.database.level.get(utf8.encode('b'))).toBeUndefined();
    await observed.database.close();
  });

  it('refuses the changes of a call whose state failed while it ran, though it never asked for durability', async () => {
    const observed = await observedDatabase();
    const commits = new CommitQueue(observed.database);
    const release = observed.holdBatches();
    const doomed = commits.exclusive(async () => ({ result: 'a', mutations: [{ key: utf8.encode('a'), value: '"A"' }] }));
    await settle();
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    // Reads the failed change through the overlay, then waits on something else while the batch fails.
    const running = commits.stageExclusive(async (state) => {
      const seen = state.readText(utf8.encode('a'))?.json;
      await resumed;
      return { result: seen, mutations: [{ key: utf8.encode('b'), value: JSON.stringify(seen) }] };
    });
    await settle();
    observed.failNextBatch(new Error('disk full'));
    release();
    await expect(doomed).rejects.toThrow('disk full');
    resume();
    await expect(running).rejects.toMatchObject({ type: 'InternalServerError' });
    await settle();
    expect(observed.batches).toHaveLength(1);
    expect(await observed.database.level.get(utf8.encode('b'))).toBeUndefined();
    await observed.database.close();
  });

  it('fails a snapshot restore that waited for a write whose batch failed, and leaves the applied index where it was', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    const directory = await temporaryDirectory();
    const header = Buffer.from(JSON.stringify({ format: 'shoal-partition-snapshot-1', groupId: 7, appliedIndex: 5 }));
    const staged = { path: join(directory.path, 'staged'), offset: 0, size: 4 + header.length };
    await writeFile(staged.path, Buffer.concat([Buffer.from([0, 0, 0, header.length]), header]));
    const snapshot = await checkPartitionSnapshot(staged);
    const release = observed.holdBatches();
    const lost = put(store, schema, { pk: S('lost') });
    await settle();
    const scope = { groupId: 7, table: schema, bound: { start: new Uint8Array(0), end: new Uint8Array(0) } };
    const restored = store.restorePartitionSnapshot([scope], snapshot, 5);
    await settle();
    observed.failNextBatch(new Error('disk full'));
    release();
    await expect(lost).rejects.toThrow('disk full');
    await expect(restored).rejects.toThrow('disk full');
    expect(observed.batches).toHaveLength(1);
    // As the store reopened finds it: neither the write nor the restore decided after it.
    const reopened = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    expect(await reopened.appliedIndex(7)).toBe(0);
    expect(await reopened.get({ table: schema, key: { pk: S('lost') } })).toBeUndefined();
    await observed.database.close();
    await directory.remove();
  });

  it('still closes after a failed batch, so the store can be reopened', async () => {
    const observed = await observedDatabase();
    const commits = new CommitQueue(observed.database);
    observed.failNextBatch(new Error('disk full'));
    await expect(commits.exclusive(async () => ({ result: 'a', mutations: [{ key: utf8.encode('a'), value: '"A"' }] }))).rejects.toThrow('disk full');
    await commits.close();
    await expect(commits.exclusive(async () => ({ result: 'b', mutations: [] }))).rejects.toThrow('closed');
    await observed.database.close();
  });
});
