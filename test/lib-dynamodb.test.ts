import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  NumberValue,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactGetCommand,
  TransactWriteCommand,
  UpdateCommand,
  paginateQuery,
  paginateScan,
} from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTable, expectDynamoError, keyedBy } from './helpers/item-assertions.ts';
import { sdkClients, shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'docs',
    ...keyedBy(['owner', 'S'], ['n', 'N']),
  });
});

const everyType = {
  owner: 'ann',
  n: 1,
  integer: 42,
  negative: -7,
  fraction: 3.25,
  tiny: 1e-100,
  text: 'héllo wörld ✓',
  empty: '',
  yes: true,
  no: false,
  nothing: null,
  bytes: new Uint8Array([0, 1, 2, 253, 254, 255]),
  strings: new Set(['a', 'b', 'c']),
  numbers: new Set([1, 2.5, -3]),
  binaries: new Set([new Uint8Array([1]), new Uint8Array([2, 3])]),
  list: [1, 'two', { three: [3] }, [4, [5]], null, true],
  map: { nested: { deeper: { deepest: 'bottom', values: [1, 2, 3] } }, 'with space': 'ok' },
  emptyList: [],
  emptyMap: {},
};

describe('lib-dynamodb marshalling', () => {
  it('round-trips every attribute type', async () => {
    await shoal.doc.send(new PutCommand({ TableName: 'docs', Item: everyType }));
    const got = await shoal.doc.send(new GetCommand({ TableName: 'docs', Key: { owner: 'ann', n: 1 }, ConsistentRead: true }));
    expect(got.Item).toEqual(everyType);
    // On the wire: the types DynamoDB would store.
    const raw = await shoal.client.send(new GetItemCommand({ TableName: 'docs', Key: { owner: { S: 'ann' }, n: { N: '1' } }, ConsistentRead: true }));
    expect(raw.Item?.strings).toEqual({ SS: ['a', 'b', 'c'] });
    expect(raw.Item?.nothing).toEqual({ NULL: true });
    expect(raw.Item?.numbers && 'NS' in raw.Item.numbers).toBe(true);
  });

  it('keeps numbers beyond double precision exact as NumberValue', async () => {
    // A client of its own: DynamoDBDocumentClient.from shares the options of the client it wraps.
    const { client } = sdkClients(shoal.endpoint);
    const wrapping = DynamoDBDocumentClient.from(client, { unmarshallOptions: { wrapNumbers: true } });
    try {
      const big = NumberValue.from('123456789012345678901234567890.123456');
      await shoal.doc.send(new PutCommand({ TableName: 'docs', Item: { owner: 'ann', n: 2, big } }));
      const got = await wrapping.send(new GetCommand({ TableName: 'docs', Key: { owner: 'ann', n: 2 }, ConsistentRead: true }));
      expect(String(got.Item?.big)).toBe('123456789012345678901234567890.123456');
    } finally {
      client.destroy();
    }
  });

  it('updates nested paths and sets, returning native values', async () => {
    await shoal.doc.send(new PutCommand({ TableName: 'docs', Item: { owner: 'ann', n: 3, profile: { visits: 1, tags: new Set(['x']) }, history: ['a'] } }));
    const updated = await shoal.doc.send(
      new UpdateCommand({
        TableName: 'docs',
        Key: { owner: 'ann', n: 3 },
        UpdateExpression: 'SET profile.visits = profile.visits + :one, history = list_append(history, :more) ADD profile.tags :tags',
        ExpressionAttributeValues: { ':one': 1, ':more': ['b', 'c'], ':tags': new Set(['y']) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    expect(updated.Attributes).toEqual({ owner: 'ann', n: 3, profile: { visits: 2, tags: new Set(['x', 'y']) }, history: ['a', 'b', 'c'] });
    const removed = await shoal.doc.send(
      new UpdateCommand({
        TableName: 'docs',
        Key: { owner: 'ann', n: 3 },
        UpdateExpression: 'REMOVE history[0] DELETE profile.tags :x',
        ExpressionAttributeValues: { ':x': new Set(['x']) },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    // The paths are read in the new item: history[0] is now 'b'.
    expect(removed.Attributes).toEqual({ profile: { tags: new Set(['y']) }, history: ['b'] });
  });

  it('deletes with a condition and reports a failed one', async () => {
    await shoal.doc.send(new PutCommand({ TableName: 'docs', Item: { owner: 'bob', n: 1, state: 'open' } }));
    await expectDynamoError(
      shoal.doc.send(
        new DeleteCommand({ TableName: 'docs', Key: { owner: 'bob', n: 1 }, ConditionExpression: '#s = :closed', ExpressionAttributeNames: { '#s': 'state' }, ExpressionAttributeValues: { ':closed': 'closed' } }),
      ),
      'ConditionalCheckFailedException',
    );
    const deleted = await shoal.doc.send(new DeleteCommand({ TableName: 'docs', Key: { owner: 'bob', n: 1 }, ReturnValues: 'ALL_OLD' }));
    expect(deleted.Attributes).toEqual({ owner: 'bob', n: 1, state: 'open' });
  });
});

describe('lib-dynamodb reads and writes of many items', () => {
  beforeAll(async () => {
    for (let start = 0; start < 60; start += 25) {
      const chunk = Array.from({ length: Math.min(25, 60 - start) }, (_, i) => ({
        PutRequest: { Item: { owner: 'cat', n: start + i, even: (start + i) % 2 === 0, label: `item ${start + i}` } },
      }));
      await shoal.doc.send(new BatchWriteCommand({ RequestItems: { docs: chunk } }));
    }
  });

  it('queries with the paginator to the last page', async () => {
    const seen: number[] = [];
    let pages = 0;
    for await (const page of paginateQuery(
      { client: shoal.doc, pageSize: 7 },
      { TableName: 'docs', KeyConditionExpression: '#o = :o', ExpressionAttributeNames: { '#o': 'owner' }, ExpressionAttributeValues: { ':o': 'cat' } },
    )) {
      pages++;
      seen.push(...(page.Items ?? []).map((item) => item.n as number));
    }
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(pages).toBeGreaterThanOrEqual(9);
    const between = await shoal.doc.send(
      new QueryCommand({
        TableName: 'docs',
        KeyConditionExpression: '#o = :o AND n BETWEEN :low AND :high',
        FilterExpression: 'even = :yes',
        ExpressionAttributeNames: { '#o': 'owner' },
        ExpressionAttributeValues: { ':o': 'cat', ':low': 10, ':high': 15, ':yes': true },
        ScanIndexForward: false,
      }),
    );
    expect(between.Items?.map((item) => item.n)).toEqual([14, 12, 10]);
  });

  it('scans with the paginator', async () => {
    let count = 0;
    for await (const page of paginateScan({ client: shoal.doc, pageSize: 11 }, { TableName: 'docs', FilterExpression: '#o = :o', ExpressionAttributeNames: { '#o': 'owner' }, ExpressionAttributeValues: { ':o': 'cat' } })) {
      count += page.Count ?? 0;
    }
    expect(count).toBe(60);
    const counted = await shoal.doc.send(new ScanCommand({ TableName: 'docs', Select: 'COUNT' }));
    expect(counted.Count).toBeGreaterThanOrEqual(60);
  });

  it('batch-gets native keys', async () => {
    const got = await shoal.doc.send(
      new BatchGetCommand({ RequestItems: { docs: { Keys: [{ owner: 'cat', n: 5 }, { owner: 'cat', n: 6 }], ProjectionExpression: 'label' } } }),
    );
    expect((got.Responses?.docs ?? []).map((item) => item.label).sort()).toEqual(['item 5', 'item 6']);
  });

  it('runs transactions with native values', async () => {
    await shoal.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: 'docs', Item: { owner: 'dan', n: 1, tags: new Set(['t']) } } },
          { Update: { TableName: 'docs', Key: { owner: 'cat', n: 1 }, UpdateExpression: 'SET label = :l', ExpressionAttributeValues: { ':l': 'changed' } } },
        ],
      }),
    );
    const got = await shoal.doc.send(
      new TransactGetCommand({
        TransactItems: [{ Get: { TableName: 'docs', Key: { owner: 'dan', n: 1 } } }, { Get: { TableName: 'docs', Key: { owner: 'cat', n: 1 }, ProjectionExpression: 'label' } }],
      }),
    );
    expect(got.Responses?.map((response) => response.Item)).toEqual([{ owner: 'dan', n: 1, tags: new Set(['t']) }, { label: 'changed' }]);
  });
});
