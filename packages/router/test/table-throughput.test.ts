/**
 * TableThroughputGate over a real in-memory store, on a driven clock: PROVISIONED tables admitted up
 * to this router's share of their units (the least cost taken at once, the rest once served), GSI
 * reads against the index's own units, on-demand tables untouched, new units after UpdateTable; and
 * through a router, throttled batch items handed back unprocessed as DynamoDB does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  CreateTableCommand,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDbError, type TableRecord, type TableSchema } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { TableThroughputGate } from '../src/cluster/table-throughput.ts';
import { startRouter, type Router } from '../src/index.ts';

const schema = (name: string, tableId: number): TableSchema => ({
  name,
  tableId,
  hashKey: { name: 'pk', type: 'S' },
  indexes: [{ name: 'byOwner', kind: 'GSI', indexId: tableId + 100, hashKey: { name: 'owner', type: 'S' }, projection: { type: 'ALL' } }],
});

const record = (table: TableSchema, provisioned?: { reads: number; writes: number; indexReads?: number }): TableRecord => ({
  schema: table,
  status: 'ACTIVE',
  createdAt: 0,
  billingMode: provisioned === undefined ? 'PAY_PER_REQUEST' : 'PROVISIONED',
  ...(provisioned === undefined
    ? {}
    : {
        provisioned: { readCapacityUnits: provisioned.reads, writeCapacityUnits: provisioned.writes },
        indexThroughput: { byOwner: { readCapacityUnits: provisioned.indexReads ?? provisioned.reads, writeCapacityUnits: provisioned.writes } },
      }),
  tags: {},
});

describe('TableThroughputGate', () => {
  let store: LocalStore;
  let now = 0;
  const records = new Map<string, TableRecord>();
  let gate: TableThroughputGate;
  const provisioned = schema('provisioned', 1);
  const onDemand = schema('ondemand', 2);

  const put = (table: TableSchema, pk: string, bytes = 10) =>
    gate.write({ operations: [{ table, kind: 'Put', key: { pk: { S: pk } }, item: { pk: { S: pk }, owner: { S: 'o' }, data: { S: 'x'.repeat(bytes) } } }] });

  const refusal = async (work: Promise<unknown>): Promise<DynamoDbError> => {
    const error = await work.then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(DynamoDbError);
    return error as DynamoDbError;
  };

  beforeAll(async () => {
    store = await openLocalStore({ inMemory: true });
    records.set('provisioned', record(provisioned, { reads: 8, writes: 4, indexReads: 2 }));
    records.set('ondemand', record(onDemand));
    gate = new TableThroughputGate(store.partitions, { tableRecord: (name) => records.get(name), routers: 2, burstSeconds: 1, region: 'ap-south-1', now: () => now });
  });

  afterAll(async () => {
    await store.close();
  });

  it('admits this router\'s share of a PROVISIONED table\'s write units, then throttles as DynamoDB does until the bucket refills', async () => {
    // 4 WCU over 2 routers: 2 a second, 2 of burst.
    await put(provisioned, 'a');
    await put(provisioned, 'b');
    const error = await refusal(put(provisioned, 'c'));
    expect(error.type).toBe('ProvisionedThroughputExceededException');
    expect(error.message).toBe('The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.');
    expect(error.fields).toEqual({ ThrottlingReasons: [{ reason: 'TableWriteProvisionedThroughputExceeded', resource: 'arn:aws:dynamodb:ap-south-1:000000000000:table/provisioned' }] });
    expect(gate.throttled).toBe(1);
    now += 500;
    await put(provisioned, 'c');
    // A 2.5 KB item costs 3 units: admitted on the last token, it leaves the bucket 2 units in debt.
    now += 500;
    await put(provisioned, 'big', 2_500);
    await refusal(put(provisioned, 'd'));
    now += 1_000;
    await refusal(put(provisioned, 'd'));
    now += 600;
    await put(provisioned, 'd');
  });

  it('charges GSI queries to the index\'s own read units, table reads to the table\'s', async () => {
    now += 10_000;
    // The index: 2 RCU over 2 routers, 1 a second.
    const query = () => gate.readRange({ table: provisioned, indexName: 'byOwner', hashValue: { S: 'o' }, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' }, { consistent: false });
    // Each small eventually consistent page costs half a unit.
    expect((await query()).count).toBe(5);
    await query();
    const error = await refusal(query());
    expect(error.message).toMatch(/^The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded/);
    expect(error.fields).toEqual({ ThrottlingReasons: [{ reason: 'IndexReadProvisionedThroughputExceeded', resource: 'arn:aws:dynamodb:ap-south-1:000000000000:table/provisioned/index/byOwner' }] });
    // The table's reads are not held back by the index.
    const found = await gate.get({ table: provisioned, key: { pk: { S: 'a' } } }, { consistent: true });
    expect(found?.item.pk).toEqual({ S: 'a' });
  });

  it('lets on-demand tables through, and takes new units after UpdateTable', async () => {
    for (let i = 0; i < 50; i++) await put(onDemand, `item-${i}`);
    now += 10_000;
    records.set('provisioned', record(provisioned, { reads: 8, writes: 40 }));
    // 20 a second now: 20 writes in a row go through.
    for (let i = 0; i < 20; i++) await put(provisioned, `more-${i}`);
    await refusal(put(provisioned, 'one-too-many'));
  });
});

describe('batch operations under throttling (a router over an in-memory store, the AWS SDK)', () => {
  let store: LocalStore;
  let router: Router;
  let client: DynamoDBClient;
  let now = 0;
  const records = new Map<string, TableRecord>();

  beforeAll(async () => {
    store = await openLocalStore({ inMemory: true });
    const gate = new TableThroughputGate(store.partitions, { tableRecord: (name) => records.get(name), burstSeconds: 1, now: () => now });
    router = await startRouter({ partitions: gate, catalog: store.catalog, port: 0, ttlSweepIntervalMs: 0 });
    client = new DynamoDBClient({ endpoint: `http://127.0.0.1:${router.port}`, region: 'us-east-1', credentials: { accessKeyId: 'shoal', secretAccessKey: 'shoal' }, maxAttempts: 1 });
    await client.send(
      new CreateTableCommand({
        TableName: 'batch',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        BillingMode: 'PROVISIONED',
        ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 4 },
      }),
    );
    records.set('batch', (await store.catalog.get('batch'))!);
  });

  afterAll(async () => {
    client.destroy();
    await router.close();
    await store.close();
  });

  const putRequest = (i: number) => ({ PutRequest: { Item: { pk: { S: `item-${i}` } } } });

  it('hands throttled writes back as UnprocessedItems, and raises the error when none could be written', async () => {
    // 4 write units of burst: the first 4 puts of 10 go in, the other 6 come back to be sent again.
    const written = await client.send(new BatchWriteItemCommand({ RequestItems: { batch: Array.from({ length: 10 }, (_, i) => putRequest(i)) } }));
    const unprocessed = written.UnprocessedItems?.batch ?? [];
    expect(unprocessed).toHaveLength(6);
    expect(unprocessed.map((request) => request.PutRequest?.Item?.pk.S).sort()).toEqual(['item-4', 'item-5', 'item-6', 'item-7', 'item-8', 'item-9']);
    await expect(client.send(new BatchWriteItemCommand({ RequestItems: { batch: unprocessed } }))).rejects.toBeInstanceOf(ProvisionedThroughputExceededException);
    now += 2_000;
    const retried = await client.send(new BatchWriteItemCommand({ RequestItems: { batch: unprocessed.slice(0, 4) } }));
    expect(retried.UnprocessedItems).toEqual({});
  });

  it('hands throttled reads back as UnprocessedKeys', async () => {
    now += 10_000;
    // 1 read unit: two eventually consistent reads of half a unit each.
    const keys = Array.from({ length: 5 }, (_, i) => ({ pk: { S: `item-${i}` } }));
    const read = await client.send(new BatchGetItemCommand({ RequestItems: { batch: { Keys: keys } } }));
    expect(read.Responses?.batch).toHaveLength(2);
    expect(read.UnprocessedKeys?.batch?.Keys).toHaveLength(3);
    await expect(client.send(new BatchGetItemCommand({ RequestItems: { batch: { Keys: keys } } }))).rejects.toBeInstanceOf(ProvisionedThroughputExceededException);
  });
});
