import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { middleSplitKey } from '@shoal/meta';
import { compareBytes, encodeCollectionPrefix, encodeItemKey, type PartitionDescriptor, type TableSchema } from '@shoal/model';
import { createClient, ErrorDetailSchema, PartitionService, RpcError } from '@shoal/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminStatus, eventually, getFromNode, placedPartition, routedClusterPerFile, runShoal } from './helpers/cluster.ts';
import { createTable, keyedBy } from './helpers/item-assertions.ts';

/**
 * Splitting a partition through its Raft log on 3 `shoal node` processes, with a router in this
 * process and the AWS SDK as the client: `shoal admin split` in the middle of a write workload loses
 * no acknowledged write and both halves serve reads and writes; a node restarted afterwards still
 * holds both halves, and its left half splits again at a partition key value (`--at '{"S":...}'`);
 * and a split whose meta leader never recorded it (the split asked of the
 * partition's leader directly) reaches the map through the nodes' heartbeats.
 */

const TABLE = 'splitting';
const STEP_TIMEOUT_MS = 240_000;
/** DynamoDB's own answers a client retries: the write may or may not have been applied. */
const RETRYABLE = new Set(['InternalServerError', 'ServiceUnavailable', 'ThrottlingException', 'ProvisionedThroughputExceededException']);

const cluster = routedClusterPerFile({}, STEP_TIMEOUT_MS);
let schema: TableSchema;
/** Keys whose put was acknowledged, with the value written. */
const acknowledged = new Map<string, number>();
/** Error names of puts that failed (each retryable, the write's fate unknown). */
const failures: string[] = [];

beforeAll(async () => {
  await createTable(cluster.client, { TableName: TABLE, ...keyedBy(['id', 'S']) });
  schema = (await cluster.front.backend.catalog.get(TABLE))!.schema;
  await placedPartition(cluster.nodes, TABLE);
}, STEP_TIMEOUT_MS);

const keyOf = (id: string): Uint8Array => encodeItemKey(schema.tableId, { S: id });

