import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
  type AttributeValue,
  type KeysAndAttributes,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { eventuallyConsistent } from './helpers/eventually.ts';
import { createTable, expectDynamoError, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

/**
 * Attribute, table and index names that are also names on Object.prototype. A record built with
 * `record[name] = value` loses `__proto__` (the assignment changes the prototype) and reads of
 * `record[name]` find `constructor` or `toString` even where the record has no such member.
 *
 * Requests go through the AWS SDK. Responses that carry items are read as raw JSON: the SDK (3.1169)
 * itself drops the value of a top-level attribute named `__proto__` when it parses a response (the
 * member stays, its value becomes undefined), while Shoal's JSON has it.
 */

const shoal = shoalPerFile();

type Item = Record<string, AttributeValue>;
/** A record from its entries: an object literal `{ __proto__: … }` would set the prototype instead. */
const record = <T>(...entries: [string, T][]): Record<string, T> => Object.fromEntries(entries);
/** Sorted-key JSON, own `__proto__` members included, so comparisons cannot miss one. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const members = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}
const expectSame = (actual: unknown, expected: unknown) => expect(canonical(actual)).toBe(canonical(expected));

/** The members of a response this file reads. */
interface Response {
  Item?: Item;
  Items?: Item[];
  Attributes?: Item;
  Responses?: unknown;
  ConsumedCapacity?: { GlobalSecondaryIndexes?: unknown };
  __type?: string;
  CancellationReasons?: { Code: string; Item?: Item }[];
}

/** Sends one DynamoDB operation with a JSON body; the parsed JSON answer keeps own `__proto__` members. */
async function send(operation: string, body: object): Promise<{ status: number; answer: Response }> {
  const response = await fetch(shoal.endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${operation}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, answer: JSON.parse(await response.text()) as Response };
}

async function call(operation: string, body: object): Promise<Response> {
  const { status, answer } = await send(operation, body);
  if (status !== 200) throw new Error(`${operation} failed: ${JSON.stringify(answer)}`);
  return answer;
}

const TABLE = 'prototype-names';
/** A table named `__proto__` whose hash key is `constructor`. */
const PROTO_TABLE = '__proto__';
const CONSTRUCTOR_TABLE = 'constructor';
/** A table named `hasOwnProperty` whose sort key is `__proto__`, with a local index named `constructor`. */
const COLLECTION_TABLE = 'hasOwnProperty';
const names = { '#p': '__proto__', '#c': 'constructor', '#t': 'toString', '#h': 'hasOwnProperty' };

function trickyItem(sk: number, extra: [string, AttributeValue][] = []): Item {
  return record<AttributeValue>(
    ['pk', s('a')],
    ['sk', n(sk)],
    ['__proto__', s(`proto ${sk}`)],
    ['constructor', s(`ctor ${sk}`)],
    ['toString', s(`str ${sk}`)],
    ['nested', { M: record<AttributeValue>(['__proto__', s('deep')], ['hasOwnProperty', n(1)]) }],
    ...extra,
  );
}
const key = (sk: number): Item => ({ pk: s('a'), sk: n(sk) });
const protoKey = (id: string): Item => record(['constructor', s(id)]);

async function get(tableName: string, itemKey: Item): Promise<Item | undefined> {
  return (await call('GetItem', { TableName: tableName, Key: itemKey, ConsistentRead: true })).Item;
}

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: TABLE,
    ...keyedBy(['pk', 'S'], ['sk', 'N'], ['toString', 'S']),
    GlobalSecondaryIndexes: [
      {
        IndexName: '__proto__',
        KeySchema: keySchema('toString'),
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['__proto__', 'constructor'] },
      },
    ],
  });
  await createTable(shoal.client, {
    TableName: COLLECTION_TABLE,
    ...keyedBy(['pk', 'S'], ['__proto__', 'N'], ['toString', 'S']),
    LocalSecondaryIndexes: [
      {
        IndexName: 'constructor',
        KeySchema: keySchema('pk', 'toString'),
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
  });
  for (const TableName of [PROTO_TABLE, CONSTRUCTOR_TABLE]) {
    await createTable(shoal.client, {
      TableName,
      ...keyedBy(['constructor', 'S']),
    });
  }
});

