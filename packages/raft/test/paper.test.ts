/**
 * One test per claim of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
 * Consensus Algorithm") and the thesis, in the spirit of etcd's raft_paper_test.go. Pre-vote and
 * check-quorum are off unless a test is about them, so the behaviour is the paper's.
 */
import { describe, expect, it } from 'vitest';
import type { Raft } from '../src/raft.ts';
import type { Entry, Message, NodeId } from '../src/types.ts';
import { encodeConfChange } from '../src/codec.ts';
import {
  entriesOfTerms,
  entry,
  msg,
  newRaft,
  persistAndApply,
  propose,
  RaftNetwork,
  storageWith,
  types,
} from './support/raft.ts';
import { MemoryStorage } from '../src/storage.ts';

const termsAndIndexes = (ents: Entry[]): [number, number][] => ents.map((e) => [e.term, e.index]);

function becomeLeader(r: Raft): void {
  r.becomeCandidate();
  r.becomeLeader();
}

/** Elects r (id 1) and has every peer acknowledge its empty entry, so that it is committed. */
function commitNoopEntry(r: Raft, storage: MemoryStorage): void {
  becomeLeader(r);
  r.bcastAppend();
  for (const m of r.takeMessages()) {
    expect(m.type).toBe('MsgApp');
    r.step(acceptAndReply(m));
  }
  r.takeMessages();
  persistAndApply(r, storage);
}

function acceptAndReply(m: Message): Message {
  return msg('MsgAppResp', m.to, m.from, { term: m.term, index: m.index + m.entries.length });
}

describe('§5.1 terms', () => {
  it.each(['follower', 'candidate', 'leader'] as const)(
    'a %s seeing a larger term adopts it and becomes a follower',
    (role) => {
      const r = newRaft(1, [1, 2, 3]);
      if (role === 'candidate') r.becomeCandidate();
      if (role === 'leader') becomeLeader(r);
      r.step(msg('MsgApp', 2, 1, { term: 2 }));
      expect(r.term).toBe(2);
      expect(r.state).toBe('follower');
    },
  );

  it('a request with a stale term is ignored', () => {
    const r = newRaft(1, [1, 2, 3], { storage: storageWith([1, 2, 3], entriesOfTerms(2), { term: 2, vote: 0, commit: 0 }) });
    r.step(msg('MsgApp', 2, 1, { term: 1, index: 1, logTerm: 2, entries: [entry(1, 2)], commit: 2 }));
    expect(r.takeMessages()).toEqual([]);
    expect(r.raftLog.lastIndex()).toBe(1);
    expect(r.raftLog.committed).toBe(0);
    expect(r.term).toBe(2);
  });
});

