/**
 * The partition commands of asynchronous GSIs applied by PartitionReplica over a store with index
 * outboxes (no host: entries applied in log order by hand, as every replica applies them): writes fill
 * the group's outbox, trimIndexOutbox empties it, a split records the move of the right half's records
 * (moveIndexOutbox entries carry it out; the group's next split is refused until then) and copies
 * a GSI partition's cursors before the halves exist, and applyIndexEntries is decided by the group's
 * own splits (a record beyond a split applied before its entry refuses the whole entry, on every
 * replica alike). Malformed entries are refused as corrupt log entries.
 */
import { describe, expect, it } from 'vitest';
import { encodeItemKey, spaceRange, type Item, type PartitionDescriptor, type PartitionWrite, type TableSchema } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { PartitionCommandError, PartitionReplica, decodePartitionCommand, encodePartitionCommand, type AppliedSplit, type PartitionSplit } from '@shoal/node';

const S = (value: string) => ({ S: value });
const N = (value: number) => ({ N: String(value) });
const BY_CITY = { name: 'byCity', kind: 'GSI' as const, indexId: 41, hashKey: { name: 'city', type: 'S' as const }, projection: { type: 'ALL' as const } };
const TABLE: TableSchema = { name: 'people', tableId: 40, hashKey: { name: 'pk', type: 'S' }, indexes: [BY_CITY] };
const BASE = 3;
const GSI = 5;
const everything = { maxRecords: 10_000, maxBytes: 1 << 30 };
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const put = (pk: string, city: string): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), city: S(city) } }] });
const entryKey = (city: string, pk: string): Uint8Array => encodeItemKey(BY_CITY.indexId, S(city), S(pk));
const itemKey = (pk: string): Uint8Array => encodeItemKey(TABLE.tableId, S(pk));

const descriptor = (id: number): PartitionDescriptor => ({ id, tableId: TABLE.tableId, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: 2, replicas: [] });

async function withStore(run: (store: LocalStore) => Promise<void>): Promise<void> {
  const store = await openLocalStore({ inMemory: true, indexOutbox: true });
  try {
    await run(store);
  } finally {
    await store.close();
  }
}

const indexEntries = (sourceGroupId: number, records: Array<{ seq: number; city: string; pk: string; entry?: Item }>) =>
  encodePartitionCommand({
    kind: 'applyIndexEntries',
    sourceGroupId,
    records: records.map(({ seq, city, pk, entry }) => ({ seq, indexId: BY_CITY.indexId, entryKey: hex(entryKey(city, pk)), itemKey: hex(itemKey(pk)), ...(entry === undefined ? {} : { entry }) })),
  });

