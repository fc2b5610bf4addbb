import {
  BatchWriteItemCommand,
  DescribeTableCommand,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateTableCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { eventually, routedClusterPerFile } from './helpers/cluster.ts';
import { createTable, keyedBy } from './helpers/item-assertions.ts';

/**
 * GSI back-pressure on 3 `shoal node` processes with a router in this process and the AWS SDK
 * (maxAttempts 1, so every throttle is seen): with `--index-outbox-limit 50` and every node refusing
 * shipped GSI records (fault injection: the GSI's partitions take nothing), a table's writes are
 * accepted until its partition's outbox holds 50 records, then answered
 * ProvisionedThroughputExceededException with DynamoDB's message for a GSI that cannot keep up,
 * while a table without a GSI takes writes and reads go on. Once the GSI partitions take records
 * again, the outbox drains, writes are accepted again and the GSI holds every item written. A GSI
 * added to a table of items while the GSI's partitions take nothing walks in chunks of 5 items only
 * until the outbox holds half the limit, so the table's writes go on being accepted.
 */

const LIMIT = 50;
const STEP_TIMEOUT_MS = 180_000;
const INDEX_MESSAGE =
  'The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. ' +
  'Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API';

const BACKFILL_CHUNK_ITEMS = 5;
const cluster = routedClusterPerFile(
  { partitions: 1, nodeArgs: ['--index-outbox-limit', String(LIMIT), '--index-backfill-chunk-items', String(BACKFILL_CHUNK_ITEMS), '--enable-fault-injection'] },
  STEP_TIMEOUT_MS,
);
const S = (value: string): AttributeValue => ({ S: value });

/** The table's GSI byCity holds exactly the items `pks` under `city` (eventually: shipping is asynchronous). */
async function gsiHoldsExactly(table: string, city: string, pks: readonly string[]): Promise<void> {
  const want = pks.toSorted();
  let got: string[] = [];
  await eventually(`${table}/byCity to hold every item`, async () => {
    const query = await cluster.client.send(new QueryCommand({ TableName: table, IndexName: 'byCity', KeyConditionExpression: 'city = :c', ExpressionAttributeValues: { ':c': S(city) } }));
    got = (query.Items ?? []).map((item) => item.pk?.S ?? '').toSorted();
    return JSON.stringify(got) === JSON.stringify(want);
  }, 60_000, 250).catch((error: unknown) => {
    expect(got).toEqual(want);
    throw error;
  });
}

const put = (table: string, pk: string, city?: string) =>
  cluster.client.send(new PutItemCommand({ TableName: table, Item: { pk: S(pk), ...(city === undefined ? {} : { city: S(city) }) } }));

describe('GSI back-pressure: base writes throttled while a GSI cannot keep up', () => {
  /** The items the indexed table acknowledged, in order. */
  const accepted: string[] = [];

  it('accepts writes until the outbox holds the limit, then answers ProvisionedThroughputExceededException', { timeout: STEP_TIMEOUT_MS }, async () => {
    await createTable(cluster.client, {
      TableName: 'indexed',
      ...keyedBy(['pk', 'S'], undefined, ['city', 'S']),
      GlobalSecondaryIndexes: [{ IndexName: 'byCity', KeySchema: [{ AttributeName: 'city', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } }],
    });
    await createTable(cluster.client, { TableName: 'plain', ...keyedBy(['pk', 'S']) });
    await cluster.nodes.refuseIndexEntries(true);
    let throttled: ProvisionedThroughputExceededException | undefined;
    for (let i = 0; i < 4 * LIMIT && throttled === undefined; i++) {
      try {
        await put('indexed', `item-${i}`, 'Oslo');
        accepted.push(`item-${i}`);
      } catch (error) {
        if (!(error instanceof ProvisionedThroughputExceededException)) throw error;
        throttled = error;
      }
    }
    // Each new item makes one record: the limit is reached after exactly LIMIT writes.
    expect(accepted).toHaveLength(LIMIT);
    expect(throttled?.message).toBe(INDEX_MESSAGE);
    expect(throttled?.ThrottlingReasons?.map((reason) => reason.reason)).toEqual(['IndexWriteKeyRangeThroughputExceeded']);
    expect(throttled?.ThrottlingReasons?.[0]?.resource).toMatch(/^arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table\/indexed\/index\/byCity$/);
    // Still refused (nothing drains while the GSI takes nothing); counted by the leader.
    await expect(put('indexed', 'one-more', 'Oslo')).rejects.toBeInstanceOf(ProvisionedThroughputExceededException);
    expect(await cluster.nodes.metricSum('shoal_node_index_backlog_throttled_writes_total')).toBeGreaterThanOrEqual(2);
  });

  it('keeps taking writes of a table without a GSI, and serving reads, meanwhile', { timeout: STEP_TIMEOUT_MS }, async () => {
    for (let i = 0; i < 2 * LIMIT; i++) await put('plain', `plain-${i}`);
    const strong = await cluster.client.send(new GetItemCommand({ TableName: 'indexed', Key: { pk: S(accepted[0]!) }, ConsistentRead: true }));
    expect(strong.Item).toEqual({ pk: S(accepted[0]!), city: S('Oslo') });
    const eventual = await cluster.client.send(new GetItemCommand({ TableName: 'plain', Key: { pk: S('plain-0') } }));
    expect(eventual.Item?.pk).toEqual(S('plain-0'));
    // A batch: the GSI-less table's item written, the other handed back (DynamoDB's way with throttles).
    const batch = await cluster.client.send(new BatchWriteItemCommand({
      RequestItems: {
        indexed: [{ PutRequest: { Item: { pk: S('batched'), city: S('Oslo') } } }],
        plain: [{ PutRequest: { Item: { pk: S('batched') } } }],
      },
    }));
    expect(batch.UnprocessedItems).toEqual({ indexed: [{ PutRequest: { Item: { pk: S('batched'), city: S('Oslo') } } }] });
    expect((await cluster.client.send(new GetItemCommand({ TableName: 'plain', Key: { pk: S('batched') }, ConsistentRead: true }))).Item).toEqual({ pk: S('batched') });
    // A transaction across both tables: its prepare on the indexed table's partition is refused, it aborts whole.
    const transaction = await cluster.client
      .send(new TransactWriteItemsCommand({ TransactItems: [{ Put: { TableName: 'indexed', Item: { pk: S('tx'), city: S('Oslo') } } }, { Put: { TableName: 'plain', Item: { pk: S('tx') } } }] }))
      .then(() => undefined, (error: unknown) => error);
    expect(transaction).toBeInstanceOf(ProvisionedThroughputExceededException);
    expect((await cluster.client.send(new GetItemCommand({ TableName: 'plain', Key: { pk: S('tx') }, ConsistentRead: true }))).Item).toBeUndefined();
    // The GSI is readable too: it holds none of the refused entries.
    const query = await cluster.client.send(new QueryCommand({ TableName: 'indexed', IndexName: 'byCity', KeyConditionExpression: 'city = :c', ExpressionAttributeValues: { ':c': S('Oslo') } }));
    expect(query.Items).toEqual([]);
  });

  it('once the GSI takes records again: the outbox drains, writes are accepted, the GSI converges', { timeout: STEP_TIMEOUT_MS }, async () => {
    await cluster.nodes.refuseIndexEntries(false);
    await eventually('outboxes drained', async () => (await cluster.nodes.metricSum('shoal_node_index_outbox_records')) === 0, 60_000, 250);
    for (let i = 0; i < 10; i++) {
      await put('indexed', `after-${i}`, 'Oslo');
      accepted.push(`after-${i}`);
    }
    await gsiHoldsExactly('indexed', 'Oslo', accepted);
  });

  it('a GSI added while its partitions take nothing walks until the outbox holds half the limit: the table\'s writes stay accepted; then it turns ACTIVE', { timeout: STEP_TIMEOUT_MS }, async () => {
    await createTable(cluster.client, { TableName: 'late', ...keyedBy(['pk', 'S']) });
    const items = Array.from({ length: 2 * LIMIT }, (_, i) => `late-${i}`);
    for (const pk of items) await put('late', pk, 'Rome');
    await cluster.nodes.refuseIndexEntries(true);
    const throttledBefore = await cluster.nodes.metricSum('shoal_node_index_backlog_throttled_writes_total');
    await cluster.client.send(new UpdateTableCommand({
      TableName: 'late',
      AttributeDefinitions: [{ AttributeName: 'city', AttributeType: 'S' }],
      GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byCity', KeySchema: [{ AttributeName: 'city', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } } }],
    }));
    await eventually('the backfill paused', async () => (await cluster.nodes.metricSum('shoal_node_index_backfill_pauses_total')) > 0, 60_000, 250);
    // Walked in chunks of 5 up to half the limit: the writes below (one record each) fit under it.
    const more = Array.from({ length: LIMIT / 2 - BACKFILL_CHUNK_ITEMS }, (_, i) => `late-more-${i}`);
    for (const pk of more) await put('late', pk, 'Rome');
    expect(await cluster.nodes.metricSum('shoal_node_index_backlog_throttled_writes_total')).toBe(throttledBefore);
    const described = await cluster.client.send(new DescribeTableCommand({ TableName: 'late' }));
    expect(described.Table?.GlobalSecondaryIndexes?.[0]?.IndexStatus).toBe('CREATING');
    await cluster.nodes.refuseIndexEntries(false);
    await eventually('the GSI ACTIVE', async () => (await cluster.client.send(new DescribeTableCommand({ TableName: 'late' }))).Table?.GlobalSecondaryIndexes?.[0]?.IndexStatus === 'ACTIVE', 120_000, 250);
    await gsiHoldsExactly('late', 'Rome', [...items, ...more]);
  });
});