describe('§5.2 leader election', () => {
  it('servers start as followers', () => {
    const r = newRaft(1, [1, 2, 3]);
    expect(r.state).toBe('follower');
    expect(r.term).toBe(0);
  });

  it('a leader sends heartbeats to all followers every heartbeat tick', () => {
    const r = newRaft(1, [1, 2, 3], { heartbeatTick: 1 });
    becomeLeader(r);
    r.takeMessages();
    r.tick();
    expect(r.takeMessages()).toEqual([
      msg('MsgHeartbeat', 1, 2, { term: 1 }),
      msg('MsgHeartbeat', 1, 3, { term: 1 }),
    ]);
  });

  it.each(['follower', 'candidate'] as const)(
    'a %s whose election times out starts an election: new term, votes for itself, RequestVote to all',
    (role) => {
      const r = newRaft(1, [1, 2, 3]);
      if (role === 'follower') r.becomeFollower(1, 2);
      else r.becomeCandidate();
      for (let i = 0; i < 2 * r.electionTimeout; i++) r.tick();
      expect(r.term).toBe(2);
      expect(r.state).toBe('candidate');
      expect(r.vote).toBe(1);
      expect(r.trk.votes.get(1)).toBe(true);
      expect(r.takeMessages()).toEqual([
        msg('MsgVote', 1, 2, { term: 2 }),
        msg('MsgVote', 1, 3, { term: 2 }),
      ]);
    },
  );

  it.each([
    { size: 1, votes: {}, state: 'leader' },
    { size: 3, votes: { 2: true, 3: true }, state: 'leader' },
    { size: 3, votes: { 2: true }, state: 'leader' },
    { size: 5, votes: { 2: true, 3: true, 4: true, 5: true }, state: 'leader' },
    { size: 5, votes: { 2: true, 3: true }, state: 'leader' },
    // a split vote, or not enough answers yet: still a candidate
    { size: 3, votes: {}, state: 'candidate' },
    { size: 5, votes: { 2: true }, state: 'candidate' },
    { size: 5, votes: { 2: false, 3: false }, state: 'candidate' },
    // a majority rejected: back to follower
    { size: 3, votes: { 2: false, 3: false }, state: 'follower' },
    { size: 5, votes: { 2: false, 3: false, 4: false }, state: 'follower' },
  ])('a candidate with $size servers and votes $votes ends up $state', ({ size, votes, state }) => {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const r = newRaft(1, ids);
    r.hup('election');
    for (const [id, granted] of Object.entries(votes)) {
      r.step(msg('MsgVoteResp', Number(id), 1, { term: r.term, reject: !granted }));
    }
    expect(r.state).toBe(state);
    expect(r.term).toBe(1);
  });

  it.each([
    { vote: 0, candidate: 2, reject: false },
    { vote: 0, candidate: 3, reject: false },
    { vote: 2, candidate: 2, reject: false },
    { vote: 3, candidate: 3, reject: false },
    { vote: 2, candidate: 3, reject: true },
    { vote: 3, candidate: 2, reject: true },
  ])('a follower votes for at most one candidate per term (voted $vote, asked by $candidate)', ({ vote, candidate, reject }) => {
    const r = newRaft(1, [1, 2, 3], { storage: storageWith([1, 2, 3], [], { term: 1, vote, commit: 0 }) });
    r.step(msg('MsgVote', candidate, 1, { term: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgVoteResp', 1, candidate, { term: 1, reject })]);
  });

  it.each([1, 2])('a candidate receiving AppendEntries from a leader of term %i >= its own steps down', (term) => {
    const r = newRaft(1, [1, 2, 3]);
    r.hup('election');
    expect(r.state).toBe('candidate');
    r.step(msg('MsgApp', 2, 1, { term }));
    expect(r.state).toBe('follower');
    expect(r.term).toBe(term);
    expect(r.lead).toBe(2);
  });

  it.each(['follower', 'candidate'] as const)(
    'the election timeout of a %s is randomized over [electionTick, 2*electionTick)',
    (role) => {
      const r = newRaft(1, [1, 2, 3]);
      const seen = new Set<number>();
      for (let round = 0; round < 200; round++) {
        if (role === 'follower') r.becomeFollower(r.term + 1, 2);
        else r.becomeCandidate();
        let ticks = 0;
        const term = r.term;
        while (r.term === term) {
          r.tick();
          ticks++;
        }
        seen.add(ticks);
      }
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
    },
  );

  it.each(['follower', 'candidate'] as const)('in most cases only a single %s times out first', (role) => {
    const ids = [1, 2, 3, 4, 5];
    // Even with one seed for all members, their timeouts differ.
    const rs = ids.map((id) => newRaft(id, ids, { seed: 7 }));
    let conflicts = 0;
    const rounds = 500;
    for (let round = 0; round < rounds; round++) {
      for (const r of rs) {
        if (role === 'follower') r.becomeFollower(r.term + 1, 0);
        else r.becomeCandidate();
      }
      let timedOut = 0;
      while (timedOut === 0) {
        for (const r of rs) {
          const term = r.term;
          r.tick();
          if (r.term !== term) timedOut++;
        }
      }
      if (timedOut > 1) conflicts++;
    }
    expect(conflicts / rounds).toBeLessThanOrEqual(0.3);
  });
});

describe('§5.3 log replication', () => {
  it('a leader appends a proposal to its log and sends AppendEntries to all followers', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    const li = r.raftLog.lastIndex();
    propose(r, 'some data');
    const expected = [entry(1, li + 1, 'some data')];
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, index: li, logTerm: 1, entries: expected, commit: li }),
      msg('MsgApp', 1, 3, { term: 1, index: li, logTerm: 1, entries: expected, commit: li }),
    ]);
    expect(r.raftLog.nextUnstableEntries()).toEqual(expected);
  });

  it('a leader commits an entry once a majority stored it, and tells the followers', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    const li = r.raftLog.lastIndex();
    propose(r, 'some data');
    for (const m of r.takeMessages()) r.step(acceptAndReply(m));
    expect(r.raftLog.committed).toBe(li + 1);
    expect(r.raftLog.nextCommittedEntries()).toEqual([entry(1, li + 1, 'some data')]);
    expect(r.takeMessages()).toEqual([
      msg('MsgApp', 1, 2, { term: 1, index: li + 1, logTerm: 1, commit: li + 1 }),
      msg('MsgApp', 1, 3, { term: 1, index: li + 1, logTerm: 1, commit: li + 1 }),
    ]);
  });

  it.each([
    { size: 1, acceptors: [], committed: true },
    { size: 3, acceptors: [], committed: false },
    { size: 3, acceptors: [2], committed: true },
    { size: 3, acceptors: [2, 3], committed: true },
    { size: 5, acceptors: [], committed: false },
    { size: 5, acceptors: [2], committed: false },
    { size: 5, acceptors: [2, 3], committed: true },
    { size: 5, acceptors: [2, 3, 4, 5], committed: true },
  ])('with $size servers, acknowledgements from $acceptors commit: $committed', ({ size, acceptors, committed }) => {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const s = new MemoryStorage({ voters: ids });
    const r = newRaft(1, ids, { storage: s });
    commitNoopEntry(r, s);
    const li = r.raftLog.lastIndex();
    propose(r, 'some data');
    for (const m of r.takeMessages()) {
      if ((acceptors as NodeId[]).includes(m.to)) r.step(acceptAndReply(m));
    }
    expect(r.raftLog.committed === li + 1).toBe(committed);
  });

  it.each([
    [],
    entriesOfTerms(2),
    entriesOfTerms(1, 2),
    entriesOfTerms(1),
  ])('committing an entry commits all preceding entries, including those of earlier leaders (%#)', (...previous) => {
    const prev = previous as Entry[];
    const s = storageWith([1, 2, 3], prev, { term: 2, vote: 0, commit: 0 });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    becomeLeader(r);
    propose(r, 'some data');
    for (const m of r.takeMessages()) r.step(acceptAndReply(m));
    const li = prev.length;
    expect(termsAndIndexes(r.raftLog.nextCommittedEntries())).toEqual([
      ...termsAndIndexes(prev),
      [3, li + 1],
      [3, li + 2],
    ]);
  });

  it.each([1, 2])('a follower applies entries once it learns they are committed (commit %i)', (commit) => {
    const r = newRaft(1, [1, 2, 3]);
    r.becomeFollower(1, 2);
    const ents = [entry(1, 1, 'some data'), entry(1, 2, 'some data2')];
    r.step(msg('MsgApp', 2, 1, { term: 1, entries: ents, commit }));
    expect(r.raftLog.committed).toBe(commit);
    expect(r.raftLog.nextCommittedEntries()).toEqual(ents.slice(0, commit));
  });

  it.each([
    // matching prev entry (or before the commit index): accepted
    { logTerm: 0, index: 0, resp: { index: 1 } },
    { logTerm: 1, index: 1, resp: { index: 1 } },
    { logTerm: 2, index: 2, resp: { index: 2 } },
    // mismatching term at index 2: rejected, hinting index 1 of term 1
    { logTerm: 1, index: 2, resp: { index: 2, reject: true, rejectHint: 1, logTerm: 1 } },
    // missing index 3: rejected, hinting our last entry
    { logTerm: 2, index: 3, resp: { index: 3, reject: true, rejectHint: 2, logTerm: 2 } },
  ])('a follower checks the previous entry of AppendEntries ($index, $logTerm)', ({ logTerm, index, resp }) => {
    const s = storageWith([1, 2, 3], entriesOfTerms(1, 2), { term: 0, vote: 0, commit: 1 });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    r.becomeFollower(2, 2);
    r.step(msg('MsgApp', 2, 1, { term: 2, logTerm, index, commit: 1 }));
    expect(r.takeMessages()).toEqual([msg('MsgAppResp', 1, 2, { term: 2, ...resp })]);
  });

  it.each([
    { index: 2, logTerm: 2, ents: [[3, 3]], log: [[1, 1], [2, 2], [3, 3]], unstable: [[3, 3]] },
    { index: 1, logTerm: 1, ents: [[3, 2], [4, 3]], log: [[1, 1], [3, 2], [4, 3]], unstable: [[3, 2], [4, 3]] },
    { index: 0, logTerm: 0, ents: [[1, 1]], log: [[1, 1], [2, 2]], unstable: [] },
    { index: 0, logTerm: 0, ents: [[3, 1]], log: [[3, 1]], unstable: [[3, 1]] },
  ])('a follower deletes conflicting entries and appends new ones (after $index)', ({ index, logTerm, ents, log, unstable }) => {
    const s = storageWith([1, 2, 3], entriesOfTerms(1, 2));
    const r = newRaft(1, [1, 2, 3], { storage: s });
    r.becomeFollower(2, 2);
    r.step(msg('MsgApp', 2, 1, { term: 2, logTerm, index, entries: ents.map(([t, i]) => entry(t, i)) }));
    expect(termsAndIndexes(r.raftLog.allEntries())).toEqual(log);
    expect(termsAndIndexes(r.raftLog.nextUnstableEntries())).toEqual(unstable);
  });

  // Figure 7: a new leader forces each possible follower log into agreement with its own.
  const leaderLog = entriesOfTerms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6);
  it.each([
    ['a', entriesOfTerms(1, 1, 1, 4, 4, 5, 5, 6, 6)],
    ['b', entriesOfTerms(1, 1, 1, 4)],
    ['c', entriesOfTerms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6)],
    ['d', entriesOfTerms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7)],
    ['e', entriesOfTerms(1, 1, 1, 4, 4, 4, 4)],
    ['f', entriesOfTerms(1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3)],
  ])('a leader brings follower log (%s) of Figure 7 into agreement with its own', (_name, followerLog) => {
    const term = 8;
    const lead = newRaft(1, [1, 2, 3], { storage: storageWith([1, 2, 3], leaderLog, { term, vote: 0, commit: 10 }) });
    const follower = newRaft(2, [1, 2, 3], { storage: storageWith([1, 2, 3], followerLog, { term: term - 1, vote: 0, commit: 0 }) });
    const net = new RaftNetwork([lead, follower]);
    net.campaign(1);
    // Node 3 (not simulated) grants its vote, so the leader wins whatever node 2 says.
    net.send(msg('MsgVoteResp', 3, 1, { term: term + 1 }));
    expect(lead.state).toBe('leader');
    net.propose(1, '');
    expect(termsAndIndexes(follower.raftLog.allEntries())).toEqual(termsAndIndexes(lead.raftLog.allEntries()));
  });
});

