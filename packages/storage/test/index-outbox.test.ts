/**
 * Asynchronous GSIs (index-outbox.ts): a store with index outboxes writes a base partition's GSI
 * changes as outbox records of its group in the item's batch, and a GSI partition applies shipped
 * records once each, in order, with its cursor and statistics in the same batch.
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { encodeItemKey, spaceRange, type IndexSchema, type Item, type PartitionWrite, type TableSchema } from '@shoal/model';
import { checkPartitionSnapshot, indexSpaceSchema, openLocalStore, OutboxMoveUnderWayError, type BackfillChunkLimits, type BackfillChunkResult, type IndexOutboxRecord, type LocalStore, type OutboxMoveLimits, type OutboxMoveStep, type PartitionBound, type PartitionScope } from '../src/index.ts';
import { CommitQueue } from '../src/commit-queue.ts';
import { openDatabase } from '../src/database.ts';
import { PartitionStore } from '../src/partition-store.ts';
import { baseRequest, N, random, readAllPages, runOutboxMove, S, temporaryDirectory } from './helpers.ts';

const BY_CITY: IndexSchema = { name: 'byCity', kind: 'GSI', indexId: 31, hashKey: { name: 'city', type: 'S' }, rangeKey: { name: 'age', type: 'N' }, projection: { type: 'INCLUDE', nonKeyAttributes: ['name'] } };
const BY_RANK: IndexSchema = { name: 'byRank', kind: 'LSI', indexId: 32, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'rank', type: 'N' }, projection: { type: 'KEYS_ONLY' } };
const TABLE: TableSchema = { name: 'people', tableId: 30, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [BY_CITY, BY_RANK] };
const WHOLE: PartitionBound = { start: spaceRange(TABLE.tableId).start, end: spaceRange(TABLE.tableId).end };
const INDEX_SPACE: PartitionBound = spaceRange(BY_CITY.indexId);
/** The base item key of hand-made records (no fence covers it). */
const SOME_ITEM = encodeItemKey(TABLE.tableId, S('a'), N(0));
const GROUP = 7;
const GSI_GROUP = 9;

const outboxStore = (): Promise<LocalStore> => openLocalStore({ inMemory: true, indexOutbox: true });
const put = (item: Item): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: item.pk, sk: item.sk }, item }] });
const del = (pk: string, sk: number): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Delete', key: { pk: S(pk), sk: N(sk) } }] });
const person = (pk: string, sk: number, extra: Item): Item => ({ pk: S(pk), sk: N(sk), ...extra });
const cityKey = (city: string, age: number, pk: string, sk: number): Uint8Array => encodeItemKey(BY_CITY.indexId, S(city), N(age), S(pk), N(sk));

/** Applies writes as one group's log would: marks 1, 2, ... */
class Group {
  index = 0;
  readonly store: PartitionStore;
  readonly groupId: number;
  constructor(store: PartitionStore, groupId = GROUP) {
    this.store = store;
    this.groupId = groupId;
  }
  mark() {
    this.index += 1;
    return { groupId: this.groupId, index: this.index };
  }
  async write(write: PartitionWrite): Promise<void> {
    const result = await this.store.write(write, this.mark());
    if (!result.applied) throw new Error(`refused: ${JSON.stringify(result.outcomes)}`);
  }
}

/** Applies chunk entries of the group's running backfills, as its leader would propose them, until none runs; answers their outcomes. */
async function runBackfills(store: PartitionStore, group: Group, limits?: BackfillChunkLimits): Promise<BackfillChunkResult[]> {
  const results: BackfillChunkResult[] = [];
  for (let [backfill] = await store.runningIndexBackfills(group.groupId); backfill !== undefined; [backfill] = await store.runningIndexBackfills(group.groupId)) {
    results.push(await store.applyBackfillChunk(group.groupId, backfill.indexId, backfill.nextKey, group.mark(), limits));
    if (results.length > 10_000) throw new Error('a backfill that never ends');
  }
  return results;
}

/**
 * A store with outboxes holding 30 items of city x, a backfill of BY_CITY started over them and its
 * first chunk (10 items) applied; `run` goes on from there, the store closed after.
 */
async function withBackfillUnderWay(run: (store: PartitionStore, group: Group, started: { done: Promise<void> }) => Promise<void>): Promise<void> {
  const local = await outboxStore();
  const store = local.partitions;
  const group = new Group(store);
  try {
    for (let i = 0; i < 30; i++) await store.write({ operations: [{ table: { ...TABLE, indexes: [] }, kind: 'Put', key: { pk: S(`p${i}`), sk: N(i) }, item: person(`p${i}`, i, { city: S('x'), age: N(i) }) }] }, group.mark());
    const started = await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
    await store.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, group.mark(), { maxItems: 10, maxBytes: 1 << 20 });
    await run(store, group, started);
  } finally {
    await local.close();
  }
}

/** Runs `test` over `count` fresh in-memory stores with index outboxes, closed after. */
async function withOutboxStores(count: number, test: (stores: PartitionStore[]) => Promise<void>): Promise<void> {
  const locals = await Promise.all(Array.from({ length: count }, outboxStore));
  try {
    await test(locals.map((local) => local.partitions));
  } finally {
    await Promise.all(locals.map((local) => local.close()));
  }
}

/** A replica's snapshot taken from `source` and installed in `receiver` (through a staged file, as a node does). */
async function sendSnapshot(source: PartitionStore, receiver: PartitionStore, scope: PartitionScope, snapshotIndex: number): Promise<void> {
  const stream = await source.openPartitionSnapshot(scope)();
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of stream.chunks) parts.push(chunk);
  } finally {
    stream.release();
  }
  const directory = await temporaryDirectory();
  try {
    const path = join(directory.path, 'snapshot');
    const bytes = Buffer.concat(parts);
    await writeFile(path, bytes);
    await receiver.restorePartitionSnapshot([scope], await checkPartitionSnapshot({ path, offset: 0, size: bytes.length }), snapshotIndex);
  } finally {
    await directory.remove();
  }
}

const everything = { maxRecords: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER };
const readAll = (store: PartitionStore, groupId = GROUP): Promise<IndexOutboxRecord[]> => store.readIndexOutbox(groupId, everything);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const summary = (records: IndexOutboxRecord[]) => records.map((r) => ({ seq: r.seq, key: hex(r.entryKey), entry: r.entry }));

async function gsiEntries(store: PartitionStore, bound: PartitionBound = INDEX_SPACE): Promise<Item[]> {
  const result = await store.readIndexPartition(baseRequest(TABLE, { indexName: BY_CITY.name }), bound);
  return result.items;
}

