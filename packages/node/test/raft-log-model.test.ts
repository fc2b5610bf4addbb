/**
 * GroupLogStorage against @shoal/raft's MemoryStorage, the reference: random sequences of appends
 * (with conflicting suffixes), snapshots created and received, compactions, hard states and
 * reopens must leave both answering every Storage question alike. A tiny tail cache makes most
 * reads go to LevelDB.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStorage, type Entry, type HardState, type Snapshot, type Storage } from '@shoal/raft';
import { RaftLogStore, type GroupId } from '../src/index.ts';
import { tempDir } from './support/raft-log.ts';

type Operation =
  | { kind: 'append'; back: number; count: number; termBump: number; size: number }
  | { kind: 'compact'; back: number }
  | { kind: 'createSnapshot'; back: number }
  | { kind: 'receiveSnapshot'; ahead: number }
  | { kind: 'hardState'; commit: number }
  | { kind: 'reopen' };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), back: fc.nat(4), count: fc.integer({ min: 1, max: 5 }), termBump: fc.nat(1), size: fc.nat(60) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), back: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('createSnapshot' as const), back: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('receiveSnapshot' as const), ahead: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('hardState' as const), commit: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed * 7 + i) & 0xff);
}

/** Every question Raft asks of a Storage, answered (errors by name). */
function answers(s: Storage): unknown[] {
  const attempt = (f: () => unknown): unknown => {
    try {
      return f();
    } catch (error) {
      return (error as Error).name;
    }
  };
  const out: unknown[] = [s.firstIndex(), s.lastIndex(), s.initialState(), s.snapshot()];
  const first = s.firstIndex();
  const last = s.lastIndex();
  for (let i = Math.max(0, first - 2); i <= last + 1; i++) out.push(attempt(() => s.term(i)));
  for (let lo = Math.max(1, first - 1); lo <= last + 1; lo++) {
    for (const maxBytes of [0, 100, Infinity]) out.push(attempt(() => s.entries(lo, last + 1, maxBytes)));
  }
  return out;
}

describe('GroupLogStorage matches MemoryStorage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: RaftLogStore;
  let nextGroup: GroupId = 1;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('raft-log-model'));
    store = await RaftLogStore.open(dir, { tailCacheBytes: 150 });
  });

  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  it('under random appends, snapshots, compactions and reopens', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 5, maxLength: 40 }), async (operations) => {
        const group = nextGroup++;
        const reference = new MemoryStorage({ voters: [1, 2] });
        await store.createGroup(group, { confState: { voters: [1, 2] } });
        let term = 1;
        for (const op of operations) {
          const last = reference.lastIndex();
          if (op.kind === 'append') {
            term += op.termBump;
            const start = Math.max(reference.firstIndex(), last + 1 - op.back);
            const entries: Entry[] = [];
            for (let i = 0; i < op.count; i++) entries.push({ term, index: start + i, type: 'normal', data: bytes(op.size, start + i + term) });
            reference.append(entries);
            await store.persist([{ groupId: group, entries }]);
          } else if (op.kind === 'compact') {
            const index = last - op.back;
            if (index < reference.firstIndex()) continue;
            reference.compact(index);
            await store.compact(group, index);
          } else if (op.kind === 'createSnapshot') {
            const index = last - op.back;
            if (index <= reference.snapshot().metadata.index || index < reference.firstIndex() - 1) continue;
            const data = bytes(5, index);
            reference.createSnapshot(index, undefined, data);
            await store.createSnapshot(group, index, undefined, data);
          } else if (op.kind === 'receiveSnapshot') {
            term += 1;
            const snapshot: Snapshot = {
              metadata: { index: Math.max(last, reference.snapshot().metadata.index) + op.ahead, term, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
              data: bytes(3, last),
            };
            reference.applySnapshot(snapshot);
            await store.persist([{ groupId: group, snapshot }]);
          } else if (op.kind === 'hardState') {
            const hardState: HardState = { term, vote: 1, commit: Math.min(op.commit, last) };
            reference.setHardState(hardState);
            await store.persist([{ groupId: group, hardState }]);
          } else {
            await store.close();
            store = await RaftLogStore.open(dir, { tailCacheBytes: 150 });
          }
          expect(answers(store.group(group))).toEqual(answers(reference));
        }
      }),
      { seed: 20_261_125, numRuns: 40 },
    );
  });
});
