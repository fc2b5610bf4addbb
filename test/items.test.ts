import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, filler, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'things',
    ...keyedBy(['id', 'S']),
  });
  await createTable(shoal.client, {
    TableName: 'threads',
    ...keyedBy(['forum', 'S'], ['seq', 'N'], ['posted', 'S']),
    LocalSecondaryIndexes: [
      {
        IndexName: 'by-posted',
        KeySchema: keySchema('forum', 'posted'),
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
  });
});

describe('PutItem and GetItem', () => {
  it('stores an item and reads it back, strongly or eventually', async () => {
    const item = { id: s('p1'), name: s('one'), count: n(3), tags: { SS: ['a', 'b'] }, nested: { M: { deep: { L: [n(1), s('x')] } } } };
    const put = await shoal.client.send(new PutItemCommand({ TableName: 'things', Item: item }));
    expect(put.Attributes).toBeUndefined();
    const strong = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('p1') }, ConsistentRead: true }));
    expect(strong.Item).toEqual(item);
    const eventual = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('p1') } }));
    expect(eventual.Item).toEqual(item);
  });

  it('answers without Item for an absent key', async () => {
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('nobody') } }));
    expect(got.Item).toBeUndefined();
  });

  it('returns the replaced item with ReturnValues ALL_OLD, nothing for a new one', async () => {
    const first = await shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('p2'), v: n(1) }, ReturnValues: 'ALL_OLD' }),
    );
    expect(first.Attributes).toBeUndefined();
    const second = await shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('p2'), v: n(2) }, ReturnValues: 'ALL_OLD' }),
    );
    expect(second.Attributes).toEqual({ id: s('p2'), v: n(1) });
  });

  it('rejects ReturnValues other than NONE and ALL_OLD', async () => {
    for (const mode of ['ALL_NEW', 'UPDATED_OLD', 'UPDATED_NEW'] as const) {
      await expectDynamoError(
        shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('p3') }, ReturnValues: mode })),
        'ValidationException',
        'ReturnValues can only be ALL_OLD or NONE',
      );
    }
  });

  it('projects GetItem with ProjectionExpression and ExpressionAttributeNames', async () => {
    await shoal.client.send(
      new PutItemCommand({
        TableName: 'things',
        Item: { id: s('p4'), a: n(1), b: s('two'), m: { M: { x: n(1), y: n(2) } }, l: { L: [s('l0'), s('l1')] } },
      }),
    );
    const got = await shoal.client.send(
      new GetItemCommand({
        TableName: 'things',
        Key: { id: s('p4') },
        ProjectionExpression: '#a, m.y, l[1], absent',
        ExpressionAttributeNames: { '#a': 'a' },
      }),
    );
    expect(got.Item).toEqual({ a: n(1), m: { M: { y: n(2) } }, l: { L: [s('l1')] } });
  });

  it('checks ConditionExpression, returning the item on failure when asked', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('c1'), v: n(1) } }));
    const plain = await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({ TableName: 'things', Item: { id: s('c1'), v: n(2) }, ConditionExpression: 'attribute_not_exists(id)' }),
      ),
      'ConditionalCheckFailedException',
      'The conditional request failed',
    );
    expect(plain.Item).toBeUndefined();
    const withItem = await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({
          TableName: 'things',
          Item: { id: s('c1'), v: n(2) },
          ConditionExpression: 'v = :expected',
          ExpressionAttributeValues: { ':expected': n(7) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      ),
      'ConditionalCheckFailedException',
    );
    expect(withItem.Item).toEqual({ id: s('c1'), v: n(1) });
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('c1') }, ConsistentRead: true }));
    expect(got.Item).toEqual({ id: s('c1'), v: n(1) });
    await shoal.client.send(
      new PutItemCommand({
        TableName: 'things',
        Item: { id: s('c1'), v: n(2) },
        ConditionExpression: 'v = :expected',
        ExpressionAttributeValues: { ':expected': n(1) },
      }),
    );
  });

  it('rejects items and keys that do not fit the table', async () => {
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { other: s('x') } })),
      'ValidationException',
      'One or more parameter values were invalid: Missing the key id in the item',
    );
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: n(1) } })),
      'ValidationException',
      'One or more parameter values were invalid: Type mismatch for key id expected: S actual: N',
    );
    await expectDynamoError(
      shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('a'), extra: s('b') } })),
      'ValidationException',
      'The provided key element does not match the schema',
    );
    await expectDynamoError(
      shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { other: s('a') } })),
      'ValidationException',
      'The provided key element does not match the schema',
    );
  });

  it('rejects an item over 400 KB and accepts one just under', async () => {
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('big'), data: s(filler(400 * 1024)) } })),
      'ValidationException',
      'Item size has exceeded the maximum allowed size',
    );
    // 2 + 3 bytes of key, 4 + N bytes of data: exactly 400 KB.
    await shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('big'), data: s(filler(400 * 1024 - 9)) } }),
    );
  });

  it('answers ResourceNotFoundException for a missing table', async () => {
    await expectDynamoError(
      shoal.client.send(new GetItemCommand({ TableName: 'no-such-table', Key: { id: s('a') } })),
      'ResourceNotFoundException',
    );
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'no-such-table', Item: { id: s('a') } })),
      'ResourceNotFoundException',
    );
  });

  it('reports parameter constraint violations', async () => {
    await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({ TableName: 'things', Item: { id: s('x') }, ReturnValues: 'SOME' as 'NONE' }),
      ),
      'ValidationException',
      "1 validation error detected: Value 'SOME' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]",
    );
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('x') }, ConditionExpression: 'attribute_exists(' })),
      'ValidationException',
      /^Invalid ConditionExpression: Syntax error; token: "<EOF>"/,
    );
    await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({ TableName: 'things', Item: { id: s('x') }, ConditionExpression: 'a = :a', ExpressionAttributeValues: { ':a': n(1), ':b': n(2) } }),
      ),
      'ValidationException',
      'Value provided in ExpressionAttributeValues unused in expressions: keys: {:b}',
    );
  });

  it('reports the item collection size estimate of a table with an LSI', async () => {
    const put = await shoal.client.send(
      new PutItemCommand({
        TableName: 'threads',
        Item: { forum: s('f'), seq: n(1), posted: s('2026') },
        ReturnItemCollectionMetrics: 'SIZE',
      }),
    );
    expect(put.ItemCollectionMetrics).toEqual({ ItemCollectionKey: { forum: s('f') }, SizeEstimateRangeGB: [0, 1] });
    const plain = await shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('m') }, ReturnItemCollectionMetrics: 'SIZE' }),
    );
    expect(plain.ItemCollectionMetrics).toBeUndefined();
  });
});

