import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeEndpointsCommand,
  DescribeLimitsCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ListTablesCommand,
  ListTagsOfResourceCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import type { CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventuallyConsistent } from './helpers/eventually.ts';
import { failure, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile, withShoal } from './helpers/shoal.ts';

const shoal = shoalPerFile();
let client: DynamoDBClient;

beforeAll(async () => {
  client = shoal.client;
});

const simpleTable = (name: string): CreateTableCommandInput => ({
  TableName: name,
  ...keyedBy(['pk', 'S']),
  BillingMode: 'PAY_PER_REQUEST',
});

const rangeTable = (name: string): CreateTableCommandInput => ({
  TableName: name,
  ...keyedBy(['pk', 'S'], ['sk', 'N']),
  ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 7 },
});

/**
 * Bounded by time, not attempts: on a cluster a new GSI's partitions elect leaders before its backfill
 * starts, which takes seconds on a loaded machine (DynamoDB's own backfills take minutes).
 */
async function waitForIndexActive(table: string, index: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    if (Table?.GlobalSecondaryIndexes?.find((gsi) => gsi.IndexName === index)?.IndexStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`index ${index} never became ACTIVE`);
}

describe('CreateTable', () => {
  it('creates an ACTIVE hash-key table with the full description', async () => {
    const { TableDescription: table } = await client.send(new CreateTableCommand(simpleTable('create_simple')));
    expect(table).toMatchObject({
      TableName: 'create_simple',
      TableStatus: 'ACTIVE',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      TableArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/create_simple',
      ItemCount: 0,
      TableSizeBytes: 0,
      BillingModeSummary: { BillingMode: 'PAY_PER_REQUEST' },
      ProvisionedThroughput: { NumberOfDecreasesToday: 0, ReadCapacityUnits: 0, WriteCapacityUnits: 0 },
      DeletionProtectionEnabled: false,
    });
    expect(table?.TableId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(table?.CreationDateTime).toBeInstanceOf(Date);
    // The SDK's waiter succeeds at once.
    const waited = await waitUntilTableExists({ client, maxWaitTime: 5, minDelay: 1 }, { TableName: 'create_simple' });
    expect(waited.state).toBe('SUCCESS');
  });

  it('creates a provisioned table with a range key, LSIs and GSIs', async () => {
    const { TableDescription: table } = await client.send(
      new CreateTableCommand({
        ...rangeTable('create_indexed'),
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'N' },
          { AttributeName: 'lsk', AttributeType: 'S' },
          { AttributeName: 'gpk', AttributeType: 'B' },
        ],
        LocalSecondaryIndexes: [
          {
            IndexName: 'byLsk',
            KeySchema: [
              { AttributeName: 'pk', KeyType: 'HASH' },
              { AttributeName: 'lsk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['a', 'b'] },
          },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byGpk',
            KeySchema: [{ AttributeName: 'gpk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
            Projection: { ProjectionType: 'KEYS_ONLY' },
            ProvisionedThroughput: { ReadCapacityUnits: 2, WriteCapacityUnits: 3 },
          },
        ],
        Tags: [{ Key: 'team', Value: 'storage' }],
      }),
    );
    expect(table?.ProvisionedThroughput).toEqual({ NumberOfDecreasesToday: 0, ReadCapacityUnits: 5, WriteCapacityUnits: 7 });
    expect(table?.BillingModeSummary).toBeUndefined();
    expect(table?.LocalSecondaryIndexes).toEqual([
      {
        IndexName: 'byLsk',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'lsk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['a', 'b'] },
        IndexSizeBytes: 0,
        ItemCount: 0,
        IndexArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/create_indexed/index/byLsk',
      },
    ]);
    expect(table?.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'byGpk',
        KeySchema: [{ AttributeName: 'gpk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
        Projection: { ProjectionType: 'KEYS_ONLY' },
        IndexStatus: 'ACTIVE',
        ProvisionedThroughput: { NumberOfDecreasesToday: 0, ReadCapacityUnits: 2, WriteCapacityUnits: 3 },
        IndexSizeBytes: 0,
        ItemCount: 0,
        IndexArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/create_indexed/index/byGpk',
      },
    ]);
    expect(table?.AttributeDefinitions?.map((d) => d.AttributeName).sort()).toEqual(['gpk', 'lsk', 'pk', 'sk']);
    const { Tags } = await client.send(new ListTagsOfResourceCommand({ ResourceArn: table?.TableArn }));
    expect(Tags).toEqual([{ Key: 'team', Value: 'storage' }]);
  });

  it('rejects a table that exists', async () => {
    await client.send(new CreateTableCommand(simpleTable('create_twice')));
    expect(await failure(client.send(new CreateTableCommand(simpleTable('create_twice'))))).toEqual({
      name: 'ResourceInUseException',
      message: 'Table already exists: create_twice',
    });
  });

  it.each<[string, CreateTableCommandInput, string]>([
    ['a name too short', { ...simpleTable('ab') }, "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3"],
    ['a name with bad characters', { ...simpleTable('bad name!') }, "1 validation error detected: Value 'bad name!' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"],
    ['a name too long', { ...simpleTable('x'.repeat(256)) }, `1 validation error detected: Value '${'x'.repeat(256)}' at 'tableName' failed to satisfy constraint: Member must have length less than or equal to 255`],
    [
      'several violations at once',
      { ...simpleTable('!'), BillingMode: 'FREE' as 'PROVISIONED' },
      "3 validation errors detected: Value '!' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; " +
        "Value '!' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3; " +
        "Value 'FREE' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]",
    ],
    ['a missing key schema', { ...simpleTable('no_keys'), KeySchema: undefined }, "1 validation error detected: Value null at 'keySchema' failed to satisfy constraint: Member must not be null"],
    [
      'three key elements',
      { ...simpleTable('three_keys'), KeySchema: [{ AttributeName: 'a', KeyType: 'HASH' }, { AttributeName: 'b', KeyType: 'RANGE' }, { AttributeName: 'c', KeyType: 'RANGE' }] },
      "1 validation error detected: Value '[{\"AttributeName\":\"a\",\"KeyType\":\"HASH\"}, {\"AttributeName\":\"b\",\"KeyType\":\"RANGE\"}, {\"AttributeName\":\"c\",\"KeyType\":\"RANGE\"}]' at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2",
    ],
    [
      'a bad key type',
      { ...simpleTable('bad_key_type'), KeySchema: [{ AttributeName: 'pk', KeyType: 'PRIMARY' as 'HASH' }] },
      "1 validation error detected: Value 'PRIMARY' at 'keySchema.1.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]",
    ],
    [
      'a bad attribute type',
      { ...simpleTable('bad_attr_type'), AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'BOOL' as 'S' }] },
      "1 validation error detected: Value 'BOOL' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [S, N, B]",
    ],
    [
      'PROVISIONED without throughput',
      { ...simpleTable('no_throughput'), BillingMode: 'PROVISIONED' as const },
      'One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED',
    ],
    [
      'PAY_PER_REQUEST with throughput',
      { ...simpleTable('ppr_throughput'), ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } },
      'One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST',
    ],
    [
      'zero capacity',
      { ...rangeTable('zero_capacity'), ProvisionedThroughput: { ReadCapacityUnits: 0, WriteCapacityUnits: 1 } },
      "1 validation error detected: Value '0' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1",
    ],
    [
      'an unused attribute definition',
      { ...simpleTable('unused_def'), AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'x', AttributeType: 'S' }] },
      'One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions',
    ],
    [
      'an undefined key attribute',
      { ...simpleTable('undefined_key'), AttributeDefinitions: [{ AttributeName: 'other', AttributeType: 'S' }] },
      'One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [pk], AttributeDefinitions: [other]',
    ],
    [
      'a RANGE-first key schema',
      { ...simpleTable('range_first'), KeySchema: [{ AttributeName: 'pk', KeyType: 'RANGE' }] },
      'Invalid KeySchema: The first KeySchemaElement is not a HASH key type',
    ],
    [
      'hash and range with the same name',
      {
        ...simpleTable('same_names'),
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'pk', KeyType: 'RANGE' }],
      },
      'Both the Hash Key and the Range Key element in the KeySchema have the same name',
    ],
    [
      'an LSI on a table without a range key',
      {
        ...simpleTable('lsi_no_range'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'l', AttributeType: 'S' }],
        LocalSecondaryIndexes: [{ IndexName: 'byL', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'l', KeyType: 'RANGE' }], Projection: { ProjectionType: 'ALL' } }],
      },
      'One or more parameter values were invalid: Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex',
    ],
    [
      'an LSI with another hash key',
      {
        ...rangeTable('lsi_other_hash'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'l', AttributeType: 'S' }],
        LocalSecondaryIndexes: [{ IndexName: 'byL', KeySchema: [{ AttributeName: 'l', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }], Projection: { ProjectionType: 'ALL' } }],
      },
      'One or more parameter values were invalid: Index KeySchema does not have the same leading hash key as table KeySchema for index: byL. index hash key: l, table hash key: pk',
    ],
    [
      'an unused definition next to an index',
      {
        ...rangeTable('unused_with_index'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'g', AttributeType: 'S' }, { AttributeName: 'zzz', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' }, ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } }],
      },
      'One or more parameter values were invalid: Some AttributeDefinitions are not used. AttributeDefinitions: [pk, sk, g, zzz], keys used: [pk, sk, g]',
    ],
    [
      'NonKeyAttributes without INCLUDE',
      {
        ...simpleTable('nonkey_all'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL', NonKeyAttributes: ['x'] } }],
      },
      'One or more parameter values were invalid: ProjectionType is ALL, but NonKeyAttributes is specified',
    ],
    [
      'a provisioned GSI without throughput',
      {
        ...rangeTable('gsi_no_throughput'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'g', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } }],
      },
      'One or more parameter values were invalid: ProvisionedThroughput is not specified for index: byG',
    ],
    [
      'a duplicated attribute definition',
      { ...simpleTable('dup_def'), AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'pk', AttributeType: 'N' }] },
      'Attribute Name is duplicated: pk',
    ],
    [
      'INCLUDE without NonKeyAttributes',
      {
        ...simpleTable('include_none'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'INCLUDE' } }],
      },
      'One or more parameter values were invalid: ProjectionType is INCLUDE, but NonKeyAttributes is not specified',
    ],
    [
      'a repeated NonKeyAttribute',
      {
        ...simpleTable('include_twice'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [
          { IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['x', 'y', 'x'] } },
        ],
      },
      'One or more parameter values were invalid: Duplicate element in NonKeyAttributes: x',
    ],
    [
      'a multi-attribute GSI key (not built)',
      {
        ...simpleTable('multi_key'),
        AttributeDefinitions: ['pk', 'a', 'b'].map((name) => ({ AttributeName: name, AttributeType: 'S' as const })),
        GlobalSecondaryIndexes: [
          { IndexName: 'byAB', KeySchema: [{ AttributeName: 'a', KeyType: 'HASH' }, { AttributeName: 'b', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } },
        ],
      },
      'Shoal does not support multi-attribute keys in global secondary indexes yet: index byAB has 2 HASH and 0 RANGE attributes; at most one of each is supported',
    ],
    [
      'a GSI key with RANGE before HASH attributes',
      {
        ...simpleTable('key_order'),
        AttributeDefinitions: ['pk', 'a', 'b', 'c'].map((name) => ({ AttributeName: name, AttributeType: 'S' as const })),
        GlobalSecondaryIndexes: [
          {
            IndexName: 'byABC',
            KeySchema: [{ AttributeName: 'a', KeyType: 'HASH' }, { AttributeName: 'b', KeyType: 'RANGE' }, { AttributeName: 'c', KeyType: 'HASH' }],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      },
      'One or more parameter values were invalid: All HASH key attributes must precede RANGE key attributes in the KeySchema',
    ],
    [
      'an unknown table class',
      { ...simpleTable('bad_class'), TableClass: 'GLACIER' as 'STANDARD' },
      'Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS].',
    ],
    [
      'the infrequent-access table class (not built)',
      { ...simpleTable('ia_class'), TableClass: 'STANDARD_INFREQUENT_ACCESS' },
      'Shoal does not support table classes yet: TableClass must be STANDARD',
    ],
    [
      'a stream view type on a disabled stream',
      { ...simpleTable('stream_off'), StreamSpecification: { StreamEnabled: false, StreamViewType: 'KEYS_ONLY' } },
      'One or more parameter values were invalid: Table is being created with a stream disabled, UpdateViewType should not be specified',
    ],
    [
      'duplicate index names',
      {
        ...rangeTable('dup_index'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'g', AttributeType: 'S' }],
        LocalSecondaryIndexes: [{ IndexName: 'idx', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'g', KeyType: 'RANGE' }], Projection: { ProjectionType: 'ALL' } }],
        GlobalSecondaryIndexes: [{ IndexName: 'idx', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' }, ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } }],
      },
      'One or more parameter values were invalid: Duplicate index name: idx',
    ],
    [
      'six LSIs',
      {
        ...rangeTable('six_lsis'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, ...[1, 2, 3, 4, 5, 6].map((i) => ({ AttributeName: `l${i}`, AttributeType: 'S' as const }))],
        LocalSecondaryIndexes: [1, 2, 3, 4, 5, 6].map((i) => ({
          IndexName: `lsi${i}`,
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' as const }, { AttributeName: `l${i}`, KeyType: 'RANGE' as const }],
          Projection: { ProjectionType: 'KEYS_ONLY' as const },
        })),
      },
      'One or more parameter values were invalid: Number of LocalSecondaryIndexes exceeds per-table limit of 5',
    ],
    [
      '21 GSIs',
      {
        ...simpleTable('many_gsis'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' as const }, ...Array.from({ length: 21 }, (_, i) => ({ AttributeName: `g${i}`, AttributeType: 'S' as const }))],
        GlobalSecondaryIndexes: Array.from({ length: 21 }, (_, i) => ({
          IndexName: `gsi${i}`,
          KeySchema: [{ AttributeName: `g${i}`, KeyType: 'HASH' as const }],
          Projection: { ProjectionType: 'KEYS_ONLY' as const },
        })),
      },
      'One or more parameter values were invalid: GlobalSecondaryIndex count exceeds the per-table limit of 20',
    ],
    [
      'streams (not built)',
      { ...simpleTable('with_streams'), StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_IMAGE' as const } },
      'Shoal does not support DynamoDB Streams yet: StreamSpecification.StreamEnabled must be false',
    ],
  ])('rejects %s', async (_case, input, message) => {
    expect(await failure(client.send(new CreateTableCommand(input)))).toEqual({ name: 'ValidationException', message });
    expect((await client.send(new ListTablesCommand({}))).TableNames).not.toContain(input.TableName);
  });

  it('accepts 5 LSIs and 20 GSIs', async () => {
    const { TableDescription: table } = await client.send(
      new CreateTableCommand({
        ...rangeTable('max_indexes'),
        BillingMode: 'PAY_PER_REQUEST',
        ProvisionedThroughput: undefined,
        AttributeDefinitions: [
          ...rangeTable('x').AttributeDefinitions!,
          ...Array.from({ length: 5 }, (_, i) => ({ AttributeName: `l${i}`, AttributeType: 'S' as const })),
          ...Array.from({ length: 20 }, (_, i) => ({ AttributeName: `g${i}`, AttributeType: 'N' as const })),
        ],
        LocalSecondaryIndexes: Array.from({ length: 5 }, (_, i) => ({
          IndexName: `lsi${i}`,
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' as const }, { AttributeName: `l${i}`, KeyType: 'RANGE' as const }],
          Projection: { ProjectionType: 'ALL' as const },
        })),
        GlobalSecondaryIndexes: Array.from({ length: 20 }, (_, i) => ({
          IndexName: `gsi${i}`,
          KeySchema: [{ AttributeName: `g${i}`, KeyType: 'HASH' as const }, { AttributeName: 'sk', KeyType: 'RANGE' as const }],
          Projection: { ProjectionType: 'KEYS_ONLY' as const },
        })),
      }),
    );
    expect(table?.LocalSecondaryIndexes).toHaveLength(5);
    expect(table?.GlobalSecondaryIndexes).toHaveLength(20);
  });
});

