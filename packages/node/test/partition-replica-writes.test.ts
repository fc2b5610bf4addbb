/**
 * Coalesced writes (a router's WriteMany): independent single-operation writes proposed as ONE Raft
 * entry, applied in order with an outcome each, in one store batch with the entry's applied mark.
 * Counted, not timed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeItemKey, type AttributeValue, type PartitionWrite, type TableSchema } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import {
  MultiRaftHost,
  PartitionCommandError,
  PartitionReplica,
  RaftLogStore,
  decodePartitionCommand,
  encodePartitionCommand,
  proposePartitionWrites,
} from '@shoal/node';
import { pump, whilePumping } from './fixtures/host-cluster.ts';

const TABLE: TableSchema = { name: 'coalesced', tableId: 4, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const GROUP = 1;
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

const put = (pk: string, v: string, condition?: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S(v) }, ...(condition === undefined ? {} : { expressions: { condition } }) }],
});
const add = (pk: string, amount: number): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Update', key: { pk: S(pk) }, expressions: { update: 'ADD #n :a', names: { '#n': 'n' }, values: { ':a': N(amount) } } }],
  returnItems: true,
});
/** An update of the key attribute: DynamoDB refuses it (an `invalid` outcome). */
const setKey = (pk: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Update', key: { pk: S(pk) }, expressions: { update: 'SET pk = :x', values: { ':x': S('other') } } }],
});

describe('coalesced writes through one host (a single-voter group)', () => {
  let root = '';
  let logStore: RaftLogStore;
  let local: LocalStore;
  let replica: PartitionReplica;
  let host: MultiRaftHost;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-coalesced-'));
    logStore = await RaftLogStore.open(join(root, 'raft'));
    local = await openLocalStore({ dataDir: join(root, 'partitions') });
    replica = await PartitionReplica.open(GROUP, local.partitions);
    host = new MultiRaftHost({ nodeId: 1, logStore, sender: { send: () => undefined, flush: () => undefined }, stateMachine: () => replica, tickMs: 10, electionTick: 10, heartbeatTick: 1, seed: 3 });
    host.open();
    await host.createGroup(GROUP, [1]);
    await pump([{ nodeId: 1, host }], () => host.leaderOf(GROUP) === 1, 'a leader');
  });

  afterAll(async () => {
    await host.stop();
    await logStore.close();
    await local.close();
    await rm(root, { recursive: true, force: true });
  });

  it('proposes many writes as one entry, decided in order with an outcome each, in one store batch', async () => {
    const lastIndex = (): number => host.status()[0]?.commit ?? 0;
    await pump([{ nodeId: 1, host }], () => host.status()[0]?.applied === lastIndex(), 'the leader applying its first entries');
    const entriesBefore = lastIndex();
    const batchesBefore = local.partitions.batchesWritten();
    const results = await whilePumping(
      [{ nodeId: 1, host }],
      proposePartitionWrites(host, GROUP, [
        put('a', 'first', 'attribute_not_exists(pk)'),
        // Decided on the state the write before it left: the item exists now.
        put('a', 'second', 'attribute_not_exists(pk)'),
        add('counter', 2),
        add('counter', 3),
        setKey('b'),
        put('b', 'plain'),
      ]),
      'coalesced writes',
    );
    expect(results).toEqual([
      { applied: true, outcomes: [{ status: 'ok' }] },
      { applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S('a'), v: S('first') } }] },
      { applied: true, outcomes: [{ status: 'ok', newItem: { pk: S('counter'), n: N(2) } }] },
      { applied: true, outcomes: [{ status: 'ok', oldItem: { pk: S('counter'), n: N(2) }, newItem: { pk: S('counter'), n: N(5) } }] },
      { applied: false, outcomes: [{ status: 'invalid', message: expect.stringContaining('key') }] },
      { applied: true, outcomes: [{ status: 'ok' }] },
    ]);
    // One entry, one batch of the store.
    expect(lastIndex() - entriesBefore).toBe(1);
    expect(local.partitions.batchesWritten() - batchesBefore).toBe(1);
    expect((await local.partitions.get({ table: TABLE, key: { pk: S('a') } }))?.item).toEqual({ pk: S('a'), v: S('first') });
    expect((await local.partitions.get({ table: TABLE, key: { pk: S('b') } }))?.item).toEqual({ pk: S('b'), v: S('plain') });
  });

  it('keeps every write of the entry and its applied mark across a reopen of the store', async () => {
    const reopened = await openLocalStore({ dataDir: join(root, 'reopen') });
    const fresh = await PartitionReplica.open(9, reopened.partitions);
    const results = await fresh.apply(encodePartitionCommand({ kind: 'writes', writes: [put('x', '1'), add('n', 1), add('n', 1)] }), 12);
    expect(results).toHaveLength(3);
    await fresh.settled();
    await reopened.close();
    const again = await openLocalStore({ dataDir: join(root, 'reopen') });
    try {
      expect(await (await PartitionReplica.open(9, again.partitions)).appliedIndex()).toBe(12);
      expect((await again.partitions.get({ table: TABLE, key: { pk: S('n') } }))?.item).toEqual({ pk: S('n'), n: N(2) });
      expect((await again.partitions.get({ table: TABLE, key: { pk: S('x') } }))?.item).toEqual({ pk: S('x'), v: S('1') });
    } finally {
      await again.close();
    }
  });
});

