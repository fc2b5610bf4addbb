import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteItemsCommand,
  UpdateTableCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { PartitionMap, type Item } from '@shoal/model';
import type { ClusterBackend } from '../src/index.ts';
import { eventually } from './support/eventually.ts';
import { withOwnClusterClient } from './support/own-cluster-client.ts';
import { startRoutedCluster, type RoutedCluster } from './support/routed-cluster.ts';

/**
 * End to end: three storage nodes (startStorageNode) as child processes, connectCluster and
 * startRouter in this process, the AWS SDK as the client.
 */

const NODE_IDS = [1, 2, 3];
const PARTITIONS = 4;

let cluster: RoutedCluster | undefined;
let metaAddresses: string[] = [];
let backend: ClusterBackend;
let client: DynamoDBClient;

const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

/** Every page of a Query or Scan, following LastEvaluatedKey (bounded). */
async function allPages(send: (startKey: Record<string, AttributeValue> | undefined) => Promise<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>) {
  const items: Record<string, AttributeValue>[] = [];
  let pages = 0;
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await send(startKey);
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
    pages++;
  } while (startKey !== undefined && pages < 1_000);
  return { items, pages };
}

beforeAll(async () => {
  cluster = await startRoutedCluster(NODE_IDS, 'e2e', { initialPartitions: PARTITIONS, maxAttempts: 3 });
  ({ metaAddresses, backend, client } = cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
}, 60_000);

/** The table of the page and DeleteTable tests (a hash key only). */
const createBlobsTable = () =>
  client.send(
    new CreateTableCommand({
      TableName: 'blobs',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );

describe('the DynamoDB API over a three-node cluster', () => {
  const ITEMS = 120;
  const COLLECTIONS = 30;

  it('creates a table with four partitions and serves put, get, query, scan and a GSI across partitions', { timeout: 120_000 }, async () => {
    await client.send(
      new CreateTableCommand({
        TableName: 'orders',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'N' },
          { AttributeName: 'status', AttributeType: 'S' },
          { AttributeName: 'at', AttributeType: 'N' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byStatus',
            KeySchema: [
              { AttributeName: 'status', KeyType: 'HASH' },
              { AttributeName: 'at', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const record = await backend.catalog.get('orders');
    expect(record).toBeDefined();
    expect(backend.metrics().partitions).toBeGreaterThanOrEqual(PARTITIONS);

    // Twelve writes at a time: the partitions' leaders commit them in shared rounds.
    for (let first = 0; first < ITEMS; first += 12) {
      await Promise.all(
        Array.from({ length: 12 }, (_, offset) => first + offset).map((i) =>
          client.send(
            new PutItemCommand({
              TableName: 'orders',
              Item: { pk: S(`customer-${i % COLLECTIONS}`), sk: N(i), status: S(i % 3 === 0 ? 'open' : 'closed'), at: N(1_000 - i), body: S('x'.repeat(100)) },
            }),
          ),
        ),
      );
    }

    // Every put went in a call to a node, alone or coalesced, and the router's metrics count them.
    const sent = backend.metrics();
    expect(sent.coalescedWritesTotal + sent.singleWriteCallsTotal).toBeGreaterThanOrEqual(ITEMS);

    const got = await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S('customer-7'), sk: N(37) }, ConsistentRead: true }));
    expect(got.Item?.at).toEqual(N(963));
    const eventual = await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S('customer-7'), sk: N(7) } }));
    await eventually('an eventual read sees the item', async () =>
      eventual.Item !== undefined || (await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S('customer-7'), sk: N(7) } }))).Item !== undefined,
    );

    const query = await client.send(new QueryCommand({ TableName: 'orders', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': S('customer-3') }, ConsistentRead: true, ScanIndexForward: false }));
    expect(query.Items?.map((item) => Number(item.sk.N))).toEqual([123, 93, 63, 33, 3].filter((sk) => sk < ITEMS));

    // Scan, paged by Limit across the four partitions: every item once.
    const scanned = await allPages((startKey) => client.send(new ScanCommand({ TableName: 'orders', Limit: 7, ConsistentRead: true, ExclusiveStartKey: startKey })));
    expect(scanned.items).toHaveLength(ITEMS);
    expect(new Set(scanned.items.map((item) => `${item.pk.S}/${item.sk.N}`)).size).toBe(ITEMS);
    expect(scanned.pages).toBeGreaterThanOrEqual(ITEMS / 7);

    // Parallel scan: the segments together are the table.
    const segments = await Promise.all([0, 1, 2].map((segment) => allPages((startKey) => client.send(new ScanCommand({ TableName: 'orders', Segment: segment, TotalSegments: 3, Limit: 11, ConsistentRead: true, ExclusiveStartKey: startKey })))));
    expect(segments.reduce((sum, segment) => sum + segment.items.length, 0)).toBe(ITEMS);

    // GSI: its own partitions (kept from the table partitions' outboxes: eventually), in index key order, paged.
    const open = await eventuallyValue(async () => {
      const page = await allPages((startKey) => client.send(new QueryCommand({ TableName: 'orders', IndexName: 'byStatus', KeyConditionExpression: '#s = :s', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':s': S('open') }, Limit: 6, ExclusiveStartKey: startKey })));
      return page.items.length === ITEMS / 3 ? page : undefined;
    });
    const ats = open.items.map((item) => Number(item.at.N));
    expect(ats).toEqual([...ats].sort((a, b) => a - b));
    expect(open.pages).toBeGreaterThanOrEqual(ITEMS / 3 / 6);

    const described = await client.send(new DescribeTableCommand({ TableName: 'orders' }));
    expect(described.Table?.ItemCount).toBe(ITEMS);
    // Counted by the GSI's own partitions.
    await eventuallyValue(async () => {
      const again = await client.send(new DescribeTableCommand({ TableName: 'orders' }));
      return again.Table?.GlobalSecondaryIndexes?.[0].ItemCount === ITEMS ? true : undefined;
    });
  });

  it('a transaction in one partition commits as one write, one across partitions by two-phase commit', { timeout: 60_000 }, async () => {
    await client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: 'orders', Item: { pk: S('tx'), sk: N(1) } } },
          { Put: { TableName: 'orders', Item: { pk: S('tx'), sk: N(2) } } },
        ],
      }),
    );
    const both = await client.send(new QueryCommand({ TableName: 'orders', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': S('tx') }, ConsistentRead: true }));
    expect(both.Count).toBe(2);

    const keys = Array.from({ length: 12 }, (_, i) => `spread-${i}`);
    await client.send(new TransactWriteItemsCommand({ TransactItems: keys.map((pk) => ({ Put: { TableName: 'orders', Item: { pk: S(pk), sk: N(0) } } })) }));
    for (const pk of keys) {
      const item = await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S(pk), sk: N(0) }, ConsistentRead: true }));
      expect(item.Item).toEqual({ pk: S(pk), sk: N(0) });
    }
  });

  it('large items written in one turn go to their partition in calls of at most 1 MiB: all land, and the partition keeps taking writes', { timeout: 60_000 }, async () => {
    // 10 x 350 KB in one item collection: one WriteMany of them would be a 3.5 MB Raft entry, more
    // than one message to the followers carries (the partition stalled behind it for good).
    const blob = S('x'.repeat(350_000));
    const items = Array.from({ length: 10 }, (_, i) => ({ pk: S('large'), sk: N(i), blob }));
    const answer = await client.send(new BatchWriteItemCommand({ RequestItems: { orders: items.map((Item) => ({ PutRequest: { Item } })) } }));
    expect(answer.UnprocessedItems ?? {}).toEqual({});
    await client.send(new PutItemCommand({ TableName: 'orders', Item: { pk: S('large'), sk: N(100) } }));
    for (const sk of [...items.keys(), 100]) {
      const item = await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S('large'), sk: N(sk) }, ConsistentRead: true, ProjectionExpression: 'sk' }));
      expect(item.Item).toEqual({ sk: N(sk) });
    }
  });

  it('a transaction of 3.8 MB in one partition commits as one Raft entry, and the partition keeps taking writes', { timeout: 60_000 }, async () => {
    // Binary values travel as base64 in the entry: about 5 MB, more than the transport's batches
    // (3 MiB) and than gRPC's default message (4 MiB), within DynamoDB's 4 MB of items.
    const blob: AttributeValue = { B: new Uint8Array(380_000).fill(7) };
    await client.send(new TransactWriteItemsCommand({ TransactItems: Array.from({ length: 10 }, (_, i) => ({ Put: { TableName: 'orders', Item: { pk: S('large-tx'), sk: N(i), blob } } })) }));
    await client.send(new PutItemCommand({ TableName: 'orders', Item: { pk: S('large-tx'), sk: N(100) } }));
    for (const sk of [...Array.from({ length: 10 }, (_, i) => i), 100]) {
      const item = await client.send(new GetItemCommand({ TableName: 'orders', Key: { pk: S('large-tx'), sk: N(sk) }, ConsistentRead: true, ProjectionExpression: 'sk' }));
      expect(item.Item).toEqual({ sk: N(sk) });
    }
  });

  it('a GSI added by UpdateTable gets partitions of its own, is backfilled from every table partition, then answers queries', { timeout: 60_000 }, async () => {
    await client.send(
      new UpdateTableCommand({
        TableName: 'orders',
        AttributeDefinitions: [{ AttributeName: 'at', AttributeType: 'N' }],
        GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byAt', KeySchema: [{ AttributeName: 'at', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } } }],
      }),
    );
    await eventually('the index is active', async () => {
      const table = (await client.send(new DescribeTableCommand({ TableName: 'orders' }))).Table;
      return table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === 'byAt')?.IndexStatus === 'ACTIVE';
    });
    // The backfill is done once its entries are in the outboxes: the GSI's partitions get them soon after.
    const hit = await eventuallyValue(async () => {
      const answer = await client.send(new QueryCommand({ TableName: 'orders', IndexName: 'byAt', KeyConditionExpression: '#at = :at', ExpressionAttributeNames: { '#at': 'at' }, ExpressionAttributeValues: { ':at': N(1_000 - 45) } }));
      return answer.Count === 1 ? answer : undefined;
    });
    expect(hit.Items).toEqual([{ at: N(955), pk: S('customer-15'), sk: N(45) }]);
    const all = await eventuallyValue(async () => {
      const pages = await allPages((startKey) => client.send(new ScanCommand({ TableName: 'orders', IndexName: 'byAt', Limit: 25, ExclusiveStartKey: startKey })));
      return pages.items.length === ITEMS ? pages : undefined;
    });
    expect(new Set(all.items.map((item) => `${item.pk.S}/${item.sk.N}`)).size).toBe(ITEMS);
  });

  it('a Scan stops at the 1 MB page across partitions and resumes where it stopped', { timeout: 60_000 }, async () => {
    await createBlobsTable();
    const count = 20;
    const blob = 'b'.repeat(110_000);
    for (let first = 0; first < count; first += 5) {
      await Promise.all(Array.from({ length: 5 }, (_, offset) => client.send(new PutItemCommand({ TableName: 'blobs', Item: { id: S(`blob-${first + offset}`), data: S(blob) } }))));
    }
    const scan = await allPages((startKey) => client.send(new ScanCommand({ TableName: 'blobs', ConsistentRead: true, ExclusiveStartKey: startKey })));
    expect(new Set(scan.items.map((item) => item.id.S)).size).toBe(count);
    expect(scan.items).toHaveLength(count);
    // 20 x 110 KB is about 2.2 MB: three pages at least.
    expect(scan.pages).toBeGreaterThanOrEqual(3);
  });

  it('DeleteTable removes the table at once for this router; the name can be used again', { timeout: 60_000 }, async () => {
    await client.send(new DeleteTableCommand({ TableName: 'blobs' }));
    await expect(client.send(new DescribeTableCommand({ TableName: 'blobs' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await createBlobsTable();
    const scan = await client.send(new ScanCommand({ TableName: 'blobs', ConsistentRead: true }));
    expect(scan.Count).toBe(0);
    await client.send(new PutItemCommand({ TableName: 'blobs', Item: { id: S('again') } }));
    const got = await client.send(new GetItemCommand({ TableName: 'blobs', Key: { id: S('again') }, ConsistentRead: true }));
    expect(got.Item).toEqual({ id: S('again') });
  });

  it('a write sent to a follower is redirected by NotLeader to the leader and applied once', { timeout: 60_000 }, async () => {
    // A client of its own, to point its leader cache at a follower.
    await withOwnClusterClient(metaAddresses, async ({ partitions, view, counters }) => {
      const table = view.table('orders')!.schema;
      const key: Item = { pk: { S: 'redirected' }, sk: { N: '1' } };
      await partitions.write({ operations: [{ table, kind: 'Put', key, item: { ...key, n: { N: '1' } } }] });
      const partition = view.map.partitionsOf(table.tableId).find((p) => view.leaderOf(p.id) !== undefined)!;
      const leader = view.leaderOf(partition.id)!;
      const follower = partition.replicas.find((replica) => replica.role === 'voter' && replica.nodeId !== leader)!.nodeId;
      view.learnLeader(partition.id, { id: follower, address: '' });
      const redirectsBefore = counters.notLeaderRedirectsTotal;

      await partitions.write({ operations: [{ table, kind: 'Update', key, expressions: { update: 'ADD n :one', values: { ':one': { N: '1' } } } }] });
      // One redirect, unless an election moved the leader meanwhile (then more).
      expect(counters.notLeaderRedirectsTotal).toBeGreaterThanOrEqual(redirectsBefore + 1);
      expect(view.leaderOf(partition.id)).not.toBe(follower);
      const found = await partitions.get({ table, key }, { consistent: true });
      expect(found?.item.n).toEqual({ N: '2' });
    });
  });
  it('a request routed with a stale epoch is redirected by StaleEpoch with the current descriptor', { timeout: 60_000 }, async () => {
    await withOwnClusterClient(metaAddresses, async ({ partitions, view, counters }) => {
      const table = view.table('orders')!.schema;
      // Every descriptor one epoch behind the nodes': what a router holds after a membership change it has not heard of.
      view.map = new PartitionMap(view.map.all().map((partition) => ({ ...partition, epoch: partition.epoch - 1 })));
      const key: Item = { pk: { S: 'stale' }, sk: { N: '1' } };
      await partitions.write({ operations: [{ table, kind: 'Put', key, item: { ...key, n: { N: '1' } } }] });
      expect(counters.staleEpochRedirectsTotal).toBe(1);
      expect(counters.ambiguousWritesTotal).toBe(0);
      const found = await partitions.get({ table, key }, { consistent: true });
      expect(found?.item.n).toEqual({ N: '1' });
    });
  });
});

/** Polls `read` until it answers (GSI reads are eventually consistent), bounded. */
async function eventuallyValue<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('gave up waiting for the value');
}
