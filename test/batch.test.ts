import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, range, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, filler, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'users',
    ...keyedBy(['id', 'S']),
  });
  await createTable(shoal.client, {
    TableName: 'events',
    ...keyedBy(['user', 'S'], ['at', 'N']),
  });
});

const userKey = (i: number) => ({ id: s(`u${i}`) });
const putUser = (i: number, extra: Record<string, AttributeValue> = {}): WriteRequest => ({
  PutRequest: { Item: { ...userKey(i), name: s(`user ${i}`), ...extra } },
});

describe('BatchWriteItem', () => {
  it('puts and deletes across tables, answering an empty UnprocessedItems', async () => {
    const written = await shoal.client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          users: range(1, 20).map((i) => putUser(i)),
          events: [
            { PutRequest: { Item: { user: s('u1'), at: n(1), kind: s('login') } } },
            { PutRequest: { Item: { user: s('u1'), at: n(2), kind: s('logout') } } },
          ],
        },
      }),
    );
    expect(written.UnprocessedItems).toEqual({});
    const removed = await shoal.client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          users: [{ DeleteRequest: { Key: userKey(20) } }, putUser(1, { name: s('renamed') })],
          events: [{ DeleteRequest: { Key: { user: s('u1'), at: n(2) } } }],
        },
      }),
    );
    expect(removed.UnprocessedItems).toEqual({});
    const gone = await shoal.client.send(new GetItemCommand({ TableName: 'users', Key: userKey(20), ConsistentRead: true }));
    expect(gone.Item).toBeUndefined();
    const renamed = await shoal.client.send(new GetItemCommand({ TableName: 'users', Key: userKey(1), ConsistentRead: true }));
    expect(renamed.Item).toEqual({ id: s('u1'), name: s('renamed') });
  });

  it('reports item collection metrics for the tables with an LSI', async () => {
    await createTable(shoal.client, {
      TableName: 'collections',
      ...keyedBy(['pk', 'S'], ['sk', 'S'], ['alt', 'S']),
      LocalSecondaryIndexes: [
        {
          IndexName: 'by-alt',
          KeySchema: keySchema('pk', 'alt'),
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    });
    const written = await shoal.client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          collections: [
            { PutRequest: { Item: { pk: s('c1'), sk: s('1'), alt: s('x') } } },
            { DeleteRequest: { Key: { pk: s('c2'), sk: s('1') } } },
          ],
          users: [putUser(500)],
        },
        ReturnItemCollectionMetrics: 'SIZE',
      }),
    );
    expect(written.ItemCollectionMetrics).toEqual({
      collections: [
        { ItemCollectionKey: { pk: s('c1') }, SizeEstimateRangeGB: [0, 1] },
        { ItemCollectionKey: { pk: s('c2') }, SizeEstimateRangeGB: [0, 1] },
      ],
    });
  });

  it('rejects more than 25 requests', async () => {
    await expectDynamoError(
      shoal.client.send(
        new BatchWriteItemCommand({
          RequestItems: {
            users: range(100, 115).map((i) => putUser(i)),
            events: range(1, 10).map((at) => ({ PutRequest: { Item: { user: s('x'), at: n(at) } } })),
          },
        }),
      ),
      'ValidationException',
      'Too many items requested for the BatchWriteItem call',
    );
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: range(100, 126).map((i) => putUser(i)) } })),
      'ValidationException',
      "1 validation error detected: Value at 'RequestItems.users.member' failed to satisfy constraint: Member must have length less than or equal to 25",
    );
  });

  it('rejects duplicate keys and writes nothing when any request is invalid', async () => {
    await expectDynamoError(
      shoal.client.send(
        new BatchWriteItemCommand({ RequestItems: { users: [putUser(200), { DeleteRequest: { Key: userKey(200) } }] } }),
      ),
      'ValidationException',
      'Provided list of item keys contains duplicates',
    );
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: [putUser(201), { PutRequest: { Item: { other: s('x') } } }] } })),
      'ValidationException',
      'The provided key element does not match the schema',
    );
    await expectDynamoError(
      shoal.client.send(
        new BatchWriteItemCommand({ RequestItems: { users: [putUser(202), putUser(203, { data: s(filler(400 * 1024)) })] } }),
      ),
      'ValidationException',
      'Item size has exceeded the maximum allowed size',
    );
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: [putUser(204)], missing: [putUser(1)] } })),
      'ResourceNotFoundException',
    );
    for (const i of [200, 201, 202, 204]) {
      const got = await shoal.client.send(new GetItemCommand({ TableName: 'users', Key: userKey(i), ConsistentRead: true }));
      expect(got.Item, `u${i}`).toBeUndefined();
    }
  });

  it('rejects a request with both or neither of PutRequest and DeleteRequest', async () => {
    await expectDynamoError(
      shoal.client.send(
        new BatchWriteItemCommand({
          RequestItems: { users: [{ PutRequest: { Item: userKey(300) }, DeleteRequest: { Key: userKey(301) } }] },
        }),
      ),
      'ValidationException',
      'Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes',
    );
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: [{}] } })),
      'ValidationException',
      'Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes',
    );
  });
});

