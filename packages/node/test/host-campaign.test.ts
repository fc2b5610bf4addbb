/**
 * MultiRaftHost.campaign: a group just created elects the campaigning member at once, even when the
 * other members create the group only after its first vote requests (dropped as for a group they do
 * not host), instead of after an election timeout; a group with a known leader is left alone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageType, NodeId } from '@shoal/raft';
import { agreedLeader, pump, startKvMember, stopKvMember, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUP = 4;
const ELECTION_TICK = 20;

interface Member extends KvMember {
  /** The types of the messages this node sent, in order (one group here). */
  sent: MessageType[];
}

describe('MultiRaftHost.campaign', () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-campaign-'));
    members = await Promise.all(
      NODES.map(async (nodeId) => {
        const sent: Member['sent'] = [];
        const member = await startKvMember(network, nodeId, join(root, `node-${nodeId}`), {
          seed: 11,
          host: { electionTick: ELECTION_TICK },
          onSend: (message) => sent.push(message.type),
        });
        return { ...member, sent };
      }),
    );
  });

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('elects the campaigning member within a few ticks, its first vote requests lost to members not created yet', async () => {
    const [first, ...others] = members;
    await first.host.createGroup(GROUP, NODES);
    first.host.campaign(GROUP);
    // Two ticks with the others not hosting the group: their pre-votes go nowhere.
    for (let tick = 0; tick < 2; tick++) {
      await first.host.tickOnce();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(first.sent.filter((type) => type === 'MsgPreVote').length).toBeGreaterThanOrEqual(2);
    expect(first.host.leaderOf(GROUP)).toBe(0);
    for (const m of others) await m.host.createGroup(GROUP, NODES);
    const ticksBefore = first.host.stats.ticks;
    await pump(members, () => agreedLeader(members, GROUP) !== undefined, 'a leader');
    expect(agreedLeader(members, GROUP)!.nodeId).toBe(first.nodeId);
    // An election timeout alone is ELECTION_TICK to twice that.
    expect(first.host.stats.ticks - ticksBefore).toBeLessThan(ELECTION_TICK / 2);
  });

  it('does nothing on a member that knows a leader', async () => {
    const follower = members.find((m) => m.host.leaderOf(GROUP) !== m.nodeId)!;
    const sentBefore = follower.sent.length;
    follower.host.campaign(GROUP);
    for (let tick = 0; tick < 3; tick++) await follower.host.tickOnce();
    expect(follower.sent.slice(sentBefore).filter((type) => type === 'MsgPreVote' || type === 'MsgVote')).toEqual([]);
    expect(agreedLeader(members, GROUP)!.nodeId).toBe(members[0].nodeId);
  });
});
