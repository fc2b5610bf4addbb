/**
 * GSI back-pressure and the admission of shipped GSI records, on one node in this process (groups of
 * one over an outbox store, the StorageNodeServer on a gRPC server): a base partition's leader refuses
 * writes (alone or coalesced) and transaction prepares of a table with a GSI while its outbox backlog is at the limit
 * (DynamoDB's ProvisionedThroughputExceededException for a GSI that cannot keep up), everything that
 * drains goes on, and a trim lets writes in again; a GSI partition admits ApplyIndexEntries under its
 * token bucket (refused: the same batch applies later) and counts the records as its write load,
 * sampled at their entry keys. Also a replica's split: the right half's backlog counts what its outbox move carried over.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareBytes, encodeItemKey, initialPartitions, spaceRange, type IndexSchema, type PartitionDescriptor, type PartitionWrite, type TableSchema } from '@shoal/model';
import { NodeLoad, PartitionReplica, RaftLogStore, StorageNodeServer, encodePartitionCommand, proposeIndexOutboxTrim, type MultiRaftHost, type PartitionSplit } from '@shoal/node';
import {
  PartitionService,
  RpcError,
  Server,
  Status,
  applyIndexEntriesRequestToWire,
  createClient,
  dynamoDbErrorFromRpc,
  getRequestToWire,
  getResultFromWire,
  listen,
  prepareTransactionRequestToWire,
  resolveTransactionRequestToWire,
  shutdown,
  writeManyRequestToWire,
  writeManyResultsFromWire,
  writeRequestToWire,
  writeResultFromWire,
  type ClientOf,
  type RoutedTo,
} from '@shoal/proto';
import { openLocalStore, partitionBound, type LocalStore } from '@shoal/storage';
import { eventually } from './fixtures/eventually.ts';
import { openTestHost } from './fixtures/host-cluster.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';

const S = (value: string) => ({ S: value });
const BY_V: IndexSchema = { name: 'byV', kind: 'GSI', indexId: 11, hashKey: { name: 'v', type: 'S' }, projection: { type: 'ALL' } };
const INDEXED: TableSchema = { name: 'orders', tableId: 10, hashKey: { name: 'pk', type: 'S' }, indexes: [BY_V] };
const PLAIN: TableSchema = { name: 'plain', tableId: 12, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const alone = (partition: PartitionDescriptor): PartitionDescriptor => ({ ...partition, replicas: [{ nodeId: 1, role: 'voter' }] });
const BASE = alone(initialPartitions(INDEXED.tableId, 1, 1)[0]!);
const PLAIN_PARTITION = alone(initialPartitions(PLAIN.tableId, 1, 2)[0]!);
const GSI = alone(initialPartitions(BY_V.indexId, 1, 3)[0]!);
const PARTITIONS = [BASE, PLAIN_PARTITION, GSI];
const LIMIT = 3;
/** Write units a second each partition admits here, with a bucket of one second: 20 units. */
const WRITE_UNITS = 20;
const INDEX_MESSAGE =
  'The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. ' +
  'Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API';

const at = (partition: PartitionDescriptor): RoutedTo => ({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) });
const put = (table: TableSchema, pk: string, v?: string): PartitionWrite => ({
  operations: [{ table, kind: 'Put', key: { pk: S(pk) }, item: { pk: S(pk), ...(v === undefined ? {} : { v: S(v) }) } }],
});

/** The DynamoDB error a call failed with (its type, message and fields), or a failure of the test. */
async function dynamoDbFailure(call: Promise<unknown>) {
  const error = await call.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof RpcError)) throw new Error(`expected an RpcError, got ${String(error)}`);
  expect(error.code).toBe(Status.RESOURCE_EXHAUSTED);
  const dynamo = dynamoDbErrorFromRpc(error);
  if (dynamo === undefined) throw new Error(`expected a DynamoDB error, got ${error.message}`);
  return dynamo;
}

