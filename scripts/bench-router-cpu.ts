/**
 * CPU per request of the router's cluster client (ClusterPartitionClient: routing, coalescing,
 * request encoding, the direct HTTP/2 calls, answer decoding), without the HTTP front end and
 * without real nodes: PartitionService servers in a child process (three "nodes" of one partition)
 * answer each Write/WriteMany/Get/GetMany at once (every write applied, every get a 1 KB item), so
 * the time measured is this process's own, as the router spends it per PutItem and GetItem below the
 * HTTP layer. Closed loop: `--concurrency` requests in flight, each answered one made again at once,
 * so the requests of one turn coalesce as in the router (writes: at most 2 calls in flight).
 *
 * Reports process CPU (user + system, every thread: GC and JIT included) per request for each round,
 * and how many requests a call carried. Steadier than the load bench on a busy machine: compare
 * µs/op before and after a change of the cluster client, alternating runs.
 *
 *   npx node scripts/bench-router-cpu.ts [--workloads put,get] [--requests 100000] [--concurrency 64] [--rounds 3] [--item-size 1024]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initialPartitions, type AttributeValue, type GetRequest, type PartitionWrite, type TableSchema } from '@shoal/model';
import {
  NodeState,
  PartitionService,
  Server,
  addService,
  decodeGetManyRequest,
  decodeWriteManyRequest,
  encodeGetManyResponse,
  encodeGetResponse,
  encodeWriteManyResponse,
  encodeWriteResponse,
  listen,
  shutdown,
} from '@shoal/proto';
import { ChannelPool } from '../packages/router/src/cluster/channels.ts';
import { ClusterView } from '../packages/router/src/cluster/cluster-view.ts';
import { MetaClient } from '../packages/router/src/cluster/meta-client.ts';
import { zeroCounters } from '../packages/router/src/cluster/metrics.ts';
import { ClusterPartitionClient } from '../packages/router/src/cluster/partition-client.ts';
import { DEFAULT_RETRY_POLICY } from '../packages/router/src/cluster/retry.ts';

const NODE_IDS = [1, 2, 3];
const KEYS = 10_000;

const { values } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    'item-size': { type: 'string', default: '1024' },
    workloads: { type: 'string', default: 'put,get' },
    requests: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
  },
});
const itemSize = Number(values['item-size']);
const table: TableSchema = { name: 'bench', tableId: 7, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
const keyOf = (n: number): Record<string, AttributeValue> => ({ pk: { S: `key-${String(n).padStart(8, '0')}` } });
/** The bench's item: its key and a string attribute filling it to about `itemSize` bytes. */
const itemOf = (n: number): Record<string, AttributeValue> => ({ ...keyOf(n), payload: { S: 'x'.repeat(Math.max(0, itemSize - 40)) } });

if (values.serve) {
  // The "nodes": every write applied (applied index counting up), every get the item of its key.
  const storedJson = JSON.stringify(itemOf(0));
  let appliedIndex = 0n;
  const servers = await Promise.all(
    NODE_IDS.map(async () => {
      const server = new Server();
      addService(server, PartitionService, {}, {
        write: async () => encodeWriteResponse({ applied: true, outcomes: [{ status: 'ok' }] }, ++appliedIndex),
        writeMany: async (bytes) => {
          const { writes } = decodeWriteManyRequest(bytes);
          return encodeWriteManyResponse(writes.map(() => ({ applied: true, outcomes: [{ status: 'ok' as const }] })), ++appliedIndex);
        },
        get: async () => encodeGetResponse({ item: itemOf(0), json: storedJson, size: itemSize }),
        getMany: async (bytes) => encodeGetManyResponse(decodeGetManyRequest(bytes).gets.map(() => ({ item: itemOf(0), json: storedJson, size: itemSize }))),
      });
      return { server, port: await listen(server, '127.0.0.1', 0) };
    }),
  );
  console.log(JSON.stringify(servers.map(({ port }) => port)));
  process.on('SIGTERM', () => void Promise.all(servers.map(({ server }) => shutdown(server, 100))).then(() => process.exit(0)));
} else {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', '--item-size', String(itemSize)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const ports = JSON.parse(line) as number[];
  const addresses = new Map(NODE_IDS.map((nodeId, index) => [nodeId, `127.0.0.1:${ports[index]}`]));
  const partition = { ...initialPartitions(table.tableId, 1, 1)[0]!, replicas: NODE_IDS.map((nodeId) => ({ nodeId, role: 'voter' as const })), leaderHint: 1 };
  const counters = zeroCounters();
  const channels = new ChannelPool();
  const view = new ClusterView();
  view.apply({
    notModified: false,
    version: 1,
    partitions: [partition],
    nodes: [...addresses].map(([nodeId, address]) => ({ $typeName: 'shoal.v1.NodeDescriptor' as const, id: BigInt(nodeId), address, state: NodeState.UP })),
    tables: [],
  });
  const meta = new MetaClient({ addresses: [...addresses.values()], channels, policy: DEFAULT_RETRY_POLICY, counters });
  const client = new ClusterPartitionClient({ view, meta, channels, policy: DEFAULT_RETRY_POLICY, rpcTimeoutMs: 5_000, counters });

  // A fresh request object each time, as parsing an HTTP body makes one.
  let next = 0;
  const nextKey = (): number => (next = (next * 7919 + 1) % KEYS);
  const put = (): Promise<unknown> => {
    const n = nextKey();
    const write: PartitionWrite = { operations: [{ table, kind: 'Put', key: keyOf(n), item: itemOf(n) }] };
    return client.write(write);
  };
  const get = (): Promise<unknown> => {
    const request: GetRequest = { table, key: keyOf(nextKey()) };
    return client.get(request, { consistent: false }).then((found) => found?.json);
  };

  /** `total` requests, `concurrency` in flight. */
  const drive = async (total: number, request: () => Promise<unknown>): Promise<void> => {
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < total) {
        sent++;
        await request();
      }
    };
    await Promise.all(Array.from({ length: Number(values.concurrency) }, worker));
  };

  const requests = Number(values.requests);
  for (const workload of values.workloads.split(',')) {
    const request = workload === 'put' ? put : workload === 'get' ? get : undefined;
    if (request === undefined) throw new Error(`unknown workload ${workload} (put, get)`);
    await drive(Math.min(requests, 20_000), request);
    const results: number[] = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      const stats = client.coalescing();
      const before = workload === 'put' ? { ...stats.writes } : { ...stats.gets };
      const cpu = process.cpuUsage();
      const started = performance.now();
      await drive(requests, request);
      const elapsed = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const afterStats = client.coalescing();
      const after = workload === 'put' ? afterStats.writes : afterStats.gets;
      const calls = after.coalescedCalls - before.coalescedCalls + after.singleCalls - before.singleCalls;
      const perOp = (used.user + used.system) / requests;
      results.push(perOp);
      console.log(
        `${workload} round ${round + 1}: ${perOp.toFixed(1)} µs/op cpu (user ${(used.user / requests).toFixed(1)}, system ${(used.system / requests).toFixed(1)}), ` +
          `${Math.round((requests / elapsed) * 1000)} ops/s, ${(requests / calls).toFixed(1)} requests per call`,
      );
    }
    const sorted = [...results].sort((a, b) => a - b);
    console.log(`${workload}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} µs/op`);
  }
  channels.close();
  child.kill('SIGTERM');
  await once(child, 'exit');
}