describe('attributes named like Object.prototype members', () => {
  it('survive Put and Get, whole and projected', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: trickyItem(1) }));
    expectSame(await get(TABLE, key(1)), trickyItem(1));
    const projected = await call('GetItem', {
      TableName: TABLE,
      Key: key(1),
      ProjectionExpression: '#p, #c, nested.#p, nested.#h',
      ExpressionAttributeNames: { '#p': '__proto__', '#c': 'constructor', '#h': 'hasOwnProperty' },
    });
    expectSame(projected.Item, record<AttributeValue>(['__proto__', s('proto 1')], ['constructor', s('ctor 1')], ['nested', trickyItem(1).nested]));
  });

  it('are absent from items that do not have them', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key(2), plain: s('yes') } }));
    const projected = await call('GetItem', { TableName: TABLE, Key: key(2), ProjectionExpression: '#p, #c, #t, #h', ExpressionAttributeNames: names });
    expectSame(projected, { Item: {} });
    // Conditions must not find the members every object inherits.
    await expectDynamoError(
      shoal.client.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: { ...key(2), plain: s('no') },
          ConditionExpression: 'attribute_exists(#c) OR attribute_exists(#t) OR attribute_exists(#p) OR attribute_exists(#h)',
          ExpressionAttributeNames: names,
        }),
      ),
      'ConditionalCheckFailedException',
    );
    await shoal.client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key(2),
        UpdateExpression: 'SET #h = :v',
        ConditionExpression: 'attribute_not_exists(#c) AND attribute_not_exists(#p)',
        ExpressionAttributeNames: { '#c': 'constructor', '#p': '__proto__', '#h': 'hasOwnProperty' },
        ExpressionAttributeValues: { ':v': s('set') },
      }),
    );
    expectSame(await get(TABLE, key(2)), { ...key(2), plain: s('yes'), hasOwnProperty: s('set') });
  });

  it('are set, added to and removed by UpdateItem, with the returned attributes', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: trickyItem(3) }));
    const updated = await call('UpdateItem', {
      TableName: TABLE,
      Key: key(3),
      UpdateExpression: 'SET #p = :p, nested.#p = :deep, #h = :h REMOVE #c, nested.#h',
      ConditionExpression: '#p = :old AND attribute_exists(#c)',
      ExpressionAttributeNames: { '#p': '__proto__', '#c': 'constructor', '#h': 'hasOwnProperty' },
      ExpressionAttributeValues: { ':p': s('new proto'), ':deep': s('new deep'), ':h': n(5), ':old': s('proto 3') },
      ReturnValues: 'UPDATED_OLD',
    });
    expectSame(
      updated.Attributes,
      record<AttributeValue>(
        ['__proto__', s('proto 3')],
        ['constructor', s('ctor 3')],
        ['nested', { M: record<AttributeValue>(['__proto__', s('deep')], ['hasOwnProperty', n(1)]) }],
      ),
    );
    const expected = record<AttributeValue>(
      ['pk', s('a')],
      ['sk', n(3)],
      ['__proto__', s('new proto')],
      ['toString', s('str 3')],
      ['nested', { M: record<AttributeValue>(['__proto__', s('new deep')]) }],
      ['hasOwnProperty', n(5)],
    );
    expectSame(await get(TABLE, key(3)), expected);

    const added = await shoal.client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key(3),
        UpdateExpression: 'ADD #h :one, #c :ctor REMOVE #p',
        ExpressionAttributeNames: { '#p': '__proto__', '#c': 'constructor', '#h': 'hasOwnProperty' },
        ExpressionAttributeValues: { ':one': n(1), ':ctor': { SS: ['x'] } },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const rest = Object.entries(expected).filter(([name]) => name !== '__proto__' && name !== 'hasOwnProperty');
    expectSame(added.Attributes, record(...rest, ['hasOwnProperty', n(6)], ['constructor', { SS: ['x'] }]));
    expectSame(await get(TABLE, key(3)), added.Attributes);
  });

  it('come back from Query, Scan and a secondary index, projected and filtered', async () => {
    for (const sk of [10, 11]) await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: trickyItem(sk) }));
    const queried = await call('Query', {
      TableName: TABLE,
      KeyConditionExpression: 'pk = :a AND sk BETWEEN :from AND :to',
      FilterExpression: '#c = :ctor',
      ProjectionExpression: '#p, sk',
      ExpressionAttributeNames: { '#p': '__proto__', '#c': 'constructor' },
      ExpressionAttributeValues: { ':a': s('a'), ':from': n(10), ':to': n(11), ':ctor': s('ctor 11') },
    });
    expectSame(queried.Items, [record<AttributeValue>(['__proto__', s('proto 11')], ['sk', n(11)])]);

    // Items 2 and 3 no longer have the attribute: projected, they are empty.
    const scanned = await call('Scan', { TableName: TABLE, ProjectionExpression: '#p', ExpressionAttributeNames: { '#p': '__proto__' }, ConsistentRead: true });
    expectSame(scanned.Items, [record(['__proto__', s('proto 1')]), {}, {}, record(['__proto__', s('proto 10')]), record(['__proto__', s('proto 11')])]);
    const whole = await call('Scan', { TableName: TABLE, FilterExpression: 'sk = :sk', ExpressionAttributeValues: { ':sk': n(10) } });
    expectSame(whole.Items, [trickyItem(10)]);

    const indexed = await eventuallyConsistent(
      () =>
        call('Query', {
          TableName: TABLE,
          IndexName: '__proto__',
          KeyConditionExpression: '#t = :t',
          ExpressionAttributeNames: { '#t': 'toString' },
          ExpressionAttributeValues: { ':t': s('str 10') },
          ReturnConsumedCapacity: 'INDEXES',
        }),
      (answer) =>
        expectSame(
          answer.Items,
          [record<AttributeValue>(['pk', s('a')], ['sk', n(10)], ['toString', s('str 10')], ['__proto__', s('proto 10')], ['constructor', s('ctor 10')])],
        ),
    );
    expectSame(indexed.ConsumedCapacity?.GlobalSecondaryIndexes, record(['__proto__', { CapacityUnits: 0.5 }]));
  });
});

