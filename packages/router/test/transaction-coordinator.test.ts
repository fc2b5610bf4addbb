import { create } from '@bufbuild/protobuf';
import { encodeItemKey, initialPartitions, type Item, type PartitionDescriptor, type TableSchema, type WriteOperation } from '@shoal/model';
import {
  beginTransactionRequestFromWire,
  decideTransactionRequestFromWire,
  forgetTransactionRequestFromWire,
  ForgetTransactionResponseSchema,
  prepareTransactionRequestFromWire,
  resolveTransactionRequestFromWire,
  ResolveTransactionResponseSchema,
  transactionStateToWire,
  writeResultToWire,
  type BeginTransactionRequest,
  type ClientOf,
  type DecideTransactionRequest,
  type ForgetTransactionRequest,
  type PartitionService,
  type PrepareTransactionRequest,
  type ResolveTransactionRequest,
} from '@shoal/proto';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimOperation, claimState, CLIENT_TOKEN_TABLE } from '../src/client-request-tokens.ts';
import { TransactionCoordinator, type PartitionCall } from '../src/cluster/transactions.ts';

/**
 * The coordinator of a transaction that claims a ClientRequestToken, over partitions each served by
 * a real store (the commands a partition's log would apply, called directly): the claim's partition
 * is prepared first, whatever its id, and a refused claim stops the prepare there.
 */

const counters: TableSchema = { name: 'counters', tableId: 10, hashKey: { name: 'id', type: 'S' }, indexes: [] };
const tokens: TableSchema = { name: CLIENT_TOKEN_TABLE, tableId: 20, hashKey: { name: 'token', type: 'S' }, indexes: [] };
/** The counters' two partitions (ids 1 and 2), and the token table's one, with the highest id (3). */
const [low, high] = initialPartitions(counters.tableId, 2, 1);
const [claims] = initialPartitions(tokens.tableId, 1, 3);
const partitions: PartitionDescriptor[] = [low, high, claims];

type PartitionRpc = ClientOf<typeof PartitionService>;

const stores = new Map<number, LocalStore>();
/** Every prepare, in the order it was asked: the partition id. */
let prepared: number[] = [];

/** A partition's commands, applied to its own store. */
function rpcOf(): PartitionRpc {
  const storeOf = (partitionId: bigint) => (stores.get(Number(partitionId)) as LocalStore).partitions;
  const served = {
    beginTransaction: async (request: BeginTransactionRequest) => {
      const { target, transaction, participants } = beginTransactionRequestFromWire(request);
      const record = await storeOf(target.partitionId).beginTransaction({ id: transaction.id, state: 'PENDING', participants, deadline: transaction.deadline });
      return transactionStateToWire(record.state);
    },
    prepareTransaction: async (request: PrepareTransactionRequest) => {
      const { target, transaction, write } = prepareTransactionRequestFromWire(request);
      prepared.push(Number(target.partitionId));
      return writeResultToWire(await storeOf(target.partitionId).prepareTransaction(transaction, write));
    },
    decideTransaction: async (request: DecideTransactionRequest) => {
      const { target, id, decision } = decideTransactionRequestFromWire(request);
      return transactionStateToWire(await storeOf(target.partitionId).decideTransaction(id, decision));
    },
    resolveTransaction: async (request: ResolveTransactionRequest) => {
      const { target, id, commit } = resolveTransactionRequestFromWire(request);
      return create(ResolveTransactionResponseSchema, await storeOf(target.partitionId).resolveTransaction(id, commit, undefined));
    },
    forgetTransaction: async (request: ForgetTransactionRequest) => {
      const { target, id } = forgetTransactionRequestFromWire(request);
      await storeOf(target.partitionId).forgetTransaction(id);
      return create(ForgetTransactionResponseSchema, {});
    },
  };
  // The coordinator calls these five only, always with whole messages.
  return served as unknown as PartitionRpc;
}