describe('a store with index outboxes (base partition)', () => {
  it('writes GSI changes as records of the group, in the same batch as the item, in order; LSIs stay synchronous', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      const before = store.batchesWritten();
      await group.write(put(person('a', 1, { city: S('Oslo'), age: N(30), name: S('Ann'), rank: N(1), secret: S('x') })));
      expect(store.batchesWritten() - before).toBe(1);
      // Moved to another GSI key: a delete of the old entry, then the new one.
      await group.write(put(person('a', 1, { city: S('Rome'), age: N(30), name: S('Ann'), rank: N(1) })));
      // Same key, new projected attribute: a put over it, no delete.
      await group.write(put(person('a', 1, { city: S('Rome'), age: N(30), name: S('Anne'), rank: N(1) })));
      // A change outside the projection: no record.
      await group.write(put(person('a', 1, { city: S('Rome'), age: N(30), name: S('Anne'), rank: N(2) })));
      // Leaves the index (no city), then the item goes (no entry: no record).
      await group.write(put(person('a', 1, { age: N(30), name: S('Anne'), rank: N(2) })));
      await group.write(del('a', 1));

      const keyed = (city: string) => cityKey(city, 30, 'a', 1);
      expect(summary(await readAll(store))).toEqual([
        { seq: 1, key: hex(keyed('Oslo')), entry: { pk: S('a'), sk: N(1), city: S('Oslo'), age: N(30), name: S('Ann') } },
        { seq: 2, key: hex(keyed('Oslo')), entry: undefined },
        { seq: 3, key: hex(keyed('Rome')), entry: { pk: S('a'), sk: N(1), city: S('Rome'), age: N(30), name: S('Ann') } },
        { seq: 4, key: hex(keyed('Rome')), entry: { pk: S('a'), sk: N(1), city: S('Rome'), age: N(30), name: S('Anne') } },
        { seq: 5, key: hex(keyed('Rome')), entry: undefined },
      ]);
      expect((await readAll(store)).every((r) => hex(r.itemKey) === hex(encodeItemKey(TABLE.tableId, S('a'), N(1))) && r.indexId === BY_CITY.indexId)).toBe(true);
      // No GSI entry in the store, and its statistics untouched.
      expect(await gsiEntries(store)).toEqual([]);
      expect(await store.statistics(TABLE, BY_CITY.name)).toEqual({ itemCount: 0, sizeBytes: 0 });
      // The LSI was maintained in the items' batches (the item is gone now: so is its entry).
      await group.write(put(person('b', 2, { rank: N(4) })));
      const lsi = await store.readRange(baseRequest(TABLE, { indexName: BY_RANK.name }));
      expect(lsi.items).toEqual([{ pk: S('b'), sk: N(2), rank: N(4) }]);
    });
  });

  it('refuses a write without an applied mark (GSI changes need a group)', async () => {
    await withOutboxStores(1, async ([local]) => {
      await expect(local.write(put(person('a', 1, { city: S('x'), age: N(1) })))).rejects.toThrow(/applied mark/);
    });
  });

  it('writes the records of a committed transaction with its items; a refused write writes none', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      const conditional: PartitionWrite = {
        operations: [{ table: TABLE, kind: 'Put', key: { pk: S('c'), sk: N(1) }, item: person('c', 1, { city: S('Oslo'), age: N(3) }), expressions: { condition: 'attribute_exists(pk)' } }],
      };
      expect((await store.write(conditional, group.mark())).applied).toBe(false);
      expect(await readAll(store)).toEqual([]);
      const transaction = { id: 'tx1', coordinator: GROUP, deadline: 4_000_000_000_000 };
      await store.prepareTransaction(transaction, put(person('c', 1, { city: S('Oslo'), age: N(3) })), group.mark());
      expect(await readAll(store)).toEqual([]);
      await store.resolveTransaction('tx1', true, WHOLE, group.mark());
      expect(summary(await readAll(store)).map((r) => r.key)).toEqual([hex(cityKey('Oslo', 3, 'c', 1))]);
    });
  });

  it('backfills a new GSI into the outbox chunk by chunk: a put record per indexed item, the command resolving once the last chunk applied', async () => {
    await withOutboxStores(1, async ([store]) => {
      const withoutIndex: TableSchema = { ...TABLE, indexes: [BY_RANK] };
      const group = new Group(store);
      for (let i = 0; i < 700; i++) {
        await store.write({ operations: [{ table: withoutIndex, kind: 'Put', key: { pk: S(`p${i}`), sk: N(i) }, item: person(`p${i}`, i, i % 2 === 0 ? { city: S(`c${i % 3}`), age: N(i) } : {}) }] }, group.mark());
      }
      expect(await readAll(store)).toEqual([]);
      const { done } = await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      let ended = false;
      void done.then(() => (ended = true));
      // The command only records it: nothing walked yet, the next key the bound's start.
      expect(await readAll(store)).toEqual([]);
      const [running] = await store.runningIndexBackfills(GROUP);
      expect({ indexId: running?.indexId, nextKey: hex(running?.nextKey ?? new Uint8Array()), end: hex(running?.end ?? new Uint8Array()) }).toEqual({ indexId: BY_CITY.indexId, nextKey: hex(WHOLE.start), end: hex(WHOLE.end) });
      const chunks = await runBackfills(store, group, { maxItems: 200, maxBytes: 1 << 20 });
      expect(chunks.map((c) => c.status)).toEqual(['walked', 'walked', 'walked', 'done']);
      expect(chunks.map((c) => c.items)).toEqual([200, 200, 200, 100]);
      await done;
      expect(ended).toBe(true);
      // Sent again once done (a router retrying, or asking a split half): done at once, nothing walked again.
      await (await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark())).done;
      expect(await store.runningIndexBackfills(GROUP)).toEqual([]);
      const records = await readAll(store);
      expect(records).toHaveLength(350);
      expect(records.every((r) => r.entry !== undefined)).toBe(true);
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 350 }, (_, i) => i + 1));
      expect(await store.runningIndexBackfills(GROUP)).toEqual([]);
      expect(await store.appliedIndex(GROUP)).toBe(group.index);
      // The backfill touched no GSI entry here.
      expect(await gsiEntries(store)).toEqual([]);
    });
  });

  it('a chunk walks at most its byte limit (at least one item), and a chunk whose key is not the next one (proposed twice) changes nothing but the mark', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      for (let i = 0; i < 10; i++) await store.write({ operations: [{ table: { ...TABLE, indexes: [] }, kind: 'Put', key: { pk: S(`p${i}`), sk: N(i) }, item: person(`p${i}`, i, { city: S('x'), age: N(i), pad: S('y'.repeat(100)) }) }] }, group.mark());
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      const first = await store.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, group.mark(), { maxItems: 100, maxBytes: 1 });
      expect(first).toEqual({ status: 'walked', items: 1 });
      const again = await store.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, group.mark(), { maxItems: 100, maxBytes: 1 });
      expect(again).toEqual({ status: 'stale', items: 0 });
      expect(await store.appliedIndex(GROUP)).toBe(group.index);
      expect(await readAll(store)).toHaveLength(1);
      // Another GSI of no backfill here: stale too.
      expect((await store.applyBackfillChunk(GROUP, 999, WHOLE.start, group.mark())).status).toBe('stale');
    });
  });

  it('the backfill command sent again while it runs joins it (no restart); a drop of the index ends it', () =>
    withBackfillUnderWay(async (store, group, { done }) => {
      const backfill = { kind: 'backfillIndex' as const, table: TABLE, indexName: BY_CITY.name };
      const [before] = await store.runningIndexBackfills(GROUP);
      const joined = await store.startIndexCommand(backfill, WHOLE, group.mark());
      expect(await store.runningIndexBackfills(GROUP)).toEqual([before]);
      await store.startIndexCommand({ kind: 'dropIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      await Promise.all([done, joined.done]);
      expect(await store.runningIndexBackfills(GROUP)).toEqual([]);
      expect(await readAll(store)).toHaveLength(10);
      expect(await store.appliedIndex(GROUP)).toBe(group.index);
    }));

  it('a backfill is applied only once its walk ended AND the outbox holds none of its records: trimmed up to its last seq, later writes not waited for', () =>
    withBackfillUnderWay(async (store, group) => {
      expect(await store.indexBackfillState(GROUP, 999)).toBe('none');
      expect(await store.indexBackfillState(GROUP, BY_CITY.indexId)).toBe('running');
      await runBackfills(store, group, { maxItems: 10, maxBytes: 1 << 20 });
      // Walked (30 records, seqs 1-30), then a write of its own (seq 31).
      await group.write(put(person('p0', 0, { city: S('y'), age: N(1) })));
      expect((await readAll(store)).map((r) => r.seq)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
      expect(await store.indexBackfillState(GROUP, BY_CITY.indexId)).toBe('shipping');
      await store.trimIndexOutbox(GROUP, 29, group.mark());
      expect(await store.indexBackfillState(GROUP, BY_CITY.indexId)).toBe('shipping');
      await store.trimIndexOutbox(GROUP, 30, group.mark());
      expect(await store.indexBackfillState(GROUP, BY_CITY.indexId)).toBe('applied');
    }));

  it('a drop of a GSI leaves a tombstone: its backfill stops, and a backfill command applied after the drop walks nothing', () =>
    withBackfillUnderWay(async (store, group) => {
      const [running] = await store.runningIndexBackfills(GROUP);
      await store.startIndexCommand({ kind: 'dropIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      // The next chunk (proposed before the drop applied) is stale; the command again starts nothing.
      expect((await store.applyBackfillChunk(GROUP, BY_CITY.indexId, running?.nextKey ?? new Uint8Array(), group.mark())).status).toBe('stale');
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      expect(await store.runningIndexBackfills(GROUP)).toEqual([]);
      expect(await readAll(store)).toHaveLength(10);
      expect(await store.indexBackfillState(GROUP, BY_CITY.indexId)).toBe('applied');
    }));

  it('records the GSI\'s creation map version a backfill command carries, keeps it in both halves of a split and in a drop\'s tombstone; a command without one (older routers, old logs) records none; the split records name the right half', async () => {
    await withOutboxStores(2, async ([store, older]) => {
      const group = new Group(store);
      const right = new Group(store, GROUP + 1);
      for (let i = 0; i < 40; i++) await group.write(put(person(`p${i}`, i, { city: S('x'), age: N(i) })));
      expect(await store.indexCreatedAtMapVersion(BY_CITY.indexId)).toBeUndefined();
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name, indexCreatedAtMapVersion: 17 }, WHOLE, group.mark());
      // The command again (another router's first map showed the index later) joins it: the first version stays.
      await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name, indexCreatedAtMapVersion: 25 }, WHOLE, group.mark());
      await store.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, group.mark(), { maxItems: 10, maxBytes: 1 << 20 });
      const keys = (await store.readRange(baseRequest(TABLE))).items.map((item) => encodeItemKey(TABLE.tableId, item.pk as { S: string }, item.sk as { N: string }));
      await store.splitIndexOutbox(GROUP, right.groupId, keys[30] as Uint8Array);
      group.mark();
      const versions = async (groupId: number): Promise<Array<number | undefined>> => (await store.runningIndexBackfills(groupId)).map((backfill) => backfill.indexCreatedAtMapVersion);
      expect([await versions(GROUP), await versions(right.groupId)]).toEqual([[17], [17]]);
      // The parent's split records name its right half (a backfill caller asks it even when it moved away).
      expect([await store.splitHalvesOf(GROUP), await store.splitHalvesOf(right.groupId)]).toEqual([[right.groupId], []]);
      expect(await store.indexCreatedAtMapVersion(BY_CITY.indexId)).toBe(17);
      // The left half dropped, the right half walks on: the tombstone keeps the version.
      await runOutboxMove(store, group);
      await store.startIndexCommand({ kind: 'dropIndex', table: TABLE, indexName: BY_CITY.name }, { start: WHOLE.start, end: keys[30] as Uint8Array }, group.mark());
      await runBackfills(store, right, { maxItems: 64, maxBytes: 1 << 20 });
      await store.startIndexCommand({ kind: 'dropIndex', table: TABLE, indexName: BY_CITY.name }, { start: keys[30] as Uint8Array, end: WHOLE.end }, right.mark());
      expect(await store.runningIndexBackfills()).toEqual([]);
      expect(await store.indexCreatedAtMapVersion(BY_CITY.indexId)).toBe(17);

      const olderGroup = new Group(older);
      await olderGroup.write(put(person('p', 0, { city: S('x'), age: N(0) })));
      await older.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, olderGroup.mark());
      expect((await older.runningIndexBackfills(GROUP)).map((backfill) => 'indexCreatedAtMapVersion' in backfill)).toEqual([false]);
      expect(await older.indexCreatedAtMapVersion(BY_CITY.indexId)).toBeUndefined();
    });
  });

  it('a GSI backfill is a series of chunk entries: replicas number its records alike whatever writes come between, and a crash part way resumes from the recorded next key', async () => {
    const directory = await temporaryDirectory();
    const withoutIndex: TableSchema = { ...TABLE, indexes: [BY_RANK] };
    const item = (i: number): Item => person(`p${i}`, i, { city: S(`c${i % 3}`), age: N(i) });
    const writeAll = async (store: PartitionStore): Promise<void> => {
      for (let i = 0; i < 1_100; i++) await store.write({ operations: [{ table: withoutIndex, kind: 'Put', key: { pk: S(`p${i}`), sk: N(i) }, item: item(i) }] }, { groupId: GROUP, index: i + 1 });
    };
    const backfill = { kind: 'backfillIndex' as const, table: TABLE, indexName: BY_CITY.name };
    const limits = { maxItems: 300, maxBytes: 1 << 20 };
    // The log: the command at 1,101, a chunk at 1,102, a write at 1,103 (an item walked or not), then chunks from 1,104.
    const moved = put(person('p1', 1, { city: S('moved'), age: N(1) }));
    const reference = await outboxStore();
    try {
      await writeAll(reference.partitions);
      await reference.partitions.startIndexCommand(backfill, WHOLE, { groupId: GROUP, index: 1_101 });
      await reference.partitions.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, { groupId: GROUP, index: 1_102 }, limits);
      await reference.partitions.write(moved, { groupId: GROUP, index: 1_103 });
      const group = new Group(reference.partitions);
      group.index = 1_103;
      await runBackfills(reference.partitions, group, limits);
      const expected = summary(await readAll(reference.partitions));
      expect(expected).toHaveLength(1_100 + 2);

      // A replica whose store fails the second chunk's batch (a crash: it stops), reopened, applies that entry again from the log.
      const database = await openDatabase({ dataDir: directory.path });
      let failAt = Number.POSITIVE_INFINITY;
      let batches = 0;
      const commits = new CommitQueue({ ...database, writeBatch: (mutations) => (++batches === failAt ? Promise.reject(new Error('disk gone')) : database.writeBatch(mutations)) });
      const crashing = new PartitionStore(database.level, commits, { indexOutbox: true });
      await writeAll(crashing);
      const { done: crashed } = await crashing.startIndexCommand(backfill, WHOLE, { groupId: GROUP, index: 1_101 });
      await crashing.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, { groupId: GROUP, index: 1_102 }, limits);
      await crashing.write(moved, { groupId: GROUP, index: 1_103 });
      const [next] = await crashing.runningIndexBackfills(GROUP);
      batches = 0;
      failAt = 1;
      await expect(crashing.applyBackfillChunk(GROUP, BY_CITY.indexId, next?.nextKey ?? new Uint8Array(), { groupId: GROUP, index: 1_104 }, limits)).rejects.toThrow();
      // Who waited for it there learns the store stopped.
      await expect(crashed).rejects.toThrow(/stopped/);
      await commits.close().catch(() => undefined);
      await database.close();
      const reopened = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
      try {
        expect(await reopened.partitions.appliedIndex(GROUP)).toBe(1_103);
        expect(await reopened.partitions.runningIndexBackfills(GROUP)).toEqual([next]);
        const resumed = new Group(reopened.partitions);
        resumed.index = 1_103;
        await runBackfills(reopened.partitions, resumed, limits);
        expect(summary(await readAll(reopened.partitions))).toEqual(expected);
        expect(resumed.index).toBe(group.index);
      } finally {
        await reopened.close();
      }
    } finally {
      await reference.close();
      await directory.remove();
    }
  }, 60_000);

  it('a split during a backfill: the right group inherits the rest of its range, the left one ends at the split key, and every item gets one put record', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      const right = new Group(store, GROUP + 1);
      for (let i = 0; i < 400; i++) await store.write({ operations: [{ table: { ...TABLE, indexes: [] }, kind: 'Put', key: { pk: S(`p${i}`), sk: N(i) }, item: person(`p${i}`, i, { city: S('x'), age: N(i) }) }] }, group.mark());
      const keys = (await store.readRange(baseRequest(TABLE))).items.map((item) => encodeItemKey(TABLE.tableId, item.pk as { S: string }, item.sk as { N: string }));
      const splitAt = (position: number): Uint8Array => keys[position] as Uint8Array;
      const { done } = await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, group.mark());
      let ended = false;
      void done.then(() => (ended = true));
      // 100 walked, then a split at item 300 (ahead of the walk), then one of the left at item 50 (behind its walk).
      await store.applyBackfillChunk(GROUP, BY_CITY.indexId, WHOLE.start, group.mark(), { maxItems: 100, maxBytes: 1 << 20 });
      await store.splitIndexOutbox(GROUP, right.groupId, splitAt(300));
      group.mark();
      const [left] = await store.runningIndexBackfills(GROUP);
      const [inherited] = await store.runningIndexBackfills(right.groupId);
      expect(hex(left?.end ?? new Uint8Array())).toBe(hex(splitAt(300)));
      expect(hex(inherited?.nextKey ?? new Uint8Array())).toBe(hex(splitAt(300)));
      expect(hex(inherited?.end ?? new Uint8Array())).toBe(hex(WHOLE.end));
      expect(inherited?.origin).toBe(GROUP);
      // A replayed split changes nothing.
      await store.splitIndexOutbox(GROUP, right.groupId, splitAt(300));
      expect(await store.runningIndexBackfills(GROUP)).toEqual([left]);
      expect(await store.runningIndexBackfills(right.groupId)).toEqual([inherited]);
      // The second split, behind the left's walk: the left has nothing left to walk, the new right half
      // the rest of the left's range (from the walk's next key), and the walked records of its items move.
      const third = new Group(store, GROUP + 2);
      await runOutboxMove(store, group);
      await store.splitIndexOutbox(GROUP, third.groupId, splitAt(50));
      group.mark();
      await runOutboxMove(store, group);
      expect(await store.runningIndexBackfills(GROUP)).toEqual([]);
      expect(await store.runningIndexBackfills(third.groupId)).toEqual([{ ...left, groupId: third.groupId }]);
      await runBackfills(store, right, { maxItems: 64, maxBytes: 1 << 20 });
      // (A read through the commit queue: the waiters' check after the right's last chunk ran before it.)
      expect(await store.runningIndexBackfills(third.groupId)).toHaveLength(1);
      expect(ended).toBe(false);
      await runBackfills(store, third, { maxItems: 64, maxBytes: 1 << 20 });
      await done;
      expect(ended).toBe(true);
      // Each item's put record once, in the outbox of the group holding it.
      const holder = (itemKey: Uint8Array): number => (Buffer.compare(itemKey, splitAt(50)) < 0 ? GROUP : Buffer.compare(itemKey, splitAt(300)) < 0 ? third.groupId : right.groupId);
      const all = [...(await readAll(store, GROUP)), ...(await readAll(store, third.groupId)), ...(await readAll(store, right.groupId))];
      expect(all.map((r) => hex(r.itemKey)).sort()).toEqual(keys.map(hex).sort());
      for (const groupId of [GROUP, third.groupId, right.groupId]) {
        expect((await readAll(store, groupId)).every((r) => holder(r.itemKey) === groupId)).toBe(true);
      }
      // A split after the backfill: both halves have it done (sent to the new half, the command walks nothing).
      const fourth = new Group(store, GROUP + 3);
      await store.splitIndexOutbox(right.groupId, fourth.groupId, splitAt(350));
      await runOutboxMove(store, right);
      await (await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, fourth.mark())).done;
      expect(await store.runningIndexBackfills(fourth.groupId)).toEqual([]);
      expect(await store.runningIndexBackfills(right.groupId)).toEqual([]);
      expect(await readAll(store, fourth.groupId)).toHaveLength(50);
    });
  });

  it('trims the records up to a seq, with the applied mark', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      for (let i = 0; i < 5; i++) await group.write(put(person('t', i, { city: S('x'), age: N(i) })));
      const mark = group.mark();
      expect(await store.trimIndexOutbox(GROUP, 3, mark)).toBe(3);
      expect((await readAll(store)).map((r) => r.seq)).toEqual([4, 5]);
      expect(await store.appliedIndex(GROUP)).toBe(mark.index);
      expect(await store.indexOutboxSize(GROUP)).toBe(2);
      expect(await store.indexOutboxSize(GROUP, 4)).toBe(1);
      // Trimming again changes nothing; the next record continues the sequence.
      expect(await store.trimIndexOutbox(GROUP, 3)).toBe(0);
      await group.write(put(person('t', 9, { city: S('x'), age: N(9) })));
      expect((await readAll(store)).map((r) => r.seq)).toEqual([4, 5, 6]);
      expect((await store.readIndexOutbox(GROUP, { afterSeq: 4, maxRecords: 10, maxBytes: 1 })).map((r) => r.seq)).toEqual([5]);
    });
  });

});

