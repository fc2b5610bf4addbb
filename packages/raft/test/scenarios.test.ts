/** Multi-node scenarios from etcd's raft_test.go, on the synchronous Raft network. */
import { describe, expect, it } from 'vitest';
import { encodeConfChange } from '../src/codec.ts';
import type { Raft } from '../src/raft.ts';
import { MemoryStorage } from '../src/storage.ts';
import type { NodeId } from '../src/types.ts';
import { entriesOfTerms, entry, msg, newRaft, persistAndApply, RaftNetwork, storageWith, type RaftOptions } from './support/raft.ts';

const terms = (r: Raft) => r.raftLog.allEntries().map((e) => e.term);

function group(size: number, options: RaftOptions = {}): [RaftNetwork, Raft[]] {
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const rs = ids.map((id) => newRaft(id, ids, options));
  return [new RaftNetwork(rs), rs];
}

describe('elections', () => {
  it('dueling candidates: the one with the less up-to-date log loses, and the leader it disturbed steps down', () => {
    const [net, [a, b, c]] = group(3);
    net.cut(1, 3);
    net.campaign(1);
    net.campaign(3);
    expect([a.state, b.state, c.state]).toEqual(['leader', 'follower', 'candidate']);
    net.recover();
    // c campaigns again with a higher term: a steps down, but c's log lacks a's entry.
    net.campaign(3);
    expect([a.state, b.state, c.state]).toEqual(['follower', 'follower', 'follower']);
    expect([a.term, b.term, c.term]).toEqual([2, 2, 2]);
    expect([terms(a), terms(b), terms(c)]).toEqual([[1], [1], []]);
    expect([a.raftLog.committed, b.raftLog.committed]).toEqual([1, 1]);
  });

  it('a candidate concedes to a leader of its term', () => {
    const [net, [a, , c]] = group(3);
    net.isolate(1);
    net.campaign(1);
    net.campaign(3);
    expect([a.state, c.state]).toEqual(['candidate', 'leader']);
    expect(a.term).toBe(c.term);
    net.recover();
    c.tick();
    net.send(...c.takeMessages());
    net.propose(3, 'force follower');
    expect(a.state).toBe('follower');
    expect(a.lead).toBe(3);
    expect(a.raftLog.allEntries()).toEqual(c.raftLog.allEntries());
  });

  it('old messages from an earlier leader are ignored', () => {
    const [net, [a, b, c]] = group(3);
    net.campaign(1);
    net.campaign(2);
    net.campaign(1);
    expect([a.state, a.term]).toEqual(['leader', 3]);
    // A MsgApp of term 2 (from b's reign) arrives late at a.
    net.send(msg('MsgApp', 2, 1, { term: 2, index: 3, logTerm: 2, entries: [entry(2, 4)] }));
    net.propose(1, 'somedata');
    for (const r of [a, b, c]) expect(terms(r)).toEqual([1, 2, 3, 3]);
  });

  it('a node whose election fails adopts the newer term, then wins and overwrites newer uncommitted entries', () => {
    const ids = [1, 2, 3, 4, 5];
    const withLog = (id: NodeId, ts: number[], vote = 0, term = ts.at(-1)!) =>
      newRaft(id, ids, { storage: storageWith(ids, entriesOfTerms(...ts), { term, vote, commit: 0 }) });
    const rs = [withLog(1, [1]), withLog(2, [1]), withLog(3, [2]), withLog(4, [], 3, 2), withLog(5, [], 3, 2)];
    const net = new RaftNetwork(rs);
    net.campaign(1);
    expect([rs[0].state, rs[0].term]).toEqual(['follower', 2]);
    net.campaign(1);
    expect([rs[0].state, rs[0].term]).toEqual(['leader', 3]);
    for (const r of rs) expect(terms(r)).toEqual([1, 3]);
  });

  it('check-quorum: a candidate stuck at a higher term is freed when the leader learns its term', () => {
    const [net, [a, b, c]] = group(3, { checkQuorum: true });
    net.campaign(1);
    net.isolate(1);
    net.campaign(3);
    // b heard from the leader recently: it ignores c (leader stickiness).
    expect([b.state, c.state, c.term]).toEqual(['follower', 'candidate', b.term + 1]);
    net.campaign(3);
    expect(c.term).toBe(b.term + 2);
    net.recover();
    net.send(msg('MsgHeartbeat', 1, 3, { term: a.term }));
    // c answered the stale heartbeat with its term: a stepped down to it.
    expect([a.state, a.term]).toEqual(['follower', c.term]);
    net.campaign(3);
    expect(c.state).toBe('leader');
  });

  it('check-quorum: a candidate wins once followers stopped hearing from the old leader', () => {
    const [net, [a, b, c]] = group(3, { checkQuorum: true });
    net.campaign(1);
    expect(a.state).toBe('leader');
    net.campaign(3);
    expect(c.state).toBe('candidate');
    b.randomizedElectionTimeout = b.electionTimeout + 1;
    for (let i = 0; i < b.electionTimeout; i++) b.tick();
    net.campaign(3);
    expect(c.state).toBe('leader');
  });

  it('pre-vote: a node with a smaller term can still complete an election', () => {
    const [net, [n1, n2, n3]] = group(3, { preVote: true });
    net.campaign(1);
    net.cut(1, 3);
    net.cut(2, 3);
    net.campaign(3);
    net.campaign(2);
    expect([n1.term, n2.term, n3.term]).toEqual([2, 2, 1]);
    expect([n1.state, n2.state, n3.state]).toEqual(['follower', 'leader', 'preCandidate']);
    // Node 2 crashes; 3 (term 1) and 1 (term 2) must still elect a leader.
    net.recover();
    net.cut(2, 1);
    net.cut(2, 3);
    net.campaign(3);
    net.campaign(1);
    expect(n1.state === 'leader' || n3.state === 'leader').toBe(true);
  });

  it('a leader ignores a campaign request', () => {
    const [net, [a]] = group(1);
    net.campaign(1);
    const term = a.term;
    net.campaign(1);
    expect([a.state, a.term]).toEqual(['leader', term]);
  });
});

