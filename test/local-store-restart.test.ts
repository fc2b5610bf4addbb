import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { openLocalStore } from '@shoal/storage';
import { describe, expect, it } from 'vitest';
import { keyedBy } from './helpers/item-assertions.ts';
import { startShoal, withShoal } from './helpers/shoal.ts';

/**
 * The one-process engine across a restart of its local store (moved out of tables.test.ts: it edits
 * the store's files between runs, which the cluster target of that file has no equivalent of).
 */

const simpleTable = (name: string) => ({
  TableName: name,
  ...keyedBy(['pk', 'S']),
  BillingMode: 'PAY_PER_REQUEST' as const,
});

describe('GSI backfill on a local store', () => {
  it('restarts an index backfill that a crash interrupted', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'shoal-backfill-'));
    try {
      const first = await startShoal({ dataDir });
      await first.client.send(
        new CreateTableCommand({
          ...simpleTable('resume'),
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'g', AttributeType: 'S' }],
          GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } }],
        }),
      );
      for (let i = 0; i < 5; i++) await first.doc.send(new PutCommand({ TableName: 'resume', Item: { pk: `p${i}`, g: 'same' } }));
      await first.close();

      // What a crash in the middle of a backfill leaves: the index in the schema, its entries missing.
      const store = await openLocalStore({ dataDir });
      const record = (await store.catalog.get('resume'))!;
      await store.partitions.dropIndex(record.schema, 'byG');
      await store.catalog.update('resume', (current) => ({ ...current, backfilling: ['byG'] }));
      await store.close();

      await withShoal({ dataDir }, async (second) => {
        let status: string | undefined;
        for (let attempt = 0; attempt < 200 && status !== 'ACTIVE'; attempt++) {
          const { Table } = await second.client.send(new DescribeTableCommand({ TableName: 'resume' }));
          status = Table?.GlobalSecondaryIndexes?.[0].IndexStatus;
          if (status !== 'ACTIVE') await new Promise((resolve) => setTimeout(resolve, 10));
        }
        expect(status).toBe('ACTIVE');
        const { Count } = await second.doc.send(
          new QueryCommand({ TableName: 'resume', IndexName: 'byG', KeyConditionExpression: 'g = :g', ExpressionAttributeValues: { ':g': 'same' } }),
        );
        expect(Count).toBe(5);
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
