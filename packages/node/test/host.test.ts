import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, NodeId } from '@shoal/raft';
import { GroupNotHostedError, NotLeaderError, ProposalOutcomeUnknownError, type GroupPersist } from '@shoal/node';
import { encodeWrite } from './fixtures/host-kv.ts';
import { agreedLeader, pump, startKvMember, startKvMembers, stopKvMember, turn, whilePumping, type KvMember, type KvMemberOptions } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUPS = Array.from({ length: 20 }, (_, i) => i + 1);

/** Every member here: the test timing, and snapshots every 40 applied entries (the restart test needs some). */
const MEMBER_OPTIONS: KvMemberOptions = { seed: 42, host: { snapshotPolicy: { every: 40, keep: 10 } } };

const allLed = (members: readonly KvMember[]): boolean => GROUPS.every((g) => agreedLeader(members, g) !== undefined);

const sameState = (members: readonly KvMember[]): boolean =>
  GROUPS.every((g) => {
    const dumps = members.map((m) => JSON.stringify(m.machines.get(g)?.dump()));
    return dumps.every((d) => d === dumps[0]);
  });

/** Proposes while ticking (so a lost message is retried), resolving with every result. */
async function proposeAll(members: readonly KvMember[], writes: Array<{ groupId: number; key: string; value: string }>): Promise<unknown[]> {
  const results = Promise.all(writes.map(({ groupId, key, value }) => agreedLeader(members, groupId)!.host.propose(groupId, encodeWrite({ key, value }))));
  return whilePumping(members, results, 'proposals');
}

