/**
 * Bidi streams straight on HTTP/2 (DirectStream) against grpc-js servers, and methods served on their
 * bytes (addService's `encoded` handlers), which listen() serves straight on HTTP/2: the Raft
 * transport's batch stream, both ends apart, and the partition service's hot unary methods.
 */
import { createServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectStream, ErrorDetailSchema, GetRequestSchema, GetResponseSchema, MessageQueue, Metadata, PartitionService, RaftTransportService, RpcError, Server, Status, StreamResponseSchema, addService, createClient, decodeGroupMessages, encodeRaftBatchFrame, listen, servesDirectly, shutdown } from '../src/index.ts';
import type { Message } from '@shoal/raft';

const STREAM = RaftTransportService.method.stream;

function heartbeat(index: number): Message {
  return { type: 'MsgHeartbeat', from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: index, reject: false, rejectHint: 0 };
}

/** A RaftBatch frame whose one message's commit index tells it apart; `dataBytes` of entry data make it large. */
function batchFrame(index: number, dataBytes = 0): Uint8Array {
  const message: Message = dataBytes === 0 ? heartbeat(index) : { ...heartbeat(index), type: 'MsgApp', entries: [{ term: 1, index, type: 'normal', data: new Uint8Array(dataBytes).fill(index % 251) }] };
  return encodeRaftBatchFrame(1, 2, [{ groupId: 7, message }], true);
}

/** Whatever came back through a DirectStream, and how it ended. */
function recorder(): { messages: Buffer[]; ended: Promise<RpcError | undefined>; handlers: ConstructorParameters<typeof DirectStream>[2] } {
  let end!: (error: RpcError | undefined) => void;
  const ended = new Promise<RpcError | undefined>((resolve) => (end = resolve));
  const messages: Buffer[] = [];
  return { messages, ended, handlers: { onMessage: (message) => messages.push(Buffer.from(message)), onEnd: (error) => end(error) } };
}

