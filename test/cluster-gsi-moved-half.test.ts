import { BatchWriteItemCommand, DescribeTableCommand, QueryCommand, ScanCommand, UpdateTableCommand, type AttributeValue, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { adminStatus, eventually, routedClusterPerFile, runShoal, type AdminStatus } from './helpers/cluster.ts';
import { createTable, keyedBy, keySchema } from './helpers/item-assertions.ts';

/**
 * A GSI backfill through a split of its base partition whose right half then moves off the parent's
 * leader node, on 4 `shoal node` processes (3 replicas each) with a router in this process. The parent's
 * leader answers BackfillIndex done once the walks of the halves ITS node holds are applied: the moved
 * half is not among them, so the GSI is right only if the router asks that half itself (its rounds:
 * the halves the map shows after each round). While every node refuses shipped GSI records (fault
 * injection) the walk pauses at half the outbox limit; the table splits, its right half is moved to the
 * fourth node, away from the parent's leader, and only then are records taken again. Once the index
 * is ACTIVE, one Scan and one Query per group, no retry, find every item.
 */

const STEP_TIMEOUT_MS = 300_000;
const TABLE = 'moved_half';
const ITEMS = 2_000;
const GROUPS = 8;
const cluster = routedClusterPerFile(
  { nodes: 4, partitions: 1, nodeArgs: ['--index-outbox-limit', '200', '--index-backfill-chunk-items', '50', '--enable-fault-injection'] },
  STEP_TIMEOUT_MS,
);
const S = (value: string): AttributeValue => ({ S: value });
const meta = (): string[] => ['--meta', cluster.nodes.metaAddresses.join(',')];

async function tableRows(): Promise<AdminStatus['partitions']> {
  return (await adminStatus(cluster.nodes.metaAddresses)).partitions.filter((row) => row.table === TABLE);
}

async function indexStatus(): Promise<string | undefined> {
  const { Table } = await cluster.client.send(new DescribeTableCommand({ TableName: TABLE }));
  return Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === 'byGroup')?.IndexStatus;
}

describe('a GSI backfill whose base partition split and whose right half moved off the parent\'s leader', () => {
  it('turns ACTIVE only once the moved half is done too: a Scan and Queries right after find every item', { timeout: STEP_TIMEOUT_MS }, async () => {
    await createTable(cluster.client, { TableName: TABLE, ...keyedBy(['pk', 'S']) });
    const batches = Array.from({ length: ITEMS / 25 }, (_, b) => Array.from({ length: 25 }, (_, n) => ({ PutRequest: { Item: { pk: S(`b${b * 25 + n}`), grp: S(`g${(b * 25 + n) % GROUPS}`) } } })));
    for (const batch of batches) {
      let pending: WriteRequest[] = batch;
      for (let round = 0; pending.length > 0 && round < 50; round++) {
        if (round > 0) await new Promise((done) => setTimeout(done, 50));
        pending = (await cluster.client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: pending } }))).UnprocessedItems?.[TABLE] ?? [];
      }
      expect(pending).toEqual([]);
    }

    await cluster.nodes.refuseIndexEntries(true);
    const pausesBefore = await cluster.nodes.metricSum('shoal_node_index_backfill_pauses_total');
    await cluster.client.send(
      new UpdateTableCommand({
        TableName: TABLE,
        AttributeDefinitions: [{ AttributeName: 'grp', AttributeType: 'S' }],
        GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byGroup', KeySchema: keySchema('grp'), Projection: { ProjectionType: 'KEYS_ONLY' } } }],
      }),
    );
    // Nothing ships: the walk pauses at half the outbox limit, far from the end.
    await eventually('the walk paused', async () => (await cluster.nodes.metricSum('shoal_node_index_backfill_pauses_total')) > pausesBefore, 60_000, 100);
    expect(await cluster.nodes.metricSum('shoal_node_index_backfill_items_total')).toBeLessThan(ITEMS);

    const [{ id: parentId }] = await tableRows();
    const split = await runShoal(['admin', 'split', TABLE, '--json', ...meta()]);
    expect(split.code, split.stderr).toBe(0);
    let rows: AdminStatus['partitions'] = [];
    await eventually('both halves placed with leaders', async () => {
      rows = await tableRows();
      return rows.length === 2 && rows.every((row) => row.leader !== undefined && row.replicas.length === 3);
    }, 60_000, 250);
    // The parent keeps its id (the left half); the right half is moved off the node leading the parent.
    const kept = rows.find((row) => row.id === parentId)!;
    const moving = rows.find((row) => row.id !== parentId)!;
    const from = kept.leader!;
    // (The rebalancer, evening 4 nodes, may have moved it off already.)
    if (moving.replicas.includes(String(from))) {
      const to = cluster.nodes.nodeIds().find((id) => !moving.replicas.includes(String(id)))!;
      let run = { code: null as number | null, stdout: '', stderr: '' };
      // The placement driver may be changing the partition's replicas at that moment, and the half's
      // snapshot waits for the split's outbox move: retried then.
      await eventually(`partition ${moving.id} moved`, async () => {
        run = await runShoal(['admin', 'move', String(moving.id), '--from', String(from), '--to', String(to), '--wait', '--timeout', '120', '--json', ...meta()], 150_000);
        return run.code === 0 || !/changing its replicas/.test(run.stderr);
      }, 200_000, 1_000);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    }
    const moved = (await tableRows()).find((row) => row.id === moving.id)!;
    expect(moved.replicas).not.toContain(String(from));
    // The premise: the index is still building, nothing of it shipped.
    expect(await indexStatus()).toBe('CREATING');

    await cluster.nodes.refuseIndexEntries(false);
    await eventually('byGroup ACTIVE', async () => (await indexStatus()) === 'ACTIVE', 180_000, 50);
    // One pass, no polling: ACTIVE means every item is in the GSI.
    let scanned = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    for (let page = 0; page < 100; page++) {
      const answer = await cluster.client.send(new ScanCommand({ TableName: TABLE, IndexName: 'byGroup', Select: 'COUNT', ...(startKey ? { ExclusiveStartKey: startKey } : {}) }));
      scanned += answer.Count ?? 0;
      startKey = answer.LastEvaluatedKey;
      if (startKey === undefined) break;
    }
    const byGroup: number[] = [];
    for (let group = 0; group < GROUPS; group++) {
      const answer = await cluster.client.send(
        new QueryCommand({ TableName: TABLE, IndexName: 'byGroup', Select: 'COUNT', KeyConditionExpression: 'grp = :g', ExpressionAttributeValues: { ':g': S(`g${group}`) } }),
      );
      byGroup.push(answer.Count ?? 0);
    }
    expect({ scanned, byGroup }).toEqual({ scanned: ITEMS, byGroup: Array.from({ length: GROUPS }, () => ITEMS / GROUPS) });
  });
});
