/** End to end: 3–5 RawNodes over MemoryStorage on a deterministic in-test network. */
import { describe, expect, it } from 'vitest';
import { ProposalDroppedError } from '../src/errors.ts';
import { MemoryStorage } from '../src/storage.ts';
import { Cluster, payload } from './support/cluster.ts';

const roleOf = (c: Cluster, id: number) => c.node(id).raw.status().softState.role;
const termOf = (c: Cluster, id: number) => c.node(id).raw.status().hardState.term;

describe('cluster', () => {
  it('elects one leader and replicates proposals to every member in order', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    expect([1, 2, 3].filter((id) => roleOf(c, id) === 'leader')).toEqual([l.id]);
    for (const p of ['a', 'b', 'c']) c.propose(l.id, p);
    for (const n of c.nodes.values()) expect(n.applied).toEqual(['a', 'b', 'c']);
  });

  it('proposals made on a follower are forwarded to the leader', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const follower = [1, 2, 3].find((id) => id !== l.id)!;
    c.propose(follower, 'via follower');
    for (const n of c.nodes.values()) expect(n.applied).toEqual(['via follower']);
  });

  it('a partitioned leader steps down; the majority elects a new one; healing converges all logs', () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    const old = c.elect();
    c.propose(old.id, 'before');
    const oldTerm = termOf(c, old.id);
    c.isolate(old.id);
    // The isolated leader accepts a proposal it can never commit.
    old.raw.propose(payload('lost'));
    c.tick(30);
    expect(roleOf(c, old.id)).toBe('follower'); // check-quorum
    const fresh = c.elect();
    expect(fresh.id).not.toBe(old.id);
    expect(termOf(c, fresh.id)).toBeGreaterThan(oldTerm);
    c.propose(fresh.id, 'after');
    c.heal();
    c.tick(5);
    for (const n of c.nodes.values()) expect(n.applied).toEqual(['before', 'after']);
    const logs = [...c.nodes.values()].map((n) => n.storage.entries(1, n.storage.lastIndex() + 1, Infinity).map((e) => e.term));
    for (const log of logs) expect(log).toEqual(logs[0]);
  });

  it('a minority cannot commit, and with pre-vote an isolated node does not disrupt the group on return', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const [a, b] = [1, 2, 3].filter((id) => id !== l.id);
    c.isolate(a);
    c.tick(50);
    // Pre-vote kept its term from growing while it could not win.
    expect(termOf(c, a)).toBe(termOf(c, l.id));
    c.propose(l.id, 'x');
    expect(c.node(a).applied).toEqual([]);
    expect(c.node(b).applied).toEqual(['x']);
    c.heal();
    c.tick(5);
    expect(c.leader()!.id).toBe(l.id);
    expect(c.node(a).applied).toEqual(['x']);
  });

  it('a lagging follower behind the compaction point catches up by snapshot', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const lagging = [1, 2, 3].find((id) => id !== l.id)!;
    c.isolate(lagging);
    for (let i = 0; i < 20; i++) c.propose(l.id, `v${i}`);
    for (const id of [1, 2, 3]) if (id !== lagging) c.compact(id);
    c.heal();
    c.tick(5);
    const sentSnapshots = c.sent.filter((m) => m.type === 'MsgSnap' && m.to === lagging);
    expect(sentSnapshots.length).toBeGreaterThan(0);
    c.propose(l.id, 'after');
    const expected = [...Array.from({ length: 20 }, (_, i) => `v${i}`), 'after'];
    for (const n of c.nodes.values()) expect(n.applied).toEqual(expected);
    expect(c.node(lagging).storage.firstIndex()).toBeGreaterThan(1);
  });

  it('leadership transfer hands over to the chosen member', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const target = [1, 2, 3].find((id) => id !== l.id)!;
    c.propose(l.id, 'a');
    l.raw.transferLeadership(target);
    c.settle();
    expect(c.leader()!.id).toBe(target);
    expect(roleOf(c, l.id)).toBe('follower');
    c.propose(target, 'b');
    for (const n of c.nodes.values()) expect(n.applied).toEqual(['a', 'b']);
  });

  it('a transfer to an unreachable member is abandoned and proposals resume', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const target = [1, 2, 3].find((id) => id !== l.id)!;
    c.isolate(target);
    l.raw.transferLeadership(target);
    c.settle();
    expect(() => l.raw.propose(payload('x'))).toThrow(ProposalDroppedError);
    c.tick(10, [l.id]);
    expect(l.raw.status().leadTransferee).toBe(0);
    c.propose(l.id, 'x');
    expect(c.leader()!.id).toBe(l.id);
  });

  it('adds a member as a learner, promotes it, then removes the old leader, which steps down', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    c.propose(l.id, 'a');
    // A joining member starts from the group's bootstrap configuration (the state at index 0).
    c.addNode(4, new MemoryStorage({ voters: [1, 2, 3] }));
    l.raw.proposeConfChange({ changes: [{ type: 'addLearner', nodeId: 4 }] });
    c.settle();
    c.tick(3);
    expect(c.node(4).applied).toEqual(['a']);
    expect(c.node(4).confState.learners).toEqual([4]);
    l.raw.proposeConfChange({ changes: [{ type: 'addNode', nodeId: 4 }] });
    c.settle();
    expect(l.confState.voters).toEqual([1, 2, 3, 4]);
    l.raw.proposeConfChange({ changes: [{ type: 'removeNode', nodeId: l.id }] });
    c.settle();
    expect(roleOf(c, l.id)).toBe('follower');
    c.nodes.delete(l.id);
    const next = c.elect();
    expect(next.confState.voters).toEqual([1, 2, 3, 4].filter((id) => id !== l.id));
    c.propose(next.id, 'b');
    for (const n of c.nodes.values()) expect([n.applied, n.refusedConfChanges]).toEqual([['a', 'b'], 0]);
  });

  it('replaces two voters at once through joint consensus, leaving it automatically', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const gone = [1, 2, 3].filter((id) => id !== l.id);
    c.addNode(4, new MemoryStorage({ voters: [1, 2, 3] }));
    c.addNode(5, new MemoryStorage({ voters: [1, 2, 3] }));
    l.raw.proposeConfChange({
      changes: [
        { type: 'addNode', nodeId: 4 },
        { type: 'addNode', nodeId: 5 },
        { type: 'removeNode', nodeId: gone[0] },
        { type: 'removeNode', nodeId: gone[1] },
      ],
    });
    c.settle();
    c.tick(3);
    expect(l.confState).toEqual({ voters: [l.id, 4, 5].sort(), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });
    for (const id of gone) c.nodes.delete(id);
    c.propose(l.id, 'new config');
    for (const id of [l.id, 4, 5]) expect([c.node(id).applied, c.node(id).refusedConfChanges]).toEqual([['new config'], 0]);
  });

  it('demotes a voter through an explicit joint configuration (learnersNext), left by an empty change', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    const demoted = [1, 2, 3].find((id) => id !== l.id)!;
    l.raw.proposeConfChange({ changes: [{ type: 'addLearner', nodeId: demoted }, { type: 'addNode', nodeId: 4 }], joint: true });
    c.addNode(4, new MemoryStorage({ voters: [1, 2, 3] }));
    c.settle();
    c.tick(3);
    const voters = [1, 2, 3, 4].filter((id) => id !== demoted);
    // Explicit joint: no automatic leave.
    expect(l.confState).toEqual({ voters, learners: [], votersOutgoing: [1, 2, 3], learnersNext: [demoted], autoLeave: false });
    l.raw.proposeConfChange({ changes: [] });
    c.settle();
    for (const n of c.nodes.values()) {
      expect(n.confState).toEqual({ voters, learners: [demoted], votersOutgoing: [], learnersNext: [], autoLeave: false });
    }
    c.propose(l.id, 'x');
    expect(c.node(demoted).applied).toEqual(['x']);
  });

  it('a second conf change proposed while one is pending commits as a no-op', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    c.addNode(4);
    c.addNode(5);
    l.raw.proposeConfChange({ changes: [{ type: 'addLearner', nodeId: 4 }] });
    l.raw.proposeConfChange({ changes: [{ type: 'addLearner', nodeId: 5 }] });
    c.settle();
    expect(l.confState.learners).toEqual([4]);
  });

  it('ReadIndex from a follower yields a read point at the leader commit index', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    c.propose(l.id, 'a');
    const follower = c.node([1, 2, 3].find((id) => id !== l.id)!);
    follower.raw.readIndex(payload('r1'));
    c.settle();
    expect(follower.readStates).toEqual([{ index: l.appliedIndex, context: payload('r1') }]);
  });

  it('lease-based reads are answered by the leader without a heartbeat round', () => {
    const c = new Cluster([1, 2, 3], { readOnlyOption: 'leaseBased' });
    const l = c.elect();
    c.propose(l.id, 'a');
    const before = c.sent.length;
    l.raw.readIndex(payload('r'));
    c.settle();
    expect(l.readStates).toEqual([{ index: l.appliedIndex, context: payload('r') }]);
    expect(c.sent.length).toBe(before);
  });

  it('a restarted node recovers its persisted state and catches up', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    c.propose(l.id, 'a');
    const f = [1, 2, 3].find((id) => id !== l.id)!;
    c.isolate(f);
    c.propose(l.id, 'b');
    c.restart(f);
    expect(c.node(f).raw.status().hardState.term).toBe(termOf(c, l.id));
    c.heal();
    c.tick(3);
    expect(c.node(f).applied).toEqual(['a', 'b']);
  });

  it('in a group bootstrapped with a snapshot at index 1, a new member with empty storage gets the membership by snapshot', () => {
    const voters = [1, 2, 3];
    const c = new Cluster([]);
    for (const id of voters) {
      const node = c.addNode(id, MemoryStorage.bootstrap({ voters }, new TextEncoder().encode('[]')));
      node.appliedIndex = 1;
    }
    const l = c.elect();
    c.propose(l.id, 'a');
    c.addNode(4, new MemoryStorage());
    l.raw.proposeConfChange({ changes: [{ type: 'addNode', nodeId: 4 }] });
    c.settle();
    c.tick(3);
    c.propose(l.id, 'b');
    expect(c.sent.some((m) => m.type === 'MsgSnap' && m.to === 4)).toBe(true);
    expect(c.node(4).confState.voters).toEqual([1, 2, 3, 4]);
    expect(c.node(4).applied).toEqual(['a', 'b']);
    expect(c.node(4).refusedConfChanges).toBe(0);
  });

  it('a new member with empty storage joins a compacted group by snapshot', () => {
    const c = new Cluster([1, 2, 3]);
    const l = c.elect();
    for (let i = 0; i < 5; i++) c.propose(l.id, `v${i}`);
    for (const id of [1, 2, 3]) c.compact(id);
    c.addNode(4, new MemoryStorage());
    l.raw.proposeConfChange({ changes: [{ type: 'addNode', nodeId: 4 }] });
    c.settle();
    c.tick(3);
    // The snapshot predates node 4; the log after it re-adds node 4.
    expect(c.sent.some((m) => m.type === 'MsgSnap' && m.to === 4)).toBe(true);
    expect(c.node(4).applied).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    expect(c.node(4).confState.voters).toEqual([1, 2, 3, 4]);
  });
});