describe('PartitionReplica: asynchronous GSI commands', () => {
  it('writes fill the group\'s outbox; a trim entry empties it up to its seq', async () => {
    await withStore(async ({ partitions }) => {
      const replica = await PartitionReplica.open(BASE, partitions);
      await replica.apply(encodePartitionCommand({ kind: 'write', write: put('a', 'Oslo') }), 1);
      await replica.apply(encodePartitionCommand({ kind: 'write', write: put('a', 'Rome') }), 2);
      await replica.settled();
      expect((await partitions.readIndexOutbox(BASE, everything)).map((r) => [r.seq, hex(r.entryKey), r.entry !== undefined])).toEqual([
        [1, hex(entryKey('Oslo', 'a')), true],
        [2, hex(entryKey('Oslo', 'a')), false],
        [3, hex(entryKey('Rome', 'a')), true],
      ]);
      expect(await replica.apply(encodePartitionCommand({ kind: 'trimIndexOutbox', throughSeq: 2 }), 3)).toEqual({ trimmed: 2 });
      expect((await partitions.readIndexOutbox(BASE, everything)).map((r) => r.seq)).toEqual([3]);
      expect(await partitions.appliedIndex(BASE)).toBe(3);
    });
  });

  it('a split records the move of the right half\'s outbox records (entries move them, under their seqs; no other split until then) and copies the cursors before the halves exist', async () => {
    await withStore(async ({ partitions }) => {
      const splits: AppliedSplit[] = [];
      const seen: number[] = [];
      const pks = Array.from({ length: 12 }, (_, i) => `k${i}`);
      const splitKey = [...pks.map(itemKey)].sort(Buffer.compare)[6];
      const replica = await PartitionReplica.open(BASE, partitions, {
        splitsOf: () => splits,
        onSplit: async (split: PartitionSplit) => {
          // When the host creates the right half, its records are there already.
          seen.push((await partitions.readIndexOutbox(split.rightId, everything)).length);
          splits.push({ index: split.index, splitKey: split.splitKey });
          return { status: 'split', left: descriptor(BASE), right: descriptor(split.rightId) };
        },
      });
      let index = 0;
      for (const pk of pks) await replica.apply(encodePartitionCommand({ kind: 'write', write: put(pk, 'x') }), ++index);
      await replica.apply(indexEntries(77, [{ seq: 9, city: 'x', pk: 'k0' }]), ++index);
      await replica.settled();
      const before = await partitions.readIndexOutbox(BASE, everything);
      await replica.apply(encodePartitionCommand({ kind: 'split', splitKey: hex(splitKey), parentEnd: '', rightId: 8, epoch: 2 }), ++index);
      // The split's apply moved nothing: the move is recorded, for the group's entries to carry out.
      expect(seen).toEqual([0]);
      expect(await partitions.readIndexOutbox(BASE, everything)).toHaveLength(12);
      expect(await partitions.indexOutboxMove(BASE)).toMatchObject({ rightGroupId: 8, nextSeq: 1, throughSeq: 12 });
      expect(await partitions.indexCursor(8, 77)).toBe(9);
      // Another split of the group is refused until the move ended, on every replica alike.
      const lower = [...pks.map(itemKey)].sort(Buffer.compare)[3] as Uint8Array;
      const again = encodePartitionCommand({ kind: 'split', splitKey: hex(lower), parentEnd: hex(splitKey), rightId: 9, epoch: 3 });
      expect(await replica.apply(again, ++index)).toMatchObject({ status: 'refused', message: expect.stringMatching(/moving GSI outbox records/) });
      expect(await replica.apply(encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: 1, toSeq: 5 }), ++index)).toMatchObject({ status: 'moving' });
      // The same step proposed twice: stale.
      expect(await replica.apply(encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: 1, toSeq: 5 }), ++index)).toEqual({ status: 'stale', moved: 0 });
      expect(await replica.apply(encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: 6, toSeq: 12 }), ++index)).toMatchObject({ status: 'done' });
      expect(await partitions.appliedIndex(BASE)).toBe(index);
      const left = await partitions.readIndexOutbox(BASE, everything);
      const right = await partitions.readIndexOutbox(8, everything);
      expect(left.every((r) => Buffer.compare(r.itemKey, splitKey) < 0)).toBe(true);
      expect(right.every((r) => Buffer.compare(r.itemKey, splitKey) >= 0)).toBe(true);
      expect(right.map((r) => r.seq)).toEqual(before.filter((r) => Buffer.compare(r.itemKey, splitKey) >= 0).map((r) => r.seq));
      expect(right).toHaveLength(6);
      // Now the group splits again.
      expect(await replica.apply(encodePartitionCommand({ kind: 'split', splitKey: hex(lower), parentEnd: hex(splitKey), rightId: 9, epoch: 3 }), ++index)).toMatchObject({ status: 'split' });
    });
  });

  it('replicas applying the parent\'s move step and the right half\'s trim in either order end with the same outboxes: a trimmed record never comes back', async () => {
    const ends: Array<{ right: number[]; held: number }> = [];
    for (const trimFirst of [false, true]) {
      await withStore(async ({ partitions }) => {
        const splits: AppliedSplit[] = [];
        const pks = Array.from({ length: 12 }, (_, i) => `k${i}`);
        const splitKey = [...pks.map(itemKey)].sort(Buffer.compare)[6]!;
        const parent = await PartitionReplica.open(BASE, partitions, {
          splitsOf: () => splits,
          onSplit: async (split: PartitionSplit) => {
            splits.push({ index: split.index, splitKey: split.splitKey });
            return { status: 'split', left: descriptor(BASE), right: descriptor(split.rightId) };
          },
        });
        const right = await PartitionReplica.open(8, partitions);
        let index = 0;
        for (const pk of pks) await parent.apply(encodePartitionCommand({ kind: 'write', write: put(pk, 'x') }), ++index);
        await parent.settled();
        await parent.apply(encodePartitionCommand({ kind: 'split', splitKey: hex(splitKey), parentEnd: '', rightId: 8, epoch: 2 }), ++index);
        // The right half's leader (its node done with the move) shipped and trimmed through seq 8; this replica gets that trim before or after the parent's step.
        const move = encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: 1, toSeq: 12 });
        const trim = encodePartitionCommand({ kind: 'trimIndexOutbox', throughSeq: 8 });
        if (trimFirst) await right.apply(trim, 1);
        await parent.apply(move, ++index);
        if (!trimFirst) await right.apply(trim, 1);
        ends.push({ right: (await partitions.readIndexOutbox(8, everything)).map((r) => r.seq), held: partitions.indexOutboxBacklog(8) });
      });
    }
    expect(ends[1]).toEqual(ends[0]);
    expect(ends[0]!.right.length).toBeGreaterThan(0);
    expect(ends[0]!.right.every((seq) => seq > 8)).toBe(true);
    expect(ends[0]!.held).toBe(ends[0]!.right.length);
  });

  it('a split applied again after a crash between recording its outbox move and recording the split goes on (not refused as a second split)', async () => {
    await withStore(async ({ partitions }) => {
      const splits: AppliedSplit[] = [];
      const pks = Array.from({ length: 12 }, (_, i) => `k${i}`);
      const splitKey = [...pks.map(itemKey)].sort(Buffer.compare)[6];
      const replica = await PartitionReplica.open(BASE, partitions, {
        splitsOf: () => splits,
        onSplit: async (split: PartitionSplit) => {
          splits.push({ index: split.index, splitKey: split.splitKey });
          return { status: 'split', left: descriptor(BASE), right: descriptor(split.rightId) };
        },
      });
      let index = 0;
      for (const pk of pks) await replica.apply(encodePartitionCommand({ kind: 'write', write: put(pk, 'x') }), ++index);
      await replica.settled();
      // The crash: the split's outbox move is on disk, the split itself (the host's record, the applied mark) is not.
      await partitions.splitIndexOutbox(BASE, 8, splitKey);
      const split = encodePartitionCommand({ kind: 'split', splitKey: hex(splitKey), parentEnd: '', rightId: 8, epoch: 2 });
      expect(await replica.apply(split, ++index)).toMatchObject({ status: 'split' });
      expect(splits).toHaveLength(1);
      expect(await partitions.indexOutboxMove(BASE)).toMatchObject({ rightGroupId: 8, nextSeq: 1, throughSeq: 12 });
    });
  });

  it('applies shipped records once, and refuses a whole entry with a key beyond a split applied before it', async () => {
    await withStore(async ({ partitions }) => {
      const splits: AppliedSplit[] = [];
      const replica = await PartitionReplica.open(GSI, partitions, { splitsOf: () => splits });
      const entry = (pk: string, city: string): Item => ({ pk: S(pk), city: S(city) });
      const first = indexEntries(BASE, [{ seq: 1, city: 'Oslo', pk: 'a', entry: entry('a', 'Oslo') }, { seq: 2, city: 'Zurich', pk: 'b', entry: entry('b', 'Zurich') }]);
      expect(await replica.apply(first, 1)).toEqual({ status: 'applied', applied: 2, skipped: 0 });
      expect(await replica.apply(first, 2)).toEqual({ status: 'applied', applied: 0, skipped: 2 });
      // The group split at entry 3, between the two keys: an entry after it with the higher key applies nothing.
      const [low, high] = [entryKey('Oslo', 'a'), entryKey('Zurich', 'b')].sort(Buffer.compare);
      splits.push({ index: 3, splitKey: high });
      const lowCity = Buffer.compare(low, entryKey('Oslo', 'a')) === 0 ? 'Oslo' : 'Zurich';
      const highCity = lowCity === 'Oslo' ? 'Zurich' : 'Oslo';
      const later = indexEntries(BASE, [{ seq: 3, city: lowCity, pk: lowCity === 'Oslo' ? 'a' : 'b' }, { seq: 4, city: highCity, pk: highCity === 'Oslo' ? 'a' : 'b' }]);
      expect(await replica.apply(later, 4)).toEqual({ status: 'outOfRange', applied: 0, skipped: 0 });
      expect(await partitions.indexCursor(GSI, BASE)).toBe(2);
      expect(await partitions.appliedIndex(GSI)).toBe(4);
      // Before the split (a replay deciding entry 2 again) the same records would have applied.
      const space = spaceRange(BY_CITY.indexId);
      expect((await partitions.indexPartitionStatistics(BY_CITY, { start: space.start, end: space.end })).itemCount).toBe(2);
    });
  });

  it('a resolve proposed before a split resolves only the intents the group still owns at its entry', async () => {
    await withStore(async ({ partitions }) => {
      const splits: AppliedSplit[] = [];
      const replica = await PartitionReplica.open(BASE, partitions, { splitsOf: () => splits });
      const [low, high] = ['a', 'b', 'c', 'd'].sort((x, y) => Buffer.compare(itemKey(x), itemKey(y)));
      const transaction = { id: 'tx', coordinator: BASE, deadline: 4_000_000_000_000 };
      const write: PartitionWrite = { operations: [put(low, 'Oslo').operations[0], put(high, 'Rome').operations[0]] };
      expect(await replica.apply(encodePartitionCommand({ kind: 'prepareTransaction', transaction, write }), 1)).toMatchObject({ applied: true });
      splits.push({ index: 2, splitKey: itemKey(high) });
      const resolve = { kind: 'resolveTransaction' as const, transactionId: 'tx', commit: true, bound: { start: '', end: '' } };
      expect(await replica.apply(encodePartitionCommand(resolve), 3)).toMatchObject({ intents: 1 });
      // Only the low item's GSI record entered this group's outbox; the high one's intent waits for the right half.
      expect((await partitions.readIndexOutbox(BASE, everything)).map((r) => hex(r.itemKey))).toEqual([hex(itemKey(low))]);
      expect((await partitions.transactionsWithIntents()).flatMap((t) => t.itemKeys.map(hex))).toEqual([hex(itemKey(high))]);
    });
  });

  it('a backfill entry only records the backfill; its chunk entries walk it, a split in between hands the right half the rest, and the command resolves once both ended', async () => {
    await withStore(async ({ partitions }) => {
      const splits: AppliedSplit[] = [];
      const pks = Array.from({ length: 10 }, (_, i) => `k${i}`);
      const sorted = pks.map(itemKey).sort(Buffer.compare);
      const options = { splitsOf: () => splits, backfillChunk: { maxItems: 3, maxBytes: 1 << 20 } };
      const replica = await PartitionReplica.open(BASE, partitions, {
        ...options,
        onSplit: async (split: PartitionSplit) => {
          splits.push({ index: split.index, splitKey: split.splitKey });
          return { status: 'refused', message: 'not needed here' };
        },
      });
      const right = await PartitionReplica.open(8, partitions, options);
      const withoutIndex: TableSchema = { ...TABLE, indexes: [] };
      let index = 0;
      for (const pk of pks) await replica.apply(encodePartitionCommand({ kind: 'write', write: { operations: [{ table: withoutIndex, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), city: S('x') } }] } }), ++index);
      await replica.settled();
      const started = await replica.apply(encodePartitionCommand({ kind: 'backfillIndex', table: TABLE, indexName: BY_CITY.name }), ++index);
      expect(started).toMatchObject({ status: 'started' });
      let ended = false;
      if ('status' in started && started.status === 'started') void started.done.then(() => (ended = true));
      expect(await partitions.readIndexOutbox(BASE, everything)).toEqual([]);
      const chunk = async (on: PartitionReplica, groupId: number, at: number) => {
        const [backfill] = await partitions.runningIndexBackfills(groupId);
        return on.apply(encodePartitionCommand({ kind: 'backfillChunk', indexId: BY_CITY.indexId, fromKey: hex(backfill?.nextKey ?? new Uint8Array()) }), at);
      };
      expect(await chunk(replica, BASE, ++index)).toEqual({ status: 'walked', items: 3 });
      // Split at the 6th item, ahead of the walk: the left walks up to it, the right from it.
      await replica.apply(encodePartitionCommand({ kind: 'split', splitKey: hex(sorted[5] as Uint8Array), parentEnd: '', rightId: 8, epoch: 2 }), ++index);
      expect(await chunk(replica, BASE, ++index)).toEqual({ status: 'done', items: 2 });
      expect(await partitions.runningIndexBackfills(BASE)).toEqual([]);
      expect(await partitions.runningIndexBackfills(8)).toHaveLength(1);
      expect(ended).toBe(false);
      expect(await chunk(right, 8, 1)).toEqual({ status: 'walked', items: 3 });
      expect(await chunk(right, 8, 2)).toEqual({ status: 'done', items: 2 });
      if ('status' in started && started.status === 'started') await started.done;
      expect(ended).toBe(true);
      expect((await partitions.readIndexOutbox(BASE, everything)).map((r) => hex(r.itemKey))).toEqual(sorted.slice(0, 5).map(hex));
      expect((await partitions.readIndexOutbox(8, everything)).map((r) => hex(r.itemKey))).toEqual(sorted.slice(5).map(hex));
      expect([await partitions.appliedIndex(BASE), await partitions.appliedIndex(8)]).toEqual([index, 2]);
    });
  });

  it('refuses malformed GSI entries as corrupt log entries', () => {
    const bad = (command: object): Uint8Array => new TextEncoder().encode(JSON.stringify(command));
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'applyIndexEntries', sourceGroupId: 2, records: [{ seq: 1, indexId: 3, entryKey: 'aa' }] }))).toThrow(PartitionCommandError);
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'applyIndexEntries', records: [] }))).toThrow(/without their source/);
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'applyIndexEntries', sourceGroupId: 2, records: [], fences: [{ sourceGroupId: 1 }] }))).toThrow(PartitionCommandError);
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'moveIndexOutbox', fromSeq: 1 }))).toThrow(PartitionCommandError);
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'trimIndexOutbox', throughSeq: 'x' }))).toThrow(/trim without its seq/);
    expect(decodePartitionCommand(1, 1, bad({ kind: 'trimIndexOutbox', throughSeq: 4 }))).toEqual({ kind: 'trimIndexOutbox', throughSeq: 4 });
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'backfillChunk', indexId: 4 }))).toThrow(/backfill chunk without its index and key/);
    expect(decodePartitionCommand(1, 1, bad({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab' }))).toEqual({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab' });
    // With the node that proposed it (logs written before it had none); a bad one, only a metric's, is left out.
    expect(decodePartitionCommand(1, 1, bad({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab', proposer: 2 }))).toEqual({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab', proposer: 2 });
    for (const proposer of ['2', -1.5, 2.5]) {
      expect(decodePartitionCommand(1, 1, bad({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab', proposer }))).toEqual({ kind: 'backfillChunk', indexId: 4, fromKey: 'ab' });
    }
    // A backfill command with or without the GSI's creation map version (logs written before it had none); a bad one is corrupt.
    const table = { name: 't', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    expect(decodePartitionCommand(1, 1, bad({ kind: 'backfillIndex', table, indexName: 'g' }))).toEqual({ kind: 'backfillIndex', table, indexName: 'g' });
    expect(decodePartitionCommand(1, 1, bad({ kind: 'backfillIndex', table, indexName: 'g', indexCreatedAtMapVersion: 12 }))).toEqual({ kind: 'backfillIndex', table, indexName: 'g', indexCreatedAtMapVersion: 12 });
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'backfillIndex', table, indexName: 'g', indexCreatedAtMapVersion: '12' }))).toThrow(/bad index creation version/);
    expect(() => decodePartitionCommand(1, 1, bad({ kind: 'backfillIndex', table, indexName: 'g', indexCreatedAtMapVersion: 0 }))).toThrow(/bad index creation version/);
  });
});