describe('§5.4 safety', () => {
  it('§5.4.1 a candidate sends its last log index and term in RequestVote', () => {
    const r = newRaft(1, [1, 2, 3], { storage: storageWith([1, 2, 3], entriesOfTerms(1, 2), { term: 2, vote: 0, commit: 0 }) });
    r.hup('election');
    expect(r.takeMessages()).toEqual([
      msg('MsgVote', 1, 2, { term: 3, index: 2, logTerm: 2 }),
      msg('MsgVote', 1, 3, { term: 3, index: 2, logTerm: 2 }),
    ]);
  });

  it.each([
    // same last term: the longer log wins
    { log: [1], logTerm: 1, index: 1, reject: false },
    { log: [1], logTerm: 1, index: 2, reject: false },
    { log: [1, 1], logTerm: 1, index: 1, reject: true },
    // the candidate's last term is higher
    { log: [1], logTerm: 2, index: 1, reject: false },
    { log: [1], logTerm: 2, index: 2, reject: false },
    { log: [1, 1], logTerm: 2, index: 1, reject: false },
    // the voter's last term is higher
    { log: [2], logTerm: 1, index: 1, reject: true },
    { log: [2], logTerm: 1, index: 2, reject: true },
    { log: [2, 1], logTerm: 1, index: 1, reject: true },
  ])('§5.4.1 a voter denies its vote to a candidate with a less up-to-date log ($log vs $index@$logTerm)', ({ log, logTerm, index, reject }) => {
    const r = newRaft(1, [1, 2], { storage: storageWith([1, 2], entriesOfTerms(...log)) });
    r.step(msg('MsgVote', 2, 1, { term: 3, logTerm, index }));
    expect(r.takeMessages()).toEqual([msg('MsgVoteResp', 1, 2, { term: 3, reject })]);
  });

  it.each([
    // acknowledgements of entries of earlier terms do not commit them
    { index: 1, committed: 0 },
    { index: 2, committed: 0 },
    // an acknowledgement of an entry of the current term commits it and everything before
    { index: 3, committed: 3 },
  ])('§5.4.2 a leader only commits entries of its current term by counting replicas (ack $index)', ({ index, committed }) => {
    const r = newRaft(1, [1, 2, 3], { storage: storageWith([1, 2, 3], entriesOfTerms(1, 2), { term: 2, vote: 0, commit: 0 }) });
    becomeLeader(r);
    r.takeMessages();
    propose(r, '');
    r.step(msg('MsgAppResp', 2, 1, { term: r.term, index }));
    expect(r.raftLog.committed).toBe(committed);
  });

  it('§5.4.2 (Figure 8) an old-term entry on a majority is not committed, as it may still be overwritten', () => {
    // Figure 8 (c): S1 leads term 4 and has brought index 2 (term 2) to S2 and S3, a majority.
    const ids = [1, 2, 3, 4, 5];
    const withLog = (id: NodeId, terms: number[]) =>
      newRaft(id, ids, { storage: storageWith(ids, entriesOfTerms(...terms), { term: 4, vote: 0, commit: 1 }) });
    const s1 = newRaft(1, ids, { storage: storageWith(ids, entriesOfTerms(1, 2), { term: 3, vote: 0, commit: 1 }) });
    becomeLeader(s1);
    expect(s1.term).toBe(4);
    s1.takeMessages();
    s1.step(msg('MsgAppResp', 2, 1, { term: 4, index: 2 }));
    s1.step(msg('MsgAppResp', 3, 1, { term: 4, index: 2 }));
    expect(s1.raftLog.committed).toBe(1);
    // Figure 8 (d): had it counted, S5 (last term 3) could still be elected and overwrite it.
    const others = [withLog(2, [1, 2]), withLog(3, [1, 2]), withLog(4, [1]), withLog(5, [1, 3])];
    const net = new RaftNetwork(others);
    net.campaign(5);
    expect(others[3].state).toBe('leader');
    expect(others[0].raftLog.allEntries().map((e) => e.term)).toEqual([1, 3, 5]);
    // Figure 8 (e): once an entry of its own term is on a majority, everything before it commits.
    s1.step(msg('MsgAppResp', 2, 1, { term: 4, index: 3 }));
    s1.step(msg('MsgAppResp', 3, 1, { term: 4, index: 3 }));
    expect(s1.raftLog.committed).toBe(3);
  });
});

