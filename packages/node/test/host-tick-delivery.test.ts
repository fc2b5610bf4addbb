/**
 * Ticks that piled up while a node was held up (a slow round, a GC pause, CPU starvation) are stepped
 * after the messages that arrived meanwhile, and less than an election timeout of them at once: a
 * stall alone neither deposes a leader nor starts an election.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, MessageType, NodeId } from '@shoal/raft';
import { agreedLeader, electedLeader, startKvMember, stopKvMember, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUP = 1;
const ELECTION_TICK = 10;
/** More than two election timeouts: what a node held up for a second or more has queued. */
const STALL_TICKS = 2 * ELECTION_TICK + 1;

interface Member extends KvMember {
  /** The types of the messages this node sent, in order. */
  sent: MessageType[];
}

async function startMember(network: MemoryNetwork, root: string, nodeId: NodeId): Promise<Member> {
  const sent: MessageType[] = [];
  const member = await startKvMember(network, nodeId, join(root, `node-${nodeId}`), {
    seed: 7,
    host: { electionTick: ELECTION_TICK },
    onSend: (message) => sent.push(message.type),
  });
  return { ...member, sent };
}

function message(type: MessageType, from: NodeId, to: NodeId, term: number, commit = 0): Message {
  return { type, from, to, term, logTerm: 0, index: 0, entries: [], commit, reject: false, rejectHint: 0 };
}

const groupStatus = (member: Member) => member.host.status().find((status) => status.groupId === GROUP)!;

describe('MultiRaftHost: ticks stepped after a stall', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-ticks-'));
    members = await Promise.all(NODES.map((id) => startMember(network, root, id)));
    for (const m of members) await m.host.createGroup(GROUP, NODES);
    await electedLeader(members, GROUP);
  });

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('counts the election: one leadership won, none lost', () => {
    expect(members.map((m) => m.host.stats.leadersElected).reduce((a, b) => a + b)).toBe(1);
    expect(agreedLeader(members, GROUP)!.host.stats.leadersElected).toBe(1);
    expect(members.map((m) => m.host.stats.leadersLost).reduce((a, b) => a + b)).toBe(0);
  });

  it('a leader whose followers answered during the stall keeps its leadership', async () => {
    const leader = agreedLeader(members, GROUP)!;
    const { term } = groupStatus(leader);
    const lostBefore = leader.host.stats.leadersLost;
    const ticksBefore = leader.host.stats.ticks;
    const followers = members.filter((m) => m !== leader);
    // The followers' answers and the stall's ticks wait for the same round, as after a held-up loop.
    leader.host.receive(followers.map((f) => ({ groupId: GROUP, message: message('MsgHeartbeatResp', f.nodeId, leader.nodeId, term) })));
    await leader.host.tickOnce(STALL_TICKS);
    expect(leader.host.stats.ticks - ticksBefore).toBe(ELECTION_TICK - 1);
    expect(groupStatus(leader)).toMatchObject({ role: 'leader', term });
    expect(leader.host.stats.leadersLost).toBe(lostBefore);
  });

  it('a follower with its leader heartbeat waiting starts no election', async () => {
    const leader = agreedLeader(members, GROUP)!;
    const follower = members.find((m) => m !== leader)!;
    const { term, commit } = groupStatus(follower);
    const sentBefore = follower.sent.length;
    follower.host.receive([{ groupId: GROUP, message: message('MsgHeartbeat', leader.nodeId, follower.nodeId, term, commit) }]);
    await follower.host.tickOnce(STALL_TICKS);
    const sent = follower.sent.slice(sentBefore);
    expect(sent.filter((type) => type === 'MsgPreVote' || type === 'MsgVote')).toEqual([]);
    expect(sent).toContain('MsgHeartbeatResp');
    expect(groupStatus(follower)).toMatchObject({ role: 'follower', leader: leader.nodeId, term });
  });

  it('a follower that heard nothing during two stalls in a row does campaign', async () => {
    const leader = agreedLeader(members, GROUP)!;
    const follower = members.find((m) => m !== leader)!;
    const sentBefore = follower.sent.length;
    // Its randomized election timeout is below two election timeouts: two capped deliveries reach it.
    await follower.host.tickOnce(STALL_TICKS);
    await follower.host.tickOnce(STALL_TICKS);
    expect(follower.sent.slice(sentBefore)).toContain('MsgPreVote');
  });
});
