import { describe, expect, it } from 'vitest';
import { CommitQueue } from '../src/commit-queue.ts';
import { openDatabase, type Database, type Mutation } from '../src/database.ts';
import { PartitionStore } from '../src/partition-store.ts';
import { N, S, key, put, table } from './helpers.ts';

const schema = table(1, key('pk', 'S'));

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
      if (failure) throw failure;
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
    failBatches(error: Error) {
      failure = error;
    },
  };
}

async function settle(rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('commit queue', () => {
  it('commits the writes that arrive during a batch together in the next batch, in order', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    const release = observed.holdBatches();
    const writes = Array.from({ length: 50 }, () =>
      store.write({ operations: [{ table: schema, kind: 'Update', key: { pk: S('n') }, expressions: { update: 'ADD n :one', values: { ':one': N(1) } } }], returnItems: true }),
    );
    await settle();
    expect(observed.batches).toHaveLength(1);
    release();
    const results = await Promise.all(writes);
    expect(observed.batches).toHaveLength(2);
    // Each write saw the one before it, although only the first was on disk when it applied.
    expect(results.map((result) => result.outcomes[0])).toEqual(
      Array.from({ length: 50 }, (_, i) => ({ status: 'ok', ...(i > 0 ? { oldItem: { pk: S('n'), n: N(i) } } : {}), newItem: { pk: S('n'), n: N(i + 1) } })),
    );
    expect(await store.get({ table: schema, key: { pk: S('n') } })).toMatchObject({ item: { pk: S('n'), n: N(50) } });
    await observed.database.close();
  });

  it('stops after a failed batch instead of building on state that never reached the disk', async () => {
    const observed = await observedDatabase();
    const store = new PartitionStore(observed.database.level, new CommitQueue(observed.database));
    await put(store, schema, { pk: S('before') });
    observed.failBatches(new Error('disk full'));
    await expect(put(store, schema, { pk: S('lost') })).rejects.toThrow('disk full');
    await expect(put(store, schema, { pk: S('after') })).rejects.toMatchObject({ type: 'InternalServerError' });
    expect(await store.get({ table: schema, key: { pk: S('lost') } })).toBeUndefined();
    expect(await store.get({ table: schema, key: { pk: S('before') } })).toBeDefined();
    await observed.database.close();
  });
});