describe('MultiRaftHost: three hosts, 20 groups, in one process', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: KvMember[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-'));
    members = await startKvMembers(network, root, NODES, MEMBER_OPTIONS);
    for (const m of members) for (const g of GROUPS) await m.host.createGroup(g, NODES);
  });

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('elects one leader per group', async () => {
    await pump(members, () => allLed(members), 'leaders');
    for (const g of GROUPS) expect(agreedLeader(members, g)).toBeDefined();
  });

  it('replicates 1,000 proposals and applies them identically on all three hosts', async () => {
    const writes = Array.from({ length: 1_000 }, (_, i) => ({ groupId: GROUPS[i % GROUPS.length], key: `k${i % 300}`, value: `v${i}` }));
    const results = await proposeAll(members, writes);
    // Each result is the value before the write, as the leader's state machine returned it.
    const previous = new Map<string, string>();
    writes.forEach((w, i) => {
      const key = `${w.groupId}/${w.key}`;
      expect(results[i]).toBe(previous.get(key) ?? null);
      previous.set(key, w.value);
    });
    await pump(members, () => sameState(members), 'followers applying');
    for (const g of GROUPS) {
      const expected = [...previous].filter(([k]) => k.startsWith(`${g}/`)).map(([k, v]) => [k.slice(k.indexOf('/') + 1), v]);
      expect(members[0].machines.get(g)!.dump()).toEqual(expected.sort(([a], [b]) => (a < b ? -1 : 1)));
    }
  });

  it('persists the Readies of all groups of a round in one batch with one fsync', async () => {
    const calls: GroupPersist[][] = [];
    const restore = members.map((m) => {
      const persist = m.store.persist.bind(m.store);
      m.store.persist = (updates, options) => {
        calls.push([...updates]);
        return persist(updates, options);
      };
      return () => {
        m.store.persist = persist;
      };
    });
    const before = members.map((m) => ({ synced: m.store.stats.syncedBatches, calls: m.host.stats.persistCalls }));
    try {
      await proposeAll(members, GROUPS.map((g) => ({ groupId: g, key: 'batch', value: `b${g}` })));
    } finally {
      for (const undo of restore) undo();
    }
    members.forEach((m, i) => {
      expect(m.store.stats.syncedBatches - before[i].synced).toBeLessThanOrEqual(m.host.stats.persistCalls - before[i].calls);
    });
    // Each leader appended all its groups' proposals in the same persist call.
    for (const m of members) {
      const led = GROUPS.filter((g) => agreedLeader(members, g) === m);
      if (led.length === 0) continue;
      expect(calls.some((updates) => led.every((g) => updates.some((u) => u.groupId === g && (u.entries?.length ?? 0) > 0)))).toBe(true);
    }
  });

  it('ReadIndex on a follower sees the latest committed write', async () => {
    const leader = agreedLeader(members, 7)!;
    const follower = members.find((m) => m !== leader)!;
    await proposeAll(members, [{ groupId: 7, key: 'fresh', value: 'newest' }]);
    let read = false;
    const reading = follower.host.readIndex(7).then(() => {
      read = true;
      return follower.machines.get(7)!.entries.get('fresh');
    });
    await pump(members, () => read, 'read index');
    expect(await reading).toBe('newest');
  });

  it('rejects a proposal on a follower with NotLeader and the leader hint', async () => {
    const leader = agreedLeader(members, 3)!;
    const follower = members.find((m) => m !== leader)!;
    const error = await follower.host.propose(3, encodeWrite({ key: 'x', value: 'y' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotLeaderError);
    expect((error as NotLeaderError).leader).toBe(leader.nodeId);
    expect(follower.machines.get(3)!.entries.has('x')).toBe(false);
  });

  it('transfers leadership to a chosen follower', async () => {
    const leader = agreedLeader(members, 5)!;
    const target = members.find((m) => m !== leader)!;
    leader.host.transferLeadership(5, target.nodeId);
    await pump(members, () => agreedLeader(members, 5) === target, 'leadership transfer');
    await proposeAll(members, [{ groupId: 5, key: 'moved', value: 'yes' }]);
    await pump(members, () => sameState(members), 'all three applying');
    expect(leader.machines.get(5)!.entries.get('moved')).toBe('yes');
  });

  it('refuses a proposal made while it hands leadership over, naming the node it hands it to', async () => {
    const leader = agreedLeader(members, 6)!;
    const target = members.find((m) => m !== leader)!;
    // Both in one turn: the transfer starts in the round that then drops the proposal.
    leader.host.transferLeadership(6, target.nodeId);
    const refused = await leader.host.propose(6, encodeWrite({ key: 'during', value: 'transfer' })).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(NotLeaderError);
    expect((refused as NotLeaderError).leader).toBe(target.nodeId);
    await pump(members, () => agreedLeader(members, 6) === target, 'leadership transfer');
  });

  it('survives a stopped leader host, which restarts from its log store and catches up', async () => {
    const victim = agreedLeader(members, 1)!;
    const ledBefore = GROUPS.filter((g) => agreedLeader(members, g) === victim);
    await stopKvMember(network, victim);
    const survivors = members.filter((m) => m !== victim);
    await pump(survivors, () => allLed(survivors), 'new leaders');
    for (const g of ledBefore) expect(agreedLeader(survivors, g)).toBeDefined();
    // Enough writes that the leaders compact their logs past what the stopped host has.
    const whileDown = Array.from({ length: 60 }, (_, i) => GROUPS.map((g) => ({ groupId: g, key: `down${i % 7}`, value: `d${i}` }))).flat();
    await proposeAll(survivors, whileDown);
    await proposeAll(survivors, GROUPS.map((g) => ({ groupId: g, key: 'after', value: `stop${g}` })));
    expect(survivors.every((m) => m.host.stats.snapshotsTaken >= GROUPS.length)).toBe(true);

    const restarted = await startKvMember(network, victim.nodeId, join(root, `node-${victim.nodeId}`), MEMBER_OPTIONS);
    members = [...survivors, restarted];
    expect(restarted.host.status().map((s) => s.groupId)).toEqual(GROUPS);
    await pump(members, () => sameState(members) && allLed(members), 'restarted host catching up');
    for (const g of GROUPS) expect(restarted.machines.get(g)!.entries.get('after')).toBe(`stop${g}`);
    // Every group caught up by a snapshot: the leaders no longer had the entries it lacked.
    expect(restarted.host.stats.snapshotsRestored).toBeGreaterThanOrEqual(GROUPS.length);
    await proposeAll(members, GROUPS.map((g) => ({ groupId: g, key: 'again', value: `a${g}` })));
    await pump(members, () => sameState(members), 'all three applying');
  });
});

