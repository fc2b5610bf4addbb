import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { compareBytes, encodeCollectionPrefix, encodeItemKey, prefixEnd } from '@shoal/model';
import { AdminService, createClient, type StatusResponse } from '@shoal/proto';
import { describe, expect, it } from 'vitest';
import { eventually, metricValue, routedClusterPerFile, runShoal } from './helpers/cluster.ts';

/**
 * Splits for size and heat, decided by the meta leader, on 3 `shoal node` processes with a router in
 * this process and the AWS SDK as the client. Low limits keep the load a test can make on a shared
 * machine over the threshold: 200 write units a second per partition, heat at 4% of it (8 units a
 * second) for 3 s, sizes measured every second. A hot range splits inside its item collection and its
 * halves end up led by different nodes, losing no acknowledged write; tables whose tags raise the
 * thresholds or switch splitting off do not split under the same load; one hot item is reported, not
 * split (Status, `shoal admin status`, the log, a metric), and its eventually consistent reads reach every replica; a table with a local secondary index
 * splits only between item collections; a size threshold splits a table, a higher one does not.
 */

const STEP_TIMEOUT_MS = 240_000;
const NODE_ARGS = [
  '--write-units-per-partition', '200',
  '--read-units-per-partition', '600',
  '--burst-seconds', '1',
  '--split-heat-share', '0.04',
  '--split-heat-seconds', '3',
  '--size-measure-seconds', '1',
];
/** DynamoDB's own answers a client retries: the write may or may not have been applied. */
const RETRYABLE = new Set(['InternalServerError', 'ServiceUnavailable', 'ThrottlingException', 'ProvisionedThroughputExceededException']);

const cluster = routedClusterPerFile({ nodeArgs: NODE_ARGS }, STEP_TIMEOUT_MS);

async function createTable(name: string, options: { sortKey?: boolean; lsi?: boolean; tags?: Record<string, string> } = {}): Promise<number> {
  const input: CreateTableCommandInput = {
    TableName: name,
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, ...(options.sortKey ? [{ AttributeName: 'sk', KeyType: 'RANGE' as const }] : [])],
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      ...(options.sortKey ? [{ AttributeName: 'sk', AttributeType: 'N' as const }] : []),
      ...(options.lsi ? [{ AttributeName: 'other', AttributeType: 'N' as const }] : []),
    ],
    BillingMode: 'PAY_PER_REQUEST',
    LocalSecondaryIndexes: options.lsi
      ? [{ IndexName: 'byOther', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'other', KeyType: 'RANGE' }], Projection: { ProjectionType: 'KEYS_ONLY' } }]
      : undefined,
    Tags: options.tags === undefined ? undefined : Object.entries(options.tags).map(([Key, Value]) => ({ Key, Value })),
  };
  await cluster.client.send(new CreateTableCommand(input));
  return (await cluster.front.backend.catalog.get(name))!.schema.tableId;
}

type Key = { pk: string; sk?: number };

/**
 * `count` loops running `step` until stopped, each retryable failure followed by a short pause; the
 * first other failure stops its loop and is thrown by stop() (never an unhandled rejection).
 */
