/**
 * The deterministic workload of the Raft-log crash test, shared by the writer child process
 * (fixtures/raft-log-writer.ts) and the test that checks what survived: round after round, every
 * group appends one to three entries, and now and then overwrites its last two entries with a
 * higher term (a conflicting suffix).
 */
import type { Entry, HardState } from '@shoal/raft';
import type { GroupId, GroupPersist, RaftLogStore } from '../../src/index.ts';

export const CRASH_GROUPS: readonly GroupId[] = [1, 2, 3, 1000, 2 ** 33];

export interface GroupModel {
  entries: Entry[];
  hardState: HardState;
}

export type LogModel = Map<GroupId, GroupModel>;

export function emptyModel(): LogModel {
  return new Map(CRASH_GROUPS.map((g) => [g, { entries: [], hardState: { term: 0, vote: 0, commit: 0 } }]));
}

export function payload(group: GroupId, index: number, term: number): Uint8Array {
  const length = 40 + ((group * 131 + index * 17 + term * 7) % 1500);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (group + index * 31 + term * 7 + i) % 251;
  return bytes;
}

export function planRound(round: number, model: LogModel): GroupPersist[] {
  return CRASH_GROUPS.map((groupId) => {
    const { entries, hardState } = model.get(groupId)!;
    const last = entries.length;
    const overwrite = (round + groupId) % 7 === 0 && last >= 2;
    const term = Math.max(1, hardState.term) + (overwrite ? 1 : 0);
    const start = overwrite ? last - 1 : last + 1;
    const count = overwrite ? 3 : 1 + ((round + groupId) % 3);
    const appended: Entry[] = [];
    for (let index = start; index < start + count; index++) {
      appended.push({ term, index, type: 'normal', data: payload(groupId, index, term) });
    }
    return {
      groupId,
      entries: appended,
      hardState: { term, vote: 1, commit: Math.max(hardState.commit, start - 2, 0) },
    };
  });
}

export function applyRound(model: LogModel, updates: readonly GroupPersist[]): void {
  for (const u of updates) {
    const group = model.get(u.groupId)!;
    const entries = u.entries ?? [];
    if (entries.length > 0) group.entries.length = entries[0].index - 1;
    group.entries.push(...entries);
    if (u.hardState !== undefined) group.hardState = { ...u.hardState };
  }
}

/** What the store holds for the crash groups, in the model's shape. */
export function modelOf(store: RaftLogStore): LogModel {
  return new Map(
    CRASH_GROUPS.map((g) => {
      const s = store.group(g);
      const entries = s.lastIndex() === 0 ? [] : s.entries(1, s.lastIndex() + 1, Infinity);
      return [g, { entries, hardState: s.initialState().hardState }];
    }),
  );
}
