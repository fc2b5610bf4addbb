/**
 * Three real storage nodes (startStorageNode) as child processes on 127.0.0.1, all three meta peers:
 * the meta group elects, the nodes register, a table created through MetaService gets its partition
 * on the three nodes, a write through PartitionService reaches every node's store, a node killed
 * with SIGKILL and restarted recovers its replicas from disk and catches up, a node closed gracefully
 * hands its leaderships over first, and when a node stays
 * down its replica moves to a fourth node (placement repair; the partition leader adds it as a
 * learner, which receives the partition by snapshot, promotes it once caught up, and removes the dead
 * one); deleting the table removes every replica. Logs are compacted every few entries (partitions
 * and the meta group), so restarts recover from a snapshot and the store.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item, PartitionDescriptor, PartitionWrite, TableRecord, TableSchema } from '@shoal/model';
import { ErrorDetailSchema, RpcError, getRequestToWire, getResultFromWire, partitionMapResponseFromWire, tableRecordToWire } from '@shoal/proto';
import { StorageNodeChildren, type StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';

/** Small, so that the partition's and the meta group's logs are compacted during the tests. */
const COMPACTION = { every: 8, keep: 2 };
/** Polls of 25 ms: elections, registrations and replica creation take a few hundred ms each. */
const ATTEMPTS = 1_200;

const table: TableSchema = { name: 'orders', tableId: 0, hashKey: { name: 'pk', type: 'S' }, indexes: [] };

function put(schema: TableSchema, pk: string, value: string): PartitionWrite {
  const key: Item = { pk: { S: pk } };
  return { operations: [{ table: schema, kind: 'Put', key, item: { ...key, value: { S: value } } }] };
}

