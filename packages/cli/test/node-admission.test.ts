/**
 * `shoal node --read-units-per-partition/--write-units-per-partition/--burst-seconds` reach the
 * node's admission: one `shoal node` process (its own meta group) with a read limit of 123 units a
 * second and a write limit of 0.001 with a 1,500 s burst (a bucket of 1.5 units, refilled too slowly
 * to matter here): two one-unit writes go ahead, the third is refused, and the partition's heartbeat
 * reports both limits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartitionDescriptor, TableRecord, TableSchema } from '@shoal/model';
import { MetaClient } from '@shoal/node';
import {
  AdminService,
  PartitionService,
  RpcError,
  createClient,
  dynamoDbErrorFromRpc,
  freePort,
  partitionMapResponseFromWire,
  tableRecordToWire,
  writeRequestToWire,
  writeResultFromWire,
} from '@shoal/proto';

const MAIN = resolve(import.meta.dirname, '..', 'src', 'main.ts');

/** Polls `probe` every 50 ms until it gives a value, at most `attempts` times. */
async function eventually<T>(probe: () => Promise<T | undefined>, what: string, attempts = 400): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('shoal node admission flags', () => {
  let root = '';
  let address = '';
  let node: ChildProcess | undefined;
  let meta: MetaClient;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-node-admission-'));
    address = `127.0.0.1:${await freePort()}`;
    const args = ['node', '--node-id', '1', '--listen', address, '--data-dir', join(root, 'node-1'), '--meta-peers', `1=${address}`];
    args.push('--read-units-per-partition', '123', '--write-units-per-partition', '0.001', '--burst-seconds', '1500');
    node = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'ignore'] });
    meta = new MetaClient({ peers: [{ nodeId: 1, address }], maxAttempts: 10, retryDelayMs: 50 });
  });

  afterAll(async () => {
    meta?.close();
    if (node !== undefined && node.exitCode === null) {
      const exited = new Promise((done) => node!.once('exit', done));
      node.kill('SIGTERM');
      await exited;
    }
    await rm(root, { recursive: true, force: true });
  });

  it('admits writes up to the burst, refuses the next, and reports the limits', { timeout: 60_000 }, async () => {
    const spaceId = await eventually(async () => (await meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId, 'the meta group');
    const schema: TableSchema = { name: 'limited', tableId: spaceId, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 0, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    const map = partitionMapResponseFromWire(await meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('the map answer carries no partitions');
    const partition: PartitionDescriptor = map.partitions.find((p) => p.tableId === spaceId)!;

    const partitions = createClient(PartitionService, address);
    const admin = createClient(AdminService, address);
    try {
      const target = { partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) };
      const put = (pk: string) => partitions.write(writeRequestToWire(target, { operations: [{ table: schema, kind: 'Put', key: { pk: { S: pk } }, item: { pk: { S: pk } } }] }));
      // Writes only once the replica leads: a write it refuses as not the leader takes units too.
      await eventually(async () => ((await admin.status({})).nodes.some((n) => n.reportedReplicas.some((r) => r.partitionId === target.partitionId && r.leader)) ? true : undefined), 'the partition leading');
      expect(writeResultFromWire(await put('a')).applied).toBe(true);
      expect(writeResultFromWire(await put('b')).applied).toBe(true);
      const refusal = await put('c').then(() => undefined, (error: unknown) => error);
      expect(refusal).toBeInstanceOf(RpcError);
      expect(dynamoDbErrorFromRpc(refusal as RpcError)?.type).toBe('ProvisionedThroughputExceededException');

      const load = await eventually(async () => {
        const status = await admin.status({});
        return status.nodes.flatMap((n) => n.reportedReplicas).find((r) => r.partitionId === BigInt(partition.id) && r.writeUnitLimit > 0);
      }, 'the partition\'s load reported');
      expect(load.readUnitLimit).toBe(123);
      expect(load.writeUnitLimit).toBe(0.001);
    } finally {
      partitions.close();
      admin.close();
    }
  });
});
