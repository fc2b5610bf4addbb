import { CreateTableCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { TableSchema, WriteOperation } from '@shoal/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableItemKey } from '../src/cluster/range-reads.ts';
import { DEFAULT_RETRY_POLICY } from '../src/cluster/retry.ts';
import { withOwnClusterClient } from './support/own-cluster-client.ts';
import { startRoutedCluster, type RoutedCluster } from './support/routed-cluster.ts';

/**
 * A transaction whose router's map does not know one of its partitions yet (a table it just created,
 * the map refresh after the creation failed): the write waits for a map that knows every key's
 * partition, and then commits every operation, none left out. Node processes; the router under test
 * is a cluster client of its own whose map the test set back.
 */

const STEP_TIMEOUT_MS = 180_000;

let cluster: RoutedCluster;

beforeAll(async () => {
  cluster = await startRoutedCluster([1, 2, 3], 'tx-routing', { initialPartitions: 2, maxAttempts: 1 });
  for (const TableName of ['alpha', 'beta']) {
    await cluster.client.send(
      new CreateTableCommand({
        TableName,
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  }
}, STEP_TIMEOUT_MS);

afterAll(async () => {
  await cluster?.close();
});

function addOne(table: TableSchema, id: string): WriteOperation {
  return { table, kind: 'Update', key: { id: { S: id } }, expressions: { update: 'ADD hits :one', values: { ':one': { N: '1' } } } };
}

async function hitsOf(TableName: string, id: string): Promise<unknown> {
  return (await cluster.client.send(new GetItemCommand({ TableName, Key: { id: { S: id } }, ConsistentRead: true }))).Item?.hits;
}

describe('a write over partitions the map does not all know', () => {
  it('waits for a map that knows every one, then applies every operation', { timeout: STEP_TIMEOUT_MS }, async () => {
    // The map's change below must not be undone by a watch: this client has none, it refreshes only.
    const policy = { ...DEFAULT_RETRY_POLICY, attempts: 10_000, totalMs: 120_000 };
    await withOwnClusterClient(
      cluster.metaAddresses,
      async ({ partitions: client, view }) => {
        const alpha = view.table('alpha')?.schema as TableSchema;
        const beta = view.table('beta')?.schema as TableSchema;
        // Ids of alpha's two partitions: a transaction over both (the two-phase commit), and one item of beta.
        const byPartition = new Map<number, string>();
        for (let i = 0; byPartition.size < 2 && i < 1_000; i++) {
          const owner = view.map.lookup(tableItemKey(alpha, { id: { S: `a${i}` } }));
          if (owner !== undefined && !byPartition.has(owner.id)) byPartition.set(owner.id, `a${i}`);
        }
        expect(byPartition.size).toBe(2);

        // The map as a router that knows beta's record but not yet its partitions has it.
        view.map.dropTable(beta.tableId);
        const written = client.write({ operations: [...[...byPartition.values()].map((id) => addOne(alpha, id)), addOne(beta, 'b')] });
        // A newer map (any change of the meta group) brings beta's partitions.
        await cluster.client.send(
          new CreateTableCommand({
            TableName: 'gamma',
            KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
            AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
            BillingMode: 'PAY_PER_REQUEST',
          }),
        );
        expect((await written).applied).toBe(true);
        for (const id of byPartition.values()) expect(await hitsOf('alpha', id)).toEqual({ N: '1' });
        expect(await hitsOf('beta', 'b')).toEqual({ N: '1' });
      },
      { policy, rpcTimeoutMs: 10_000 },
    );
  });
});