describe('a table named __proto__', () => {
  it('is created, described and listed', async () => {
    const described = await shoal.client.send(new DescribeTableCommand({ TableName: PROTO_TABLE }));
    expect(described.Table?.TableName).toBe(PROTO_TABLE);
    expect(described.Table?.KeySchema).toEqual([{ AttributeName: 'constructor', KeyType: 'HASH' }]);
    expect((await shoal.client.send(new ListTablesCommand({}))).TableNames).toEqual([PROTO_TABLE, CONSTRUCTOR_TABLE, COLLECTION_TABLE, TABLE]);
    const indexes = (await shoal.client.send(new DescribeTableCommand({ TableName: TABLE }))).Table?.GlobalSecondaryIndexes;
    expect(indexes?.map((index) => index.IndexName)).toEqual(['__proto__']);
  });

  it('takes items through BatchWriteItem and returns them from BatchGetItem', async () => {
    const written = await shoal.client.send(
      new BatchWriteItemCommand({
        RequestItems: record(
          [PROTO_TABLE, [{ PutRequest: { Item: record<AttributeValue>(['constructor', s('b1')], ['__proto__', s('p1')]) } }]],
          [CONSTRUCTOR_TABLE, [{ PutRequest: { Item: record<AttributeValue>(['constructor', s('b1')], ['toString', s('t1')]) } }]],
          [TABLE, [{ PutRequest: { Item: trickyItem(20) } }, { DeleteRequest: { Key: key(1) } }]],
        ),
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expectSame(written.UnprocessedItems, {});
    expect(written.ConsumedCapacity?.map((consumed) => consumed.TableName).sort()).toEqual([PROTO_TABLE, CONSTRUCTOR_TABLE, TABLE].sort());
    expect(await get(TABLE, key(1))).toBeUndefined();

    const requestItems = record<KeysAndAttributes>(
      [PROTO_TABLE, { Keys: [protoKey('b1'), protoKey('absent')], ConsistentRead: true }],
      [CONSTRUCTOR_TABLE, { Keys: [protoKey('b1')], ProjectionExpression: '#t', ExpressionAttributeNames: { '#t': 'toString' } }],
      [TABLE, { Keys: [key(20)], ProjectionExpression: '#p', ExpressionAttributeNames: { '#p': '__proto__' } }],
    );
    // The SDK keeps a table named __proto__ in Responses; only the item values need the raw JSON.
    const bySdk = await shoal.client.send(new BatchGetItemCommand({ RequestItems: requestItems }));
    expect(Object.keys(bySdk.Responses ?? {}).sort()).toEqual([PROTO_TABLE, CONSTRUCTOR_TABLE, TABLE].sort());
    const got = await call('BatchGetItem', { RequestItems: requestItems });
    expectSame(
      got.Responses,
      record(
        [PROTO_TABLE, [record<AttributeValue>(['constructor', s('b1')], ['__proto__', s('p1')])]],
        [CONSTRUCTOR_TABLE, [record<AttributeValue>(['toString', s('t1')])]],
        [TABLE, [record<AttributeValue>(['__proto__', s('proto 20')])]],
      ),
    );
    expectSame(bySdk.UnprocessedKeys, {});
  });

  it('joins transactions with other tables', async () => {
    await shoal.client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: PROTO_TABLE, Item: record<AttributeValue>(['constructor', s('t1')], ['toString', n(1)]) } },
          {
            Update: {
              TableName: TABLE,
              Key: key(20),
              UpdateExpression: 'SET #c = :c',
              ExpressionAttributeNames: { '#c': 'constructor' },
              ExpressionAttributeValues: { ':c': s('changed') },
            },
          },
          { Delete: { TableName: CONSTRUCTOR_TABLE, Key: protoKey('b1'), ConditionExpression: 'attribute_exists(#t)', ExpressionAttributeNames: { '#t': 'toString' } } },
        ],
        ReturnConsumedCapacity: 'INDEXES',
      }),
    );
    expect(await get(CONSTRUCTOR_TABLE, protoKey('b1'))).toBeUndefined();

    const got = await call('TransactGetItems', {
      TransactItems: [
        { Get: { TableName: PROTO_TABLE, Key: protoKey('t1') } },
        { Get: { TableName: TABLE, Key: key(20), ProjectionExpression: '#c, #p', ExpressionAttributeNames: { '#c': 'constructor', '#p': '__proto__' } } },
        { Get: { TableName: PROTO_TABLE, Key: protoKey('b1'), ProjectionExpression: '#p', ExpressionAttributeNames: { '#p': '__proto__' } } },
      ],
    });
    expectSame(got.Responses, [
      { Item: record<AttributeValue>(['constructor', s('t1')], ['toString', n(1)]) },
      { Item: record<AttributeValue>(['__proto__', s('proto 20')], ['constructor', s('changed')]) },
      { Item: record<AttributeValue>(['__proto__', s('p1')]) },
    ]);

    const cancelled = await send('TransactWriteItems', {
      TransactItems: [
        { Delete: { TableName: PROTO_TABLE, Key: protoKey('t1') } },
        {
          ConditionCheck: {
            TableName: TABLE,
            Key: key(20),
            ConditionExpression: 'attribute_not_exists(#t)',
            ExpressionAttributeNames: { '#t': 'toString' },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        },
      ],
    });
    expect(cancelled.status).toBe(400);
    expect(cancelled.answer.__type).toBe('com.amazonaws.dynamodb.v20120810#TransactionCanceledException');
    expectSame(cancelled.answer.CancellationReasons, [
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed', Item: { ...trickyItem(20), constructor: s('changed') } },
    ]);
    expect(await get(PROTO_TABLE, protoKey('t1'))).toBeDefined();
  });

  it('answers Query and Scan, and deletes items', async () => {
    const queried = await call('Query', {
      TableName: PROTO_TABLE,
      KeyConditionExpression: '#c = :c',
      ExpressionAttributeNames: { '#c': 'constructor' },
      ExpressionAttributeValues: { ':c': s('b1') },
    });
    expectSame(queried.Items, [record<AttributeValue>(['constructor', s('b1')], ['__proto__', s('p1')])]);
    await shoal.client.send(new DeleteItemCommand({ TableName: PROTO_TABLE, Key: protoKey('b1') }));
    const scanned = await shoal.client.send(new ScanCommand({ TableName: PROTO_TABLE, ReturnConsumedCapacity: 'TOTAL' }));
    expectSame(scanned.Items, [record<AttributeValue>(['constructor', s('t1')], ['toString', n(1)])]);
    expect(scanned.ConsumedCapacity?.TableName).toBe(PROTO_TABLE);
  });
});

