import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMetaServices, META_GROUP_ID, MetaReplica, MultiRaftHost, RaftLogStore, RaftTransport, type MetaServices } from '@shoal/node';
import { Server, freePort, listen, shutdown, tableRecordFromWire } from '@shoal/proto';
import type { IndexSchema, TableRecord } from '@shoal/model';
import { ClusterCatalog } from '../src/cluster/catalog.ts';
import { ChannelPool } from '../src/cluster/channels.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { MetaClient } from '../src/cluster/meta-client.ts';
import { zeroCounters } from '../src/cluster/metrics.ts';
import { DEFAULT_RETRY_POLICY } from '../src/cluster/retry.ts';
import { connectCluster, type ClusterBackend } from '../src/index.ts';
import { eventually } from './support/eventually.ts';

/**
 * connectCluster against a real meta group: three in-process meta peers, each a MultiRaftHost with
 * the meta replica and one gRPC server carrying the Raft transport and MetaService on 127.0.0.1.
 */

interface MetaPeer {
  nodeId: number;
  address: string;
  store: RaftLogStore;
  host: MultiRaftHost;
  transport: RaftTransport;
  server: Server;
  services: MetaServices;
}

const IDS = [1, 2, 3];
const QUICK_RETRY = { attempts: 4, totalMs: 1_500, baseDelayMs: 10, maxDelayMs: 50 };

let root = '';
const peers = new Map<number, MetaPeer>();
const addresses = new Map<number, string>();
const backends: ClusterBackend[] = [];

async function startPeer(nodeId: number): Promise<MetaPeer> {
  const store = await RaftLogStore.open(join(root, `node-${nodeId}`));
  const meta = new MetaReplica();
  const server = new Server();
  let host: MultiRaftHost | undefined;
  const transport = new RaftTransport({
    nodeId,
    server,
    resolvePeer: (id) => addresses.get(id),
    onMessages: (batch) => host?.receive(batch),
    onUnreachable: (id, groups) => host?.reportUnreachable(id, groups),
    log: () => undefined,
    reconnectBackoff: { initialMs: 10, maxMs: 50 },
  });
  host = new MultiRaftHost({ nodeId, logStore: store, sender: transport, stateMachine: () => meta, tickMs: 20, electionTick: 10, heartbeatTick: 1, seed: nodeId, proposalTimeoutMs: 3_000 });
  const services = addMetaServices(server, { host, meta, nodeId, nodeAddress: (id) => addresses.get(id), defaultPartitions: 1, watchLeadershipCheckMs: 50 });
  const port = await listen(server, '127.0.0.1', 0);
  const address = `127.0.0.1:${port}`;
  addresses.set(nodeId, address);
  host.open();
  if (!host.hasGroup(META_GROUP_ID)) await host.createGroup(META_GROUP_ID, IDS);
  host.startTicking();
  const peer = { nodeId, address, store, host, transport, server, services };
  peers.set(nodeId, peer);
  return peer;
}

async function stopPeer(nodeId: number): Promise<void> {
  const peer = peers.get(nodeId);
  if (peer === undefined) return;
  peers.delete(nodeId);
  peer.services.close();
  await peer.host.stop();
  await peer.transport.close();
  await shutdown(peer.server, 100);
  await peer.store.close();
}