describe('BatchGetItem', () => {
  beforeAll(async () => {
    await shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: range(1, 25).map((i) => putUser(i, { age: n(i) })) } }));
    await shoal.client.send(new BatchWriteItemCommand({ RequestItems: { users: range(26, 50).map((i) => putUser(i, { age: n(i) })) } }));
  });

  it('reads keys from several tables, leaving out absent ones', async () => {
    const got = await shoal.client.send(
      new BatchGetItemCommand({
        RequestItems: {
          users: { Keys: [userKey(2), userKey(3), userKey(999)], ConsistentRead: true },
          events: { Keys: [{ user: s('u1'), at: n(1) }] },
        },
      }),
    );
    const users = (got.Responses?.users ?? []).map((item) => item.id).sort((a, b) => String(a.S).localeCompare(String(b.S)));
    expect(users).toEqual([s('u2'), s('u3')]);
    expect(got.Responses?.events).toEqual([{ user: s('u1'), at: n(1), kind: s('login') }]);
    expect(got.UnprocessedKeys).toEqual({});
  });

  it('projects per table with ProjectionExpression and ExpressionAttributeNames', async () => {
    const got = await shoal.client.send(
      new BatchGetItemCommand({
        RequestItems: {
          users: { Keys: [userKey(4)], ProjectionExpression: '#n', ExpressionAttributeNames: { '#n': 'name' } },
        },
      }),
    );
    expect(got.Responses?.users).toEqual([{ name: s('user 4') }]);
  });

  it('accepts 100 keys and rejects 101', async () => {
    const hundred = range(1, 100).map(userKey);
    const got = await shoal.client.send(new BatchGetItemCommand({ RequestItems: { users: { Keys: hundred } } }));
    expect(got.Responses?.users).toHaveLength(50);
    await expectDynamoError(
      shoal.client.send(
        new BatchGetItemCommand({
          RequestItems: { users: { Keys: hundred }, events: { Keys: [{ user: s('u1'), at: n(1) }] } },
        }),
      ),
      'ValidationException',
      'Too many items requested for the BatchGetItem call',
    );
  });

  it('rejects duplicate and malformed keys', async () => {
    await expectDynamoError(
      shoal.client.send(new BatchGetItemCommand({ RequestItems: { users: { Keys: [userKey(1), userKey(1)] } } })),
      'ValidationException',
      'Provided list of item keys contains duplicates',
    );
    await expectDynamoError(
      shoal.client.send(new BatchGetItemCommand({ RequestItems: { users: { Keys: [{ id: n(1) }] } } })),
      'ValidationException',
      'The provided key element does not match the schema',
    );
    await expectDynamoError(
      shoal.client.send(new BatchGetItemCommand({ RequestItems: { nowhere: { Keys: [userKey(1)] } } })),
      'ResourceNotFoundException',
    );
  });

  it('returns keys beyond 16 MB of items as UnprocessedKeys, which a retry reads', async () => {
    await createTable(shoal.client, {
      TableName: 'blobs',
      ...keyedBy(['id', 'N']),
    });
    const payload = filler(390 * 1024);
    for (const id of range(1, 50)) {
      await shoal.client.send(new PutItemCommand({ TableName: 'blobs', Item: { id: n(id), payload: s(payload) } }));
    }
    const keys = range(1, 50).map((id) => ({ id: n(id) }));
    // Strongly consistent: on a cluster an eventual read may come from a replica still applying the last puts.
    const first = await shoal.client.send(
      new BatchGetItemCommand({ RequestItems: { blobs: { Keys: keys, ProjectionExpression: 'id, payload', ConsistentRead: true } } }),
    );
    const firstCount = first.Responses?.blobs?.length ?? 0;
    expect(firstCount).toBeGreaterThan(0);
    expect(firstCount).toBeLessThan(50);
    const unprocessed = first.UnprocessedKeys?.blobs;
    expect(unprocessed?.ProjectionExpression).toBe('id, payload');
    expect(unprocessed?.ConsistentRead).toBe(true);
    expect((unprocessed?.Keys ?? []).length + firstCount).toBe(50);
    const second = await shoal.client.send(new BatchGetItemCommand({ RequestItems: { blobs: unprocessed ?? { Keys: [] } } }));
    expect(second.UnprocessedKeys).toEqual({});
    const ids = [...(first.Responses?.blobs ?? []), ...(second.Responses?.blobs ?? [])].map((item) => Number(item.id.N)).sort((a, b) => a - b);
    expect(ids).toEqual(range(1, 50));
  });
});