function loops(count: number, step: (loop: number, i: number) => Promise<void>): { stop(): Promise<void> } {
  let running = true;
  let unexpected: unknown;
  const workers = Array.from({ length: count }, async (_, loop) => {
    for (let i = 0; running && i < 1_000_000; i++) {
      try {
        await step(loop, i);
      } catch (error) {
        if (!RETRYABLE.has((error as Error).name)) {
          unexpected ??= error;
          return;
        }
        await new Promise((done) => setTimeout(done, 20));
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      if (unexpected !== undefined) throw unexpected;
    },
  };
}

/** Writers putting the keys `next` gives until stopped; every acknowledged put is kept (key -> value). */
function writers(table: string, count: number, next: (writer: number, i: number) => Key, fill = 'x'): { stop(): Promise<void>; acknowledged: Map<string, { key: Key; n: number }> } {
  const acknowledged = new Map<string, { key: Key; n: number }>();
  const { stop } = loops(count, async (writer, i) => {
    const key = next(writer, i);
    await cluster.doc.send(new PutCommand({ TableName: table, Item: { ...key, n: i, other: i, fill } }));
    acknowledged.set(JSON.stringify(key), { key, n: i });
  });
  return { acknowledged, stop };
}

/** Every acknowledged item of `table` read back strongly consistent, 8 at a time, with its last acknowledged value or a later one. */
async function readAllBack(table: string, acknowledged: Map<string, { key: Key; n: number }>): Promise<void> {
  const entries = [...acknowledged.values()];
  for (let from = 0; from < entries.length; from += 8) {
    await Promise.all(
      entries.slice(from, from + 8).map(async ({ key, n }) => {
        const { Item } = await cluster.doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
        expect(Item, JSON.stringify(key)).toBeDefined();
        expect(Item!.n as number, JSON.stringify(key)).toBeGreaterThanOrEqual(n);
      }),
    );
  }
}

/** AdminService.Status from whichever meta peer leads. */
async function status(): Promise<StatusResponse> {
  let lastError: unknown;
  for (const address of cluster.nodes.metaAddresses) {
    const admin = createClient(AdminService, address);
    try {
      return await admin.status({}, { timeoutMs: 5_000 });
    } catch (error) {
      lastError = error;
    } finally {
      admin.close();
    }
  }
  throw lastError;
}

interface PartitionRow {
  id: number;
  startKey: Uint8Array;
  endKey: Uint8Array;
  leader: number | undefined;
  /** Write units a second its leader reported. */
  writeUnits: number;
  /** Nodes whose replica reported serving reads. */
  readers: number[];
}

async function partitionsOf(tableId: number): Promise<PartitionRow[]> {
  const now = await status();
  return now.partitions
    .filter((p) => p.tableId === tableId)
    .map((p) => {
      const reports = now.nodes.flatMap((node) => node.reportedReplicas.filter((r) => r.partitionId === p.id).map((load) => ({ nodeId: Number(node.node?.id ?? 0n), load })));
      const leading = reports.filter((r) => r.load.leader).sort((a, b) => Number(b.load.term - a.load.term))[0];
      return {
        id: Number(p.id),
        startKey: p.startKey,
        endKey: p.endKey,
        leader: leading?.nodeId,
        writeUnits: leading?.load.writeUnitsPerSecond ?? 0,
        readers: reports.filter((r) => r.load.readsPerSecond > 0).map((r) => r.nodeId).sort(),
      };
    })
    .sort((a, b) => compareBytes(a.startKey, b.startKey));
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const logs = (): string => cluster.nodes.nodeIds().map((id) => cluster.nodes.node(id).log()).join('\n');
/** The JSON log lines of an event on any node. */
const events = (name: string): Array<Record<string, unknown>> =>
  logs()
    .split('\n')
    .filter((line) => line.includes(`"msg":"${name}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('splitting by itself on a 3-node cluster', () => {
  it('splits a hot range inside its item collection, moves a half to another leader, loses nothing; tables set otherwise stay whole', { timeout: STEP_TIMEOUT_MS }, async () => {
    const ranges = await createTable('ranges', { sortKey: true });
    const calm = await createTable('calm', { sortKey: true, tags: { 'shoal:split-heat-share': '100' } });
    const off = await createTable('off', { sortKey: true, tags: { 'shoal:split': 'off' } });
    const inRange = (writer: number, i: number): Key => ({ pk: 'range', sk: writer * 1_000_000 + i });
    const hot = writers('ranges', 6, inRange);
    const others = [writers('calm', 3, inRange), writers('off', 3, inRange)];

    await eventually('ranges split', async () => (await partitionsOf(ranges)).length >= 2, 120_000, 500);
    const [first] = events('partition_split').filter((e) => e.table === 'ranges');
    expect(first).toMatchObject({ reason: 'heat', table: 'ranges' });
    // A sort-key split: the right half starts inside the collection of 'range'.
    const prefix = encodeCollectionPrefix(ranges, { S: 'range' });
    const splitKey = Buffer.from(first.splitKey as string, 'hex');
    expect(compareBytes(splitKey, prefix)).toBeGreaterThan(0);
    expect(compareBytes(splitKey, prefixEnd(prefix)!)).toBeLessThan(0);

    await eventually(
      'the halves led by different nodes, each serving writes',
      async () => {
        const rows = await partitionsOf(ranges);
        const serving = rows.filter((row) => row.writeUnits > 0);
        return serving.length >= 2 && new Set(serving.map((row) => row.leader)).size >= 2;
      },
      60_000,
      500,
    );
    expect(events('leadership_move_requested').length).toBeGreaterThan(0);

    await hot.stop();
    await Promise.all(others.map((w) => w.stop()));
    // Every table had the same workload, over the cluster's threshold for longer than its time.
    expect((await partitionsOf(calm)).length).toBe(1);
    expect((await partitionsOf(off)).length).toBe(1);
    expect(hot.acknowledged.size).toBeGreaterThan(100);
    await readAllBack('ranges', hot.acknowledged);
  });

  it('reports one hot item instead of splitting it; its eventually consistent reads reach every replica', { timeout: STEP_TIMEOUT_MS }, async () => {
    // Writes of one item queue behind each other: a lower threshold (4 units a second) for this table.
    const item = await createTable('item', { tags: { 'shoal:split-heat-share': '0.02' } });
    const hotKey = hex(encodeItemKey(item, { S: 'hot' }));
    const load = writers('item', 6, (_, i) => ({ pk: i % 10 === 0 ? `cold-${i}` : 'hot' }));
    const readers = loops(3, async () => {
      await cluster.doc.send(new GetCommand({ TableName: 'item', Key: { pk: 'hot' } }));
    });
    let partitionId = 0;
    try {
      await eventually(
        'the hot item reported',
        async () => {
          const [row] = await partitionsOf(item);
          partitionId = row.id;
          return (await status()).hotKeys.some((hot) => Number(hot.partitionId) === row.id && hex(hot.key) === hotKey && hot.share > 0.5);
        },
        90_000,
        500,
      );
      // `shoal admin status` lists it while it is hot.
      const listed = await runShoal(['admin', 'status', '--json', '--meta', cluster.nodes.metaAddresses.join(',')]);
      expect(listed.code, listed.stderr).toBe(0);
      expect((JSON.parse(listed.stdout) as { hotKeys: Array<{ partition: number; table: string; key: string }> }).hotKeys).toContainEqual(
        expect.objectContaining({ partition: partitionId, table: 'item', key: hotKey }),
      );
      await eventually('eventual reads on every replica', async () => (await partitionsOf(item))[0].readers.join() === '1,2,3', 30_000, 500);
    } finally {
      await Promise.all([load.stop(), readers.stop()]);
    }
    expect(await partitionsOf(item)).toHaveLength(1);
    expect(events('hot_key').some((e) => e.partition === partitionId && e.key === hotKey)).toBe(true);
    const reported = await Promise.all(cluster.nodes.nodeIds().map(async (id) => metricValue(await cluster.nodes.metrics(id), 'shoal_node_hot_keys_reported_total') ?? 0));
    expect(Math.max(...reported)).toBeGreaterThanOrEqual(1);
  });

  it('splits a table with a local secondary index only between item collections', { timeout: STEP_TIMEOUT_MS }, async () => {
    const lsi = await createTable('lsi', { sortKey: true, lsi: true });
    const collections = ['a', 'b', 'c'];
    const load = writers('lsi', 6, (writer, i) => ({ pk: collections[(writer + i) % 3], sk: writer * 1_000_000 + i }));
    await eventually('lsi split', async () => (await partitionsOf(lsi)).length >= 2, 120_000, 500);
    await load.stop();
    const starts = new Set(collections.map((pk) => hex(encodeCollectionPrefix(lsi, { S: pk }))));
    const rows = await partitionsOf(lsi);
    for (const row of rows.slice(1)) expect(starts, 'a split key starts an item collection').toContain(hex(row.startKey));
    await readAllBack('lsi', load.acknowledged);
  });

  it('splits a table over its size threshold, not one under it', { timeout: STEP_TIMEOUT_MS }, async () => {
    // No heat split: their heat threshold is 100 times the limit.
    const sized = await createTable('sized', { tags: { 'shoal:split-size-bytes': '40000', 'shoal:split-heat-share': '100' } });
    const roomy = await createTable('roomy', { tags: { 'shoal:split-size-bytes': '10000000', 'shoal:split-heat-share': '100' } });
    const fill = 'y'.repeat(400);
    const loads = [writers('sized', 3, (w, i) => ({ pk: `s-${w}-${i}` }), fill), writers('roomy', 3, (w, i) => ({ pk: `r-${w}-${i}` }), fill)];
    await eventually('sized split', async () => (await partitionsOf(sized)).length >= 2, 120_000, 500);
    await Promise.all(loads.map((l) => l.stop()));
    expect(events('partition_split').find((e) => e.table === 'sized')).toMatchObject({ reason: 'size' });
    // roomy was measured (its leader reports its size) and stayed whole.
    await eventually('roomy measured', async () => {
      const now = await status();
      const [row] = now.partitions.filter((p) => p.tableId === roomy);
      return now.nodes.some((n) => n.reportedReplicas.some((r) => r.partitionId === row.id && r.leader && r.sizeBytes > 20_000n));
    }, 30_000, 500);
    expect(await partitionsOf(roomy)).toHaveLength(1);
    await readAllBack('sized', loads[0].acknowledged);
  });
});
