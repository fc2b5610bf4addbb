import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompactedError, SnapshotOutOfDateError, UnavailableError, type Entry, type Snapshot } from '@shoal/raft';
import { ClassicLevel } from 'classic-level';
import { RaftLogCorruptionError, RaftLogStore } from '../src/index.ts';
import { entryKey, KIND_LOG_OFFSET, recordKey } from '../src/raft-log/codec.ts';
import { DiskFaults } from '../src/raft-log/disk-faults.ts';
import { entriesOfTerms, entry, tempDir, termsAndIndexes as ti } from './support/raft-log.ts';

function snapshot(index: number, term: number, data = new Uint8Array(0)): Snapshot {
  return {
    metadata: { index, term, confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false } },
    data,
  };
}

let dir: string;
let cleanup: () => Promise<void>;
let store: RaftLogStore;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('raft-log'));
  store = await RaftLogStore.open(dir);
});

afterEach(async () => {
  await store.close();
  await cleanup();
});

async function reopen(options = {}): Promise<void> {
  await store.close();
  store = await RaftLogStore.open(dir, options);
}

describe('GroupLogStorage: the Storage contract (as MemoryStorage)', () => {
  it('serves entries and terms, and reports compaction and unavailability, before and after reopen', async () => {
    await store.createGroup(7, { confState: { voters: [1] } });
    await store.persist([{ groupId: 7, entries: entriesOfTerms(1, 1, 2, 3) }]);
    let s = store.group(7);
    expect([s.firstIndex(), s.lastIndex(), s.term(4)]).toEqual([1, 4, 3]);
    await store.compact(7, 2);
    for (const phase of ['live', 'reopened']) {
      if (phase === 'reopened') await reopen();
      s = store.group(7);
      expect([s.firstIndex(), s.lastIndex(), s.term(2)]).toEqual([3, 4, 1]);
      expect(() => s.term(1)).toThrow(CompactedError);
      expect(() => s.term(5)).toThrow(UnavailableError);
      expect(() => s.entries(2, 4, Infinity)).toThrow(CompactedError);
      expect(() => s.entries(3, 6, Infinity)).toThrow(/out of bound/);
      expect(ti(s.entries(3, 5, Infinity))).toEqual([[2, 3], [3, 4]]);
      expect(new TextDecoder().decode(s.entries(4, 5, Infinity)[0].data)).toBe('e4');
      await expect(store.compact(7, 2)).rejects.toThrow(CompactedError);
      await expect(store.compact(7, 5)).rejects.toThrow(/out of bound/);
    }
  });

  it('an empty log answers UnavailableError for entries and term 0 at its offset', async () => {
    const s = await store.createGroup(1, { confState: { voters: [1] } });
    expect([s.firstIndex(), s.lastIndex(), s.term(0)]).toEqual([1, 0, 0]);
    expect(() => s.entries(1, 1, Infinity)).toThrow(UnavailableError);
    expect(() => s.term(1)).toThrow(UnavailableError);
  });

  it('append overwrites a conflicting suffix and skips compacted entries, on disk too', async () => {
    await store.createGroup(1, { confState: { voters: [1] } });
    await store.persist([{ groupId: 1, entries: entriesOfTerms(1, 1, 1) }]);
    await store.persist([{ groupId: 1, entries: [entry(2, 2), entry(2, 3), entry(2, 4)] }]);
    expect(ti(store.group(1).entries(1, 5, Infinity))).toEqual([[1, 1], [2, 2], [2, 3], [2, 4]]);
    await store.compact(1, 3);
    await store.persist([{ groupId: 1, entries: [entry(2, 2), entry(2, 3), entry(2, 4), entry(2, 5)] }]);
    expect(ti(store.group(1).entries(4, 6, Infinity))).toEqual([[2, 4], [2, 5]]);
    await expect(store.persist([{ groupId: 1, entries: [entry(2, 9)] }])).rejects.toThrow(/missing log entry/);
    // A shorter conflicting suffix removes the longer one's tail from LevelDB as well.
    await store.persist([{ groupId: 1, entries: [entry(3, 5), entry(3, 6), entry(3, 7)] }]);
    await store.persist([{ groupId: 1, entries: [entry(4, 5)] }]);
    await reopen();
    const s = store.group(1);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([4, 5]);
    expect(ti(s.entries(4, 6, Infinity))).toEqual([[2, 4], [4, 5]]);
    expect(() => s.term(6)).toThrow(UnavailableError);
  });

  it('creates snapshots, refuses older ones, and a received snapshot replaces the log', async () => {
    await store.createGroup(1, { confState: { voters: [1] } });
    await store.persist([{ groupId: 1, entries: entriesOfTerms(1, 1, 2) }]);
    const created = await store.createSnapshot(1, 2, undefined, new Uint8Array([9]));
    expect(created.metadata).toEqual({ index: 2, term: 1, confState: store.group(1).initialState().confState });
    await expect(store.createSnapshot(1, 2, undefined, new Uint8Array())).rejects.toThrow(SnapshotOutOfDateError);
    await expect(store.persist([{ groupId: 1, snapshot: snapshot(1, 1) }])).rejects.toThrow(SnapshotOutOfDateError);
    await store.persist([{ groupId: 1, snapshot: snapshot(10, 3, new Uint8Array([1, 2, 3])), entries: [entry(3, 11, 'after')] }]);
    for (const phase of ['live', 'reopened']) {
      if (phase === 'reopened') await reopen();
      const s = store.group(1);
      expect([s.firstIndex(), s.lastIndex(), s.term(10), s.term(11)]).toEqual([11, 11, 3, 3]);
      expect(() => s.term(9)).toThrow(CompactedError);
      expect(s.snapshot()).toEqual(snapshot(10, 3, new Uint8Array([1, 2, 3])));
      expect(s.initialState().confState.voters).toEqual([1, 2, 3]);
    }
  });

  it('limits entries by bytes as raft does (data + 24 each, at least one)', async () => {
    await store.createGroup(1);
    await store.persist([{ groupId: 1, entries: [entry(1, 1, 'aaaa'), entry(1, 2, 'bbbb'), entry(1, 3, 'cccc')] }]);
    const s = store.group(1);
    expect(s.entries(1, 4, 0)).toHaveLength(1);
    expect(s.entries(1, 4, 56)).toHaveLength(2);
    expect(s.entries(1, 4, Infinity)).toHaveLength(3);
  });

  it('serves entries beyond the tail cache from LevelDB, byte for byte', async () => {
    await reopen({ tailCacheBytes: 200 });
    await store.createGroup(1);
    const written: Entry[] = [];
    for (let i = 1; i <= 60; i++) written.push(entry(1 + Math.floor(i / 20), i, `payload-${i}-${'x'.repeat(i % 13)}`));
    for (let i = 0; i < 60; i += 6) await store.persist([{ groupId: 1, entries: written.slice(i, i + 6) }]);
    const s = store.group(1);
    expect(s.entries(1, 61, Infinity)).toEqual(written);
    expect(s.term(19)).toBe(1);
    expect(s.term(20)).toBe(2);
    // Overwriting below the cached tail: the new suffix is served, the old one is gone.
    await store.persist([{ groupId: 1, entries: [entry(9, 5, 'new5')] }]);
    expect(s.entries(1, 6, Infinity)).toEqual([...written.slice(0, 4), entry(9, 5, 'new5')]);
    await store.persist([{ groupId: 1, entries: [entry(9, 6, 'new6')] }]);
    await reopen({ tailCacheBytes: 0 });
    expect(store.group(1).entries(1, 7, Infinity)).toEqual([...written.slice(0, 4), entry(9, 5, 'new5'), entry(9, 6, 'new6')]);
  });
});