describe('table lifecycle', () => {
  it('lets exactly one of many concurrent CreateTable calls for a name succeed', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, () => client.send(new CreateTableCommand(simpleTable('create_race')))),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') expect((outcome.reason as Error).name).toBe('ResourceInUseException');
    }
  });

  it('treats names of Object.prototype members as ordinary names', async () => {
    for (const name of ['__proto__', 'constructor']) {
      const { TableDescription } = await client.send(new CreateTableCommand(simpleTable(name)));
      expect((await client.send(new DescribeTableCommand({ TableName: name }))).Table?.TableName).toBe(name);
      await client.send(new TagResourceCommand({ ResourceArn: TableDescription!.TableArn, Tags: [{ Key: '__proto__', Value: name }] }));
      expect((await client.send(new ListTagsOfResourceCommand({ ResourceArn: TableDescription!.TableArn }))).Tags).toEqual([
        { Key: '__proto__', Value: name },
      ]);
    }
    expect((await failure(client.send(new DescribeTableCommand({ TableName: 'toString' })))).name).toBe('ResourceNotFoundException');
    for (const name of ['__proto__', 'constructor']) await client.send(new DeleteTableCommand({ TableName: name }));
  });

  it('forgets the items of a deleted table, also when the name is reused', async () => {
    await client.send(new CreateTableCommand(simpleTable('recreated')));
    await shoal.doc.send(new PutCommand({ TableName: 'recreated', Item: { pk: 'old', v: 1 } }));
    await client.send(new DeleteTableCommand({ TableName: 'recreated' }));
    expect((await failure(shoal.doc.send(new GetCommand({ TableName: 'recreated', Key: { pk: 'old' } })))).name).toBe(
      'ResourceNotFoundException',
    );
    await client.send(new CreateTableCommand(simpleTable('recreated')));
    expect((await shoal.doc.send(new GetCommand({ TableName: 'recreated', Key: { pk: 'old' }, ConsistentRead: true }))).Item).toBeUndefined();
    const { Table } = await client.send(new DescribeTableCommand({ TableName: 'recreated' }));
    expect(Table?.ItemCount).toBe(0);
  });
});

