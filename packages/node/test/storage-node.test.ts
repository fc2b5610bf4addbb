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
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Item, PartitionDescriptor, PartitionWrite, TableRecord, TableSchema } from '@shoal/model';
import {
  freePorts,
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Status,
  createClient,
  getRequestToWire,
  getResultFromWire,
  partitionMapResponseFromWire,
  tableRecordToWire,
  writeRequestToWire,
  writeResultFromWire,
  type ClientOf,
} from '@shoal/proto';
import { MetaClient, type MetaPeer } from '@shoal/node';
import { StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/transport-harness.ts';

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
  let root = '';
  let peers: MetaPeer[] = [];
  let nodes: StorageNodeChild[] = [];
  let meta: MetaClient;
  const clients = new Map<string, ClientOf<typeof PartitionService>>();
  let schema: TableSchema = table;
  let partition: PartitionDescriptor;

  const partitionClient = (address: string): ClientOf<typeof PartitionService> => {
    let client = clients.get(address);
    if (client === undefined) {
      client = createClient(PartitionService, address);
      clients.set(address, client);
    }
    return client;
  };

  /** Meta peers listen on their fixed ports; another node on any free one. */
  const start = async (node: StorageNodeChild): Promise<void> => {
    const address = peers.find((p) => p.nodeId === node.nodeId)?.address;
    const port = address === undefined ? 0 : Number(address.slice(address.lastIndexOf(':') + 1));
    node.address = await node.request<string>({
      op: 'start',
      options: { nodeId: node.nodeId, dataDir: node.dataDir, host: '127.0.0.1', port, metaPeers: peers, tickMs: 20, heartbeatIntervalMs: 200, downTimeoutMs: 1_500, logCompaction: COMPACTION },
    });
  };

  /** A write through PartitionService, following NotLeader hints and retrying while the group elects. */
  /** The node whose write was acknowledged last: the partition's leader then. */
  let lastLeader: StorageNodeChild | undefined;
  const write = async (request: PartitionWrite, live: readonly StorageNodeChild[]): Promise<boolean> => {
    let address = live[0].address;
    let lastError: unknown;
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const response = await partitionClient(address).write(writeRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, request), { timeoutMs: 5_000 });
        lastLeader = live.find((n) => n.address === address);
        return writeResultFromWire(response).applied;
      } catch (error) {
        lastError = error;
        // Retried: not the leader, the group electing, or this node's map not holding the partition yet.
        const retryable = [Status.FAILED_PRECONDITION, Status.UNAVAILABLE, Status.NOT_FOUND, Status.DEADLINE_EXCEEDED];
        if (!(error instanceof RpcError) || !retryable.includes(error.code)) throw error;
        const hint = error instanceof RpcError && error.code === Status.FAILED_PRECONDITION ? error.detail(ErrorDetailSchema) : undefined;
        const leader = hint?.kind.case === 'notLeader' ? hint.kind.value.leader?.address : undefined;
        address = leader !== undefined && leader !== '' && live.some((n) => n.address === leader) ? leader : live[(attempt + 1) % live.length].address;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw lastError;
  };

  /** The item as one node's replica holds it (an eventual read: that node's store, whatever its role). */
  const storedOn = async (node: StorageNodeChild, pk: string): Promise<Item | undefined> => {
    try {
      const response = await partitionClient(node.address).get(
        getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: pk } } }, { consistent: false }),
        { timeoutMs: 2_000 },
      );
      return getResultFromWire(response)?.item;
    } catch {
      return undefined;
    }
  };

  const allReady = async (live: readonly StorageNodeChild[]): Promise<true | undefined> =>
    (await Promise.all(live.map((n) => n.state()))).every((s) => s.ready) ? true : undefined;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-storage-node-'));
    const ports = await freePorts(3);
    peers = ports.map((port, i) => ({ nodeId: i + 1, address: `127.0.0.1:${port}` }));
    nodes = peers.map((p) => new StorageNodeChild(p.nodeId, join(root, `node-${p.nodeId}`)));
    await Promise.all(nodes.map(start));
    meta = new MetaClient({ peers, callTimeoutMs: 2_000, maxAttempts: 20 });
  });

  afterAll(async () => {
    meta?.close();
    for (const client of clients.values()) client.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(root, { recursive: true, force: true });
  });

  it('elects a meta leader and registers every node', { timeout: 60_000 }, async () => {
    try {
      await eventually(() => allReady(nodes), 'three ready nodes', ATTEMPTS);
    } catch (error) {
      for (const n of nodes) console.error(`node ${n.nodeId} log:\n${await readFile(join(n.dataDir, 'node.log'), 'utf8').catch(() => '')}`);
      throw error;
    }
    const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    expect(map.notModified).toBe(false);
    if (map.notModified) return;
    expect(map.nodes.map((n) => [Number(n.id), n.address])).toEqual(peers.map((p) => [p.nodeId, p.address]));
  });

  it('creates a table through MetaService: its partition gets a replica on each of the three nodes', { timeout: 60_000 }, async () => {
    const spaceId = (await meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
    schema = { ...table, tableId: spaceId };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('no map');
    const partitions = map.partitions.filter((p) => p.tableId === spaceId);
    expect(partitions).toHaveLength(1);
    partition = partitions[0];
    expect(partition.epoch).toBe(1);
    expect(partition.replicas.map((r) => r.nodeId).sort()).toEqual([1, 2, 3]);
    await eventually(async () => ((await Promise.all(nodes.map((n) => n.state()))).every((s) => s.metrics.partitionReplicas === 1) ? true : undefined), 'a replica on every node', ATTEMPTS);
  });

  it('a write through PartitionService reaches the stores of all three nodes', { timeout: 60_000 }, async () => {
    expect(await write(put(schema, 'alpha', 'one'), nodes)).toBe(true);
    for (const node of nodes) {
      expect(await eventually(() => storedOn(node, 'alpha'), `the item on node ${node.nodeId}`, ATTEMPTS)).toEqual({ pk: { S: 'alpha' }, value: { S: 'one' } });
    }
  });

  it('a node killed with SIGKILL and restarted recovers its replicas from disk and catches up', { timeout: 90_000 }, async () => {
    // The meta leader: the other nodes' heartbeats and map watches must find the next one.
    await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options));
    const victim = nodes.find((n) => n.address === meta.leaderAddress)!;
    // Enough writes that every replica compacted its log before the kill.
    for (let i = 0; i < 2 * COMPACTION.every; i++) expect(await write(put(schema, `bulk-${i}`, 'before'), nodes)).toBe(true);
    await victim.kill();
    const survivors = nodes.filter((n) => n !== victim);
    expect(await write(put(schema, 'beta', 'while-down'), survivors)).toBe(true);

    const restarted = new StorageNodeChild(victim.nodeId, victim.dataDir);
    nodes = nodes.map((n) => (n === victim ? restarted : n));
    await start(restarted);
    // The replica is reopened from the node's Raft log at start, before any map arrives.
    expect((await restarted.state()).metrics.partitionReplicas).toBe(1);
    await eventually(() => allReady(nodes), 'the restarted node ready', ATTEMPTS);
    expect(await eventually(() => storedOn(restarted, 'alpha'), 'the old item on the restarted node', ATTEMPTS)).toEqual({ pk: { S: 'alpha' }, value: { S: 'one' } });
    expect(await eventually(() => storedOn(restarted, 'beta'), 'the item written while it was down', ATTEMPTS)).toEqual({ pk: { S: 'beta' }, value: { S: 'while-down' } });
    expect(await storedOn(restarted, `bulk-${2 * COMPACTION.every - 1}`)).toEqual({ pk: { S: `bulk-${2 * COMPACTION.every - 1}` }, value: { S: 'before' } });
    expect(await write(put(schema, 'gamma', 'after'), nodes)).toBe(true);
    for (const node of nodes) await eventually(() => storedOn(node, 'gamma'), `the new item on node ${node.nodeId}`, ATTEMPTS);
  });

  it('a node closed gracefully hands its leaderships over before it stops', { timeout: 90_000 }, async () => {
    expect(await write(put(schema, 'epsilon', 'led'), nodes)).toBe(true);
    const leader = lastLeader!;
    await leader.request({ op: 'close' });
    const others = nodes.filter((n) => n !== leader);
    // Right away, without an election timeout: the partition's group and the meta group are led elsewhere.
    const leaders = (await Promise.all(others.map((n) => n.state()))).reduce((sum, s) => sum + s.metrics.raftLeaders, 0);
    expect(leaders).toBe(2);
    const log = await readFile(join(leader.dataDir, 'node.log'), 'utf8');
    expect(log).toContain('"msg":"leadership handed over before stopping"');
    expect(log).toContain('"stillLed":[]');

    await start(leader);
    await eventually(() => allReady(nodes), 'the node started again', ATTEMPTS);
    expect(await eventually(() => storedOn(leader, 'epsilon'), 'its items after the restart', ATTEMPTS)).toEqual({ pk: { S: 'epsilon' }, value: { S: 'led' } });
  });

  it('replaces the replica of a node that stays down with one on a fourth node, which receives it by snapshot and serves a strong read', { timeout: 90_000 }, async () => {
    const fourth = new StorageNodeChild(4, join(root, 'node-4'));
    nodes.push(fourth);
    await start(fourth);
    await eventually(() => allReady(nodes), 'the fourth node ready', ATTEMPTS);
    expect((await fourth.state()).metrics.partitionReplicas).toBe(0);

    const gone = nodes.find((n) => n.nodeId === 3)!;
    await gone.kill();
    const live = nodes.filter((n) => n !== gone);
    const moved = await eventually(async () => {
      const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
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
    expect(await write(put(schema, 'delta', 'moved'), live)).toBe(true);
    for (const node of live) await eventually(() => storedOn(node, 'delta'), `the item written after the move on node ${node.nodeId}`, ATTEMPTS);
    // A strongly consistent read on the new replica (ReadIndex through the leader) sees the latest write.
    const strong = await partitionClient(fourth.address).get(
      getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: 'delta' } } }, { consistent: true }),
      { timeoutMs: 5_000 },
    );
    expect(getResultFromWire(strong)?.item).toEqual({ pk: { S: 'delta' }, value: { S: 'moved' } });
    const states = await Promise.all(live.map((n) => n.state()));
    expect(states.reduce((sum, s) => sum + s.metrics.membershipChanges, 0)).toBeGreaterThanOrEqual(3);
  });

  it('deletes a table: every node removes its replica and answers PartitionNotFound for it', { timeout: 60_000 }, async () => {
    const live = nodes.filter((n) => n.alive);
    await meta.call((client, options) => client.deleteTable({ name: schema.name }, options));
    await eventually(async () => ((await Promise.all(live.map((n) => n.state()))).every((s) => s.metrics.partitionReplicas === 0) ? true : undefined), 'replicas removed', ATTEMPTS);
    for (const node of live) {
      const error = await partitionClient(node.address)
        .get(getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: 'alpha' } } }, { consistent: false }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcError);
      expect((error as RpcError).detail(ErrorDetailSchema)?.kind.case).toBe('partitionNotFound');
    }
  });
});