describe('a base partition split: its outbox move', () => {
  /** Items p0..p(count-1) with a GSI entry each, then every third one moved to another city (a delete and a put record): 5/3 count records, several for some items. */
  async function fillOutbox(group: Group, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await group.write(put(person(`p${i}`, i, { city: S('x'), age: N(i) })));
    for (let i = 0; i < count; i += 3) await group.write(put(person(`p${i}`, i, { city: S('y'), age: N(i) })));
  }

  /** The table's items in key order, with their keys. */
  async function itemsByKey(store: PartitionStore): Promise<Array<{ key: Uint8Array; pk: string; sk: number }>> {
    const items = (await readAllPages(store, baseRequest(TABLE))).flatMap((page) => page.items);
    return items.map((item) => ({ key: encodeItemKey(TABLE.tableId, item.pk as { S: string }, item.sk as { N: string }), pk: (item.pk as { S: string }).S, sk: Number((item.sk as { N: string }).N) }));
  }

  const from = (records: IndexOutboxRecord[], splitKey: Uint8Array, end?: Uint8Array) =>
    records.filter((r) => Buffer.compare(r.itemKey, splitKey) >= 0 && (end === undefined || Buffer.compare(r.itemKey, end) < 0));
  const below = (records: IndexOutboxRecord[], splitKey: Uint8Array) => records.filter((r) => Buffer.compare(r.itemKey, splitKey) < 0);

  it('a split with 5,000 pending records writes one small batch; steps of at most 1,000 records move the right half\'s records under their own seqs, before the right group\'s own', async () => {
    const database = await openDatabase({ inMemory: true });
    const batches: number[] = [];
    const commits = new CommitQueue({ ...database, writeBatch: (mutations) => (batches.push(mutations.length), database.writeBatch(mutations)) });
    const store = new PartitionStore(database.level, commits, { indexOutbox: true });
    try {
      const group = new Group(store);
      const right = new Group(store, GROUP + 1);
      await fillOutbox(group, 3_000);
      const before = await readAll(store);
      expect(before).toHaveLength(5_000);
      const items = await itemsByKey(store);
      const splitKey = items[1_500]!.key;
      batches.length = 0;
      const move = await store.splitIndexOutbox(GROUP, right.groupId, splitKey);
      expect(batches).toEqual([expect.any(Number)]);
      expect(batches[0]).toBeLessThanOrEqual(4);
      expect(move).toMatchObject({ groupId: GROUP, rightGroupId: right.groupId, nextSeq: 1, throughSeq: 5_000 });
      // Nothing moved yet: the right group awaits its records (its shipper holds, no snapshot of it goes).
      expect(await readAll(store)).toHaveLength(5_000);
      expect(await store.awaitsIndexOutboxMove(right.groupId)).toBe(true);
      expect(await store.awaitsIndexOutboxMove(GROUP)).toBe(false);
      // A replayed split changes nothing.
      expect(await store.splitIndexOutbox(GROUP, right.groupId, splitKey)).toEqual(move);
      // The right group writes meanwhile: its records are numbered past the seqs its parent's records keep.
      const moving = items[2_100]!;
      await right.write(put(person(moving.pk, moving.sk, { city: S('z'), age: N(1) })));
      expect((await readAll(store, right.groupId)).map((r) => r.seq)).toEqual([5_001, 5_002]);
      batches.length = 0;
      const steps = await runOutboxMove(store, group, { maxRecords: 1_000, maxBytes: 1 << 20 });
      expect(steps.map((step) => step.status)).toEqual(['moving', 'moving', 'moving', 'moving', 'done']);
      expect(steps.reduce((sum, step) => sum + step.moved, 0)).toBe(from(before, splitKey).length);
      // Each step one batch: at most a delete and a put per record read, the move's state and the mark.
      expect(batches).toHaveLength(5);
      expect(Math.max(...batches)).toBeLessThanOrEqual(2 * 1_000 + 2);
      expect(summary(await readAll(store))).toEqual(summary(below(before, splitKey)));
      const rightOutbox = await readAll(store, right.groupId);
      expect(summary(rightOutbox)).toEqual([...summary(from(before, splitKey)), ...summary(rightOutbox.slice(-2))]);
      expect(rightOutbox.slice(-2).map((r) => r.seq)).toEqual([5_001, 5_002]);
      expect(rightOutbox.every((r) => Buffer.compare(r.itemKey, splitKey) >= 0)).toBe(true);
      expect(await store.awaitsIndexOutboxMove(right.groupId)).toBe(false);
      expect(await store.indexOutboxMove(GROUP)).toBeUndefined();
      // A step proposed twice is stale: only its mark.
      const mark = group.mark();
      expect(await store.applyIndexOutboxMove(GROUP, 1, 100, mark)).toEqual({ status: 'stale', moved: 0 });
      expect(await store.appliedIndex(GROUP)).toBe(mark.index);
      // A step's byte limit: at least one record.
      await store.splitIndexOutbox(right.groupId, GROUP + 2, items[2_500]!.key);
      expect(await store.nextIndexOutboxMoveStep(right.groupId, { maxRecords: 1_000, maxBytes: 1 })).toEqual({ fromSeq: 1, toSeq: rightOutbox[0]!.seq });
    } finally {
      await commits.close();
      await database.close();
    }
  });

  it('replicas fed the same entries end with the same outboxes, whichever way the right half\'s own entries (a split of it included) interleave with the move', async () => {
    await withOutboxStores(2, async ([leader, follower]) => {
      const limits = { maxRecords: 150, maxBytes: 1 << 20 };
      const parents = [new Group(leader), new Group(follower)];
      for (const parent of parents) await fillOutbox(parent, 600);
      const before = await readAll(leader);
      const items = await itemsByKey(leader);
      const [k1, k2] = [items[200]!.key, items[420]!.key];
      const [R, R2] = [GROUP + 1, GROUP + 2];
      // The right half's own log: two writes, its split at k2, then its move steps.
      const rightLog = async (store: PartitionStore, right: Group, steps: Array<{ fromSeq: number; toSeq: number }>, propose: boolean): Promise<void> => {
        for (const item of [items[300]!, items[500]!]) await right.write(put(person(item.pk, item.sk, { city: S('w'), age: N(2) })));
        await store.splitIndexOutbox(R, R2, k2);
        right.mark();
        // The leader proposes its steps from its own store; the follower applies the same entries.
        if (propose) for (let step = await store.nextIndexOutboxMoveStep(R, limits); step !== undefined; step = await store.nextIndexOutboxMoveStep(R, limits)) {
          steps.push(step);
          await store.applyIndexOutboxMove(R, step.fromSeq, step.toSeq, right.mark());
        }
        else for (const step of steps) await store.applyIndexOutboxMove(R, step.fromSeq, step.toSeq, right.mark());
      };
      const parentSteps: Array<{ fromSeq: number; toSeq: number }> = [];
      const rightSteps: Array<{ fromSeq: number; toSeq: number }> = [];
      // The leader: the parent splits and moves two steps, then the right half's entries, then the parent's other steps.
      await leader.splitIndexOutbox(GROUP, R, k1);
      parents[0]!.mark();
      for (let i = 0; i < 2; i++) {
        const step = (await leader.nextIndexOutboxMoveStep(GROUP, limits))!;
        parentSteps.push(step);
        await leader.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, parents[0]!.mark());
      }
      await rightLog(leader, new Group(leader, R), rightSteps, true);
      for (let step = await leader.nextIndexOutboxMoveStep(GROUP, limits); step !== undefined; step = await leader.nextIndexOutboxMoveStep(GROUP, limits)) {
        parentSteps.push(step);
        await leader.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, parents[0]!.mark());
      }
      // The follower: the right half's entries first (it split before any record of its parent's arrived), then the parent's.
      await follower.splitIndexOutbox(GROUP, R, k1);
      parents[1]!.mark();
      await rightLog(follower, new Group(follower, R), rightSteps, false);
      expect(await follower.awaitsIndexOutboxMove(R2)).toBe(true);
      for (const step of parentSteps) await follower.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, parents[1]!.mark());
      expect(parentSteps.length).toBeGreaterThan(3);
      for (const groupId of [GROUP, R, R2]) expect(summary(await readAll(follower, groupId))).toEqual(summary(await readAll(leader, groupId)));
      for (const store of [leader, follower]) for (const groupId of [R, R2]) expect(await store.awaitsIndexOutboxMove(groupId)).toBe(false);
      // Every parent record in the outbox of the half holding its item, under its seq (so in its order), the halves' own after.
      expect(summary(await readAll(leader, GROUP))).toEqual(summary(below(before, k1)));
      expect(summary((await readAll(leader, R)).filter((r) => r.seq <= before.length))).toEqual(summary(from(before, k1, k2)));
      expect(summary((await readAll(leader, R2)).filter((r) => r.seq <= before.length))).toEqual(summary(from(before, k2)));
      expect((await readAll(leader, R2)).filter((r) => r.seq > before.length)).toHaveLength(2);
    });
  });

  it('a half that trimmed past records its parent\'s move still brings (a replica slower in the parent\'s log) drops them: replicas end equal whatever the interleaving of the parent\'s, the half\'s and its own half\'s logs', async () => {
    const [R, R2] = [GROUP + 1, GROUP + 2];
    const limits = { maxRecords: 40, maxBytes: 1 << 20 };
    type Log = typeof GROUP | typeof R | typeof R2;
    /** An entry of one of the three logs, as its leader proposed it. */
    type Entry = (store: PartitionStore, group: Group) => Promise<unknown>;
    const write = (item: { pk: string; sk: number }, city: string): Entry => (_, group) => group.write(put(person(item.pk, item.sk, { city: S(city), age: N(7) })));
    const trim = (throughSeq: number): Entry => (store, group) => store.trimIndexOutbox(group.groupId, throughSeq, group.mark());
    const step = (fromSeq: number, toSeq: number): Entry => (store, group) => store.applyIndexOutboxMove(group.groupId, fromSeq, toSeq, group.mark());
    const split = (right: number, splitKey: Uint8Array): Entry => async (store, group) => {
      await store.splitIndexOutbox(group.groupId, right, splitKey);
      await store.markApplied(group.mark());
    };
    await withOutboxStores(1, async ([leader]) => {
      // The leader of all three groups proposes: the parent's split and its steps first, then the
      // half's entries (trims around its own split, its steps), and the half's half's.
      const groups = new Map<Log, Group>([GROUP, R, R2].map((id) => [id, new Group(leader!, id)]));
      await fillOutbox(groups.get(GROUP)!, 300);
      const items = await itemsByKey(leader!);
      const [k1, k2] = [items[100]!.key, items[200]!.key];
      const [splitParent, splitHalf] = [split(R, k1), split(R2, k2)];
      const logs = new Map<Log, Entry[]>([[GROUP, []], [R, []], [R2, []]]);
      const propose = async (log: Log, entry: Entry): Promise<void> => {
        logs.get(log)!.push(entry);
        await entry(leader!, groups.get(log)!);
      };
      await propose(GROUP, splitParent);
      const moveSteps = async (log: Log): Promise<void> => {
        for (let next = await leader!.nextIndexOutboxMoveStep(log, limits); next !== undefined; next = await leader!.nextIndexOutboxMoveStep(log, limits)) await propose(log, step(next.fromSeq, next.toSeq));
      };
      await moveSteps(GROUP);
      await propose(R, write(items[150]!, 'w'));
      // A trim before the half's split: its half inherits it (a record of its items reaching a replica later is dropped).
      await propose(R, trim(240));
      await propose(R, splitHalf);
      // A trim between the half's split and its steps: the records the steps are still to move stay
      // (on a replica slower in the parent's log they go to the half's half directly).
      await propose(R, trim(260));
      await propose(R2, trim(200));
      await moveSteps(R);
      await propose(R, trim(380));
      await propose(R, write(items[120]!, 'v'));
      await propose(R2, write(items[260]!, 'u'));
      await propose(R2, trim(230));
      const outboxes = async (store: PartitionStore) => {
        const state = [];
        for (const groupId of [GROUP, R, R2]) {
          const records = await readAll(store, groupId);
          expect(store.indexOutboxBacklog(groupId)).toBe(records.length);
          state.push({ groupId, records: summary(records), move: await store.indexOutboxMove(groupId) });
        }
        return state;
      };
      const expected = await outboxes(leader!);
      expect(expected.every((group) => group.move === undefined)).toBe(true);
      const [inHalf, inHalfsHalf] = [await readAll(leader!, R), await readAll(leader!, R2)];
      expect(inHalf.length).toBeGreaterThan(0);
      expect(inHalf.every((r) => r.seq > 380 && Buffer.compare(r.itemKey, k1) >= 0 && Buffer.compare(r.itemKey, k2) < 0)).toBe(true);
      expect(inHalfsHalf.every((r) => r.seq > 240 && Buffer.compare(r.itemKey, k2) >= 0)).toBe(true);
      expect(inHalfsHalf.some((r) => r.seq <= 260)).toBe(true);

      // Other replicas apply the same entries, each log in its order, the logs interleaved at random
      // (the halves exist once their parent's split applied), and the parent's all last (a replica
      // slowest in it).
      const interleavings: Array<(choices: Log[]) => Log> = [(choices) => choices[choices.length - 1]!];
      for (let seed = 1; seed <= 16; seed++) {
        const next = random(seed);
        interleavings.push((choices) => choices[Math.floor(next() * choices.length)]!);
      }
      for (const pick of interleavings) {
        await withOutboxStores(1, async ([replica]) => {
          const onReplica = new Map<Log, Group>([GROUP, R, R2].map((id) => [id, new Group(replica!, id)]));
          await fillOutbox(onReplica.get(GROUP)!, 300);
          const left = new Map([...logs].map(([log, entries]) => [log, [...entries]]));
          const exists = new Set<Log>([GROUP]);
          for (;;) {
            const choices = [GROUP, R, R2].filter((log) => exists.has(log) && left.get(log)!.length > 0) as Log[];
            if (choices.length === 0) break;
            const log = pick(choices);
            const entry = left.get(log)!.shift()!;
            await entry(replica!, onReplica.get(log)!);
            if (entry === splitParent) exists.add(R);
            if (entry === splitHalf) exists.add(R2);
          }
          expect(await outboxes(replica!)).toEqual(expected);
        });
      }
    });
  });

  it('a half restored from a snapshot while its parent\'s move is still under way here: the records the sender trimmed are dropped, those it holds counted once', async () => {
    await withOutboxStores(2, async ([leader, slow]) => {
      const R = GROUP + 1;
      const limits = { maxRecords: 60, maxBytes: 1 << 20 };
      const parents = [new Group(leader!), new Group(slow!)];
      for (const parent of parents) await fillOutbox(parent, 300);
      const items = await itemsByKey(leader!);
      const splitKey = items[100]!.key;
      for (const [store, parent] of [[leader!, parents[0]!], [slow!, parents[1]!]] as const) {
        await store.splitIndexOutbox(GROUP, R, splitKey);
        await store.markApplied(parent.mark());
      }
      const steps: Array<{ fromSeq: number; toSeq: number }> = [];
      for (let step = await leader!.nextIndexOutboxMoveStep(GROUP, limits); step !== undefined; step = await leader!.nextIndexOutboxMoveStep(GROUP, limits)) {
        steps.push(step);
        await leader!.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, parents[0]!.mark());
      }
      const right = new Group(leader!, R);
      await leader!.trimIndexOutbox(R, 200, right.mark());
      await right.write(put(person(items[150]!.pk, items[150]!.sk, { city: S('w'), age: N(1) })));
      // The slow replica's half is replaced by the leader's (its parent's steps not applied there yet), then the steps come.
      await sendSnapshot(leader!, slow!, { groupId: R, table: TABLE, bound: { start: splitKey, end: WHOLE.end } }, right.index);
      for (const step of steps) await slow!.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, parents[1]!.mark());
      for (const groupId of [GROUP, R]) {
        const records = await readAll(slow!, groupId);
        expect(summary(records)).toEqual(summary(await readAll(leader!, groupId)));
        expect([slow!.indexOutboxBacklog(groupId), leader!.indexOutboxBacklog(groupId)]).toEqual([records.length, records.length]);
      }
      expect((await readAll(slow!, R)).every((r) => r.seq > 200)).toBe(true);
    });
  });

  it('a move skips a half whose replica was removed here (its records would stay forever), yet routes through it to a half of it held here', async () => {
    await withOutboxStores(1, async ([store]) => {
      const [R, R2] = [GROUP + 1, GROUP + 2];
      const limits = { maxRecords: 60, maxBytes: 1 << 20 };
      const parent = new Group(store!);
      const right = new Group(store!, R);
      await fillOutbox(parent, 300);
      const before = await readAll(store!);
      const items = await itemsByKey(store!);
      const [k1, k2] = [items[100]!.key, items[200]!.key];
      await store!.splitIndexOutbox(GROUP, R, k1);
      const first = (await store!.nextIndexOutboxMoveStep(GROUP, limits))!;
      await store!.applyIndexOutboxMove(GROUP, first.fromSeq, first.toSeq, parent.mark());
      await store!.splitIndexOutbox(R, R2, k2);
      await runOutboxMove(store!, right, limits);
      // The half's replica leaves this node (its half's stays), while its parent still moves records here.
      await store!.dropPartitionData(TABLE, { start: k1, end: k2 }, R);
      expect(await store!.awaitsIndexOutboxMove(R2)).toBe(true);
      await runOutboxMove(store!, parent, limits);
      expect(await readAll(store!, R)).toEqual([]);
      expect(store!.indexOutboxBacklog(R)).toBe(0);
      expect(summary(await readAll(store!, R2))).toEqual(summary(from(before, k2)));
      expect(store!.indexOutboxBacklog(R2)).toBe(from(before, k2).length);
      expect(summary(await readAll(store!, GROUP))).toEqual(summary(below(before, k1)));
      expect(await store!.awaitsIndexOutboxMove(R2)).toBe(false);
      // The table goes, the parent's replica first: nothing is left of any outbox.
      await store!.dropPartitionData(TABLE, { start: WHOLE.start, end: k1 }, GROUP);
      await store!.dropPartitionData(TABLE, { start: k2, end: WHOLE.end }, R2);
      for (const groupId of [GROUP, R, R2]) expect([await readAll(store!, groupId), store!.indexOutboxBacklog(groupId)]).toEqual([[], 0]);
    });
  });

  it('a restart part way continues the move; a snapshot of the parent part way continues it on the receiver; none of the right half goes while it awaits records', async () => {
    const directory = await temporaryDirectory();
    const limits = { maxRecords: 100, maxBytes: 1 << 20 };
    try {
      let local = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
      const group = new Group(local.partitions);
      await fillOutbox(group, 300);
      const before = await readAll(local.partitions);
      const splitKey = (await itemsByKey(local.partitions))[100]!.key;
      await local.partitions.splitIndexOutbox(GROUP, GROUP + 1, splitKey);
      group.mark();
      const first = (await local.partitions.nextIndexOutboxMoveStep(GROUP, limits))!;
      await local.partitions.applyIndexOutboxMove(GROUP, first.fromSeq, first.toSeq, group.mark());
      await local.close();
      local = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
      const store = local.partitions;
      try {
        expect(await store.indexOutboxMove(GROUP)).toMatchObject({ nextSeq: first.toSeq + 1, throughSeq: before.length });
        // A snapshot of the right half is refused while it awaits records here.
        const rightScope = { groupId: GROUP + 1, table: TABLE, bound: { start: splitKey, end: WHOLE.end } };
        await withOutboxStores(2, async ([receiver, another]) => {
          await expect(sendSnapshot(store, receiver, rightScope, 1)).rejects.toThrow(OutboxMoveUnderWayError);
          // The parent's snapshot goes part way, its move with it; the receiver (holding the right half too) continues it.
          const parentScope = { groupId: GROUP, table: TABLE, bound: { start: WHOLE.start, end: splitKey } };
          await sendSnapshot(store, receiver, parentScope, group.index);
          // A replica that was behind the split takes the move with the snapshot, and carries out the
          // rest of it; it holds no right half (that comes from the map, with a snapshot of its own):
          // the records leave the parent's outbox and go nowhere (they were written under the right
          // group's keys, which nothing here would ever ship or delete).
          await fillOutbox(new Group(another), 300);
          await sendSnapshot(store, another, parentScope, group.index);
          expect(await another.indexOutboxMove(GROUP)).toEqual(await store.indexOutboxMove(GROUP));
          await runOutboxMove(another, new Group(another), limits);
          expect(await readAll(another, GROUP + 1)).toEqual([]);
          expect(summary(await readAll(another, GROUP))).toEqual(summary(below(before, splitKey)));
          expect([another.indexOutboxBacklog(GROUP), another.indexOutboxBacklog(GROUP + 1)]).toEqual([below(before, splitKey).length, 0]);
          const onReceiver = new Group(receiver);
          onReceiver.index = group.index;
          const resumed = new Group(store);
          resumed.index = group.index;
          await runOutboxMove(store, resumed, limits);
          await runOutboxMove(receiver, onReceiver, limits);
          expect(resumed.index).toBe(onReceiver.index);
          expect(summary(await readAll(store, GROUP + 1))).toEqual(summary(from(before, splitKey)));
          // On the receiver, the records moved before its snapshot came with the right half's own snapshot, sent once complete.
          await sendSnapshot(store, receiver, rightScope, 1);
          expect(summary(await readAll(receiver, GROUP + 1))).toEqual(summary(from(before, splitKey)));
          expect(summary(await readAll(receiver, GROUP))).toEqual(summary(below(before, splitKey)));
        });
      } finally {
        await local.close();
      }
    } finally {
      await directory.remove();
    }
  });

  it('a replica removed part way, or replaced by a snapshot, ends its move here first: the right half gets every record', async () => {
    await withOutboxStores(2, async ([store, receiver]) => {
      const group = new Group(store);
      await fillOutbox(group, 300);
      const before = await readAll(store);
      const splitKey = (await itemsByKey(store))[150]!.key;
      const scope = { groupId: GROUP, table: TABLE, bound: { start: WHOLE.start, end: splitKey } };
      // The receiver's replica applied the split, none of its move; the sender's moved a first step,
      // which its snapshot's outbox lacks: the receiver moves its own records first.
      await fillOutbox(new Group(receiver), 300);
      await receiver.splitIndexOutbox(GROUP, GROUP + 1, splitKey);
      await store.splitIndexOutbox(GROUP, GROUP + 1, splitKey);
      group.mark();
      const step = (await store.nextIndexOutboxMoveStep(GROUP, { maxRecords: 50, maxBytes: 1 << 20 }))!;
      await store.applyIndexOutboxMove(GROUP, step.fromSeq, step.toSeq, group.mark());
      await sendSnapshot(store, receiver, scope, group.index);
      expect(await receiver.indexOutboxMove(GROUP)).toEqual(await store.indexOutboxMove(GROUP));
      expect(summary(await readAll(receiver, GROUP + 1))).toEqual(summary(from(before, splitKey)));
      // The store's replica of the parent goes part way.
      await store.dropPartitionData(TABLE, scope.bound, GROUP);
      expect(summary(await readAll(store, GROUP + 1))).toEqual(summary(from(before, splitKey)));
      expect(await readAll(store, GROUP)).toEqual([]);
      expect(await store.awaitsIndexOutboxMove(GROUP + 1)).toBe(false);
    });
  });
});

