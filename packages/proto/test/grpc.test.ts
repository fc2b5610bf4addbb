import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http2';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, Server as RawServer, credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EncodedMessage,
  EntryType,
  ErrorDetailSchema,
  FRAME_HEADER_BYTES,
  GetResponseSchema,
  KeyType,
  MessageQueue,
  MessageType,
  PartitionService,
  RaftTransportService,
  RpcError,
  Status,
  UndeliveredReason,
  WriteRequestSchema,
  createClient,
  dynamoDbErrorFromRpc,
  listen,
  shutdown,
} from '../src/index.ts';
import { create, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { DynamoDbError } from '@shoal/model';
import type { ClientOf, RaftBatchSchema, SnapshotChunkSchema, UndeliveredMessage } from '../src/index.ts';

const fixture = fileURLToPath(new URL('./fixtures/server.ts', import.meta.url));
const NODE_ID = 7n;
const target = { partitionId: 1n, epoch: 5n };
const table = { name: 'items', tableId: 3, hashKey: { name: 'pk', type: KeyType.S } };
const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

let child: ChildProcess;
let address: string;
let raft: ClientOf<typeof RaftTransportService>;
let partitions: ClientOf<typeof PartitionService>;
/** The same service with unary calls straight on HTTP/2 (ClientOptions.directUnary). */
let directPartitions: ClientOf<typeof PartitionService>;

beforeAll(async () => {
  child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  const { port } = JSON.parse(line) as { port: number };
  address = `127.0.0.1:${port}`;
  raft = createClient(RaftTransportService, address);
  partitions = createClient(PartitionService, address);
  directPartitions = createClient(PartitionService, address, { directUnary: true });
});

afterAll(async () => {
  raft?.close();
  partitions?.close();
  directPartitions?.close();
  if (child !== undefined && child.exitCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  }
});

/** The error a promise rejects with, which must be an RpcError. */
async function rpcError(promise: Promise<unknown>): Promise<RpcError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

function batch(from: number, count: number, toNode = NODE_ID): MessageInitShape<typeof RaftBatchSchema> {
  return {
    fromNode: 1n,
    toNode,
    messages: Array.from({ length: count }, (_, i) => ({
      groupId: BigInt(from + i),
      message: {
        type: MessageType.MSG_APP,
        from: 1n,
        to: NODE_ID,
        term: 3n,
        index: BigInt(from + i),
        entries: [{ term: 3n, index: BigInt(from + i + 1), type: EntryType.NORMAL, data: json({ n: from + i }) }],
      },
    })),
  };
}

describe.each([
  ['through grpc-js', () => partitions],
  ['direct on HTTP/2', () => directPartitions],
])('unary calls over real gRPC to another process, %s', (_, client) => {
  let partitions: ClientOf<typeof PartitionService>;
  beforeAll(() => {
    partitions = client();
  });

  it('writes and reads an item', async () => {
    const key = json({ pk: { S: 'a' } });
    const item = json({ pk: { S: 'a' }, v: { N: '1' } });
    const written = await partitions.write({ target, operations: [{ table, kind: 1, key, item }] });
    expect(written.applied).toBe(true);
    expect(written.outcomes.map((o) => o.outcome.case)).toEqual(['ok']);
    const read = await partitions.get({ target, table, key, options: { consistent: true } });
    expect(read.item).toEqual(item);
    expect(read.size).toBe(item.length);
    const absent = await partitions.get({ target, table, key: json({ pk: { S: 'none' } }) });
    expect(absent.item).toBeUndefined();
  });

  it('sends a request encoded ahead (EncodedMessage) as the message it encodes, and refuses one of another type', async () => {
    const key = json({ pk: { S: 'encoded' } });
    const item = json({ pk: { S: 'encoded' }, v: { N: '2' } });
    const message = toBinary(WriteRequestSchema, create(WriteRequestSchema, { target, operations: [{ table, kind: 1, key, item }] }));
    const frame = Buffer.alloc(FRAME_HEADER_BYTES + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, FRAME_HEADER_BYTES);
    const encoded = new EncodedMessage(WriteRequestSchema, frame);
    const written = await partitions.write(encoded);
    expect(written.applied).toBe(true);
    const read = await partitions.get({ target, table, key, options: { consistent: true } });
    expect(read.item).toEqual(item);
    // @ts-expect-error: Get takes a GetRequest, not an encoded WriteRequest
    const refused = await rpcError(partitions.get(encoded));
    expect(refused.code).toBe(Status.INTERNAL);
    expect(refused.message).toContain('shoal.v1.WriteRequest');
  });

  it('carries routing errors as typed details', async () => {
    const notLeader = await rpcError(partitions.get({ target: { partitionId: 2n, epoch: 1n }, table }));
    expect(notLeader.code).toBe(Status.FAILED_PRECONDITION);
    const leader = notLeader.detail(ErrorDetailSchema)?.kind;
    expect(leader?.case).toBe('notLeader');
    expect(leader?.case === 'notLeader' && leader.value.leader?.id).toBe(8n);

    const stale = (await rpcError(partitions.get({ target: { partitionId: 1n, epoch: 4n }, table }))).detail(ErrorDetailSchema)?.kind;
    expect(stale?.case).toBe('staleEpoch');
    if (stale?.case !== 'staleEpoch') return;
    expect(stale.value.current?.epoch).toBe(5n);
    expect(stale.value.current?.startKey).toEqual(new Uint8Array([3]));
    expect(stale.value.current?.endKey).toEqual(new Uint8Array([4]));

    const missing = await rpcError(partitions.statistics({ target: { partitionId: 9n, epoch: 1n }, table }));
    expect(missing.detail(ErrorDetailSchema)?.kind).toMatchObject({ case: 'partitionNotFound', value: { partitionId: 9n } });
    expect(missing.detail(GetResponseSchema)).toBeUndefined();
  });

  it('carries DynamoDB errors whole, with a fitting status code', async () => {
    const throttled = await rpcError(partitions.write({ target, operations: [{ table: { ...table, name: 'throttled' }, kind: 4, key: json({ pk: { S: 'a' } }) }] }));
    expect(throttled.code).toBe(Status.RESOURCE_EXHAUSTED);
    const cause = dynamoDbErrorFromRpc(throttled);
    expect(cause).toBeInstanceOf(DynamoDbError);
    expect(cause?.type).toBe('ProvisionedThroughputExceededException');
    expect(cause?.message).toBe('The level of configured provisioned throughput for the table was exceeded.');

    const cancelled = dynamoDbErrorFromRpc(await rpcError(partitions.write({ target, operations: [{ table: { ...table, name: 'cancelled' }, kind: 4, key: json({ pk: { S: 'a' } }) }] })));
    expect(cancelled?.type).toBe('TransactionCanceledException');
    expect(cancelled?.statusCode).toBe(400);
    expect(cancelled?.fields).toEqual({ CancellationReasons: [{ Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }] });
  });

  it('answers INTERNAL for a handler that throws, UNIMPLEMENTED for a method not served, and keeps serving', async () => {
    const broken = await rpcError(partitions.statistics({ target, table: { ...table, name: 'broken' } }));
    expect(broken.code).toBe(Status.INTERNAL);
    expect(broken.message).toContain('handler bug');
    const unimplemented = await rpcError(partitions.readRange({ target, table }));
    expect(unimplemented.code).toBe(Status.UNIMPLEMENTED);
    expect((await partitions.statistics({ target, table })).itemCount).toBeGreaterThanOrEqual(0n);
  });

  it('fails a call past its deadline with DEADLINE_EXCEEDED, and a cancelled one with CANCELLED', async () => {
    const late = await rpcError(partitions.get({ target, table: { ...table, name: 'slow' } }, { timeoutMs: 100 }));
    expect(late.code).toBe(Status.DEADLINE_EXCEEDED);
    // The deadline also bounds the server's handler should the cancel not reach it.
    const controller = new AbortController();
    const pending = partitions.get({ target, table: { ...table, name: 'slow' } }, { signal: controller.signal, timeoutMs: 2_000 });
    controller.abort();
    expect((await rpcError(pending)).code).toBe(Status.CANCELLED);
    expect((await partitions.statistics({ target, table }, { timeoutMs: 10_000 })).$typeName).toBe('shoal.v1.StatisticsResponse');
  });
});

describe('streams', () => {
  it('carries 10,000 Raft messages in batches on one stream, in order', async () => {
    async function* batches(): AsyncIterable<MessageInitShape<typeof RaftBatchSchema>> {
      for (let i = 0; i < 100; i++) yield batch(1 + i * 100, 100);
    }
    const undelivered: UndeliveredMessage[] = [];
    let responses = 0;
    for await (const response of raft.stream(batches())) {
      responses += 1;
      undelivered.push(...response.undelivered);
    }
    expect(responses).toBe(100);
    expect(undelivered).toHaveLength(10_000);
    expect(undelivered.every((u, i) => u.groupId === BigInt(i + 1))).toBe(true);
    expect(undelivered.every((u) => u.to === NODE_ID && u.type === MessageType.MSG_APP && u.reason === UndeliveredReason.GROUP_NOT_FOUND)).toBe(true);
  });

  it('keeps a long-lived stream open while batches are pushed as they come', async () => {
    const queue = new MessageQueue<MessageInitShape<typeof RaftBatchSchema>>();
    const responses = raft.stream(queue)[Symbol.asyncIterator]();
    for (let round = 0; round < 5; round++) {
      queue.push(batch(round * 10, 10, round % 2 === 0 ? NODE_ID : 99n));
      const next = await responses.next();
      if (next.done === true) throw new Error('stream ended early');
      const value = next.value;
      expect(value.undelivered.map((u) => u.groupId)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(round * 10 + i)));
      expect(value.undelivered[0]?.reason).toBe(round % 2 === 0 ? UndeliveredReason.GROUP_NOT_FOUND : UndeliveredReason.WRONG_NODE);
    }
    queue.close();
    expect((await responses.next()).done).toBe(true);
  });

  it('sends a snapshot in chunks and detects a truncated one', async () => {
    const chunkBytes = 64 * 1024;
    async function* snapshot(chunks: number, declared: number): AsyncIterable<MessageInitShape<typeof SnapshotChunkSchema>> {
      yield {
        chunk: {
          case: 'header',
          value: {
            fromNode: 1n,
            toNode: NODE_ID,
            groupId: 4n,
            message: { type: MessageType.MSG_SNAP, snapshot: { metadata: { index: 10n, term: 2n, confState: { voters: [1n, 2n, 7n] } } } },
            dataSize: BigInt(declared),
          },
        },
      };
      for (let i = 0; i < chunks; i++) yield { chunk: { case: 'data', value: new Uint8Array(chunkBytes).fill(i) } };
    }
    const done = await raft.sendSnapshot(snapshot(20, 20 * chunkBytes));
    expect(done.receivedBytes).toBe(BigInt(20 * chunkBytes));
    const truncated = await rpcError(raft.sendSnapshot(snapshot(3, 4 * chunkBytes)));
    expect(truncated.code).toBe(Status.DATA_LOSS);
  });

  it('fails the call with the error of a request iterable that throws', async () => {
    async function* failing(): AsyncIterable<MessageInitShape<typeof RaftBatchSchema>> {
      yield batch(0, 1);
      throw new Error('sender gave up');
    }
    const error: unknown = await collect(raft.stream(failing())).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).message).toBe('sender gave up');
  });
});

