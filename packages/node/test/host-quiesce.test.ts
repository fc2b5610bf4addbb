/**
 * Quiescence of idle groups: 1,000 groups on three MultiRaftHosts (real Raft log stores, in-memory
 * network) go quiet once idle, a write to one wakes it and commits, and a quiesced group whose
 * leader's node dies elects a new leader among the others.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeId } from '@shoal/raft';
import { agreedLeader, pump, settle, startKvMembers, stopKvMember, whilePumping, type KvMember } from './fixtures/host-cluster.ts';
import { encodeWrite } from './fixtures/host-kv.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const GROUPS = Array.from({ length: 1_000 }, (_, i) => i + 1);
const NODES: NodeId[] = [1, 2, 3];

describe('quiescence: 1,000 idle groups on three hosts', () => {
  const network = new MemoryNetwork();
  const live = new Set<NodeId>(NODES);
  let sent = 0;
  let root = '';
  let members: KvMember[] = [];

  const leaderOf = (groupId: number): KvMember | undefined => agreedLeader(members, groupId);
  const everyGroupLed = (): boolean => GROUPS.every((g) => leaderOf(g) !== undefined);
  const allQuiet = (): boolean => members.every((m) => m.host.quiescedGroups() === GROUPS.length);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-quiesce-'));
    members = await startKvMembers(network, root, NODES, {
      seed: 3,
      host: { quiescence: { isNodeLive: (id) => live.has(id) } },
      onSend: () => void sent++,
    });
    for (const m of members) await Promise.all(GROUPS.map((g) => m.host.createGroup(g, NODES)));
  }, 60_000);

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('elect, then go quiet: no message at all over 50 ticks', { timeout: 60_000 }, async () => {
    await pump(members, everyGroupLed, 'a leader in every group', 3_000);
    await pump(members, allQuiet, 'every group quiesced', 3_000);
    // The answers to the last quiesce heartbeats may still be on their way out (a follower quiesces
    // as it steps the heartbeat and answers in its next round).
    await settle(members, () => sent);
    const before = sent;
    const ticks = members.map((m) => m.host.stats.ticks);
    await pump(members, () => false, 'never', 50).catch(() => undefined);
    expect(members.map((m) => m.host.stats.ticks - ticks[members.indexOf(m)])).toEqual([50, 50, 50]);
    expect(sent - before).toBe(0);
    expect(members.reduce((sum, m) => sum + m.host.stats.quiesced, 0)).toBeGreaterThanOrEqual(GROUPS.length);
  });

  it('a write wakes its group and commits on every member; the group goes quiet again, the others stay quiet', { timeout: 60_000 }, async () => {
    const group = 7;
    const leader = leaderOf(group)!;
    const before = sent;
    expect(await whilePumping(members, leader.host.propose(group, encodeWrite({ key: 'k', value: 'woken' })), 'a write to a quiesced group')).toBeNull();
    await pump(members, () => members.every((m) => m.machines.get(group)?.entries.get('k') === 'woken'), 'the write on every member');
    await pump(members, allQuiet, 'every group quiesced again', 500);
    // The write, its acknowledgements and the quiescing heartbeats of one group: a handful of messages.
    expect(sent - before).toBeLessThan(40);
  });

  it('followers of a quiesced group whose leader\'s node died wake up and elect another leader', { timeout: 60_000 }, async () => {
    const group = 11;
    const dead = leaderOf(group)!;
    live.delete(dead.nodeId);
    network.hosts.delete(dead.nodeId);
    await dead.host.stop();
    members = members.filter((m) => m !== dead);
    await pump(members, () => leaderOf(group) !== undefined, 'a new leader of the group', 1_000);
    const leader = leaderOf(group)!;
    expect(leader.nodeId).not.toBe(dead.nodeId);
    await whilePumping(members, leader.host.propose(group, encodeWrite({ key: 'after', value: 'failover' })), 'a write after the failover');
    await pump(members, () => members.every((m) => m.machines.get(group)?.entries.get('after') === 'failover'), 'the write on both survivors');
    // Groups the dead node led all moved; those led by a survivor stayed quiet.
    await pump(members, () => GROUPS.every((g) => leaderOf(g) !== undefined), 'every group led by a survivor', 3_000);
    members.push(dead);
  });
});