describe('key attributes and indexes named like Object.prototype members', () => {
  const collectionKey = (position: number): Item => record(['pk', s('c')], ['__proto__', n(position)]);

  it('page a Query by a sort key named __proto__ and report item collections by table', async () => {
    const written = await call('TransactWriteItems', {
      TransactItems: [1, 2, 3].map((position) => ({
        Put: { TableName: COLLECTION_TABLE, Item: { ...collectionKey(position), toString: s(`t${4 - position}`) } },
      })),
      ReturnItemCollectionMetrics: 'SIZE',
      ReturnConsumedCapacity: 'INDEXES',
    });
    expect(Object.keys((written as { ItemCollectionMetrics: object }).ItemCollectionMetrics)).toEqual([COLLECTION_TABLE]);

    const pages: unknown[] = [];
    let startKey: Item | undefined;
    for (let page = 0; page < 5; page++) {
      const answer = (await call('Query', {
        TableName: COLLECTION_TABLE,
        KeyConditionExpression: 'pk = :c',
        ExpressionAttributeValues: { ':c': s('c') },
        // Reads the transaction just written: strongly consistent, as read-after-write requires.
        ConsistentRead: true,
        Limit: 1,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      })) as Response & { LastEvaluatedKey?: Item };
      pages.push(...(answer.Items ?? []));
      startKey = answer.LastEvaluatedKey;
      if (startKey === undefined) break;
    }
    expectSame(pages, [1, 2, 3].map((position) => ({ ...collectionKey(position), toString: s(`t${4 - position}`) })));

    const indexed = await call('Query', {
      TableName: COLLECTION_TABLE,
      IndexName: 'constructor',
      KeyConditionExpression: 'pk = :c AND #t > :t',
      ExpressionAttributeNames: { '#t': 'toString' },
      ExpressionAttributeValues: { ':c': s('c'), ':t': s('t1') },
      ReturnConsumedCapacity: 'INDEXES',
    });
    expectSame(indexed.Items, [{ ...collectionKey(2), toString: s('t2') }, { ...collectionKey(1), toString: s('t3') }]);
    expectSame(
      (indexed.ConsumedCapacity as { LocalSecondaryIndexes?: unknown }).LocalSecondaryIndexes,
      record(['constructor', { CapacityUnits: 0.5 }]),
    );
  });

  it('expire items by a TTL attribute named constructor', async () => {
    await shoal.client.send(
      new UpdateTimeToLiveCommand({ TableName: COLLECTION_TABLE, TimeToLiveSpecification: { Enabled: true, AttributeName: 'constructor' } }),
    );
    const expired = Math.floor(Date.now() / 1000) - 60;
    await call('PutItem', { TableName: COLLECTION_TABLE, Item: { ...collectionKey(9), constructor: n(expired) } });
    await shoal.router.sweepTtl();
    expect(await get(COLLECTION_TABLE, collectionKey(9))).toBeUndefined();
    // Items without the attribute stay: they do not inherit one.
    expect(await get(COLLECTION_TABLE, collectionKey(1))).toBeDefined();
  });
});