describe('the writes command on a replica', () => {
  let local: LocalStore;

  beforeAll(async () => {
    local = await openLocalStore({ inMemory: true });
  });

  afterAll(async () => {
    await local.close();
  });

  it('refuses alone a write a split cut off before the entry, and applies the others', async () => {
    // Keys in encoded order: the split at the middle one cuts it and those after it off.
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`).sort((x, y) => Buffer.compare(encodeItemKey(TABLE.tableId, S(x)), encodeItemKey(TABLE.tableId, S(y))));
    const [inside, beyond] = [keys[0] as string, keys[4] as string];
    const replica = await PartitionReplica.open(2, local.partitions, { splitsOf: () => [{ index: 3, splitKey: encodeItemKey(TABLE.tableId, S(beyond)) }] });
    const results = await replica.apply(encodePartitionCommand({ kind: 'writes', writes: [put(beyond, 'cut'), put(inside, 'kept')] }), 5);
    expect(results).toEqual([{ status: 'keyOutOfRange' }, { applied: true, outcomes: [{ status: 'ok' }] }]);
    await replica.settled();
    expect(await local.partitions.get({ table: TABLE, key: { pk: S(beyond) } })).toBeUndefined();
    expect((await local.partitions.get({ table: TABLE, key: { pk: S(inside) } }))?.item).toEqual({ pk: S(inside), v: S('kept') });
    expect(replica.appliedIndex()).toBe(5);
  });

  it('refuses an entry whose writes are not each of one operation (a corrupt log, never a client input)', () => {
    const two: PartitionWrite = { operations: [...put('p', '1').operations, ...put('q', '2').operations] };
    expect(() => decodePartitionCommand(2, 1, encodePartitionCommand({ kind: 'writes', writes: [two] }))).toThrow(PartitionCommandError);
    expect(decodePartitionCommand(2, 1, encodePartitionCommand({ kind: 'writes', writes: [put('p', '1')] }))).toEqual({ kind: 'writes', writes: [put('p', '1')] });
  });
});

/**
 * A settle tells onSettled (the index shipper and the backfill driver) only when something applied
 * since the last may have given them work: a write to a table with a GSI (outbox records), or any
 * command other than a plain write. Writes to tables without a GSI, the put bench's, skip the
 * shipper's read of the outbox.
 */
describe('onSettled after applied entries', () => {
  const WITH_GSI: TableSchema = {
    ...TABLE,
    name: 'indexed',
    tableId: 6,
    indexes: [{ name: 'byV', kind: 'GSI', indexId: 7, hashKey: { name: 'v', type: 'S' }, projection: { type: 'ALL' } }],
  };
  const WITH_LSI: TableSchema = {
    name: 'local',
    tableId: 8,
    hashKey: { name: 'pk', type: 'S' },
    rangeKey: { name: 'sk', type: 'S' },
    indexes: [{ name: 'byV', kind: 'LSI', indexId: 9, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'v', type: 'S' }, projection: { type: 'ALL' } }],
  };
  let root = '';
  let local: LocalStore;
  let replica: PartitionReplica;
  let settledCalls = 0;
  let index = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-settle-news-'));
    local = await openLocalStore({ dataDir: join(root, 'partitions'), indexOutbox: true });
    replica = await PartitionReplica.open(GROUP, local.partitions, { onSettled: () => settledCalls++ });
  });

  afterAll(async () => {
    await local.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Applies the entries as one round would, then settles; answers how many times onSettled ran. */
  const applyRound = async (...writes: PartitionWrite[][]): Promise<number> => {
    const before = settledCalls;
    for (const entry of writes) {
      index++;
      await replica.apply(encodePartitionCommand(entry.length === 1 ? { kind: 'write', write: entry[0]! } : { kind: 'writes', writes: entry }), index);
    }
    await replica.settled();
    expect(replica.visibleIndex()).toBe(index);
    return settledCalls - before;
  };
  const putTo = (table: TableSchema, pk: string): PartitionWrite => ({
    operations: [{ table, kind: 'Put', key: table.rangeKey === undefined ? { pk: S(pk) } : { pk: S(pk), sk: S('s') }, item: { pk: S(pk), sk: S('s'), v: S('x') } }],
  });

  it('is skipped for writes to tables without a GSI (an LSI included), single or coalesced', async () => {
    expect(await applyRound([putTo(TABLE, 'a')], [putTo(TABLE, 'b'), putTo(TABLE, 'c')])).toBe(0);
    expect(await applyRound([putTo(WITH_LSI, 'a')])).toBe(0);
  });

  it('runs once a round applied a write to a table with a GSI, and only for that round', async () => {
    expect(await applyRound([putTo(TABLE, 'd')], [putTo(WITH_GSI, 'e'), putTo(TABLE, 'f')])).toBe(1);
    expect(await applyRound([putTo(TABLE, 'g')])).toBe(0);
  });

  it('runs after any other command', async () => {
    const before = settledCalls;
    index++;
    await replica.apply(encodePartitionCommand({ kind: 'trimIndexOutbox', throughSeq: 0 }), index);
    await replica.settled();
    expect(settledCalls - before).toBe(1);
  });
});
