/**
 * Shipping lag of asynchronous GSIs on three storage node processes (the test harness's children):
 * N puts (each with a GSI key) at a given concurrency through PartitionService, then how long after
 * the last acknowledged put the GSI partitions hold every entry (polled every 20 ms with a COUNT read
 * of each GSI partition), and the writes' rate. Usage:
 *   npx node packages/node/scripts/bench-index-shipping.ts [writes=2000] [concurrency=32] [no-gsi]
 * `no-gsi`: the same puts into a table without the GSI (the base line).
 */
import { PartitionMap, encodeItemKey, type IndexSchema, type PartitionDescriptor, type TableRecord, type TableSchema } from '@shoal/model';
import { partitionMapResponseFromWire, rangeReadRequestToWire, rangeReadResultFromWire, tableRecordToWire } from '@shoal/proto';
import { StorageNodeChildren } from '../test/fixtures/storage-node-child.ts';
import { eventually } from '../test/fixtures/eventually.ts';

const writes = Number(process.argv[2] ?? 2_000);
const concurrency = Number(process.argv[3] ?? 32);
const withGsi = process.argv[4] !== 'no-gsi';
const cluster = await StorageNodeChildren.start('bench-index-shipping', 3, { tickMs: 50, defaultPartitions: 2 });
try {
  await eventually(() => cluster.allReady(), 'ready nodes', 2_400);
  const space = async (): Promise<number> => (await cluster.meta.call((client, options) => client.allocateSpaceId({}, options))).spaceId;
  const tableId = await space();
  const index: IndexSchema = { name: 'byCity', kind: 'GSI', indexId: await space(), hashKey: { name: 'city', type: 'S' }, projection: { type: 'ALL' } };
  const schema: TableSchema = { name: 'bench', tableId, hashKey: { name: 'pk', type: 'S' }, indexes: withGsi ? [index] : [] };
  const record: TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000, billingMode: 'PAY_PER_REQUEST', tags: {} };
  await cluster.meta.call((client, options) => client.createTable({ record: tableRecordToWire(record), initialPartitions: 2 }, options));
  await eventually(async () => ((await Promise.all(cluster.nodes.map((n) => n.state()))).every((s) => s.ready && s.metrics.partitionReplicas === (withGsi ? 4 : 2)) ? true : undefined), 'replicas', 2_400);
  const answer = partitionMapResponseFromWire(await cluster.meta.call((client, options) => client.getPartitionMap({ knownVersion: 0n }, options)));
  if (answer.notModified) throw new Error('no map');
  const map = new PartitionMap(answer.partitions);
  const gsiPartitions: PartitionDescriptor[] = map.partitionsOf(index.indexId);
  const pad = 'x'.repeat(900);
  let next = 0;
  let lastAck = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < writes; i = next++) {
      const key = { pk: { S: `k${i}` } };
      const item = { ...key, city: { S: `c${i % 50}` }, pad: { S: pad } };
      await cluster.write(cluster.nodes, () => map.lookup(encodeItemKey(tableId, key.pk))!, { operations: [{ table: schema, kind: 'Put', key, item }] });
      lastAck = performance.now();
    }
  }));
  const count = async (): Promise<number> => {
    let total = 0;
    for (const p of gsiPartitions) {
      const target = { partitionId: BigInt(p.id), epoch: BigInt(p.epoch) };
      const request = { table: schema, indexName: index.name, forward: true, maxBytes: 1 << 30, select: 'COUNT' as const };
      const leader = cluster.nodes[0];
      total += rangeReadResultFromWire(await cluster.partitionClient(leader.address).readRange(rangeReadRequestToWire(target, request, { consistent: false }), { timeoutMs: 10_000 })).count;
    }
    return total;
  };
  let shipped = 0;
  for (let polls = 0; withGsi && polls < 3_000 && (shipped = await count()) < writes; polls++) await new Promise((resolve) => setTimeout(resolve, 20));
  const converged = performance.now();
  const seconds = (lastAck - started) / 1_000;
  const metrics = (await Promise.all(cluster.nodes.map((n) => n.state()))).map((s) => s.metrics);
  console.log(JSON.stringify({
    writes,
    concurrency,
    entries: shipped,
    writesPerSecond: Math.round(writes / seconds),
    lagAfterLastAckMs: Math.round(converged - lastAck),
    entriesApplied: metrics.reduce((sum, m) => sum + m.indexEntriesApplied, 0),
    raftEntriesApplied: metrics.map((m) => m.raftEntriesApplied),
  }));
} finally {
  await cluster.close();
}
