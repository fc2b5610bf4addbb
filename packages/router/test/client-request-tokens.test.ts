import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateTableCommand,
  DeleteItemCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import type { TableSchema, WriteOperation } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalJson,
  claimOperation,
  claimState,
  CLIENT_TOKEN_TABLE,
  clientTokenTable,
  isHiddenTable,
  requestDigest,
  TOKEN_LIFETIME_MS,
} from '../src/client-request-tokens.ts';
import { startRouter } from '../src/index.ts';
import { startTtlSweeper } from '../src/ttl.ts';

/**
 * The claim of a ClientRequestToken over a real store: the record a transaction writes with its own
 * operations, what a later claim reads from it, and its end by the TTL sweeper.
 */

let store: LocalStore;
let clock = Date.UTC(2026, 0, 1);
const now = (): number => clock;
let tokens: TableSchema;
let counters: TableSchema;

beforeAll(async () => {
  store = await openLocalStore({ inMemory: true });
  // Concurrent first uses create the table once.
  const [first, second] = await Promise.all([clientTokenTable(store.catalog, now), clientTokenTable(store.catalog, now)]);
  expect(second).toEqual(first);
  tokens = first;
  counters = { name: 'counters', tableId: await store.catalog.allocateSpaceId(), hashKey: { name: 'id', type: 'S' }, indexes: [] };
});

afterAll(async () => {
  await store?.close();
});

function addOne(id: string): WriteOperation {
  return { table: counters, kind: 'Update', key: { id: { S: id } }, expressions: { update: 'ADD hits :one', values: { ':one': { N: '1' } } } };
}

/** One transaction: the claim first, then the counter's update, as TransactWriteItems sends them. */
async function claimAndAdd(token: string, digest: string, id: string): Promise<string> {
  const result = await store.partitions.write({ operations: [claimOperation(tokens, token, digest, now()), addOne(id)] });
  return claimState(result.outcomes[0], digest);
}

async function hits(id: string): Promise<string | undefined> {
  const found = await store.partitions.get({ table: counters, key: { id: { S: id } } }, { consistent: true });
  const value = found?.item.hits;
  return value !== undefined && 'N' in value ? value.N : undefined;
}

async function claimOf(token: string): Promise<Record<string, unknown> | undefined> {
  return (await store.partitions.get({ table: tokens, key: { token: { S: token } } }, { consistent: true }))?.item;
}

describe('the token table', () => {
  it('is a hidden table with TTL on the claims expiry, keyed by the token', async () => {
    const record = await store.catalog.get(CLIENT_TOKEN_TABLE);
    expect(record?.ttl).toEqual({ attributeName: 'expiresAt', enabled: true });
    expect(record?.schema.hashKey).toEqual({ name: 'token', type: 'S' });
    expect(isHiddenTable(CLIENT_TOKEN_TABLE)).toBe(true);
    expect(isHiddenTable('counters')).toBe(false);
    // A later use finds it.
    expect(await clientTokenTable(store.catalog, now)).toEqual(tokens);
  });
});