describe('names like Object.prototype members in legacy parameters and table settings', () => {
  it('are attributes for AttributesToGet, AttributeUpdates and Expected', async () => {
    const itemKey = record<AttributeValue>(['pk', s('legacy')], ['__proto__', n(1)]);
    await call('PutItem', { TableName: COLLECTION_TABLE, Item: { ...itemKey, toString: s('x') }, Expected: record(['constructor', { Exists: false }]) });
    await call('UpdateItem', {
      TableName: COLLECTION_TABLE,
      Key: itemKey,
      AttributeUpdates: record(['constructor', { Action: 'PUT', Value: s('set') }], ['toString', { Action: 'DELETE' }]),
      Expected: record(['toString', { Value: s('x') }], ['hasOwnProperty', { Exists: false }]),
    });
    const got = await call('GetItem', { TableName: COLLECTION_TABLE, Key: itemKey, AttributesToGet: ['__proto__', 'constructor', 'toString'] });
    expectSame(got.Item, record(['__proto__', n(1)], ['constructor', s('set')]));
  });

  it('name provisioned indexes whose throughput is kept and described', async () => {
    const throughput = { ReadCapacityUnits: 3, WriteCapacityUnits: 4 };
    await createTable(shoal.client, {
      TableName: 'provisioned-names',
      BillingMode: 'PROVISIONED',
      ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 },
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'toString', AttributeType: 'S' },
      ],
      KeySchema: keySchema('pk'),
      GlobalSecondaryIndexes: ['constructor', '__proto__'].map((IndexName) => ({
        IndexName,
        KeySchema: keySchema('toString'),
        Projection: { ProjectionType: 'ALL' },
        ProvisionedThroughput: throughput,
      })),
    });
    const described = await shoal.client.send(new DescribeTableCommand({ TableName: 'provisioned-names' }));
    expect(
      described.Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.ProvisionedThroughput?.ReadCapacityUnits, index.ProvisionedThroughput?.WriteCapacityUnits]),
    ).toEqual([
      ['constructor', 3, 4],
      ['__proto__', 3, 4],
    ]);
  });
});
