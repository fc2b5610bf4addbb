/**
 * Message-level traces: given a state and an input, exactly these messages (full Message
 * objects) and this state.
 */
import { describe, expect, it } from 'vitest';
import { CAMPAIGN_TRANSFER_CONTEXT, type Raft } from '../src/raft.ts';
import { MemoryStorage } from '../src/storage.ts';
import type { NodeId } from '../src/types.ts';
import { entriesOfTerms, entry, msg, newRaft, propose, storageWith, type RaftOptions } from './support/raft.ts';

const ctx = new TextEncoder().encode('read-1');

/** Node 1 as the leader of term 1 of `ids`, its empty entry at index 1, no messages pending. */
function leader(ids: NodeId[] = [1, 2, 3], options: RaftOptions = {}): Raft {
  const r = newRaft(1, ids, options);
  r.becomeCandidate();
  r.becomeLeader();
  r.takeMessages();
  return r;
}

/** `id` acknowledges the leader's whole log (moving it to replicate state). */
function ack(r: Raft, id: NodeId): void {
  r.step(msg('MsgAppResp', id, r.id, { term: r.term, index: r.raftLog.lastIndex() }));
  r.takeMessages();
}

describe('elections', () => {
  it('with pre-vote, an election timeout starts a pre-vote for the next term without changing term or vote', () => {
    const r = newRaft(1, [1, 2, 3], { preVote: true, storage: storageWith([1, 2, 3], entriesOfTerms(1), { term: 1, vote: 0, commit: 1 }) });
    for (let i = 0; i < 20; i++) r.tick();
    expect(r.state).toBe('preCandidate');
    expect(r.term).toBe(1);
    expect(r.vote).toBe(0);
    expect(r.takeMessages()).toEqual([
      msg('MsgPreVote', 1, 2, { term: 2, index: 1, logTerm: 1 }),
      msg('MsgPreVote', 1, 3, { term: 2, index: 1, logTerm: 1 }),
    ]);
  });

  it('a granted pre-vote quorum starts the real election', () => {
    const r = newRaft(1, [1, 2, 3], { preVote: true });
    r.hup('preElection');
    r.takeMessages();
    r.step(msg('MsgPreVoteResp', 2, 1, { term: 1 }));
    expect(r.state).toBe('candidate');
    expect(r.term).toBe(1);
    expect(r.takeMessages()).toEqual([msg('MsgVote', 1, 2, { term: 1 }), msg('MsgVote', 1, 3, { term: 1 })]);
  });

  it('a follower grants a pre-vote for a future term without changing its own term or vote', () => {
    const r = newRaft(1, [1, 2, 3], { preVote: true, storage: storageWith([1, 2, 3], [], { term: 1, vote: 3, commit: 0 }) });
    r.step(msg('MsgPreVote', 2, 1, { term: 2 }));
    expect(r.takeMessages()).toEqual([msg('MsgPreVoteResp', 1, 2, { term: 2 })]);
    expect(r.term).toBe(1);
    expect(r.vote).toBe(3);
  });

  it('a pre-vote from a stale term is rejected with our term', () => {
    const r = newRaft(1, [1, 2, 3], { preVote: true, storage: storageWith([1, 2, 3], [], { term: 3, vote: 0, commit: 0 }) });
    r.step(msg('MsgPreVote', 2, 1, { term: 2 }));
    expect(r.takeMessages()).toEqual([msg('MsgPreVoteResp', 1, 2, { term: 3, reject: true })]);
  });

  it('with check-quorum, a follower that hears from its leader ignores vote requests (leader stickiness)', () => {
    const r = newRaft(1, [1, 2, 3], { checkQuorum: true });
    r.becomeFollower(1, 2);
    r.step(msg('MsgVote', 3, 1, { term: 2 }));
    expect(r.takeMessages()).toEqual([]);
    expect(r.term).toBe(1);
    // Once the leader has been silent for an election timeout, the vote is granted.
    for (let i = 0; i < r.electionTimeout; i++) r.tick();
    r.takeMessages();
    const term = r.term;
    r.step(msg('MsgVote', 3, 1, { term: term + 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgVoteResp', 1, 3, { term: term + 1 })]);
  });

  it('with check-quorum, a message from a stale leader is answered with our term', () => {
    const r = newRaft(1, [1, 2, 3], { checkQuorum: true, storage: storageWith([1, 2, 3], [], { term: 3, vote: 0, commit: 0 }) });
    r.step(msg('MsgApp', 2, 1, { term: 2 }));
    expect(r.takeMessages()).toEqual([msg('MsgAppResp', 1, 2, { term: 3 })]);
    r.step(msg('MsgHeartbeat', 2, 1, { term: 2 }));
    expect(r.takeMessages()).toEqual([msg('MsgAppResp', 1, 2, { term: 3 })]);
  });

  it('with check-quorum, a leader without a recently active quorum steps down after an election timeout', () => {
    const r = leader([1, 2, 3], { checkQuorum: true });
    r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1 }));
    for (let i = 0; i < r.electionTimeout; i++) r.tick();
    expect(r.state).toBe('leader');
    // Each round marks everyone inactive; nobody answers within the next one.
    for (let i = 0; i < r.electionTimeout; i++) r.tick();
    expect(r.state).toBe('follower');
    expect(r.term).toBe(1);
    expect(r.lead).toBe(0);
  });

  it('a candidate winning the vote becomes leader and sends its empty entry to all', () => {
    const r = newRaft(1, [1, 2, 3]);
    r.hup('election');
    r.takeMessages();
    r.step(msg('MsgVoteResp', 2, 1, { term: 1 }));
    expect(r.state).toBe('leader');
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, entries: [entry(1, 1)] }),
      msg('MsgApp', 1, 3, { term: 1, entries: [entry(1, 1)] }),
    ]);
  });
});