describe('request digests', () => {
  it('are equal for equal requests whatever the order of their keys, and differ otherwise', () => {
    expect(canonicalJson({ b: [1, { y: 2, x: 'a' }], a: null })).toBe('{"a":null,"b":[1,{"x":"a","y":2}]}');
    const request = { TransactItems: [{ Update: { TableName: 't', Key: { id: { S: 'a' } } } }], ReturnConsumedCapacity: 'TOTAL' };
    const reordered = { ReturnConsumedCapacity: 'TOTAL', TransactItems: [{ Update: { Key: { id: { S: 'a' } }, TableName: 't' } }] };
    expect(requestDigest(reordered)).toBe(requestDigest(request));
    expect(requestDigest({ ...request, ReturnConsumedCapacity: 'NONE' })).not.toBe(requestDigest(request));
    expect(requestDigest(request)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('claims', () => {
  it('are written with the transaction, once: the same request again is a replay, another a mismatch', async () => {
    expect(await claimAndAdd('t1', 'digest-a', 'c1')).toBe('claimed');
    expect(await claimOf('t1')).toEqual({ token: { S: 't1' }, request: { S: 'digest-a' }, expiresAt: { N: String((clock + TOKEN_LIFETIME_MS) / 1000) } });
    clock += TOKEN_LIFETIME_MS - 1;
    expect(await claimAndAdd('t1', 'digest-a', 'c1')).toBe('replay');
    expect(await claimAndAdd('t1', 'digest-b', 'c1')).toBe('mismatch');
    expect(await hits('c1')).toBe('1');
  });

  it('are not written when the transaction is refused', async () => {
    const refusing: WriteOperation = { ...addOne('c2'), expressions: { ...addOne('c2').expressions, condition: 'attribute_exists(id)' } };
    const result = await store.partitions.write({ operations: [claimOperation(tokens, 't2', 'digest-a', now()), refusing] });
    expect(result.applied).toBe(false);
    expect(claimState(result.outcomes[0], 'digest-a')).toBe('claimed');
    expect(await claimOf('t2')).toBeUndefined();
    // So the token is free for the next try.
    expect(await claimAndAdd('t2', 'digest-b', 'c2')).toBe('claimed');
    expect(await hits('c2')).toBe('1');
  });

  it('held by a transaction in flight refuse another claim of the token as in progress', async () => {
    const transaction = { id: 'in-flight', coordinator: 1, deadline: clock + 60_000 };
    const prepared = await store.partitions.prepareTransaction(transaction, { operations: [claimOperation(tokens, 't3', 'digest-a', now()), addOne('c3')] });
    expect(prepared.applied).toBe(true);
    const result = await store.partitions.write({ operations: [claimOperation(tokens, 't3', 'digest-a', now()), addOne('c3')] });
    expect(claimState(result.outcomes[0], 'digest-a')).toBe('inProgress');
    await store.partitions.resolveTransaction('in-flight', true, undefined);
    expect(await claimAndAdd('t3', 'digest-a', 'c3')).toBe('replay');
    expect(await hits('c3')).toBe('1');
  });

  it('expire after 10 minutes: a new request takes the token, and the TTL sweeper deletes the expired claims', async () => {
    const sweeper = startTtlSweeper({ catalog: store.catalog, partitions: store.partitions, now, intervalMs: 0 });
    try {
      const start = clock;
      expect(await claimAndAdd('t4', 'digest-a', 'c4')).toBe('claimed');
      clock = start + TOKEN_LIFETIME_MS + 1;
      expect(await claimAndAdd('t4', 'digest-b', 'c4')).toBe('claimed');
      expect(await hits('c4')).toBe('2');
      expect(await claimOf('t4')).toMatchObject({ request: { S: 'digest-b' } });
      // The claims made before `start` (t1, t2, t3) are expired now; t4's second claim is not.
      expect(await sweeper.sweepOnce()).toBe(3);
      for (const token of ['t1', 't2', 't3']) expect(await claimOf(token)).toBeUndefined();
      expect(await claimOf('t4')).toBeDefined();
      clock += TOKEN_LIFETIME_MS + 1;
      expect(await sweeper.sweepOnce()).toBe(1);
      expect(await claimOf('t4')).toBeUndefined();
    } finally {
      await sweeper.stop();
    }
  });

  it('refused as invalid are a bug, not an answer', () => {
    expect(() => claimState({ status: 'invalid', message: 'bad' }, 'digest-a')).toThrow(/refused: bad/);
  });
});

describe('the one-process engine (shoal dev --single)', () => {
  /** A router over a store in `dataDir` (in memory without one), as `shoal dev --single` starts them, with an SDK client. */
  async function withEngine(dataDir: string | undefined, body: (client: DynamoDBClient) => Promise<void>): Promise<void> {
    const local = await openLocalStore(dataDir === undefined ? { inMemory: true } : { dataDir });
    try {
      const router = await startRouter({ partitions: local.partitions, catalog: local.catalog, port: 0, ttlSweepIntervalMs: 0 });
      const client = new DynamoDBClient({
        endpoint: `http://127.0.0.1:${router.port}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'shoal', secretAccessKey: 'shoal' },
        maxAttempts: 1,
      });
      try {
        await body(client);
      } finally {
        client.destroy();
        await router.close();
      }
    } finally {
      await local.close();
    }
  }

  const increment = (by: number) =>
    new TransactWriteItemsCommand({
      ClientRequestToken: 'restart-token',
      TransactItems: [{ Update: { TableName: 'counters', Key: { id: { S: 'r' } }, UpdateExpression: 'ADD hits :by', ExpressionAttributeValues: { ':by': { N: String(by) } } } }],
    });
  const hitsOf = async (client: DynamoDBClient): Promise<unknown> =>
    (await client.send(new GetItemCommand({ TableName: 'counters', Key: { id: { S: 'r' } }, ConsistentRead: true }))).Item?.hits;

  const createCounters = (client: DynamoDBClient) =>
    client.send(
      new CreateTableCommand({
        TableName: 'counters',
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );

  it('answers a repeated call with the read capacity of its items, the first with the write capacity', async () => {
    await withEngine(undefined, async (client) => {
      await createCounters(client);
      const put = new TransactWriteItemsCommand({
        ClientRequestToken: 'capacity-token',
        ReturnConsumedCapacity: 'TOTAL',
        TransactItems: [{ Put: { TableName: 'counters', Item: { id: { S: 'big' }, text: { S: 'x'.repeat(3_000) } } } }],
      });
      // 3 KB: three write units, one read unit, each doubled in a transaction.
      expect((await client.send(put)).ConsumedCapacity).toEqual([{ TableName: 'counters', CapacityUnits: 6 }]);
      expect((await client.send(put)).ConsumedCapacity).toEqual([{ TableName: 'counters', CapacityUnits: 2 }]);
    });
  });

  it('keeps the token table out of every client request', async () => {
    await withEngine(undefined, async (client) => {
      await createCounters(client);
      await client.send(increment(1));
      expect((await client.send(new ListTablesCommand({}))).TableNames).toEqual(['counters']);
      const key = { token: { S: 'restart-token' } };
      const requests: Array<() => Promise<unknown>> = [
        () => client.send(new GetItemCommand({ TableName: CLIENT_TOKEN_TABLE, Key: key })),
        () => client.send(new DeleteItemCommand({ TableName: CLIENT_TOKEN_TABLE, Key: key })),
        () => client.send(new DescribeTableCommand({ TableName: CLIENT_TOKEN_TABLE })),
        () => client.send(new DeleteTableCommand({ TableName: CLIENT_TOKEN_TABLE })),
      ];
      for (const request of requests) await expect(request()).rejects.toMatchObject({ name: 'ValidationException' });
      // So the claim stands: the same request is still answered as done.
      await client.send(increment(1));
      expect(await hitsOf(client)).toEqual({ N: '1' });
    });
  });

  it('knows a token after a restart of its store', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'shoal-tokens-'));
    try {
      await withEngine(dataDir, async (client) => {
        await createCounters(client);
        await client.send(increment(1));
      });
      await withEngine(dataDir, async (client) => {
        await client.send(increment(1));
        await expect(client.send(increment(2))).rejects.toMatchObject({ name: 'IdempotentParameterMismatchException' });
        expect(await hitsOf(client)).toEqual({ N: '1' });
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
