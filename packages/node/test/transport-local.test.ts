/**
 * RaftTransport details between two transports in this process: batch splitting
 * under the gRPC limit, the bounded per-peer queue, oversize messages, unknown peers, delays, refused
 * and truncated snapshots.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DirectStream,
  MessageQueue,
  MetaService,
  RaftBatchSchema,
  RaftTransportService,
  RpcError,
  Server,
  Status,
  addService,
  batchHeaderWireSize,
  createClient,
  decodeGroupMessages,
  groupMessageWireSize,
  listen,
  messageFromWire,
  messageToWire,
  shutdown,
  type RaftBatch,
} from '@shoal/proto';
import type { Message } from '@shoal/raft';
import { RaftTransport } from '@shoal/node';
import type { GroupMessage, RaftTransportOptions, SnapshotOutcome, TransportLogEntry } from '@shoal/node';


function append(from: number, to: number, index: number, dataBytes = 0): Message {
  return {
    type: 'MsgApp', from, to, term: 1, logTerm: 1, index, commit: index, reject: false, rejectHint: 0,
    entries: dataBytes === 0 ? [] : [{ term: 1, index: index + 1, type: 'normal', data: new Uint8Array(dataBytes).fill(index % 251) }],
  };
}

interface Endpoint {
  transport: RaftTransport;
  received: { from: number; items: GroupMessage[] }[];
  unreachable: [number, number[]][];
  undelivered: [number, number[]][];
  snapshots: SnapshotOutcome[];
  logs: TransportLogEntry[];
}

const open: RaftTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((transport) => transport.close()));
});

/** Two started transports, nodes 1 and 2, that know each other. */
async function pair(options: Partial<RaftTransportOptions> = {}, unhosted = new Set<number>()): Promise<[Endpoint, Endpoint]> {
  const addresses = new Map<number, string>();
  const endpoint = (nodeId: number): Endpoint => {
    const self: Endpoint = { received: [], unreachable: [], undelivered: [], snapshots: [], logs: [] } as unknown as Endpoint;
    self.transport = new RaftTransport({
      nodeId,
      listenAddress: '127.0.0.1:0',
      resolvePeer: (id) => addresses.get(id),
      onMessages: (items, from) => {
        self.received.push({ from, items });
        return items.map((item) => item.groupId).filter((groupId) => unhosted.has(groupId));
      },
      onUndelivered: (id, groups) => self.undelivered.push([id, groups]),
      onUnreachable: (id, groups) => self.unreachable.push([id, groups]),
      onSnapshotSent: (outcome) => self.snapshots.push(outcome),
      log: (entry) => self.logs.push(entry),
      reconnectBackoff: { initialMs: 20, maxMs: 200 },
      ...options,
    });
    open.push(self.transport);
    return self;
  };
  const one = endpoint(1);
  const two = endpoint(2);
  await Promise.all([one.transport.start(), two.transport.start()]);
  addresses.set(1, one.transport.address);
  addresses.set(2, two.transport.address);
  return [one, two];
}

async function until<T>(probe: () => T | undefined, what: string, attempts = 400): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function* streamOf<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

function snapshotMessage(data: Uint8Array): Message {
  return {
    ...append(1, 2, 0), type: 'MsgSnap', entries: [],
    snapshot: { metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data },
  };
}

const receivedIndexes = (endpoint: Endpoint): number[] => endpoint.received.flatMap((batch) => batch.items.map((item) => item.message.index));