describe('UpdateItem', () => {
  const key = { id: s('u1') };
  const reset = () =>
    shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('u1'), a: n(1), b: s('keep'), m: { M: { x: n(1), y: n(2) } } } }),
    );
  const update = (ReturnValues: 'NONE' | 'ALL_OLD' | 'UPDATED_OLD' | 'UPDATED_NEW' | 'ALL_NEW') =>
    shoal.client.send(
      new UpdateItemCommand({
        TableName: 'things',
        Key: key,
        UpdateExpression: 'SET a = a + :one, m.y = :y, c = :c REMOVE b',
        ExpressionAttributeValues: { ':one': n(1), ':y': n(20), ':c': s('new') },
        ReturnValues,
      }),
    );

  it('applies the update and returns nothing with NONE', async () => {
    await reset();
    const result = await update('NONE');
    expect(result.Attributes).toBeUndefined();
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: key, ConsistentRead: true }));
    expect(got.Item).toEqual({ id: s('u1'), a: n(2), m: { M: { x: n(1), y: n(20) } }, c: s('new') });
  });

  it('returns the whole old item with ALL_OLD', async () => {
    await reset();
    expect((await update('ALL_OLD')).Attributes).toEqual({ id: s('u1'), a: n(1), b: s('keep'), m: { M: { x: n(1), y: n(2) } } });
  });

  it('returns the old values of the updated attributes with UPDATED_OLD', async () => {
    await reset();
    expect((await update('UPDATED_OLD')).Attributes).toEqual({ a: n(1), b: s('keep'), m: { M: { y: n(2) } } });
  });

  it('returns the new values of the updated attributes with UPDATED_NEW', async () => {
    await reset();
    expect((await update('UPDATED_NEW')).Attributes).toEqual({ a: n(2), m: { M: { y: n(20) } }, c: s('new') });
  });

  it('returns the whole new item with ALL_NEW', async () => {
    await reset();
    expect((await update('ALL_NEW')).Attributes).toEqual({ id: s('u1'), a: n(2), m: { M: { x: n(1), y: n(20) } }, c: s('new') });
  });

  it('returns the paths the update names, changed or not, with UPDATED_*', async () => {
    await shoal.client.send(
      new PutItemCommand({ TableName: 'things', Item: { id: s('u4'), same: n(1), list: { L: [s('a'), s('b'), s('c')] } } }),
    );
    const updated = await shoal.client.send(
      new UpdateItemCommand({
        TableName: 'things',
        Key: { id: s('u4') },
        UpdateExpression: 'SET same = :one, #l[1] = :x, added = :one',
        ExpressionAttributeNames: { '#l': 'list' },
        ExpressionAttributeValues: { ':one': n(1), ':x': s('X') },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    expect(updated.Attributes).toEqual({ same: n(1), list: { L: [s('X')] }, added: n(1) });
    const old = await shoal.client.send(
      new UpdateItemCommand({
        TableName: 'things',
        Key: { id: s('u4') },
        UpdateExpression: 'REMOVE added, #l[0]',
        ExpressionAttributeNames: { '#l': 'list' },
        ReturnValues: 'UPDATED_OLD',
      }),
    );
    expect(old.Attributes).toEqual({ added: n(1), list: { L: [s('a')] } });
  });

  it('creates the item when absent (upsert), with only the key when there is no update', async () => {
    const created = await shoal.client.send(
      new UpdateItemCommand({
        TableName: 'things',
        Key: { id: s('u2') },
        UpdateExpression: 'ADD visits :one',
        ExpressionAttributeValues: { ':one': n(1) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    expect(created.Attributes).toEqual({ id: s('u2'), visits: n(1) });
    const bare = await shoal.client.send(
      new UpdateItemCommand({ TableName: 'things', Key: { id: s('u3') }, ReturnValues: 'ALL_NEW' }),
    );
    expect(bare.Attributes).toEqual({ id: s('u3') });
  });

  it('applies concurrent updates of one item one after another', async () => {
    await Promise.all(
      Array.from({ length: 40 }, () =>
        shoal.client.send(
          new UpdateItemCommand({
            TableName: 'things',
            Key: { id: s('counter') },
            UpdateExpression: 'ADD hits :one',
            ExpressionAttributeValues: { ':one': n(1) },
          }),
        ),
      ),
    );
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('counter') }, ConsistentRead: true }));
    expect(got.Item?.hits).toEqual(n(40));
  });

  it('fails a false condition without changing the item', async () => {
    await reset();
    const failure = await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: 'things',
          Key: key,
          UpdateExpression: 'SET a = :v',
          ConditionExpression: 'a > :v',
          ExpressionAttributeValues: { ':v': n(5) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      ),
      'ConditionalCheckFailedException',
    );
    expect(failure.Item?.a).toEqual(n(1));
  });

  it('reports an update that cannot apply to the item as a ValidationException', async () => {
    await reset();
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: 'things',
          Key: key,
          UpdateExpression: 'ADD b :one',
          ExpressionAttributeValues: { ':one': n(1) },
        }),
      ),
      'ValidationException',
      /^An operand in the update expression has an incorrect data type/,
    );
  });

  it('refuses to update a key attribute', async () => {
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({ TableName: 'things', Key: key, UpdateExpression: 'SET id = :v', ExpressionAttributeValues: { ':v': s('z') } }),
      ),
      'ValidationException',
      /Cannot update attribute id\. This attribute is part of the key/,
    );
  });
});

