import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { s } from './helpers/attribute-values.ts';
import { eventuallyConsistent } from './helpers/eventually.ts';
import { createTable, filler, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

/**
 * Capacity units as DynamoDB counts them. Item sizes are the attribute names' lengths plus the values'
 * (strings by UTF-8 length): { pk: 'a', sk: 'b', data: 1500 × 'x' } is 3 + 3 + 1504 = 1510 bytes.
 */

const shoal = shoalPerFile();

/** An item of plain strings: 3 + 3 + 4 + dataBytes bytes. */
const item = (pk: string, sk: string, dataBytes: number) => ({ pk: s(pk), sk: s(sk), data: s(filler(dataBytes)) });

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'plain',
    ...keyedBy(['pk', 'S'], ['sk', 'S']),
  });
  await createTable(shoal.client, {
    TableName: 'indexed',
    ...keyedBy(['pk', 'S'], ['sk', 'S'], ['g', 'S'], ['l', 'S']),
    GlobalSecondaryIndexes: [
      { IndexName: 'by-g', KeySchema: keySchema('g'), Projection: { ProjectionType: 'KEYS_ONLY' } },
    ],
    LocalSecondaryIndexes: [
      {
        IndexName: 'by-l',
        KeySchema: keySchema('pk', 'l'),
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  });
});