describe('membership', () => {
  it('removing a node lowers the quorum, committing what was waiting for it', () => {
    const s = new MemoryStorage({ voters: [1, 2] });
    const r = newRaft(1, [1, 2], { storage: s });
    r.becomeCandidate();
    r.becomeLeader();
    const cc = { changes: [{ type: 'removeNode' as const, nodeId: 2 }] };
    r.step(msg('MsgProp', 1, 1, { entries: [{ term: 0, index: 0, type: 'confChange', data: encodeConfChange(cc) }] }));
    expect(persistAndApply(r, s)).toEqual([]);
    const ccIndex = r.raftLog.lastIndex();
    r.step(msg('MsgProp', 1, 1, { entries: [entry(0, 0, 'hello')] }));
    r.step(msg('MsgAppResp', 2, 1, { term: r.term, index: ccIndex }));
    expect(persistAndApply(r, s).map((e) => e.type)).toEqual(['normal', 'confChange']);
    r.applyConfChange(cc);
    expect(persistAndApply(r, s)).toEqual([entry(1, 3, 'hello')]);
  });

  it('a new leader treats its whole log as possibly holding a pending conf change', () => {
    const s = storageWith([1, 2], [entry(1, 1), { ...entry(1, 2), type: 'confChange', data: encodeConfChange({ changes: [{ type: 'addNode', nodeId: 3 }] }) }], {
      term: 1,
      vote: 0,
      commit: 0,
    });
    const r = newRaft(1, [1, 2], { storage: s });
    r.becomeCandidate();
    r.becomeLeader();
    expect(r.pendingConfIndex).toBe(2);
    r.step(msg('MsgProp', 1, 1, { entries: [{ term: 0, index: 0, type: 'confChange', data: encodeConfChange({ changes: [{ type: 'addNode', nodeId: 4 }] }) }] }));
    expect(r.raftLog.nextUnstableEntries().at(-1)!.type).toBe('normal');
  });

  it('a leadership transfer to a non-member is ignored', () => {
    const [net, [a]] = group(3);
    net.campaign(1);
    net.send(msg('MsgTransferLeader', 4, 1, { term: a.term }));
    expect(a.leadTransferee).toBe(0);
    expect(a.state).toBe('leader');
  });

  it('a transfer completes through the network: the transferee leads the next term', () => {
    const [net, [a, b]] = group(3, { preVote: true, checkQuorum: true });
    net.campaign(1);
    net.propose(1, 'x');
    net.send(msg('MsgTransferLeader', 2, 1, { term: a.term }));
    expect([a.state, b.state, b.term]).toEqual(['follower', 'leader', 2]);
    expect(a.lead).toBe(2);
  });
});
