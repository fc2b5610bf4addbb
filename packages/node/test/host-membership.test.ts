import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfChangeError } from '@shoal/raft';
import { MembershipChangeRefusedError, NotLeaderError } from '@shoal/node';
import { encodeWrite } from './fixtures/host-kv.ts';
import { agreedLeader, pump, startKvMember, startKvMembers, stopKvMember, whilePumping, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const GROUP = 1;

const statusOf = (member: KvMember) => member.host.status().find((s) => s.groupId === GROUP);

describe('MultiRaftHost membership changes: learners join empty, are promoted, members leave', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: KvMember[] = [];

  /** The members that are voters of the group in their own view. */
  const voters = (): KvMember[] => members.filter((m) => statusOf(m)?.voters.includes(m.nodeId) === true);
  const leader = async (): Promise<KvMember> => {
    await pump(members, () => agreedLeader(voters(), GROUP) !== undefined, 'a leader');
    return agreedLeader(voters(), GROUP)!;
  };
  const write = async (key: string, value: string): Promise<void> => {
    const at = await leader();
    await whilePumping(members, at.host.propose(GROUP, encodeWrite({ key, value })), `write ${key}`);
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-membership-'));
    // No log compaction here: a joining replica catches up from the log (snapshots: partition-snapshot tests).
    members = await startKvMembers(network, root, [1, 2, 3], { seed: 11 });
    // Nodes 1 and 2 start the group; node 3 joins later.
    for (const m of members.slice(0, 2)) await m.host.createGroup(GROUP, [1, 2]);
  });

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('an empty replica added as a learner catches up from the group log, then is promoted to voter', async () => {
    for (let i = 0; i < 20; i++) await write(`before${i}`, `v${i}`);
    const joiner = members[2];
    await joiner.host.joinGroup(GROUP);
    expect(statusOf(joiner)).toMatchObject({ voters: [], learners: [], leftGroup: false, applied: 0 });
    // Hosted, yet holding none of the group's state: requests for it are not served here.
    expect(joiner.host.hasGroup(GROUP)).toBe(true);
    expect(joiner.host.hasMembers(GROUP)).toBe(false);
    expect(members[0]!.host.hasMembers(GROUP)).toBe(true);
    expect(joiner.host.hasMembers(GROUP + 1)).toBe(false);

    const lead = await leader();
    const afterAdd = await whilePumping(members, lead.host.changeMembership(GROUP, { kind: 'addLearner', nodeId: 3 }), 'add learner');
    expect(afterAdd.voters.sort()).toEqual([1, 2]);
    expect(afterAdd.learners).toEqual([3]);
    await pump(members, () => {
      const learner = lead.host.progress(GROUP)?.find((p) => p.nodeId === 3);
      return learner !== undefined && learner.match >= statusOf(lead)!.commit;
    }, 'learner caught up');
    expect(lead.host.progress(GROUP)?.find((p) => p.nodeId === 3)).toMatchObject({ isLearner: true, state: 'replicate' });
    expect(joiner.machines.get(GROUP)!.dump()).toEqual(lead.machines.get(GROUP)!.dump());
    expect(joiner.host.hasMembers(GROUP)).toBe(true);

    const afterPromote = await whilePumping(members, lead.host.changeMembership(GROUP, { kind: 'promote', nodeId: 3 }), 'promote');
    expect(afterPromote.voters.sort()).toEqual([1, 2, 3]);
    expect(afterPromote.learners).toEqual([]);
    await write('after-promote', 'yes');
    await pump(members, () => joiner.machines.get(GROUP)!.entries.get('after-promote') === 'yes', 'the new voter applying');
    expect(statusOf(joiner)!.voters.sort()).toEqual([1, 2, 3]);
  });

  it('refuses a second change while one is in flight, a change on a follower, and an invalid change', async () => {
    const lead = await leader();
    const follower = voters().find((m) => m !== lead)!;
    await expect(follower.host.changeMembership(GROUP, { kind: 'addLearner', nodeId: 4 })).rejects.toBeInstanceOf(NotLeaderError);

    const first = lead.host.changeMembership(GROUP, { kind: 'addLearner', nodeId: 4 });
    await expect(lead.host.changeMembership(GROUP, { kind: 'remove', nodeId: 4 })).rejects.toBeInstanceOf(MembershipChangeRefusedError);
    expect((await whilePumping(members, first, 'add learner 4')).learners).toEqual([4]);
    const removed = await whilePumping(members, lead.host.changeMembership(GROUP, { kind: 'remove', nodeId: 4 }), 'remove learner 4');
    expect(removed.learners).toEqual([]);
    expect(removed.voters.sort()).toEqual([1, 2, 3]);
  });

  it('a removed member learns it left the group; the leader leaves after handing leadership over', async () => {
    let lead = await leader();
    const target = voters().find((m) => m !== lead)!;
    lead.host.transferLeadership(GROUP, target.nodeId);
    await pump(members, () => agreedLeader(voters(), GROUP) === target, 'leadership transfer');
    const leaving = lead;
    lead = target;
    const after = await whilePumping(members, lead.host.changeMembership(GROUP, { kind: 'remove', nodeId: leaving.nodeId }), 'remove the old leader');
    expect(after.voters).not.toContain(leaving.nodeId);
    await pump(members, () => statusOf(leaving)!.leftGroup, 'the removed member noticing');
    expect(statusOf(lead)!.leftGroup).toBe(false);
    await leaving.host.removeGroup(GROUP);
    expect(leaving.store.hasGroup(GROUP)).toBe(false);

    await write('two-voters', 'ok');
    const remaining = voters();
    expect(remaining.map((m) => m.nodeId)).not.toContain(leaving.nodeId);
    await pump(members, () => remaining.every((m) => m.machines.get(GROUP)!.entries.get('two-voters') === 'ok'), 'the remaining voters applying');
  });

  it('refuses removing the last voter with ConfChangeError', async () => {
    const network = new MemoryNetwork();
    const solo = await startKvMember(network, 7, join(root, 'solo'), { seed: 11 });
    try {
      await solo.host.createGroup(5, [7]);
      await pump([solo], () => solo.host.leaderOf(5) === 7, 'solo leader');
      await expect(whilePumping([solo], solo.host.changeMembership(5, { kind: 'remove', nodeId: 7 }), 'remove last')).rejects.toBeInstanceOf(ConfChangeError);
      // The refusal left nothing in flight.
      const learnerAdded = await whilePumping([solo], solo.host.changeMembership(5, { kind: 'addLearner', nodeId: 8 }), 'add learner');
      expect(learnerAdded).toMatchObject({ voters: [7], learners: [8] });
    } finally {
      await stopKvMember(network, solo);
    }
  });
});

describe('MultiRaftHost failure', () => {
  it('reports the failure that stopped it: a Ready it could not persist', async () => {
    const root = await mkdtemp(join(tmpdir(), 'shoal-host-failure-'));
    const network = new MemoryNetwork();
    const [member] = await startKvMembers(network, root, [1], { seed: 11 });
    try {
      await member.host.createGroup(1, [1]);
      await pump([member], () => member.host.leaderOf(1) === 1, 'a leader');
      expect(member.host.failure).toBeUndefined();
      member.store.persist = () => Promise.reject(new Error('disk full'));
      const proposal = member.host.propose(1, encodeWrite({ key: 'k', value: 'v' }));
      await expect(proposal).rejects.toThrow('disk full');
      expect(member.host.failure?.message).toBe('disk full');
    } finally {
      await stopKvMember(network, member);
      await rm(root, { recursive: true, force: true });
    }
  });
});