describe('replication', () => {
  it('a follower forwards proposals to its leader, unchanged and without a term', () => {
    const r = newRaft(2, [1, 2, 3]);
    r.becomeFollower(1, 1);
    expect(r.step(msg('MsgProp', 2, 2, { entries: [entry(0, 0, 'x')] }))).toBeUndefined();
    expect(r.takeMessages()).toEqual([msg('MsgProp', 2, 1, { entries: [entry(0, 0, 'x')] })]);
  });

  it('proposals are dropped without a leader', () => {
    const r = newRaft(2, [1, 2, 3]);
    expect(propose(r, 'x')).toBe('no leader');
    r.hup('election');
    expect(propose(r, 'x')).toBe('no leader');
    expect(r.takeMessages().filter((m) => m.type === 'MsgProp')).toEqual([]);
  });

  it('a rejected append probes back a whole term at a time (rejectHint and logTerm)', () => {
    // Leader log terms [1,2,2,3] + its empty entry of term 4; follower log terms [1,2,2,2,2].
    const l = newRaft(1, [1, 2], { storage: storageWith([1, 2], entriesOfTerms(1, 2, 2, 3), { term: 3, vote: 0, commit: 1 }) });
    const f = newRaft(2, [1, 2], { storage: storageWith([1, 2], entriesOfTerms(1, 2, 2, 2, 2), { term: 3, vote: 0, commit: 1 }) });
    l.becomeCandidate();
    l.becomeLeader();
    l.bcastAppend();
    const [probe] = l.takeMessages();
    expect(probe).toEqual(msg('MsgApp', 1, 2, { term: 4, index: 4, logTerm: 3, entries: [entry(4, 5)], commit: 1 }));
    f.step(probe);
    const [rejection] = f.takeMessages();
    // The follower's last index <= 4 with a term <= 3: index 4, term 2.
    expect(rejection).toEqual(msg('MsgAppResp', 2, 1, { term: 4, index: 4, reject: true, rejectHint: 4, logTerm: 2 }));
    l.step(rejection);
    // The leader's last index <= 4 with a term <= 2 is 3: one round trip skips the whole term 3.
    const [retry] = l.takeMessages();
    expect(retry).toEqual(
      msg('MsgApp', 1, 2, { term: 4, index: 3, logTerm: 2, entries: [entry(3, 4), entry(4, 5)], commit: 1 }),
    );
    f.step(retry);
    expect(f.takeMessages()).toEqual([msg('MsgAppResp', 2, 1, { term: 4, index: 5 })]);
    expect(f.raftLog.allEntries().map((e) => e.term)).toEqual([1, 2, 2, 3, 4]);
  });

  it('in replicate state, MsgApp are pipelined up to maxInflightMsgs, and acknowledgements reopen the window', () => {
    const r = leader([1, 2], { maxInflightMsgs: 2, maxSizePerMsg: 0 });
    ack(r, 2);
    for (const d of ['a', 'b', 'c']) propose(r, d);
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, index: 1, logTerm: 1, entries: [entry(1, 2, 'a')], commit: 1 }),
      msg('MsgApp', 1, 2, { term: 1, index: 2, logTerm: 1, entries: [entry(1, 3, 'b')], commit: 1 }),
    ]);
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: 2 }));
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, index: 3, logTerm: 1, entries: [entry(1, 4, 'c')], commit: 2 }),
    ]);
  });

  it('a heartbeat response frees a slot of a full window, so lost acknowledgements cannot stall replication', () => {
    const r = leader([1, 2], { maxInflightMsgs: 1, maxSizePerMsg: 0 });
    ack(r, 2);
    propose(r, 'a');
    propose(r, 'b');
    expect(r.takeMessages().map((m) => m.entries.map((e) => e.index))).toEqual([[2]]);
    // The acknowledgement of 'a' is lost; the follower still answers heartbeats.
    r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, index: 2, logTerm: 1, entries: [entry(1, 3, 'b')], commit: 1 }),
    ]);
  });

  it('reportUnreachable turns pipelining back into probing', () => {
    const r = leader([1, 2]);
    ack(r, 2);
    propose(r, 'a');
    r.takeMessages();
    expect(r.trk.progress.get(2)!.next).toBe(3);
    r.reportUnreachable(2);
    expect(r.trk.progress.get(2)!.state).toBe('probe');
    expect(r.trk.progress.get(2)!.next).toBe(2);
  });

  it('a caught-up follower in probe state is probed on its heartbeat response and returns to replicate', () => {
    const r = leader([1, 2]);
    ack(r, 2);
    r.reportUnreachable(2);
    r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgApp', 1, 2, { term: 1, index: 1, logTerm: 1, commit: 1 })]);
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: 1 }));
    expect(r.trk.progress.get(2)!.state).toBe('replicate');
  });

  it('the inflight window is also bounded by bytes (maxInflightBytes)', () => {
    const r = leader([1, 2], { maxInflightMsgs: 100, maxInflightBytes: 25, maxSizePerMsg: 0 });
    ack(r, 2);
    for (let i = 0; i < 5; i++) propose(r, '0123456789');
    // 10, 20, 30 bytes in flight: full once the total reaches 25.
    expect(r.takeMessages().map((m) => m.entries.map((e) => e.index))).toEqual([[2], [3], [4]]);
  });

  it('entries are batched into messages of at most maxSizePerMsg', () => {
    // Each entry counts 10 payload bytes + 24 bytes of overhead: two fit in 70 bytes.
    const r = leader([1, 2], { maxSizePerMsg: 70 });
    ack(r, 2);
    for (let i = 0; i < 5; i++) propose(r, '0123456789');
    expect(r.takeMessages().map((m) => m.entries.map((e) => e.index))).toEqual([[2, 3], [4, 5], [6]]);
  });

  it('a follower in probe state gets one MsgApp at a time until it answers', () => {
    const r = leader([1, 2]);
    r.bcastAppend();
    expect(r.takeMessages()).toHaveLength(1);
    propose(r, 'a');
    propose(r, 'b');
    expect(r.takeMessages()).toEqual([]);
    // A heartbeat response shows the follower is alive: probe again.
    r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, entries: [entry(1, 1), entry(1, 2, 'a'), entry(1, 3, 'b')] }),
    ]);
  });

  it('the uncommitted size bound drops proposals beyond it until entries commit', () => {
    const r = leader([1, 2], { maxUncommittedEntriesSize: 20 });
    expect(propose(r, '0123456789')).toBeUndefined();
    expect(propose(r, '0123456789')).toBeUndefined();
    expect(propose(r, '0123456789')).toBe('too many uncommitted entries');
    r.reduceUncommittedSize(20);
    expect(propose(r, '0123456789')).toBeUndefined();
  });

  it('heartbeats carry the commit index capped at the follower match, and are answered', () => {
    const r = leader([1, 2, 3]);
    ack(r, 2);
    r.tick();
    expect(r.takeMessages()).toEqual([
      msg('MsgHeartbeat', 1, 2, { term: 1, commit: 1 }),
      msg('MsgHeartbeat', 1, 3, { term: 1, commit: 0 }),
    ]);
    const f = newRaft(2, [1, 2, 3], { storage: storageWith([1, 2, 3], entriesOfTerms(1)) });
    f.step(msg('MsgHeartbeat', 1, 2, { term: 1, commit: 1, context: ctx }));
    expect(f.raftLog.committed).toBe(1);
    expect(f.takeMessages()).toEqual([msg('MsgHeartbeatResp', 2, 1, { term: 1, context: ctx })]);
  });
});

