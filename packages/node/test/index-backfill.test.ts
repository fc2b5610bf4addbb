/**
 * GSI backfills as a series of chunk entries (asynchronous GSIs), on three storage node processes:
 * while a 100,000-item backfill runs, another group of the same nodes keeps applying writes (the
 * walk no longer holds every group of the node in one apply); a BackfillIndex call answers done only
 * once the GSI partitions applied every record of the walk (the GSI read right after holds every
 * item); a backfill whose leader is SIGKILLed part way is continued by the new leader from the
 * recorded next key (it walks only the rest) and the GSI converges exactly; a leadership transfer
 * while a call waits makes the old leader answer NotLeader and the new one finish it; a GSI dropped
 * during its backfill stops the walk and its records leave the outboxes; a split during a backfill
 * hands the right half the rest of the range, every item is walked exactly once over both halves
 * and the GSI converges exactly (that the call waits for the right half too:
 * packages/storage/test/index-outbox.test.ts, partition-replica-index-entries).
 * Each of those lands on a walk held part way, however fast it goes: while the nodes refuse shipped
 * GSI records (fault injection) nothing leaves the outboxes, so a walk pauses at half the outbox
 * limit, and goes on once they take them again.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeItemKey, PartitionMap, type IndexSchema, type Item, type PartitionWrite, type TableRecord, type TableSchema } from '@shoal/model';
import { ErrorDetailSchema, RpcError, Status, backfillIndexRequestToWire, dropIndexRequestToWire, partitionDescriptorFromWire, tableRecordToWire } from '@shoal/proto';
import { StorageNodeChildren, type StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';
import { GsiClusterHarness } from './gsi-cluster-harness.ts';

const ATTEMPTS = 2_400;
const CHUNK_ITEMS = 400;
/** A walk whose records are not shipped pauses at half of it: 5,000 items (13 chunks), far from the end of every walk held here. */
const OUTBOX_LIMIT = 10_000;
const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(value) });

