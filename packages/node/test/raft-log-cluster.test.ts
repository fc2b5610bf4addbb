/**
 * Three in-process hosts, each with its own RaftLogStore on disk, run three Raft groups (RawNode
 * from @shoal/raft) by the Ready contract, persisting each host's Readies of all groups with one
 * persist() call. A follower, then the leader, is crash-restarted by closing and reopening its
 * store; each must come back with its log and rejoin. The follower catches up by log for two groups
 * and by snapshot for the third, whose log the others compacted meanwhile; the old leader rebuilds
 * that group's state machine from its own stored snapshot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawNode, type Message, type NodeId, type Ready } from '@shoal/raft';
import { RaftLogStore, type GroupId, type GroupPersist } from '../src/index.ts';
import { tempDir } from './support/raft-log.ts';

const GROUPS: readonly GroupId[] = [10, 11, 12];
const SNAPSHOT_GROUP: GroupId = 12;
const MEMBERS: readonly NodeId[] = [1, 2, 3];
const utf8 = new TextEncoder();
const text = new TextDecoder();

interface Replica {
  raw: RawNode;
  /** The state machine: the applied payloads. */
  applied: string[];
  appliedIndex: number;
}

interface Host {
  id: NodeId;
  dir: string;
  store: RaftLogStore;
  replicas: Map<GroupId, Replica>;
  up: boolean;
}

interface InFlight {
  group: GroupId;
  message: Message;
}

function startReplica(host: Host, group: GroupId): Replica {
  const storage = host.store.group(group);
  const snapshot = storage.snapshot();
  const raw = new RawNode({
    id: host.id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    applied: snapshot.metadata.index,
    maxSizePerMsg: 64 * 1024,
    maxInflightMsgs: 64,
    checkQuorum: true,
    preVote: true,
    readOnlyOption: 'safe',
    seed: host.id * 7919 + group,
  });
  const applied = snapshot.data.byteLength > 0 ? (JSON.parse(text.decode(snapshot.data)) as string[]) : [];
  return { raw, applied, appliedIndex: snapshot.metadata.index };
}

class Network {
  readonly hosts = new Map<NodeId, Host>();
  private queue: InFlight[] = [];

  /** One host's Readies of all its groups: one persist, then send, apply, advance. */
  async handleReadies(host: Host): Promise<boolean> {
    const readies: Array<{ group: GroupId; replica: Replica; rd: Ready }> = [];
    for (const [group, replica] of host.replicas) {
      if (replica.raw.hasReady()) readies.push({ group, replica, rd: replica.raw.ready() });
    }
    if (readies.length === 0) return false;
    const updates: GroupPersist[] = readies
      .filter(({ rd }) => rd.hardState !== undefined || rd.entries.length > 0 || rd.snapshot !== undefined)
      .map(({ group, rd }) => ({ groupId: group, hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }));
    await host.store.persist(updates);
    for (const { group, replica, rd } of readies) {
      for (const message of rd.messages) this.queue.push({ group, message });
      if (rd.snapshot !== undefined) {
        replica.applied = JSON.parse(text.decode(rd.snapshot.data)) as string[];
        replica.appliedIndex = rd.snapshot.metadata.index;
      }
      for (const entry of rd.committedEntries) {
        if (entry.type === 'normal' && entry.data.byteLength > 0) replica.applied.push(text.decode(entry.data));
        replica.appliedIndex = entry.index;
      }
      replica.raw.advance(rd);
    }
    return true;
  }

  private deliver(): void {
    const queue = this.queue;
    this.queue = [];
    for (const { group, message } of queue) {
      const to = this.hosts.get(message.to)!;
      if (!to.up) continue;
      to.replicas.get(group)!.raw.step(message);
      // In-process, a snapshot arrives whole at once.
      if (message.type === 'MsgSnap') this.hosts.get(message.from)!.replicas.get(group)!.raw.reportSnapshot(message.to, true);
    }
  }

  /** Handles Readies and delivers messages until quiet (bounded). */
  async settle(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      let busy = this.queue.length > 0;
      for (const host of this.hosts.values()) if (host.up && (await this.handleReadies(host))) busy = true;
      this.deliver();
      if (!busy) return;
    }
    throw new Error('cluster did not settle');
  }

  async tick(rounds: number): Promise<void> {
    for (let r = 0; r < rounds; r++) {
      for (const host of this.hosts.values()) if (host.up) for (const replica of host.replicas.values()) replica.raw.tick();
      await this.settle();
    }
  }

  leader(group: GroupId): Replica {
    for (const host of this.hosts.values()) {
      const replica = host.replicas.get(group);
      if (host.up && replica !== undefined && replica.raw.status().softState.role === 'leader') return replica;
    }
    throw new Error(`group ${group} has no leader`);
  }
}

