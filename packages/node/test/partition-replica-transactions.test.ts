import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type AttributeValue, type Item, type PartitionDescriptor, type PartitionWrite, type TableSchema } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import {
  PartitionReplica,
  TransactionResolver,
  decodePartitionCommand,
  encodePartitionCommand,
  proposeBeginTransaction,
  proposeDecideTransaction,
  proposePartitionWrite,
  proposePrepareTransaction,
  proposeResolveTransaction,
  PartitionCommandError,
} from '@shoal/node';
import { agreedLeader, pump, whilePumping } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';
import { startPartitionMember, stopPartitionMember, type PartitionMember } from './fixtures/partition-member.ts';

/**
 * The transaction commands over Raft: three hosts, each with one LocalStore holding the replicas of
 * two partitions (groups 7 and 8, one table each). Every replica applies prepare, decide and resolve
 * alike; a resolver on a partition's leader ends an expired transaction without its coordinator.
 */

const NODES: NodeId[] = [1, 2, 3];
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const ACCOUNTS: TableSchema = { name: 'accounts', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const LEDGER: TableSchema = { name: 'ledger', tableId: 6, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const member = (nodeId: number) => ({ nodeId, role: 'voter' as const });
const PARTITIONS: PartitionDescriptor[] = [
  { ...initialPartitions(ACCOUNTS.tableId, 1, 7)[0], replicas: NODES.map(member) },
  { ...initialPartitions(LEDGER.tableId, 1, 8)[0], replicas: NODES.map(member) },
];
const [ACCOUNTS_PARTITION, LEDGER_PARTITION] = PARTITIONS;

type Member = PartitionMember & { replicas: Map<number, PartitionReplica> };

/** A member with a replica of each partition, over its one store. */
const startMember = (network: MemoryNetwork, nodeId: NodeId, dir: string): Promise<Member> =>
  startPartitionMember(network, nodeId, dir, {
    seed: 17,
    open: async (local) => {
      const replicas = new Map<number, PartitionReplica>();
      for (const partition of PARTITIONS) replicas.set(partition.id, await PartitionReplica.open(partition.id, local.partitions));
      return { replicas };
    },
    stateMachineOf: ({ replicas }, groupId) => {
      const replica = replicas.get(groupId);
      if (replica === undefined) throw new Error(`unexpected group ${groupId}`);
      return replica;
    },
  });

const put = (table: TableSchema, pk: string, item: Item): PartitionWrite => ({
  operations: [{ table, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), ...item } }],
});

