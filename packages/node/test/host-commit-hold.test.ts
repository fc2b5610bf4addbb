/**
 * commitNotificationHoldMs: a leader holds an append without entries (a follower's new commit index)
 * and drops it when an append with entries to that follower goes first, which carries the commit
 * index too; a held append nothing supersedes goes out when the hold ends; a group that quiesces
 * drops what it holds (its quiesce heartbeat carries the commit index).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, NodeId } from '@shoal/raft';
import { agreedLeader, pump, settle, startKvMembers, stopKvMember, turn, type KvMember } from './fixtures/host-cluster.ts';
import { encodeWrite } from './fixtures/host-kv.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const GROUP = 1;

const isEmptyAppend = (message: Message): boolean => message.type === 'MsgApp' && message.entries.length === 0;
const status = (member: KvMember) => member.host.status().find((s) => s.groupId === GROUP)!;

/** Bounds a wait of settleWithoutTicks (inside the 30 s a test gets): every step is an fsync'd LevelDB batch, slow on a loaded machine's shared disk. */
const SETTLE_LIMIT_MS = 20_000;

/** Turns of the event loop (no ticks, so no heartbeat carries a commit index) until `done`, bounded by time, not turns. */
async function settleWithoutTicks(done: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + SETTLE_LIMIT_MS; Date.now() < deadline; ) {
    if (done()) return;
    await turn();
  }
  throw new Error(`gave up waiting for ${what}`);
}

interface Cluster {
  network: MemoryNetwork;
  members: KvMember[];
  /** Every message each member handed its sender, in order. */
  sent: Map<NodeId, Message[]>;
  root: string;
}

async function startCluster(holdMs: number, quiesce: boolean): Promise<Cluster> {
  const network = new MemoryNetwork();
  const root = await mkdtemp(join(tmpdir(), 'shoal-commit-hold-'));
  const sent = new Map<NodeId, Message[]>(NODES.map((id) => [id, []]));
  const members = await startKvMembers(network, root, NODES, {
    seed: 5,
    host: { commitNotificationHoldMs: holdMs, ...(quiesce ? { quiescence: { isNodeLive: () => true } } : {}) },
    onSend: (message) => sent.get(message.from)!.push(message),
  });
  for (const m of members) await m.host.createGroup(GROUP, NODES);
  await pump(members, () => agreedLeader(members, GROUP) !== undefined, 'a leader');
  // Everything the election left to commit, committed and known everywhere.
  await pump(members, () => members.every((m) => status(m).commit === status(agreedLeader(members, GROUP)!).commit), 'commits known');
  return { network, members, sent, root };
}

async function stopCluster(cluster: Cluster): Promise<void> {
  for (const m of cluster.members) await stopKvMember(cluster.network, m);
  await rm(cluster.root, { recursive: true, force: true });
}

describe('commit notifications held for the next append', () => {
  let cluster: Cluster;

  // Longer than the test: only an append with entries can release what is held.
  beforeAll(async () => {
    cluster = await startCluster(600_000, false);
  });
  afterAll(() => stopCluster(cluster));

  it('sends no append without entries: the next append carries the commit index of the one before', async () => {
    const { members, sent } = cluster;
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    const sentBefore = sent.get(leader.nodeId)!.length;
    const heldBefore = leader.host.stats.emptyAppendsHeld;

    await leader.host.propose(GROUP, encodeWrite({ key: 'a', value: '1' }));
    const first = status(leader).commit;
    await settleWithoutTicks(() => leader.host.stats.emptyAppendsHeld - heldBefore >= 2, 'both commit notifications held');
    // The followers persisted the entry but do not know it committed.
    for (const f of followers) expect(status(f).commit).toBeLessThan(first);

    await leader.host.propose(GROUP, encodeWrite({ key: 'b', value: '2' }));
    await settleWithoutTicks(() => followers.every((f) => f.machines.get(GROUP)!.entries.get('a') === '1'), 'the followers applying the first write');
    for (const f of followers) expect(status(f).commit).toBeGreaterThanOrEqual(first);
    expect(leader.host.stats.emptyAppendsSuperseded).toBeGreaterThanOrEqual(2);
    expect(sent.get(leader.nodeId)!.slice(sentBefore).filter(isEmptyAppend)).toEqual([]);
  });
});

describe('a held commit notification nothing supersedes', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(1, false);
  });
  afterAll(() => stopCluster(cluster));

  it('goes out when the hold ends: every follower applies the last write without another append or a tick', async () => {
    const { members, sent } = cluster;
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    const sentBefore = sent.get(leader.nodeId)!.length;
    await leader.host.propose(GROUP, encodeWrite({ key: 'last', value: 'x' }));
    await settleWithoutTicks(() => followers.every((f) => f.machines.get(GROUP)!.entries.get('last') === 'x'), 'the followers applying the write');
    const emptyAppends = sent.get(leader.nodeId)!.slice(sentBefore).filter(isEmptyAppend);
    expect(new Set(emptyAppends.map((m) => m.to))).toEqual(new Set(followers.map((f) => f.nodeId)));
  });
});

describe('a group that quiesces with commit notifications held', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(600_000, true);
  });
  afterAll(() => stopCluster(cluster));

  it('drops them: its quiesce heartbeat carries the commit index, and nothing wakes the followers after', async () => {
    const { members, sent } = cluster;
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    await leader.host.propose(GROUP, encodeWrite({ key: 'q', value: 'quiet' }));
    await pump(members, () => members.every((m) => m.host.quiescedGroups() === 1), 'the group quiesced');
    await pump(members, () => followers.every((f) => f.machines.get(GROUP)!.entries.get('q') === 'quiet'), 'the followers applying the write', 20);
    const total = (): number => [...sent.values()].reduce((sum, list) => sum + list.length, 0);
    // The answers to the quiesce heartbeats may still be on their way out.
    await settle(members, total);
    const before = total();
    await pump(members, () => false, 'never', 30).catch(() => undefined);
    expect(total() - before).toBe(0);
    expect(members.every((m) => m.host.quiescedGroups() === 1)).toBe(true);
    // Held, then dropped as the group quiesced: never sent.
    expect(sent.get(leader.nodeId)!.filter(isEmptyAppend)).toEqual([]);
  });
});