describe('snapshots', () => {
  function compactedLeader(): Raft {
    const s = storageWith([1, 2], entriesOfTerms(1, 1, 1, 1, 1), { term: 1, vote: 0, commit: 5 });
    s.createSnapshot(5, undefined, new TextEncoder().encode('state@5'));
    s.compact(5);
    const r = newRaft(1, [1, 2], { storage: s });
    r.becomeCandidate();
    r.becomeLeader();
    r.takeMessages();
    return r;
  }

  it('a follower whose next entry is compacted receives the snapshot; reportSnapshot resumes probing after it', () => {
    const r = compactedLeader();
    // The follower rejects the probe at 5: it has nothing.
    r.step(msg('MsgAppResp', 2, 1, { term: 2, index: 5, reject: true, rejectHint: 0 }));
    const snapshot = r.raftLog.snapshot();
    expect(r.takeMessages()).toEqual([msg('MsgSnap', 1, 2, { term: 2, snapshot })]);
    expect(r.trk.progress.get(2)!.state).toBe('snapshot');
    // Nothing more is sent while the snapshot is in flight.
    propose(r, 'x');
    expect(r.takeMessages()).toEqual([]);
    r.reportSnapshot(2, true);
    expect(r.trk.progress.get(2)!.state).toBe('probe');
    expect(r.trk.progress.get(2)!.next).toBe(6);
    // The follower acknowledges the snapshot: replicate from there.
    r.step(msg('MsgAppResp', 2, 1, { term: 2, index: 5 }));
    expect(r.trk.progress.get(2)!.state).toBe('replicate');
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 2, index: 5, logTerm: 1, entries: [entry(2, 6), entry(2, 7, 'x')], commit: 5 }),
    ]);
  });

  it('a follower restores a snapshot newer than its log and acknowledges its index', () => {
    const leaderRaft = compactedLeader();
    const snapshot = leaderRaft.raftLog.snapshot();
    const f = newRaft(2, [1, 2]);
    f.step(msg('MsgSnap', 1, 2, { term: 2, snapshot }));
    expect(f.takeMessages()).toEqual([msg('MsgAppResp', 2, 1, { term: 2, index: 5 })]);
    expect(f.raftLog.nextUnstableSnapshot()).toBe(snapshot);
    expect(f.raftLog.committed).toBe(5);
    // A stale snapshot is answered with the commit index.
    f.step(msg('MsgSnap', 1, 2, { term: 2, snapshot }));
    expect(f.takeMessages()).toEqual([msg('MsgAppResp', 2, 1, { term: 2, index: 5 })]);
  });

  it('a failed snapshot send resumes probing after the follower match', () => {
    const r = compactedLeader();
    r.step(msg('MsgAppResp', 2, 1, { term: 2, index: 5, reject: true, rejectHint: 0 }));
    r.takeMessages();
    r.reportSnapshot(2, false);
    expect(r.trk.progress.get(2)!.state).toBe('probe');
    expect(r.trk.progress.get(2)!.next).toBe(1);
  });
});