describe('single-item operations', () => {
  it('charges writes by the 1 KB of the larger of the old and new item', async () => {
    const put = await shoal.client.send(
      new PutItemCommand({ TableName: 'plain', Item: item('a', 'b', 1500), ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(put.ConsumedCapacity).toEqual({ TableName: 'plain', CapacityUnits: 2 });
    // 5010 bytes replacing 1510: five units.
    const bigger = await shoal.client.send(
      new PutItemCommand({ TableName: 'plain', Item: item('a', 'b', 5000), ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(bigger.ConsumedCapacity?.CapacityUnits).toBe(5);
    // 110 bytes replacing 5010: still five.
    const smaller = await shoal.client.send(
      new PutItemCommand({ TableName: 'plain', Item: item('a', 'b', 100), ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(smaller.ConsumedCapacity?.CapacityUnits).toBe(5);
    const absent = await shoal.client.send(
      new DeleteItemCommand({ TableName: 'plain', Key: { pk: s('none'), sk: s('none') }, ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(absent.ConsumedCapacity?.CapacityUnits).toBe(1);
    const none = await shoal.client.send(new PutItemCommand({ TableName: 'plain', Item: item('a', 'b', 100), ReturnConsumedCapacity: 'NONE' }));
    expect(none.ConsumedCapacity).toBeUndefined();
  });

  it('charges reads by 4 KB, half for an eventually consistent read, at least one unit', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'plain', Item: item('r', '1', 5000) }));
    const get = (ConsistentRead: boolean, sk = '1') =>
      shoal.client.send(
        new GetItemCommand({ TableName: 'plain', Key: { pk: s('r'), sk: s(sk) }, ConsistentRead, ReturnConsumedCapacity: 'TOTAL' }),
      );
    expect((await get(true)).ConsumedCapacity).toEqual({ TableName: 'plain', CapacityUnits: 2 });
    expect((await get(false)).ConsumedCapacity?.CapacityUnits).toBe(1);
    expect((await get(true, 'absent')).ConsumedCapacity?.CapacityUnits).toBe(1);
    expect((await get(false, 'absent')).ConsumedCapacity?.CapacityUnits).toBe(0.5);
  });

  it('breaks writes down by index with INDEXES', async () => {
    // 1516 bytes: the table and the ALL-projected LSI two units each, the KEYS_ONLY GSI entry one.
    const indexedItem = { ...item('a', 'c', 1500), g: s('g1'), l: s('l1') };
    const put = await shoal.client.send(
      new PutItemCommand({ TableName: 'indexed', Item: indexedItem, ReturnConsumedCapacity: 'INDEXES' }),
    );
    expect(put.ConsumedCapacity).toEqual({
      TableName: 'indexed',
      CapacityUnits: 5,
      Table: { CapacityUnits: 2 },
      GlobalSecondaryIndexes: { 'by-g': { CapacityUnits: 1 } },
      LocalSecondaryIndexes: { 'by-l': { CapacityUnits: 2 } },
    });
    const update = (UpdateExpression: string, value: string) =>
      shoal.client.send(
        new UpdateItemCommand({
          TableName: 'indexed',
          Key: { pk: s('a'), sk: s('c') },
          UpdateExpression,
          ExpressionAttributeValues: { ':v': s(value) },
          ReturnConsumedCapacity: 'INDEXES',
        }),
      );
    // A new GSI key: the old entry deleted and a new one put.
    const moved = await update('SET g = :v', 'g2');
    expect(moved.ConsumedCapacity?.GlobalSecondaryIndexes).toEqual({ 'by-g': { CapacityUnits: 2 } });
    expect(moved.ConsumedCapacity?.CapacityUnits).toBe(6);
    // An attribute the GSI does not project: no GSI write.
    const unprojected = await update('SET extra = :v', 'o');
    expect(unprojected.ConsumedCapacity?.GlobalSecondaryIndexes).toBeUndefined();
    expect(unprojected.ConsumedCapacity?.CapacityUnits).toBe(4);
    // TOTAL folds the index writes into one number.
    const total = await shoal.client.send(
      new DeleteItemCommand({ TableName: 'indexed', Key: { pk: s('a'), sk: s('c') }, ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(total.ConsumedCapacity).toEqual({ TableName: 'indexed', CapacityUnits: 5 });
  });

  it('charges nothing to a GSI for an item without its key', async () => {
    const put = await shoal.client.send(
      new PutItemCommand({ TableName: 'indexed', Item: item('a', 'sparse', 10), ReturnConsumedCapacity: 'INDEXES' }),
    );
    expect(put.ConsumedCapacity).toEqual({ TableName: 'indexed', CapacityUnits: 1, Table: { CapacityUnits: 1 } });
  });
});

describe('Query and Scan', () => {
  beforeAll(async () => {
    for (const sk of ['1', '2', '3']) await shoal.client.send(new PutItemCommand({ TableName: 'plain', Item: item('q', sk, 1500) }));
  });

  it('charges the sum of the items read, rounded up to 4 KB once', async () => {
    // Three items of 1510 bytes: 4530 bytes, two 4 KB units.
    const query = (ConsistentRead: boolean) =>
      shoal.client.send(
        new QueryCommand({
          TableName: 'plain',
          KeyConditionExpression: 'pk = :q',
          ExpressionAttributeValues: { ':q': s('q') },
          ConsistentRead,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
    expect((await query(true)).ConsumedCapacity).toEqual({ TableName: 'plain', CapacityUnits: 2 });
    expect((await query(false)).ConsumedCapacity?.CapacityUnits).toBe(1);
    // The filter does not reduce what was read.
    const filtered = await shoal.client.send(
      new QueryCommand({
        TableName: 'plain',
        KeyConditionExpression: 'pk = :q',
        FilterExpression: 'attribute_not_exists(#d)',
        ExpressionAttributeNames: { '#d': 'data' },
        ExpressionAttributeValues: { ':q': s('q') },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(filtered.Count).toBe(0);
    expect(filtered.ConsumedCapacity?.CapacityUnits).toBe(1);
  });

  it('charges an index query to the index', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: 'indexed', Item: { ...item('i', '1', 10), g: s('gq') } }));
    const result = await eventuallyConsistent(
      () =>
        shoal.client.send(
          new QueryCommand({
            TableName: 'indexed',
            IndexName: 'by-g',
            KeyConditionExpression: 'g = :g',
            ExpressionAttributeValues: { ':g': s('gq') },
            ReturnConsumedCapacity: 'INDEXES',
          }),
        ),
      (answer) => expect(answer.Count).toBe(1),
    );
    expect(result.ConsumedCapacity).toEqual({
      TableName: 'indexed',
      CapacityUnits: 0.5,
      Table: { CapacityUnits: 0 },
      GlobalSecondaryIndexes: { 'by-g': { CapacityUnits: 0.5 } },
    });
  });

  it('charges a scan for every item read, matched or not', async () => {
    // The table holds a/b (110 bytes), r/1 (5010) and q/1-3 (3 × 1510): 9650 bytes, three 4 KB units.
    const scan = await shoal.client.send(
      new ScanCommand({ TableName: 'plain', FilterExpression: 'pk = :q', ExpressionAttributeValues: { ':q': s('q') }, ReturnConsumedCapacity: 'TOTAL', ConsistentRead: true }),
    );
    expect(scan.Count).toBe(3);
    expect(scan.ScannedCount).toBe(5);
    expect(scan.ConsumedCapacity).toEqual({ TableName: 'plain', CapacityUnits: 3 });
  });
});

describe('batches and transactions', () => {
  it('sums batch capacity per table', async () => {
    const written = await shoal.client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          plain: [{ PutRequest: { Item: item('b', '1', 1500) } }, { PutRequest: { Item: item('b', '2', 100) } }],
          indexed: [{ PutRequest: { Item: item('b', '1', 100) } }],
        },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(written.ConsumedCapacity).toEqual([
      { TableName: 'plain', CapacityUnits: 3 },
      { TableName: 'indexed', CapacityUnits: 1 },
    ]);
    const read = await shoal.client.send(
      new BatchGetItemCommand({
        RequestItems: { plain: { Keys: [{ pk: s('b'), sk: s('1') }, { pk: s('b'), sk: s('2') }, { pk: s('b'), sk: s('9') }] } },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(read.ConsumedCapacity).toEqual([{ TableName: 'plain', CapacityUnits: 1.5 }]);
  });

  it('doubles transactional reads and writes', async () => {
    const written = await shoal.client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: 'plain', Item: item('t', '1', 1500) } },
          { Put: { TableName: 'plain', Item: item('t', '2', 100) } },
        ],
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(written.ConsumedCapacity).toEqual([{ TableName: 'plain', CapacityUnits: 6 }]);
    const read = await shoal.client.send(
      new TransactGetItemsCommand({
        TransactItems: [{ Get: { TableName: 'plain', Key: { pk: s('t'), sk: s('1') } } }, { Get: { TableName: 'plain', Key: { pk: s('t'), sk: s('2') } } }],
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    expect(read.ConsumedCapacity).toEqual([{ TableName: 'plain', CapacityUnits: 4 }]);
  });
});
