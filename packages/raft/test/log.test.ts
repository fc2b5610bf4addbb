import { describe, expect, it } from 'vitest';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from '../src/errors.ts';
import { limitSize, RaftLog, Unstable } from '../src/log.ts';
import { MemoryStorage } from '../src/storage.ts';
import type { Snapshot } from '../src/types.ts';
import { entriesOfTerms, entry, storageWith } from './support/raft.ts';

const ti = (ents: { term: number; index: number }[]) => ents.map((e) => [e.term, e.index]);

function snapshot(index: number, term: number): Snapshot {
  return {
    metadata: { index, term, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
    data: new Uint8Array(0),
  };
}

describe('RaftLog', () => {
  const log = (...terms: number[]) => new RaftLog(storageWith([1], entriesOfTerms(...terms)), Infinity);

  it('spans storage and unstable entries', () => {
    const l = log(1, 1, 2);
    l.append([entry(3, 4), entry(3, 5)]);
    expect([l.firstIndex(), l.lastIndex(), l.lastTerm()]).toEqual([1, 5, 3]);
    expect(ti(l.slice(2, 5, Infinity))).toEqual([[1, 2], [2, 3], [3, 4]]);
    expect(l.term(0)).toBe(0);
    expect(() => l.term(6)).toThrow(UnavailableError);
    expect(l.maybeTerm(6)).toBeUndefined();
  });

  it.each([
    { ents: [[1, 1], [2, 2], [3, 3]], conflict: 0 },
    { ents: [[2, 2], [3, 3]], conflict: 0 },
    { ents: [[3, 3]], conflict: 0 },
    { ents: [[1, 1], [2, 2], [3, 3], [4, 4], [4, 5]], conflict: 4 },
    { ents: [[4, 4], [4, 5]], conflict: 4 },
    { ents: [[1, 1], [4, 2], [4, 3]], conflict: 2 },
    { ents: [[4, 3], [4, 4]], conflict: 3 },
  ])('findConflict($ents) = $conflict', ({ ents, conflict }) => {
    expect(log(1, 2, 3).findConflict(ents.map(([t, i]) => entry(t, i)))).toBe(conflict);
  });

  it.each([
    // log terms [1,1,2,2,5]: the largest index <= i with term <= t
    { index: 5, term: 5, want: { index: 5, term: 5 } },
    { index: 5, term: 4, want: { index: 4, term: 2 } },
    { index: 5, term: 2, want: { index: 4, term: 2 } },
    { index: 5, term: 1, want: { index: 2, term: 1 } },
    { index: 5, term: 0, want: { index: 0, term: 0 } },
    { index: 3, term: 1, want: { index: 2, term: 1 } },
  ])('findConflictByTerm($index, $term)', ({ index, term, want }) => {
    expect(log(1, 1, 2, 2, 5).findConflictByTerm(index, term)).toEqual(want);
  });

  it('findConflictByTerm answers term 0 below the compaction point', () => {
    const s = storageWith([1], entriesOfTerms(1, 1, 2, 2, 5));
    s.compact(3);
    const l = new RaftLog(s, Infinity);
    expect(l.findConflictByTerm(5, 1)).toEqual({ index: 2, term: 0 });
  });

  it.each([
    // matching prev: append, commit up to min(commit, last new)
    { prev: [3, 3], commit: 3, ents: [] as number[][], last: 3, ok: true },
    { prev: [3, 3], commit: 4, ents: [[4, 4]], last: 4, ok: true },
    { prev: [3, 3], commit: 5, ents: [[4, 4]], last: 4, ok: true },
    { prev: [2, 2], commit: 3, ents: [[3, 3]], last: 3, ok: true },
    // mismatching prev term or missing prev
    { prev: [2, 3], commit: 3, ents: [[4, 4]], last: 0, ok: false },
    { prev: [3, 4], commit: 3, ents: [[4, 5]], last: 0, ok: false },
  ])('maybeAppend after $prev with commit $commit', ({ prev, commit, ents, last, ok }) => {
    const l = log(1, 2, 3);
    l.commitTo(1);
    const got = l.maybeAppend(prev[1], prev[0], commit, ents.map(([t, i]) => entry(t, i)));
    expect(got).toBe(ok ? last : undefined);
    if (ok) expect(l.committed).toBe(Math.min(commit, last));
  });

  it('refuses to truncate committed entries', () => {
    const l = log(1, 2, 3);
    l.commitTo(3);
    expect(() => l.maybeAppend(1, 1, 3, [entry(4, 2)])).toThrow(/conflicts with committed/);
  });

  it('only commits an index of the given term, and never past the log', () => {
    const l = log(1, 2, 3);
    expect(l.maybeCommit(3, 2)).toBe(false);
    expect(l.maybeCommit(2, 2)).toBe(true);
    expect(l.committed).toBe(2);
    expect(() => l.commitTo(4)).toThrow(/out of range/);
  });

  it('isUpToDate compares last term, then length (§5.4.1)', () => {
    const l = log(1, 2, 3);
    expect(l.isUpToDate(3, 3)).toBe(true);
    expect(l.isUpToDate(2, 3)).toBe(false);
    expect(l.isUpToDate(1, 4)).toBe(true);
    expect(l.isUpToDate(9, 2)).toBe(false);
  });

  it('hands out unstable and committed entries once, tracking persistence and application', () => {
    const l = log();
    l.append([entry(1, 1), entry(1, 2)]);
    expect(ti(l.nextUnstableEntries())).toEqual([[1, 1], [1, 2]]);
    l.unstable.acceptInProgress();
    expect(l.nextUnstableEntries()).toEqual([]);
    l.commitTo(2);
    expect(ti(l.nextCommittedEntries())).toEqual([[1, 1], [1, 2]]);
    l.acceptApplying(2);
    expect(l.hasNextCommittedEntries()).toBe(false);
    l.stableTo(2, 1);
    expect(l.unstable.entries).toEqual([]);
    l.appliedTo(2);
    expect(l.applied).toBe(2);
  });

  it('ignores stableTo for an entry overwritten meanwhile', () => {
    const l = log();
    l.append([entry(1, 1), entry(1, 2)]);
    l.unstable.acceptInProgress();
    l.append([entry(2, 2)]);
    l.stableTo(2, 1);
    expect(ti(l.unstable.entries)).toEqual([[1, 1], [2, 2]]);
    // The overwritten suffix is handed out again.
    expect(ti(l.nextUnstableEntries())).toEqual([[2, 2]]);
  });

  it('limits committed entries per Ready by bytes, at least one', () => {
    const l = new RaftLog(storageWith([1], [entry(1, 1, 'x'.repeat(100)), entry(1, 2, 'y'.repeat(100))]), 150);
    l.commitTo(2);
    expect(ti(l.nextCommittedEntries())).toEqual([[1, 1]]);
  });

  it('restores from a snapshot', () => {
    const l = log(1, 2);
    l.restore(snapshot(10, 4));
    expect([l.firstIndex(), l.lastIndex(), l.committed, l.term(10)]).toEqual([11, 10, 10, 4]);
    expect(l.hasNextOrInProgressSnapshot()).toBe(true);
    expect(l.nextCommittedEntries()).toEqual([]);
    expect(() => l.slice(5, 6, Infinity)).toThrow(CompactedError);
  });
});

describe('Unstable', () => {
  it('truncateAndAppend appends, replaces, or truncates then appends', () => {
    const u = new Unstable(5);
    u.truncateAndAppend([entry(1, 5), entry(1, 6)]);
    u.truncateAndAppend([entry(1, 7)]);
    expect(ti(u.entries)).toEqual([[1, 5], [1, 6], [1, 7]]);
    u.truncateAndAppend([entry(2, 6)]);
    expect(ti(u.entries)).toEqual([[1, 5], [2, 6]]);
    u.truncateAndAppend([entry(3, 4)]);
    expect([u.offset, ...ti(u.entries)]).toEqual([4, [3, 4]]);
  });

  it('knows the term of its snapshot index', () => {
    const u = new Unstable(0);
    u.restore(snapshot(10, 4));
    expect([u.maybeTerm(10), u.maybeTerm(9), u.maybeFirstIndex(), u.maybeLastIndex()]).toEqual([4, undefined, 11, 10]);
    u.stableSnapTo(10);
    expect(u.snapshot).toBeUndefined();
  });
});

describe('limitSize', () => {
  it('keeps at least one entry and stops before exceeding the bound', () => {
    const ents = [entry(1, 1, 'aaaa'), entry(1, 2, 'bbbb'), entry(1, 3, 'cccc')];
    expect(limitSize(ents, 0)).toHaveLength(1);
    expect(limitSize(ents, 56)).toHaveLength(2);
    expect(limitSize(ents, Infinity)).toHaveLength(3);
  });
});

describe('MemoryStorage', () => {
  it('serves entries and terms, and reports compaction and unavailability', () => {
    const s = storageWith([1], entriesOfTerms(1, 1, 2, 3));
    expect([s.firstIndex(), s.lastIndex(), s.term(4)]).toEqual([1, 4, 3]);
    s.compact(2);
    expect([s.firstIndex(), s.term(2)]).toEqual([3, 1]);
    expect(() => s.term(1)).toThrow(CompactedError);
    expect(() => s.term(5)).toThrow(UnavailableError);
    expect(() => s.entries(2, 4, Infinity)).toThrow(CompactedError);
    expect(ti(s.entries(3, 5, Infinity))).toEqual([[2, 3], [3, 4]]);
    expect(() => s.compact(2)).toThrow(CompactedError);
  });

  it('append overwrites a conflicting suffix and skips compacted entries', () => {
    const s = storageWith([1], entriesOfTerms(1, 1, 1));
    s.append([entry(2, 2), entry(2, 3), entry(2, 4)]);
    expect(ti(s.entries(1, 5, Infinity))).toEqual([[1, 1], [2, 2], [2, 3], [2, 4]]);
    s.compact(3);
    s.append([entry(2, 2), entry(2, 3), entry(2, 4), entry(2, 5)]);
    expect(ti(s.entries(4, 6, Infinity))).toEqual([[2, 4], [2, 5]]);
    expect(() => s.append([entry(2, 9)])).toThrow(/missing log entry/);
  });

  it('creates snapshots and refuses older ones', () => {
    const s = new MemoryStorage({ voters: [1] });
    s.append(entriesOfTerms(1, 1, 2));
    const snap = s.createSnapshot(2, undefined, new Uint8Array([9]));
    expect(snap.metadata).toEqual({ index: 2, term: 1, confState: s.initialState().confState });
    expect(() => s.createSnapshot(2, undefined, new Uint8Array())).toThrow(SnapshotOutOfDateError);
    expect(() => s.applySnapshot(snapshot(1, 1))).toThrow(SnapshotOutOfDateError);
    s.applySnapshot(snapshot(10, 3));
    expect([s.firstIndex(), s.lastIndex(), s.term(10)]).toEqual([11, 10, 3]);
  });
});