describe('RaftLogStore', () => {
  it('serves staged entries before they are durable, and evicts only what LevelDB holds', async () => {
    await reopen({ tailCacheBytes: 0 });
    await store.createGroup(1);
    const first = entriesOfTerms(1, 1, 1, 1, 1);
    const second = [6, 7, 8, 9, 10].map((i) => entry(2, i, `e${i}`));
    const writingFirst = store.persist([{ groupId: 1, entries: first }]);
    const writingSecond = store.persist([{ groupId: 1, entries: second }]);
    expect(store.group(1).entries(1, 11, Infinity)).toEqual([...first, ...second]);
    await writingFirst;
    // The second batch is still being written: its entries must still come from memory.
    expect(store.group(1).entries(1, 11, Infinity)).toEqual([...first, ...second]);
    await writingSecond;
    expect(store.group(1).entries(1, 11, Infinity)).toEqual([...first, ...second]);
  });

  it('persists a tick of many groups in one synced batch, and calls during a write share the next', async () => {
    for (let g = 1; g <= 100; g++) await store.bootstrapGroup(g, { voters: [1, 2, 3] }, new Uint8Array([g]));
    const before = store.stats.syncedBatches;
    const batchesBefore = store.stats.batches;
    await store.persist(
      Array.from({ length: 100 }, (_, k) => ({
        groupId: k + 1,
        hardState: { term: 2, vote: 1, commit: 1 },
        entries: [entry(2, 2, `g${k + 1}`), entry(2, 3, `h${k + 1}`)],
      })),
    );
    expect(store.stats.syncedBatches - before).toBe(1);
    const calls = Array.from({ length: 10 }, (_, k) =>
      store.persist([{ groupId: k + 1, entries: [entry(2, 4, `late${k}`)], hardState: { term: 2, vote: 1, commit: 3 } }]),
    );
    await Promise.all(calls);
    expect(store.stats.syncedBatches - before).toBe(3);
    // A tick with only commit-index changes may skip the fsync: it is not written on its own, but
    // with the next batch.
    await store.persist([{ groupId: 1, hardState: { term: 2, vote: 1, commit: 4 } }], { sync: false });
    expect(store.stats.batches - batchesBefore).toBe(3);
    await store.persist([{ groupId: 1, hardState: { term: 2, vote: 1, commit: 3 } }]);
    expect([store.stats.batches - batchesBefore, store.stats.syncedBatches - before]).toEqual([4, 4]);
    const live = store.listGroups();
    await reopen();
    expect(store.listGroups()).toEqual(live);
    expect(live).toHaveLength(100);
    expect(live[0]).toEqual({
      groupId: 1,
      hardState: { term: 2, vote: 1, commit: 3 },
      confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      snapshotIndex: 1,
      firstIndex: 2,
      lastIndex: 4,
    });
    expect(live[99].lastIndex).toBe(3);
    expect(store.group(42).entries(2, 4, Infinity)).toEqual([entry(2, 2, 'g42'), entry(2, 3, 'h42')]);
    expect(store.group(7).snapshot().data).toEqual(new Uint8Array([7]));
  });

  it('writes commit-index-only hard states with the next batch, in call order, or at close', async () => {
    for (const g of [1, 2]) await store.bootstrapGroup(g, { voters: [1] }, new Uint8Array([g]));
    await store.persist([{ groupId: 1, entries: [entry(1, 2), entry(1, 3), entry(1, 4)], hardState: { term: 1, vote: 1, commit: 1 } }]);
    const batches = store.stats.batches;
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 2 } }], { sync: false });
    await store.persist([{ groupId: 2, hardState: { term: 1, vote: 1, commit: 1 } }, { groupId: 1, hardState: { term: 1, vote: 1, commit: 3 } }], { sync: false });
    expect(store.stats.batches).toBe(batches);
    expect(store.group(1).initialState().hardState.commit).toBe(3);
    // The next write carries them, before its own writes.
    await store.persist([{ groupId: 2, entries: [entry(1, 2)] }]);
    expect(store.stats.batches).toBe(batches + 1);
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 4 } }], { sync: false });
    await reopen();
    expect(store.listGroups().map((g) => [g.groupId, g.hardState.commit])).toEqual([
      [1, 4],
      [2, 1],
    ]);
  });

  it('puts a commit-index-only hard state into the batch forming behind a write in flight', async () => {
    await store.bootstrapGroup(1, { voters: [1] }, new Uint8Array([1]));
    const batches = store.stats.batches;
    // The first call's batch is being written; the second forms behind it and takes the third.
    const calls = [
      store.persist([{ groupId: 1, entries: [entry(1, 2)], hardState: { term: 1, vote: 1, commit: 1 } }]),
      store.persist([{ groupId: 1, entries: [entry(1, 3)] }]),
      store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 3 } }], { sync: false }),
    ];
    await Promise.all(calls);
    expect(store.stats.batches - batches).toBe(2);
    await reopen();
    expect(store.group(1).initialState().hardState.commit).toBe(3);
  });

  it('a group removed after a deferred commit index stays removed after reopen (no hard state resurrected)', async () => {
    for (const g of [1, 2, 3]) {
      await store.bootstrapGroup(g, { voters: [1] }, new Uint8Array([g]));
      await store.persist([{ groupId: g, entries: [entry(1, 2), entry(1, 3)], hardState: { term: 1, vote: 1, commit: 1 } }]);
    }
    // Group 1: deferred with no batch forming, then removed.
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 3 } }], { sync: false });
    await store.removeGroup(1);
    // Group 2: deferred into the batch forming behind a write in flight, then removed in that batch.
    const calls = [
      store.persist([{ groupId: 3, entries: [entry(1, 4)] }]),
      store.persist([{ groupId: 3, entries: [entry(1, 5)] }]),
      store.persist([{ groupId: 2, hardState: { term: 1, vote: 1, commit: 3 } }], { sync: false }),
      store.removeGroup(2),
    ];
    await Promise.all(calls);
    await reopen();
    expect(store.listGroups().map((g) => [g.groupId, g.lastIndex])).toEqual([[3, 5]]);
  });

  it('a snapshot and compaction after a deferred commit index never reach the disk without it', async () => {
    const faults = new DiskFaults();
    await reopen({ beforeWrite: faults.beforeWrite });
    await store.bootstrapGroup(1, { voters: [1] }, new Uint8Array([1]));
    await store.persist([{ groupId: 1, entries: [entry(1, 2), entry(1, 3), entry(1, 4)], hardState: { term: 1, vote: 1, commit: 1 } }]);
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 4 } }], { sync: false });
    await store.createSnapshot(1, 4, undefined, new Uint8Array([4]));
    await store.compact(1, 4);
    // As a crash here: close() can write nothing more.
    faults.full();
    await store.close();
    await reopen();
    const [group] = store.listGroups();
    expect([group.snapshotIndex, group.firstIndex, group.lastIndex]).toEqual([4, 5, 4]);
    expect(group.hardState.commit).toBeGreaterThanOrEqual(group.snapshotIndex);
  });

  it('close() after a failed write resolves and leaves the disk a prefix of the calls', async () => {
    const faults = new DiskFaults();
    await reopen({ beforeWrite: faults.beforeWrite });
    await store.bootstrapGroup(1, { voters: [1] }, new Uint8Array([1]));
    await store.persist([{ groupId: 1, entries: [entry(1, 2)], hardState: { term: 1, vote: 1, commit: 1 } }]);
    // The next write waits, then fails (the mode is read after the wait); a commit index covering
    // its entries is deferred meanwhile, after it in call order.
    faults.slow(20);
    const failing = store.persist([{ groupId: 1, entries: [entry(1, 3), entry(1, 4)] }]);
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 4 } }], { sync: false });
    faults.full();
    await expect(failing).rejects.toThrow(/ENOSPC/);
    await expect(store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 2 } }], { sync: false })).rejects.toThrow(/stopped after a failed write/);
    // A healed disk takes nothing staged after the failed batch.
    faults.heal();
    await expect(store.close()).resolves.toBeUndefined();
    await reopen();
    expect(store.listGroups().map((g) => [g.lastIndex, g.hardState.commit])).toEqual([[2, 1]]);
  });

  it('close() with a deferred commit index and a failing disk resolves; a reopen sees the calls before it', async () => {
    const faults = new DiskFaults();
    await reopen({ beforeWrite: faults.beforeWrite });
    await store.bootstrapGroup(1, { voters: [1] }, new Uint8Array([1]));
    await store.persist([{ groupId: 1, entries: [entry(1, 2), entry(1, 3)], hardState: { term: 1, vote: 1, commit: 1 } }]);
    await store.persist([{ groupId: 1, hardState: { term: 1, vote: 1, commit: 3 } }], { sync: false });
    faults.full();
    await expect(store.close()).resolves.toBeUndefined();
    await reopen();
    expect(store.listGroups().map((g) => [g.lastIndex, g.hardState.commit])).toEqual([[3, 1]]);
  });

  it('rejects a whole call when one update cannot apply, changing nothing', async () => {
    await store.createGroup(1);
    await expect(store.persist([{ groupId: 1, entries: [entry(1, 1)] }, { groupId: 2, entries: [] }])).rejects.toThrow(/no group 2/);
    await expect(
      store.persist([
        { groupId: 1, entries: [entry(1, 1)] },
        { groupId: 1, entries: [entry(1, 3)] },
      ]),
    ).rejects.toThrow(/missing log entry/);
    expect(store.group(1).lastIndex()).toBe(0);
    await expect(store.createGroup(1)).rejects.toThrow(/already has group 1/);
  });

  it('removes a group and keeps its neighbours', async () => {
    for (const g of [1, 2, 3, 256, 2 ** 40]) {
      await store.createGroup(g, { confState: { voters: [1] } });
      await store.persist([{ groupId: g, entries: entriesOfTerms(1, 1, 1), hardState: { term: 1, vote: 1, commit: 2 } }]);
    }
    await store.removeGroup(2);
    expect(store.hasGroup(2)).toBe(false);
    await reopen();
    expect(store.listGroups().map((g) => [g.groupId, g.lastIndex])).toEqual([[1, 3], [3, 3], [256, 3], [2 ** 40, 3]]);
    await store.createGroup(2);
    expect(store.group(2).lastIndex()).toBe(0);
  });

  it('refuses to open a database with a gap in a log or a group without its records', async () => {
    await store.createGroup(5);
    await store.persist([{ groupId: 5, entries: entriesOfTerms(1, 1, 1) }]);
    await store.close();
    const tamper = async (change: (level: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> => {
      const level = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
      await level.open();
      await change(level);
      await level.close();
    };
    await tamper((level) => level.del(entryKey(5, 2)));
    await expect(RaftLogStore.open(dir)).rejects.toThrow(/group 5 has entry 3 after 1/);
    await tamper((level) => level.del(recordKey(5, KIND_LOG_OFFSET)));
    await expect(RaftLogStore.open(dir)).rejects.toThrow(RaftLogCorruptionError);
    await tamper((level) => level.clear());
    store = await RaftLogStore.open(dir);
    expect(store.listGroups()).toEqual([]);
  });
});