describe('DescribeTable', () => {
  it('describes what CreateTable returned', async () => {
    const { TableDescription: created } = await client.send(new CreateTableCommand(rangeTable('describe_me')));
    const { Table: described } = await client.send(new DescribeTableCommand({ TableName: 'describe_me' }));
    expect(described).toEqual(created);
  });

  it('reports an unknown table', async () => {
    expect(await failure(client.send(new DescribeTableCommand({ TableName: 'no_such_table' })))).toEqual({
      name: 'ResourceNotFoundException',
      message: 'Requested resource not found: Table: no_such_table not found',
    });
  });

  it('validates the name', async () => {
    expect(await failure(client.send(new DescribeTableCommand({ TableName: 'a' })))).toEqual({
      name: 'ValidationException',
      message: "1 validation error detected: Value 'a' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3",
    });
  });
});

describe('ListTables', () => {
  it('pages through sorted names with Limit and ExclusiveStartTableName', async () => {
    const own = ['list_c', 'list_a', 'list_b', 'list_d'];
    for (const name of own) await client.send(new CreateTableCommand(simpleTable(name)));
    const all = (await client.send(new ListTablesCommand({}))).TableNames!;
    expect(all).toEqual([...all].sort());
    const ownInOrder = all.filter((name) => name.startsWith('list_'));
    expect(ownInOrder).toEqual(['list_a', 'list_b', 'list_c', 'list_d']);

    const first = await client.send(new ListTablesCommand({ ExclusiveStartTableName: 'list_', Limit: 3 }));
    expect(first.TableNames).toEqual(['list_a', 'list_b', 'list_c']);
    expect(first.LastEvaluatedTableName).toBe('list_c');
    const second = await client.send(new ListTablesCommand({ ExclusiveStartTableName: first.LastEvaluatedTableName, Limit: 1 }));
    expect(second.TableNames).toEqual(['list_d']);
  });

  it('omits LastEvaluatedTableName on the last page', async () => {
    const page = await client.send(new ListTablesCommand({ ExclusiveStartTableName: 'zzzzzz' }));
    expect(page).toMatchObject({ TableNames: [] });
    expect(page.LastEvaluatedTableName).toBeUndefined();
  });

  it('validates Limit', async () => {
    expect(await failure(client.send(new ListTablesCommand({ Limit: 101 })))).toEqual({
      name: 'ValidationException',
      message: "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100",
    });
    expect((await failure(client.send(new ListTablesCommand({ Limit: 0 })))).message).toContain('Member must have value greater than or equal to 1');
  });
});

