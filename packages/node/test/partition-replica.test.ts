import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbError,
  encodeItemKey,
  initialPartitions,
  partitionContains,
  type AttributeValue,
  type IndexSchema,
  type Item,
  type PartitionWrite,
  type PartitionWriteResult,
  type TableSchema,
} from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, partitionBound, type LocalStore } from '@shoal/storage';
import {
  PartitionCommandError,
  PartitionReplica,
  PartitionSnapshotError,
  decodePartitionCommand,
  encodePartitionCommand,
  MAX_PARTITION_COMMAND_BYTES,
  proposeIndexCommand,
  proposePartitionWrite,
  type PartitionCommand,
} from '@shoal/node';
import { agreedLeader, pump, whilePumping } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';
import { oneReplica, startPartitionMember, stopPartitionMember, type PartitionMember } from './fixtures/partition-member.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUP = 7;
const TABLE: TableSchema = { name: 'orders', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const BY_V: IndexSchema = { name: 'byV', kind: 'GSI', indexId: 6, hashKey: { name: 'v', type: 'S' }, projection: { type: 'ALL' } };
const INDEXED: TableSchema = { ...TABLE, indexes: [BY_V] };
const writeCommand = (write: PartitionWrite): Uint8Array => encodePartitionCommand({ kind: 'write', write });

type Member = PartitionMember & { replica: PartitionReplica };

/** Opens (or reopens) a node's Raft log and partition store, and its host with one PartitionReplica. */
const startMember = (network: MemoryNetwork, nodeId: NodeId, dir: string): Promise<Member> => startPartitionMember(network, nodeId, dir, { seed: 11, ...oneReplica(GROUP) });

const leader = (members: readonly Member[]): Member | undefined => agreedLeader(members, GROUP);

async function propose(members: readonly Member[], write: PartitionWrite): Promise<PartitionWriteResult> {
  await pump(members, () => leader(members) !== undefined, 'a leader');
  return whilePumping(members, proposePartitionWrite(leader(members)!.host, GROUP, write), 'a write');
}

async function allItemsOf(local: LocalStore): Promise<Item[]> {
  const result = await local.partitions.readRange({ table: TABLE, forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES' });
  return result.items;
}

const allItems = (member: Member): Promise<Item[]> => allItemsOf(member.local);

/** Pumps until every member applied what the leader committed, then returns each member's items. */
async function settledStores(members: readonly Member[]): Promise<Item[][]> {
  const commit = (): number => Math.max(...members.map((m) => m.host.status()[0]?.commit ?? 0));
  await pump(members, () => members.every((m) => m.replica.appliedIndex() >= commit() && m.host.status()[0]?.applied === commit()), 'replicas applying');
  return Promise.all(members.map(allItems));
}

const pkOf = (item: Item): string => JSON.stringify(item.pk);
const byKey = (items: Item[]): Item[] => [...items].sort((x, y) => (pkOf(x) < pkOf(y) ? -1 : pkOf(x) > pkOf(y) ? 1 : 0));

const put = (pk: string, item: Item, condition?: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), ...item }, ...(condition ? { expressions: { condition } } : {}) }],
});

const addToCounter = (pk: string, amount: number): PartitionWrite => ({
  operations: [
    {
      table: TABLE,
      kind: 'Update',
      key: { pk: S(pk) },
      expressions: { update: 'ADD #n :amount', names: { '#n': 'n' }, values: { ':amount': N(amount) } },
    },
  ],
  returnItems: true,
});

