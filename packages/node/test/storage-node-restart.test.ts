/**
 * The node address book on its own (kept across reopening, a map's removals forgotten, an unreadable
 * file ignored), and storage nodes restarted while the meta group is down: nodes 2 and 3 are not meta peers (node 1 is
 * the only one), so after a restart they know each other only from the addresses the last map gave,
 * which they keep in <dataDir>/nodes.json. With node 1 (and so meta) down, the partition they share
 * must still elect a leader between them and answer a consistent read.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartitionDescriptor, TableRecord, TableSchema } from '@shoal/model';
import { PartitionService, createClient, freePorts, getRequestToWire, getResultFromWire, partitionMapResponseFromWire, tableRecordToWire, writeRequestToWire, writeResultFromWire } from '@shoal/proto';
import { MetaClient, startStorageNode, type LogFields, type MetaPeer, type NodeLog, type StorageNode } from '@shoal/node';
import { NodeAddressBook } from '../src/cluster/node-address-book.ts';
import { eventually } from './fixtures/eventually.ts';

interface LogLine {
  node: number;
  message: string;
  fields: LogFields;
}

function recordingLog(node: number, lines: LogLine[]): NodeLog {
  const at = (message: string, fields: LogFields = {}) => void lines.push({ node, message, fields });
  return { debug: at, info: at, warn: at, error: at };
}

describe('NodeAddressBook', () => {
  let root = '';
  const lines: LogLine[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-node-address-book-'));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps the last map\'s addresses across reopening, forgetting the nodes a later map no longer lists', async () => {
    const path = join(root, 'nodes.json');
    const book = await NodeAddressBook.open(path, recordingLog(0, lines));
    expect(book.address(4)).toBeUndefined();
    await book.record(new Map([[4, '10.0.0.4:7000'], [5, '10.0.0.5:7000']]));
    await book.record(new Map([[5, '10.0.0.55:7000'], [6, '10.0.0.6:7000']]));
    await book.flush();
    const reopened = await NodeAddressBook.open(path, recordingLog(0, lines));
    expect([4, 5, 6].map((id) => reopened.address(id))).toEqual([undefined, '10.0.0.55:7000', '10.0.0.6:7000']);
    expect(lines).toEqual([]);
  });

  it('starts empty from a file it cannot read, and says so', async () => {
    const path = join(root, 'broken.json');
    await writeFile(path, '{"nodes": [');
    const book = await NodeAddressBook.open(path, recordingLog(0, lines));
    expect(book.address(1)).toBeUndefined();
    expect(lines.map((l) => l.message)).toEqual(['ignoring the node addresses file']);
  });
});

describe('startStorageNode: a restart while the meta group is down', () => {
  let root = '';
  let ports: number[] = [];
  let metaPeers: MetaPeer[] = [];
  const nodes = new Map<number, StorageNode>();
  const lines: LogLine[] = [];
  let schema: TableSchema;
  let partition: PartitionDescriptor;

  const start = async (nodeId: number): Promise<void> => {
    const node = await startStorageNode({
      nodeId,
      dataDir: join(root, `node-${nodeId}`),
      host: '127.0.0.1',
      port: ports[nodeId - 1],
      metaPeers,
      tickMs: 10,
      heartbeatIntervalMs: 100,
      log: recordingLog(nodeId, lines),
    });
    nodes.set(nodeId, node);
  };
  const stop = async (nodeId: number): Promise<void> => {
    await nodes.get(nodeId)?.close();
    nodes.delete(nodeId);
  };
  const leaders = (): number => [...nodes.values()].reduce((sum, node) => sum + node.metrics().raftLeaders, 0);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-storage-node-restart-'));
    // Fixed ports: a restarted node is found where the map said it was.
    ports = await freePorts(3);
    metaPeers = [{ nodeId: 1, address: `127.0.0.1:${ports[0]}` }];
  });

  afterAll(async () => {
    for (const nodeId of [...nodes.keys()]) await stop(nodeId);
    await rm(root, { recursive: true, force: true });
  });

  it('three nodes, one of them the meta group, replicate a table\'s partition and record the nodes\' addresses', { timeout: 60_000 }, async () => {
    for (const nodeId of [1, 2, 3]) await start(nodeId);
    await eventually(async () => ([...nodes.values()].every((n) => n.isReady()) ? true : undefined), 'every node ready');
    const meta = new MetaClient({ peers: metaPeers, maxAttempts: 10 });
    try {
      const spaceId = (await meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
      schema = { name: 'kept', tableId: spaceId, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
      const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {} };
      await meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
      const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
      if (map.notModified) throw new Error('the map answer carries no partitions');
      partition = map.partitions.find((p) => p.tableId === spaceId)!;
    } finally {
      meta.close();
    }
    expect(partition.replicas.map((r) => r.nodeId).sort()).toEqual([1, 2, 3]);
    // The meta group and the partition each led somewhere.
    await eventually(async () => (leaders() === 2 ? true : undefined), 'the partition led');
    await eventually(async () => ([...nodes.values()].every((n) => n.metrics().partitionReplicas === 1) ? true : undefined), 'a replica on every node');

    // Node 1 also leads the meta group.
    const leader = await eventually(async () => [...nodes.values()].find((n) => n.metrics().raftLeaders === (n.nodeId === 1 ? 2 : 1)), 'the partition leader');
    const client = createClient(PartitionService, leader.address);
    try {
      const key = { pk: { S: 'alpha' } };
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      const result = await eventually(async () => {
        try {
          return writeResultFromWire(await client.write(writeRequestToWire(target, { operations: [{ table: schema, kind: 'Put', key, item: { ...key, n: { N: '1' } } }] })));
        } catch {
          return undefined;
        }
      }, 'the write applied');
      expect(result.applied).toBe(true);
    } finally {
      client.close();
    }

    for (const nodeId of [2, 3]) {
      const file = JSON.parse(await readFile(join(root, `node-${nodeId}`, 'nodes.json'), 'utf8')) as { nodes: { id: number; address: string }[] };
      expect(file.nodes.sort((a, b) => a.id - b.id)).toEqual(ports.map((port, i) => ({ id: i + 1, address: `127.0.0.1:${port}` })));
    }
  });

  it('nodes 2 and 3 restarted with node 1 down reach each other, elect a partition leader and answer a consistent read', { timeout: 60_000 }, async () => {
    for (const nodeId of [1, 2, 3]) await stop(nodeId);
    lines.length = 0;
    await start(2);
    await start(3);
    await eventually(async () => (leaders() === 1 ? true : undefined), 'a partition leader on node 2 or 3');
    // The meta group is gone: neither node holds a map.
    expect([...nodes.values()].map((n) => n.isReady())).toEqual([false, false]);

    const leader = [...nodes.values()].find((n) => n.metrics().raftLeaders === 1)!;
    const client = createClient(PartitionService, leader.address);
    try {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      const read = getResultFromWire(await client.get(getRequestToWire(target, { table: schema, key: { pk: { S: 'alpha' } } }, { consistent: true })));
      expect(read?.item).toEqual({ pk: { S: 'alpha' }, n: { N: '1' } });
    } finally {
      client.close();
    }
    // Nodes 2 and 3 never lacked each other's address (node 1's is on the command line).
    const unresolved = lines.filter((l) => l.message === 'peer_unresolved' || l.message === 'batch_refused');
    expect(unresolved).toEqual([]);
  });
});