describe('a GSI partition applying shipped records', () => {
  it('applies records past its cursor once, skips those at or below it, with cursor and statistics in one batch', async () => {
    await withOutboxStores(2, async ([base, target]) => {
      const group = new Group(base);
      await group.write(put(person('a', 1, { city: S('Oslo'), age: N(1), name: S('A') })));
      await group.write(put(person('b', 2, { city: S('Oslo'), age: N(2), name: S('B') })));
      await group.write(put(person('a', 1, { city: S('Rome'), age: N(1), name: S('A') })));
      const records = await readAll(base);
      expect(records).toHaveLength(4);
      const before = target.batchesWritten();
      const mark = { groupId: GSI_GROUP, index: 1 };
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, records.slice(0, 2), mark)).toEqual({ status: 'applied', applied: 2, skipped: 0 });
      expect(target.batchesWritten() - before).toBe(1);
      expect(await target.indexCursor(GSI_GROUP, GROUP)).toBe(2);
      expect(await target.appliedIndex(GSI_GROUP)).toBe(1);
      // The whole batch again (its answer was lost): only the new ones apply.
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, records, { groupId: GSI_GROUP, index: 2 })).toEqual({ status: 'applied', applied: 2, skipped: 2 });
      // A stale record (seq 1: a put of a's Oslo entry) never comes back.
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, records.slice(0, 1))).toEqual({ status: 'applied', applied: 0, skipped: 1 });
      expect(await gsiEntries(target)).toEqual([
        { pk: S('b'), sk: N(2), city: S('Oslo'), age: N(2), name: S('B') },
        { pk: S('a'), sk: N(1), city: S('Rome'), age: N(1), name: S('A') },
      ]);
      expect(await target.indexPartitionStatistics(BY_CITY, INDEX_SPACE)).toEqual(await target.statistics(TABLE, BY_CITY.name));
      expect((await target.statistics(TABLE, BY_CITY.name)).itemCount).toBe(2);
      // Cursors are per source group.
      expect(await target.indexCursor(GSI_GROUP, GROUP + 1)).toBe(0);
    });
  });

  it('refuses records outside its bound whole (it split since they were routed)', async () => {
    await withOutboxStores(2, async ([base, gsi]) => {
      const group = new Group(base);
      await group.write(put(person('a', 1, { city: S('Oslo'), age: N(1) })));
      await group.write(put(person('b', 1, { city: S('Zurich'), age: N(1) })));
      const records = await readAll(base);
      const left: PartitionBound = { start: INDEX_SPACE.start, end: cityKey('Oslo', 1, 'a', 1) };
      const outside = records.filter((r) => Buffer.compare(r.entryKey, left.end) >= 0);
      expect(outside.length).toBeGreaterThan(0);
      expect(await gsi.applyIndexEntries(GSI_GROUP, left, GROUP, records, { groupId: GSI_GROUP, index: 1 })).toEqual({ status: 'outOfRange', applied: 0, skipped: 0 });
      expect(await gsi.indexCursor(GSI_GROUP, GROUP)).toBe(0);
      expect(await gsi.appliedIndex(GSI_GROUP)).toBe(1);
    });
  });

  it('a split of the GSI partition gives the right group the left\'s cursors', async () => {
    await withOutboxStores(1, async ([target]) => {
      const record = { seq: 5, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('Oslo', 1, 'a', 1), entry: { pk: S('a'), sk: N(1), city: S('Oslo'), age: N(1) } };
      await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, [record]);
      await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP + 1, [{ ...record, seq: 2 }]);
      await target.copyIndexCursors(GSI_GROUP, GSI_GROUP + 1);
      expect(await target.indexCursor(GSI_GROUP + 1, GROUP)).toBe(5);
      expect(await target.indexCursor(GSI_GROUP + 1, GROUP + 1)).toBe(2);
    });
  });

  it('skips a fenced source\'s records of items at or beyond its fence (they moved to a split half), keeps the lowest fence, copies fences on a split', async () => {
    await withOutboxStores(1, async ([target]) => {
      const left = GROUP;
      const right = GROUP + 1;
      const splitKey = encodeItemKey(TABLE.tableId, S('m'), N(0));
      const below = encodeItemKey(TABLE.tableId, S('a'), N(0));
      const beyond = encodeItemKey(TABLE.tableId, S('z'), N(0));
      const entry = (seq: number, itemKey: Uint8Array, name: string) => ({ seq, indexId: BY_CITY.indexId, itemKey, entryKey: cityKey('x', seq, name, 1), entry: { pk: S(name), sk: N(1), city: S('x'), age: N(seq) } });
      // The right half's first call fences its parent from the split key on.
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, right, [entry(1, beyond, 'new')], undefined, [{ sourceGroupId: left, fromKey: splitKey }])).toMatchObject({ applied: 1 });
      // The parent's call still on the wire: its record of the moved item is skipped, the one below applies.
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, left, [entry(7, beyond, 'stale'), entry(8, below, 'kept')])).toEqual({ status: 'applied', applied: 1, skipped: 1 });
      expect(await target.indexCursor(GSI_GROUP, left)).toBe(8);
      expect((await gsiEntries(target)).map((item) => JSON.stringify(item.pk)).sort()).toEqual([JSON.stringify(S('kept')), JSON.stringify(S('new'))]);
      // A higher fence for the same source changes nothing; a lower one lowers it.
      await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, right, [], undefined, [{ sourceGroupId: left, fromKey: beyond }]);
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, left, [entry(9, encodeItemKey(TABLE.tableId, S('q'), N(0)), 'q')])).toMatchObject({ applied: 0, skipped: 1 });
      await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, right, [], undefined, [{ sourceGroupId: left, fromKey: below }]);
      expect(await target.applyIndexEntries(GSI_GROUP, INDEX_SPACE, left, [entry(10, below, 'b')])).toMatchObject({ applied: 0, skipped: 1 });
      // A split of the GSI partition: its right half keeps the fence.
      await target.copyIndexCursors(GSI_GROUP, GSI_GROUP + 1);
      expect(await target.applyIndexEntries(GSI_GROUP + 1, INDEX_SPACE, left, [entry(11, below, 'c')])).toMatchObject({ applied: 0, skipped: 1 });
    });
  });

  it('random writes shipped in random batches, some sent twice, converge to the synchronous store\'s GSI', async () => {
    const next = random(20261126);
    const reference = await openLocalStore({ inMemory: true });
    await withOutboxStores(2, async ([base, gsi]) => {
      const group = new Group(base);
      let gsiIndex = 0;
      const ship = async (records: IndexOutboxRecord[]) => {
        gsiIndex += 1;
        await gsi.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, records, { groupId: GSI_GROUP, index: gsiIndex });
      };
      for (let step = 0; step < 600; step++) {
        const pk = `k${Math.floor(next() * 40)}`;
        const sk = Math.floor(next() * 3);
        const roll = next();
        const write = roll < 0.2
          ? del(pk, sk)
          : put(person(pk, sk, {
              ...(roll < 0.85 ? { city: S(`c${Math.floor(next() * 5)}`) } : {}),
              ...(next() < 0.9 ? { age: N(Math.floor(next() * 4)) } : {}),
              name: S(`n${Math.floor(next() * 3)}`),
              other: S(`o${step}`),
            }));
        await reference.partitions.write(write);
        await group.write(write);
        if (next() < 0.15) {
          // Ships what is there in batches of at most 7; a batch is sometimes sent twice, or its
          // trim is lost (the next round sends it again, with more).
          for (let round = 0; round < 100; round++) {
            const batch = await base.readIndexOutbox(GROUP, { maxRecords: 7, maxBytes: 1 << 20 });
            if (batch.length === 0) break;
            await ship(batch);
            if (next() < 0.2) await ship(batch);
            if (next() < 0.2) break;
            await base.trimIndexOutbox(GROUP, batch.at(-1)!.seq, group.mark());
          }
        }
      }
      const rest = await readAll(base);
      await gsi.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, rest);
      const expected = (await reference.partitions.readRange(baseRequest(TABLE, { indexName: BY_CITY.name }))).items;
      expect(expected.length).toBeGreaterThan(10);
      expect(await gsiEntries(gsi)).toEqual(expected);
      expect(await gsi.statistics(TABLE, BY_CITY.name)).toEqual(await reference.partitions.statistics(TABLE, BY_CITY.name));
    }).finally(() => reference.close());
  });

  it('reads a GSI partition within its bound, in the index\'s own space', async () => {
    await withOutboxStores(1, async ([gsi]) => {
      const entries = ['a', 'b', 'c', 'd'].map((pk, i) => ({ seq: i + 1, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('Oslo', i, pk, 1), entry: { pk: S(pk), sk: N(1), city: S('Oslo'), age: N(i) } }));
      await gsi.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, entries);
      const lower: PartitionBound = { start: INDEX_SPACE.start, end: cityKey('Oslo', 2, 'c', 1) };
      const query = baseRequest(TABLE, { indexName: BY_CITY.name, hashValue: S('Oslo') });
      expect((await gsi.readIndexPartition(query, lower)).items.map((item) => item.pk)).toEqual([S('a'), S('b')]);
      expect((await gsi.readIndexPartition(query, { start: lower.end, end: new Uint8Array(0) })).items.map((item) => item.pk)).toEqual([S('c'), S('d')]);
      expect((await gsi.indexPartitionStatistics(BY_CITY, lower)).itemCount).toBe(2);
    });
  });
});