describe('DeleteItem', () => {
  it('deletes and returns the old item with ALL_OLD', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('d1'), v: n(1) } }));
    const deleted = await shoal.client.send(
      new DeleteItemCommand({ TableName: 'things', Key: { id: s('d1') }, ReturnValues: 'ALL_OLD' }),
    );
    expect(deleted.Attributes).toEqual({ id: s('d1'), v: n(1) });
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('d1') }, ConsistentRead: true }));
    expect(got.Item).toBeUndefined();
    const again = await shoal.client.send(
      new DeleteItemCommand({ TableName: 'things', Key: { id: s('d1') }, ReturnValues: 'ALL_OLD' }),
    );
    expect(again.Attributes).toBeUndefined();
  });

  it('honours a condition and rejects ReturnValues ALL_NEW', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'things', Item: { id: s('d2'), v: n(1) } }));
    await expectDynamoError(
      shoal.client.send(
        new DeleteItemCommand({ TableName: 'things', Key: { id: s('d2') }, ConditionExpression: 'v = :two', ExpressionAttributeValues: { ':two': n(2) } }),
      ),
      'ConditionalCheckFailedException',
    );
    await expectDynamoError(
      shoal.client.send(new DeleteItemCommand({ TableName: 'things', Key: { id: s('d2') }, ReturnValues: 'ALL_NEW' })),
      'ValidationException',
      'ReturnValues can only be ALL_OLD or NONE',
    );
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'things', Key: { id: s('d2') }, ConsistentRead: true }));
    expect(got.Item).toEqual({ id: s('d2'), v: n(1) });
  });
});
