import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TableSchema } from '@shoal/model';
import { MetaClient, startStorageNode } from '@shoal/node';
import {
  createClient,
  DiskFault,
  FaultInjectionService,
  freePort,
  getRequestToWire,
  getResultFromWire,
  PartitionDirection,
  PartitionService,
  RpcError,
  Status,
  tableRecordFromWire,
  writeRequestToWire,
} from '@shoal/proto';
import { ChaosCluster, sleep } from '../src/cluster.ts';
import { DynamoDbClient } from '../src/dynamodb-client.ts';
import { NodeFaultClients } from '../src/faults.ts';
import { ClusterObserver } from '../src/observer.ts';
import type { PartitionView } from '../src/observer.ts';
import { createTables, KV_TABLE } from '../src/workload.ts';

/**
 * The classic minority leader, on real `shoal node` processes: the leader of a partition is cut off
 * from its peers (Raft traffic, both ways) while still reachable by clients. Writes and strong reads
 * sent to it straight away must not succeed (it cannot commit nor confirm its leadership; checkQuorum
 * makes it step down), while the two others elect a leader that serves both through the router.
 * After the heal, the old leader holds the majority's value, never the write it was given.
 */
const dirs: string[] = [];
const closers: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const CALL_TIMEOUT_MS = 4_000;
const key = { pk: { S: 'isolated' } };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // Not yet.
    }
    await sleep(200);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

async function put(client: DynamoDbClient, value: string): Promise<void> {
  const outcome = await client.send('PutItem', { TableName: KV_TABLE, Item: { ...key, v: { S: value } } });
  if (outcome.kind !== 'ok') throw new Error(`PutItem ${value}: ${JSON.stringify(outcome)}`);
}

async function strongRead(client: DynamoDbClient): Promise<string | undefined> {
  const outcome = await client.send('GetItem', { TableName: KV_TABLE, Key: key, ConsistentRead: true });
  if (outcome.kind !== 'ok') throw new Error(`GetItem: ${JSON.stringify(outcome)}`);
  return (outcome.body.Item as { v?: { S?: string } } | undefined)?.v?.S;
}

/** How a call to the isolated node ended: 'ok' would be a bug. */
async function outcomeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return error instanceof RpcError ? Status[error.code] : String(error);
  }
}

describe('a leader cut off from its peers', () => {
  it('acknowledges no write and no strong read, while the majority elects a leader that serves', { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-chaos-isolated-'));
    dirs.push(dir);
    const cluster = await ChaosCluster.start({ nodes: 3, routers: 1, partitions: 1, dir });
    closers.push(() => cluster.stop());
    const observer = new ClusterObserver(cluster.metaAddresses);
    closers.push(() => observer.close());
    const faults = new NodeFaultClients(cluster.nodeAddresses);
    closers.push(() => faults.close());
    const router = new DynamoDbClient({ endpoints: cluster.routerEndpoints, preferred: 0, timeoutMs: 10_000 });
    closers.push(() => router.close());
    await createTables(router);
    await put(router, 'before');

    const partition = await until('a leader of the table\'s partition', async (): Promise<PartitionView | undefined> => {
      const view = (await observer.snapshot()).partitions.find((candidate) => candidate.table === KV_TABLE);
      return view?.leader === undefined ? undefined : view;
    });
    const leader = partition.leader!;
    const others = cluster.nodes.map((node) => node.id).filter((id) => id !== leader);
    const meta = new MetaClient({ peers: cluster.metaAddresses.map((address, index) => ({ nodeId: index + 1, address })) });
    closers.push(() => meta.close());
    const { record } = await meta.call((client, options) => client.getTable({ name: KV_TABLE }, options));
    const table: TableSchema = tableRecordFromWire(record!).schema;
    const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.descriptor.epoch) };
    const direct = createClient(PartitionService, cluster.nodeAddresses[leader - 1]);
    closers.push(() => direct.close());
    const write = (value: string) =>
      direct.write(writeRequestToWire(target, { operations: [{ table, kind: 'Put', key, item: { ...key, v: { S: value } } }] }), { timeoutMs: CALL_TIMEOUT_MS });
    const read = (consistent: boolean) => direct.get(getRequestToWire(target, { table, key }, { consistent }), { timeoutMs: CALL_TIMEOUT_MS });
    // The node serves while connected.
    expect(getResultFromWire(await read(true))?.item.v).toEqual({ S: 'before' });

    await faults.of(leader).partition({ peers: others.map(BigInt), direction: PartitionDirection.BOTH });
    // At once, while it may still believe it leads: neither can succeed.
    const [writeAtOnce, readAtOnce] = await Promise.all([outcomeOf(write('lost-1')), outcomeOf(read(true))]);
    expect(writeAtOnce).not.toBe('ok');
    expect(readAtOnce).not.toBe('ok');

    // The majority elects another leader, which serves writes and strong reads through the router.
    const newLeader = await until('a new leader on the majority side', async () => {
      const view = (await observer.snapshot()).partitions.find((candidate) => candidate.id === partition.id);
      return view?.leader !== undefined && view.leader !== leader ? view.leader : undefined;
    });
    expect(others).toContain(newLeader);
    await put(router, 'after');
    expect(await strongRead(router)).toBe('after');

    // Still cut off, the old leader has stepped down: it refuses both again, and its own state is behind.
    expect(await outcomeOf(write('lost-2'))).not.toBe('ok');
    expect(await outcomeOf(read(true))).not.toBe('ok');
    expect(getResultFromWire(await read(false))?.item.v).toEqual({ S: 'before' });

    await faults.of(leader).heal({});
    // Healed, it catches up with the majority's value; its own writes were never committed.
    await until('the old leader caught up', async () => {
      const value = getResultFromWire(await read(false))?.item.v;
      return value !== undefined && 'S' in value && value.S === 'after' ? true : undefined;
    });
    expect(await strongRead(router)).toBe('after');
  });
});

