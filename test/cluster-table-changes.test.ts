import {
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ListTagsOfResourceCommand,
  TagResourceCommand,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, killStartedProcesses, NodeCluster, startClusterRouter, type ClusterRouter } from './helpers/cluster.ts';
import { createTable, keyedBy } from './helpers/item-assertions.ts';
import { sdkClients } from './helpers/shoal.ts';

/**
 * Table changes through two routers at once, over 3 storage node processes: UpdateTable, tags and TTL
 * are compare-and-set on the table record's revision in the meta group, so a router that computed its
 * change from a record the other router changed meanwhile computes it again, and no change undoes
 * another (with last-writer-wins, the tags of one router and the other's new GSI were lost).
 */

const STEP_TIMEOUT_MS = 180_000;
const TABLE = 'table_changes';
const TAGS_PER_ROUTER = 8;
/** A client's own retries of ResourceInUseException (the table being updated), which SDKs leave to it. */
const CLIENT_RETRIES = 10;

let nodes: NodeCluster;
const routers: ClusterRouter[] = [];
const clients: DynamoDBClient[] = [];

beforeAll(async () => {
  nodes = await NodeCluster.start({ partitions: 1 });
  for (let i = 0; i < 2; i++) {
    const router = await startClusterRouter(nodes.metaAddresses);
    routers.push(router);
    clients.push(sdkClients(router.endpoint).client);
  }
}, STEP_TIMEOUT_MS);

afterAll(async () => {
  for (const client of clients) client.destroy();
  for (const router of routers) await router.close();
  await nodes?.close();
  killStartedProcesses();
});

let inUse = 0;
/** Sends a table change as a client would: again after ResourceInUseException, a bounded number of times. */
async function change(client: DynamoDBClient, send: (client: DynamoDBClient) => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await send(client);
      return;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ResourceInUseException' || attempt === CLIENT_RETRIES) throw error;
      inUse++;
    }
  }
}

describe('table changes through two routers at once', () => {
  it('keep every change: a GSI added by one router, tags from both, TTL from the other', { timeout: STEP_TIMEOUT_MS }, async () => {
    const [first, second] = clients;
    await createTable(first, { TableName: TABLE, ...keyedBy(['pk', 'S']) });
    const arn = (await first.send(new DescribeTableCommand({ TableName: TABLE }))).Table!.TableArn!;
    await eventually('the second router sees the table', async () => (await second.send(new DescribeTableCommand({ TableName: TABLE }))).Table !== undefined);

    const tag = (client: DynamoDBClient, key: string) => change(client, (c) => c.send(new TagResourceCommand({ ResourceArn: arn, Tags: [{ Key: key, Value: 'v' }] })));
    await Promise.all([
      change(first, (c) =>
        c.send(
          new UpdateTableCommand({
            TableName: TABLE,
            AttributeDefinitions: [{ AttributeName: 'city', AttributeType: 'S' }],
            GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byCity', KeySchema: [{ AttributeName: 'city', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } }],
          }),
        ),
      ),
      change(second, (c) => c.send(new UpdateTimeToLiveCommand({ TableName: TABLE, TimeToLiveSpecification: { AttributeName: 'expires', Enabled: true } }))),
      ...Array.from({ length: TAGS_PER_ROUTER }, (_, i) => tag(first, `first-${i}`)),
      ...Array.from({ length: TAGS_PER_ROUTER }, (_, i) => tag(second, `second-${i}`)),
    ]);
    // Printed, not asserted: how often a router ran out of its own attempts and the client tried again.
    console.log(`table changes through two routers: ${inUse} ResourceInUseException answers retried by the client`);

    const expectedTags = [...Array.from({ length: TAGS_PER_ROUTER }, (_, i) => `first-${i}`), ...Array.from({ length: TAGS_PER_ROUTER }, (_, i) => `second-${i}`)].sort();
    for (const [n, client] of clients.entries()) {
      await eventually(`router ${n + 1} shows every change, the GSI ACTIVE`, async () => {
        const table = (await client.send(new DescribeTableCommand({ TableName: TABLE }))).Table!;
        const tags = (await client.send(new ListTagsOfResourceCommand({ ResourceArn: arn }))).Tags ?? [];
        const ttl = (await client.send(new DescribeTimeToLiveCommand({ TableName: TABLE }))).TimeToLiveDescription;
        const gsi = table.GlobalSecondaryIndexes?.find((index) => index.IndexName === 'byCity');
        return (
          gsi?.IndexStatus === 'ACTIVE' &&
          JSON.stringify(tags.map((t) => t.Key).sort()) === JSON.stringify(expectedTags) &&
          ttl?.TimeToLiveStatus === 'ENABLED' &&
          ttl.AttributeName === 'expires'
        );
      }, 60_000);
    }
  });
});
