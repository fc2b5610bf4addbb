import {
  BatchGetItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

/** The pre-expression parameters DynamoDB still accepts: Expected, AttributeUpdates, KeyConditions, filters, AttributesToGet. */

const shoal = shoalPerFile();

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'legacy',
    ...keyedBy(['pk', 'S'], ['sk', 'N']),
  });
  for (let sk = 1; sk <= 10; sk++) {
    await shoal.client.send(
      new PutItemCommand({ TableName: 'legacy', Item: { pk: s('p'), sk: n(sk), color: s(sk % 2 ? 'red' : 'blue'), size: n(sk * 10) } }),
    );
  }
});

const key = (sk: number) => ({ pk: s('p'), sk: n(sk) });
const read = async (sk: number) => (await shoal.client.send(new GetItemCommand({ TableName: 'legacy', Key: key(sk), ConsistentRead: true }))).Item;

describe('Expected', () => {
  it('checks existence and values', async () => {
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: key(1), Expected: { pk: { Exists: false } } })),
      'ConditionalCheckFailedException',
    );
    await shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: { ...key(100), v: n(1) }, Expected: { pk: { Exists: false } } }));
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: { ...key(100), v: n(2) }, Expected: { v: { Value: n(5) } } })),
      'ConditionalCheckFailedException',
    );
    await shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: { ...key(100), v: n(2) }, Expected: { v: { Value: n(1), Exists: true } } }));
    expect((await read(100))?.v).toEqual(n(2));
  });

  it('takes comparison operators joined by ConditionalOperator', async () => {
    const attempt = (ConditionalOperator: 'AND' | 'OR') =>
      shoal.client.send(
        new DeleteItemCommand({
          TableName: 'legacy',
          Key: key(2),
          Expected: {
            size: { ComparisonOperator: 'GT', AttributeValueList: [n(100)] },
            color: { ComparisonOperator: 'EQ', AttributeValueList: [s('blue')] },
          },
          ConditionalOperator,
          ReturnValues: 'ALL_OLD',
        }),
      );
    await expectDynamoError(attempt('AND'), 'ConditionalCheckFailedException');
    expect(await read(2)).toBeDefined();
    const deleted = await attempt('OR');
    expect(deleted.Attributes).toEqual({ ...key(2), color: s('blue'), size: n(20) });
  });

  it('cannot be mixed with ConditionExpression', async () => {
    await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({ TableName: 'legacy', Item: key(3), Expected: { pk: { Exists: true } }, ConditionExpression: 'attribute_exists(pk)' }),
      ),
      'ValidationException',
      'Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}',
    );
    await expectDynamoError(
      shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: key(3), ExpressionAttributeNames: { '#a': 'a' } })),
      'ValidationException',
      'ExpressionAttributeNames can only be specified when using expressions',
    );
  });
});

describe('AttributeUpdates', () => {
  it('puts, adds and deletes attributes', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'legacy', Item: { ...key(200), count: n(1), tags: { SS: ['a', 'b'] }, gone: s('x') } }));
    const updated = await shoal.client.send(
      new UpdateItemCommand({
        TableName: 'legacy',
        Key: key(200),
        AttributeUpdates: {
          count: { Action: 'ADD', Value: n(4) },
          tags: { Action: 'DELETE', Value: { SS: ['a'] } },
          gone: { Action: 'DELETE' },
          fresh: { Action: 'PUT', Value: s('new') },
        },
        Expected: { count: { Value: n(1) } },
        ReturnValues: 'ALL_NEW',
      }),
    );
    expect(updated.Attributes).toEqual({ ...key(200), count: n(5), tags: { SS: ['b'] }, fresh: s('new') });
  });

  it('cannot be mixed with UpdateExpression', async () => {
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: 'legacy',
          Key: key(200),
          AttributeUpdates: { count: { Action: 'ADD', Value: n(1) } },
          UpdateExpression: 'SET a = :a',
          ExpressionAttributeValues: { ':a': n(1) },
        }),
      ),
      'ValidationException',
      'Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributeUpdates} Expression parameters: {UpdateExpression}',
    );
  });
});

describe('AttributesToGet, KeyConditions, QueryFilter and ScanFilter', () => {
  it('projects GetItem and BatchGetItem with AttributesToGet', async () => {
    const got = await shoal.client.send(new GetItemCommand({ TableName: 'legacy', Key: key(1), AttributesToGet: ['color'] }));
    expect(got.Item).toEqual({ color: s('red') });
    const batch = await shoal.client.send(
      new BatchGetItemCommand({ RequestItems: { legacy: { Keys: [key(1)], AttributesToGet: ['size', 'sk'] } } }),
    );
    expect(batch.Responses?.legacy).toEqual([{ size: n(10), sk: n(1) }]);
  });

  it('queries with KeyConditions and QueryFilter', async () => {
    const result = await shoal.client.send(
      new QueryCommand({
        TableName: 'legacy',
        KeyConditions: {
          pk: { ComparisonOperator: 'EQ', AttributeValueList: [s('p')] },
          sk: { ComparisonOperator: 'BETWEEN', AttributeValueList: [n(3), n(8)] },
        },
        QueryFilter: { color: { ComparisonOperator: 'EQ', AttributeValueList: [s('red')] } },
        AttributesToGet: ['sk'],
      }),
    );
    expect(result.Items).toEqual([{ sk: n(3) }, { sk: n(5) }, { sk: n(7) }]);
    expect(result.ScannedCount).toBe(6);
    // KeyConditions may go with a FilterExpression.
    const mixed = await shoal.client.send(
      new QueryCommand({
        TableName: 'legacy',
        KeyConditions: { pk: { ComparisonOperator: 'EQ', AttributeValueList: [s('p')] } },
        FilterExpression: '#size > :s',
        ExpressionAttributeNames: { '#size': 'size' },
        ExpressionAttributeValues: { ':s': n(80) },
      }),
    );
    expect(mixed.Items?.map((item) => item.sk)).toEqual([n(9), n(10)]);
  });

  it('rejects a QueryFilter on a key attribute', async () => {
    await expectDynamoError(
      shoal.client.send(
        new QueryCommand({
          TableName: 'legacy',
          KeyConditions: { pk: { ComparisonOperator: 'EQ', AttributeValueList: [s('p')] } },
          QueryFilter: { sk: { ComparisonOperator: 'GT', AttributeValueList: [n(1)] } },
        }),
      ),
      'ValidationException',
      'QueryFilter can only contain non-primary key attributes: Primary key attribute: sk',
    );
  });

  it('scans with ScanFilter joined by ConditionalOperator', async () => {
    const result = await shoal.client.send(
      new ScanCommand({
        TableName: 'legacy',
        ScanFilter: {
          size: { ComparisonOperator: 'LE', AttributeValueList: [n(20)] },
          color: { ComparisonOperator: 'BEGINS_WITH', AttributeValueList: [s('bl')] },
        },
        ConditionalOperator: 'OR',
        AttributesToGet: ['sk'],
      }),
    );
    const sks = (result.Items ?? []).map((item) => Number(item.sk.N)).sort((a, b) => a - b);
    expect(sks).toEqual([1, 4, 6, 8, 10]);
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'legacy', ScanFilter: { size: { ComparisonOperator: 'NULL' } }, FilterExpression: 'attribute_exists(size)' })),
      'ValidationException',
      'Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {ScanFilter} Expression parameters: {FilterExpression}',
    );
  });
});
