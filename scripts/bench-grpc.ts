/**
 * gRPC plumbing throughput between two processes on loopback: Raft messages batched on one
 * RaftTransport stream (the receiver counts them and answers each batch with an empty response), and
 * sequential and concurrent unary PartitionService calls.
 *
 *   npx node scripts/bench-grpc.ts [Raft messages, default 200000] [entry bytes, default 100]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  MessageType,
  PartitionService,
  RaftTransportService,
  Server,
  addService,
  createClient,
  listen,
  messageToWire,
  shutdown,
} from '@shoal/proto';
import type { RaftBatchSchema } from '@shoal/proto';

if (process.argv[2] === '--serve') {
  const server = new Server();
  addService(server, RaftTransportService, {
    async *stream(batches) {
      for await (const batch of batches) {
        if (batch.messages.length === 0) return;
        yield {};
      }
    },
  });
  addService(server, PartitionService, {
    async get(request) {
      return { item: request.key, size: request.key.length };
    },
  });
  process.stdout.write(`${await listen(server, '127.0.0.1', 0)}\n`);
  process.once('SIGTERM', () => void shutdown(server).then(() => process.exit(0)));
} else {
  const total = Number(process.argv[2] ?? 200_000);
  const entryBytes = Number(process.argv[3] ?? 100);
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [port] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const address = `127.0.0.1:${port}`;
  const raft = createClient(RaftTransportService, address);
  const partitions = createClient(PartitionService, address);

  const data = new Uint8Array(entryBytes).fill(7);
  const batchOf = (first: number, size: number): MessageInitShape<typeof RaftBatchSchema> => ({
    fromNode: 1n,
    toNode: 2n,
    messages: Array.from({ length: size }, (_, i) => ({
      groupId: BigInt((first + i) % 1000),
      message: messageToWire({
        type: 'MsgApp',
        from: 1,
        to: 2,
        term: 5,
        logTerm: 5,
        index: first + i,
        entries: [{ term: 5, index: first + i + 1, type: 'normal', data }],
        commit: first + i,
        reject: false,
        rejectHint: 0,
      }),
    })),
  });

  for (const batchSize of [1, 16, 128]) {
    const count = batchSize === 1 ? Math.min(total, 20_000) : total;
    async function* batches(): AsyncIterable<MessageInitShape<typeof RaftBatchSchema>> {
      for (let sent = 0; sent < count; sent += batchSize) yield batchOf(sent, Math.min(batchSize, count - sent));
      yield { messages: [] };
    }
    const start = performance.now();
    let answered = 0;
    for await (const _ of raft.stream(batches())) answered += 1;
    const seconds = (performance.now() - start) / 1000;
    console.log(
      `raft stream, batches of ${batchSize}: ${count} messages (${entryBytes}-byte entries) in ${seconds.toFixed(2)} s = ${Math.round(count / seconds)} msg/s (${answered} batches)`,
    );
  }

  const key = new TextEncoder().encode(JSON.stringify({ pk: { S: 'user-1' } }));
  // Through grpc-js, and straight on HTTP/2 (directUnary, what the router's partition calls use), each
  // with a 5 s deadline as the router sets; the client's CPU per call is what the router pays.
  const direct = createClient(PartitionService, address, { directUnary: true });
  for (const [name, client] of [['grpc-js', partitions], ['direct', direct]] as const) {
    for (const concurrency of [1, 32]) {
      const calls = 5_000;
      const start = performance.now();
      const cpu = process.cpuUsage();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < calls) {
            next += 1;
            await client.get({ target: { partitionId: 1n, epoch: 1n }, key }, { timeoutMs: 5_000 });
          }
        }),
      );
      const seconds = (performance.now() - start) / 1000;
      const used = process.cpuUsage(cpu);
      console.log(
        `unary Get (${name}), concurrency ${concurrency}: ${calls} calls in ${seconds.toFixed(2)} s = ${Math.round(calls / seconds)} calls/s, ` +
          `client CPU ${Math.round((used.user + used.system) / calls)} µs/call`,
      );
    }
  }
  direct.close();

  raft.close();
  partitions.close();
  child.kill('SIGTERM');
  await once(child, 'exit');
}