describe('RaftTransport in one process', () => {
  it('has no fault hook unless built with one', async () => {
    const [one] = await pair();
    expect(one.transport.faults).toBeUndefined();
  });

  it('splits a flush into batches below maxBatchBytes, in order', async () => {
    const [one, two] = await pair();
    for (let index = 1; index <= 10; index += 1) one.transport.send(7, append(1, 2, index, 1024 * 1024));
    one.transport.flush();
    await until(() => (receivedIndexes(two).length === 10 ? true : undefined), 'ten messages');
    // 1 MiB each: two fit in 3 MiB, a third would not.
    expect(two.received.map((batch) => batch.items.length)).toEqual([2, 2, 2, 2, 2]);
    expect(receivedIndexes(two)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(two.received[0]!.items[0]!.message.entries[0]!.data).toEqual(new Uint8Array(1024 * 1024).fill(1));
    expect(one.transport.metrics.batchesSent).toBe(5);
    expect(two.transport.metrics.bytesReceived).toBe(one.transport.metrics.bytesSent);
  });

  it('drops the oldest messages beyond the per-peer bound, counted', async () => {
    const [one, two] = await pair({ maxQueuedMessagesPerPeer: 10 });
    for (let index = 1; index <= 25; index += 1) one.transport.send(3, append(1, 2, index));
    expect(one.transport.metrics.messagesDroppedQueueFull).toBe(15);
    one.transport.flush();
    await until(() => (receivedIndexes(two).length === 10 ? true : undefined), 'ten messages');
    expect(receivedIndexes(two)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
  });

  it('sends a message larger than a batch in a batch of its own, and drops and reports one larger than a message may be', async () => {
    // The receiving server takes messages of maxMessageBytes (its own server is made with it).
    const [one, two] = await pair({ maxBatchBytes: 64 * 1024, maxMessageBytes: 256 * 1024, snapshotChunkBytes: 16 * 1024 });
    one.transport.send(4, append(1, 2, 1, 100));
    one.transport.send(5, append(1, 2, 2, 200 * 1024));
    one.transport.send(6, append(1, 2, 3, 100));
    one.transport.send(7, append(1, 2, 4, 300 * 1024));
    one.transport.send(8, append(1, 2, 5, 100));
    one.transport.flush();
    // Messages of hundreds of KiB: slow to encode and decode on a loaded machine.
    await until(() => (receivedIndexes(two).length === 4 ? true : undefined), 'four messages', 2_000);
    expect(receivedIndexes(two)).toEqual([1, 2, 3, 5]);
    expect(two.received.map((batch) => batch.items.length)).toEqual([1, 1, 2]);
    expect(one.transport.metrics.messagesDroppedOversize).toBe(1);
    expect(one.unreachable).toEqual([[2, [7]]]);
    expect(one.logs.map((entry) => entry.event)).toEqual(['message_oversize']);
  });

  it('carries an append of 5 MiB by default: past the 4 MiB message limit of gRPC, within the one of Shoal', async () => {
    const [one, two] = await pair();
    one.transport.send(4, append(1, 2, 1, 5 * 1024 * 1024));
    one.transport.flush();
    await until(() => (receivedIndexes(two).length === 1 ? true : undefined), 'the large append', 2_000);
    expect(two.received[0]!.items[0]!.message.entries[0]!.data.length).toBe(5 * 1024 * 1024);
    expect(one.transport.metrics.messagesDroppedOversize).toBe(0);
  });

  it('reports messages to a node it cannot resolve as unreachable', async () => {
    const [one] = await pair();
    one.transport.send(1, append(1, 9, 1));
    one.transport.send(2, append(1, 9, 2));
    one.transport.send(1, append(1, 9, 3));
    one.transport.flush();
    expect(one.unreachable).toEqual([[9, [1, 2]]]);
    expect(one.transport.metrics.messagesDroppedUnreachable).toBe(3);
    expect(one.logs).toEqual([{ level: 'warn', event: 'peer_unresolved', node: 1, peer: 9 }]);
  });

  it('backs off from a peer that refuses it, reporting the lost groups', async () => {
    const [one, two] = await pair();
    const unreachable: [number, number[]][] = [];
    const logs: TransportLogEntry[] = [];
    const stranger = new RaftTransport({
      nodeId: 5,
      listenAddress: '127.0.0.1:0',
      resolvePeer: (id) => (id === 2 ? two.transport.address : undefined),
      onMessages: () => {},
      onUnreachable: (id, groups) => unreachable.push([id, groups]),
      log: (entry) => logs.push(entry),
      reconnectBackoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    open.push(stranger);
    await stranger.start();
    stranger.send(11, append(5, 2, 1));
    stranger.send(12, append(5, 2, 2));
    stranger.flush();
    const failure = await until(() => logs.find((entry) => entry.event === 'stream_failed'), 'the refusal');
    expect(failure).toMatchObject({ level: 'warn', node: 5, peer: 2, code: 'PERMISSION_DENIED', error: 'batch from unknown node 5 refused by node 2', retryInMs: 60_000 });
    expect(unreachable).toEqual([[2, [11, 12]]]);
    // Within the backoff the next flush does not dial again: it drops and reports.
    stranger.send(13, append(5, 2, 3));
    stranger.flush();
    expect(unreachable).toEqual([[2, [11, 12]], [2, [13]]]);
    expect(stranger.metrics).toMatchObject({ streamFailures: 1, messagesDroppedUnreachable: 1, batchesSent: 1 });
    expect(two.received).toEqual([]);
    expect(two.transport.metrics.batchesRefused).toBe(1);
    expect(one.transport.metrics.streamFailures).toBe(0);
  });

  it('refuses batches on a stream superseded by a newer one from the same node, and a stream mixing senders', async () => {
    const [, two] = await pair();
    const client = createClient(RaftTransportService, two.transport.address);
    const batch = (fromNode: bigint, index: number) => ({ fromNode, toNode: 2n, messages: [{ groupId: 1n, message: messageToWire(append(Number(fromNode), 2, index)) }] });
    const outcome = async (responses: AsyncIterable<unknown>): Promise<string> => {
      try {
        for await (const response of responses) void response;
        return 'ended';
      } catch (error) {
        return error instanceof RpcError ? `${Status[error.code]}: ${error.message}` : String(error);
      }
    };
    try {
      const older = new MessageQueue<ReturnType<typeof batch>>();
      const olderOutcome = outcome(client.stream(older));
      older.push(batch(1n, 1));
      await until(() => (receivedIndexes(two).length === 1 ? true : undefined), 'the first batch');
      const newer = new MessageQueue<ReturnType<typeof batch>>();
      const newerOutcome = outcome(client.stream(newer));
      newer.push(batch(1n, 2));
      await until(() => (receivedIndexes(two).length === 2 ? true : undefined), 'the second batch');
      older.push(batch(1n, 3));
      expect(await olderOutcome).toBe('ABORTED: stream from node 1 superseded by a newer one');
      newer.push(batch(2n, 4));
      expect(await newerOutcome).toBe('INVALID_ARGUMENT: a stream from node 1 carried a batch from node 2');
    } finally {
      client.close();
    }
    expect(receivedIndexes(two)).toEqual([1, 2]);
    expect(two.transport.metrics.batchesRefused).toBe(2);
  });

  it('refuses a corrupt batch frame, counted and logged, and keeps taking batches', async () => {
    const [one, two] = await pair();
    let ended!: (error: RpcError | undefined) => void;
    const outcome = new Promise<RpcError | undefined>((resolve) => (ended = resolve));
    const stream = new DirectStream(two.transport.address, RaftTransportService.method.stream, { onMessage: () => undefined, onEnd: (error) => ended(error) });
    // A RaftBatch of one unknown field with wire type 3 (a group, which proto3 never uses).
    stream.write(new Uint8Array([0, 0, 0, 0, 1, 0x7b]));
    expect(await outcome).toMatchObject({ code: Status.INVALID_ARGUMENT, message: 'invalid Raft message: wire type 3' });
    expect(two.transport.metrics.batchesRefused).toBe(1);
    expect(two.logs).toEqual([expect.objectContaining({ level: 'warn', event: 'batch_refused', node: 2, code: 'INVALID_ARGUMENT', error: 'invalid Raft message: wire type 3' })]);
    one.transport.send(1, append(1, 2, 1));
    one.transport.flush();
    await until(() => (receivedIndexes(two).length === 1 ? true : undefined), 'a batch after the refusal');
  });

  it('refuses to send a message to itself', async () => {
    const [one] = await pair();
    expect(() => one.transport.send(1, append(1, 1, 1))).toThrow('group 1: a message from node 1 to itself');
  });

  it('keeps order through an injected delay', async () => {
    const [one, two] = await pair({ faults: true });
    one.transport.send(1, append(1, 2, 1));
    one.transport.flush();
    one.transport.faults!.delay(2, 40);
    one.transport.send(1, append(1, 2, 2));
    one.transport.flush();
    one.transport.faults!.delay(2, 5);
    one.transport.send(1, append(1, 2, 3));
    one.transport.flush();
    one.transport.faults!.heal(2);
    one.transport.send(1, append(1, 2, 4));
    one.transport.flush();
    await until(() => (receivedIndexes(two).length === 4 ? true : undefined), 'four messages');
    expect(receivedIndexes(two)).toEqual([1, 2, 3, 4]);
  });

  it('reports a snapshot to a partitioned peer as failed, and one to a healed peer as sent', async () => {
    const [one, two] = await pair({ faults: true, snapshotChunkBytes: 1000 });
    const snapshot = snapshotMessage;
    two.transport.faults!.partition(1, 'inbound');
    one.transport.send(8, snapshot(new Uint8Array(5000).fill(1)));
    const failed = await until(() => one.snapshots[0], 'the failed transfer');
    expect(failed).toEqual({ groupId: 8, to: 2, ok: false, error: 'dropped by fault injection' });
    expect(two.transport.metrics.snapshotsRefused).toBe(1);

    two.transport.faults!.heal();
    const data = Uint8Array.from({ length: 4321 }, (_, i) => i % 256);
    one.transport.sendSnapshot(8, snapshot(data));
    expect(await until(() => one.snapshots[1], 'the transfer')).toEqual({ groupId: 8, to: 2, ok: true });
    expect(two.received).toHaveLength(1);
    // The data is staged in a file; the message itself carries the metadata.
    const { message, staged } = two.received[0]!.items[0]!;
    expect(message.snapshot).toEqual({ metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) });
    expect(staged?.size).toBe(data.length);
    expect(new Uint8Array(await readFile(staged!.path))).toEqual(data);
    await rm(staged!.path);
    expect(two.transport.metrics.snapshotChunksReceived).toBe(5);
  });

  it('stages a snapshot on disk as it arrives, holding about one chunk of it, in a directory swept at start', async () => {
    const stagingDir = await mkdtemp(join(tmpdir(), 'shoal-transport-staging-'));
    try {
      await writeFile(join(stagingDir, 'left-from-before'), 'x');
      const chunkBytes = 16 * 1024;
      const [one, two] = await pair({ snapshotChunkBytes: chunkBytes, snapshotStagingDir: stagingDir });
      expect(await readdir(stagingDir)).toEqual([]);
      const data = Uint8Array.from({ length: 2 * 1024 * 1024 + 5 }, (_, i) => (i * 7) % 256);
      // Read as it is sent, in pieces of another size than the chunks.
      const pieces = function* (): Generator<Uint8Array> {
        for (let at = 0; at < data.length; at += 100_000) yield data.subarray(at, at + 100_000);
      };
      one.transport.sendSnapshot(4, snapshotMessage(new Uint8Array(0)), { size: data.length, chunks: pieces(), release: () => undefined });
      expect(await until(() => one.snapshots[0], 'the transfer')).toEqual({ groupId: 4, to: 2, ok: true });
      const { staged } = two.received[0]!.items[0]!;
      expect(staged?.path.startsWith(stagingDir)).toBe(true);
      expect(new Uint8Array(await readFile(staged!.path))).toEqual(data);
      const metrics = two.transport.metrics;
      expect(metrics.snapshotChunksReceived).toBeGreaterThanOrEqual(Math.ceil(data.length / chunkBytes));
      expect(metrics.snapshotBytesBufferedPeak).toBeGreaterThan(0);
      expect(metrics.snapshotBytesBufferedPeak).toBeLessThanOrEqual(chunkBytes);
      expect(metrics.snapshotBytesBuffered).toBe(0);
    } finally {
      await rm(stagingDir, { recursive: true, force: true });
    }
  });

  it('tells the sender which groups the receiver does not host', async () => {
    const [one, two] = await pair({}, new Set([2, 3]));
    for (const groupId of [1, 2, 3, 2]) one.transport.send(groupId, append(1, 2, groupId));
    one.transport.flush();
    expect(await until(() => one.undelivered[0], 'the undelivered report')).toEqual([2, [2, 3]]);
    expect(receivedIndexes(two)).toEqual([1, 2, 3, 2]);
    one.transport.sendSnapshot(3, {
      ...append(1, 2, 0), type: 'MsgSnap',
      snapshot: { metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(10) },
    });
    expect(await until(() => one.snapshots[0], 'the snapshot outcome')).toEqual({ groupId: 3, to: 2, ok: false, error: 'node 2 hosts no replica of group 3' });
  });

  it('refuses a truncated snapshot, a snapshot without header and one larger than the limit', async () => {
    const stagingDir = await mkdtemp(join(tmpdir(), 'shoal-transport-staging-'));
    const [, two] = await pair({ maxSnapshotBytes: 1000, snapshotStagingDir: stagingDir });
    const client = createClient(RaftTransportService, two.transport.address);
    const message = messageToWire({
      ...append(1, 2, 0), type: 'MsgSnap',
      snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) },
    });
    const header = (dataSize: bigint) => ({ chunk: { case: 'header' as const, value: { fromNode: 1n, toNode: 2n, groupId: 5n, message, dataSize } } });
    const data = (length: number) => ({ chunk: { case: 'data' as const, value: new Uint8Array(length) } });
    type Chunk = ReturnType<typeof header> | ReturnType<typeof data>;
    const refusal = async (chunks: Chunk[]): Promise<[Status, string]> => {
      try {
        await client.sendSnapshot(streamOf(chunks));
      } catch (error) {
        if (error instanceof RpcError) return [error.code, error.message];
        throw error;
      }
      throw new Error('accepted');
    };
    try {
      expect(await refusal([header(100n), data(50)])).toEqual([Status.INVALID_ARGUMENT, 'snapshot truncated: 50 of 100 bytes']);
      expect(await refusal([header(10n), data(50)])).toEqual([Status.INVALID_ARGUMENT, 'snapshot data exceeds the announced 10 bytes']);
      expect(await refusal([data(50)])).toEqual([Status.INVALID_ARGUMENT, 'a snapshot transfer must start with its header']);
      expect(await refusal([header(5000n)])).toEqual([Status.RESOURCE_EXHAUSTED, 'snapshot of 5000 bytes exceeds the limit of 1000']);
    } finally {
      client.close();
    }
    expect(two.received).toEqual([]);
    // Nothing staged stays behind a refused transfer.
    expect(await readdir(stagingDir)).toEqual([]);
    await rm(stagingDir, { recursive: true, force: true });
    expect(two.transport.metrics.snapshotsRefused).toBe(4);
    expect(two.logs.map((entry) => entry.event)).toEqual(['snapshot_refused', 'snapshot_refused', 'snapshot_refused', 'snapshot_refused']);
  });
});

describe('a transport on a shared gRPC server', () => {
  it('serves next to the node\'s other services, and closing it leaves the server to its owner', async () => {
    const server = new Server();
    addService(server, MetaService, { getPartitionMap: async () => ({ version: 7n }) });
    const received: GroupMessage[] = [];
    const shared = new RaftTransport({
      nodeId: 2,
      server,
      resolvePeer: (id) => (id === 1 ? 'unused:1' : undefined),
      onMessages: (items) => void received.push(...items),
      log: () => undefined,
    });
    expect(() => new RaftTransport({ nodeId: 3, server, listenAddress: '127.0.0.1:0', resolvePeer: () => undefined, onMessages: () => undefined })).toThrow(
      'exactly one of server and listenAddress',
    );
    await expect(shared.start()).rejects.toThrow('its owner listens');
    const address = `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
    const sender = new RaftTransport({
      nodeId: 1,
      listenAddress: '127.0.0.1:0',
      resolvePeer: (id) => (id === 2 ? address : undefined),
      onMessages: () => undefined,
      log: () => undefined,
    });
    open.push(sender);
    const meta = createClient(MetaService, address);
    try {
      await sender.start();
      sender.send(0, append(1, 2, 41));
      sender.flush();
      await until(() => (received.length > 0 ? true : undefined), 'the batch on the shared server');
      expect(received).toEqual([{ groupId: 0, message: append(1, 2, 41) }]);
      await shared.close();
      expect((await meta.getPartitionMap({})).version).toBe(7n);
    } finally {
      meta.close();
      await shutdown(server, 0);
    }
  });
});

describe('packed batches, once the peer reads them', () => {
  /** A peer serving the transport service by hand: it records each batch's form and answers as told. */
  async function peer(readsPacked: boolean): Promise<{ address: string; batches: RaftBatch[]; server: Server }> {
    const server = new Server();
    const batches: RaftBatch[] = [];
    addService(server, RaftTransportService, {
      stream: async function* (incoming) {
        for await (const batch of incoming) {
          batches.push(batch);
          // A node from before packed batches answers without the field (it does not know it).
          yield readsPacked ? { readsPackedMessages: true } : {};
        }
      },
    });
    return { address: `127.0.0.1:${await listen(server, '127.0.0.1', 0)}`, batches, server };
  }

  it('a transport answers the first batch of a stream saying it reads packed batches', async () => {
    const [, two] = await pair();
    const client = createClient(RaftTransportService, two.transport.address);
    const batches = new MessageQueue<{ fromNode: bigint; toNode: bigint; messages: Array<{ groupId: bigint; message: ReturnType<typeof messageToWire> }> }>();
    try {
      const responses = client.stream(batches)[Symbol.asyncIterator]();
      batches.push({ fromNode: 1n, toNode: 2n, messages: [{ groupId: 1n, message: messageToWire(append(1, 2, 1)) }] });
      const first = await responses.next();
      expect(first.done).toBe(false);
      expect(first.value).toMatchObject({ readsPackedMessages: true, undelivered: [] });
      batches.close();
    } finally {
      client.close();
    }
  });

  for (const readsPacked of [false, true]) {
    it(`${readsPacked ? 'switch to packed_messages once the peer says it reads them' : 'keep to messages with a peer that never says it reads packed ones'}`, async () => {
      const remote = await peer(readsPacked);
      const sender = new RaftTransport({ nodeId: 1, listenAddress: '127.0.0.1:0', resolvePeer: (id) => (id === 2 ? remote.address : undefined), onMessages: () => undefined, log: () => undefined });
      open.push(sender);
      const form = (batch: RaftBatch): string => (batch.packedMessages.length > 0 ? 'packed' : batch.messages.length > 0 ? 'messages' : 'empty');
      try {
        // One batch at a time, each sent once the previous one arrived: until a packed one (at most 40), or 5.
        const limit = readsPacked ? 40 : 5;
        for (let index = 1; index <= limit; index++) {
          sender.send(9, append(1, 2, index, 100));
          sender.flush();
          await until(() => (remote.batches.length === index ? true : undefined), `batch ${index}`);
          if (readsPacked && form(remote.batches.at(-1)!) === 'packed') break;
        }
        const forms = remote.batches.map(form);
        expect(forms[0]).toBe('messages');
        if (readsPacked) {
          const switched = forms.indexOf('packed');
          expect(switched).toBeGreaterThan(0);
          expect(forms.slice(switched).every((f) => f === 'packed')).toBe(true);
          expect(forms.slice(0, switched).every((f) => f === 'messages')).toBe(true);
        } else {
          expect(forms).toEqual(['messages', 'messages', 'messages', 'messages', 'messages']);
        }
        // Either form carries the same messages.
        const decoded = remote.batches.map((batch) => (batch.packedMessages.length > 0 ? decodeGroupMessages(batch.packedMessages) : batch.messages.map((m) => ({ groupId: Number(m.groupId), message: messageFromWire(m.message!) }))));
        expect(decoded).toEqual(remote.batches.map((_, i) => [{ groupId: 9, message: append(1, 2, i + 1, 100) }]));
      } finally {
        await shutdown(remote.server, 0);
      }
    });
  }

  it('packed, a batch still stays within maxBatchBytes (the packed field adds its tag and length)', async () => {
    const remote = await peer(true);
    const messageBytes = groupMessageWireSize(9, append(1, 2, 1000, 1000));
    // Two messages fill the limit exactly when counted as repeated `messages`; packed they are a few bytes more.
    const maxBatchBytes = batchHeaderWireSize(1, 2) + 2 * messageBytes;
    const sender = new RaftTransport({ nodeId: 1, listenAddress: '127.0.0.1:0', maxBatchBytes, resolvePeer: (id) => (id === 2 ? remote.address : undefined), onMessages: () => undefined, log: () => undefined });
    open.push(sender);
    try {
      // Until the stream carries packed batches (at most 40 single-message batches).
      for (let index = 1; index <= 40; index++) {
        sender.send(9, append(1, 2, index, 100));
        sender.flush();
        await until(() => (remote.batches.length === index ? true : undefined), `batch ${index}`);
        if (remote.batches.at(-1)!.packedMessages.length > 0) break;
      }
      expect(remote.batches.at(-1)!.packedMessages.length).toBeGreaterThan(0);
      const before = remote.batches.length;
      sender.send(9, append(1, 2, 1000, 1000));
      sender.send(9, append(1, 2, 1001, 1000));
      sender.flush();
      await until(() => (remote.batches.slice(before).reduce((sum, batch) => sum + decodeGroupMessages(batch.packedMessages).length, 0) === 2 ? true : undefined), 'two messages');
      const sent = remote.batches.slice(before);
      for (const batch of sent) expect(toBinary(RaftBatchSchema, batch).length).toBeLessThanOrEqual(maxBatchBytes);
      expect(sent.map((batch) => decodeGroupMessages(batch.packedMessages).length)).toEqual([1, 1]);
    } finally {
      await shutdown(remote.server, 0);
    }
  });
});