describe('RaftLogStore under a 3-node Raft cluster', () => {
  const network = new Network();
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    for (const id of MEMBERS) {
      const { dir, cleanup } = await tempDir(`raft-log-node${id}`);
      cleanups.push(cleanup);
      const store = await RaftLogStore.open(dir);
      const host: Host = { id, dir, store, replicas: new Map(), up: true };
      for (const group of GROUPS) {
        await store.bootstrapGroup(group, { voters: [...MEMBERS] }, new Uint8Array(0));
        host.replicas.set(group, startReplica(host, group));
      }
      network.hosts.set(id, host);
    }
  });

  afterAll(async () => {
    for (const host of network.hosts.values()) if (host.up) await host.store.close();
    for (const cleanup of cleanups) await cleanup();
  });

  async function proposeAll(prefix: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      for (const group of GROUPS) network.leader(group).raw.propose(utf8.encode(`${prefix}${i}`));
      await network.settle();
    }
    await network.tick(2);
  }

  it('replicates, survives crash-restarts of a follower and of the leader from their stores, and catches them up', { timeout: 60_000 }, async () => {
    const host1 = network.hosts.get(1)!;
    const host3 = network.hosts.get(3)!;
    for (const group of GROUPS) host1.replicas.get(group)!.raw.campaign();
    await network.settle();
    await proposeAll('a', 20);
    const expectedA = Array.from({ length: 20 }, (_, i) => `a${i}`);
    for (const host of network.hosts.values()) {
      for (const group of GROUPS) expect(host.replicas.get(group)!.applied).toEqual(expectedA);
    }
    const lastBeforeCrash = new Map(GROUPS.map((g) => [g, host3.store.group(g).lastIndex()]));

    // Crash node 3: its replicas vanish, its store is closed; the others keep going.
    host3.up = false;
    host3.replicas.clear();
    await host3.store.close();
    await proposeAll('b', 20);
    const expected = [...expectedA, ...Array.from({ length: 20 }, (_, i) => `b${i}`)];

    // The survivors snapshot and compact one group past anything node 3 has.
    for (const host of [host1, network.hosts.get(2)!]) {
      const replica = host.replicas.get(SNAPSHOT_GROUP)!;
      expect(replica.applied).toEqual(expected);
      const data = utf8.encode(JSON.stringify(replica.applied));
      await host.store.createSnapshot(SNAPSHOT_GROUP, replica.appliedIndex, replica.raw.status().confState, data);
      await host.store.compact(SNAPSHOT_GROUP, replica.appliedIndex);
    }

    // Restart node 3 from its store alone.
    host3.store = await RaftLogStore.open(host3.dir);
    const recovered = host3.store.listGroups();
    expect(recovered.map((g) => g.groupId)).toEqual([...GROUPS]);
    for (const g of recovered) {
      expect(g.lastIndex).toBe(lastBeforeCrash.get(g.groupId));
      expect(g.confState.voters).toEqual([...MEMBERS]);
      expect(g.hardState.term).toBeGreaterThanOrEqual(2);
      host3.replicas.set(g.groupId, startReplica(host3, g.groupId));
    }
    host3.up = true;
    await network.tick(30);
    for (const group of GROUPS) expect(host3.replicas.get(group)!.applied).toEqual(expected);
    await proposeAll('c', 5);
    expected.push(...Array.from({ length: 5 }, (_, i) => `c${i}`));

    for (const group of GROUPS) {
      const replica = host3.replicas.get(group)!;
      expect(replica.applied).toEqual(expected);
      const leaderLog = host1.store.group(group);
      const log = host3.store.group(group);
      expect(log.lastIndex()).toBe(leaderLog.lastIndex());
      const from = Math.max(log.firstIndex(), leaderLog.firstIndex());
      expect(from, `group ${group} keeps some log on both`).toBeLessThanOrEqual(log.lastIndex());
      expect(log.entries(from, log.lastIndex() + 1, Infinity)).toEqual(leaderLog.entries(from, leaderLog.lastIndex() + 1, Infinity));
    }
    expect(host3.store.group(SNAPSHOT_GROUP).snapshot().metadata.index).toBe(host1.store.group(SNAPSHOT_GROUP).snapshot().metadata.index);
    expect(host3.store.group(10).firstIndex()).toBe(2);

    // Crash the leader, node 1: the others elect a leader and go on; node 1 comes back as a
    // follower, rebuilding its state machine from its own snapshot and log, and catches up.
    host1.up = false;
    host1.replicas.clear();
    await host1.store.close();
    await network.tick(40);
    await proposeAll('d', 5);
    expected.push(...Array.from({ length: 5 }, (_, i) => `d${i}`));
    host1.store = await RaftLogStore.open(host1.dir);
    for (const g of host1.store.listGroups()) host1.replicas.set(g.groupId, startReplica(host1, g.groupId));
    host1.up = true;
    await network.tick(30);
    for (const group of GROUPS) {
      const leader = network.leader(group);
      expect(leader).not.toBe(host1.replicas.get(group));
      for (const host of network.hosts.values()) {
        expect(host.replicas.get(group)!.applied, `node ${host.id} group ${group}`).toEqual(expected);
        expect(host.store.group(group).lastIndex()).toBe(leader.raw.status().hardState.commit);
      }
    }
  });
});