describe('outboxes and cursors as replica state', () => {
  it('survive a restart; the sequence goes on', async () => {
    const directory = await temporaryDirectory();
    try {
      let local = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
      const group = new Group(local.partitions);
      await group.write(put(person('r', 1, { city: S('x'), age: N(1) })));
      await group.write(put(person('r', 2, { city: S('x'), age: N(2) })));
      await local.partitions.applyIndexEntries(GSI_GROUP, INDEX_SPACE, 3, [{ seq: 4, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('q', 1, 'q', 1), entry: { pk: S('q'), sk: N(1), city: S('q'), age: N(1) } }]);
      await local.close();
      local = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
      const reopened = new Group(local.partitions);
      reopened.index = group.index;
      await reopened.write(put(person('r', 3, { city: S('x'), age: N(3) })));
      expect((await readAll(local.partitions)).map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(await local.partitions.indexCursor(GSI_GROUP, 3)).toBe(4);
      await local.close();
    } finally {
      await directory.remove();
    }
  });

  it('a snapshot carries the group\'s outbox, next seq and cursors, and not GSI entries other groups keep here', async () => {
    await withOutboxStores(2, async ([source, receiver]) => {
      const group = new Group(source);
      for (let i = 0; i < 20; i++) await group.write(put(person(`p${i}`, i, { city: S(`c${i % 3}`), age: N(i) })));
      await source.trimIndexOutbox(GROUP, 5, group.mark());
      const incoming = [{ seq: 3, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('q', 1, 'q', 1), entry: { pk: S('q'), sk: N(1), city: S('q'), age: N(1) } }];
      // This group is also a GSI partition's (cursors), and another group's GSI entries share the store.
      await source.applyIndexEntries(GROUP, INDEX_SPACE, 11, incoming);
      await source.applyIndexEntries(GSI_GROUP, INDEX_SPACE, 12, [{ ...incoming[0], entryKey: cityKey('z', 1, 'z', 1), entry: { pk: S('z'), sk: N(1), city: S('z'), age: N(1) } }]);
      const scope = { groupId: GROUP, table: TABLE, bound: WHOLE };
      // The receiver held stale state of the group: it is replaced.
      await new Group(receiver).write(put(person('old', 1, { city: S('x'), age: N(1) })));
      await sendSnapshot(source, receiver, scope, group.index);
      expect(summary(await readAll(receiver))).toEqual(summary(await readAll(source)));
      expect((await readAll(receiver)).map((r) => r.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 6));
      expect(await receiver.indexCursor(GROUP, 11)).toBe(3);
      await new Group(receiver).write(put(person('after', 1, { city: S('x'), age: N(1) })));
      expect((await readAll(receiver)).at(-1)!.seq).toBe(21);
      // The other group's GSI entries (cursor 12) did not travel: this snapshot is of a base partition.
      expect(await receiver.indexCursor(GSI_GROUP, 12)).toBe(0);
      expect(await gsiEntries(receiver)).toEqual([]);
    });
  });

  it('a GSI partition\'s snapshot (index space scope) carries its entries and cursors, with statistics', async () => {
    await withOutboxStores(2, async ([source, receiver]) => {
      const entries = ['a', 'b', 'c'].map((pk, i) => ({ seq: i + 1, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('Oslo', i, pk, 1), entry: { pk: S(pk), sk: N(1), city: S('Oslo'), age: N(i) } }));
      await source.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, entries, { groupId: GSI_GROUP, index: 4 });
      const scope = { groupId: GSI_GROUP, table: indexSpaceSchema(TABLE, BY_CITY), bound: INDEX_SPACE };
      await sendSnapshot(source, receiver, scope, 4);
      expect(await gsiEntries(receiver)).toEqual(await gsiEntries(source));
      expect(await receiver.indexCursor(GSI_GROUP, GROUP)).toBe(3);
      expect(await receiver.statistics(TABLE, BY_CITY.name)).toEqual(await source.statistics(TABLE, BY_CITY.name));
    });
  });

  it('removing a replica deletes its outbox, next seq and cursors, and leaves GSI partitions\' entries here alone', async () => {
    await withOutboxStores(1, async ([store]) => {
      const group = new Group(store);
      await group.write(put(person('a', 1, { city: S('x'), age: N(1), rank: N(1) })));
      await store.applyIndexEntries(GROUP, INDEX_SPACE, 3, [{ seq: 1, indexId: BY_CITY.indexId, itemKey: SOME_ITEM, entryKey: cityKey('q', 1, 'q', 1) }]);
      await store.applyIndexEntries(GSI_GROUP, INDEX_SPACE, GROUP, await readAll(store));
      await store.dropPartitionData(TABLE, WHOLE, GROUP);
      expect(await readAll(store)).toEqual([]);
      expect(await store.indexCursor(GROUP, 3)).toBe(0);
      expect(await store.appliedIndex(GROUP)).toBe(0);
      expect((await store.readRange(baseRequest(TABLE, { indexName: BY_RANK.name }))).items).toEqual([]);
      // The GSI partition's entry (another group here) stays.
      expect((await gsiEntries(store)).map((item) => item.pk)).toEqual([S('a')]);
      // A new replica of the group starts its sequence from 1.
      await new Group(store).write(put(person('b', 1, { city: S('x'), age: N(1) })));
      expect((await readAll(store)).map((r) => r.seq)).toEqual([1]);
      // And a GSI partition's removal deletes its entries (index space scope).
      await store.dropPartitionData(indexSpaceSchema(TABLE, BY_CITY), INDEX_SPACE, GSI_GROUP);
      expect(await gsiEntries(store)).toEqual([]);
      expect(await store.statistics(TABLE, BY_CITY.name)).toEqual({ itemCount: 0, sizeBytes: 0 });
    });
  });
});