describe('DeleteTable', () => {
  it('returns the description as DELETING, then the table is gone', async () => {
    await client.send(new CreateTableCommand(simpleTable('delete_me')));
    const { TableDescription } = await client.send(new DeleteTableCommand({ TableName: 'delete_me' }));
    expect(TableDescription).toMatchObject({ TableName: 'delete_me', TableStatus: 'DELETING' });
    expect((await failure(client.send(new DescribeTableCommand({ TableName: 'delete_me' })))).name).toBe('ResourceNotFoundException');
    expect((await failure(client.send(new DeleteTableCommand({ TableName: 'delete_me' })))).name).toBe('ResourceNotFoundException');
    // The name can be used again.
    const { TableDescription: again } = await client.send(new CreateTableCommand(simpleTable('delete_me')));
    expect(again?.TableStatus).toBe('ACTIVE');
    expect(again?.TableId).not.toBe(TableDescription?.TableId);
  });
});

describe('UpdateTable', () => {
  it('changes provisioned throughput and billing mode', async () => {
    await client.send(new CreateTableCommand(rangeTable('update_throughput')));
    const raised = await client.send(
      new UpdateTableCommand({ TableName: 'update_throughput', ProvisionedThroughput: { ReadCapacityUnits: 10, WriteCapacityUnits: 20 } }),
    );
    expect(raised.TableDescription?.ProvisionedThroughput).toMatchObject({ ReadCapacityUnits: 10, WriteCapacityUnits: 20 });
    expect(
      await failure(
        client.send(new UpdateTableCommand({ TableName: 'update_throughput', ProvisionedThroughput: { ReadCapacityUnits: 10, WriteCapacityUnits: 20 } })),
      ),
    ).toEqual({
      name: 'ValidationException',
      message:
        'The provisioned throughput for the table will not change. The requested value equals the current value. ' +
        'Current ReadCapacityUnits provisioned for the table: 10. Requested ReadCapacityUnits: 10. ' +
        'Current WriteCapacityUnits provisioned for the table: 20. Requested WriteCapacityUnits: 20. ' +
        'Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.',
    });
    const onDemand = await client.send(new UpdateTableCommand({ TableName: 'update_throughput', BillingMode: 'PAY_PER_REQUEST' }));
    expect(onDemand.TableDescription?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(onDemand.TableDescription?.ProvisionedThroughput).toMatchObject({ ReadCapacityUnits: 0, WriteCapacityUnits: 0 });
    expect(
      (await failure(client.send(new UpdateTableCommand({ TableName: 'update_throughput', BillingMode: 'PROVISIONED' })))).message,
    ).toBe('One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED');
    const back = await client.send(
      new UpdateTableCommand({ TableName: 'update_throughput', BillingMode: 'PROVISIONED', ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } }),
    );
    expect(back.TableDescription?.BillingModeSummary).toBeUndefined();
    expect(back.TableDescription?.ProvisionedThroughput).toMatchObject({ ReadCapacityUnits: 1, WriteCapacityUnits: 1 });
  });

  it('requires something to update', async () => {
    await client.send(new CreateTableCommand(simpleTable('update_nothing')));
    const atLeastOne =
      'At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, SSESpecification, ' +
      'ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, DeletionProtectionEnabled, ' +
      'OnDemandThroughput, WarmThroughput or TableClass is required';
    expect((await failure(client.send(new UpdateTableCommand({ TableName: 'update_nothing' })))).message).toBe(atLeastOne);
    // An empty list of index updates counts as nothing, unless something else changes.
    expect((await failure(client.send(new UpdateTableCommand({ TableName: 'update_nothing', GlobalSecondaryIndexUpdates: [] })))).message).toBe(
      atLeastOne,
    );
    expect(
      (
        await failure(
          client.send(new UpdateTableCommand({ TableName: 'update_nothing', GlobalSecondaryIndexUpdates: [], BillingMode: 'PAY_PER_REQUEST' })),
        )
      ).message,
    ).toBe('One or more parameter values were invalid: List of GlobalSecondaryIndexUpdates is empty');
    expect(
      (await failure(client.send(new UpdateTableCommand({ TableName: 'update_nothing', StreamSpecification: { StreamEnabled: false } })))).message,
    ).toBe('Table has no stream to disable: TableName: update_nothing');
    await client.send(new UpdateTableCommand({ TableName: 'update_nothing', TableClass: 'STANDARD' }));
    // Re-sending the current billing mode is accepted.
    await client.send(new UpdateTableCommand({ TableName: 'update_nothing', BillingMode: 'PAY_PER_REQUEST' }));
    expect((await failure(client.send(new UpdateTableCommand({ TableName: 'update_missing', BillingMode: 'PAY_PER_REQUEST' })))).name).toBe(
      'ResourceNotFoundException',
    );
  });

  it('creates a GSI (CREATING, backfilling, then ACTIVE) and deletes it', async () => {
    await client.send(new CreateTableCommand(simpleTable('update_gsi')));
    const created = await client.send(
      new UpdateTableCommand({
        TableName: 'update_gsi',
        AttributeDefinitions: [{ AttributeName: 'email', AttributeType: 'S' }],
        GlobalSecondaryIndexUpdates: [
          { Create: { IndexName: 'byEmail', KeySchema: [{ AttributeName: 'email', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } },
        ],
      }),
    );
    expect(created.TableDescription?.GlobalSecondaryIndexes).toEqual([
      expect.objectContaining({ IndexName: 'byEmail', IndexStatus: 'CREATING', Backfilling: true }),
    ]);
    // Described sorted by name, as DynamoDB does.
    expect(created.TableDescription?.AttributeDefinitions).toEqual([
      { AttributeName: 'email', AttributeType: 'S' },
      { AttributeName: 'pk', AttributeType: 'S' },
    ]);
    await waitForIndexActive('update_gsi', 'byEmail');

    expect(
      await failure(
        client.send(
          new UpdateTableCommand({
            TableName: 'update_gsi',
            AttributeDefinitions: [{ AttributeName: 'a', AttributeType: 'S' }, { AttributeName: 'b', AttributeType: 'S' }],
            GlobalSecondaryIndexUpdates: [
              { Create: { IndexName: 'byA', KeySchema: [{ AttributeName: 'a', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } },
              { Create: { IndexName: 'byB', KeySchema: [{ AttributeName: 'b', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } },
            ],
          }),
        ),
      ),
    ).toEqual({
      name: 'LimitExceededException',
      message: 'Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table',
    });
    expect(
      (
        await failure(
          client.send(
            new UpdateTableCommand({
              TableName: 'update_gsi',
              AttributeDefinitions: [{ AttributeName: 'x', AttributeType: 'S' }],
              GlobalSecondaryIndexUpdates: [
                { Create: { IndexName: 'byNothing', KeySchema: [{ AttributeName: 'undefinedAttr', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } },
              ],
            }),
          ),
        )
      ).message,
    ).toBe('One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [undefinedAttr], AttributeDefinitions: [pk, email, x]');

    const deleted = await client.send(
      new UpdateTableCommand({ TableName: 'update_gsi', GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byEmail' } }] }),
    );
    expect(deleted.TableDescription?.GlobalSecondaryIndexes).toEqual([expect.objectContaining({ IndexName: 'byEmail', IndexStatus: 'DELETING' })]);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: 'update_gsi' }));
    expect(Table?.GlobalSecondaryIndexes).toBeUndefined();
    expect(Table?.AttributeDefinitions).toEqual([{ AttributeName: 'pk', AttributeType: 'S' }]);
    expect(
      await failure(client.send(new UpdateTableCommand({ TableName: 'update_gsi', GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byEmail' } }] }))),
    ).toEqual({ name: 'ResourceNotFoundException', message: 'Requested resource not found: Index byEmail for table update_gsi' });
  });

  it('backfills a new GSI from existing items; counts and sizes come from the data', async () => {
    await client.send(new CreateTableCommand(simpleTable('update_backfill')));
    for (let i = 0; i < 30; i++) {
      await shoal.doc.send(new PutCommand({ TableName: 'update_backfill', Item: { pk: `p${i}`, ...(i % 3 === 0 ? { colour: `c${i % 2}` } : {}) } }));
    }
    // Statistics come from any replica on a cluster: a follower may not have applied the last put yet.
    const { Table: before } = await eventuallyConsistent(
      () => client.send(new DescribeTableCommand({ TableName: 'update_backfill' })),
      ({ Table }) => expect(Table?.ItemCount).toBe(30),
    );
    expect(before?.TableSizeBytes).toBeGreaterThan(0);
    await client.send(
      new UpdateTableCommand({
        TableName: 'update_backfill',
        AttributeDefinitions: [{ AttributeName: 'colour', AttributeType: 'S' }],
        GlobalSecondaryIndexUpdates: [
          { Create: { IndexName: 'byColour', KeySchema: [{ AttributeName: 'colour', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } } },
        ],
      }),
    );
    await waitForIndexActive('update_backfill', 'byColour');
    const { Table: after } = await eventuallyConsistent(
      () => client.send(new DescribeTableCommand({ TableName: 'update_backfill' })),
      ({ Table }) => expect(Table?.GlobalSecondaryIndexes?.[0]).toMatchObject({ IndexName: 'byColour', IndexStatus: 'ACTIVE', ItemCount: 10 }),
    );
    expect(after?.GlobalSecondaryIndexes?.[0].IndexSizeBytes).toBeGreaterThan(0);
  });

  it('applies DynamoDB rules to GlobalSecondaryIndexUpdates', async () => {
    await client.send(
      new CreateTableCommand({
        ...rangeTable('gsi_rules'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'l', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
        LocalSecondaryIndexes: [
          { IndexName: 'byL', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'l', KeyType: 'RANGE' }], Projection: { ProjectionType: 'ALL' } },
        ],
        GlobalSecondaryIndexes: [
          { IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' }, ProvisionedThroughput: { ReadCapacityUnits: 2, WriteCapacityUnits: 2 } },
        ],
      }),
    );
    const update = (input: Omit<ConstructorParameters<typeof UpdateTableCommand>[0], 'TableName'>): Promise<{ name: string; message: string }> =>
      failure(client.send(new UpdateTableCommand({ TableName: 'gsi_rules', ...input })));
    const newIndex = { IndexName: 'byH', KeySchema: [{ AttributeName: 'h', KeyType: 'HASH' as const }], Projection: { ProjectionType: 'ALL' as const } };
    const throughput = { ReadCapacityUnits: 1, WriteCapacityUnits: 1 };

    expect(await update({ GlobalSecondaryIndexUpdates: [{ Create: { ...newIndex, ProvisionedThroughput: throughput } }] })).toEqual({
      name: 'ValidationException',
      message: 'One or more parameter values were invalid: AttributeDefinitions is not specified for index: byH',
    });
    expect(
      (
        await update({
          ProvisionedThroughput: { ReadCapacityUnits: 9, WriteCapacityUnits: 9 },
          AttributeDefinitions: [{ AttributeName: 'h', AttributeType: 'S' }],
          GlobalSecondaryIndexUpdates: [{ Create: { ...newIndex, ProvisionedThroughput: throughput } }],
        })
      ).message,
    ).toBe('One or more parameter values were invalid: You cannot create or delete index while updating table IOPS');
    expect(
      (
        await update({
          AttributeDefinitions: [{ AttributeName: 'h', AttributeType: 'S' }],
          GlobalSecondaryIndexUpdates: [{ Create: newIndex }],
        })
      ).message,
    ).toBe('One or more parameter values were invalid: ProvisionedThroughput must be specified for index: byH');
    expect(
      (
        await update({
          AttributeDefinitions: [{ AttributeName: 'g', AttributeType: 'S' }],
          GlobalSecondaryIndexUpdates: [{ Create: { ...newIndex, IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], ProvisionedThroughput: throughput } }],
        })
      ).message,
    ).toBe('Attempting to create an index which already exists');
    expect(await update({ GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byL' } }] })).toEqual({
      name: 'ValidationException',
      message: 'Cannot delete an index that is not a GlobalSecondaryIndex: byL',
    });
    expect((await update({ GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'ghost', ProvisionedThroughput: throughput } }] }))).toEqual({
      name: 'ResourceNotFoundException',
      message: 'Requested resource not found: Index ghost for table gsi_rules',
    });
    expect((await update({ GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'byG', ProvisionedThroughput: { ReadCapacityUnits: 2, WriteCapacityUnits: 2 } } }] })).message).toBe(
      'The provisioned throughput for the index byG will not change. The requested value equals the current value. ' +
        'Current ReadCapacityUnits provisioned for index byG: 2. Requested ReadCapacityUnits: 2. ' +
        'Current WriteCapacityUnits provisioned for index byG: 2. Requested WriteCapacityUnits: 2. ' +
        'Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.',
    );
    expect((await update({ GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'byG', ProvisionedThroughput: throughput }, Delete: { IndexName: 'byG' } }] })).message).toBe(
      'One or more parameter values were invalid: Only one global secondary index action is allowed per GlobalSecondaryIndexUpdate object',
    );
    expect((await update({ GlobalSecondaryIndexUpdates: [{}] })).message).toBe(
      'One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Delete must not be null',
    );
    expect(
      (await update({ GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'byG', ProvisionedThroughput: throughput } }, { Delete: { IndexName: 'byG' } }] })).message,
    ).toBe('One or more parameter values were invalid: Only one global secondary index update per index is allowed simultaneously. Index: byG');
    expect(
      (await update({ GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'byG', ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 0 } } }] })).message,
    ).toBe(
      "1 validation error detected: Value '0' at 'globalSecondaryIndexUpdates.1.member.update.provisionedThroughput.writeCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1",
    );

    // Definitions not used by the new index, even a conflicting one for an existing key, are ignored.
    const { TableDescription } = await client.send(
      new UpdateTableCommand({
        TableName: 'gsi_rules',
        AttributeDefinitions: [{ AttributeName: 'h', AttributeType: 'N' }, { AttributeName: 'pk', AttributeType: 'B' }, { AttributeName: 'unused', AttributeType: 'S' }],
        GlobalSecondaryIndexUpdates: [{ Create: { ...newIndex, ProvisionedThroughput: throughput } }],
      }),
    );
    expect(TableDescription?.AttributeDefinitions).toEqual([
      { AttributeName: 'g', AttributeType: 'S' },
      { AttributeName: 'h', AttributeType: 'N' },
      { AttributeName: 'l', AttributeType: 'S' },
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'N' },
    ]);
    // The index being built may itself be deleted at once.
    const { TableDescription: afterDelete } = await client.send(
      new UpdateTableCommand({ TableName: 'gsi_rules', GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byH' } }] }),
    );
    expect(afterDelete?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.IndexStatus])).toEqual([
      ['byG', 'ACTIVE'],
      ['byH', 'DELETING'],
    ]);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: 'gsi_rules' }));
    expect(Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName)).toEqual(['byG']);
  });

  it('limits a table to 20 GSIs through UpdateTable too', async () => {
    await client.send(
      new CreateTableCommand({
        ...simpleTable('gsi_twenty'),
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, ...Array.from({ length: 20 }, (_, i) => ({ AttributeName: `g${i}`, AttributeType: 'S' as const }))],
        GlobalSecondaryIndexes: Array.from({ length: 20 }, (_, i) => ({
          IndexName: `gsi${i}`,
          KeySchema: [{ AttributeName: `g${i}`, KeyType: 'HASH' as const }],
          Projection: { ProjectionType: 'KEYS_ONLY' as const },
        })),
      }),
    );
    expect(
      await failure(
        client.send(
          new UpdateTableCommand({
            TableName: 'gsi_twenty',
            AttributeDefinitions: [{ AttributeName: 'g20', AttributeType: 'S' }],
            GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'gsi20', KeySchema: [{ AttributeName: 'g20', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } }],
          }),
        ),
      ),
    ).toEqual({
      name: 'LimitExceededException',
      message: 'Subscriber limit exceeded: Number of global secondary indexes exceeds per-table limit of 20',
    });
  });

  it('updates a GSI throughput', async () => {
    await client.send(
      new CreateTableCommand({
        ...rangeTable('update_gsi_throughput'),
        AttributeDefinitions: [...rangeTable('x').AttributeDefinitions!, { AttributeName: 'g', AttributeType: 'S' }],
        GlobalSecondaryIndexes: [
          { IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' }, ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } },
        ],
      }),
    );
    const { TableDescription } = await client.send(
      new UpdateTableCommand({
        TableName: 'update_gsi_throughput',
        GlobalSecondaryIndexUpdates: [{ Update: { IndexName: 'byG', ProvisionedThroughput: { ReadCapacityUnits: 4, WriteCapacityUnits: 6 } } }],
      }),
    );
    expect(TableDescription?.GlobalSecondaryIndexes?.[0].ProvisionedThroughput).toMatchObject({ ReadCapacityUnits: 4, WriteCapacityUnits: 6 });
  });
});