describe('MultiRaftHost: one host', () => {
  const network = new MemoryNetwork();
  let root = '';
  let member: KvMember;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-single-'));
    member = await startKvMember(network, 1, join(root, 'node-1'), MEMBER_OPTIONS);
    await member.host.createGroup(1, [1]);
    await member.host.createGroup(2, [1]);
    await pump([member], () => member.host.leaderOf(1) === 1 && member.host.leaderOf(2) === 1, 'single-member leaders');
  });

  afterAll(async () => {
    await stopKvMember(network, member);
    await rm(root, { recursive: true, force: true });
  });

  it('delivers the ticks missed during a pause at once, less than an election timeout of them', async () => {
    member.host.startTicking();
    const before = member.host.stats.ticks;
    // Blocks the event loop for 20 tick intervals (tickMs is 10), as a GC pause or a stalled VM would.
    const pausedAt = performance.now();
    while (performance.now() - pausedAt < 200);
    for (let i = 0; i < 1_000 && member.host.stats.ticks === before; i++) await turn();
    // 20 were due; at most electionTick - 1 are stepped at once (host-tick-delivery.test.ts says why).
    expect(member.host.stats.ticks - before).toBe(9);
  });

  it('removes a group: its log is gone and its messages are reported as not hosted', async () => {
    expect(await member.host.propose(2, encodeWrite({ key: 'a', value: 'b' }))).toBe(null);
    await member.host.removeGroup(2);
    expect(member.host.hasGroup(2)).toBe(false);
    expect(member.store.hasGroup(2)).toBe(false);
    const heartbeat: Message = { type: 'MsgHeartbeat', from: 2, to: 1, term: 5, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
    expect(member.host.receive([{ groupId: 2, message: heartbeat }, { groupId: 1, message: { ...heartbeat, term: 0 } }])).toEqual([2]);
    await expect(member.host.propose(2, encodeWrite({ key: 'c', value: 'd' }))).rejects.toBeInstanceOf(GroupNotHostedError);
    expect(await member.host.propose(1, encodeWrite({ key: 'still', value: 'works' }))).toBe(null);
  });
});

describe('MultiRaftHost: a proposal placed in the log when its replica goes', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: KvMember[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-placed-'));
    members = await startKvMembers(network, root, [1, 2], MEMBER_OPTIONS);
    for (const m of members) await m.host.createGroup(7, [1, 2]);
    await pump(members, () => members.every((m) => m.host.leaderOf(7) === 1 || m.host.leaderOf(7) === 2) && agreedLeader(members, 7) !== undefined, 'leader of group 7');
  });

  afterAll(async () => {
    for (const m of members) if (network.hosts.has(m.nodeId)) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('fails it as outcome unknown (it may still commit elsewhere), not as not hosted', async () => {
    const leader = agreedLeader(members, 7)!;
    const follower = members.find((m) => m !== leader)!;
    // Without its follower the leader persists the entry but cannot commit it.
    network.hosts.delete(follower.nodeId);
    const proposal = leader.host.propose(7, encodeWrite({ key: 'k', value: 'v' }));
    const outcome = proposal.then(
      () => 'committed',
      (error: unknown) => error,
    );
    // Rounds without ticks: the entry is placed and persisted, no election starts.
    for (let i = 0; i < 20; i++) await leader.host.tickOnce(0);
    await leader.host.removeGroup(7);
    const error = await outcome;
    expect(error).toBeInstanceOf(ProposalOutcomeUnknownError);
    // A proposal after the removal was never proposed: that one is plainly not hosted.
    await expect(leader.host.propose(7, encodeWrite({ key: 'k2', value: 'v2' }))).rejects.toBeInstanceOf(GroupNotHostedError);
    network.hosts.set(follower.nodeId, follower.host);
  });
});
