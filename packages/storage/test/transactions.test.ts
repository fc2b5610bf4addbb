import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spaceRange, type IndexSchema, type Item, type PartitionWrite, type WriteOperation } from '@shoal/model';
import { openLocalStore, type LocalStore, type TransactionRef } from '../src/index.ts';
import { N, S, baseRequest, key, memoryStore, put, readAllPages, table, temporaryDirectory } from './helpers.ts';

/** Intents and transaction records of cross-partition transactions (two-phase commit) in one store. */

const byKeeper: IndexSchema = { name: 'byKeeper', kind: 'GSI', indexId: 9, hashKey: key('keeper', 'S'), projection: { type: 'ALL' } };
const accounts = table(1, key('id', 'S'), undefined, [byKeeper]);
const ledger = table(2, key('id', 'S'));

const transaction = (id: string): TransactionRef => ({ id, coordinator: 1, deadline: 1_000 });
const update = (schema: typeof accounts, id: string, expression: string, values: Item, condition?: string): WriteOperation => ({
  table: schema,
  kind: 'Update',
  key: { id: S(id) },
  expressions: { update: expression, values, ...(condition ? { condition } : {}) },
});
const putItem = (schema: typeof accounts, item: Item): WriteOperation => ({ table: schema, kind: 'Put', key: { id: item.id }, item });

async function get(store: LocalStore, schema: typeof accounts, id: string): Promise<Item | undefined> {
  return (await store.partitions.get({ table: schema, key: { id: S(id) } }, { consistent: true }))?.item;
}