describe('§6 cluster membership changes', () => {
  const addNode = (nodeId: NodeId) => encodeConfChange({ changes: [{ type: 'addNode', nodeId }] });
  const removeNode = (nodeId: NodeId) => encodeConfChange({ changes: [{ type: 'removeNode', nodeId }] });

  it('a new member counts towards the quorum once its addition is applied', () => {
    const s = new MemoryStorage({ voters: [1, 2] });
    const r = newRaft(1, [1, 2], { storage: s });
    commitNoopEntry(r, s);
    propose(r, 'x');
    r.takeMessages();
    const li = r.raftLog.lastIndex();
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(li - 1);
    r.applyConfChange({ changes: [{ type: 'addNode', nodeId: 3 }] });
    expect([...r.trk.config.voters.incoming].sort()).toEqual([1, 2, 3]);
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(li);
  });

  it('a removed member no longer counts: the remaining voter commits alone', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    propose(r, 'x');
    r.takeMessages();
    const li = r.raftLog.lastIndex();
    r.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 2 }] });
    expect(r.raftLog.committed).toBe(li - 1);
    r.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 3 }] });
    expect(r.raftLog.committed).toBe(li);
  });

  it('only one membership change may be pending: a second proposal becomes an empty entry', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    r.step(msg('MsgProp', 1, 1, { entries: [{ term: 0, index: 0, type: 'confChange', data: addNode(4) }] }));
    r.step(msg('MsgProp', 1, 1, { entries: [{ term: 0, index: 0, type: 'confChange', data: removeNode(3) }] }));
    const [first, second] = r.raftLog.nextUnstableEntries().slice(-2);
    expect(first.type).toBe('confChange');
    expect(second).toEqual(entry(1, first.index + 1, '', 'normal'));
  });

  it('a node does not campaign while a committed membership change is unapplied', () => {
    const s = storageWith([1, 2, 3], [entry(1, 1), { ...entry(1, 2), type: 'confChange', data: addNode(4) }], {
      term: 1,
      vote: 0,
      commit: 2,
    });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    r.hup('election');
    expect(r.state).toBe('follower');
    r.appliedTo(2);
    r.hup('election');
    expect(r.state).toBe('candidate');
  });

  it('a leader removed from the configuration steps down', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    r.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 1 }] });
    expect(r.state).toBe('follower');
    // And, no longer a member, it never campaigns.
    for (let i = 0; i < 100; i++) r.tick();
    expect(r.state).toBe('follower');
  });

  it('in joint consensus a decision needs a majority of both the old and the new configuration', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    // C_old = {1,2,3}, C_new = {1,4,5}
    r.applyConfChange({
      changes: [
        { type: 'addNode', nodeId: 4 },
        { type: 'addNode', nodeId: 5 },
        { type: 'removeNode', nodeId: 2 },
        { type: 'removeNode', nodeId: 3 },
      ],
    });
    r.takeMessages();
    propose(r, 'x');
    r.takeMessages();
    const li = r.raftLog.lastIndex();
    // A majority of C_old only (1,2,3): not committed.
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: li }));
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBeLessThan(li);
    // Plus a majority of C_new (1,4): committed.
    r.step(msg('MsgAppResp', 4, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(li);
  });

  it('a leader leaving the configuration through joint consensus leads until the joint state is left', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    commitNoopEntry(r, s);
    r.applyConfChange({ changes: [{ type: 'removeNode', nodeId: 1 }, { type: 'addNode', nodeId: 4 }] });
    expect(r.state).toBe('leader');
    r.takeMessages();
    propose(r, 'x');
    r.takeMessages();
    const li = r.raftLog.lastIndex();
    // The leader counts in the outgoing config only: {2,3} form a majority of both halves.
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBeLessThan(li);
    r.step(msg('MsgAppResp', 3, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(li);
    r.applyConfChange({ changes: [] });
    expect(r.state).toBe('follower');
  });

  it('in joint consensus an election needs a majority of both configurations', () => {
    const s = new MemoryStorage({ voters: [1, 4, 5], votersOutgoing: [1, 2, 3] });
    const r = newRaft(1, [], { storage: s });
    r.hup('election');
    expect(types(r.takeMessages())).toEqual(['MsgVote', 'MsgVote', 'MsgVote', 'MsgVote']);
    r.step(msg('MsgVoteResp', 2, 1, { term: 1 }));
    r.step(msg('MsgVoteResp', 3, 1, { term: 1 }));
    expect(r.state).toBe('candidate');
    r.step(msg('MsgVoteResp', 5, 1, { term: 1 }));
    expect(r.state).toBe('leader');
  });

  it('learners receive the log but neither vote nor count for the quorum', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [4] });
    const r = newRaft(1, [1, 2, 3], { storage: s });
    r.hup('election');
    expect(r.takeMessages().map((m) => m.to)).toEqual([2, 3]);
    r.step(msg('MsgVoteResp', 2, 1, { term: 1 }));
    expect(r.state).toBe('leader');
    expect(r.takeMessages().map((m) => m.to)).toEqual([2, 3, 4]);
    const li = r.raftLog.lastIndex();
    r.step(msg('MsgAppResp', 4, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(0);
    r.step(msg('MsgAppResp', 2, 1, { term: 1, index: li }));
    expect(r.raftLog.committed).toBe(li);
    // A learner never campaigns.
    const learner = newRaft(4, [1, 2, 3], { learners: [4] });
    for (let i = 0; i < 100; i++) learner.tick();
    expect(learner.state).toBe('follower');
    expect(learner.term).toBe(0);
  });
});
