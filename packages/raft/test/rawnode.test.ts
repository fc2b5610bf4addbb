/** The RawNode API and the Ready contract. */
import { describe, expect, it } from 'vitest';
import { encodeConfChange } from '../src/codec.ts';
import { ConfChangeError, ProposalDroppedError, RaftUsageError } from '../src/errors.ts';
import { makeMessage } from '../src/raft.ts';
import { RawNode } from '../src/rawnode.ts';
import { MemoryStorage } from '../src/storage.ts';
import type { Message, Ready } from '../src/types.ts';
import { testConfig, type ConfigOverrides } from './support/cluster.ts';
import { entriesOfTerms, entry } from './support/raft.ts';

function node(voters: number[], overrides: ConfigOverrides = {}, storage = new MemoryStorage({ voters })) {
  return { raw: new RawNode(testConfig(1, storage, overrides)), storage };
}

/** Persists a Ready into `storage` and advances, as a host does. */
function handle(raw: RawNode, storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
  raw.advance(rd);
}

describe('RawNode', () => {
  it('a single-voter group elects itself, and the first Ready carries state, entry and its commit', () => {
    const { raw, storage } = node([1]);
    expect(raw.hasReady()).toBe(false);
    raw.campaign();
    expect(raw.hasReady()).toBe(true);
    const rd = raw.ready();
    expect(rd).toEqual({
      softState: { leader: 1, role: 'leader' },
      hardState: { term: 1, vote: 1, commit: 1 },
      readStates: [],
      entries: [entry(1, 1)],
      committedEntries: [entry(1, 1)],
      messages: [],
      mustSync: true,
    });
    handle(raw, storage, rd);
    expect(raw.hasReady()).toBe(false);
    expect(raw.status().applied).toBe(1);
  });

  it('vote requests come in the same Ready as the term and vote they depend on', () => {
    const { raw } = node([1, 2, 3], { preVote: false });
    raw.campaign();
    const rd = raw.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages.map((m) => [m.type, m.to, m.term])).toEqual([
      ['MsgVote', 2, 1],
      ['MsgVote', 3, 1],
    ]);
  });

  it('an acknowledgement comes in the same Ready as the entries it acknowledges', () => {
    const { raw } = node([1, 2]);
    raw.step(makeMessage('MsgApp', 2, 1, { term: 1, entries: [entry(1, 1, 'a')], commit: 0 }));
    const rd = raw.ready();
    expect(rd.entries).toEqual([entry(1, 1, 'a')]);
    expect(rd.hardState).toEqual({ term: 1, vote: 0, commit: 0 });
    expect(rd.messages).toEqual([makeMessage('MsgAppResp', 1, 2, { term: 1, index: 1 })]);
  });

  it('a Ready is handed out once: before advance, nothing is repeated', () => {
    const { raw, storage } = node([1, 2]);
    raw.step(makeMessage('MsgApp', 2, 1, { term: 1, entries: [entry(1, 1, 'a')], commit: 1 }));
    const rd = raw.ready();
    expect(rd.committedEntries).toEqual([entry(1, 1, 'a')]);
    expect(raw.hasReady()).toBe(false);
    raw.step(makeMessage('MsgApp', 2, 1, { term: 1, index: 1, logTerm: 1, entries: [entry(1, 2, 'b')], commit: 1 }));
    const rd2 = raw.ready();
    expect(rd2.entries).toEqual([entry(1, 2, 'b')]);
    expect(rd2.committedEntries).toEqual([]);
    handle(raw, storage, rd);
    handle(raw, storage, rd2);
    expect(raw.hasReady()).toBe(false);
    expect(storage.lastIndex()).toBe(2);
  });

  it('a snapshot from the leader comes in a synced Ready with its acknowledgement, and is applied on advance', () => {
    const { raw, storage } = node([1, 2]);
    const snapshot = {
      metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
      data: new Uint8Array([42]),
    };
    raw.step(makeMessage('MsgSnap', 2, 1, { term: 1, snapshot }));
    const rd = raw.ready();
    expect(rd.snapshot).toBe(snapshot);
    expect(rd.mustSync).toBe(true);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toEqual([makeMessage('MsgAppResp', 1, 2, { term: 1, index: 5 })]);
    handle(raw, storage, rd);
    expect(raw.status().applied).toBe(5);
    expect(storage.firstIndex()).toBe(6);
    expect(raw.hasReady()).toBe(false);
  });

  it('a commit-only change of the hard state does not require a sync', () => {
    const { raw, storage } = node([1, 2]);
    raw.step(makeMessage('MsgApp', 2, 1, { term: 1, entries: [entry(1, 1, 'a')], commit: 0 }));
    handle(raw, storage, raw.ready());
    raw.step(makeMessage('MsgHeartbeat', 2, 1, { term: 1, commit: 1 }));
    const rd = raw.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 0, commit: 1 });
    expect(rd.mustSync).toBe(false);
  });

  it('restarts from storage: term, vote, log and commit, applying only past `applied`', () => {
    const storage = new MemoryStorage({ voters: [1, 2, 3] });
    storage.append(entriesOfTerms(1, 1, 2));
    storage.setHardState({ term: 2, vote: 3, commit: 3 });
    const { raw } = node([1, 2, 3], { applied: 1 }, storage);
    expect(raw.status().hardState).toEqual({ term: 2, vote: 3, commit: 3 });
    const rd = raw.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toBeUndefined();
  });

  it('restarting with an applied index past the persisted commit index (unsynced) commits up to it', () => {
    const storage = new MemoryStorage({ voters: [1, 2, 3] });
    storage.append(entriesOfTerms(1, 1, 1));
    storage.setHardState({ term: 1, vote: 0, commit: 1 });
    const { raw } = node([1, 2, 3], { applied: 2 }, storage);
    expect(raw.status().hardState.commit).toBe(2);
    expect(raw.status().applied).toBe(2);
    expect(raw.ready().committedEntries).toEqual([]);
  });

  it('the uncommitted size bound is released as committed entries are handed out', () => {
    const { raw, storage } = node([1], { maxUncommittedEntriesSize: 20 });
    raw.campaign();
    handle(raw, storage, raw.ready());
    const ten = new Uint8Array(10);
    raw.propose(ten);
    raw.propose(ten);
    expect(() => raw.propose(ten)).toThrow(/too many uncommitted entries/);
    const rd = raw.ready();
    expect(rd.committedEntries).toHaveLength(2);
    raw.propose(ten);
    handle(raw, storage, rd);
  });

  it('throws ProposalDroppedError when there is no leader, for proposals and reads', () => {
    const { raw } = node([1, 2, 3]);
    expect(() => raw.propose(new Uint8Array([1]))).toThrow(ProposalDroppedError);
    expect(() => raw.readIndex(new Uint8Array([1]))).toThrow(ProposalDroppedError);
  });

  it('rejects an invalid conf change at proposal time', () => {
    const { raw, storage } = node([1]);
    raw.campaign();
    handle(raw, storage, raw.ready());
    expect(() => raw.proposeConfChange({ changes: [{ type: 'removeNode', nodeId: 1 }] })).toThrow(ConfChangeError);
    expect(() => raw.proposeConfChange({ changes: [] })).toThrow(ConfChangeError);
    raw.proposeConfChange({ changes: [{ type: 'addNode', nodeId: 2 }] });
    const rd = raw.ready();
    expect(rd.entries).toEqual([
      { term: 1, index: 2, type: 'confChange', data: encodeConfChange({ changes: [{ type: 'addNode', nodeId: 2 }] }) },
    ]);
  });

  it('applyConfChange returns the new membership; an invalid one throws and changes nothing', () => {
    const { raw } = node([1]);
    expect(raw.applyConfChange({ changes: [{ type: 'addLearner', nodeId: 2 }] })).toEqual({
      voters: [1],
      learners: [2],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    });
    expect(() => raw.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 1 }] })).toThrow(ConfChangeError);
    expect(raw.status().confState.voters).toEqual([1]);
  });

  it('refuses message types that do not travel between members', () => {
    const { raw } = node([1, 2]);
    const bogus = { ...makeMessage('MsgApp', 2, 1), type: 'MsgHup' } as unknown as Message;
    expect(() => raw.step(bogus)).toThrow(RaftUsageError);
  });

  it('reports progress only on the leader', () => {
    const { raw, storage } = node([1, 2], { preVote: false });
    expect(raw.status().progress).toBeUndefined();
    raw.campaign();
    handle(raw, storage, raw.ready());
    raw.step(makeMessage('MsgVoteResp', 2, 1, { term: 1 }));
    const status = raw.status();
    expect(status.softState).toEqual({ leader: 1, role: 'leader' });
    expect(status.progress?.get(2)).toEqual({
      match: 0,
      next: 1,
      state: 'probe',
      isLearner: false,
      recentActive: false,
      pendingSnapshot: 0,
      inflight: 0,
    });
  });

  it('validates its configuration', () => {
    const storage = new MemoryStorage({ voters: [1] });
    expect(() => new RawNode(testConfig(0, storage))).toThrow(/none as id/);
    expect(() => new RawNode(testConfig(1, storage, { electionTick: 1, heartbeatTick: 1 }))).toThrow(/election tick/);
    expect(() => new RawNode(testConfig(1, storage, { maxInflightMsgs: 0 }))).toThrow(/inflight/);
  });
});
