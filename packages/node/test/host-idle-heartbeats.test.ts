/**
 * Fewer heartbeats from idle groups (MultiRaftHostOptions.idleHeartbeatEvery): 100 groups on three
 * hosts (real Raft log stores, in-memory network, a heartbeat round every tick) send one heartbeat
 * round in three once idle, keep their leaders, and serve ReadIndex reads and writes as before; a
 * group whose leader's node dies elects another.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, NodeId } from '@shoal/raft';
import { agreedLeader, pump, startKvMembers, stopKvMember, whilePumping, type KvMember } from './fixtures/host-cluster.ts';
import { encodeWrite } from './fixtures/host-kv.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const GROUPS = Array.from({ length: 100 }, (_, i) => i + 1);
const NODES: NodeId[] = [1, 2, 3];

describe('idle groups send one heartbeat round in three', () => {
  const network = new MemoryNetwork();
  const sent: Message[] = [];
  let root = '';
  let members: KvMember[] = [];

  const leaderOf = (groupId: number): KvMember | undefined => agreedLeader(members, groupId);
  const heartbeats = (from: number): number => sent.slice(from).filter((m) => m.type === 'MsgHeartbeat' && m.context === undefined).length;
  const lost = (): number => members.reduce((sum, m) => sum + m.host.stats.leadersLost, 0);
  const dropped = (): number => members.reduce((sum, m) => sum + m.host.stats.idleHeartbeatsDropped, 0);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-idle-heartbeats-'));
    members = await startKvMembers(network, root, NODES, { seed: 5, host: { idleHeartbeatEvery: 3 }, onSend: (message) => void sent.push(message) });
    for (const m of members) await Promise.all(GROUPS.map((g) => m.host.createGroup(g, NODES)));
    await pump(members, () => GROUPS.every((g) => leaderOf(g) !== undefined), 'a leader in every group', 3_000);
    // The elections' appends and commits settle.
    await pump(members, () => false, 'never', 20).catch(() => undefined);
  }, 60_000);

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('sends a third of the heartbeats over 60 ticks, and no leader is lost', { timeout: 60_000 }, async () => {
    const from = sent.length;
    const [lostBefore, droppedBefore] = [lost(), dropped()];
    await pump(members, () => false, 'never', 60).catch(() => undefined);
    // A round a tick, one in three sent: 20 to each of 2 followers per group (give or take a round at the edges).
    expect(heartbeats(from)).toBeGreaterThanOrEqual(GROUPS.length * 2 * 19);
    expect(heartbeats(from)).toBeLessThanOrEqual(GROUPS.length * 2 * 21);
    expect(dropped() - droppedBefore).toBeGreaterThanOrEqual(GROUPS.length * 2 * 39);
    expect(lost()).toBe(lostBefore);
  });

  it('still answers ReadIndex reads (their heartbeats always leave) and takes writes', { timeout: 60_000 }, async () => {
    const group = 9;
    const leader = leaderOf(group)!;
    const follower = members.find((m) => m !== leader)!;
    await whilePumping(members, follower.host.readIndex(group), 'a follower read');
    await whilePumping(members, leader.host.readIndex(group), 'a leader read');
    expect(await whilePumping(members, leader.host.propose(group, encodeWrite({ key: 'k', value: 'v' })), 'a write')).toBeNull();
    await pump(members, () => members.every((m) => m.machines.get(group)?.entries.get('k') === 'v'), 'the write on every member');
  });

  it('elects a new leader when the leader\'s node dies', { timeout: 60_000 }, async () => {
    const group = 13;
    const dead = leaderOf(group)!;
    network.hosts.delete(dead.nodeId);
    await dead.host.stop();
    members = members.filter((m) => m !== dead);
    await pump(members, () => leaderOf(group) !== undefined, 'a new leader of the group', 1_000);
    expect(leaderOf(group)!.nodeId).not.toBe(dead.nodeId);
  });
});