describe('GSI backfills in bounded chunk entries on three node processes', () => {
  let cluster: StorageNodeChildren;
  let harness: GsiClusterHarness;

  /** Waits until every live node holds a replica of every partition of the map (three nodes: all of them). */
  const replicasEverywhere = async (live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> => {
    await eventually(async () => {
      const count = (await harness.partitionMap()).length;
      return (await Promise.all(live.map((n) => n.state()))).every((s) => s.ready && s.metrics.partitionReplicas === count) ? true : undefined;
    }, 'every replica on every node', ATTEMPTS);
  };

  const createTable = async (name: string): Promise<{ schema: TableSchema; record: TableRecord }> => {
    const schema: TableSchema = { name, tableId: await harness.allocateSpaceId(), hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [] };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    await replicasEverywhere();
    return { schema, record };
  };

  /** Adds a KEYS_ONLY GSI on `city` through the meta group (its partitions made and placed); answers the new schema. */
  const addCityIndex = async (table: { schema: TableSchema; record: TableRecord }, name = 'byCity'): Promise<{ schema: TableSchema; record: TableRecord; index: IndexSchema }> => {
    const index: IndexSchema = { name, kind: 'GSI', indexId: await harness.allocateSpaceId(), hashKey: { name: 'city', type: 'S' }, projection: { type: 'KEYS_ONLY' } };
    const schema: TableSchema = { ...table.schema, indexes: [...table.schema.indexes, index] };
    const record: TableRecord = { ...table.record, schema };
    await cluster.meta.call((client, options) => client.updateTable({ record: tableRecordToWire(record) }, options));
    await eventually(async () => ((await harness.partitionsOf(index.indexId)).length > 0 ? true : undefined), 'the GSI partitions in the map', ATTEMPTS);
    await replicasEverywhere();
    return { schema, record, index };
  };

  const item = (i: number): Item => ({ pk: S(`k${i % 997}`), sk: N(i), city: S(`c${i % 13}`), note: S(`n${i}`) });

  /** `count` items written to the table's one partition, 1,000 per write. */
  const load = async (schema: TableSchema, count: number): Promise<void> => {
    const [partition] = await harness.partitionsOf(schema.tableId);
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
   * The backfill call of the table's partition(s) as the router makes it: each partition's leader asked
   * until it answers done (waiting up to `waitMs` there), following NotLeader hints among `live` (else
   * the next live node), bounded; with the GSI's creation map version when given. Answers the nodes
   * that answered NotLeader, in order, and the split halves the answers named.
   */
  const backfill = async (
    schema: TableSchema,
    indexName: string,
    live: readonly StorageNodeChild[] = cluster.nodes,
    waitMs = 5_000,
    indexCreatedAtMapVersion?: number,
  ): Promise<{ notLeaderFrom: number[]; splitHalves: number[] }> => {
    const notLeaderFrom: number[] = [];
    const splitHalves: number[] = [];
    for (const partition of await harness.partitionsOf(schema.tableId)) {
      let target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      let node = live[0];
      let last: unknown;
      let done = false;
      for (let attempt = 0; attempt < 400 && !done; attempt++) {
        try {
          const request = { table: schema, indexName, ...(indexCreatedAtMapVersion === undefined ? {} : { indexCreatedAtMapVersion }) };
          const answer = await cluster.partitionClient(node.address).backfillIndex(backfillIndexRequestToWire(target, request, waitMs), { timeoutMs: waitMs + 30_000 });
          done = answer.done;
          splitHalves.push(...answer.splitPartitionIds.map(Number));
        } catch (error) {
          last = error;
          if (!(error instanceof RpcError) || error.code === Status.INVALID_ARGUMENT) throw error;
          const detail = error.detail(ErrorDetailSchema)?.kind;
          if (detail?.case === 'notLeader') notLeaderFrom.push(node.nodeId);
          // Split meanwhile: the partition (its left half now) at its new epoch, as the router's map update does.
          if (detail?.case === 'staleEpoch' && detail.value.current !== undefined) target = { ...target, epoch: BigInt(partitionDescriptorFromWire(detail.value.current).epoch) };
          const hinted = detail?.case === 'notLeader' ? live.find((n) => BigInt(n.nodeId) === detail.value.leader?.id) : undefined;
          node = hinted ?? live[(live.indexOf(node) + 1) % live.length];
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      if (!done) throw last ?? new Error(`partition ${partition.id}: the backfill never answered done`);
    }
    return { notLeaderFrom, splitHalves };
  };

  /** A node's counters of backfill chunks it proposed as a leader (counted as they applied there, whatever the proposal answered) and their items. */
  const walked = async (nodes: readonly StorageNodeChild[] = cluster.nodes): Promise<{ chunks: number; items: number }> => {
    const states = await Promise.all(nodes.map((n) => n.state()));
    return { chunks: states.reduce((sum, s) => sum + s.metrics.indexBackfillChunks, 0), items: states.reduce((sum, s) => sum + s.metrics.indexBackfillItems, 0) };
  };

  /**
   * The backfill call `start` makes, held part way: the nodes refuse shipped GSI records first, so
   * its walk pauses at half the outbox limit and stays there until `harness.refuseIndexEntries(false)`.
   * Resolves once it paused, with the call and the node that paused it (the partition's leader).
   */
  const heldBackfill = async <T>(start: () => Promise<T>): Promise<{ call: Promise<T>; leader: StorageNodeChild }> => {
    await harness.refuseIndexEntries(true);
    const pauses = async (): Promise<number[]> => (await Promise.all(cluster.nodes.map((n) => n.state()))).map((s) => s.metrics.indexBackfillPauses);
    const before = await pauses();
    const call = start();
    const leader = await eventually(async () => {
      const now = await pauses();
      return cluster.nodes.find((_, i) => now[i] > before[i]);
    }, 'the walk paused at half the outbox limit', ATTEMPTS);
    return { call, leader };
  };

  const entryOf = (entry: Item): string => JSON.stringify([entry.city, entry.pk, entry.sk]);
  /** The GSI's entries (as sorted JSON) and its statistics' count, as its partitions hold them now. */
  const gsiEntries = async (schema: TableSchema, index: IndexSchema, live: readonly StorageNodeChild[] = cluster.nodes): Promise<{ entries: string[]; itemCount: number }> => {
    const { items, itemCount } = await harness.gsiContents(schema, index, live);
    return { entries: items.map(entryOf).sort(), itemCount };
  };
  /** What the GSI of items 0..count-1 holds. */
  const gsiOf = (count: number): { entries: string[]; itemCount: number } => ({ entries: Array.from({ length: count }, (_, i) => entryOf(item(i))).sort(), itemCount: count });

  /** Every record left the outboxes of the partitions led anywhere (shipped or dropped, and trimmed). */
  const outboxesEmpty = (): Promise<unknown> =>
    eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((state) => state.metrics.indexOutboxRecords === 0) ? true : undefined), 'the outboxes empty', ATTEMPTS);

  /** The GSI holds exactly the entries of items 0..count-1 (eventually: shipping is asynchronous). */
  const converges = (schema: TableSchema, index: IndexSchema, count: number, live: readonly StorageNodeChild[] = cluster.nodes): Promise<void> =>
    harness.converges(`${schema.name}/${index.name} to converge`, () => gsiEntries(schema, index, live), gsiOf(count), ATTEMPTS);

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
      indexOutboxLimit: OUTBOX_LIMIT,
      // Shipped GSI records refused on purpose: walks held part way (heldBackfill).
      faultInjection: true,
      // Records of a GSI never shown and of no known creation version are held far longer than any wait
      // here: a drop seen below is the exact rule's (the creation version), never the 30 s presumption.
      indexShipping: { unknownIndexGraceMs: 600_000 },
    });
    await eventually(() => cluster.allReady(), 'three ready nodes', ATTEMPTS);
    harness = new GsiClusterHarness(cluster);
  }, 120_000);

  // A test that failed while holding a walk leaves the next one a cluster that ships.
  afterEach(() => harness.refuseIndexEntries(false));

  afterAll(async () => {
    harness?.close();
    await cluster?.close();
  });

  /** The 100,000-item table of the first test, with its GSI (the last test splits it during a second GSI's backfill). */
  let big: { schema: TableSchema; record: TableRecord };

  it('keeps applying another group\'s writes on the same nodes while a 100,000-item backfill runs, in bounded chunks; done means the GSI holds every item', { timeout: 300_000 }, async () => {
    const loaded = await createTable('big');
    const other = await createTable('other');
    await load(loaded.schema, 100_000);
    const { schema, record, index } = await addCityIndex(loaded);
    big = { schema, record };
    const [otherPartition] = await harness.partitionsOf(other.schema.tableId);
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
      const { call } = await heldBackfill(() => backfill(schema, index.name));
      // Held between two chunks, part way: the other group's writes go on applying meanwhile. (In one
      // apply, the old walk, no other group of the node applied anything until it ended.)
      const writesAtPause = writesDuringWalk;
      await eventually(() => (writesDuringWalk > writesAtPause ? true : undefined), 'a write of another group during the walk', ATTEMPTS);
      expect((await walked()).items - before.items).toBeLessThan(100_000);
      await harness.refuseIndexEntries(false);
      await call;
    } finally {
      running = false;
      await Promise.all([watch, writer]);
    }
    const after = await walked();
    // Printed, not asserted (it depends on timing): how much the other group applied during the walk.
    console.log(`100,000-item backfill: ${after.chunks - before.chunks} chunks; ${writesDuringWalk} writes of another group acknowledged during the walk`);
    // Every item walked once, in chunks of at most CHUNK_ITEMS (the last one may find none left).
    expect(after.items - before.items).toBe(100_000);
    expect(after.chunks - before.chunks).toBeGreaterThanOrEqual(100_000 / CHUNK_ITEMS);
    expect(after.chunks - before.chunks).toBeLessThanOrEqual(100_000 / CHUNK_ITEMS + 1);
    // Answered done once the GSI partitions applied every record of the walk: read at once, no waiting.
    expect(await gsiEntries(schema, index)).toEqual(gsiOf(100_000));
  });

  it('finishes a backfill through a leadership transfer while the call waits: the old leader answers NotLeader, the new one goes on; done means the GSI holds every item', { timeout: 300_000 }, async () => {
    const table = await createTable('moved');
    await load(table.schema, 20_000);
    const { schema, index } = await addCityIndex(table);
    const [partition] = await harness.partitionsOf(schema.tableId);
    const before = await Promise.all(cluster.nodes.map(async (node) => ({ node, ...(await walked([node])) })));
    // A long wait on the node: only a NotLeader answer ends the call in flight before the backfill is done.
    const { call, leader } = await heldBackfill(() => backfill(schema, index.name, cluster.nodes, 240_000));
    const other = cluster.nodes.find((node) => node !== leader)!;
    await harness.adminCall((client) => client.transferLeader({ partitionId: BigInt(partition.id), toNode: BigInt(other.nodeId) }));
    // The walk goes on once `other` leads (the transfer is asked of the leader in its next heartbeat answer).
    await eventually(async () => ((await other.state()).metrics.groups.some((g) => g.partitionId === partition.id && g.leader === 1) ? true : undefined), 'the transfer done', ATTEMPTS);
    await harness.refuseIndexEntries(false);
    // The call waiting on the leader was answered NotLeader when leadership moved (without it, it would
    // have waited until the backfill was done).
    expect((await call).notLeaderFrom).toContain(leader.nodeId);
    // The new leader walked the rest.
    const others = before.filter(({ node }) => node !== leader);
    expect((await walked(others.map(({ node }) => node))).items).toBeGreaterThan(others.reduce((sum, { items }) => sum + items, 0));
    expect(await gsiEntries(schema, index)).toEqual(gsiOf(20_000));
  });

  it('continues a backfill whose leader is SIGKILLed part way from the recorded next key; the GSI converges exactly', { timeout: 300_000 }, async () => {
    const table = await createTable('killed');
    await load(table.schema, 20_000);
    const { schema, index } = await addCityIndex(table);
    const before = await Promise.all(cluster.nodes.map(async (node) => ({ node, items: (await walked([node])).items })));
    // Killed while its walk is held part way.
    const { call, leader } = await heldBackfill(() => backfill(schema, index.name).catch(() => undefined));
    // Applied on the leader, so committed: the walk's recorded next key is past these.
    const leaderWalked = (await walked([leader])).items - before.find(({ node }) => node === leader)!.items;
    await leader.kill();
    await harness.refuseIndexEntries(false);
    await call;
    const survivors = cluster.nodes.filter((n) => n !== leader);
    const survivorsBefore = before.filter(({ node }) => node !== leader).reduce((sum, { items }) => sum + items, 0);
    // The call as the router makes it again after the leader change: resolves once the backfill is done.
    await backfill(schema, index.name, survivors);
    const survivorsWalked = (await walked(survivors)).items - survivorsBefore;
    // The new leader walked the rest only.
    expect(survivorsWalked).toBeGreaterThan(0);
    expect(survivorsWalked).toBeLessThanOrEqual(20_000 - leaderWalked);
    await converges(schema, index, 20_000, survivors);
    await cluster.restart(leader);
    await eventually(() => cluster.allReady(), 'the restarted node ready', ATTEMPTS);
    await replicasEverywhere();
  });

  it('hands the rest of a backfill to the right half of a split made while it runs: every item walked exactly once over both halves, and the GSI converges exactly', { timeout: 300_000 }, async () => {
    // A second GSI of the 100,000 items: a walk of 250 chunks, long next to a split.
    const { schema, index } = await addCityIndex(big, 'byCityAgain');
    const before = await walked();
    const { call } = await heldBackfill(() => backfill(schema, index.name));
    await harness.adminCall((client) => client.split({ table: schema.name }));
    const atSplit = await walked();
    await harness.refuseIndexEntries(false);
    await call;
    // The split came while the walk went on (the premise of this test).
    expect(atSplit.items - before.items).toBeLessThan(100_000);
    expect(await harness.partitionsOf(schema.tableId)).toHaveLength(2);
    await converges(schema, index, 100_000);
    // Each item walked exactly once over both halves (no part walked again by either).
    expect((await walked()).items - before.items).toBe(100_000);
    // Sent to both halves now (as the router's next round does): both done, nothing walked again; the
    // left half's leader names the right half (its split record), which a router asks even if it moved.
    const [left, right] = await harness.partitionsOf(schema.tableId);
    expect((await backfill(schema, index.name)).splitHalves).toEqual([right!.id]);
    expect(left!.id).not.toBe(right!.id);
    expect((await walked()).items - before.items).toBe(100_000);
  });

  /**
   * Adds GSI `name` to the big table, starts its backfill as the router does, and once its walk is
   * held part way (heldBackfill: still held on return) deletes the GSI in the meta group only (its
   * partitions go), as UpdateTable's first step.
   */
  const deleteInMetaDuringBackfill = async (name: string): Promise<{ schema: TableSchema; index: IndexSchema; before: { chunks: number; items: number }; call: Promise<unknown> }> => {
    const { schema, record, index } = await addCityIndex(big, name);
    const before = await walked();
    const { call } = await heldBackfill(() => backfill(schema, index.name));
    await cluster.meta.call((client, options) => client.updateTable({ record: tableRecordToWire({ ...record, schema: big.schema }) }, options));
    return { schema, index, before, call };
  };

  it('drops a GSI during its backfill: the walk stops, its records leave the outboxes, a backfill call after walks nothing, and the table keeps serving', { timeout: 300_000 }, async () => {
    // UpdateTable's second step: each base partition's leader told.
    const { schema, index, before, call } = await deleteInMetaDuringBackfill('byCityDropped');
    for (const partition of await harness.partitionsOf(schema.tableId)) {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      await harness.onAnyNode((node) => cluster.partitionClient(node.address).dropIndex(dropIndexRequestToWire(target, { table: schema, indexName: index.name }), { timeoutMs: 10_000 }));
    }
    // The call waiting meanwhile answers done (nothing left to wait for, though nothing ships); so does one made after the drop.
    await call;
    await harness.refuseIndexEntries(false);
    const atDrop = await walked();
    await backfill(schema, index.name);
    // The table keeps serving: a write, and the first GSI still follows it.
    const extra: Item = { pk: S('extra'), sk: N(0), city: S('c-extra'), note: S('after the drop') };
    const owner = async () => new PartitionMap(await harness.partitionMap()).lookup(encodeItemKey(schema.tableId, extra.pk, extra.sk))!;
    expect((await cluster.write(cluster.nodes, owner, { operations: [{ table: big.schema, kind: 'Put', key: { pk: extra.pk, sk: extra.sk }, item: extra }] })).applied).toBe(true);
    const byCity = big.schema.indexes.find((candidate) => candidate.name === 'byCity')!;
    await eventually(async () => ((await harness.gsiContents(big.schema, byCity)).itemCount === 100_001 ? true : undefined), 'the write in byCity', ATTEMPTS);
    // Every record of the dropped GSI left the outboxes (dropped by the shippers, trimmed).
    await outboxesEmpty();
    // The walk stopped part way, and walked nothing after the drop (a chunk proposed before it applied stale).
    expect(atDrop.items - before.items).toBeLessThan(100_000);
    expect((await walked()).items).toBe(atDrop.items);
  });

  it('stops walking a GSI the map shows no more though no base partition was asked to (its router died between the meta delete and the drop calls)', { timeout: 300_000 }, async () => {
    // The meta group only: nobody asks the base partitions.
    const { before, call } = await deleteInMetaDuringBackfill('byCityOrphaned');
    // Each leader's driver ends the walk itself (a dropIndex entry: the tombstone), so the call waiting answers done.
    await call;
    await harness.refuseIndexEntries(false);
    const atStop = await walked();
    expect(atStop.items - before.items).toBeLessThan(100_000);
    const states = await Promise.all(cluster.nodes.map((n) => n.state()));
    expect(states.reduce((sum, state) => sum + state.metrics.indexBackfillsOfDeletedIndexes, 0)).toBeGreaterThan(0);
    await outboxesEmpty();
    expect((await walked()).items).toBe(atStop.items);
  });

  it('ends the walk of a GSI this node\'s map never showed once the map is at the creation version its command carries; the shippers drop its records at once', { timeout: 300_000 }, async () => {
    // A GSI created at the map version now and deleted before any node's map showed it (its router then
    // died): to the nodes, an index no map of theirs ever shows, with the version its backfill carries.
    const table = await createTable('neverShown');
    await load(table.schema, 4_000);
    const index: IndexSchema = { name: 'byCityUnseen', kind: 'GSI', indexId: await harness.allocateSpaceId(), hashKey: { name: 'city', type: 'S' }, projection: { type: 'KEYS_ONLY' } };
    const schema: TableSchema = { ...table.schema, indexes: [index] };
    const createdAt = Number((await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options))).version);
    const deletedBefore = async (): Promise<number> => (await Promise.all(cluster.nodes.map((n) => n.state()))).reduce((sum, state) => sum + state.metrics.indexBackfillsOfDeletedIndexes, 0);
    const [endedBefore, before] = [await deletedBefore(), await walked()];
    const call = backfill(schema, index.name, cluster.nodes, 5_000, createdAt);
    // The leader's driver ends the walk (a dropIndex entry) instead of walking the 4,000 items.
    await eventually(async () => ((await deletedBefore()) > endedBefore ? true : undefined), 'the walk ended as its GSI\'s', ATTEMPTS);
    await call;
    expect((await walked()).items - before.items).toBeLessThan(4_000);
    // A write made with that schema afterwards: its record is dropped (the tombstone keeps the version),
    // not held for the presumption's grace.
    const dropped = async (): Promise<number> => (await Promise.all(cluster.nodes.map((n) => n.state()))).reduce((sum, state) => sum + state.metrics.indexRecordsDropped, 0);
    const droppedBefore = await dropped();
    const [partition] = await harness.partitionsOf(schema.tableId);
    const late = item(4_000);
    expect((await cluster.write(cluster.nodes, () => partition, { operations: [{ table: schema, kind: 'Put', key: { pk: late.pk, sk: late.sk }, item: late }] })).applied).toBe(true);
    await eventually(async () => ((await dropped()) > droppedBefore ? true : undefined), 'the late record dropped', ATTEMPTS);
    await outboxesEmpty();
  });
});
