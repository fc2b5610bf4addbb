/**
 * Admission control end to end: three storage node processes with low per-partition limits (20 write
 * and 40 read units a second), two routers in this process sharing PROVISIONED tables' throughput,
 * the AWS SDK as the client. Throttling starts over the limits with DynamoDB's error and throttling
 * reason, stops once the buckets refill, the SDK's retries get every write through, the nodes report
 * the load, throttles and partition sizes in AdminService.Status, and ReturnConsumedCapacity stays exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import { AdminService, createClient, type PartitionLoad } from '@shoal/proto';
import { connectCluster, startRouter, type ClusterBackend, type Router } from '../src/index.ts';
import { startNodeProcesses, type NodeProcesses } from './support/node-processes.ts';
import { eventually } from './support/eventually.ts';

const NODE_IDS = [1, 2, 3];
const LIMITS = { writeUnitsPerSecond: 20, readUnitsPerSecond: 40, burstSeconds: 1 };

let nodes: NodeProcesses | undefined;
let metaAddresses: string[] = [];
const backends: ClusterBackend[] = [];
const routers: Router[] = [];
const clients: DynamoDBClient[] = [];

const client = (router: number, maxAttempts: number): DynamoDBClient => {
  const made = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${routers[router].port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'shoal', secretAccessKey: 'shoal' },
    maxAttempts,
  });
  clients.push(made);
  return made;
};

const table = (name: string, provisioned?: { reads: number; writes: number }): CreateTableCommandInput => ({
  TableName: name,
  KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
  AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
  ...(provisioned === undefined
    ? { BillingMode: 'PAY_PER_REQUEST' }
    : { BillingMode: 'PROVISIONED', ProvisionedThroughput: { ReadCapacityUnits: provisioned.reads, WriteCapacityUnits: provisioned.writes } }),
});

const put = (tableName: string, pk: string, bytes = 10) => new PutItemCommand({ TableName: tableName, Item: { pk: { S: pk }, data: { S: 'x'.repeat(bytes) } } });

/** Sends every command at once; the throttled ones' errors, the others succeed. */
async function burst(sender: DynamoDBClient, commands: PutItemCommand[]): Promise<{ ok: number; throttled: ProvisionedThroughputExceededException[] }> {
  const results = await Promise.allSettled(commands.map((command) => sender.send(command)));
  const throttled: ProvisionedThroughputExceededException[] = [];
  let ok = 0;
  for (const result of results) {
    if (result.status === 'fulfilled') ok++;
    else if (result.reason instanceof ProvisionedThroughputExceededException) throttled.push(result.reason);
    else throw result.reason;
  }
  return { ok, throttled };
}

/** Every replica report the meta leader holds (AdminService.Status). */
async function reportedLoads(): Promise<PartitionLoad[]> {
  for (const address of metaAddresses) {
    const admin = createClient(AdminService, address);
    try {
      const status = await admin.status({}, { timeoutMs: 2_000 });
      return status.nodes.flatMap((node) => node.reportedReplicas);
    } catch {
      // Not the meta leader: the next peer.
    }
  }
  return [];
}

beforeAll(async () => {
  nodes = await startNodeProcesses(NODE_IDS, 'admission', { heartbeatIntervalMs: 200, load: { limits: LIMITS, windowMs: 60_000, sizeIntervalMs: 300 } });
  ({ metaAddresses } = nodes);
  for (let i = 0; i < 2; i++) {
    const backend = await connectCluster({ metaAddresses, initialPartitions: 1, startTimeoutMs: 60_000, routers: 2, throughputBurstSeconds: 1, region: 'eu-west-1' });
    backends.push(backend);
    await eventually('all nodes registered', () => backend.metrics().nodes === NODE_IDS.length);
    routers.push(await startRouter({ partitions: backend.partitions, catalog: backend.catalog, port: 0, ttlSweepIntervalMs: 0, region: 'eu-west-1' }));
  }
}, 120_000);

afterAll(async () => {
  for (const made of clients) made.destroy();
  await Promise.all(routers.map((router) => router.close()));
  await Promise.all(backends.map((backend) => backend.close()));
  await nodes?.stop();
}, 60_000);

