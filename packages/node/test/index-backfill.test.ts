/**
 * GSI backfills as a series of chunk entries (asynchronous GSIs), on three storage node processes:
 * while a 100,000-item backfill runs, another group of the same nodes keeps applying writes (the
 * walk no longer holds every group of the node in one apply); a backfill whose leader is SIGKILLed
 * part way is continued by the new leader from the recorded next key (it walks only the rest) and
 * the GSI converges exactly; a split during a backfill hands the right half the rest of the range,
 * every item is walked exactly once over both halves and the GSI converges exactly (that the call
 * waits for the right half too: packages/storage/test/index-outbox.test.ts, partition-replica-index-entries).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionMap, type IndexSchema, type Item, type PartitionDescriptor, type PartitionWrite, type TableRecord, type TableSchema } from '@shoal/model';
import {
  AdminService,
  ErrorDetailSchema,
  RpcError,
  Status,
  backfillIndexRequestToWire,
  createClient,
  partitionMapResponseFromWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  statisticsFromWire,
  statisticsRequestToWire,
  tableRecordToWire,
  type ClientOf,
} from '@shoal/proto';
import { StorageNodeChildren, type StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';

const ATTEMPTS = 2_400;
const CHUNK_ITEMS = 400;
const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(value) });

describe('GSI backfills in bounded chunk entries on three node processes', () => {
  let cluster: StorageNodeChildren;
  let admin: ClientOf<typeof AdminService> | undefined;

  const partitionMap = async (): Promise<PartitionDescriptor[]> => {
    const answer = partitionMapResponseFromWire(await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (answer.notModified) throw new Error('no map');
    return answer.partitions;
  };
  const partitionsOf = async (spaceId: number): Promise<PartitionDescriptor[]> => new PartitionMap(await partitionMap()).partitionsOf(spaceId);
  const space = async (): Promise<number> => (await cluster.meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;

  /** Waits until every live node holds a replica of every partition of the map (three nodes: all of them). */
  const replicasEverywhere = async (live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> => {
    await eventually(async () => {
      const count = (await partitionMap()).length;
      return (await Promise.all(live.map((n) => n.state()))).every((s) => s.ready && s.metrics.partitionReplicas === count) ? true : undefined;
    }, 'every replica on every node', ATTEMPTS);
  };

  const createTable = async (name: string): Promise<{ schema: TableSchema; record: TableRecord }> => {
    const schema: TableSchema = { name, tableId: await space(), hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [] };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    await replicasEverywhere();
    return { schema, record };
  };

  /** Adds a KEYS_ONLY GSI on `city` through the meta group (its partitions made and placed); answers the new schema. */
  const addCityIndex = async (table: { schema: TableSchema; record: TableRecord }, name = 'byCity'): Promise<{ schema: TableSchema; record: TableRecord; index: IndexSchema }> => {
    const index: IndexSchema = { name, kind: 'GSI', indexId: await space(), hashKey: { name: 'city', type: 'S' }, projection: { type: 'KEYS_ONLY' } };
    const schema: TableSchema = { ...table.schema, indexes: [...table.schema.indexes, index] };
    const record: TableRecord = { ...table.record, schema };
    await cluster.meta.call((client, options) => client.updateTable({ record: tableRecordToWire(record) }, options));
    await eventually(async () => ((await partitionsOf(index.indexId)).length > 0 ? true : undefined), 'the GSI partitions in the map', ATTEMPTS);
    await replicasEverywhere();
    return { schema, record, index };
  };

  const item = (i: number): Item => ({ pk: S(`k${i % 997}`), sk: N(i), city: S(`c${i % 13}`), note: S(`n${i}`) });

  /** `count` items written to the table's one partition, 1,000 per write. */
  const load = async (schema: TableSchema, count: number): Promise<void> => {
    const [partition] = await partitionsOf(schema.tableId);
    for (let from = 0; from < count; from += 1_000) {
      const operations = Array.from({ length: Math.min(1_000, count - from) }, (_, n) => {
        const it = item(from + n);
        return { table: schema, kind: 'Put' as const, key: { pk: it.pk, sk: it.sk }, item: it };
      });
      const { applied } = await cluster.write(cluster.nodes, () => partition, { operations });
      expect(applied).toBe(true);
    }
  };

  /**
   * The backfill call of the table's partition(s) as the router makes it: to each partition's leader
   * (following NotLeader among `live`, retried while the group elects), resolving once it ran there.
   */
  const backfill = async (schema: TableSchema, indexName: string, live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> => {
    for (const partition of await partitionsOf(schema.tableId)) {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      let last: unknown;
      let done = false;
      for (let attempt = 0; attempt < 200 && !done; attempt++) {
        try {
          await cluster.partitionClient(live[attempt % live.length].address).backfillIndex(backfillIndexRequestToWire(target, { table: schema, indexName }), { timeoutMs: 180_000 });
          done = true;
        } catch (error) {
          last = error;
          if (!(error instanceof RpcError) || error.code === Status.INVALID_ARGUMENT) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      if (!done) throw last;
    }
  };

  /** A node's counters of backfill chunks and items it proposed and applied as a leader. */
  const walked = async (nodes: readonly StorageNodeChild[] = cluster.nodes): Promise<{ chunks: number; items: number }> => {
    const states = await Promise.all(nodes.map((n) => n.state()));
    return { chunks: states.reduce((sum, s) => sum + s.metrics.indexBackfillChunks, 0), items: states.reduce((sum, s) => sum + s.metrics.indexBackfillItems, 0) };
  };

  /** Asks the nodes of `live` in turn until one answers (a follower behind, an election: the next), bounded. */
  const onAnyNode = async <T>(call: (node: StorageNodeChild) => Promise<T>, live: readonly StorageNodeChild[]): Promise<T> => {
    let last: unknown;
    for (let attempt = 0; attempt < 60; attempt++) {
      try {
        return await call(live[attempt % live.length]);
      } catch (error) {
        last = error;
        if (!(error instanceof RpcError) || error.code === Status.INVALID_ARGUMENT) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw last;
  };

  /** Every entry of the GSI (consistent reads of each of its partitions), as sorted JSON, and the summed statistics' count. */
  const gsiEntries = async (schema: TableSchema, index: IndexSchema, live: readonly StorageNodeChild[] = cluster.nodes): Promise<{ entries: string[]; itemCount: number }> => {
    const entries: string[] = [];
    let itemCount = 0;
    for (const partition of await partitionsOf(index.indexId)) {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      let exclusiveStartKey: Item | undefined;
      for (let page = 0; page < 1_000; page++) {
        const request = { table: schema, indexName: index.name, forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const, ...(exclusiveStartKey ? { exclusiveStartKey } : {}) };
        const result = rangeReadResultFromWire(await onAnyNode((node) => cluster.partitionClient(node.address).readRange(rangeReadRequestToWire(target, request, { consistent: true }), { timeoutMs: 5_000 }), live));
        entries.push(...result.items.map((entry) => JSON.stringify([entry.city, entry.pk, entry.sk])));
        exclusiveStartKey = result.lastEvaluatedKey;
        if (exclusiveStartKey === undefined) break;
      }
      itemCount += statisticsFromWire(await onAnyNode((node) => cluster.partitionClient(node.address).statistics(statisticsRequestToWire(target, { table: schema, indexName: index.name }), { timeoutMs: 5_000 }), live)).itemCount;
    }
    return { entries: entries.sort(), itemCount };
  };

  /** The GSI holds exactly the entries of items 0..count-1 (eventually: shipping is asynchronous). */
  const converges = async (schema: TableSchema, index: IndexSchema, count: number, live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> => {
    const want = Array.from({ length: count }, (_, i) => item(i)).map((it) => JSON.stringify([it.city, it.pk, it.sk])).sort();
    let last: { entries: string[]; itemCount: number } | undefined;
    await eventually(async () => {
      last = await gsiEntries(schema, index, live);
      return last.itemCount === count && JSON.stringify(last.entries) === JSON.stringify(want) ? true : undefined;
    }, `${schema.name}/${index.name} to converge`, ATTEMPTS).catch((error: unknown) => {
      expect({ itemCount: last?.itemCount, entries: last?.entries.length }).toEqual({ itemCount: count, entries: count });
      expect(last?.entries).toEqual(want);
      throw error;
    });
  };

  const adminCall = async <T>(call: (client: ClientOf<typeof AdminService>) => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options));
      admin?.close();
      admin = createClient(AdminService, cluster.meta.leaderAddress!);
      try {
        return await call(admin);
      } catch (error) {
        if (attempt >= 20 || !(error instanceof RpcError)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };

  beforeAll(async () => {
    // No split by heat or size and no throttling: the loads below would split the tables (a split here
    // is the test's own) and exceed a partition's write units.
    cluster = await StorageNodeChildren.start('index-backfill', 3, {
      tickMs: 20,
      heartbeatIntervalMs: 200,
      defaultPartitions: 1,
      splitting: { enabled: false },
      load: { limits: { writeUnitsPerSecond: 1_000_000, readUnitsPerSecond: 1_000_000 } },
      indexBackfillChunk: { maxItems: CHUNK_ITEMS, maxBytes: 1 << 20 },
    });
    await eventually(() => cluster.allReady(), 'three ready nodes', ATTEMPTS);
  }, 120_000);

  afterAll(async () => {
    admin?.close();
    await cluster?.close();
  });

  /** The 100,000-item table of the first test, with its GSI (the last test splits it during a second GSI's backfill). */
  let big: { schema: TableSchema; record: TableRecord };

  it('keeps applying another group\'s writes on the same nodes while a 100,000-item backfill runs, in bounded chunks', { timeout: 300_000 }, async () => {
    const loaded = await createTable('big');
    const other = await createTable('other');
    await load(loaded.schema, 100_000);
    const { schema, record, index } = await addCityIndex(loaded);
    big = { schema, record };
    const [otherPartition] = await partitionsOf(other.schema.tableId);
    const before = await walked();

    let running = true;
    let walking = false;
    // Every node holds a replica of both groups: the walk started once a chunk applied on the leader.
    const watch = (async () => {
      while (running && !walking) {
        walking = (await walked()).chunks > before.chunks;
        if (!walking) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    let writesDuringWalk = 0;
    const writer = (async () => {
      for (let n = 0; running; n++) {
        const put: PartitionWrite = { operations: [{ table: other.schema, kind: 'Put', key: { pk: S('w'), sk: N(n) }, item: { pk: S('w'), sk: N(n) } }] };
        const { applied } = await cluster.write(cluster.nodes, () => otherPartition, put);
        expect(applied).toBe(true);
        if (walking && running) writesDuringWalk++;
      }
    })();
    try {
      await backfill(schema, index.name);
    } finally {
      running = false;
      await Promise.all([watch, writer]);
    }
    const after = await walked();
    // Printed, not asserted (no timing in tests): how much the other group applied meanwhile.
    console.log(`100,000-item backfill: ${after.chunks - before.chunks} chunks; ${writesDuringWalk} writes of another group acknowledged during the walk`);
    // Every item walked once, in chunks of at most CHUNK_ITEMS (the last one may find none left).
    expect(after.items - before.items).toBe(100_000);
    expect(after.chunks - before.chunks).toBeGreaterThanOrEqual(100_000 / CHUNK_ITEMS);
    expect(after.chunks - before.chunks).toBeLessThanOrEqual(100_000 / CHUNK_ITEMS + 1);
    // In one apply (the old walk), no other group of the node applied anything until it ended.
    expect(writesDuringWalk).toBeGreaterThan(0);
    await converges(schema, index, 100_000);
  });

  it('continues a backfill whose leader is SIGKILLed part way from the recorded next key; the GSI converges exactly', { timeout: 300_000 }, async () => {
    const table = await createTable('killed');
    await load(table.schema, 20_000);
    const { schema, index } = await addCityIndex(table);
    const before = await Promise.all(cluster.nodes.map(async (node) => ({ node, items: (await walked([node])).items, chunks: (await walked([node])).chunks })));
    const call = backfill(schema, index.name).catch(() => undefined);
    // The leader: the node whose chunks apply; killed once a few did.
    const leader = await eventually(async () => {
      for (const { node, chunks } of before) if ((await walked([node])).chunks >= chunks + 3) return node;
      return undefined;
    }, 'a few chunks applied by the leader', ATTEMPTS);
    await leader.kill();
    await call;
    const survivors = cluster.nodes.filter((n) => n !== leader);
    const survivorsBefore = before.filter(({ node }) => node !== leader).reduce((sum, { items }) => sum + items, 0);
    // The call as the router makes it again after the leader change: resolves once the backfill is done.
    await backfill(schema, index.name, survivors);
    const survivorsWalked = (await walked(survivors)).items - survivorsBefore;
    // The new leader walked the rest only: the killed one had walked at least 3 chunks (applied, so committed).
    expect(survivorsWalked).toBeGreaterThan(0);
    expect(survivorsWalked).toBeLessThanOrEqual(20_000 - 3 * CHUNK_ITEMS);
    await converges(schema, index, 20_000, survivors);
    await cluster.restart(leader);
    await eventually(() => cluster.allReady(), 'the restarted node ready', ATTEMPTS);
    await replicasEverywhere();
  });

  it('hands the rest of a backfill to the right half of a split made while it runs: every item walked exactly once over both halves, and the GSI converges exactly', { timeout: 300_000 }, async () => {
    // A second GSI of the 100,000 items: a walk of 250 chunks, long next to a split.
    const { schema, index } = await addCityIndex(big, 'byCityAgain');
    const before = await walked();
    const call = backfill(schema, index.name);
    await eventually(async () => ((await walked()).chunks >= before.chunks + 2 ? true : undefined), 'a few chunks applied', ATTEMPTS);
    await adminCall((client) => client.split({ table: schema.name }));
    const atSplit = await walked();
    await call;
    // The split came while the walk went on (the premise of this test).
    expect(atSplit.items - before.items).toBeLessThan(100_000);
    expect(await partitionsOf(schema.tableId)).toHaveLength(2);
    await converges(schema, index, 100_000);
    // Each item walked exactly once over both halves (no part walked again by either).
    expect((await walked()).items - before.items).toBe(100_000);
    // Sent to both halves now (as the router's next round does): both done, nothing walked again.
    await backfill(schema, index.name);
    expect((await walked()).items - before.items).toBe(100_000);
  });
});