describe('GSI back-pressure and shipped records under admission control (one node)', () => {
  const network = new MemoryNetwork();
  let root = '';
  let logStore: RaftLogStore;
  let local: LocalStore;
  let host: MultiRaftHost;
  let grpc: Server;
  let rpc: ClientOf<typeof PartitionService>;
  let server: StorageNodeServer;
  let load: NodeLoad;
  /** The load trackers' clock (ms): frozen, so their buckets refill only when a test moves it. */
  let clock = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-index-backpressure-'));
    logStore = await RaftLogStore.open(join(root, 'raft'));
    local = await openLocalStore({ dataDir: join(root, 'partitions'), indexOutbox: true });
    const replicas = new Map<number, PartitionReplica>();
    for (const partition of PARTITIONS) replicas.set(partition.id, await PartitionReplica.open(partition.id, local.partitions, { boundOf: () => partitionBound(partition) }));
    host = openTestHost(network, { nodeId: 1, logStore, sender: network.sender(1), stateMachine: (id) => replicas.get(id)!, seed: 1 });
    for (const partition of PARTITIONS) await host.createGroup(partition.id, [1]);
    host.startTicking();
    await eventually(() => (PARTITIONS.every((p) => host.leaderOf(p.id) === 1) ? true : undefined), 'every group led');
    load = new NodeLoad({ limits: { writeUnitsPerSecond: WRITE_UNITS, burstSeconds: 1 }, now: () => clock });
    grpc = new Server();
    server = new StorageNodeServer({
      server: grpc,
      host,
      replicaOf: (id) => replicas.get(id),
      descriptorOf: (id) => PARTITIONS.find((p) => p.id === id),
      gsiOf: (spaceId) => (spaceId === BY_V.indexId ? { table: INDEXED, index: BY_V } : undefined),
      log: { warn: () => undefined },
      load,
      indexOutboxLimit: LIMIT,
    });
    rpc = createClient(PartitionService, `127.0.0.1:${await listen(grpc, '127.0.0.1', 0)}`);
  }, 30_000);

  afterAll(async () => {
    rpc?.close();
    if (grpc !== undefined) await shutdown(grpc, 1_000);
    await host?.stop();
    await logStore?.close();
    await local?.close();
    await rm(root, { recursive: true, force: true });
  });

  const write = async (partition: PartitionDescriptor, request: PartitionWrite) => writeResultFromWire(await rpc.write(writeRequestToWire(at(partition), request)));

  it('refuses writes and prepares of a table with a GSI while the outbox holds the limit; the rest goes on; a trim lets them in', { timeout: 30_000 }, async () => {
    for (let i = 0; i < LIMIT; i++) expect((await write(BASE, put(INDEXED, `a${i}`, 'x'))).applied).toBe(true);
    expect(local.partitions.indexOutboxBacklog(BASE.id)).toBe(LIMIT);
    const refused = await dynamoDbFailure(write(BASE, put(INDEXED, 'a9', 'x')));
    expect(refused.type).toBe('ProvisionedThroughputExceededException');
    expect(refused.message).toBe(INDEX_MESSAGE);
    expect(refused.fields.ThrottlingReasons).toEqual([{ reason: 'IndexWriteKeyRangeThroughputExceeded', resource: 'arn:aws:dynamodb::000000000000:table/orders/index/byV' }]);
    // Not evaluated: an item without the GSI's key would add no record, and is refused all the same.
    await dynamoDbFailure(write(BASE, put(INDEXED, 'a10')));
    const transaction = { id: 'a1', coordinator: BASE.id, deadline: Date.now() + 60_000 };
    await dynamoDbFailure(rpc.prepareTransaction(prepareTransactionRequestToWire(at(BASE), transaction, put(INDEXED, 'a11', 'x'))));
    // Coalesced writes (a router's WriteMany): each refused on its own, answered with the error it would have alone.
    const many = writeManyResultsFromWire(await rpc.writeMany(writeManyRequestToWire(at(BASE), [put(INDEXED, 'a12', 'x'), put(INDEXED, 'a13', 'x')])), 2);
    for (const outcome of many) {
      expect(outcome).toBeInstanceOf(RpcError);
      expect(dynamoDbErrorFromRpc(outcome as RpcError)?.message).toBe(INDEX_MESSAGE);
    }
    expect(server.stats.indexBacklogRefusals).toBe(5);
    // What drains or does not add records goes on: a resolve, reads, a table without a GSI.
    expect((await rpc.resolveTransaction(resolveTransactionRequestToWire(at(BASE), 'a0', false))).intents).toBe(0);
    expect(getResultFromWire(await rpc.get(getRequestToWire(at(BASE), { table: INDEXED, key: { pk: S('a0') } }, { consistent: true })))?.item).toEqual({ pk: S('a0'), v: S('x') });
    expect((await write(PLAIN_PARTITION, put(PLAIN, 'p'))).applied).toBe(true);
    // Nothing reached the outbox meanwhile; a trim (the shipper's, once the GSI took them) lets writes in.
    expect(local.partitions.indexOutboxBacklog(BASE.id)).toBe(LIMIT);
    await proposeIndexOutboxTrim(host, BASE.id, 1);
    expect(local.partitions.indexOutboxBacklog(BASE.id)).toBe(LIMIT - 1);
    expect((await write(BASE, put(INDEXED, 'b0', 'y'))).applied).toBe(true);
    await dynamoDbFailure(write(BASE, put(INDEXED, 'b1', 'y')));
    expect(server.stats.indexBacklogRefusals).toBe(6);
    expect(server.stats.throttledWrites).toBe(0);
  });

  it('admits ApplyIndexEntries under the GSI partition\'s bucket, counting its records as the partition\'s writes at their entry keys', { timeout: 30_000 }, async () => {
    const itemKey = encodeItemKey(INDEXED.tableId, S('i'));
    const records = Array.from({ length: WRITE_UNITS + 5 }, (_, i) => ({
      seq: i + 1,
      indexId: BY_V.indexId,
      entryKey: encodeItemKey(BY_V.indexId, S(`v${i}`), S(`i${i}`)),
      itemKey,
      entry: { pk: S(`i${i}`), v: S(`v${i}`) },
    }));
    const send = (batch: typeof records) => rpc.applyIndexEntries(applyIndexEntriesRequestToWire(at(GSI), { sourcePartitionId: 99, records: batch, fences: [] }));
    // A full bucket admits the call; its records are charged after (one unit each), leaving it in debt.
    expect(await send(records.slice(0, WRITE_UNITS))).toMatchObject({ applied: WRITE_UNITS, skipped: 0 });
    const throttled = await dynamoDbFailure(send(records));
    expect(throttled.type).toBe('ProvisionedThroughputExceededException');
    expect(throttled.fields.ThrottlingReasons).toEqual([{ reason: 'IndexWriteKeyRangeThroughputExceeded', resource: 'arn:aws:dynamodb::000000000000:table/orders/index/byV' }]);
    expect(server.stats.throttledIndexEntries).toBe(1);
    expect(server.stats.throttledWrites).toBe(0);
    // The GSI partition's load: its records as writes, its sample within the index space (rates need time to pass).
    clock += 100;
    const report = load.report(GSI.id);
    expect(report?.writesPerSecond).toBeGreaterThan(0);
    expect(report?.throttledWritesPerSecond).toBeGreaterThan(0);
    const space = spaceRange(BY_V.indexId);
    expect(report?.sampledKeys.length).toBeGreaterThan(0);
    for (const sampled of report?.sampledKeys ?? []) {
      expect(compareBytes(sampled.key, space.start) >= 0 && compareBytes(sampled.key, space.end) < 0).toBe(true);
    }
    // Refused, the batch was only delayed: sent again once the bucket refilled, the rest applies.
    clock += 10_000;
    expect(await send(records)).toMatchObject({ applied: 5, skipped: WRITE_UNITS });
  });
});