/** Writers putting fresh items until `stop`; each acknowledged put is recorded. */
function workload(prefix: string, writers: number): { stop(): Promise<void>; count(): number } {
  let running = true;
  let count = 0;
  const loops = Array.from({ length: writers }, async (_, writer) => {
    for (let i = 0; running && i < 100_000; i++) {
      const id = `${prefix}-${writer}-${i}`;
      try {
        await cluster.doc.send(new PutCommand({ TableName: TABLE, Item: { id, n: i } }));
        acknowledged.set(id, i);
        count++;
      } catch (error) {
        failures.push((error as Error).name);
        if (!RETRYABLE.has((error as Error).name)) throw error;
      }
    }
  });
  return {
    count: () => count,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Every acknowledged item, read back strongly consistent (8 reads at a time). */
async function readAllBack(): Promise<void> {
  const entries = [...acknowledged];
  for (let from = 0; from < entries.length; from += 8) {
    await Promise.all(
      entries.slice(from, from + 8).map(async ([id, n]) => {
        const { Item } = await cluster.doc.send(new GetCommand({ TableName: TABLE, Key: { id }, ConsistentRead: true }));
        expect(Item, id).toEqual({ id, n });
      }),
    );
  }
}

interface SplitJson {
  left: { id: number; epoch: number; startKey: string; endKey: string };
  right: { id: number; epoch: number; startKey: string; endKey: string };
}

describe('splitting a partition of a 3-node cluster', () => {
  it('splits in the middle of a write workload: nothing acknowledged is lost, both halves serve', { timeout: STEP_TIMEOUT_MS }, async () => {
    const load = workload('a', 4);
    await eventually('writes before the split', () => load.count() >= 60, 60_000);
    const split = await runShoal(['admin', 'split', TABLE, '--json', '--meta', cluster.nodes.metaAddresses.join(',')]);
    expect(split.code, split.stderr).toBe(0);
    halves = JSON.parse(split.stdout) as SplitJson;
    const { left, right } = halves;
    const before = load.count();
    await eventually('writes after the split', () => load.count() >= before + 120, 90_000);
    await load.stop();
    expect(failures.filter((name) => !RETRYABLE.has(name))).toEqual([]);

    expect(left.epoch).toBe(2);
    expect(right.epoch).toBe(2);
    expect(left.endKey).toBe(right.startKey);
    const splitKey = Buffer.from(right.startKey, 'hex');
    const ids = [...acknowledged.keys()];
    const onRight = ids.filter((id) => compareBytes(keyOf(id), splitKey) >= 0);
    expect(onRight.length).toBeGreaterThan(0);
    expect(onRight.length).toBeLessThan(ids.length);

    await readAllBack();

    const status = await adminStatus(cluster.nodes.metaAddresses);
    const rows = status.partitions.filter((p) => p.table === TABLE).sort((a, b) => a.id - b.id);
    expect(rows.map((p) => [p.id, p.epoch])).toEqual([
      [left.id, 2],
      [right.id, 2],
    ]);
    await eventually('both halves on 3 voters with a leader', async () => {
      const now = (await adminStatus(cluster.nodes.metaAddresses)).partitions.filter((p) => p.table === TABLE);
      return now.length === 2 && now.every((p) => p.leader !== undefined && p.replicas.toSorted().join() === '1,2,3');
    }, 60_000, 500);

    // No data was copied: every replica of the right half holds the items the parent had written.
    const early = onRight.find((id) => id.startsWith('a-0-'))!;
    for (const nodeId of cluster.nodes.nodeIds()) {
      await eventually(`node ${nodeId} serves ${early} from the right half`, async () =>
        (await getFromNode(cluster.nodes.address(nodeId), { id: right.id, epoch: right.epoch }, schema, { id: { S: early } }))?.n !== undefined,
      );
    }
  });

  it('keeps both halves on a node killed and restarted', { timeout: STEP_TIMEOUT_MS }, async () => {
    await cluster.nodes.signal(3, 'SIGKILL');
    await cluster.nodes.startNode(3);
    await cluster.nodes.waitReady();
    const load = workload('b', 2);
    await eventually('writes after the restart', () => load.count() >= 50, 90_000);
    await load.stop();
    const rows = await tableRows();
    const splitKey = Buffer.from(halves!.right.startKey, 'hex');
    const ids = [...acknowledged.keys()];
    const leftId = ids.find((id) => compareBytes(keyOf(id), splitKey) < 0)!;
    const rightId = ids.find((id) => compareBytes(keyOf(id), splitKey) >= 0)!;
    for (const [partition, id] of [
      [rows[0], leftId],
      [rows[1], rightId],
    ] as const) {
      await eventually(`node 3 serves ${id} from partition ${partition.id}`, async () =>
        (await getFromNode(cluster.nodes.address(3), partition, schema, { id: { S: id } }))?.n !== undefined,
      );
    }

    // The left half split again, at a partition key value given as DynamoDB JSON: the start of its
    // item collection (the candidate nearest a quarter of the hash range, inside the left half).
    const quarter = 1n << 62n;
    const hashOf = (id: string): bigint => Buffer.from(keyOf(id)).readBigUInt64BE(4);
    const distance = (id: string): bigint => (hashOf(id) > quarter ? hashOf(id) - quarter : quarter - hashOf(id));
    const at = Array.from({ length: 50 }, (_, i) => `at-${i}`).reduce((best, id) => (distance(id) < distance(best) ? id : best));
    const again = await runShoal(['admin', 'split', TABLE, '--at', JSON.stringify({ S: at }), '--json', '--meta', cluster.nodes.metaAddresses.join(',')]);
    expect(again.code, again.stderr).toBe(0);
    const quarters = JSON.parse(again.stdout) as SplitJson;
    expect(quarters.left.id).toBe(rows[0].id);
    expect(quarters.right.startKey).toBe(Buffer.from(encodeCollectionPrefix(schema.tableId, { S: at })).toString('hex'));
    expect(quarters.right.endKey).toBe(halves!.right.startKey);
    expect((await tableRows()).length).toBe(3);
    await readAllBack();
  });

  it('records a split its meta leader never recorded, from the nodes\' heartbeats', { timeout: STEP_TIMEOUT_MS }, async () => {
    // An id meta handed out that no partition holds any more: that of a table created and deleted.
    await createTable(cluster.client, { TableName: 'scratch', ...keyedBy(['id', 'S']) });
    const reservedId = (await adminStatus(cluster.nodes.metaAddresses)).partitions.find((p) => p.table === 'scratch')!.id;
    await cluster.client.send(new DeleteTableCommand({ TableName: 'scratch' }));
    for (const nodeId of cluster.nodes.nodeIds()) {
      await eventually(`node ${nodeId} removed partition ${reservedId}`, async () => (await partitionHosted(cluster.nodes.address(nodeId), reservedId)) === false);
    }

    // The right half split by its leader directly, as AdminService.Split does before it records it.
    const right = (await tableRows()).find((p) => p.id === halves!.right.id)!;
    const splitKey = middleSplitKey({ ...descriptorOf(halves!.right), epoch: right.epoch })!;
    await eventually('the right half split by its leader', async () => {
      const leader = (await tableRows()).find((p) => p.id === right.id)?.leader;
      if (leader === undefined) return false;
      const partitions = createClient(PartitionService, cluster.nodes.address(leader));
      try {
        await partitions.splitPartition({ target: { partitionId: BigInt(right.id), epoch: BigInt(right.epoch) }, splitKey, rightPartitionId: BigInt(reservedId) }, { timeoutMs: 10_000 });
        return true;
      } catch (error) {
        if (error instanceof RpcError && error.detail(ErrorDetailSchema)?.kind.case === 'notLeader') return false;
        throw error;
      } finally {
        partitions.close();
      }
    });
    await eventually('the map shows the split', async () => {
      const rows = await tableRows();
      return rows.length === 4 && rows.some((p) => p.id === reservedId && p.epoch === right.epoch + 1);
    }, 60_000, 500);

    const load = workload('c', 2);
    await eventually('writes after the recorded split', () => load.count() >= 50, 90_000);
    await load.stop();
    expect(failures.filter((name) => !RETRYABLE.has(name))).toEqual([]);
    const ids = [...acknowledged.keys()].filter((id) => id.startsWith('c-'));
    expect(ids.some((id) => compareBytes(keyOf(id), splitKey) >= 0)).toBe(true);
    await readAllBack();
  });
});

let halves: SplitJson | undefined;

async function tableRows(): Promise<Array<{ id: number; epoch: number; leader?: number }>> {
  return (await adminStatus(cluster.nodes.metaAddresses)).partitions.filter((p) => p.table === TABLE).sort((a, b) => a.id - b.id);
}

function descriptorOf(half: SplitJson['right']): PartitionDescriptor {
  return { id: half.id, tableId: schema.tableId, startKey: Buffer.from(half.startKey, 'hex'), endKey: Buffer.from(half.endKey, 'hex'), epoch: half.epoch, replicas: [] };
}

/** Whether the node hosts a replica of the partition (an eventual Get of it is not PartitionNotFound). */
async function partitionHosted(address: string, partitionId: number): Promise<boolean> {
  try {
    await getFromNode(address, { id: partitionId, epoch: 1 }, schema, { id: { S: 'probe' } });
    return true;
  } catch (error) {
    if (error instanceof RpcError && error.detail(ErrorDetailSchema)?.kind.case === 'partitionNotFound') return false;
    return true;
  }
}