describe('transaction intents in the store', () => {
  let store: LocalStore;
  beforeEach(async () => {
    store = await memoryStore();
    await put(store.partitions, accounts, { id: S('a'), balance: N(10), keeper: S('ann') });
    await put(store.partitions, ledger, { id: S('a'), balance: N(0) });
  });
  afterEach(async () => {
    await store.close();
  });

  it('prepares without applying; plain reads see the committed item, other writes of the items meet a conflict', async () => {
    const prepared = await store.partitions.prepareTransaction(transaction('aa'), {
      operations: [update(accounts, 'a', 'SET balance = balance - :x', { ':x': N(4) }, 'balance >= :x'), putItem(ledger, { id: S('a'), balance: N(4) })],
    });
    expect(prepared).toEqual({ applied: true, outcomes: [{ status: 'ok' }, { status: 'ok' }] });
    expect(await get(store, accounts, 'a')).toEqual({ id: S('a'), balance: N(10), keeper: S('ann') });

    const plain = await store.partitions.write({ operations: [putItem(ledger, { id: S('a'), balance: N(99) })] });
    expect(plain).toEqual({ applied: false, outcomes: [{ status: 'transactionConflict' }] });
    const other = await store.partitions.prepareTransaction(transaction('bb'), {
      operations: [putItem(ledger, { id: S('b'), balance: N(1) }), { table: accounts, kind: 'ConditionCheck', key: { id: S('a') } }],
    });
    expect(other).toEqual({ applied: false, outcomes: [{ status: 'ok' }, { status: 'transactionConflict' }] });
    // The refused prepare left nothing: its other item takes writes.
    await put(store.partitions, ledger, { id: S('b'), balance: N(2) });
  });

  it('lets condition checks share an item, which no write may then change', async () => {
    const check = (id: string): WriteOperation => ({ table: accounts, kind: 'ConditionCheck', key: { id: S(id) } });
    expect((await store.partitions.prepareTransaction(transaction('r1'), { operations: [check('a')] })).applied).toBe(true);
    expect((await store.partitions.prepareTransaction(transaction('r2'), { operations: [check('a')], returnItems: true })).outcomes).toEqual([
      { status: 'ok', oldItem: { id: S('a'), balance: N(10), keeper: S('ann') } },
    ]);
    expect((await store.partitions.write({ operations: [check('a')] })).applied).toBe(true);
    const writes = await store.partitions.prepareTransaction(transaction('w1'), { operations: [update(accounts, 'a', 'SET balance = :x', { ':x': N(1) })] });
    expect(writes.outcomes).toEqual([{ status: 'transactionConflict' }]);
    await store.partitions.resolveTransaction('r1', true, undefined);
    expect((await store.partitions.write({ operations: [putItem(accounts, { id: S('a'), balance: N(2) })] })).outcomes).toEqual([{ status: 'transactionConflict' }]);
    await store.partitions.resolveTransaction('r2', false, undefined);
    await put(store.partitions, accounts, { id: S('a'), balance: N(2) });
    expect(await get(store, accounts, 'a')).toEqual({ id: S('a'), balance: N(2) });
  });

  it('lets a write go through the reads of a read-only transaction, which learns it at its resolve', async () => {
    const check = (id: string): WriteOperation => ({ table: accounts, kind: 'ConditionCheck', key: { id: S(id) } });
    const reader = (id: string): TransactionRef => ({ ...transaction(id), readOnly: true });
    expect((await store.partitions.prepareTransaction(reader('q1'), { operations: [check('a')] })).applied).toBe(true);
    expect((await store.partitions.prepareTransaction(reader('q2'), { operations: [check('a')] })).applied).toBe(true);
    await put(store.partitions, accounts, { id: S('a'), balance: N(3) });
    expect(await store.partitions.resolveTransaction('q1', false, undefined)).toEqual({ intents: 1, wounded: 1 });
    // A read is stopped by a write's intent only.
    await store.partitions.prepareTransaction(transaction('w1'), { operations: [update(accounts, 'a', 'SET balance = :x', { ':x': N(1) })] });
    expect((await store.partitions.prepareTransaction(reader('q3'), { operations: [check('a')] })).outcomes).toEqual([{ status: 'transactionConflict' }]);
    expect(await store.partitions.resolveTransaction('q2', false, undefined)).toEqual({ intents: 1, wounded: 1 });
  });

  it('wounds a read-only transaction only with the coalesced writes that apply, as with writes sent alone', async () => {
    const check = (id: string): WriteOperation => ({ table: accounts, kind: 'ConditionCheck', key: { id: S(id) } });
    const reader = (id: string): TransactionRef => ({ ...transaction(id), readOnly: true });
    expect((await store.partitions.prepareTransaction(reader('q1'), { operations: [check('a')] })).applied).toBe(true);
    const refusedPut: PartitionWrite = { operations: [{ ...putItem(accounts, { id: S('a'), balance: N(5) }), expressions: { condition: 'attribute_not_exists(id)' } }] };
    const otherPut: PartitionWrite = { operations: [putItem(ledger, { id: S('z'), balance: N(1) })] };
    const staged = await store.partitions.stageWrites([refusedPut, otherPut]);
    await staged.durable;
    expect(staged.result.map((result) => result.applied)).toEqual([false, true]);
    // The refused put went through no read: q1 commits unwounded.
    expect(await store.partitions.resolveTransaction('q1', true, undefined)).toEqual({ intents: 1, wounded: 0 });
  });

  it('answers condition failures with the current item, and stores no intent then', async () => {
    const refused = await store.partitions.prepareTransaction(transaction('aa'), {
      operations: [update(accounts, 'a', 'SET balance = balance - :x', { ':x': N(40) }, 'balance >= :x'), putItem(ledger, { id: S('a'), balance: N(40) })],
      returnItems: true,
    });
    expect(refused).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { id: S('a'), balance: N(10), keeper: S('ann') } }, { status: 'ok' }] });
    expect(await store.partitions.transactionsWithIntents()).toEqual([]);
    await put(store.partitions, accounts, { id: S('a'), balance: N(11) });
  });

  it('commits the images with their index entries, and releases on abort', async () => {
    const prepared = await store.partitions.prepareTransaction(transaction('aa'), {
      operations: [update(accounts, 'a', 'SET keeper = :o', { ':o': S('bob') }), { table: ledger, kind: 'Delete', key: { id: S('a') } }],
    });
    expect(prepared.applied).toBe(true);
    expect(await store.partitions.resolveTransaction('aa', true, undefined)).toEqual({ intents: 2, wounded: 0 });
    expect(await get(store, accounts, 'a')).toEqual({ id: S('a'), balance: N(10), keeper: S('bob') });
    expect(await get(store, ledger, 'a')).toBeUndefined();
    const keepers = await readAllPages(store.partitions, baseRequest(accounts, { indexName: 'byKeeper' }));
    expect(keepers.flatMap((page) => page.items).map((item) => item.keeper)).toEqual([S('bob')]);
    expect(await store.partitions.resolveTransaction('aa', true, undefined)).toEqual({ intents: 0, wounded: 0 });

    await store.partitions.prepareTransaction(transaction('bb'), { operations: [putItem(ledger, { id: S('a'), balance: N(5) })] });
    expect(await store.partitions.resolveTransaction('bb', false, undefined)).toEqual({ intents: 1, wounded: 0 });
    expect(await get(store, ledger, 'a')).toBeUndefined();
    await put(store.partitions, ledger, { id: S('a'), balance: N(6) });
  });

  it('resolves only the intents within the bound it is given', async () => {
    await store.partitions.prepareTransaction(transaction('aa'), {
      operations: [putItem(accounts, { id: S('a'), balance: N(1) }), putItem(ledger, { id: S('a'), balance: N(1) })],
    });
    // The bound of table 2's items only: table 1's intent stays.
    const ledgerOnly = spaceRange(ledger.tableId);
    expect(await store.partitions.resolveTransaction('aa', true, ledgerOnly)).toEqual({ intents: 1, wounded: 0 });
    expect(await get(store, ledger, 'a')).toEqual({ id: S('a'), balance: N(1) });
    expect(await get(store, accounts, 'a')).toEqual({ id: S('a'), balance: N(10), keeper: S('ann') });
    const left = await store.partitions.transactionsWithIntents();
    expect(left.map((entry) => [entry.transaction.id, entry.itemKeys.length])).toEqual([['aa', 1]]);
  });

  it('keeps a record PENDING until decided once: a decision stands, an unknown transaction is recorded aborted, a decided one may be forgotten', async () => {
    const record = { id: 'aa', state: 'PENDING' as const, participants: [1, 2], deadline: 1_000 };
    expect(await store.partitions.beginTransaction(record)).toEqual(record);
    expect(await store.partitions.decideTransaction('aa', 'COMMITTED')).toBe('COMMITTED');
    expect(await store.partitions.decideTransaction('aa', 'ABORTED')).toBe('COMMITTED');
    expect(await store.partitions.beginTransaction(record)).toEqual({ ...record, state: 'COMMITTED' });

    expect(await store.partitions.decideTransaction('bb', 'COMMITTED')).toBe('ABORTED');
    expect((await store.partitions.beginTransaction({ ...record, id: 'bb' })).state).toBe('ABORTED');
    expect(await store.partitions.transactionRecord('cc')).toBeUndefined();

    // Forgotten once decided (every participant resolved); a PENDING record stays.
    expect(await store.partitions.forgetTransaction('aa')).toBe(true);
    expect(await store.partitions.transactionRecord('aa')).toBeUndefined();
    await store.partitions.beginTransaction({ ...record, id: 'dd' });
    expect(await store.partitions.forgetTransaction('dd')).toBe(false);
    expect((await store.partitions.transactionRecord('dd'))?.state).toBe('PENDING');
  });
});