/** The stores of every test here, each in a directory of its own below it. */
let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shoal-partition-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('PartitionReplica: three MultiRaftHosts, each over its own LevelDB PartitionStore', () => {
  const network = new MemoryNetwork();
  let members: Member[] = [];

  beforeAll(async () => {
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) await m.host.createGroup(GROUP, NODES);
  });

  afterAll(async () => {
    for (const m of members) await stopPartitionMember(network, m);
  });

  it('applies conditional Puts and Updates identically on all three replicas, returning results to the proposer', async () => {
    const created = await propose(members, put('a', { v: S('one') }, 'attribute_not_exists(pk)'));
    expect(created).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
    await propose(members, put('b', { v: S('two') }, 'attribute_not_exists(pk)'));
    const updated = await propose(members, {
      operations: [
        {
          table: TABLE,
          kind: 'Update',
          key: { pk: S('a') },
          expressions: { condition: '#v = :old', update: 'SET #v = :new', names: { '#v': 'v' }, values: { ':old': S('one'), ':new': S('uno') } },
        },
      ],
      returnItems: true,
    });
    expect(updated).toEqual({
      applied: true,
      outcomes: [{ status: 'ok', oldItem: { pk: S('a'), v: S('one') }, newItem: { pk: S('a'), v: S('uno') } }],
    });
    const stores = await settledStores(members);
    // A Scan returns items in hash order, the same on every replica.
    for (const items of stores) expect(items).toEqual(stores[0]);
    expect(byKey(stores[0])).toEqual([{ pk: S('a'), v: S('uno') }, { pk: S('b'), v: S('two') }]);
  });

  it('a failed condition answers conditionFailed to the proposer and changes no replica', async () => {
    const before = await settledStores(members);
    const appliedBefore = members.map((m) => m.replica.appliedIndex());
    const result = await propose(members, put('a', { v: S('overwritten') }, 'attribute_not_exists(pk)'));
    expect(result).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S('a'), v: S('uno') } }] });
    const after = await settledStores(members);
    expect(after).toEqual(before);
    // The entry was applied (and recorded) everywhere, as a no-op.
    members.forEach((m, i) => expect(m.replica.appliedIndex()).toBeGreaterThan(appliedBefore[i]));
  });

  it('a ReadIndex read on a follower sees a write acknowledged by the leader', async () => {
    const written = await propose(members, put('c', { v: S('fresh') }));
    expect(written.applied).toBe(true);
    const follower = members.find((m) => m !== leader(members))!;
    await whilePumping(members, follower.host.readIndex(GROUP), 'a read index on a follower');
    const read = await follower.local.partitions.get({ table: TABLE, key: { pk: S('c') } });
    expect(read?.item).toEqual({ pk: S('c'), v: S('fresh') });
  });

  it('a replica restarted from disk does not apply its entries again: an ADD counter ends exact', async () => {
    for (let i = 1; i <= 10; i++) {
      const result = await propose(members, addToCounter('counter', i));
      expect(result.outcomes[0]).toMatchObject({ status: 'ok', newItem: { pk: S('counter'), n: N((i * (i + 1)) / 2) } });
    }
    await settledStores(members);
    // Restart every replica: each replays its whole log (no compaction), and must skip what it applied.
    const appliedBefore = members.map((m) => m.replica.appliedIndex());
    for (const m of members) await stopPartitionMember(network, m);
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    expect(members.map((m) => m.replica.appliedIndex())).toEqual(appliedBefore);
    for (let i = 11; i <= 15; i++) await propose(members, addToCounter('counter', i));
    const stores = await settledStores(members);
    for (const items of stores) {
      expect(items.find((item) => pkOf(item) === JSON.stringify(S('counter')))).toEqual({ pk: S('counter'), n: N(120) });
      expect(items).toEqual(stores[0]);
    }
  });

  it('backfills and drops an index on every replica through the log', async () => {
    const written = await propose(members, put('indexed', { v: S('findme') }));
    expect(written.applied).toBe(true);
    await pump(members, () => leader(members) !== undefined, 'a leader');
    await whilePumping(members, proposeIndexCommand(leader(members)!.host, GROUP, { kind: 'backfillIndex', table: INDEXED, indexName: 'byV' }), 'a backfill');
    await settledStores(members);
    // Followers applied the command and may still be running it.
    await Promise.all(members.map((m) => m.replica.indexCommandsRun()));
    const query = { table: INDEXED, indexName: 'byV', hashValue: S('findme'), forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const };
    for (const m of members) expect((await m.local.partitions.readRange(query)).items).toEqual([{ pk: S('indexed'), v: S('findme') }]);

    // An index the table does not have: refused alike everywhere, and the entry still counts as applied.
    const bogus = whilePumping(members, proposeIndexCommand(leader(members)!.host, GROUP, { kind: 'dropIndex', table: TABLE, indexName: 'byV' }), 'a bad drop');
    await expect(bogus).rejects.toThrow(DynamoDbError);
    await whilePumping(members, proposeIndexCommand(leader(members)!.host, GROUP, { kind: 'dropIndex', table: INDEXED, indexName: 'byV' }), 'a drop');
    await settledStores(members);
    await Promise.all(members.map((m) => m.replica.indexCommandsRun()));
    for (const m of members) expect((await m.local.partitions.readRange(query)).items).toEqual([]);
  });
});

