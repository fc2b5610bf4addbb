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
import { MultiRaftHost, RaftLogStore, type RaftMessageSender } from '@shoal/node';
import { recordingKvMachines, type KvStateMachine } from './fixtures/host-kv.ts';
import { agreedLeader, pump } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUP = 1;
const ELECTION_TICK = 10;
/** More than two election timeouts: what a node held up for a second or more has queued. */
const STALL_TICKS = 2 * ELECTION_TICK + 1;

interface Member {
  nodeId: NodeId;
  store: RaftLogStore;
  host: MultiRaftHost;
  /** The types of the messages this node sent, in order. */
  sent: MessageType[];
}

/** The network's sender, recording what goes out. */
function recording(sender: RaftMessageSender, sent: MessageType[]): RaftMessageSender {
  return {
    send: (groupId, message) => {
      sent.push(message.type);
      sender.send(groupId, message);
    },
    flush: () => sender.flush(),
  };
}

async function startMember(network: MemoryNetwork, nodeId: NodeId, dir: string): Promise<Member> {
  const store = await RaftLogStore.open(dir);
  const sent: MessageType[] = [];
  const host = new MultiRaftHost({
    nodeId,
    logStore: store,
    sender: recording(network.sender(nodeId), sent),
    stateMachine: recordingKvMachines(new Map<number, KvStateMachine>()),
    tickMs: 10,
    electionTick: ELECTION_TICK,
    heartbeatTick: 1,
    seed: 7,
  });
  host.open();
  network.hosts.set(nodeId, host);
  return { nodeId, store, host, sent };
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
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) await m.host.createGroup(GROUP, NODES);
    await pump(members, () => agreedLeader(members, GROUP) !== undefined, 'a leader');
  });

  afterAll(async () => {
    for (const m of members) {
      network.hosts.delete(m.nodeId);
      await m.host.stop();
      await m.store.close();
    }
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