describe('a base replica\'s split: the outbox backlogs of the halves', () => {
  it('the right half\'s backlog counts the records its outbox move carried over; the left keeps the rest', async () => {
    const store = await openLocalStore({ inMemory: true, indexOutbox: true });
    try {
      const pks = Array.from({ length: 10 }, (_, i) => `k${i}`);
      const keys = pks.map((pk) => encodeItemKey(INDEXED.tableId, S(pk))).sort(compareBytes);
      const splitKey = keys[6]!;
      const right = 8;
      const splits: Array<{ index: number; splitKey: Uint8Array }> = [];
      let atCreation: number | undefined;
      const replica = await PartitionReplica.open(BASE.id, store.partitions, {
        splitsOf: () => splits,
        onSplit: async (split: PartitionSplit) => {
          atCreation = store.partitions.indexOutboxBacklog(split.rightId);
          splits.push({ index: split.index, splitKey: split.splitKey });
          return { status: 'refused', message: 'no host here' };
        },
      });
      let index = 0;
      for (const pk of pks) await replica.apply(encodePartitionCommand({ kind: 'write', write: put(INDEXED, pk, 'x') }), ++index);
      await replica.apply(encodePartitionCommand({ kind: 'trimIndexOutbox', throughSeq: 2 }), ++index);
      await replica.settled();
      const records = await store.partitions.readIndexOutbox(BASE.id, { maxRecords: 100, maxBytes: 1 << 30 });
      const moving = records.filter((record) => compareBytes(record.itemKey, splitKey) >= 0);
      expect(moving.length).toBeGreaterThan(0);
      await replica.apply(encodePartitionCommand({ kind: 'split', splitKey: Buffer.from(splitKey).toString('hex'), parentEnd: '', rightId: right, epoch: 2 }), ++index);
      // The split's apply moves nothing (its move entries do): the right half starts empty.
      expect(atCreation).toBe(0);
      for (let step = await store.partitions.nextIndexOutboxMoveStep(BASE.id); step !== undefined && index < 100; step = await store.partitions.nextIndexOutboxMoveStep(BASE.id)) {
        await replica.apply(encodePartitionCommand({ kind: 'moveIndexOutbox', fromSeq: step.fromSeq, toSeq: step.toSeq }), ++index);
      }
      expect((await store.partitions.readIndexOutbox(right, { maxRecords: 100, maxBytes: 1 << 30 })).map((record) => record.seq)).toEqual(moving.map((record) => record.seq));
      // Each half counts the records it holds (not the seq span: the other half's seqs between them are not its).
      expect(store.partitions.indexOutboxBacklog(right)).toBe(moving.length);
      expect(store.partitions.indexOutboxBacklog(BASE.id)).toBe(records.length - moving.length);
    } finally {
      await store.close();
    }
  });
});
