/**
 * What one MultiRaftHost round shares, counted rather than timed: the entries of every group applied
 * in a round go to the node's store in one batch and are answered only once readable; the strong
 * reads of a group that arrive between two rounds share one ReadIndex request; a leader's appends
 * leave before its own log write, a follower's acknowledgement only after its write; a leader answers
 * what committed while its next log write is under way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttributeValue, TableSchema } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { MultiRaftHost, PartitionReplica, RaftLogStore, proposePartitionWrite, type GroupPersist } from '@shoal/node';
import { encodeWrite } from './fixtures/host-kv.ts';
import { agreedLeader, electedLeader, pump, startKvMember, stopKvMember, turn, whilePumping, type KvMember } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const TABLE: TableSchema = { name: 'rounds', tableId: 3, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const S = (value: string): AttributeValue => ({ S: value });

const putOf = (pk: string) => ({ operations: [{ table: TABLE, kind: 'Put' as const, key: { pk: S(pk) }, item: { pk: S(pk), v: S(`value of ${pk}`) } }] });

describe('a round of one host over partition replicas sharing one store', () => {
  const GROUPS = [1, 2, 3, 4, 5, 6, 7, 8];
  let root = '';
  let logStore: RaftLogStore;
  let local: LocalStore;
  let host: MultiRaftHost;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-round-'));
    logStore = await RaftLogStore.open(join(root, 'raft'));
    local = await openLocalStore({ inMemory: true });
    const replicas = new Map<number, PartitionReplica>();
    for (const groupId of GROUPS) replicas.set(groupId, await PartitionReplica.open(groupId, local.partitions));
    host = new MultiRaftHost({
      nodeId: 1,
      logStore,
      sender: { send: () => undefined, flush: () => undefined },
      stateMachine: (groupId) => replicas.get(groupId)!,
      tickMs: 10,
      electionTick: 10,
      heartbeatTick: 1,
      seed: 7,
    });
    host.open();
    // Single-voter groups: each leads itself once its election timeout passes.
    for (const groupId of GROUPS) await host.createGroup(groupId, [1]);
    await pump([{ nodeId: 1, host }], () => GROUPS.every((groupId) => host.leaderOf(groupId) === 1), 'leaders');
  });

  afterAll(async () => {
    await host.stop();
    await logStore.close();
    await local.close();
    await rm(root, { recursive: true, force: true });
  });

  it('writes the entries every group applied in the round in one store batch, and answers each once it is readable', async () => {
    const before = local.partitions.batchesWritten();
    const readable: boolean[] = [];
    await Promise.all(
      GROUPS.map(async (groupId) => {
        const result = await proposePartitionWrite(host, groupId, putOf(`k${groupId}`));
        expect(result.applied).toBe(true);
        // Answered: the item is in the store already, for any reader.
        readable.push((await local.partitions.get({ table: TABLE, key: { pk: S(`k${groupId}`) } })) !== undefined);
      }),
    );
    expect(readable).toEqual(GROUPS.map(() => true));
    expect(local.partitions.batchesWritten() - before).toBe(1);
  });

  it('serves the strong reads of a group that arrive between two rounds with one ReadIndex request', async () => {
    const before = host.stats.readIndexRequests;
    await Promise.all(Array.from({ length: 50 }, () => host.readIndex(GROUPS[0])));
    expect(host.stats.readIndexRequests - before).toBe(1);
    // Two groups: one request each.
    await Promise.all([...Array.from({ length: 10 }, () => host.readIndex(GROUPS[1])), ...Array.from({ length: 10 }, () => host.readIndex(GROUPS[2]))]);
    expect(host.stats.readIndexRequests - before).toBe(3);
  });
});

interface Member extends KvMember {
  /** Holds this member's log writes back until the function returned is called. */
  holdLogWrites(): () => void;
}

async function startMember(network: MemoryNetwork, root: string, nodeId: NodeId): Promise<Member> {
  const member = await startKvMember(network, nodeId, join(root, `node-${nodeId}`), { seed: 11 });
  const { store } = member;
  const persist = store.persist.bind(store);
  let hold: Promise<void> | undefined;
  // The real store, the end of its writes held back at will (as a slow disk would): the entries are in
  // its memory at once, the host learns they are on disk only on release.
  store.persist = async (updates: readonly GroupPersist[], options?: { sync?: boolean }) => {
    const held = hold;
    await persist(updates, options);
    await held;
  };
  return {
    ...member,
    holdLogWrites() {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      hold = gate;
      return () => {
        if (hold === gate) hold = undefined;
        release();
      };
    },
  };
}