describe('ReadIndex', () => {
  it('safe: the leader confirms leadership with a heartbeat round before answering a forwarded read', () => {
    const r = leader([1, 2, 3]);
    ack(r, 2);
    r.step(msg('MsgReadIndex', 2, 1, { context: ctx }));
    expect(r.takeMessages()).toEqual([
      msg('MsgHeartbeat', 1, 2, { term: 1, commit: 1, context: ctx }),
      msg('MsgHeartbeat', 1, 3, { term: 1, commit: 0, context: ctx }),
    ]);
    r.step(msg('MsgHeartbeatResp', 3, 1, { term: 1, context: ctx }));
    expect(r.takeMessages()).toEqual([
      // 3 is behind: the heartbeat response also triggers a probe
      msg('MsgApp', 1, 3, { term: 1, entries: [entry(1, 1)], commit: 1 }),
      msg('MsgReadIndexResp', 1, 2, { term: 1, index: 1, context: ctx }),
    ]);
  });

  it('safe: a local read becomes a ReadState once a quorum acknowledged', () => {
    const r = leader([1, 2, 3]);
    ack(r, 2);
    r.step(msg('MsgReadIndex', 1, 1, { context: ctx }));
    r.takeMessages();
    expect(r.readStates).toEqual([]);
    r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1, context: ctx }));
    expect(r.readStates).toEqual([{ index: 1, context: ctx }]);
  });

  it('a new leader holds reads until it has committed an entry of its term', () => {
    const r = leader([1, 2, 3]);
    r.step(msg('MsgReadIndex', 2, 1, { context: ctx }));
    expect(r.takeMessages()).toEqual([]);
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: 1 }));
    const heartbeats = r.takeMessages().filter((m) => m.type === 'MsgHeartbeat');
    expect(heartbeats).toEqual([
      msg('MsgHeartbeat', 1, 2, { term: 1, commit: 1, context: ctx }),
      msg('MsgHeartbeat', 1, 3, { term: 1, commit: 0, context: ctx }),
    ]);
  });

  it('lease-based: the leader answers at once from its commit index', () => {
    const r = leader([1, 2, 3], { checkQuorum: true, readOnlyOption: 'leaseBased' });
    ack(r, 2);
    r.step(msg('MsgReadIndex', 2, 1, { context: ctx }));
    expect(r.takeMessages()).toEqual([msg('MsgReadIndexResp', 1, 2, { term: 1, index: 1, context: ctx })]);
  });

  it('lease-based: without recent answers from a quorum, the lease has lapsed and a heartbeat round confirms', () => {
    const r = leader([1, 2, 3], { checkQuorum: true, readOnlyOption: 'leaseBased' });
    ack(r, 2);
    // Within electionTimeout - 2 ticks of 2's last answer the lease holds.
    for (let i = 0; i < 7; i++) r.tick();
    r.takeMessages();
    r.step(msg('MsgReadIndex', 2, 1, { context: ctx }));
    expect(r.takeMessages()).toEqual([msg('MsgReadIndexResp', 1, 2, { term: 1, index: 1, context: ctx })]);
    r.tick();
    r.takeMessages();
    const ctx2 = new TextEncoder().encode('read-2');
    r.step(msg('MsgReadIndex', 2, 1, { context: ctx2 }));
    expect(r.takeMessages().map((m) => [m.type, m.to, m.context])).toEqual([
      ['MsgHeartbeat', 2, ctx2],
      ['MsgHeartbeat', 3, ctx2],
    ]);
    r.step(msg('MsgHeartbeatResp', 3, 1, { term: 1, context: ctx2 }));
    expect(r.takeMessages().filter((m) => m.type === 'MsgReadIndexResp')).toEqual([
      msg('MsgReadIndexResp', 1, 2, { term: 1, index: 1, context: ctx2 }),
    ]);
  });

  it('lease-based: once MsgTimeoutNow went out, the lease is void (the transferee bypasses followers’ leases)', () => {
    const r = leader([1, 2, 3], { checkQuorum: true, readOnlyOption: 'leaseBased' });
    ack(r, 2);
    r.step(msg('MsgTransferLeader', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgTimeoutNow', 1, 2, { term: 1 })]);
    // The transfer is abandoned, but the transferee may have won: no more lease reads this term.
    for (let i = 0; i < r.electionTimeout; i++) {
      r.step(msg('MsgHeartbeatResp', 2, 1, { term: 1 }));
      r.tick();
    }
    expect([r.state, r.leadTransferee]).toEqual(['leader', 0]);
    r.takeMessages();
    r.step(msg('MsgReadIndex', 3, 1, { context: ctx }));
    expect(r.takeMessages().map((m) => m.type)).toEqual(['MsgHeartbeat', 'MsgHeartbeat']);
  });

  it('lease-based: a node just started grants no vote for an election timeout', () => {
    const r = newRaft(1, [1, 2, 3], { checkQuorum: true, readOnlyOption: 'leaseBased' });
    r.step(msg('MsgVote', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([]);
    r.randomizedElectionTimeout = 2 * r.electionTimeout;
    for (let i = 0; i < r.electionTimeout; i++) r.tick();
    r.step(msg('MsgVote', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgVoteResp', 1, 2, { term: 1 })]);
  });

  it('a follower forwards reads to the leader and turns the answer into a ReadState', () => {
    const f = newRaft(2, [1, 2, 3]);
    f.becomeFollower(1, 1);
    f.step(msg('MsgReadIndex', 2, 2, { context: ctx }));
    expect(f.takeMessages()).toEqual([msg('MsgReadIndex', 2, 1, { context: ctx })]);
    f.step(msg('MsgReadIndexResp', 1, 2, { term: 1, index: 7, context: ctx }));
    expect(f.readStates).toEqual([{ index: 7, context: ctx }]);
  });

  it('lease-based reads require check-quorum', () => {
    expect(() => newRaft(1, [1], { readOnlyOption: 'leaseBased', checkQuorum: false })).toThrow(/checkQuorum/);
  });
});

describe('leadership transfer', () => {
  it('to an up-to-date follower: MsgTimeoutNow at once, and proposals are dropped meanwhile', () => {
    const r = leader([1, 2, 3]);
    ack(r, 2);
    r.step(msg('MsgTransferLeader', 2, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgTimeoutNow', 1, 2, { term: 1 })]);
    expect(r.leadTransferee).toBe(2);
    expect(propose(r, 'x')).toMatch(/transferred/);
  });

  it('to a lagging follower: catch it up first, then MsgTimeoutNow', () => {
    const r = leader([1, 2, 3]);
    ack(r, 2);
    propose(r, 'x');
    r.takeMessages();
    r.step(msg('MsgTransferLeader', 3, 1, { term: 1 }));
    // 3's probe is still unanswered: nothing to send yet.
    expect(r.takeMessages()).toEqual([]);
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: 1 }));
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 3, { term: 1, index: 1, logTerm: 1, entries: [entry(1, 2, 'x')], commit: 1 }),
    ]);
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: 2 }));
    expect(r.takeMessages()).toEqual([
      msg('MsgTimeoutNow', 1, 3, { term: 1 }),
      msg('MsgApp', 1, 2, { term: 1, index: 2, logTerm: 1, commit: 2 }),
      msg('MsgApp', 1, 3, { term: 1, index: 2, logTerm: 1, commit: 2 }),
    ]);
  });

  it('is abandoned after an election timeout', () => {
    const r = leader([1, 2, 3]);
    r.step(msg('MsgTransferLeader', 3, 1, { term: 1 }));
    for (let i = 0; i < r.electionTimeout - 1; i++) r.tick();
    expect(r.leadTransferee).toBe(3);
    r.tick();
    expect(r.leadTransferee).toBe(0);
    expect(propose(r, 'x')).toBeUndefined();
  });

  it('MsgTimeoutNow makes a follower campaign at once, skipping pre-vote, with votes that bypass stickiness', () => {
    const f = newRaft(2, [1, 2, 3], { preVote: true, checkQuorum: true, storage: storageWith([1, 2, 3], entriesOfTerms(1)) });
    f.becomeFollower(1, 1);
    f.step(msg('MsgTimeoutNow', 1, 2, { term: 1 }));
    expect(f.state).toBe('candidate');
    const votes = f.takeMessages();
    expect(votes).toEqual([
      msg('MsgVote', 2, 1, { term: 2, index: 1, logTerm: 1, context: CAMPAIGN_TRANSFER_CONTEXT }),
      msg('MsgVote', 2, 3, { term: 2, index: 1, logTerm: 1, context: CAMPAIGN_TRANSFER_CONTEXT }),
    ]);
    const other = newRaft(3, [1, 2, 3], { preVote: true, checkQuorum: true, storage: storageWith([1, 2, 3], entriesOfTerms(1)) });
    other.becomeFollower(1, 1);
    other.step(votes[1]);
    expect(other.takeMessages()).toEqual([msg('MsgVoteResp', 3, 2, { term: 2 })]);
  });

  it('a learner is never a transferee', () => {
    const r = leader([1, 2], { learners: [3] });
    r.step(msg('MsgTransferLeader', 3, 1, { term: 1 }));
    expect(r.leadTransferee).toBe(0);
    expect(r.takeMessages()).toEqual([]);
  });
});