describe('PartitionReplica over one node store', () => {
  it('keeps each group applied index, recorded even by a write whose condition failed, across a reopen', async () => {
    const dataDir = join(root, 'groups');
    let local = await openLocalStore({ dataDir });
    const first = await PartitionReplica.open(1, local.partitions);
    const second = await PartitionReplica.open(2, local.partitions);
    expect([first.appliedIndex(), second.appliedIndex()]).toEqual([0, 0]);
    expect(await first.apply(writeCommand(put('x', { v: S('1') })), 5)).toEqual({ applied: true, outcomes: [{ status: 'ok' }] });
    const failed = await second.apply(writeCommand(put('x', { v: S('2') }, 'attribute_not_exists(pk)')), 9);
    expect(failed).toEqual({ applied: false, outcomes: [{ status: 'conditionFailed', item: { pk: S('x'), v: S('1') } }] });
    await local.close();
    local = await openLocalStore({ dataDir });
    const reopened = await Promise.all([PartitionReplica.open(1, local.partitions), PartitionReplica.open(2, local.partitions)]);
    expect(reopened.map((replica) => replica.appliedIndex())).toEqual([5, 9]);
    expect(await allItemsOf(local)).toEqual([{ pk: S('x'), v: S('1') }]);
    await local.close();
  });

  it('refuses to encode a command too large to replicate, with a ValidationException (nothing proposed)', () => {
    const write = (bytes: number): PartitionCommand => ({ kind: 'write', write: { operations: [{ kind: 'Put', table: TABLE, key: { pk: { S: 'big' } }, item: { pk: { S: 'big' }, blob: { S: 'x'.repeat(bytes) } } }] } });
    expect(encodePartitionCommand(write(MAX_PARTITION_COMMAND_BYTES - 10_000)).length).toBeLessThanOrEqual(MAX_PARTITION_COMMAND_BYTES);
    let refused: unknown;
    try {
      encodePartitionCommand(write(MAX_PARTITION_COMMAND_BYTES));
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(DynamoDbError);
    expect(refused).toMatchObject({ type: 'ValidationException', message: expect.stringMatching(/too large to replicate: its log entry would be \d+ bytes, more than 8388608/) });
  });

  it('records a descriptor as its snapshot (the state is the store\'s), and refuses an entry that is not a partition write', async () => {
    const local = await openLocalStore({ inMemory: true });
    const empty = await PartitionReplica.open(3, local.partitions);
    const snapshot = await empty.snapshot();
    expect(() => empty.restore(snapshot)).not.toThrow();
    expect(() => empty.restore(new TextEncoder().encode('{"items":[]}'))).toThrow(PartitionSnapshotError);
    await expect(empty.apply(new TextEncoder().encode('not json'), 1)).rejects.toThrow(PartitionCommandError);
    await expect(empty.apply(new TextEncoder().encode('{"kind":"merge"}'), 1)).rejects.toThrow(/entry 1 is not a partition command \(unknown command "merge"\)/);
    // A bare PartitionWrite (no envelope) and envelopes missing their parts are not commands either.
    await expect(empty.apply(new TextEncoder().encode('{"operations":[]}'), 1)).rejects.toThrow(PartitionCommandError);
    await expect(empty.apply(new TextEncoder().encode('{"kind":"write"}'), 1)).rejects.toThrow(/a write without operations/);
    await expect(empty.apply(new TextEncoder().encode('{"kind":"backfillIndex","indexName":"x"}'), 1)).rejects.toThrow(/without its table/);
    expect(empty.appliedIndex()).toBe(0);
    await local.close();
  });
});

describe('PartitionReplicas of both partitions of a table over one node store', () => {
  const table: TableSchema = { name: 'split', tableId: 8, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
  const byV: IndexSchema = { ...BY_V, indexId: 9 };
  const indexed: TableSchema = { ...table, indexes: [byV] };
  const partitions = initialPartitions(table.tableId, 2, 21);
  const ownerOf = (pk: string) => partitions.find((p) => partitionContains(p, encodeItemKey(table.tableId, S(pk))))!;
  const pks = Array.from({ length: 40 }, (_, i) => `k${i}`);

  it('decodes what it encodes', () => {
    const command: PartitionCommand = { kind: 'backfillIndex', table: indexed, indexName: 'byV' };
    expect(decodePartitionCommand(1, 1, encodePartitionCommand(command))).toEqual(command);
  });

  it('runs index commands within its own partition’s bound only', async () => {
    const local = await openLocalStore({ inMemory: true });
    const replicas = await Promise.all(partitions.map((p) => PartitionReplica.open(p.id, local.partitions, { boundOf: () => partitionBound(p) })));
    const replicaOf = (pk: string) => replicas[partitions.indexOf(ownerOf(pk))];
    const next = new Map<PartitionReplica, number>(replicas.map((r) => [r, 1]));
    /** Applies the command as the group's next entry and waits until it ran. */
    const apply = async (replica: PartitionReplica, command: PartitionCommand) => {
      const index = next.get(replica)!;
      next.set(replica, index + 1);
      const result = await replica.apply(encodePartitionCommand(command), index);
      if ('status' in result && result.status === 'started') await result.done;
      return result;
    };
    for (const pk of pks) {
      const write: PartitionWrite = { operations: [{ table, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S('same') } }] };
      await apply(replicaOf(pk), { kind: 'write', write });
    }
    const [one, two] = replicas;
    const mine = (replica: PartitionReplica) => pks.filter((pk) => replicaOf(pk) === replica);
    expect(mine(one).length).toBeGreaterThan(0);
    expect(mine(two).length).toBeGreaterThan(0);

    const query = { table: indexed, indexName: 'byV', hashValue: S('same'), forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const };
    const indexedKeys = async () => (await local.partitions.readRange(query)).items.map((item) => (item.pk as { S: string }).S).sort();
    expect(await apply(one, { kind: 'backfillIndex', table: indexed, indexName: 'byV' })).toMatchObject({ status: 'started' });
    expect(await indexedKeys()).toEqual(mine(one).sort());
    await apply(two, { kind: 'backfillIndex', table: indexed, indexName: 'byV' });
    expect(await indexedKeys()).toEqual([...pks].sort());
    await apply(one, { kind: 'dropIndex', table: indexed, indexName: 'byV' });
    expect(await indexedKeys()).toEqual(mine(two).sort());
    expect(await apply(two, { kind: 'dropIndex', table, indexName: 'byV' })).toEqual({
      status: 'invalid',
      message: 'The table does not have the specified index: byV',
    });
    // Each group's applied index moved with its own commands, recorded in the store.
    expect(await Promise.all(replicas.map((r) => local.partitions.appliedIndex(r.groupId)))).toEqual(replicas.map((r) => next.get(r)! - 1));
    await local.close();
  });
});

describe('an index command interrupted by a restart', () => {
  it('runs again from the start when its replica opens, and is forgotten once it ran', async () => {
    const table: TableSchema = { name: 'big', tableId: 12, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const indexed: TableSchema = { ...table, indexes: [{ ...BY_V, indexId: 13 }] };
    const [partition] = initialPartitions(table.tableId, 2, 41);
    const options = { boundOf: () => partitionBound(partition) };
    const dataDir = join(root, 'node');
    let local = await openLocalStore({ dataDir });
    const pks = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    for (let i = 0; i < pks.length; i += 250) {
      await Promise.all(pks.slice(i, i + 250).map((pk) => local.partitions.write({ operations: [{ table, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), v: S('same') } }] })));
    }
    const replica = await PartitionReplica.open(partition.id, local.partitions, options);
    // A whole-table backfill walks first (many chunks): the command waits for its turn behind it...
    const walking = local.partitions.backfillIndex(indexed, 'byV');
    const result = await replica.apply(encodePartitionCommand({ kind: 'backfillIndex', table: indexed, indexName: 'byV' }), 1);
    expect(result).toMatchObject({ status: 'started' });
    // ...and the store closes before it ran.
    await local.close();
    await expect(walking).rejects.toThrow(/closed/);
    if ('done' in result) await expect(result.done).rejects.toThrow(/closed/);

    local = await openLocalStore({ dataDir });
    const reopened = await PartitionReplica.open(partition.id, local.partitions, options);
    expect(reopened.appliedIndex()).toBe(1);
    // The replica resumed it at open.
    await reopened.indexCommandsRun();
    const query = { table: indexed, indexName: 'byV', hashValue: S('same'), forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES' as const };
    const entries = (await local.partitions.readRange(query, undefined, partitionBound(partition))).items.map((item) => (item.pk as { S: string }).S);
    expect(entries.sort()).toEqual(pks.filter((pk) => partitionContains(partition, encodeItemKey(table.tableId, S(pk)))).sort());
    expect(await local.partitions.resumeIndexCommands(partition.id)).toEqual([]);
    await local.close();
  });
});