describe('when a leader and its followers send, around their log writes', () => {
  const NODES: NodeId[] = [1, 2, 3];
  const GROUP = 1;
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-host-send-'));
    members = await Promise.all(NODES.map((id) => startMember(network, root, id)));
    for (const m of members) await m.host.createGroup(GROUP, NODES);
    // Settle the new leader's first entry everywhere.
    const leader = await electedLeader(members, GROUP);
    await whilePumping(members, leader.host.propose(GROUP, encodeWrite({ key: 'warm', value: 'up' })), 'warm-up');
  });

  afterAll(async () => {
    for (const m of members) await stopKvMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  const lastIndex = (member: Member): number => member.store.group(GROUP).lastIndex();

  /** Waits until every member applied the leader's whole log, then a few turns more: no round left in flight. */
  async function quiet(): Promise<void> {
    const leader = agreedLeader(members, GROUP)!;
    const applied = (m: Member): number | undefined => m.host.status().find((s) => s.groupId === GROUP)?.applied;
    await pump(members, () => members.every((m) => applied(m) === lastIndex(leader) && lastIndex(m) === lastIndex(leader)), 'the group to settle');
    for (let i = 0; i < 10; i++) await turn();
  }

  it('lets the leader’s appends reach the followers’ logs while its own log write is held', async () => {
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    const target = lastIndex(leader) + 1;
    const release = leader.holdLogWrites();
    let proposal: Promise<unknown> | undefined;
    try {
      proposal = leader.host.propose(GROUP, encodeWrite({ key: 'a', value: '1' }));
      let answered = false;
      void proposal.then(() => {
        answered = true;
      });
      for (let i = 0; i < 200 && !followers.every((f) => f.host.stats.persistCalls > 0 && lastIndex(f) >= target); i++) await turn();
      expect(followers.map(lastIndex)).toEqual(followers.map(() => target));
      // On both followers, but the leader's round is still in its write: nothing is answered.
      expect(answered).toBe(false);
    } finally {
      release();
    }
    expect(await whilePumping(members, proposal, 'the proposal')).toBeNull();
    expect(leader.machines.get(GROUP)!.entries.get('a')).toBe('1');
  });

  it('acknowledges an append only once the follower’s own log write is done', async () => {
    await quiet();
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    const target = lastIndex(leader) + 1;
    const releases = followers.map((f) => f.holdLogWrites());
    const matched = (): number[] => (leader.host.progress(GROUP) ?? []).filter((p) => p.nodeId !== leader.nodeId).map((p) => p.match);
    let proposal: Promise<unknown> | undefined;
    try {
      proposal = leader.host.propose(GROUP, encodeWrite({ key: 'b', value: '2' }));
      let answered = false;
      void proposal.then(() => {
        answered = true;
      });
      // Fewer ticks than an election timeout: the leader keeps leading while its followers are stuck in their writes.
      for (let i = 0; i < 40 && !followers.every((f) => lastIndex(f) >= target); i++) {
        if (i % 8 === 0) await leader.host.tickOnce();
        await turn();
      }
      for (let i = 0; i < 20; i++) await turn();
      // The followers hold the entry in memory, not on disk: the leader has no acknowledgement of it.
      expect(followers.map(lastIndex)).toEqual(followers.map(() => target));
      expect(leader.host.leaderOf(GROUP)).toBe(leader.nodeId);
      expect(matched().every((match) => match < target)).toBe(true);
      expect(answered).toBe(false);
    } finally {
      for (const release of releases) release();
    }
    expect(await whilePumping(members, proposal, 'the proposal')).toBeNull();
    // Committed: a quorum (the leader and a follower at least) has it.
    expect(matched().some((match) => match >= target)).toBe(true);
  });

  it('answers a committed write while the leader’s log write of the next entries is still held', async () => {
    await quiet();
    const leader = agreedLeader(members, GROUP)!;
    const followers = members.filter((m) => m !== leader);
    const target = lastIndex(leader) + 1;
    const followerWrites = followers.map((f) => f.host.stats.persistCalls);
    const releaseFirst = leader.holdLogWrites();
    let releaseSecond: (() => void) | undefined;
    let second: Promise<unknown> | undefined;
    try {
      const first = leader.host.propose(GROUP, encodeWrite({ key: 'c', value: '3' }));
      let firstAnswered = false;
      void first.then(() => {
        firstAnswered = true;
      });
      // The followers persist the entry and acknowledge it; the leader, still in its first write, queues the acknowledgements.
      for (let i = 0; i < 200 && !followers.every((f, n) => lastIndex(f) >= target && f.host.stats.persistCalls > followerWrites[n]); i++) await turn();
      for (let i = 0; i < 10; i++) await turn();
      expect(firstAnswered).toBe(false);
      // The leader's next round commits the first entry and appends the second, whose write is held.
      second = leader.host.propose(GROUP, encodeWrite({ key: 'd', value: '4' }));
      let secondAnswered = false;
      void second.then(() => {
        secondAnswered = true;
      });
      releaseSecond = leader.holdLogWrites();
      releaseFirst();
      for (let i = 0; i < 200 && !firstAnswered; i++) await turn();
      expect(firstAnswered).toBe(true);
      expect(leader.machines.get(GROUP)!.entries.get('c')).toBe('3');
      expect(lastIndex(leader)).toBe(target + 1);
      expect(secondAnswered).toBe(false);
    } finally {
      releaseFirst();
      releaseSecond?.();
    }
    expect(await whilePumping(members, second, 'the second proposal')).toBeNull();
  });
});