describe('startStorageNode: storage nodes in child processes', () => {
  let cluster: StorageNodeChildren;
  let schema: TableSchema = table;
  let partition: PartitionDescriptor;
  /** The node whose write was acknowledged last: the partition's leader then. */
  let lastLeader: StorageNodeChild | undefined;

  /** A write to the table's partition through PartitionService (StorageNodeChildren.write). */
  const write = async (request: PartitionWrite, live: readonly StorageNodeChild[]): Promise<boolean> => {
    const { applied, leader } = await cluster.write(live, () => partition, request);
    lastLeader = leader;
    return applied;
  };

  /** The item as one node's replica holds it (an eventual read: that node's store, whatever its role). */
  const storedOn = async (node: StorageNodeChild, pk: string): Promise<Item | undefined> => {
    try {
      const response = await cluster.partitionClient(node.address).get(
        getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: pk } } }, { consistent: false }),
        { timeoutMs: 2_000 },
      );
      return getResultFromWire(response)?.item;
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    cluster = await StorageNodeChildren.start('storage-node', 3, { tickMs: 20, heartbeatIntervalMs: 200, downTimeoutMs: 1_500, logCompaction: COMPACTION });
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it('elects a meta leader and registers every node', { timeout: 60_000 }, async () => {
    try {
      await eventually(() => cluster.allReady(), 'three ready nodes', ATTEMPTS);
    } catch (error) {
      for (const n of cluster.nodes) console.error(`node ${n.nodeId} log:\n${await readFile(join(n.dataDir, 'node.log'), 'utf8').catch(() => '')}`);
      throw error;
    }
    const map = partitionMapResponseFromWire(await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    expect(map.notModified).toBe(false);
    if (map.notModified) return;
    expect(map.nodes.map((n) => [Number(n.id), n.address])).toEqual(cluster.peers.map((p) => [p.nodeId, p.address]));
  });

  it('creates a table through MetaService: its partition gets a replica on each of the three nodes', { timeout: 60_000 }, async () => {
    const spaceId = (await cluster.meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
    schema = { ...table, tableId: spaceId };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    const map = partitionMapResponseFromWire(await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('no map');
    const partitions = map.partitions.filter((p) => p.tableId === spaceId);
    expect(partitions).toHaveLength(1);
    partition = partitions[0];
    expect(partition.epoch).toBe(1);
    expect(partition.replicas.map((r) => r.nodeId).sort()).toEqual([1, 2, 3]);
    await eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((s) => s.metrics.partitionReplicas === 1) ? true : undefined), 'a replica on every node', ATTEMPTS);
  });

  it('a write through PartitionService reaches the stores of all three nodes', { timeout: 60_000 }, async () => {
    expect(await write(put(schema, 'alpha', 'one'), cluster.nodes)).toBe(true);
    for (const node of cluster.nodes) {
      expect(await eventually(() => storedOn(node, 'alpha'), `the item on node ${node.nodeId}`, ATTEMPTS)).toEqual({ pk: { S: 'alpha' }, value: { S: 'one' } });
    }
  });

  it('a node killed with SIGKILL and restarted recovers its replicas from disk and catches up', { timeout: 90_000 }, async () => {
    // The meta leader: the other nodes' heartbeats and map watches must find the next one.
    await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options));
    const victim = cluster.nodes.find((n) => n.address === cluster.meta.leaderAddress)!;
    // Enough writes that every replica compacted its log before the kill.
    for (let i = 0; i < 2 * COMPACTION.every; i++) expect(await write(put(schema, `bulk-${i}`, 'before'), cluster.nodes)).toBe(true);
    await victim.kill();
    const survivors = cluster.nodes.filter((n) => n !== victim);
    expect(await write(put(schema, 'beta', 'while-down'), survivors)).toBe(true);

    const restarted = await cluster.restart(victim);
    // The replica is reopened from the node's Raft log at start, before any map arrives.
    expect((await restarted.state()).metrics.partitionReplicas).toBe(1);
    await eventually(() => cluster.allReady(), 'the restarted node ready', ATTEMPTS);
    expect(await eventually(() => storedOn(restarted, 'alpha'), 'the old item on the restarted node', ATTEMPTS)).toEqual({ pk: { S: 'alpha' }, value: { S: 'one' } });
    expect(await eventually(() => storedOn(restarted, 'beta'), 'the item written while it was down', ATTEMPTS)).toEqual({ pk: { S: 'beta' }, value: { S: 'while-down' } });
    expect(await storedOn(restarted, `bulk-${2 * COMPACTION.every - 1}`)).toEqual({ pk: { S: `bulk-${2 * COMPACTION.every - 1}` }, value: { S: 'before' } });
    expect(await write(put(schema, 'gamma', 'after'), cluster.nodes)).toBe(true);
    for (const node of cluster.nodes) await eventually(() => storedOn(node, 'gamma'), `the new item on node ${node.nodeId}`, ATTEMPTS);
  });

  it('a node closed gracefully hands its leaderships over before it stops', { timeout: 90_000 }, async () => {
    expect(await write(put(schema, 'epsilon', 'led'), cluster.nodes)).toBe(true);
    const leader = lastLeader!;
    await leader.request({ op: 'close' });
    const others = cluster.nodes.filter((n) => n !== leader);
    // It stopped leading every group before it stopped (its log says so); the partition's group and the
    // meta group are led elsewhere. Waited for: the transferee may still count its votes when close returns.
    const log = await readFile(join(leader.dataDir, 'node.log'), 'utf8');
    expect(log).toContain('"msg":"leadership handed over before stopping"');
    expect(log).toContain('"stillLed":[]');
    const leaders = async () => (await Promise.all(others.map((n) => n.state()))).reduce((sum, s) => sum + s.metrics.raftLeaders, 0);
    await eventually(async () => ((await leaders()) === 2 ? true : undefined), 'both groups led by the other nodes', ATTEMPTS);

    await cluster.start(leader);
    await eventually(() => cluster.allReady(), 'the node started again', ATTEMPTS);
    expect(await eventually(() => storedOn(leader, 'epsilon'), 'its items after the restart', ATTEMPTS)).toEqual({ pk: { S: 'epsilon' }, value: { S: 'led' } });
  });

  it('replaces the replica of a node that stays down with one on a fourth node, which receives it by snapshot and serves a strong read', { timeout: 90_000 }, async () => {
    const fourth = await cluster.add(4);
    await eventually(() => cluster.allReady(), 'the fourth node ready', ATTEMPTS);
    expect((await fourth.state()).metrics.partitionReplicas).toBe(0);

    const gone = cluster.nodes.find((n) => n.nodeId === 3)!;
    await gone.kill();
    const live = cluster.nodes.filter((n) => n !== gone);
    const moved = await eventually(async () => {
      const map = partitionMapResponseFromWire(await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
      const current = map.notModified ? undefined : map.partitions.find((p) => p.id === partition.id);
      return current !== undefined && current.replicas.map((r) => r.nodeId).sort().join() === '1,2,4' ? current : undefined;
    }, 'the partition placed on nodes 1, 2 and 4', ATTEMPTS);
    expect(moved.epoch).toBeGreaterThan(partition.epoch);
    partition = moved;
    for (const pk of ['alpha', 'beta', 'gamma']) await eventually(() => storedOn(fourth, pk), `${pk} on the fourth node`, ATTEMPTS);
    // The leader's log was compacted: the partition came whole, by snapshot.
    const fourthState = await fourth.state();
    expect(fourthState.metrics.snapshotsReceived).toBeGreaterThanOrEqual(1);
    expect(fourthState.metrics.snapshotsRestored).toBeGreaterThanOrEqual(1);
    // Staged on the fourth node's disk as it arrived, deleted once installed.
    await eventually(async () => ((await readdir(join(fourth.dataDir, 'incoming-snapshots'))).length === 0 ? true : undefined), 'the staged snapshot deleted', ATTEMPTS);
    expect(await write(put(schema, 'delta', 'moved'), live)).toBe(true);
    for (const node of live) await eventually(() => storedOn(node, 'delta'), `the item written after the move on node ${node.nodeId}`, ATTEMPTS);
    // A strongly consistent read on the new replica (ReadIndex through the leader) sees the latest write.
    const strong = await cluster.partitionClient(fourth.address).get(
      getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: 'delta' } } }, { consistent: true }),
      { timeoutMs: 5_000 },
    );
    expect(getResultFromWire(strong)?.item).toEqual({ pk: { S: 'delta' }, value: { S: 'moved' } });
    const states = await Promise.all(live.map((n) => n.state()));
    expect(states.reduce((sum, s) => sum + s.metrics.membershipChanges, 0)).toBeGreaterThanOrEqual(3);
  });

  it('deletes a table: every node removes its replica and answers PartitionNotFound for it', { timeout: 60_000 }, async () => {
    const live = cluster.nodes.filter((n) => n.alive);
    await cluster.meta.call((client, options) => client.deleteTable({ name: schema.name }, options));
    await eventually(async () => ((await Promise.all(live.map((n) => n.state()))).every((s) => s.metrics.partitionReplicas === 0) ? true : undefined), 'replicas removed', ATTEMPTS);
    for (const node of live) {
      const error = await cluster.partitionClient(node.address)
        .get(getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: 'alpha' } } }, { consistent: false }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcError);
      expect((error as RpcError).detail(ErrorDetailSchema)?.kind.case).toBe('partitionNotFound');
    }
  });
});