describe('corrupt frames', () => {
  // A tag with wire type 7, which no protobuf message can contain.
  const garbage = Buffer.from([0x0f]);
  const passThrough = (bytes: Buffer): Buffer => bytes;

  it('answers a corrupt unary request with INVALID_ARGUMENT and keeps serving', async () => {
    const raw = new Client(address, credentials.createInsecure());
    try {
      const status = await new Promise<{ code: number; details: string }>((resolve) => {
        raw.makeUnaryRequest('/shoal.v1.PartitionService/Get', (b: Buffer) => b, passThrough, garbage, (error) => {
          resolve({ code: error?.code ?? Status.OK, details: error?.details ?? '' });
        });
      });
      expect(status.code).toBe(Status.INVALID_ARGUMENT);
      expect(status.details).toContain('shoal.v1.GetRequest');
    } finally {
      raw.close();
    }
    expect((await partitions.statistics({ target, table })).$typeName).toBe('shoal.v1.StatisticsResponse');
  });

  it('ends a stream with INVALID_ARGUMENT at a corrupt frame, after answering the good ones', async () => {
    const raw = new Client(address, credentials.createInsecure());
    try {
      const call = raw.makeBidiStreamRequest('/shoal.v1.RaftTransportService/Stream', (b: Buffer) => b, passThrough);
      const answers: Buffer[] = [];
      call.on('data', (b: Buffer) => answers.push(b));
      const ended = new Promise<number>((resolve) => call.on('status', (s: { code: number }) => resolve(s.code)));
      call.on('error', () => {});
      // An empty buffer is a valid (empty) RaftBatch; then garbage.
      call.write(Buffer.alloc(0));
      call.write(garbage);
      call.end();
      expect(await ended).toBe(Status.INVALID_ARGUMENT);
      expect(answers).toHaveLength(1);
    } finally {
      raw.close();
    }
    async function* one(): AsyncIterable<MessageInitShape<typeof RaftBatchSchema>> {
      yield batch(1, 1);
    }
    const [response] = await collect(raft.stream(one()));
    expect(response?.undelivered).toHaveLength(1);
  });

  it('survives broken gRPC framing on a raw HTTP/2 stream', async () => {
    const session = connect(`http://${address}`);
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/shoal.v1.PartitionService/Get',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const trailers = new Promise<IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve));
      const headers = new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
      stream.resume();
      // A message prefix announcing 1,000 bytes, then 3 bytes and the end of the stream.
      stream.end(Buffer.from([0, 0, 0, 0x03, 0xe8, 1, 2, 3]));
      const answer = await Promise.race([trailers, headers.then((h) => ('grpc-status' in h ? h : trailers))]);
      expect(Number(answer['grpc-status'])).not.toBe(Status.OK);
    } finally {
      session.close();
    }
    expect((await partitions.statistics({ target, table })).$typeName).toBe('shoal.v1.StatisticsResponse');
  });

  it.each([
    ['through grpc-js', {}],
    ['direct on HTTP/2', { directUnary: true }],
  ])('turns a corrupt response into INTERNAL on the client, %s', async (_, options) => {
    // A server that answers every Get with garbage bytes.
    const server = new RawServer();
    server.addService(
      {
        get: {
          path: '/shoal.v1.PartitionService/Get',
          requestStream: false,
          responseStream: false,
          requestSerialize: passThrough,
          requestDeserialize: passThrough,
          responseSerialize: passThrough,
          responseDeserialize: passThrough,
        },
      },
      { get: (_call: unknown, callback: (e: null, v: Buffer) => void) => callback(null, garbage) },
    );
    const port = await listen(server, '127.0.0.1', 0);
    const client = createClient(PartitionService, `127.0.0.1:${port}`, options);
    try {
      const error = await rpcError(client.get({ target, table }));
      expect(error.code).toBe(Status.INTERNAL);
    } finally {
      client.close();
      await shutdown(server);
    }
  });
});