async function until(probe: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('a DirectStream to a grpc-js server decoding by reflection', () => {
  const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  let address = '';
  /** The commit index of each batch the server read, per call; how the handler's calls ended. */
  const received: number[][] = [];
  const cancelled: number[] = [];

  beforeAll(async () => {
    addService(server, RaftTransportService, {
      async *stream(batches, context) {
        const mine: number[] = [];
        received.push(mine);
        context.signal.addEventListener('abort', () => cancelled.push(received.indexOf(mine)));
        for await (const batch of batches) {
          const index = decodeGroupMessages(batch.packedMessages)[0]!.message.commit;
          mine.push(index);
          if (index === 1_000) throw new RpcError(Status.FAILED_PRECONDITION, 'refusé: 100% sûr');
          if (index === 2_000) return;
          // An answer larger than an HTTP/2 frame: the client reassembles it from several chunks.
          if (index === 3_000) yield { undelivered: Array.from({ length: 5_000 }, (_, i) => ({ groupId: BigInt(i), to: 2n })) };
          else yield { readsPackedMessages: true };
        }
      },
    });
    address = `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
  });

  afterAll(async () => {
    await shutdown(server, 0);
  });

  it('delivers frames in order, large ones included, and reads every answer', async () => {
    const record = recorder();
    const stream = new DirectStream(address, STREAM, record.handlers);
    const indexes = Array.from({ length: 300 }, (_, i) => i + 1);
    for (const index of indexes) stream.write(batchFrame(index, index % 100 === 0 ? 3 * 1024 * 1024 : 0));
    stream.write(batchFrame(3_000));
    await until(() => record.messages.length === indexes.length + 1, 'every answer');
    expect(received.at(-1)).toEqual([...indexes, 3_000]);
    expect(record.messages.slice(0, -1).every((m) => fromBinary(StreamResponseSchema, m).readsPackedMessages)).toBe(true);
    expect(fromBinary(StreamResponseSchema, record.messages.at(-1)!).undelivered.map((u) => Number(u.groupId))).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
    expect(stream.pendingWrites).toBe(0);
    stream.cancel();
    expect(await record.ended).toMatchObject({ code: Status.CANCELLED });
  });

  it('ends with the status the server gave, its message decoded', async () => {
    const record = recorder();
    const stream = new DirectStream(address, STREAM, record.handlers);
    stream.write(batchFrame(1));
    stream.write(batchFrame(1_000));
    const error = await record.ended;
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: Status.FAILED_PRECONDITION, message: 'refusé: 100% sûr' });
    expect(record.messages).toHaveLength(1);
    // Writes after the end go nowhere.
    stream.write(batchFrame(2));
    expect(stream.pendingWrites).toBe(0);
  });

  it('ends without an error when the server ends the call with OK', async () => {
    const record = recorder();
    new DirectStream(address, STREAM, record.handlers).write(batchFrame(2_000));
    expect(await record.ended).toBeUndefined();
  });

  it('cancels the call on the server when cancelled', async () => {
    const record = recorder();
    const stream = new DirectStream(address, STREAM, record.handlers);
    stream.write(batchFrame(5));
    await until(() => record.messages.length === 1, 'the answer');
    const call = received.length - 1;
    stream.cancel();
    expect(await record.ended).toMatchObject({ code: Status.CANCELLED, message: 'call cancelled' });
    await until(() => cancelled.includes(call), 'the handler to see the cancel');
  });

  it('ends UNAVAILABLE when its server shuts down, without holding up the shutdown', async () => {
    const leaving = new Server();
    addService(leaving, RaftTransportService, { stream: async function* (batches) { for await (const batch of batches) yield { readsPackedMessages: batch.toNode === 2n }; } });
    const port = await listen(leaving, '127.0.0.1', 0);
    const record = recorder();
    const stream = new DirectStream(`127.0.0.1:${port}`, STREAM, record.handlers);
    stream.write(batchFrame(1));
    await until(() => record.messages.length === 1, 'the answer');
    // A graceful shutdown sends GOAWAY: the stream gives up at once rather than keep the connection open until the grace ends.
    await shutdown(leaving, 600_000);
    expect(await record.ended).toMatchObject({ code: Status.UNAVAILABLE });
  });

  it('refuses a method that is not bidi streaming', () => {
    expect(() => new DirectStream(address, RaftTransportService.method.sendSnapshot, recorder().handlers)).toThrow('SendSnapshot is not bidi streaming');
  });
});

describe('a DirectStream that cannot reach its server', () => {
  let silent: NetServer;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    // Accepts connections and never speaks: a peer that hangs without closing its socket.
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('fails UNAVAILABLE with "No connection established" when nobody listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const record = recorder();
    new DirectStream(`127.0.0.1:${port}`, STREAM, record.handlers).write(batchFrame(1));
    const error = await record.ended;
    expect(error).toMatchObject({ code: Status.UNAVAILABLE });
    expect(error?.message).toContain('No connection established');
  });

  it('fails UNAVAILABLE once a keepalive ping goes unanswered', async () => {
    const record = recorder();
    const port = (silent.address() as { port: number }).port;
    const stream = new DirectStream(`127.0.0.1:${port}`, STREAM, record.handlers, { keepaliveTimeMs: 20, keepaliveTimeoutMs: 50 });
    stream.write(batchFrame(1));
    const error = await record.ended;
    expect(error).toMatchObject({ code: Status.UNAVAILABLE, message: 'keepalive ping not answered within 50 ms' });
  });
});

describe('a bidi method served on its bytes', () => {
  const server = new Server();
  let address = '';
  const frames: Buffer[] = [];
  let aborted = 0;

  beforeAll(async () => {
    addService(server, RaftTransportService, {}, {
      async *stream(requests, context) {
        context.signal.addEventListener('abort', () => (aborted += 1));
        for await (const request of requests) {
          frames.push(Buffer.from(request));
          if (request.length === 0) throw new RpcError(Status.INVALID_ARGUMENT, 'an empty batch');
          yield toBinary(StreamResponseSchema, create(StreamResponseSchema, { readsPackedMessages: true }));
        }
      },
    });
    address = `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
  });

  afterAll(async () => {
    await shutdown(server, 0);
  });

  it('is served straight on HTTP/2 once listening (grpc-js serves it before, and the methods of other servers)', () => {
    expect(servesDirectly(server)).toBe(true);
    const unbound = new Server();
    addService(unbound, RaftTransportService, {}, { stream: async function* () {} });
    expect(servesDirectly(unbound)).toBe(false);
  });

  it('hands the handler each message as sent, undecoded, and sends its encoded answers', async () => {
    const record = recorder();
    const stream = new DirectStream(address, STREAM, record.handlers);
    // The last frame is an empty message (zero bytes), which this handler refuses.
    const sent = [batchFrame(1), batchFrame(2, 100_000), new Uint8Array(5)];
    for (const frame of sent) stream.write(frame);
    expect(await record.ended).toMatchObject({ code: Status.INVALID_ARGUMENT, message: 'an empty batch' });
    expect(frames).toEqual(sent.map((frame) => Buffer.from(frame.subarray(5))));
    expect(record.messages.map((m) => fromBinary(StreamResponseSchema, m).readsPackedMessages)).toEqual([true, true]);
  });

  it('reads messages however the HTTP/2 chunks cut them, and large ones whole', async () => {
    frames.length = 0;
    const record = recorder();
    const stream = new DirectStream(address, STREAM, record.handlers);
    // 3,000 small messages in one write (DATA frames of 16 KiB cut them, headers included, anywhere), then 3 MiB.
    const sizes = [...Array.from({ length: 3_000 }, (_, i) => 1 + (i % 97)), 3 * 1024 * 1024];
    const messages = sizes.map((size, i) => Buffer.alloc(size, i % 256));
    stream.write(Buffer.concat(messages.map((message) => Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]).fill(0, 0, 1)).map((framed, i) => {
      framed.writeUInt32BE(sizes[i]!, 1);
      return framed;
    })));
    await until(() => record.messages.length === sizes.length, 'an answer to every message');
    expect(frames.map((frame) => frame.length)).toEqual(sizes);
    expect(Buffer.concat(frames).equals(Buffer.concat(messages))).toBe(true);
    stream.cancel();
    await record.ended;
  });

  it('refuses a message past the server\'s limit and a compressed one', async () => {
    const small = new Server({ 'grpc.max_receive_message_length': 1_000 });
    addService(small, RaftTransportService, {}, { stream: async function* (requests) { for await (const request of requests) yield request; } });
    const smallAddress = `127.0.0.1:${await listen(small, '127.0.0.1', 0)}`;
    try {
      const outcome = async (frame: Uint8Array): Promise<RpcError | undefined> => {
        const record = recorder();
        new DirectStream(smallAddress, STREAM, record.handlers).write(frame);
        return record.ended;
      };
      const tooLarge = Buffer.alloc(5 + 1_001);
      tooLarge.writeUInt32BE(1_001, 1);
      expect(await outcome(tooLarge)).toMatchObject({ code: Status.RESOURCE_EXHAUSTED, message: 'Received message larger than max (1001 vs. 1000)' });
      expect(await outcome(new Uint8Array([1, 0, 0, 0, 1, 7]))).toMatchObject({ code: Status.UNIMPLEMENTED, message: 'a compressed message (no compression is offered)' });
    } finally {
      await shutdown(small, 0);
    }
  });

  it('aborts the handler\'s signal when a grpc-js client cancels, and serves a grpc-js client with a deadline through grpc-js', async () => {
    const client = createClient(RaftTransportService, address);
    try {
      const batches = new MessageQueue<{ fromNode: bigint; toNode: bigint }>();
      batches.push({ fromNode: 1n, toNode: 2n });
      const cancel = new AbortController();
      const answers = client.stream(batches, { signal: cancel.signal })[Symbol.asyncIterator]();
      expect((await answers.next()).value).toMatchObject({ readsPackedMessages: true });
      const before = aborted;
      cancel.abort();
      await expect(answers.next()).rejects.toMatchObject({ code: Status.CANCELLED });
      await until(() => aborted === before + 1, 'the handler to see the cancel');
      const timed = new MessageQueue<{ fromNode: bigint; toNode: bigint }>();
      timed.push({ fromNode: 1n, toNode: 2n });
      const within = client.stream(timed, { timeoutMs: 60_000 })[Symbol.asyncIterator]();
      expect((await within.next()).value).toMatchObject({ readsPackedMessages: true });
      timed.close();
      expect((await within.next()).done).toBe(true);
    } finally {
      client.close();
    }
  });

  it('refuses an encoded handler for a method that is neither unary nor bidi streaming', () => {
    expect(() => addService(new Server(), RaftTransportService, {}, { sendSnapshot: (async () => new Uint8Array()) as never })).toThrow('SendSnapshot is neither unary nor bidi streaming');
  });
});