describe('time to live', () => {
  it('enables, describes and disables TTL with DynamoDB errors', async () => {
    await client.send(new CreateTableCommand(simpleTable('ttl_table')));
    expect(await client.send(new DescribeTimeToLiveCommand({ TableName: 'ttl_table' }))).toMatchObject({
      TimeToLiveDescription: { TimeToLiveStatus: 'DISABLED' },
    });
    const enabled = await client.send(
      new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' } }),
    );
    expect(enabled.TimeToLiveSpecification).toEqual({ Enabled: true, AttributeName: 'expiresAt' });
    expect((await client.send(new DescribeTimeToLiveCommand({ TableName: 'ttl_table' }))).TimeToLiveDescription).toEqual({
      TimeToLiveStatus: 'ENABLED',
      AttributeName: 'expiresAt',
    });
    expect(
      await failure(
        client.send(new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' } })),
      ),
    ).toEqual({ name: 'ValidationException', message: 'TimeToLive is already enabled' });
    for (const enabled of [true, false]) {
      expect(
        await failure(
          client.send(new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: { Enabled: enabled, AttributeName: 'other' } })),
        ),
      ).toEqual({ name: 'ValidationException', message: 'TimeToLive is active on a different AttributeName: current AttributeName is expiresAt' });
    }
    await client.send(new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: { Enabled: false, AttributeName: 'expiresAt' } }));
    expect(
      await failure(
        client.send(new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: { Enabled: false, AttributeName: 'expiresAt' } })),
      ),
    ).toEqual({ name: 'ValidationException', message: 'TimeToLive is already disabled' });
    expect(
      (await failure(client.send(new UpdateTimeToLiveCommand({ TableName: 'ttl_table', TimeToLiveSpecification: undefined })))).message,
    ).toBe("1 validation error detected: Value null at 'timeToLiveSpecification' failed to satisfy constraint: Member must not be null");
    expect(
      (await failure(client.send(new DescribeTimeToLiveCommand({ TableName: 'ttl_missing' })))).name,
    ).toBe('ResourceNotFoundException');
  });
});