describe('transaction intents across a restart', () => {
  it('keeps intents and records, and still refuses writes of the items held', async () => {
    const directory = await temporaryDirectory();
    try {
      let store = await openLocalStore({ dataDir: directory.path, sync: false });
      const write: PartitionWrite = { operations: [putItem(ledger, { id: S('r'), balance: N(3) })] };
      await store.partitions.prepareTransaction(transaction('aa'), write);
      await store.partitions.beginTransaction({ id: 'aa', state: 'PENDING', participants: [1], deadline: 1_000 });
      await store.close();

      store = await openLocalStore({ dataDir: directory.path, sync: false });
      expect((await store.partitions.write(write)).outcomes).toEqual([{ status: 'transactionConflict' }]);
      expect(await store.partitions.transactionsWithIntents()).toEqual([{ transaction: transaction('aa'), itemKeys: [expect.any(Uint8Array)] }]);
      expect((await store.partitions.transactionRecord('aa'))?.state).toBe('PENDING');
      expect(await store.partitions.resolveTransaction('aa', true, undefined)).toEqual({ intents: 1, wounded: 0 });
      expect(await get(store, ledger, 'r')).toEqual({ id: S('r'), balance: N(3) });
      await store.close();
    } finally {
      await directory.remove();
    }
  });
});
