/**
 * Asynchronous GSIs on three real storage nodes (child processes, gRPC on 127.0.0.1): base partitions
 * write outbox records, each node's shipper sends them to the GSI partitions (ApplyIndexEntries),
 * and the GSI partitions' entries converge exactly to what the base items imply, computed by a
 * one-node store with synchronous GSIs fed the same writes (puts, updates moving an entry to another
 * GSI key, deletes, items leaving the index). Also: a batch sent twice applies once; the base
 * partition's leader killed mid-shipping (the new leader catches up); a GSI partition's leader moved;
 * a GSI partition split while shipping; a base partition split while a large backlog is pending (held
 * for an index the map does not show yet, moved to the right half in bounded steps while another
 * group applies writes, then shipped by both halves).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCollectionPrefix, encodeItemKey, itemSize, PartitionMap, spaceRange, type IndexSchema, type Item, type PartitionDescriptor, type PartitionWrite, type TableRecord, type TableSchema } from '@shoal/model';
import {
  ErrorDetailSchema,
  RpcError,
  Status,
  applyIndexEntriesRequestToWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  tableRecordToWire,
} from '@shoal/proto';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { StorageNodeChildren, type StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';
import { GsiClusterHarness } from './gsi-cluster-harness.ts';

const ATTEMPTS = 1_200;
/** Items of the backlog pending across a base partition split. */
const BACKLOG_ITEMS = 8_000;
/**
 * Records one step of a split's outbox move carries here (the default is 1,000): the backlog's move
 * takes some 80 steps, each a Raft round, so another group's writes go on between them even on a
 * loaded machine (with 1,000, eight quick steps could all fall between two of its writes).
 */
const MOVE_STEP_RECORDS = 100;
const BY_CITY_NAME = 'byCity';
const BY_AGE_NAME = 'byAge';
const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(value) });