describe('membership through the leader', () => {
  it('a new member is probed from the leader’s last index; a removed one gets nothing', () => {
    const s = new MemoryStorage({ voters: [1, 2] });
    const r = newRaft(1, [1, 2], { storage: s });
    r.becomeCandidate();
    r.becomeLeader();
    r.takeMessages();
    r.applyConfChange({ changes: [{ type: 'addLearner', nodeId: 3 }] });
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, entries: [entry(1, 1)] }),
      msg('MsgApp', 1, 3, { term: 1, entries: [entry(1, 1)] }),
    ]);
    r.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 3 }] });
    r.tick();
    expect(r.takeMessages().map((m) => m.to)).toEqual([2]);
  });

  it('an undecodable conf change proposal commits as an empty entry', () => {
    const r = leader([1, 2]);
    r.step(msg('MsgProp', 2, 1, { entries: [{ term: 0, index: 0, type: 'confChange', data: new Uint8Array([7]) }] }));
    expect(r.raftLog.nextUnstableEntries().at(-1)).toEqual(entry(1, 2));
  });

  it('auto-leave: once the joint configuration is applied, the leader proposes leaving it', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    r.becomeCandidate();
    r.becomeLeader();
    ack(r, 2);
    r.appliedTo(1);
    r.applyConfChange({ changes: [{ type: 'addNode', nodeId: 4 }, { type: 'removeNode', nodeId: 3 }] });
    expect(r.trk.config.autoLeave).toBe(true);
    const before = r.raftLog.lastIndex();
    r.appliedTo(1);
    const last = r.raftLog.allEntries().at(-1)!;
    expect(last.index).toBe(before + 1);
    expect(last.type).toBe('confChange');
    expect(r.pendingConfIndex).toBe(last.index);
  });
});