describe('the TTL sweeper', () => {
  it('deletes items whose TTL attribute is an epoch-seconds number in the past, and nothing else', async () => {
    let clock = Date.UTC(2026, 0, 1);
    await withShoal({ now: () => clock }, async (local) => {
      await local.client.send(new CreateTableCommand(simpleTable('ttl_sweep')));
      await local.client.send(
        new UpdateTimeToLiveCommand({ TableName: 'ttl_sweep', TimeToLiveSpecification: { Enabled: true, AttributeName: 'exp' } }),
      );
      const nowSeconds = clock / 1000;
      const items = [
        { pk: 'expired', exp: nowSeconds - 60 },
        { pk: 'future', exp: nowSeconds + 3600 },
        { pk: 'string', exp: String(nowSeconds - 60) },
        { pk: 'ancient', exp: nowSeconds - 6 * 365 * 24 * 3600 },
        { pk: 'none' },
      ];
      for (const item of items) await local.doc.send(new PutCommand({ TableName: 'ttl_sweep', Item: item }));
      const present = async (pk: string): Promise<boolean> =>
        (await local.doc.send(new GetCommand({ TableName: 'ttl_sweep', Key: { pk }, ConsistentRead: true }))).Item !== undefined;

      expect(await local.router.sweepTtl()).toBe(1);
      expect(await present('expired')).toBe(false);
      for (const pk of ['future', 'string', 'ancient', 'none']) expect(await present(pk)).toBe(true);

      clock += 2 * 3600 * 1000;
      expect(await local.router.sweepTtl()).toBe(1);
      expect(await present('future')).toBe(false);
      expect(await local.router.sweepTtl()).toBe(0);

      // Disabled TTL: nothing is swept.
      await local.doc.send(new PutCommand({ TableName: 'ttl_sweep', Item: { pk: 'late', exp: clock / 1000 - 1 } }));
      await local.client.send(
        new UpdateTimeToLiveCommand({ TableName: 'ttl_sweep', TimeToLiveSpecification: { Enabled: false, AttributeName: 'exp' } }),
      );
      expect(await local.router.sweepTtl()).toBe(0);
      expect(await present('late')).toBe(true);
    });
  });

  it('removes swept items from the indexes too', async () => {
    const clock = Date.UTC(2026, 0, 1);
    await withShoal({ now: () => clock }, async (local) => {
      await local.client.send(
        new CreateTableCommand({
          ...simpleTable('ttl_indexed'),
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
          GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } }],
        }),
      );
      await local.client.send(
        new UpdateTimeToLiveCommand({ TableName: 'ttl_indexed', TimeToLiveSpecification: { Enabled: true, AttributeName: 'exp' } }),
      );
      await local.doc.send(new PutCommand({ TableName: 'ttl_indexed', Item: { pk: 'old', g: 'x', exp: clock / 1000 - 1 } }));
      await local.doc.send(new PutCommand({ TableName: 'ttl_indexed', Item: { pk: 'new', g: 'x', exp: clock / 1000 + 100 } }));
      expect(await local.router.sweepTtl()).toBe(1);
      await eventuallyConsistent(
        () => local.doc.send(new QueryCommand({ TableName: 'ttl_indexed', IndexName: 'byG', KeyConditionExpression: 'g = :g', ExpressionAttributeValues: { ':g': 'x' } })),
        ({ Items }) => expect(Items).toEqual([{ pk: 'new', g: 'x' }]),
      );
    });
  });

  it('sweeps on past its first 10 pages while they hold expired items, and over several sweeps where they do not', async () => {
    const clock = Date.UTC(2026, 0, 1);
    await withShoal({ now: () => clock }, async (local) => {
      await local.client.send(new CreateTableCommand(simpleTable('ttl_many')));
      await local.client.send(
        new UpdateTimeToLiveCommand({ TableName: 'ttl_many', TimeToLiveSpecification: { Enabled: true, AttributeName: 'exp' } }),
      );
      const count = 1100;
      for (let i = 0; i < count; i += 25) {
        await Promise.all(
          Array.from({ length: 25 }, (_, j) =>
            local.doc.send(new PutCommand({ TableName: 'ttl_many', Item: { pk: `item${i + j}`, exp: clock / 1000 - 1 } })),
          ),
        );
      }
      // Every page holds expired items: one sweep goes through all 11.
      expect(await local.router.sweepTtl()).toBe(count);
      // Unexpired items fill the first 10 pages a sweep reads (in the table's scan order): the expired
      // ones after them wait for the next sweep.
      for (let i = 0; i < count; i += 25) {
        await Promise.all(Array.from({ length: 25 }, (_, j) => local.doc.send(new PutCommand({ TableName: 'ttl_many', Item: { pk: `item${i + j}` } }))));
      }
      const order: string[] = [];
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await local.doc.send(new ScanCommand({ TableName: 'ttl_many', ExclusiveStartKey: startKey }));
        for (const item of page.Items ?? []) order.push(String(item.pk));
        startKey = page.LastEvaluatedKey;
      } while (startKey !== undefined);
      expect(order).toHaveLength(count);
      for (let i = 0; i < count; i += 25) {
        await Promise.all(
          order.slice(i, i + 25).map((pk, j) =>
            local.doc.send(new PutCommand({ TableName: 'ttl_many', Item: { pk, exp: i + j < 1000 ? clock / 1000 + 3600 : clock / 1000 - 1 } })),
          ),
        );
      }
      let deleted = 0;
      let sweeps = 0;
      while (deleted < count - 1000 && sweeps < 10) {
        deleted += await local.router.sweepTtl();
        sweeps++;
      }
      expect(deleted).toBe(count - 1000);
      expect(sweeps).toBeGreaterThan(1);
    });
  });

  it('runs on its own timer', async () => {
    await withShoal({ ttlSweepIntervalMs: 20 }, async (local) => {
      await local.client.send(new CreateTableCommand(simpleTable('ttl_timer')));
      await local.client.send(
        new UpdateTimeToLiveCommand({ TableName: 'ttl_timer', TimeToLiveSpecification: { Enabled: true, AttributeName: 'exp' } }),
      );
      await local.doc.send(new PutCommand({ TableName: 'ttl_timer', Item: { pk: 'a', exp: Math.floor(Date.now() / 1000) - 10 } }));
      let gone = false;
      for (let attempt = 0; attempt < 500 && !gone; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        gone = (await local.doc.send(new GetCommand({ TableName: 'ttl_timer', Key: { pk: 'a' }, ConsistentRead: true }))).Item === undefined;
      }
      expect(gone).toBe(true);
    });
  });
});