describe('asynchronous GSIs: outboxes shipped to GSI partitions on three node processes', () => {
  let cluster: StorageNodeChildren;
  let harness: GsiClusterHarness;
  let reference: LocalStore;
  let schema: TableSchema;
  let byCity: IndexSchema;
  let byAge: IndexSchema;
  /** The schema writes carry (byAge added before the meta group knows it, in the last test). */
  let writeSchema: TableSchema;
  let record: TableRecord;

  const itemKey = (item: Item): Uint8Array => encodeItemKey(schema.tableId, item.pk, item.sk);
  /** A write through the base partition owning the item (located again at each attempt: splits), and the same write on the reference store. */
  const write = async (request: PartitionWrite, live: readonly StorageNodeChild[] = cluster.nodes): Promise<StorageNodeChild> => {
    const key = itemKey(request.operations[0].key);
    const { applied, leader } = await cluster.write(live, async () => new PartitionMap(await harness.partitionMap()).lookup(key)!, request);
    expect(applied).toBe(true);
    expect((await reference.partitions.write(request)).applied).toBe(true);
    return leader;
  };
  const put = (pk: string, sk: number, extra: Item): PartitionWrite => ({ operations: [{ table: writeSchema, kind: 'Put', key: { pk: S(pk), sk: N(sk) }, item: { pk: S(pk), sk: N(sk), ...extra } }] });
  const remove = (pk: string, sk: number): PartitionWrite => ({ operations: [{ table: writeSchema, kind: 'Delete', key: { pk: S(pk), sk: N(sk) } }] });

  const expected = async (index: IndexSchema) => {
    const table = writeSchema;
    const read = await reference.partitions.readRange({ table, indexName: index.name, forward: true, maxBytes: 1 << 30, select: 'ALL_ATTRIBUTES' });
    // Counted from the entries: the one-node store's per-space counters miscount an index added to
    // writes without a backfill (byAge below), which GSI partitions, counting what they hold, do not.
    return { items: read.items, itemCount: read.items.length, sizeBytes: read.items.reduce((sum, item) => sum + itemSize(item), 0) };
  };
  /** The GSI's partitions hold exactly what the reference store's synchronous GSI holds (eventually). */
  const converges = async (index: IndexSchema, live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> =>
    harness.converges(`${index.name} to converge`, () => harness.gsiContents(writeSchema, index, live), await expected(index), ATTEMPTS);

  /** Some writes over 30 items: new items, updates moving city, leaving the index, deletes. */
  const workload = async (round: number, count: number, live?: readonly StorageNodeChild[]): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const n = round * 1_000 + i;
      const pk = `p${n % 30}`;
      const sk = n % 2;
      if (n % 7 === 3) await write(remove(pk, sk), live);
      else if (n % 5 === 1) await write(put(pk, sk, { name: S(`n${n}`), age: N(n % 9) }), live);
      else await write(put(pk, sk, { city: S(`c${n % 4}`), name: S(`n${n}`), age: N(n % 9), other: S(`o${n}`) }), live);
    }
  };

  beforeAll(async () => {
    reference = await openLocalStore({ inMemory: true });
    // byAge's records wait for the map to show it longer than a loaded machine may take below.
    // No split by heat or size and no throttling: the backlog loaded below would split or exceed a partition's write units.
    cluster = await StorageNodeChildren.start('index-shipping', 3, {
      tickMs: 20,
      heartbeatIntervalMs: 200,
      defaultPartitions: 2,
      indexShipping: { unknownIndexGraceMs: 600_000, outboxMoveStep: { maxRecords: MOVE_STEP_RECORDS, maxBytes: 1024 * 1024 } },
      splitting: { enabled: false },
      load: { limits: { writeUnitsPerSecond: 1_000_000, readUnitsPerSecond: 1_000_000 } },
    });
    await eventually(() => cluster.allReady(), 'three ready nodes', ATTEMPTS);
    harness = new GsiClusterHarness(cluster);
    const space = (): Promise<number> => harness.allocateSpaceId();
    const tableId = await space();
    byCity = { name: BY_CITY_NAME, kind: 'GSI', indexId: await space(), hashKey: { name: 'city', type: 'S' }, rangeKey: { name: 'age', type: 'N' }, projection: { type: 'INCLUDE', nonKeyAttributes: ['name'] } };
    byAge = { name: BY_AGE_NAME, kind: 'GSI', indexId: await space(), hashKey: { name: 'age', type: 'N' }, projection: { type: 'KEYS_ONLY' } };
    schema = { name: 'people', tableId, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [byCity] };
    writeSchema = schema;
    record = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 2 }, options));
    await eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((s) => s.ready && s.metrics.partitionReplicas === 4) ? true : undefined), 'base and GSI replicas on every node', ATTEMPTS);
  }, 120_000);

  afterAll(async () => {
    harness?.close();
    await cluster?.close();
    await reference?.close();
  });

  it('gives the GSI partitions of its own, covering the index space', { timeout: 60_000 }, async () => {
    const partitions = await harness.partitionsOf(byCity.indexId);
    expect(partitions).toHaveLength(2);
    expect(Buffer.from(partitions[0].startKey).equals(Buffer.from(spaceRange(byCity.indexId).start))).toBe(true);
    expect(partitions.at(-1)!.endKey.length === 0 || Buffer.from(partitions.at(-1)!.endKey).equals(Buffer.from(spaceRange(byCity.indexId).end))).toBe(true);
  });

  it('converges to the base items: puts, updates moving entries, items leaving the index, deletes', { timeout: 120_000 }, async () => {
    await workload(1, 120);
    await converges(byCity);
    const state = await harness.gsiContents(writeSchema, byCity);
    expect(state.items.length).toBeGreaterThan(10);
    // Shipped records are trimmed: the outboxes empty out.
    await eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((s) => s.metrics.indexOutboxRecords === 0) ? true : undefined), 'empty outboxes', ATTEMPTS);
    const metrics = (await Promise.all(cluster.nodes.map((n) => n.state()))).map((s) => s.metrics);
    expect(metrics.reduce((sum, m) => sum + m.indexRecordsShipped, 0)).toBeGreaterThan(0);
    expect(metrics.reduce((sum, m) => sum + m.indexEntriesApplied, 0)).toBeGreaterThan(0);
  });

  it('serves a GSI Query from the partition its item collection lies in, and refuses reads a GSI partition cannot serve', { timeout: 60_000 }, async () => {
    const partitions = await harness.partitionsOf(byCity.indexId);
    const collection = encodeCollectionPrefix(byCity.indexId, S('c1'));
    const owner = new PartitionMap(partitions).lookup(collection)!;
    const other = partitions.find((p) => p.id !== owner.id)!;
    const query = { table: writeSchema, indexName: byCity.name, hashValue: S('c1'), forward: true, maxBytes: 1 << 20, select: 'ALL_ATTRIBUTES' as const };
    const read = (partition: PartitionDescriptor, request: Parameters<typeof rangeReadRequestToWire>[1]) =>
      harness.onAnyNode((node) => cluster.partitionClient(node.address).readRange(rangeReadRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, request, { consistent: true }), { timeoutMs: 5_000 }));
    const found = rangeReadResultFromWire(await read(owner, query)).items;
    const want = (await expected(byCity)).items.filter((item) => JSON.stringify(item.city) === JSON.stringify(S('c1')));
    expect(found).toEqual(want);
    expect(found.length).toBeGreaterThan(0);
    const outside = await read(other, query).catch((error: unknown) => error);
    expect(outside instanceof RpcError && outside.detail(ErrorDetailSchema)?.kind.case).toBe('keyOutOfRange');
    // The table itself (no index) is not a GSI partition's: refused as a request for another table.
    const { indexName: _index, hashValue: _hash, ...tableScan } = query;
    const wrong = await read(owner, tableScan).catch((error: unknown) => error);
    expect(wrong instanceof RpcError && wrong.code).toBe(Status.INVALID_ARGUMENT);
    // Nor is a GSI a base partition's: its index space holds GSI partitions' entries, not its own.
    const [base] = await harness.partitionsOf(schema.tableId);
    const { hashValue: _value, ...gsiScan } = query;
    const misrouted = await read(base, gsiScan).catch((error: unknown) => error);
    expect(misrouted instanceof RpcError && misrouted.code).toBe(Status.INVALID_ARGUMENT);
  });

  it('applies a batch sent twice once, and never lets an older record (or a fenced source\'s) overwrite a newer one', { timeout: 60_000 }, async () => {
    const source = 999_000 + Math.floor(Math.random() * 1_000);
    const entryKey = encodeItemKey(byCity.indexId, S('~probe'), N(0), S('~probe'), N(0));
    const partitions = await harness.partitionsOf(byCity.indexId);
    const partition = new PartitionMap(partitions).lookup(entryKey)!;
    const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
    const entry = { pk: S('~probe'), sk: N(0), city: S('~probe'), age: N(0) };
    const itemKey = encodeItemKey(schema.tableId, S('~probe'), N(0));
    type Batch = Parameters<typeof applyIndexEntriesRequestToWire>[1];
    const send = (records: Batch['records'], from = source, fences: Batch['fences'] = []) =>
      harness.onAnyNode((node) => cluster.partitionClient(node.address).applyIndexEntries(applyIndexEntriesRequestToWire(target, { sourcePartitionId: from, records, fences }), { timeoutMs: 5_000 }));
    const batch = [{ seq: 1, indexId: byCity.indexId, entryKey, itemKey, entry }, { seq: 2, indexId: byCity.indexId, entryKey, itemKey, entry: { ...entry, name: S('second') } }];
    expect(await send(batch)).toMatchObject({ applied: 2, skipped: 0 });
    expect(await send(batch)).toMatchObject({ applied: 0, skipped: 2 });
    expect(await send(batch.slice(0, 1))).toMatchObject({ applied: 0, skipped: 1 });
    const probe = (await harness.gsiContents(writeSchema, byCity)).items.filter((item) => JSON.stringify(item.pk) === JSON.stringify(S('~probe')));
    expect(probe).toEqual([{ ...entry, name: S('second') }]);
    // A key outside the partition is refused whole (KeyOutOfRange with its descriptor).
    const other = partitions.find((p) => p.id !== partition.id)!;
    const error = await send([{ seq: 3, indexId: byCity.indexId, entryKey: other.startKey, itemKey }]).catch((e: unknown) => e);
    expect(error instanceof RpcError && error.detail(ErrorDetailSchema)?.kind.case).toBe('keyOutOfRange');
    // A split half of the source fences it from the item's key on: the source's later record of it is stale.
    expect(await send([{ seq: 1, indexId: byCity.indexId, entryKey, itemKey, entry: { ...entry, name: S('half') } }], source + 1, [{ sourcePartitionId: source, fromKey: itemKey }])).toMatchObject({ applied: 1 });
    expect(await send([{ seq: 4, indexId: byCity.indexId, entryKey, itemKey }])).toMatchObject({ applied: 0, skipped: 1 });
    expect((await harness.gsiContents(writeSchema, byCity)).items.filter((item) => JSON.stringify(item.pk) === JSON.stringify(S('~probe')))).toEqual([{ ...entry, name: S('half') }]);
    expect(await send([{ seq: 2, indexId: byCity.indexId, entryKey, itemKey }], source + 1)).toMatchObject({ applied: 1 });
    await converges(byCity);
  });

  it('catches up when the base partition\'s leader is killed mid-shipping', { timeout: 180_000 }, async () => {
    const leader = await write(put('p1', 1, { city: S('before-kill'), age: N(1) }));
    const writes = workload(2, 60);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await leader.kill();
    const survivors = cluster.nodes.filter((n) => n !== leader);
    // Every write is a whole item put or a delete, so one retried after the kill applies alike.
    await writes;
    await workload(3, 40, survivors);
    await converges(byCity, survivors);
    const restarted = await cluster.restart(leader);
    await eventually(() => cluster.allReady(), 'the restarted node ready', ATTEMPTS);
    await workload(4, 20);
    await converges(byCity, [restarted]);
  });

  it('follows a GSI partition\'s leader moving to another node', { timeout: 120_000 }, async () => {
    const [partition] = await harness.partitionsOf(byCity.indexId);
    const leaderOf = async (): Promise<number | undefined> => {
      for (const node of cluster.nodes) {
        if ((await node.state()).metrics.groups.some((g) => g.partitionId === partition.id && g.leader === 1)) return node.nodeId;
      }
      return undefined;
    };
    const before = await eventually(leaderOf, 'the GSI partition\'s leader', ATTEMPTS);
    const other = partition.replicas.map((r) => r.nodeId).find((id) => id !== before)!;
    await harness.adminCall((client) => client.transferLeader({ partitionId: BigInt(partition.id), toNode: BigInt(other) }));
    await eventually(async () => ((await leaderOf()) === other ? true : undefined), 'the leadership moved', ATTEMPTS);
    await workload(5, 60);
    await converges(byCity);
  });

  it('keeps shipping through a split of a GSI partition', { timeout: 120_000 }, async () => {
    const before = (await harness.partitionsOf(byCity.indexId)).length;
    const writes = workload(6, 80);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await harness.adminCall((client) => client.split({ table: `${schema.name}/${byCity.name}` }));
    await writes;
    expect((await harness.partitionsOf(byCity.indexId)).length).toBe(before + 1);
    await workload(7, 20);
    await converges(byCity);
  });

  it('ships a large backlog pending across a split of their base partition from both halves, moved in bounded steps while another group applies writes', { timeout: 300_000 }, async () => {
    // Writes name byAge before the meta group does: their byAge records wait in the outboxes, and every record after them.
    writeSchema = { ...schema, indexes: [byCity, byAge] };
    const basesBefore = await harness.partitionsOf(schema.tableId);
    await workload(8, 40);
    // The backlog: BACKLOG_ITEMS items (a byCity and a byAge record each), 1,000 per write to the partition holding them.
    const map = new PartitionMap(await harness.partitionMap());
    const byPartition = new Map<number, PartitionWrite['operations']>();
    for (let i = 0; i < BACKLOG_ITEMS; i++) {
      const [operation] = put(`b${i}`, i, { city: S(`c${i % 4}`), age: N(i % 9), name: S(`n${i}`) }).operations;
      const id = map.lookup(itemKey(operation.key))!.id;
      byPartition.set(id, byPartition.get(id) ?? []);
      byPartition.get(id)!.push(operation);
    }
    for (const operations of byPartition.values()) for (let from = 0; from < operations.length; from += 1_000) await write({ operations: operations.slice(from, from + 1_000) });
    const states = async () => Promise.all(cluster.nodes.map((n) => n.state()));
    const pending = async () => (await states()).reduce((sum, s) => sum + s.metrics.indexOutboxRecords, 0);
    await eventually(async () => ((await pending()) >= 2 * BACKLOG_ITEMS ? true : undefined), 'the backlog waiting in the outboxes', ATTEMPTS);
    const held = (await states()).reduce((sum, s) => sum + s.metrics.indexBatchesHeld, 0);
    expect(held).toBeGreaterThan(0);
    const moveSteps = async () =>
      (await states()).reduce(
        (sum, s) => ({ steps: sum.steps + s.metrics.indexOutboxMoveSteps, moved: sum.moved + s.metrics.indexOutboxRecordsMoved, ended: sum.ended + s.metrics.indexOutboxMovesEnded }),
        { steps: 0, moved: 0, ended: 0 },
      );
    const before = await moveSteps();

    // Another group of the same nodes (a table of its own) takes writes meanwhile; each write is
    // counted as made during the move when the move had stepped before it was sent and took more
    // steps after it was acknowledged.
    const other: TableSchema = { name: 'other', tableId: await harness.allocateSpaceId(), hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire({ ...record, schema: other }), initialPartitions: 1 }, options));
    const [otherPartition] = await eventually(async () => ((await harness.partitionsOf(other.tableId)).length === 1 ? harness.partitionsOf(other.tableId) : undefined), 'the other table\'s partition', ATTEMPTS);
    let writing = true;
    const acknowledged: Array<{ sent: number; acknowledged: number }> = [];
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        const sent = (await moveSteps()).steps;
        const { applied } = await cluster.write(cluster.nodes, () => otherPartition, { operations: [{ table: other, kind: 'Put', key: { pk: S(`w${n}`) }, item: { pk: S(`w${n}`) } }] });
        expect(applied).toBe(true);
        acknowledged.push({ sent, acknowledged: (await moveSteps()).steps });
      }
    })();
    try {
      await harness.adminCall((client) => client.split({ table: schema.name }));
      const bases = await harness.partitionsOf(schema.tableId);
      expect(bases.length).toBe(basesBefore.length + 1);
      // New items of the right half written right after the split (the move may still run): without an
      // age they make no byAge record, so only the right half's hold keeps their byCity records from
      // going first (they would raise the GSI partitions' cursors over the moved records' seqs).
      const right = bases.find((partition) => !basesBefore.some((b) => b.id === partition.id))!;
      const inRight = (key: Uint8Array): boolean => Buffer.compare(key, right.startKey) >= 0 && (right.endKey.length === 0 || Buffer.compare(key, right.endKey) < 0);
      for (let i = 0, written = 0; written < 20 && i < 10_000; i++) {
        if (!inRight(itemKey({ pk: S(`r${i}`), sk: N(0) }))) continue;
        await write(put(`r${i}`, 0, { city: S('during'), name: S(`r${i}`) }));
        written += 1;
      }
      await eventually(async () => ((await moveSteps()).ended > before.ended ? true : undefined), 'the outbox move to end', ATTEMPTS);
    } finally {
      writing = false;
      await writer;
    }
    const after = await moveSteps();
    const duringMove = acknowledged.filter((w) => w.sent > before.steps && w.acknowledged < after.steps).length;
    console.log(`outbox move of a ${2 * BACKLOG_ITEMS}-record backlog: ${after.steps - before.steps} steps moved ${after.moved - before.moved} records; ${duringMove} writes of another group acknowledged during it`);
    await workload(9, 20);
    // Now the meta group adds byAge (its partitions): what waited ships, from the halves that hold it.
    // Done before the move's checks below, so that one failing leaves the cluster as the next test expects.
    record = { ...record, schema: writeSchema };
    await cluster.meta.call((client, options) => client.updateTable({ record: tableRecordToWire(record) }, options));
    schema = writeSchema;
    await converges(byAge);
    await converges(byCity);
    // One move, in steps of at most MOVE_STEP_RECORDS records each over the parent's outbox (both halves' records), the right half's about half of them.
    expect(after.ended - before.ended).toBe(1);
    expect(after.moved - before.moved).toBeGreaterThan(BACKLOG_ITEMS / 4);
    expect(after.steps - before.steps).toBeGreaterThanOrEqual((after.moved - before.moved) / MOVE_STEP_RECORDS);
    expect(duringMove).toBeGreaterThan(0);
  });

  it('drops the records of a deleted GSI at once, without holding up the others', { timeout: 120_000 }, async () => {
    // The meta group deletes byAge; writes still name it (a router whose schema is older).
    record = { ...record, schema: { ...schema, indexes: [byCity] } };
    await cluster.meta.call((client, options) => client.updateTable({ record: tableRecordToWire(record) }, options));
    await eventually(async () => ((await harness.partitionsOf(byAge.indexId)).length === 0 ? true : undefined), 'byAge partitions gone', ATTEMPTS);
    const partitionCount = (await harness.partitionMap()).length;
    // Three nodes: every node holds a replica of every partition.
    await eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((s) => s.metrics.partitionReplicas === partitionCount) ? true : undefined), 'byAge replicas removed', ATTEMPTS);
    const droppedBefore = (await Promise.all(cluster.nodes.map((n) => n.state()))).reduce((sum, s) => sum + s.metrics.indexRecordsDropped, 0);
    await workload(10, 30);
    // Held for the 10-minute grace this cluster has, byAge's records would keep byCity's behind them.
    await converges(byCity);
    const dropped = (await Promise.all(cluster.nodes.map((n) => n.state()))).reduce((sum, s) => sum + s.metrics.indexRecordsDropped, 0);
    expect(dropped).toBeGreaterThan(droppedBefore);
  });
});
