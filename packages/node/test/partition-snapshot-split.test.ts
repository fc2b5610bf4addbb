/**
 * A split half gains a new member, caught up by a partition snapshot: three real storage nodes in
 * child processes (logs compacted every few entries), a table split through AdminService, then a
 * fourth node started and a node of both halves killed. The placement driver moves both halves to
 * the fourth node; it receives each half's data by snapshot (the right half's data before the split
 * lies in its parent's log only) and serves every item, strongly consistent reads included. Idle
 * groups quiesce (`quiesceIdleGroups`): those led by the killed node wake and elect again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeItemKey, partitionContains, type Item, type PartitionDescriptor, type PartitionWrite, type TableRecord, type TableSchema } from '@shoal/model';
import {
  AdminService,
  RpcError,
  Status,
  createClient,
  getRequestToWire,
  getResultFromWire,
  partitionMapResponseFromWire,
  tableRecordToWire,
} from '@shoal/proto';
import { StorageNodeChildren, type StorageNodeChild } from './fixtures/storage-node-child.ts';
import { eventually } from './fixtures/eventually.ts';

const ATTEMPTS = 1_200;
const ITEMS = 24;

const RETRYABLE = [Status.FAILED_PRECONDITION, Status.UNAVAILABLE, Status.NOT_FOUND, Status.DEADLINE_EXCEEDED];

describe('a split half moves to a new member by snapshot', () => {
  let cluster: StorageNodeChildren;
  let schema: TableSchema;

  const tablePartitions = async (): Promise<PartitionDescriptor[]> => {
    const map = partitionMapResponseFromWire(await cluster.meta.call((c, options) => c.getPartitionMap({ knownVersion: 0n }, options)));
    if (map.notModified) throw new Error('expected a full map');
    return map.partitions.filter((p) => p.tableId === schema.tableId);
  };
  const ownerOf = (partitions: PartitionDescriptor[], pk: string): PartitionDescriptor =>
    partitions.find((p) => partitionContains(p, encodeItemKey(schema.tableId, { S: pk })))!;
  const put = (pk: string): PartitionWrite => ({ operations: [{ table: schema, kind: 'Put', key: { pk: { S: pk } }, item: { pk: { S: pk }, value: { S: `v-${pk}` } } }] });

  /** A write to the partition holding the key (looked up in the map each attempt), following NotLeader hints. */
  const write = async (pk: string, live: readonly StorageNodeChild[]): Promise<void> => {
    const { applied } = await cluster.write(live, async () => ownerOf(await tablePartitions(), pk), put(pk));
    expect(applied).toBe(true);
  };

  /** The item as `node` holds it, read there (eventually or strongly consistent). */
  const readOn = async (node: StorageNodeChild, pk: string, consistent: boolean): Promise<Item | undefined> => {
    const partition = ownerOf(await tablePartitions(), pk);
    try {
      const response = await cluster.partitionClient(node.address).get(
        getRequestToWire({ partitionId: BigInt(partition.id), epoch: BigInt(partition.epoch) }, { table: schema, key: { pk: { S: pk } } }, { consistent }),
        { timeoutMs: 5_000 },
      );
      return getResultFromWire(response)?.item;
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    cluster = await StorageNodeChildren.start('snapshot-split', 3, { tickMs: 20, heartbeatIntervalMs: 200, downTimeoutMs: 1_500, logCompaction: { every: 8, keep: 2 }, quiesceIdleGroups: true });
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it('both halves of a split partition reach a fourth node replacing a dead one, whole', { timeout: 120_000 }, async () => {
    await eventually(() => cluster.allReady(), 'three ready nodes', ATTEMPTS);
    const spaceId = (await cluster.meta.call((c, options) => c.allocateSpaceId({}, options))).spaceId;
    schema = { name: 'halves', tableId: spaceId, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
    await cluster.meta.call((c, options) => c.createTable({ record: tableRecordToWire(record), initialPartitions: 1 }, options));
    const pks = Array.from({ length: ITEMS }, (_, i) => `item-${i}`);
    for (const pk of pks.slice(0, ITEMS / 2)) await write(pk, cluster.nodes);

    // Split in the middle (the meta leader asks the partition's leader), then write to both halves.
    await eventually(async () => {
      const admin = createClient(AdminService, cluster.meta.leaderAddress);
      try {
        await admin.split({ table: schema.name, partitionId: 0n }, { timeoutMs: 10_000 });
        return true;
      } catch (error) {
        if (error instanceof RpcError && RETRYABLE.includes(error.code)) {
          await cluster.meta.call((c, options) => c.getPartitionMap({ knownVersion: 0n }, options));
          return undefined;
        }
        throw error;
      } finally {
        admin.close();
      }
    }, 'the split', 200);
    const halves = await eventually(async () => {
      const partitions = await tablePartitions();
      return partitions.length === 2 ? partitions : undefined;
    }, 'two halves in the map', ATTEMPTS);
    for (const pk of pks.slice(ITEMS / 2)) await write(pk, cluster.nodes);
    const right = halves.find((p) => p.startKey.length > 0 && halves.every((q) => q === p || Buffer.compare(Buffer.from(q.startKey), Buffer.from(p.startKey)) < 0))!;
    expect(pks.filter((pk) => ownerOf(halves, pk).id === right.id).length).toBeGreaterThan(0);

    // A fourth node joins; node 3 dies and stays down: both halves move to node 4.
    const fourth = await cluster.add(4);
    const gone = cluster.nodes.find((n) => n.nodeId === 3)!;
    await gone.kill();
    const live = cluster.nodes.filter((n) => n !== gone);
    await eventually(async () => {
      const partitions = await tablePartitions();
      return partitions.length === 2 && partitions.every((p) => p.replicas.map((r) => r.nodeId).sort().join() === '1,2,4') ? true : undefined;
    }, 'both halves placed on nodes 1, 2 and 4', ATTEMPTS);
    for (const pk of pks) {
      expect(await eventually(() => readOn(fourth, pk, false), `${pk} on the fourth node`, ATTEMPTS)).toEqual({ pk: { S: pk }, value: { S: `v-${pk}` } });
    }
    const state = await fourth.state();
    expect(state.metrics.snapshotsRestored).toBeGreaterThanOrEqual(2);
    // The halves go on: a write to the right half, read strongly consistently on the new member.
    const fresh = pks.map((_, i) => `fresh-${i}`).find((pk) => ownerOf(halves, pk).id === right.id)!;
    await write(fresh, live);
    expect(await eventually(() => readOn(fourth, fresh, true), 'a strong read of the fresh item on node 4', 200)).toEqual({ pk: { S: fresh }, value: { S: `v-${fresh}` } });
  });
});
