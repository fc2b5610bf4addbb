/**
 * A replica installing a snapshot holds part of it in its store (the restore's batches are bounded):
 * its node refuses every read of it meanwhile as ReplicaBehind, so the router reads from the leader,
 * and serves them again once the install is done. One node in this process (a group of one), its
 * replica installing a payload staged in a file while its range is being recorded (held by the test).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialPartitions, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { PartitionReplica, StorageNodeServer } from '@shoal/node';
import { ErrorDetailSchema, PartitionService, RpcError, Server, Status, createClient, getRequestToWire, getResultFromWire, listen, shutdown, type ClientOf, type RoutedTo } from '@shoal/proto';
import { openLocalStore, partitionBound } from '@shoal/storage';
import { eventually } from './fixtures/eventually.ts';
import { MemoryNetwork } from './fixtures/host-memory-network.ts';
import { oneReplica, startPartitionMember, stopPartitionMember, type PartitionMember } from './fixtures/partition-member.ts';
import { readSnapshotData } from './fixtures/snapshot-data.ts';

const TABLE: TableSchema = { name: 'restoring', tableId: 6, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const PARTITION: PartitionDescriptor = { ...initialPartitions(TABLE.tableId, 1, 1)[0], replicas: [{ nodeId: 1, role: 'voter' }] };
const GROUP = PARTITION.id;
const TARGET: RoutedTo = { partitionId: BigInt(GROUP), epoch: BigInt(PARTITION.epoch) };
const ITEM = { pk: { S: 'a' }, v: { S: 'from the snapshot' } };

describe('a storage node whose replica installs a snapshot', () => {
  const network = new MemoryNetwork();
  let root = '';
  let member: PartitionMember & { replica: PartitionReplica };
  let grpc: Server;
  let rpc: ClientOf<typeof PartitionService>;
  /** Releases the replica's range recording, which holds the install. */
  let releaseRestore: () => void = () => undefined;
  let restoreHeld: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-node-restoring-'));
    member = await startPartitionMember(network, 1, join(root, 'node-1'), {
      seed: 1,
      ...oneReplica(GROUP, { boundOf: () => partitionBound(PARTITION), tableOf: () => TABLE, onRestore: () => restoreHeld }),
    });
    await member.host.createGroup(GROUP, [1]);
    member.host.startTicking();
    await eventually(() => (member.host.leaderOf(GROUP) === 1 ? true : undefined), 'the group led');
    grpc = new Server();
    new StorageNodeServer({
      server: grpc,
      host: member.host,
      replicaOf: (id) => (id === GROUP ? member.replica : undefined),
      descriptorOf: (id) => (id === GROUP ? PARTITION : undefined),
      log: { warn: () => undefined },
    });
    rpc = createClient(PartitionService, `127.0.0.1:${await listen(grpc, '127.0.0.1', 0)}`);
  }, 30_000);

  afterAll(async () => {
    rpc.close();
    await shutdown(grpc, 1_000);
    await stopPartitionMember(network, member);
    await rm(root, { recursive: true, force: true });
  });

  const read = async (): Promise<unknown> => getResultFromWire(await rpc.get(getRequestToWire(TARGET, { table: TABLE, key: { pk: ITEM.pk } }, { consistent: false })))?.item;

  it('refuses reads as ReplicaBehind while the install runs, and serves the snapshot\'s state after', async () => {
    const source = await openLocalStore({ dataDir: join(root, 'source') });
    const sourceReplica = await PartitionReplica.open(GROUP, source.partitions, { boundOf: () => partitionBound(PARTITION), tableOf: () => TABLE });
    await source.partitions.write({ operations: [{ table: TABLE, kind: 'Put', key: { pk: ITEM.pk }, item: ITEM }] }, { groupId: GROUP, index: 1 });
    const bytes = await readSnapshotData(await sourceReplica.openSnapshotPayload()());
    const path = join(root, 'payload');
    await writeFile(path, bytes);
    await source.close();

    expect(await read()).toBeUndefined();
    restoreHeld = new Promise((resolve) => (releaseRestore = resolve));
    const installing = member.replica.installSnapshot({ index: 5, data: await member.replica.snapshot(), payload: { path, offset: 0, size: bytes.length } });
    await eventually(() => (member.replica.restoring() ? true : undefined), 'the install under way');
    const refused = await read().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).code).toBe(Status.FAILED_PRECONDITION);
    expect((refused as RpcError).detail(ErrorDetailSchema)?.kind.case).toBe('replicaBehind');
    releaseRestore();
    await installing;
    expect(await read()).toEqual(ITEM);
  });
});
