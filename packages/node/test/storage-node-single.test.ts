/**
 * One storage node in this process, its own single meta peer: it refuses a split size too large to
 * snapshot, becomes ready, hosts a new table's
 * partition, hosts the four partitions of another table in its one store and deletes exactly their
 * data with the table, logs through the given log, closes idempotently, and restarts from its data
 * directory with its replicas reopened from the Raft log; a replica whose log is gone has its data
 * deleted at start.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionMap, encodeItemKey, type PartitionDescriptor, type TableRecord, type TableSchema } from '@shoal/model';
import {
  freePorts,
  PartitionService,
  createClient,
  getRequestToWire,
  getResultFromWire,
  partitionMapResponseFromWire,
  tableRecordToWire,
  writeRequestToWire,
  writeResultFromWire,
} from '@shoal/proto';
import { MetaClient, RaftLogStore, startStorageNode, type LogFields, type MetaPeer, type NodeLog, type StorageNode } from '@shoal/node';
import { eventually } from './fixtures/eventually.ts';

interface LogLine {
  level: string;
  message: string;
  fields: LogFields;
}

function recordingLog(lines: LogLine[]): NodeLog {
  const at = (level: string) => (message: string, fields: LogFields = {}) => void lines.push({ level, message, fields });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('startStorageNode: a single node in this process', () => {
  let root = '';
  let peers: MetaPeer[] = [];
  let node: StorageNode | undefined;
  let meta: MetaClient;
  const lines: LogLine[] = [];
  let schema: TableSchema;
  let partition: PartitionDescriptor;

  const start = async (): Promise<StorageNode> =>
    startStorageNode({ nodeId: 1, dataDir: join(root, 'node-1'), host: '127.0.0.1', port: Number(peers[0].address.split(':')[1]), metaPeers: peers, tickMs: 10, heartbeatIntervalMs: 100, log: recordingLog(lines) });

  const readAlpha = async (at: StorageNode) => {
    const client = createClient(PartitionService, at.address);
    try {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      return getResultFromWire(await client.get(getRequestToWire(target, { table: schema, key: { pk: { S: 'alpha' } } }, { consistent: false })))?.item;
    } finally {
      client.close();
    }
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-storage-node-single-'));
    peers = [{ nodeId: 1, address: `127.0.0.1:${(await freePorts(1))[0]}` }];
    meta = new MetaClient({ peers, maxAttempts: 10 });
  });

  afterAll(async () => {
    meta.close();
    await node?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a split size above MAX_SPLIT_SIZE_BYTES, before opening anything', async () => {
    const dataDir = join(root, 'refused');
    const starting = startStorageNode({ nodeId: 1, dataDir, host: '127.0.0.1', port: 0, metaPeers: peers, splitting: { maxSizeBytes: 10 * 2 ** 30 }, log: recordingLog([]) });
    await expect(starting).rejects.toThrow(/split size must be above 0 and at most 2147483648 bytes/);
    await expect(readFile(join(dataDir, 'partitions.json'))).rejects.toThrow(/ENOENT/);
  });

  it('becomes ready: the one-voter meta group elects it and it registers', async () => {
    node = await start();
    expect(node.address).toBe(peers[0].address);
    await eventually(async () => (node!.isReady() ? true : undefined), 'ready');
    expect(node.metrics()).toMatchObject({ ready: 1, raftGroups: 1, raftLeaders: 1, partitionReplicas: 0 });
    expect(lines.some((l) => l.message === 'meta group bootstrapped')).toBe(true);
    expect(lines.some((l) => l.message === 'registered with the meta group')).toBe(true);
  });

  it('hosts the partition of a new table and applies a write', async () => {
    const spaceId = (await meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
    schema = { name: 'solo', tableId: spaceId, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('the map answer carries no partitions');
    partition = map.partitions.find((p) => p.tableId === spaceId)!;
    expect(partition.replicas).toEqual([{ nodeId: 1, role: 'voter' }]);
    await eventually(async () => (node!.metrics().raftLeaders === 2 ? true : undefined), 'the partition led here');
    const client = createClient(PartitionService, node!.address);
    try {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      const key = { pk: { S: 'alpha' } };
      const result = writeResultFromWire(await client.write(writeRequestToWire(target, { operations: [{ table: schema, kind: 'Put', key, item: { ...key, n: { N: '1' } } }] })));
      expect(result.applied).toBe(true);
    } finally {
      client.close();
    }
    expect(await readAlpha(node!)).toEqual({ pk: { S: 'alpha' }, n: { N: '1' } });
    expect(node!.metrics()).toMatchObject({ partitionReplicas: 1, replicasCreated: 1, partitionWrites: 1 });
  });

  it('hosts every partition of a table split four ways, and drops exactly their data when it is deleted', async () => {
    const spaceId = (await meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
    const spread: TableSchema = { name: 'spread', tableId: spaceId, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const record: TableRecord = { schema: spread, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 4 }, options));
    const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('the map answer carries no partitions');
    const partitions = new PartitionMap(map.partitions.filter((p) => p.tableId === spaceId));
    expect(partitions.size).toBe(4);
    await eventually(async () => (node!.metrics().raftLeaders === 6 ? true : undefined), 'the four new partitions led here');

    const client = createClient(PartitionService, node!.address);
    try {
      const owners = new Set<number>();
      for (let i = 0; i < 24; i++) {
        const key = { pk: { S: `item-${i}` } };
        const owner = partitions.lookup(encodeItemKey(spaceId, key.pk))!;
        owners.add(owner.id);
        const target = { partitionId: BigInt(owner.id), epoch: BigInt(owner.epoch) };
        const result = writeResultFromWire(await client.write(writeRequestToWire(target, { operations: [{ table: spread, kind: 'Put', key, item: { ...key, i: { N: String(i) } } }] })));
        expect(result.applied).toBe(true);
      }
      expect(owners.size).toBe(4);
    } finally {
      client.close();
    }
    expect(node!.metrics().partitionReplicas).toBe(5);

    await meta.call((client, options) => client.deleteTable({ name: 'spread' }, options));
    // Counted once each replica's data is deleted.
    await eventually(async () => (node!.metrics().replicasRemoved === 4 ? true : undefined), 'the four replicas removed');
    expect(node!.metrics().partitionReplicas).toBe(1);
    // The other table's partition keeps its data.
    expect(await readAlpha(node!)).toEqual({ pk: { S: 'alpha' }, n: { N: '1' } });
  });

  it('closes once however often it is asked, and restarts from its data directory', async () => {
    const closing = node!;
    await Promise.all([closing.close(), closing.close()]);
    await closing.close();
    expect(lines.filter((l) => l.message === 'storage node stopping')).toHaveLength(1);
    node = undefined;

    node = await start();
    // Reopened from the Raft log at start, before the meta group answers.
    expect(node.metrics().partitionReplicas).toBe(1);
    expect(lines.filter((l) => l.message === 'meta group bootstrapped')).toHaveLength(1);
    await eventually(async () => (node!.isReady() && node!.metrics().raftLeaders === 2 ? true : undefined), 'ready again');
    expect(await readAlpha(node)).toEqual({ pk: { S: 'alpha' }, n: { N: '1' } });
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('deletes at start the data of a replica whose Raft log is gone (a crash between removing one and the other)', async () => {
    await node!.close();
    node = undefined;
    // What a crash right after removing the replica's log leaves: its data, and its record in partitions.json.
    const logStore = await RaftLogStore.open(join(root, 'node-1', 'raft'));
    await logStore.removeGroup(partition.id);
    await logStore.close();
    const known = JSON.parse(await readFile(join(root, 'node-1', 'partitions.json'), 'utf8')) as { partitions: { descriptor: { id: number } }[] };
    expect(known.partitions.map((p) => p.descriptor.id)).toEqual([partition.id]);

    node = await start();
    expect(node.metrics().partitionReplicas).toBe(0);
    expect(lines.some((l) => l.message === 'deleting the data of a replica whose Raft log is gone' && l.fields.partition === partition.id)).toBe(true);
    // The map still lists the partition here: a new replica starts it again, without the old data.
    await eventually(async () => (node!.isReady() && node!.metrics().raftLeaders === 2 ? true : undefined), 'the replica created again');
    expect(await readAlpha(node)).toBeUndefined();
  });
});