/** A one-node cluster in this process (its own meta group), and a FaultInjectionService client of it. */
async function oneNode(faultInjection: boolean) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-chaos-faultservice-'));
  dirs.push(dir);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const node = await startStorageNode({ nodeId: 1, dataDir: dir, host: '127.0.0.1', port, metaPeers: [{ nodeId: 1, address }], log: quiet, faultInjection });
  closers.push(() => node.close());
  const client = createClient(FaultInjectionService, address);
  closers.push(() => client.close());
  const meta = new MetaClient({ peers: [{ nodeId: 1, address }], callTimeoutMs: 5_000 });
  closers.push(() => meta.close());
  return { node, client, meta };
}

describe('the fault injection service', () => {
  it('does not exist on a node started without fault injection', { timeout: 120_000 }, async () => {
    const { client } = await oneNode(false);
    await expect(client.partition({ peers: [2n], direction: PartitionDirection.BOTH }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Status.UNIMPLEMENTED });
  });

  it('sets and heals network and disk faults; a full disk stops the node acknowledging', { timeout: 120_000 }, async () => {
    const { node, client, meta } = await oneNode(true);
    const allocate = () => meta.call((service, options) => service.allocateSpaceId({}, options));
    await until('the node ready', async () => (node.isReady() ? true : undefined));
    expect(await client.partition({ peers: [2n, 3n], direction: PartitionDirection.OUTBOUND }, { timeoutMs: 5_000 })).toMatchObject({ droppedTo: [2n, 3n], droppedFrom: [] });
    expect(await client.partition({ peers: [3n], direction: PartitionDirection.BOTH }, { timeoutMs: 5_000 })).toMatchObject({ droppedTo: [2n, 3n], droppedFrom: [3n] });
    expect(await client.heal({ peers: [3n] }, { timeoutMs: 5_000 })).toMatchObject({ droppedTo: [2n], droppedFrom: [] });
    expect(await client.heal({}, { timeoutMs: 5_000 })).toMatchObject({ droppedTo: [], droppedFrom: [] });
    await expect(client.partition({ peers: [1n], direction: PartitionDirection.BOTH }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    await expect(client.partition({ peers: [2n] }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    await expect(client.transferLeadership({ groupId: 99n, toNode: 2n }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Status.NOT_FOUND });

    expect(await client.setDiskFault({ fault: DiskFault.SLOW, delayMs: 20 }, { timeoutMs: 5_000 })).toMatchObject({ disk: DiskFault.SLOW, diskDelayMs: 20 });
    // Slow, it still commits (a meta command is a Raft log write).
    expect((await allocate()).spaceId).toBeGreaterThan(0);
    expect(node.isReady()).toBe(true);
    expect(node.health()).toEqual({ healthy: true });
    expect(await client.setDiskFault({ fault: DiskFault.FULL }, { timeoutMs: 5_000 })).toMatchObject({ disk: DiskFault.FULL });
    // Full, the command is not acknowledged: its write fails, the log store and the Raft host stop,
    // and the node is no longer ready.
    await expect(allocate()).rejects.toThrow();
    await until('the node stopped by its full disk', async () => (node.isReady() ? undefined : true), 10_000);
    expect(await client.setDiskFault({ fault: DiskFault.NONE }, { timeoutMs: 5_000 })).toMatchObject({ disk: DiskFault.NONE });
    // Only a restart brings it back: the store stays stopped after a failed write.
    await sleep(1_500);
    expect(node.isReady()).toBe(false);
    // So the liveness probe fails and the orchestrator restarts it.
    expect(node.health()).toMatchObject({ healthy: false, problem: expect.stringContaining('restart the node') });
  });
});
