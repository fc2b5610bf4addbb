/**
 * A split as a command of the partition's Raft log, on three hosts each over its own LevelDB store
 * and PartitionReplicaSet: every replica splits at the same entry, keeps [start, splitKey) and
 * creates the right half's group with the same members (its data already in the store); a write
 * (or transaction prepare) whose entry follows the split and whose key lies beyond it is refused; a split proposed against a
 * partition that split since is refused; and a restart (even one that lost the stores' unsynced
 * writes) keeps both halves and decides every entry as before.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { middleSplitKey } from '@shoal/meta';
import { compareBytes, encodeItemKey, initialPartitions, type Item, type PartitionDescriptor, type PartitionWrite, type TableRecord, type TableSchema } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import {
  ClusterView,
  MultiRaftHost,
  RaftLogStore,
  SplitRefusedError,
  WriteOutOfRangeError,
  proposePartitionSplit,
  proposePartitionWrite,
  proposePrepareTransaction,
  type NodeLog,
} from '@shoal/node';
import { PartitionReplicaSet } from '../src/cluster/partition-replica-set.ts';
import { agreedLeader, pump, whilePumping } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const NODES: NodeId[] = [1, 2, 3];
const TABLE: TableSchema = { name: 'orders', tableId: 5, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const RECORD: TableRecord = { schema: TABLE, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
const PARENT: PartitionDescriptor = { ...initialPartitions(TABLE.tableId, 1, 1)[0], replicas: NODES.map((nodeId) => ({ nodeId, role: 'voter' })) };
const RIGHT_ID = 9;
const ELECTION_TICK = 20;
const SPLIT_KEY = middleSplitKey(PARENT)!;
const quiet: NodeLog = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

const keyOf = (pk: string): Uint8Array => encodeItemKey(TABLE.tableId, { S: pk });
const onRight = (pk: string): boolean => compareBytes(keyOf(pk), SPLIT_KEY) >= 0;
/** Item keys on each side of the split, found by their hash. */
const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
const leftKeys = keys.filter((k) => !onRight(k));
const rightKeys = keys.filter(onRight);
const put = (pk: string, v: string): PartitionWrite => ({ operations: [{ table: TABLE, kind: 'Put', key: { pk: { S: pk } }, item: { pk: { S: pk }, v: { S: v } } }] });

interface Member {
  nodeId: NodeId;
  dir: string;
  logStore: RaftLogStore;
  local: LocalStore;
  replicas: PartitionReplicaSet;
  host: MultiRaftHost;
}

async function startMember(network: MemoryNetwork, nodeId: NodeId, dir: string): Promise<Member> {
  const logStore = await RaftLogStore.open(join(dir, 'raft'));
  const local = await openLocalStore({ dataDir: join(dir, 'partitions') });
  const view = new ClusterView();
  view.apply({ notModified: false, version: 1, partitions: [PARENT], nodes: [], tables: [RECORD] });
  const hosted = logStore.listGroups().map((g) => g.groupId);
  const replicas = await PartitionReplicaSet.open(local, view, quiet, join(dir, 'partitions.json'), hosted);
  const host = new MultiRaftHost({
    nodeId,
    logStore,
    sender: network.sender(nodeId),
    stateMachine: (groupId) => {
      const replica = replicas.get(groupId);
      if (replica === undefined) throw new Error(`no replica of group ${groupId}`);
      return replica;
    },
    tickMs: 10,
    electionTick: ELECTION_TICK,
    heartbeatTick: 1,
    seed: 3,
  });
  replicas.bindHost(host);
  host.open((id) => replicas.waitsForParent(id));
  network.hosts.set(nodeId, host);
  return { nodeId, dir, logStore, local, replicas, host };
}

async function stopMember(network: MemoryNetwork, member: Member): Promise<void> {
  network.hosts.delete(member.nodeId);
  await member.host.stop();
  await member.replicas.flush();
  await member.logStore.close();
  await member.local.close();
}

const leaderOf = (members: readonly Member[], groupId: number): Member | undefined => agreedLeader(members, groupId);

async function write(members: readonly Member[], groupId: number, request: PartitionWrite): Promise<unknown> {
  await pump(members, () => leaderOf(members, groupId) !== undefined, `a leader of group ${groupId}`);
  return whilePumping(members, proposePartitionWrite(leaderOf(members, groupId)!.host, groupId, request), `a write to group ${groupId}`);
}

async function valueOn(member: Member, pk: string): Promise<string | undefined> {
  const found = await member.local.partitions.get({ table: TABLE, key: { pk: { S: pk } } }, { consistent: false });
  const v = (found?.item as Item | undefined)?.v;
  return v !== undefined && 'S' in v ? v.S : undefined;
}

/** Pumps until every member applied everything its groups committed. */
async function settle(members: readonly Member[]): Promise<void> {
  await pump(members, () => members.every((m) => m.host.status().every((s) => s.applied === Math.max(...members.map((o) => o.host.status().find((x) => x.groupId === s.groupId)?.commit ?? 0)))), 'replicas applying');
}

