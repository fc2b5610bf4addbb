/**
 * The outbox backlog a store keeps in memory per group (indexOutboxBacklog: what a base partition's
 * leader asks before every write to a table with a GSI): after every write, transaction, backfill
 * chunk, trim, split, move step, snapshot restore, removal and restart it equals the number of
 * records the group's outbox holds on disk.
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { compareBytes, encodeCollectionPrefix, encodeItemKey, spaceRange, type IndexSchema, type PartitionWrite, type TableSchema } from '@shoal/model';
import { checkPartitionSnapshot, openLocalStore, type LocalStore, type PartitionBound, type PartitionStore } from '../src/index.ts';
import { N, random, runOutboxMove, S, temporaryDirectory, type LogOfGroup } from './helpers.ts';

const BY_CITY: IndexSchema = { name: 'byCity', kind: 'GSI', indexId: 41, hashKey: { name: 'city', type: 'S' }, projection: { type: 'KEYS_ONLY' } };
const TABLE: TableSchema = { name: 'towns', tableId: 40, hashKey: { name: 'pk', type: 'S' }, rangeKey: { name: 'sk', type: 'N' }, indexes: [BY_CITY] };
const PLAIN: TableSchema = { name: 'plain', tableId: 42, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const WHOLE: PartitionBound = spaceRange(TABLE.tableId);
const GROUP = 5;

const put = (pk: string, sk: number, city?: string): PartitionWrite => ({
  operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk), sk: N(sk) }, item: { pk: S(pk), sk: N(sk), ...(city === undefined ? {} : { city: S(city) }) } }],
});
const itemKey = (pk: string, sk: number): Uint8Array => encodeItemKey(TABLE.tableId, S(pk), N(sk));
const collection = (pk: string): Uint8Array => encodeCollectionPrefix(TABLE.tableId, S(pk));

/** Marks of each group's log: 1, 2, ... */
class Marks {
  readonly #next = new Map<number, number>();
  of(groupId: number): { groupId: number; index: number } {
    const index = (this.#next.get(groupId) ?? 0) + 1;
    this.#next.set(groupId, index);
    return { groupId, index };
  }
  log(groupId: number): LogOfGroup {
    return { groupId, mark: () => this.of(groupId) };
  }
}

/** The backlog in memory equals the records on disk, for every group named; answers them. */
async function backlogsMatchDisk(store: PartitionStore, groupIds: readonly number[]): Promise<number[]> {
  const onDisk = await Promise.all(groupIds.map(async (groupId) => (await store.readIndexOutbox(groupId, { maxRecords: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER })).length));
  expect(groupIds.map((groupId) => store.indexOutboxBacklog(groupId))).toEqual(onDisk);
  return onDisk;
}

describe('the outbox backlog of a group', () => {
  it('counts the records of writes, transactions and backfill chunks, and goes down with trims', async () => {
    const local = await openLocalStore({ inMemory: true, indexOutbox: true });
    const store = local.partitions;
    const marks = new Marks();
    try {
      expect(store.indexOutboxBacklog(GROUP)).toBe(0);
      await store.write(put('a', 1, 'Oslo'), marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([1]);
      // A move to another GSI key: a delete and a put record.
      await store.write(put('a', 1, 'Rome'), marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([3]);
      // No GSI key, a table without GSIs, a refused write: no record.
      await store.write(put('b', 1), marks.of(GROUP));
      await store.write({ operations: [{ table: PLAIN, kind: 'Put', key: { pk: S('p') }, item: { pk: S('p') } }] }, marks.of(GROUP));
      const conditional = put('a', 1, 'Nice').operations[0]!;
      const refused = await store.write({ operations: [{ ...conditional, expressions: { condition: 'attribute_not_exists(pk)' } }] }, marks.of(GROUP));
      expect(refused.applied).toBe(false);
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([3]);
      // Coalesced writes (one entry).
      await store.stageWrites([put('c', 1, 'Oslo'), put('d', 1, 'Oslo')], marks.of(GROUP)).then(({ durable }) => durable);
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([5]);
      // A transaction's resolve writes its records; its prepare none.
      const transaction = { id: 't1', coordinator: GROUP, deadline: Date.now() + 60_000 };
      expect((await store.prepareTransaction(transaction, put('e', 1, 'Oslo'), marks.of(GROUP))).applied).toBe(true);
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([5]);
      await store.resolveTransaction('t1', true, WHOLE, marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([6]);
      // A backfill chunk: a put record per item with a city (a, c, d, e; b has none).
      const { done } = await store.startIndexCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }, WHOLE, marks.of(GROUP));
      const [backfill] = await store.runningIndexBackfills(GROUP);
      expect((await store.applyBackfillChunk(GROUP, BY_CITY.indexId, backfill!.nextKey, marks.of(GROUP))).status).toBe('done');
      await done;
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([10]);
      // Trims: part of it, past what was trimmed already, then everything.
      await store.trimIndexOutbox(GROUP, 4, marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([6]);
      await store.trimIndexOutbox(GROUP, 2, marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([6]);
      await store.trimIndexOutbox(GROUP, 10, marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([0]);
      await store.write(put('f', 1, 'Oslo'), marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP])).toEqual([1]);
      // A removed replica's outbox goes, and so does its backlog.
      await store.dropPartitionData(TABLE, WHOLE, GROUP);
      expect(store.indexOutboxBacklog(GROUP)).toBe(0);
    } finally {
      await local.close();
    }
  });

  it('a split gives the right group the records its outbox move carries over, the left keeps the rest: each counts the records it holds', async () => {
    const local = await openLocalStore({ inMemory: true, indexOutbox: true });
    const store = local.partitions;
    const marks = new Marks();
    const right = GROUP + 1;
    try {
      // Keys are hashed: of two item collections, one lies left of the other's start, the split key.
      const [low, high] = ['x', 'z'].toSorted((a, b) => compareBytes(collection(a), collection(b)));
      const splitKey = collection(high!);
      // Alternating halves: low (left of the split, seqs 1, 3, 5, 7, 9) and high (right: 2, 4, 6, 8, 10, 11).
      for (let i = 0; i < 10; i++) await store.write(put(i % 2 === 0 ? low! : high!, i, 'Oslo'), marks.of(GROUP));
      await store.write(put(high!, 100, 'Oslo'), marks.of(GROUP));
      await store.splitIndexOutbox(GROUP, right, splitKey);
      // The split moves nothing: the right group's seqs start past the left's (12), its outbox empty yet.
      expect(await backlogsMatchDisk(store, [GROUP, right])).toEqual([11, 0]);
      // Replayed before its steps (a restart before its mark): nothing changes.
      await store.splitIndexOutbox(GROUP, right, splitKey);
      expect(await backlogsMatchDisk(store, [GROUP, right])).toEqual([11, 0]);
      await runOutboxMove(store, marks.log(GROUP));
      // Moved under their seqs: the right holds 2, 4, 6, 8, 10, 11, the left 1, 3, 5, 7, 9 (seqs
      // between them, the other half's, are not counted: a backlog of next seq minus first seq
      // counted them, 11 and 10).
      expect(await backlogsMatchDisk(store, [GROUP, right])).toEqual([5, 6]);
      await store.write(put(high!, 200, 'Rome'), marks.of(right));
      expect(await backlogsMatchDisk(store, [GROUP, right])).toEqual([5, 7]);
      await store.trimIndexOutbox(GROUP, 9, marks.of(GROUP));
      expect(await backlogsMatchDisk(store, [GROUP, right])).toEqual([0, 7]);
      // A split moving the group's first records: the left's backlog starts at its first record left.
      await store.trimIndexOutbox(right, 12, marks.of(right));
      const [middle, top] = Array.from({ length: 20 }, (_, i) => `r${i}`)
        .filter((pk) => compareBytes(collection(pk), splitKey) > 0)
        .toSorted((a, b) => compareBytes(collection(a), collection(b)));
      for (let i = 0; i < 4; i++) await store.write(put(top!, 300 + i, 'Nice'), marks.of(right));
      await store.write(put(middle!, 300, 'Nice'), marks.of(right));
      await store.splitIndexOutbox(right, GROUP + 2, collection(top!));
      await runOutboxMove(store, marks.log(right));
      // Right: seq 17; its right half: 13 ... 16.
      expect(await backlogsMatchDisk(store, [GROUP, right, GROUP + 2])).toEqual([0, 1, 4]);
    } finally {
      await local.close();
    }
  });

  it('a restored snapshot brings the group\'s backlog, replacing the one held before', async () => {
    const directory = await temporaryDirectory();
    const source = await openLocalStore({ inMemory: true, indexOutbox: true });
    const receiver = await openLocalStore({ inMemory: true, indexOutbox: true });
    const sourceMarks = new Marks();
    const receiverMarks = new Marks();
    try {
      for (let i = 0; i < 12; i++) await source.partitions.write(put('s', i, `c${i % 3}`), sourceMarks.of(GROUP));
      await source.partitions.trimIndexOutbox(GROUP, 4, sourceMarks.of(GROUP));
      for (let i = 0; i < 30; i++) await receiver.partitions.write(put('old', i, 'x'), receiverMarks.of(GROUP));
      const scope = { groupId: GROUP, table: TABLE, bound: WHOLE };
      const stream = await source.partitions.openPartitionSnapshot(scope)();
      const parts: Uint8Array[] = [];
      for await (const chunk of stream.chunks) parts.push(chunk);
      stream.release();
      const path = join(directory.path, 'snapshot');
      const bytes = Buffer.concat(parts);
      await writeFile(path, bytes);
      await receiver.partitions.restorePartitionSnapshot([scope], await checkPartitionSnapshot({ path, offset: 0, size: bytes.length }), 13);
      expect(await backlogsMatchDisk(receiver.partitions, [GROUP])).toEqual([8]);
      expect(receiver.partitions.indexOutboxBacklog(GROUP)).toBe(source.partitions.indexOutboxBacklog(GROUP));
    } finally {
      await source.close();
      await receiver.close();
      await directory.remove();
    }
  });

  it('random writes, trims, splits and move steps over several groups: always what the disk holds, and what a restarted store reads', async () => {
    const directory = await temporaryDirectory();
    const next = random(20_261_126);
    const marks = new Marks();
    /** Each group's key range, as its splits left it. */
    const groups: Array<{ groupId: number; start: Uint8Array; end: Uint8Array }> = [{ groupId: GROUP, ...WHOLE }];
    const owner = (key: Uint8Array) => groups.find((group) => compareBytes(group.start, key) <= 0 && compareBytes(key, group.end) < 0)!;
    let local: LocalStore = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
    try {
      for (let step = 0; step < 400; step++) {
        const roll = next();
        const pk = `k${Math.floor(next() * 40)}`;
        const sk = Math.floor(next() * 5);
        const group = owner(itemKey(pk, sk));
        if (roll < 0.6) {
          const city = next() < 0.2 ? undefined : `c${Math.floor(next() * 4)}`;
          await local.partitions.write(next() < 0.1 ? { operations: [{ table: TABLE, kind: 'Delete', key: { pk: S(pk), sk: N(sk) } }] } : put(pk, sk, city), marks.of(group.groupId));
        } else if (roll < 0.75) {
          // Trims while a move is under way too (the records it still has to move stay).
          const records = await local.partitions.readIndexOutbox(group.groupId, { maxRecords: 1_000, maxBytes: 1 << 30 });
          const through = records[Math.floor(next() * records.length)]?.seq;
          if (through !== undefined) await local.partitions.trimIndexOutbox(group.groupId, through, marks.of(group.groupId));
        } else if (roll < 0.87) {
          // One step of a move under way, a few records at a time: writes, trims and splits of its halves come between.
          const moving = (await Promise.all(groups.map(async (g) => ((await local.partitions.indexOutboxMove(g.groupId)) === undefined ? [] : [g])))).flat();
          const parent = moving[Math.floor(next() * moving.length)];
          const move = parent && (await local.partitions.nextIndexOutboxMoveStep(parent.groupId, { maxRecords: 3, maxBytes: 1 << 20 }));
          if (parent !== undefined && move !== undefined) await local.partitions.applyIndexOutboxMove(parent.groupId, move.fromSeq, move.toSeq, marks.of(parent.groupId));
        } else if (roll < 0.95 && groups.length < 8) {
          const splitKey = itemKey(pk, sk);
          // A group splits again only once its move ended (its replicas refuse it before).
          if (compareBytes(splitKey, group.start) <= 0 || (await local.partitions.indexOutboxMove(group.groupId)) !== undefined) continue;
          const rightId = GROUP + groups.length;
          await local.partitions.splitIndexOutbox(group.groupId, rightId, splitKey);
          groups.push({ groupId: rightId, start: splitKey, end: group.end });
          group.end = splitKey;
        } else {
          // A restart: the backlogs read from the disk are those kept in memory.
          const before = groups.map((g) => local.partitions.indexOutboxBacklog(g.groupId));
          await local.close();
          local = await openLocalStore({ dataDir: directory.path, indexOutbox: true });
          expect(groups.map((g) => local.partitions.indexOutboxBacklog(g.groupId))).toEqual(before);
        }
        await backlogsMatchDisk(local.partitions, groups.map((g) => g.groupId));
      }
      for (const group of groups) await runOutboxMove(local.partitions, marks.log(group.groupId));
      await backlogsMatchDisk(local.partitions, groups.map((g) => g.groupId));
      const total = groups.reduce((sum, g) => sum + local.partitions.indexOutboxBacklog(g.groupId), 0);
      expect(total).toBeGreaterThan(0);
      expect(groups.length).toBeGreaterThan(2);
    } finally {
      await local.close();
      await directory.remove();
    }
  }, 60_000);
});