describe('transaction commands over Raft', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];

  const leaderOf = (groupId: number): Member => {
    const found = agreedLeader(members, groupId);
    if (found === undefined) throw new Error(`no leader of ${groupId}`);
    return found;
  };
  const run = <T>(work: Promise<T>, what: string): Promise<T> => whilePumping(members, work, what);
  const getOn = async (m: Member, table: TableSchema, pk: string): Promise<Item | undefined> => (await m.local.partitions.get({ table, key: { pk: S(pk) } }))?.item;
  /** Pumps until every replica of both groups applied what its leader committed. */
  const settled = async (): Promise<void> => {
    const caughtUp = (): boolean =>
      PARTITIONS.every(({ id }) => {
        const commit = Math.max(...members.map((m) => m.host.status().find((g) => g.groupId === id)?.commit ?? 0));
        return members.every((m) => m.replicas.get(id)!.appliedIndex() >= commit);
      });
    await pump(members, caughtUp, 'replicas applying');
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-partition-txn-'));
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) for (const { id } of PARTITIONS) await m.host.createGroup(id, NODES);
    await pump(members, () => PARTITIONS.every(({ id }) => agreedLeader(members, id) !== undefined), 'leaders');
  });

  afterAll(async () => {
    for (const m of members) await stopPartitionMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('prepares, commits and resolves a transaction over two groups identically on every replica', async () => {
    const transaction = { id: 'a1', coordinator: ACCOUNTS_PARTITION.id, deadline: Date.now() + 60_000 };
    const begun = await run(proposeBeginTransaction(leaderOf(7).host, 7, { id: 'a1', state: 'PENDING', participants: [7, 8], deadline: transaction.deadline }), 'begin');
    expect(begun.state).toBe('PENDING');
    const prepared = await Promise.all([
      run(proposePrepareTransaction(leaderOf(7).host, 7, transaction, put(ACCOUNTS, 'x', { n: N(1) })), 'prepare 7'),
      run(proposePrepareTransaction(leaderOf(8).host, 8, transaction, put(LEDGER, 'x', { n: N(2) })), 'prepare 8'),
    ]);
    expect(prepared.map((result) => result.applied)).toEqual([true, true]);
    // A plain write of a prepared item meets the intent on the leader, as it would on any replica.
    const blocked = await run(proposePartitionWrite(leaderOf(8).host, 8, put(LEDGER, 'x', { n: N(9) })), 'a plain write');
    expect(blocked.outcomes).toEqual([{ status: 'transactionConflict' }]);

    expect(await run(proposeDecideTransaction(leaderOf(7).host, 7, 'a1', 'COMMITTED'), 'commit')).toBe('COMMITTED');
    expect(await run(proposeResolveTransaction(leaderOf(7).host, ACCOUNTS_PARTITION, 'a1', true), 'resolve 7')).toEqual({ intents: 1, wounded: 0 });
    expect(await run(proposeResolveTransaction(leaderOf(8).host, LEDGER_PARTITION, 'a1', true), 'resolve 8')).toEqual({ intents: 1, wounded: 0 });
    await settled();
    for (const m of members) {
      expect(await getOn(m, ACCOUNTS, 'x')).toEqual({ pk: S('x'), n: N(1) });
      expect(await getOn(m, LEDGER, 'x')).toEqual({ pk: S('x'), n: N(2) });
      expect(await m.local.partitions.transactionsWithIntents()).toEqual([]);
      expect((await m.local.partitions.transactionRecord('a1'))?.state).toBe('COMMITTED');
    }
  });

  it('a resolver on the leader aborts an expired PENDING transaction and releases its intents, on every replica', async () => {
    const deadline = Date.now() + 60_000;
    const transaction = { id: 'b2', coordinator: ACCOUNTS_PARTITION.id, deadline };
    await run(proposeBeginTransaction(leaderOf(7).host, 7, { id: 'b2', state: 'PENDING', participants: [7], deadline }), 'begin');
    await run(proposePrepareTransaction(leaderOf(7).host, 7, transaction, put(ACCOUNTS, 'y', { n: N(1) })), 'prepare');
    await settled();

    const resolverAt = (now: number, m: Member) =>
      new TransactionResolver({
        store: m.local.partitions,
        host: m.host,
        partitions: () => PARTITIONS,
        descriptorOf: (id) => PARTITIONS.find((partition) => partition.id === id),
        nodeAddress: () => undefined,
        now: () => now,
      });
    // Before the deadline nothing is resolved.
    const early = resolverAt(deadline - 1, leaderOf(7));
    expect(await run(early.resolveExpired(), 'an early pass')).toBe(0);
    await early.close();
    // A follower resolves nothing: only a partition's leader proposes.
    const follower = members.find((m) => m !== leaderOf(7))!;
    const onFollower = resolverAt(deadline + 1, follower);
    expect(await run(onFollower.resolveExpired(), 'a pass on a follower')).toBe(0);
    await onFollower.close();

    const late = resolverAt(deadline + 1, leaderOf(7));
    expect(await run(late.resolveExpired(), 'a late pass')).toBe(1);
    await late.close();
    await settled();
    for (const m of members) {
      expect(await getOn(m, ACCOUNTS, 'y')).toBeUndefined();
      expect(await m.local.partitions.transactionsWithIntents()).toEqual([]);
      expect((await m.local.partitions.transactionRecord('b2'))?.state).toBe('ABORTED');
    }
    // The item takes writes again.
    expect((await run(proposePartitionWrite(leaderOf(7).host, 7, put(ACCOUNTS, 'y', { n: N(5) })), 'a write')).applied).toBe(true);
  });

  it('a resolver releases the expired reads of a read-only transaction without its coordinator', async () => {
    const deadline = Date.now() + 60_000;
    const reader = { id: 'c3', coordinator: ACCOUNTS_PARTITION.id, deadline, readOnly: true };
    const check: PartitionWrite = { operations: [{ table: LEDGER, kind: 'ConditionCheck', key: { pk: S('x') } }] };
    expect((await run(proposePrepareTransaction(leaderOf(8).host, 8, reader, check), 'a read')).applied).toBe(true);
    await settled();
    const resolver = new TransactionResolver({
      store: leaderOf(8).local.partitions,
      host: leaderOf(8).host,
      partitions: () => PARTITIONS,
      // No coordinator to reach: a read-only transaction has no record to ask for.
      descriptorOf: () => undefined,
      nodeAddress: () => undefined,
      now: () => deadline + 1,
    });
    expect(await run(resolver.resolveExpired(), 'a late pass')).toBe(1);
    await resolver.close();
    await settled();
    for (const m of members) expect(await m.local.partitions.transactionsWithIntents()).toEqual([]);
  });

  it('refuses a transaction command without the fields a replica relies on', () => {
    const bad = encodePartitionCommand({ kind: 'resolveTransaction', transactionId: 'c3', commit: true } as never);
    expect(() => decodePartitionCommand(7, 1, bad)).toThrow(PartitionCommandError);
    expect(() => decodePartitionCommand(7, 1, encodePartitionCommand({ kind: 'beginTransaction' } as never))).toThrow(/begin without its record/);
  });
});
