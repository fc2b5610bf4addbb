/**
 * Main-thread CPU per request of the single-node DynamoDB endpoint, without the network: the bench's
 * PutItem and GetItem requests (the same bytes `npm run bench` sends) are handed to the HTTP endpoint
 * over in-process sockets, so every byte is parsed, answered and formatted as on a real connection,
 * over a real LevelDB without fsync, but no system call or other process runs on the request path.
 * A loaded machine disturbs this far less than the load bench, which makes it the yardstick for a
 * change to the request path of a few µs: compare main-thread µs/op (what caps throughput) before and
 * after. Kernel work (a socket read and write per request, ~20% of the server's main thread in the
 * load bench) is not counted.
 *
 *   npx node scripts/bench-http-cpu.ts [--requests 200000] [--concurrency 16] [--workloads put,get]
 *
 * `--concurrency`: requests in flight, each on its own connection; all answered in one turn of the
 * event loop are sent again together in the next one, so it is also the requests per LevelDB batch
 * (the load bench's shoal put, 64 in flight over loopback, writes ~10-15 puts per batch).
 */
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { seededRandom } from '@shoal/linearizability';
import { openLocalStore } from '@shoal/storage';
import { createEngineContext } from '../packages/router/src/dispatch.ts';
import { createHttpEndpoint } from '../packages/router/src/server.ts';
import { DYNAMODB_HEADERS } from './bench/dynamodb-http.ts';
import { httpPost } from './bench/pipelined-http.ts';
import { benchTable, preloadRequests, workloadRequests, type WorkloadName } from './bench/workloads.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '16' },
    workloads: { type: 'string', default: 'put,get' },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const workloads = values.workloads.split(',') as WorkloadName[];

/** The side of a connection the endpoint sees: what it writes is the answer to the request in flight. */
class InProcessSocket extends EventEmitter {
  readonly writableNeedDrain = false;
  private readonly answered: (socket: InProcessSocket, answer: string | Buffer) => void;

  constructor(answered: (socket: InProcessSocket, answer: string | Buffer) => void) {
    super();
    this.answered = answered;
  }

  setNoDelay(): this {
    return this;
  }

  setTimeout(): this {
    return this;
  }

  write(data: string | Buffer): boolean {
    this.answered(this, data);
    return true;
  }

  pause(): this {
    return this;
  }

  resume(): this {
    return this;
  }

  end(): this {
    return this;
  }

  destroy(): this {
    return this;
  }
}

const endpointAddress = { host: '127.0.0.1', port: 8000 };
const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-http-cpu-'));
const store = await openLocalStore({ dataDir: dir });
const ctx = createEngineContext(store.catalog, store.partitions, Date.now);
const endpoint = createHttpEndpoint({
  ctx,
  host: endpointAddress.host,
  port: endpointAddress.port,
  region: 'us-east-1',
  services: { region: 'us-east-1', tableLock: (work) => work(), background: () => undefined },
});

/** Sends `total` requests from `next`, `concurrency` at a time; resolves once all are answered with 200. */
function drive(total: number, next: () => Buffer, inFlight = concurrency): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    let toSend: InProcessSocket[] = [];
    const send = (socket: InProcessSocket): void => {
      sent++;
      socket.emit('data', next());
    };
    const sendReady = (): void => {
      const ready = toSend;
      toSend = [];
      for (const socket of ready) if (sent < total) send(socket);
    };
    const onAnswer = (socket: InProcessSocket, answer: string | Buffer): void => {
      const text = typeof answer === 'string' ? answer : answer.toString('latin1');
      if (!text.startsWith('HTTP/1.1 200 ')) {
        reject(new Error(`answer not 200: ${text.slice(0, 400)}`));
        return;
      }
      if (++answered === total) resolve();
      // The next request arrives in a later turn, as from a client across a socket.
      else if (toSend.push(socket) === 1) setImmediate(sendReady);
    };
    const sockets = Array.from({ length: Math.min(inFlight, total) }, () => new InProcessSocket(onAnswer));
    for (const socket of sockets) endpoint.serve(socket as unknown as Socket);
    for (const socket of sockets) send(socket);
  });
}

try {
  const table = benchTable('bench', 10_000, 1024);
  const createTable = JSON.stringify({
    TableName: table.name,
    AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  });
  const create = httpPost(endpointAddress, '/', { ...DYNAMODB_HEADERS, 'X-Amz-Target': 'DynamoDB_20120810.CreateTable' }, createTable);
  await drive(1, () => create, 1);
  await drive(table.keyCount, preloadRequests('dynamodb', endpointAddress, table));
  for (const workload of workloads) {
    const next = workloadRequests(workload, 'dynamodb', endpointAddress, table, seededRandom(7));
    await drive(Math.ceil(requests / 3), next); // warm-up: the JIT compiles the path
    const all = process.cpuUsage();
    const main = process.threadCpuUsage();
    const started = performance.now();
    await drive(requests, next);
    const seconds = (performance.now() - started) / 1000;
    const usedAll = process.cpuUsage(all);
    const usedMain = process.threadCpuUsage(main);
    const perOp = (used: NodeJS.CpuUsage): string => ((used.user + used.system) / requests).toFixed(1);
    console.log(
      `${workload}: main thread ${perOp(usedMain)} µs/op, all threads ${perOp(usedAll)} µs/op, ${(requests / seconds).toFixed(0)} ops/s (concurrency ${concurrency})`,
    );
  }
} finally {
  await endpoint.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