describe('tags', () => {
  it('tags, lists and untags a table by ARN', async () => {
    const { TableDescription } = await client.send(new CreateTableCommand(simpleTable('tagged')));
    const arn = TableDescription!.TableArn!;
    await client.send(new TagResourceCommand({ ResourceArn: arn, Tags: [{ Key: 'env', Value: 'test' }, { Key: 'owner', Value: 'me' }] }));
    expect((await client.send(new ListTagsOfResourceCommand({ ResourceArn: arn }))).Tags).toEqual([
      { Key: 'env', Value: 'test' },
      { Key: 'owner', Value: 'me' },
    ]);
    await client.send(new UntagResourceCommand({ ResourceArn: arn, TagKeys: ['env'] }));
    expect((await client.send(new ListTagsOfResourceCommand({ ResourceArn: arn }))).Tags).toEqual([{ Key: 'owner', Value: 'me' }]);
  });

  it('enforces tag limits and ARN rules', async () => {
    const { TableDescription } = await client.send(new CreateTableCommand(simpleTable('tag_limits')));
    const arn = TableDescription!.TableArn!;
    const tagFailure = async (tags: { Key: string; Value: string }[]): Promise<string> =>
      (await failure(client.send(new TagResourceCommand({ ResourceArn: arn, Tags: tags })))).message;
    expect(await tagFailure(Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })))).toBe(
      'Number of Tags exceed the current limit for the provided ResourceArn',
    );
    await client.send(new TagResourceCommand({ ResourceArn: arn, Tags: Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) }));
    expect(await tagFailure([{ Key: 'one-more', Value: 'v' }])).toBe('Number of Tags exceed the current limit for the provided ResourceArn');
    expect(await tagFailure([{ Key: 'aws:x', Value: 'v' }])).toBe('Tag Key cannot be prefixed with aws:, Key: aws:x');
    expect(await tagFailure([{ Key: 'k'.repeat(129), Value: 'v' }])).toBe(`The Tag Key provided is invalid, Key: ${'k'.repeat(129)}`);
    expect(await tagFailure([{ Key: 'k', Value: 'no{braces}' }])).toBe('The Tag Value provided is invalid, Value: no{braces}');
    expect(await tagFailure([{ Key: 'a', Value: '1' }, { Key: 'a', Value: '2' }])).toBe('Duplicate Tag Keys provided as input: Duplicate Tag Key found a');
    expect(await tagFailure([])).toBe('Atleast one Tag needs to be provided as Input.');
    expect((await failure(client.send(new UntagResourceCommand({ ResourceArn: arn, TagKeys: [] })))).message).toBe(
      'Atleast one Tag Key needs to be provided as Input.',
    );

    const listFailure = async (resourceArn: string): Promise<{ name: string; message: string }> =>
      failure(client.send(new ListTagsOfResourceCommand({ ResourceArn: resourceArn })));
    expect(await listFailure('not-an-arn')).toEqual({
      name: 'ValidationException',
      message: "One or more parameter values were invalid: ARNs must start with 'arn:': not-an-arn",
    });
    expect((await listFailure('arn:aws:s3:::bucket')).message).toBe(
      'One or more parameter values were invalid: Provided Arn is not a DynamoDB resource arn: arn:aws:s3:::bucket',
    );
    expect((await listFailure(`${arn}/index/byG`)).message).toBe(
      `One or more parameter values were invalid: Invalid resource arn provided, only table or stream is accepted. Provided resource arn: ${arn}/index/byG`,
    );
    const elsewhere = 'arn:aws:dynamodb:eu-west-1:000000000000:table/tag_limits';
    expect((await listFailure(elsewhere)).message).toBe(`Invalid TableArn: Invalid ResourceArn provided as input ${elsewhere}`);
    const missing = 'arn:aws:dynamodb:us-east-1:000000000000:table/no_such_table';
    expect(await listFailure(missing)).toEqual({
      name: 'ResourceNotFoundException',
      message: `Requested resource not found: ResourcArn: ${missing} not found`,
    });
  });
});

describe('account operations', () => {
  it('DescribeLimits answers DynamoDB default quotas', async () => {
    const limits = await client.send(new DescribeLimitsCommand({}));
    expect(limits).toMatchObject({
      AccountMaxReadCapacityUnits: 80000,
      AccountMaxWriteCapacityUnits: 80000,
      TableMaxReadCapacityUnits: 40000,
      TableMaxWriteCapacityUnits: 40000,
    });
  });

  it('DescribeEndpoints answers the address the client used', async () => {
    const { Endpoints } = await client.send(new DescribeEndpointsCommand({}));
    expect(Endpoints).toEqual([{ Address: new URL(shoal.endpoint).host, CachePeriodInMinutes: 1440 }]);
  });
});