describe('admission control over node processes', () => {
  it('throttles a partition over its write limit with DynamoDB\'s error and reason, stops once it refilled, and the SDK\'s retries get through', async () => {
    const once = client(0, 1);
    await once.send(new CreateTableCommand(table('hot')));
    const { ok, throttled } = await burst(once, Array.from({ length: 120 }, (_, i) => put('hot', `item-${i}`)));
    expect(throttled.length).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    const error = throttled[0];
    expect(error.name).toBe('ProvisionedThroughputExceededException');
    expect(error.$metadata.httpStatusCode).toBe(400);
    expect(error.message).toMatch(/^Throughput exceeds the current capacity of your table or index/);
    expect(error.ThrottlingReasons).toEqual([{ reason: 'TableWriteKeyRangeThroughputExceeded', resource: 'arn:aws:dynamodb:eu-west-1:000000000000:table/hot' }]);

    // Reads have their own limit: not throttled by the writes.
    await once.send(new GetItemCommand({ TableName: 'hot', Key: { pk: { S: 'item-0' } }, ConsistentRead: true }));
    // The bucket refills: a lone write goes through again without a retry.
    await eventually('a write admitted again', async () => {
      try {
        await once.send(put('hot', 'after'));
        return true;
      } catch (refused) {
        if (refused instanceof ProvisionedThroughputExceededException) return false;
        throw refused;
      }
    });

    // With retries, a burst twice the bucket gets through whole.
    const retrying = client(0, 12);
    const retried = await burst(retrying, Array.from({ length: 40 }, (_, i) => put('hot', `retried-${i}`)));
    expect(retried).toEqual({ ok: 40, throttled: [] });
    for (let i = 0; i < 40; i += 13) {
      const read = await retrying.send(new GetItemCommand({ TableName: 'hot', Key: { pk: { S: `retried-${i}` } }, ConsistentRead: true }));
      expect(read.Item?.pk).toEqual({ S: `retried-${i}` });
    }

    // The leader's heartbeat reports the load, the throttles and the partition's size: AdminService.Status shows them.
    await eventually('load reported in Status', async () => {
      // Whichever replica led while the writes came (a loaded machine may have moved the leadership since).
      const loads = (await reportedLoads()).filter((load) => load.writeUnitLimit === LIMITS.writeUnitsPerSecond);
      const served = loads.some((load) => load.writeUnitsPerSecond > 0 && load.throttledWritesPerSecond > 0 && load.sampledKeys.length > 0 && load.writesPerSecond > 0);
      return served && loads.some((load) => load.leader && load.sizeBytes > 0n);
    }, 100, 200);
  }, 120_000);

  it('enforces a PROVISIONED table\'s throughput across two routers, each admitting its half', async () => {
    const first = client(0, 1);
    const second = client(1, 1);
    await first.send(new CreateTableCommand(table('provisioned', { reads: 100, writes: 10 })));
    await eventually('the second router knows the table', () => backends[1].catalog.get('provisioned').then((record) => record !== undefined));
    // 10 WCU over 2 routers: 5 a second each, below the partition's 20.
    const { ok, throttled } = await burst(first, Array.from({ length: 30 }, (_, i) => put('provisioned', `a-${i}`)));
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThan(15);
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled[0].message).toBe('The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.');
    expect(throttled[0].ThrottlingReasons).toEqual([{ reason: 'TableWriteProvisionedThroughputExceeded', resource: 'arn:aws:dynamodb:eu-west-1:000000000000:table/provisioned' }]);
    // The other router has its own share: its first write goes through.
    await second.send(put('provisioned', 'b-0'));
    // Retries wait for the bucket: every write of a burst gets through.
    const retried = await burst(client(1, 12), Array.from({ length: 12 }, (_, i) => put('provisioned', `c-${i}`)));
    expect(retried).toEqual({ ok: 12, throttled: [] });
  }, 120_000);

  it('keeps ReturnConsumedCapacity exact', async () => {
    const sender = client(1, 12);
    const written = await sender.send(
      new PutItemCommand({ TableName: 'hot', Item: { pk: { S: 'sized' }, data: { S: 'x'.repeat(2_500) } }, ReturnConsumedCapacity: 'TOTAL' }),
    );
    expect(written.ConsumedCapacity).toEqual({ TableName: 'hot', CapacityUnits: 3 });
    const strong = await sender.send(new GetItemCommand({ TableName: 'hot', Key: { pk: { S: 'sized' } }, ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' }));
    expect(strong.ConsumedCapacity).toEqual({ TableName: 'hot', CapacityUnits: 1 });
    const eventual = await sender.send(new GetItemCommand({ TableName: 'hot', Key: { pk: { S: 'sized' } }, ReturnConsumedCapacity: 'TOTAL' }));
    expect(eventual.ConsumedCapacity).toEqual({ TableName: 'hot', CapacityUnits: 0.5 });
  }, 60_000);
});