describe('a unary method served on its bytes', () => {
  const server = new Server({ 'grpc.max_receive_message_length': 100_000 });
  let address = '';
  let aborted = 0;
  const target = { partitionId: 1n, epoch: 1n };

  beforeAll(async () => {
    addService(server, PartitionService, {}, {
      get: async (request, context) => {
        const { table } = fromBinary(GetRequestSchema, request);
        if (table?.name === 'refused') throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'nicht hier: 100% sicher', ErrorDetailSchema, { kind: { case: 'partitionNotFound', value: { partitionId: 42n } } });
        if (table?.name === 'slow') {
          await new Promise((resolve) => context.signal.addEventListener('abort', resolve, { once: true }));
          aborted += 1;
        }
        return toBinary(GetResponseSchema, create(GetResponseSchema, { item: new TextEncoder().encode(`${table?.name}:${String(context.metadata.get('x-shoal-test')[0] ?? '')}`) }));
      },
    });
    address = `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
  });

  afterAll(async () => {
    await shutdown(server, 0);
  });

  it('answers direct and grpc-js clients, with the request metadata, the deadline ones through grpc-js', async () => {
    expect(servesDirectly(server)).toBe(true);
    const direct = createClient(PartitionService, address, { directUnary: true });
    const grpcJs = createClient(PartitionService, address);
    try {
      const metadata = new Metadata();
      metadata.set('x-shoal-test', 'seven');
      const text = (answer: { item?: Uint8Array }): string => new TextDecoder().decode(answer.item);
      const names = Array.from({ length: 200 }, (_, i) => `t${i}`);
      expect((await Promise.all(names.map((name) => direct.get({ target, table: { name } }, { metadata })))).map(text)).toEqual(names.map((name) => `${name}:seven`));
      expect(text(await grpcJs.get({ target, table: { name: 'a' } }, { metadata }))).toBe('a:seven');
      expect(text(await grpcJs.get({ target, table: { name: 'b' } }, { timeoutMs: 60_000 }))).toBe('b:');
    } finally {
      direct.close();
      grpcJs.close();
    }
  });

  it('carries an error\'s status, percent-encoded message and typed detail to either client', async () => {
    for (const options of [{ directUnary: true }, {}]) {
      const client = createClient(PartitionService, address, options);
      try {
        const error = await client.get({ target, table: { name: 'refused' } }).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(RpcError);
        expect(error).toMatchObject({ code: Status.FAILED_PRECONDITION, message: 'nicht hier: 100% sicher' });
        expect((error as RpcError).detail(ErrorDetailSchema)?.kind).toEqual({ case: 'partitionNotFound', value: expect.objectContaining({ partitionId: 42n }) });
      } finally {
        client.close();
      }
    }
  });

  it('aborts the handler\'s signal when the client gives up, and refuses a request past the limit', async () => {
    const client = createClient(PartitionService, address, { directUnary: true });
    try {
      const cancel = new AbortController();
      const call = client.get({ target, table: { name: 'slow' } }, { signal: cancel.signal });
      await new Promise((resolve) => setTimeout(resolve, 50));
      cancel.abort();
      await expect(call).rejects.toMatchObject({ code: Status.CANCELLED });
      await until(() => aborted === 1, 'the handler to see the cancel');
      await expect(client.get({ target, key: new Uint8Array(100_001) })).rejects.toMatchObject({ code: Status.RESOURCE_EXHAUSTED });
    } finally {
      client.close();
    }
  });
});