const call: PartitionCall = (_mode, locate, send) => {
  const partition = locate();
  if (partition === undefined) throw new Error('no partition located');
  return send(rpcOf(), { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, {});
};

function coordinator(afterPrepare?: (transactionId: string) => Promise<void>): TransactionCoordinator {
  return new TransactionCoordinator(call, (id) => partitions.find((partition) => partition.id === id), { faults: { afterPrepare } });
}

/** Ids whose counter items fall in the low and in the high partition. */
let lowId: string;
let highId: string;

beforeAll(async () => {
  for (const partition of partitions) stores.set(partition.id, await openLocalStore({ inMemory: true }));
  const inPartition = (partition: PartitionDescriptor): string => {
    for (let i = 0; i < 1_000; i++) {
      const { startKey, endKey } = partition;
      const key = encodeCounterKey(`c${i}`);
      if (Buffer.compare(key, startKey) >= 0 && Buffer.compare(key, endKey) < 0) return `c${i}`;
    }
    throw new Error('no id found in the partition');
  };
  lowId = inPartition(low);
  highId = inPartition(high);
});

afterAll(async () => {
  for (const store of stores.values()) await store.close();
});

function encodeCounterKey(id: string): Buffer {
  return Buffer.from(encodeItemKey(counters.tableId, { S: id }));
}

function addOne(id: string): WriteOperation {
  return { table: counters, kind: 'Update', key: { id: { S: id } }, expressions: { update: 'ADD hits :one', values: { ':one': { N: '1' } } } };
}

/** The claim of `token` and an increment of a counter in each counter partition, positioned as the cluster client would. */
function tokenTransaction(token: string, digest: string): { operations: WriteOperation[]; positions: Map<number, number[]> } {
  const operations = [claimOperation(tokens, token, digest, Date.now()), addOne(lowId), addOne(highId)];
  return { operations, positions: new Map([[claims.id, [0]], [low.id, [1]], [high.id, [2]]]) };
}

async function hitsOf(id: string, partition: PartitionDescriptor): Promise<Item | undefined> {
  return (await (stores.get(partition.id) as LocalStore).partitions.get({ table: counters, key: { id: { S: id } } }, { consistent: true }))?.item;
}

describe('a transaction claiming a ClientRequestToken', () => {
  it('prepares the claim partition first, then the others in id order', async () => {
    prepared = [];
    const { operations, positions } = tokenTransaction('t1', 'digest-a');
    const result = await coordinator().run({ operations }, positions);
    expect(result.applied).toBe(true);
    expect(prepared).toEqual([claims.id, low.id, high.id]);
    expect(await hitsOf(lowId, low)).toMatchObject({ hits: { N: '1' } });
    expect(await hitsOf(highId, high)).toMatchObject({ hits: { N: '1' } });
  });

  it('stops at a refused claim: the other partitions are not asked, nothing applied again', async () => {
    prepared = [];
    const { operations, positions } = tokenTransaction('t1', 'digest-a');
    const result = await coordinator().run({ operations }, positions);
    expect(result.applied).toBe(false);
    expect(prepared).toEqual([claims.id]);
    expect(claimState(result.outcomes[0], 'digest-a')).toBe('replay');
    expect(claimState(result.outcomes[0], 'digest-b')).toBe('mismatch');
    expect(await hitsOf(lowId, low)).toMatchObject({ hits: { N: '1' } });
  });

  it('meets the claim of a transaction in flight before any of its items: in progress', async () => {
    let release!: () => void;
    const gate = new Promise<void>((done) => (release = done));
    let reached!: () => void;
    const held = new Promise<void>((done) => (reached = done));
    const { operations, positions } = tokenTransaction('t2', 'digest-a');
    const first = coordinator(async () => {
      reached();
      await gate;
    }).run({ operations }, positions);
    await held;
    prepared = [];
    const retry = await coordinator().run({ operations }, positions);
    expect(prepared).toEqual([claims.id]);
    expect(claimState(retry.outcomes[0], 'digest-a')).toBe('inProgress');
    release();
    expect((await first).applied).toBe(true);
    expect(await hitsOf(lowId, low)).toMatchObject({ hits: { N: '2' } });
  });

  it('reports the claim as not refused when another party aborted the transaction (its items conflicted)', async () => {
    const { operations, positions } = tokenTransaction('t3', 'digest-a');
    // A resolver aborts it once it is prepared (its deadline past).
    const result = await coordinator(async (transactionId) => {
      await (stores.get(claims.id) as LocalStore).partitions.decideTransaction(transactionId, 'ABORTED');
    }).run({ operations }, positions);
    expect(result.applied).toBe(false);
    expect(result.outcomes.map((outcome) => outcome.status)).toEqual(['ok', 'transactionConflict', 'transactionConflict']);
    expect(claimState(result.outcomes[0], 'digest-a')).toBe('claimed');
    // The token is free: its next try claims it.
    prepared = [];
    expect((await coordinator().run({ operations }, positions)).applied).toBe(true);
    expect(await hitsOf(lowId, low)).toMatchObject({ hits: { N: '3' } });
  });
});
