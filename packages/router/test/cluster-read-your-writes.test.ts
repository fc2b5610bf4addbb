import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchGetItemCommand,
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import type { Item, TableSchema } from '@shoal/model';
import { FaultInjectionService, createClient } from '@shoal/proto';
import type { ClusterView } from '../src/cluster/cluster-view.ts';
import { tableItemKey } from '../src/cluster/range-reads.ts';
import type { ClusterBackend } from '../src/index.ts';
import { withOwnClusterClient } from './support/own-cluster-client.ts';
import { startRoutedCluster, type RoutedCluster } from './support/routed-cluster.ts';

/**
 * Read-your-writes through one router, end to end: three storage node processes, one of them kept
 * behind (every other node's Raft traffic to it delayed well past the read wait), the AWS SDK as
 * the client. Each acknowledged write (PutItem, UpdateItem, a cross-partition TransactWriteItems)
 * is followed by eventually consistent reads (GetItem, BatchGetItem, Query, Scan), some of which the
 * router sends to the lagging replica: none may answer an older value.
 */

const NODE_IDS = [1, 2, 3];
const TABLE = 'ryw';
/** Far longer than a node's wait for an index (100 ms): a read on the lagging node is refused, never served late. */
const LAG_MS = 400;
const ROUNDS = 30;

let cluster: RoutedCluster | undefined;
let backend: ClusterBackend;
let client: DynamoDBClient;

const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const versionOf = (item: Record<string, AttributeValue> | undefined): string | undefined => item?.v?.N;

beforeAll(async () => {
  // No SDK retry: a request the router failed must fail the test, not be sent again.
  cluster = await startRoutedCluster(NODE_IDS, 'ryw', { initialPartitions: 2, maxAttempts: 1, nodes: { faultInjection: true } });
  ({ backend, client } = cluster);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
}, 60_000);

describe('read-your-writes through one router', () => {
  it('never answers an eventual read older than the router\'s own acknowledged write, with a replica lagging', { timeout: 180_000 }, async () => {
    await client.send(
      new CreateTableCommand({
        TableName: TABLE,
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'N' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );

    // A client of the test's own learns each partition's leader (a write answered names it).
    const { lagging, keys } = await withOwnClusterClient(cluster!.metaAddresses, async ({ partitions: probe, view }) => {
      const schema = view.table(TABLE)!.schema;
      const partitions = view.map.partitionsOf(schema.tableId);
      expect(partitions).toHaveLength(2);
      const keys = { a: keyIn(view, schema, partitions[0].id), b: keyIn(view, schema, partitions[1].id) };
      for (const pk of [keys.a, keys.b]) {
        const key = itemKey(pk);
        await probe.write({ operations: [{ table: schema, kind: 'Put', key, item: { ...key, v: { N: '0' } } }] });
      }
      // The lagging node follows partition A (its reads must be refused there), whoever leads B.
      const leaderOfA = view.leaderOf(partitions[0].id)!;
      const lagging = NODE_IDS.find((id) => id !== leaderOfA)!;
      for (const nodeId of NODE_IDS.filter((id) => id !== lagging)) {
        const faults = createClient(FaultInjectionService, addressOf(nodeId));
        try {
          await faults.delay({ peers: [BigInt(lagging)], delayMs: LAG_MS });
        } finally {
          faults.close();
        }
      }
      return { lagging, keys };
    });

    const stale: string[] = [];
    const expectVersion = (what: string, item: Record<string, AttributeValue> | undefined, version: number): void => {
      if (versionOf(item) !== String(version)) stale.push(`${what}: ${versionOf(item) ?? 'nothing'} instead of ${version}`);
    };
    const key = (pk: string) => ({ pk: S(pk), sk: N(0) });
    try {
      let version = 0;
      for (let round = 0; round < ROUNDS; round++) {
        version++;
        await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key(keys.a), v: N(version) } }));
        expectVersion(`round ${round} GetItem after PutItem`, (await client.send(new GetItemCommand({ TableName: TABLE, Key: key(keys.a) }))).Item, version);
        const queried = await client.send(new QueryCommand({ TableName: TABLE, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': S(keys.a) } }));
        expectVersion(`round ${round} Query after PutItem`, queried.Items?.[0], version);

        version++;
        await client.send(new UpdateItemCommand({ TableName: TABLE, Key: key(keys.a), UpdateExpression: 'SET v = :v', ExpressionAttributeValues: { ':v': N(version) } }));
        expectVersion(`round ${round} GetItem after UpdateItem`, (await client.send(new GetItemCommand({ TableName: TABLE, Key: key(keys.a) }))).Item, version);

        // Across the two partitions: a two-phase commit, visible once its intents are resolved.
        version++;
        await client.send(
          new TransactWriteItemsCommand({
            TransactItems: [keys.a, keys.b].map((pk) => ({ Put: { TableName: TABLE, Item: { ...key(pk), v: N(version) } } })),
          }),
        );
        const batch = await client.send(new BatchGetItemCommand({ RequestItems: { [TABLE]: { Keys: [key(keys.a), key(keys.b)] } } }));
        const found = batch.Responses?.[TABLE] ?? [];
        for (const pk of [keys.a, keys.b]) expectVersion(`round ${round} BatchGetItem ${pk} after TransactWriteItems`, found.find((item) => item.pk?.S === pk), version);
        const scanned = await client.send(new ScanCommand({ TableName: TABLE }));
        for (const pk of [keys.a, keys.b]) expectVersion(`round ${round} Scan ${pk} after TransactWriteItems`, scanned.Items?.find((item) => item.pk?.S === pk), version);
      }
    } finally {
      for (const nodeId of NODE_IDS.filter((id) => id !== lagging)) {
        const faults = createClient(FaultInjectionService, addressOf(nodeId));
        try {
          await faults.heal({ peers: [] });
        } finally {
          faults.close();
        }
      }
    }
    expect(stale).toEqual([]);
    // The lagging replica was asked, and refused rather than answered an old value.
    expect(backend.metrics().replicaBehindRedirectsTotal).toBeGreaterThan(0);
  });
});

/** Every node is a meta peer: its gRPC address (FaultInjectionService included) is its meta address. */
const addressOf = (nodeId: number): string => cluster!.metaAddresses[NODE_IDS.indexOf(nodeId)];

/** The key of the item of partition key `pk` (sort key 0), as the router's model has it. */
const itemKey = (pk: string): Item => ({ pk: { S: pk }, sk: { N: '0' } });

/** A partition key value whose item (sort key 0) falls in partition `partitionId`. */
function keyIn(view: ClusterView, table: TableSchema, partitionId: number): string {
  for (let i = 0; i < 10_000; i++) {
    const pk = `key-${i}`;
    if (view.map.lookup(tableItemKey(table, itemKey(pk)))?.id === partitionId) return pk;
  }
  throw new Error(`no key found in partition ${partitionId}`);
}