/** The peer every running peer names as the meta leader, once they agree. */
async function metaLeader(): Promise<MetaPeer> {
  // Up to 30 s: elections take longer on a loaded machine.
  for (let i = 0; i < 3_000; i++) {
    const running = [...peers.values()];
    const leaders = new Set(running.map((peer) => peer.host.leaderOf(META_GROUP_ID)));
    const leader = leaders.size === 1 ? peers.get([...leaders][0] ?? 0) : undefined;
    if (leader !== undefined && leader.host.leaderOf(META_GROUP_ID) === leader.nodeId) return leader;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no meta leader agreed on');
}

/** A loopback port nothing listens on. */
async function deadAddress(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

/** A backend (default retry bounds unless `retry` is given), closed in afterAll. */
async function connect(metaAddresses: string[], options: { initialPartitions?: number; retry?: typeof QUICK_RETRY } = {}): Promise<ClusterBackend> {
  const backend = await connectCluster({ metaAddresses, retry: options.retry ?? DEFAULT_RETRY_POLICY, rpcTimeoutMs: 1_000, startTimeoutMs: 10_000, tableReadyTimeoutMs: 100, initialPartitions: options.initialPartitions });
  backends.push(backend);
  return backend;
}

function tableRecord(name: string, tableId: number): TableRecord {
  return {
    schema: { name, tableId, hashKey: { name: 'pk', type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt: 1_700_000_000,
    billingMode: 'PAY_PER_REQUEST',
    tags: {},
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'shoal-router-meta-'));
  for (const id of IDS) await startPeer(id);
  await metaLeader();
  // Tables need an up node to place replicas on: one that serves nothing, at a dead address.
  const channels = new ChannelPool();
  const meta = new MetaClient({ addresses: [...addresses.values()], channels, policy: DEFAULT_RETRY_POLICY, counters: zeroCounters() });
  try {
    const dead = await deadAddress();
    await meta.call('RegisterNode', 'change', (client) => client.registerNode({ nodeId: 9n, address: dead }));
  } finally {
    channels.close();
  }
}, 60_000);

afterAll(async () => {
  for (const backend of backends) await backend.close();
  for (const id of [...peers.keys()]) await stopPeer(id);
  await rm(root, { recursive: true, force: true });
});

describe('connectCluster over a real meta group', () => {
  it('starts from a follower address, finds the leader, and sees its own table changes at once', { timeout: 30_000 }, async () => {
    const leader = await metaLeader();
    const follower = [...peers.values()].find((peer) => peer.nodeId !== leader.nodeId)!;
    const backend = await connect([follower.address]);
    expect(backend.isReady()).toBe(true);

    const tableId = await backend.catalog.allocateSpaceId();
    await backend.catalog.create(tableRecord('orders', tableId));
    expect((await backend.catalog.get('orders'))?.schema.tableId).toBe(tableId);
    expect((await backend.catalog.list()).map((record) => record.schema.name)).toContain('orders');

    await backend.catalog.update('orders', (record) => ({ ...record, tags: { team: 'red' } }));
    expect((await backend.catalog.get('orders'))?.tags).toEqual({ team: 'red' });

    const metrics = backend.metrics();
    expect(metrics.ready).toBe(1);
    expect(metrics.tables).toBeGreaterThanOrEqual(1);
    expect(metrics.partitions).toBeGreaterThanOrEqual(1);
    expect(metrics.metaRequestsTotal).toBeGreaterThan(metrics.mapRefreshesTotal);

    await backend.catalog.delete('orders');
    expect(await backend.catalog.get('orders')).toBeUndefined();
  });

  it("another router's changes reach the cache through the map watch", { timeout: 30_000 }, async () => {
    const all = [...peers.values()].map((peer) => peer.address);
    const writer = await connect(all);
    const reader = await connect(all.slice().reverse());
    await writer.catalog.create(tableRecord('shared', await writer.catalog.allocateSpaceId()));
    await eventually('the reader sees the new table', async () => (await reader.catalog.get('shared')) !== undefined);
    await writer.catalog.delete('shared');
    await eventually('the reader sees it deleted', async () => (await reader.catalog.get('shared')) === undefined);
  });

  it("a router whose map is behind redoes its change on the current record: another router's new GSI is not removed", { timeout: 30_000 }, async () => {
    const all = [...peers.values()].map((peer) => peer.address);
    const writer = await connect(all);
    // The lagging router: its map changes only when it fetches one (no watch), as a watch held back.
    const channels = new ChannelPool();
    const meta = new MetaClient({ addresses: all, channels, policy: DEFAULT_RETRY_POLICY, counters: zeroCounters() });
    const view = new ClusterView();
    const lagging = new ClusterCatalog({ view, meta, initialPartitions: 1, tableReady: async () => undefined });
    try {
      await writer.catalog.create(tableRecord('cas', await writer.catalog.allocateSpaceId()));
      await meta.refresh(view);
      expect(view.table('cas')?.schema.indexes).toEqual([]);

      const gsi: IndexSchema = { name: 'byCity', kind: 'GSI', indexId: await writer.catalog.allocateSpaceId(), hashKey: { name: 'city', type: 'S' }, projection: { type: 'ALL' } };
      await writer.catalog.update('cas', (record) => ({ ...record, schema: { ...record.schema, indexes: [gsi] } }));
      expect(view.table('cas')?.schema.indexes).toEqual([]);

      const seen: string[][] = [];
      const stored = await lagging.update('cas', (record) => {
        seen.push(record.schema.indexes.map((index) => index.name));
        return { ...record, tags: { team: 'blue' } };
      });
      // Made first to the stale record (no GSI), refused, then again to the current one.
      expect(seen).toEqual([[], ['byCity']]);
      expect(stored?.schema.indexes.map((index) => index.name)).toEqual(['byCity']);
      await eventually('the writer sees both changes', async () => {
        const record = await writer.catalog.get('cas');
        return record?.tags.team === 'blue' && record.schema.indexes.some((index) => index.indexId === gsi.indexId);
      });
      const answer = await meta.call('GetTable', 'read', (client) => client.getTable({ name: 'cas' }));
      const record = tableRecordFromWire(answer.record!);
      expect([record.revision, record.schema.indexes.map((index) => index.name), record.tags]).toEqual([3, ['byCity'], { team: 'blue' }]);

      // Overtaken at every attempt (the other router changes the table between each read and write):
      // DynamoDB's ResourceInUseException after 10 attempts, the table as the other router left it.
      let overtaken = 0;
      const refused = lagging.update('cas', async (current) => {
        await writer.catalog.update('cas', (latest) => ({ ...latest, tags: { ...latest.tags, round: String(++overtaken) } }));
        return { ...current, tags: { team: 'green' } };
      });
      await expect(refused).rejects.toMatchObject({ type: 'ResourceInUseException', statusCode: 400, message: 'Attempt to change a resource which is still in use: Table is being updated: cas' });
      expect(overtaken).toBe(10);
      const last = tableRecordFromWire((await meta.call('GetTable', 'read', (client) => client.getTable({ name: 'cas' }))).record!);
      expect([last.revision, last.tags]).toEqual([13, { team: 'blue', round: '10' }]);
    } finally {
      channels.close();
    }
  });

  it("meta's DynamoDB errors reach the caller as DynamoDbError", { timeout: 30_000 }, async () => {
    const backend = await connect([...peers.values()].map((peer) => peer.address));
    await expect(backend.catalog.delete('never-created')).rejects.toMatchObject({ type: 'ResourceNotFoundException', statusCode: 400 });
  });

  it('a partition whose replica cannot be reached: ServiceUnavailable after the retry bound, for reads and writes', { timeout: 30_000 }, async () => {
    const backend = await connect([...peers.values()].map((peer) => peer.address), { retry: QUICK_RETRY });
    const record = tableRecord('unreachable', await backend.catalog.allocateSpaceId());
    // CreateTable waits for the partitions' leaders within its retry bound, then returns all the same.
    await backend.catalog.create(record);
    const before = backend.metrics();
    const key = { pk: { S: 'a' } };
    await expect(backend.partitions.get({ table: record.schema, key }, { consistent: false })).rejects.toMatchObject({ type: 'ServiceUnavailable', statusCode: 503 });
    // The connection was never made, so the write provably did not happen: retried, then 503 too.
    await expect(backend.partitions.write({ operations: [{ table: record.schema, kind: 'Put', key, item: key }] })).rejects.toMatchObject({ type: 'ServiceUnavailable', statusCode: 503 });
    const after = backend.metrics();
    expect(after.unreachableNodeTotal - before.unreachableNodeTotal).toBeGreaterThanOrEqual(2);
    expect(after.exhaustedRetriesTotal - before.exhaustedRetriesTotal).toBe(2);
    expect(after.ambiguousWritesTotal).toBe(0);
  });

  it('keeps working when the meta leader stops: calls and the watch move to the new leader', { timeout: 60_000 }, async () => {
    const all = [...peers.values()].map((peer) => peer.address);
    const writer = await connect(all);
    const reader = await connect(all);
    const old = await metaLeader();
    await stopPeer(old.nodeId);
    await metaLeader();
    await writer.catalog.create(tableRecord('after-failover', await writer.catalog.allocateSpaceId()));
    await eventually('the reader sees the table created after the failover', async () => (await reader.catalog.get('after-failover')) !== undefined);
    expect(reader.metrics().watchStreamsTotal).toBeGreaterThan(1);
  });

  it('connectCluster gives up after its start timeout when no meta peer answers', async () => {
    await expect(connectCluster({ metaAddresses: [await deadAddress()], startTimeoutMs: 300 })).rejects.toThrow(/no partition map from the meta group/);
  });
});