describe('splitting a partition through its Raft log', { timeout: 60_000 }, () => {
  const network = new MemoryNetwork();
  let root = '';
  let members: Member[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-split-'));
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) {
      await m.replicas.open(PARENT);
      await m.host.createGroup(PARENT.id, NODES);
    }
    expect(leftKeys.length).toBeGreaterThan(0);
    expect(rightKeys.length).toBeGreaterThan(0);
  });

  afterAll(async () => {
    for (const m of members) await stopMember(network, m);
    await rm(root, { recursive: true, force: true });
  });

  it('splits every replica at the same entry; a write ordered after the split beyond its key is refused', async () => {
    for (const pk of keys) await write(members, PARENT.id, put(pk, 'before'));
    const leader = leaderOf(members, PARENT.id)!;
    const ticksBefore = leader.host.stats.ticks;
    // Both proposals in one turn: the split's entry comes first, the late write's right after it.
    const split = proposePartitionSplit(leader.host, leader.replicas.descriptorOf(PARENT.id)!, SPLIT_KEY, RIGHT_ID);
    const late = proposePartitionWrite(leader.host, PARENT.id, put(rightKeys[0], 'late'));
    late.catch(() => undefined);
    const halves = await whilePumping(members, split, 'the split');
    await expect(late).rejects.toThrow(WriteOutOfRangeError);
    // The parent's leader campaigns for the right half as it splits: it leads it within a few ticks,
    // where waiting for an election timeout takes ELECTION_TICK to twice that.
    await pump(members, () => leaderOf(members, RIGHT_ID) !== undefined, 'a leader of the right half');
    expect(leaderOf(members, RIGHT_ID)!.nodeId).toBe(leader.nodeId);
    expect(leader.host.stats.ticks - ticksBefore).toBeLessThan(ELECTION_TICK / 2);
    expect(halves.left).toMatchObject({ id: PARENT.id, epoch: 2 });
    expect(halves.right).toMatchObject({ id: RIGHT_ID, epoch: 2, tableId: TABLE.tableId, replicas: PARENT.replicas });
    await settle(members);
    for (const m of members) {
      expect(m.host.hasGroup(RIGHT_ID)).toBe(true);
      const left = m.replicas.descriptorOf(PARENT.id)!;
      const right = m.replicas.descriptorOf(RIGHT_ID)!;
      expect([left.epoch, right.epoch]).toEqual([2, 2]);
      expect(compareBytes(left.startKey, PARENT.startKey)).toBe(0);
      expect(compareBytes(left.endKey, SPLIT_KEY)).toBe(0);
      expect(compareBytes(right.startKey, SPLIT_KEY)).toBe(0);
      expect(compareBytes(right.endKey, PARENT.endKey)).toBe(0);
      // Nothing copied: the right half's items are the ones the parent wrote; the late write changed nothing.
      expect(await valueOn(m, rightKeys[0])).toBe('before');
      // The map (epoch 1, whole range) is older: it moves neither range.
      expect(m.replicas.descriptorAheadOf(PARENT.id)?.epoch).toBe(2);
      expect(m.replicas.aheadOfMap(RIGHT_ID)).toBe(true);
    }
  });

  it('serves each half from its own group, and refuses a split of a parent that split since', async () => {
    await write(members, RIGHT_ID, put(rightKeys[0], 'right'));
    await write(members, PARENT.id, put(leftKeys[0], 'left'));
    await expect(write(members, PARENT.id, put(rightKeys[1], 'stray'))).rejects.toThrow(WriteOutOfRangeError);
    // A transaction's prepare is a write too: no intent beyond the split key through the parent.
    const transaction = { id: 'f'.repeat(32), coordinator: PARENT.id, deadline: Date.now() + 60_000 };
    const prepare = proposePrepareTransaction(leaderOf(members, PARENT.id)!.host, PARENT.id, transaction, put(rightKeys[1], 'intent'));
    await expect(whilePumping(members, prepare, 'a stray prepare')).rejects.toThrow(WriteOutOfRangeError);
    // Proposed with the parent's old descriptor (its whole range): the group split since.
    const leader = leaderOf(members, PARENT.id)!;
    const stale = proposePartitionSplit(leader.host, { ...PARENT, epoch: 2 }, keyOf(leftKeys[1]), RIGHT_ID + 1);
    await expect(whilePumping(members, stale, 'a stale split')).rejects.toThrow(SplitRefusedError);
    await settle(members);
    for (const m of members) {
      expect(m.host.hasGroup(RIGHT_ID + 1)).toBe(false);
      expect(await valueOn(m, rightKeys[0])).toBe('right');
      expect(await valueOn(m, rightKeys[1])).toBe('before');
      expect(await valueOn(m, leftKeys[0])).toBe('left');
    }
  });

  it('keeps both halves through a restart that lost every store write, deciding each entry as before', async () => {
    for (const m of members) await stopMember(network, m);
    // The partition stores are not synced: here they lost everything, and the Raft logs replay it.
    for (const m of members) await rm(join(m.dir, 'partitions'), { recursive: true, force: true });
    members = await Promise.all(NODES.map((id) => startMember(network, id, join(root, `node-${id}`))));
    for (const m of members) {
      expect(m.host.hasGroup(PARENT.id)).toBe(true);
      // The right half waits for its parent to apply the split again: its group opens only then (the
      // replay, which needs no store I/O per entry, may be done already while the others started).
      expect(m.replicas.waitsForParent(RIGHT_ID)).toBe(!m.host.hasGroup(RIGHT_ID));
    }
    await pump(members, () => members.every((m) => m.host.hasGroup(RIGHT_ID)), 'the right halves reopened by the replayed split');
    await settle(members);
    for (const m of members) {
      expect(m.replicas.waitsForParent(RIGHT_ID)).toBe(false);
      expect(compareBytes(m.replicas.descriptorOf(PARENT.id)!.endKey, SPLIT_KEY)).toBe(0);
      // The late and stray writes stay refused in the replay; the halves' own writes stand.
      for (const pk of keys) expect(await valueOn(m, pk), pk).toBe(pk === leftKeys[0] ? 'left' : pk === rightKeys[0] ? 'right' : 'before');
    }
    await write(members, RIGHT_ID, put(rightKeys[2], 'after restart'));
    await settle(members);
    for (const m of members) expect(await valueOn(m, rightKeys[2])).toBe('after restart');
  });
});
