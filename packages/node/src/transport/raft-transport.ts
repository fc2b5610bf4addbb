/**
 * The node-to-node Raft transport of a storage node hosting many Raft groups. Messages of all groups
 * for one peer are queued as the groups produce them and leave on flush() (once per host tick) as one
 * RaftBatch on one long-lived bidi stream to that peer. Snapshots go on their own SendSnapshot stream in
 * chunks. Raft member ids are storage node ids, so a message's `to` names the peer node.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  DirectStream,
  RaftTransportService,
  MAX_MESSAGE_BYTES,
  RpcError,
  SERVER_OPTIONS,
  Server,
  Status,
  UndeliveredReason,
  addService,
  StreamResponseSchema,
  batchHeaderWireSize,
  createClient,
  decodeRaftBatch,
  encodeRaftBatchFrame,
  groupMessageWireSize,
  listen,
  messageFromWire,
  messageToWire,
  messageTypeToWire,
  shutdown,
} from '@shoal/proto';
import type { CallContext, DecodedRaftBatch, SnapshotChunk, SnapshotChunkSchema } from '@shoal/proto';
import type { Message, NodeId } from '@shoal/raft';
import { NetworkFaults } from './faults.ts';

/** The tag and length of RaftBatch.packed_messages, at most: a 1-byte tag and a 4-byte varint (lengths below 2^28). */
const PACKED_FIELD_OVERHEAD_BYTES = 5;

/** One Raft message and the group it belongs to. */
export interface GroupMessage {
  groupId: number;
  message: Message;
  /**
   * A MsgSnap received from a peer: its data, staged in a file (synced) as it arrived instead of held
   * in memory (the message's own snapshot data is then empty). The file is the receiver's from
   * onMessages on (it deletes it once done), unless the receiver answers it hosts no replica of the group.
   */
  staged?: StagedSnapshotData;
}

/** A snapshot's data received and staged in a file: `size` bytes. */
export interface StagedSnapshotData {
  path: string;
  size: number;
}

/**
 * A snapshot's data read as it is sent: `size` bytes in chunks of any size (the transport cuts them
 * to its chunk size), so the sender never holds all of it. `release` is called once the transfer
 * ended, however (the chunks may not have been read to their end, or at all).
 */
export interface SnapshotData {
  size: number;
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  release(): void;
}

/** `data` with `prefix` before its chunks. */
export function withPrefix(prefix: Uint8Array, data: SnapshotData): SnapshotData {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield prefix;
    yield* data.chunks;
  }
  return { size: prefix.length + data.size, chunks: chunks(), release: () => data.release() };
}

/** How a snapshot transfer ended; the host passes `ok` to RawNode.reportSnapshot(to, ok). */
export interface SnapshotOutcome {
  groupId: number;
  to: NodeId;
  ok: boolean;
  /** Why it failed. */
  error?: string;
}

export interface TransportLogEntry {
  level: 'info' | 'warn';
  event: string;
  [field: string]: unknown;
}

export interface RaftTransportOptions {
  nodeId: NodeId;
  /**
   * The storage node's one gRPC server to serve RaftTransportService on: the node adds its other
   * services and listens itself. Exactly one of `server` and `listenAddress`.
   */
  server?: Server;
  /**
   * A transport on its own (tests, tools) serves on a server of its own at this host:port from
   * start(); port 0 picks a free one (see `address`).
   */
  listenAddress?: string;
  /** The address of a storage node; undefined (or a throw) when the node is not known. */
  resolvePeer(nodeId: NodeId): string | undefined;
  /**
   * Messages received from `fromNode`, in the order that node sent them; a MsgSnap carries its data.
   * Returns the ids of the groups among them that this node hosts no replica of (none: undefined or
   * empty); the sender learns of them through its onUndelivered.
   */
  onMessages(batch: GroupMessage[], fromNode: NodeId): readonly number[] | void;
  /** Messages to `nodeId` of these groups were lost: the host calls reportUnreachable for each group. */
  onUnreachable?(nodeId: NodeId, groupIds: number[]): void;
  /**
   * `nodeId` hosts no replica of these groups (not created yet, or removed): the host may stop
   * sending to it, or learn that its own replica was removed.
   */
  onUndelivered?(nodeId: NodeId, groupIds: number[]): void;
  /** A snapshot transfer ended, well or not. */
  onSnapshotSent?(outcome: SnapshotOutcome): void;
  /** Structured log lines; by default one JSON object a line on stderr. */
  log?(entry: TransportLogEntry): void;
  /** Messages waiting for one peer beyond this bound drop the oldest (counted). Default 10,000. */
  maxQueuedMessagesPerPeer?: number;
  /**
   * Encoded size a RaftBatch of several messages stays within. Default 3 MiB. One message larger
   * than that (an append carrying a large entry) goes in a batch of its own.
   */
  maxBatchBytes?: number;
  /**
   * The largest batch sent, and taken by the transport's own server: a message that alone passes it
   * is dropped (counted, logged, reported unreachable). Default MAX_MESSAGE_BYTES (16 MiB), the limit
   * of every Shoal server (`SERVER_OPTIONS`), which a node's shared server must be created with.
   */
  maxMessageBytes?: number;
  /** Snapshot data bytes per SendSnapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /**
   * Larger incoming snapshots are refused. They are staged on disk (`snapshotStagingDir`), never held
   * in memory: this bounds the disk a transfer takes. Default 64 GiB.
   */
  maxSnapshotBytes?: number;
  /**
   * The directory incoming snapshots are staged in, one of their own: the files it holds at start are
   * deleted (so a storage node creates the transport once its store completed any restore a staged
   * file was named by). Default: the system's temporary directory, nothing deleted at start.
   */
  snapshotStagingDir?: string;
  /** Reconnection delay after a failed stream: doubles from `initialMs` up to `maxMs`. */
  reconnectBackoff?: { initialMs: number; maxMs: number };
  /** Enables fault injection (`transport.faults`), for chaos tests. */
  faults?: boolean;
}

/** Counters, as plain fields until the node exports metrics. */
export class TransportMetrics {
  batchesSent = 0;
  messagesSent = 0;
  bytesSent = 0;
  batchesReceived = 0;
  messagesReceived = 0;
  bytesReceived = 0;
  /** Incoming batches refused: unknown sender, wrong addressee, invalid message. */
  batchesRefused = 0;
  /** Outgoing messages dropped because the peer's queue was full (the oldest go first). */
  messagesDroppedQueueFull = 0;
  /** Outgoing messages dropped because the peer was unreachable or its stream failed. */
  messagesDroppedUnreachable = 0;
  /** Outgoing messages dropped because they alone exceed maxBatchBytes. */
  messagesDroppedOversize = 0;
  /** Batches and messages lost to injected faults, both directions. */
  batchesDroppedByFault = 0;
  messagesDroppedByFault = 0;
  streamFailures = 0;
  snapshotsSent = 0;
  snapshotsFailed = 0;
  snapshotBytesSent = 0;
  snapshotsReceived = 0;
  snapshotsRefused = 0;
  snapshotChunksReceived = 0;
  snapshotBytesReceived = 0;
  /** Bytes of incoming snapshots received and not yet written to their staging file, now and at most. */
  snapshotBytesBuffered = 0;
  snapshotBytesBufferedPeak = 0;
}

/**
 * One bidi stream to a peer, on an HTTP/2 connection of its own that carries it alone: batches are
 * encoded straight into gRPC frames and written as they are (DirectStream), the few answers read by
 * hand. Still gRPC on the wire: any RaftTransportService server takes it.
 */
interface PeerStream {
  readonly call: DirectStream;
  /**
   * The peer said it reads packed batches (StreamResponse.reads_packed_messages). Until then, batches
   * carry `messages`: a node of a version before packed batches would read a packed one as empty.
   */
  packed: boolean;
}

/** A stream from a peer, identified by the node of its first accepted batch. */
interface InboundStream {
  from: NodeId | undefined;
}

/** A RaftBatch ready to go, as its gRPC frame, with what the sender counts of it. */
interface OutgoingBatch {
  readonly frame: Uint8Array;
  readonly bytes: number;
  readonly messages: number;
  /** Its messages: their groups are reported unreachable if the batch is lost (rare, so not worked out before). */
  readonly sent: readonly GroupMessage[];
}

/** A batch held back by an injected delay, bound to the stream it was meant for. */
interface DelayedBatch {
  readonly due: number;
  readonly stream: PeerStream;
  readonly outgoing: OutgoingBatch;
}

/** Batches a peer has not taken yet beyond which flush() leaves messages in the (bounded) queue. */
const MAX_PENDING_BATCHES = 64;

class Peer {
  readonly nodeId: NodeId;
  #queue: GroupMessage[] = [];
  #head = 0;
  stream: PeerStream | undefined;
  /** Consecutive failed streams, for the backoff; reset when the peer accepts a batch. */
  failures = 0;
  retryAt = 0;
  /** The messages of the last flush: their groups are what a failing stream most likely lost. */
  lastFlush: readonly GroupMessage[] = [];
  readonly delayed: DelayedBatch[] = [];
  delayTimer: NodeJS.Timeout | undefined;

  constructor(nodeId: NodeId) {
    this.nodeId = nodeId;
  }

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Queues a message; returns how many old ones were dropped to stay within `bound`. */
  enqueue(item: GroupMessage, bound: number): number {
    this.#queue.push(item);
    if (this.queued <= bound) return 0;
    this.#head += 1;
    if (this.#head > bound) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return 1;
  }

  takeAll(): GroupMessage[] {
    const taken = this.#head === 0 ? this.#queue : this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    return taken;
  }
}

function distinctGroups(messages: readonly GroupMessage[]): number[] {
  return [...new Set(messages.map((m) => m.groupId))];
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function defaultLog(entry: TransportLogEntry): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'raft-transport', ...entry })}\n`);
}

function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`invalid listen address ${JSON.stringify(address)}`);
  return { host: address.slice(0, colon), port };
}

function safeNodeId(value: bigint): NodeId | undefined {
  return value > 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

function streamResponse(response: MessageInitShape<typeof StreamResponseSchema>): Uint8Array {
  return toBinary(StreamResponseSchema, create(StreamResponseSchema, response));
}

/** Group ids start at 0: the meta group's. */
function safeGroupId(value: bigint): number | undefined {
  return value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

export class RaftTransport {
  readonly nodeId: NodeId;
  readonly metrics = new TransportMetrics();
  /** Present only when built with `faults: true`. */
  readonly faults: NetworkFaults | undefined;
  readonly #options: RaftTransportOptions;
  readonly #log: (entry: TransportLogEntry) => void;
  readonly #maxQueued: number;
  readonly #maxBatchBytes: number;
  readonly #maxMessageBytes: number;
  readonly #chunkBytes: number;
  readonly #maxSnapshotBytes: number;
  readonly #stagingDir: string;
  /** Names staged files apart within the process (a sweep at start removes those of earlier ones). */
  #stagedFiles = 0;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #peers = new Map<NodeId, Peer>();
  /** The newest stream from each node that has delivered a batch. */
  readonly #inbound = new Map<NodeId, InboundStream>();
  /** The server of a transport on its own: started and shut down by the transport. */
  readonly #ownServer: Server | undefined;
  readonly #closing = new AbortController();
  #address: string | undefined;

  constructor(options: RaftTransportOptions) {
    this.nodeId = options.nodeId;
    this.#options = options;
    this.#log = options.log ?? defaultLog;
    this.#maxQueued = options.maxQueuedMessagesPerPeer ?? 10_000;
    this.#maxBatchBytes = options.maxBatchBytes ?? 3 * 1024 * 1024;
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#chunkBytes = options.snapshotChunkBytes ?? 1024 * 1024;
    this.#maxSnapshotBytes = options.maxSnapshotBytes ?? 64 * 1024 * 1024 * 1024;
    this.#stagingDir = options.snapshotStagingDir ?? tmpdir();
    if (options.snapshotStagingDir !== undefined) {
      mkdirSync(options.snapshotStagingDir, { recursive: true });
      for (const name of readdirSync(options.snapshotStagingDir)) rmSync(join(options.snapshotStagingDir, name), { recursive: true, force: true });
    }
    this.#backoff = options.reconnectBackoff ?? { initialMs: 100, maxMs: 5_000 };
    if (this.#maxBatchBytes > this.#maxMessageBytes || this.#chunkBytes >= this.#maxMessageBytes) {
      throw new RangeError(`maxBatchBytes and snapshotChunkBytes must stay within maxMessageBytes (${this.#maxMessageBytes})`);
    }
    this.faults = options.faults === true ? new NetworkFaults() : undefined;
    if ((options.server === undefined) === (options.listenAddress === undefined)) {
      throw new Error('RaftTransport needs exactly one of server and listenAddress');
    }
    this.#ownServer = options.server === undefined ? new Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': this.#maxMessageBytes }) : undefined;
    addService(
      options.server ?? this.#ownServer!,
      RaftTransportService,
      { sendSnapshot: (chunks, context) => this.#receiveSnapshot(chunks, context) },
      // Batches are read by the hand-written codec, not the protobuf runtime.
      { stream: (batches, context) => this.#serveStream(batches, context) },
    );
  }

  /**
   * Whether a stream to the node is open and the node answered on it: a group quiesced on this node
   * wakes when its leader's is not (MultiRaftHostOptions.quiescence).
   */
  peerConnected(nodeId: NodeId): boolean {
    const peer = this.#peers.get(nodeId);
    return peer?.stream !== undefined && peer.failures === 0;
  }

  /** host:port a transport on its own serves on, once started. */
  get address(): string {
    if (this.#address === undefined) throw new Error('RaftTransport not started on a server of its own');
    return this.#address;
  }

  /** Serves on `listenAddress` (a transport on its own; on a shared server, its owner listens). */
  async start(): Promise<void> {
    const listenAddress = this.#options.listenAddress;
    if (listenAddress === undefined || this.#ownServer === undefined) throw new Error('RaftTransport serves on a shared server: its owner listens');
    const { host, port } = splitHostPort(listenAddress);
    this.#address = `${host}:${await listen(this.#ownServer, host, port)}`;
  }

  /** Queues a message for its recipient (`message.to`); a MsgSnap goes by sendSnapshot. Never blocks. */
  send(groupId: number, message: Message): void {
    if (message.type === 'MsgSnap') {
      this.sendSnapshot(groupId, message);
      return;
    }
    this.#checkRecipient(groupId, message);
    const peer = this.#peer(message.to);
    this.metrics.messagesDroppedQueueFull += peer.enqueue({ groupId, message }, this.#maxQueued);
  }

  /** Sends what is queued: per peer, one RaftBatch (more only when it would pass maxBatchBytes). */
  flush(): void {
    const now = performance.now();
    for (const peer of this.#peers.values()) {
      if (peer.queued === 0) continue;
      // A peer that does not keep up keeps its messages in its bounded queue rather than in the stream.
      if (peer.stream !== undefined && peer.stream.call.pendingWrites >= MAX_PENDING_BATCHES) continue;
      const messages = peer.takeAll();
      if (this.faults?.dropsTo(peer.nodeId) === true) {
        this.metrics.messagesDroppedByFault += messages.length;
        continue;
      }
      const stream = this.#streamTo(peer, now);
      if (stream === undefined) {
        this.metrics.messagesDroppedUnreachable += messages.length;
        this.#options.onUnreachable?.(peer.nodeId, distinctGroups(messages));
        continue;
      }
      peer.lastFlush = messages;
      for (const batch of this.#split(peer, messages, stream.packed)) this.#emit(peer, stream, batch, now);
    }
  }

  /**
   * Streams a MsgSnap's snapshot data to `message.to` in chunks: `data` when given (read as it is
   * sent), else the message's own; the receiver hands the whole MsgSnap to its onMessages. The
   * outcome goes to onSnapshotSent.
   */
  sendSnapshot(groupId: number, message: Message, data?: SnapshotData): void {
    if (message.type !== 'MsgSnap' || message.snapshot === undefined) {
      data?.release();
      throw new Error(`group ${groupId}: sendSnapshot needs a MsgSnap with a snapshot, got ${message.type}`);
    }
    this.#checkRecipient(groupId, message);
    const own = message.snapshot.data;
    const sent = data ?? { size: own.length, chunks: [own], release: () => undefined };
    void this.#transferSnapshot(groupId, message, sent).finally(() => sent.release()).then((outcome) => {
      if (outcome.ok) this.metrics.snapshotsSent += 1;
      else this.metrics.snapshotsFailed += 1;
      this.#options.onSnapshotSent?.(outcome);
    });
  }

  /**
   * Closes every outgoing stream at once (and stops serving, on a server of its own: a shared server
   * is shut down by its owner); queued messages are discarded. Raft traffic needs no draining:
   * whatever is cut off, the groups send again.
   */
  async close(): Promise<void> {
    this.#closing.abort();
    for (const peer of this.#peers.values()) {
      clearTimeout(peer.delayTimer);
      const stream = peer.stream;
      peer.stream = undefined;
      stream?.call.cancel();
    }
    if (this.#ownServer !== undefined) await shutdown(this.#ownServer, 0);
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  #checkRecipient(groupId: number, message: Message): void {
    if (message.to === this.nodeId) throw new Error(`group ${groupId}: a message from node ${this.nodeId} to itself`);
  }

  #peer(nodeId: NodeId): Peer {
    let peer = this.#peers.get(nodeId);
    if (peer === undefined) {
      peer = new Peer(nodeId);
      this.#peers.set(nodeId, peer);
    }
    return peer;
  }

  #resolve(nodeId: NodeId): string | undefined {
    try {
      return this.#options.resolvePeer(nodeId);
    } catch {
      return undefined;
    }
  }

  /** The open stream to `peer`, opening one unless the peer is backing off or cannot be resolved. */
  #streamTo(peer: Peer, now: number): PeerStream | undefined {
    if (peer.stream !== undefined) return peer.stream;
    if (now < peer.retryAt || this.#closing.signal.aborted) return undefined;
    const address = this.#resolve(peer.nodeId);
    if (address === undefined) {
      this.#log({ level: 'warn', event: 'peer_unresolved', node: this.nodeId, peer: peer.nodeId });
      this.#backOff(peer, now);
      return undefined;
    }
    const stream: PeerStream = {
      // A peer that hangs without closing its socket is found out by keepalive pings (10 s, 5 s to answer).
      call: new DirectStream(address, RaftTransportService.method.stream, {
        // The peer answers once it has accepted a batch (the connection works), and for any batch
        // holding messages of groups it does not host.
        onMessage: (bytes) => {
          const response = fromBinary(StreamResponseSchema, bytes);
          peer.failures = 0;
          if (response.readsPackedMessages) stream.packed = true;
          if (response.undelivered.length > 0) {
            this.#options.onUndelivered?.(peer.nodeId, [...new Set(response.undelivered.map((m) => Number(m.groupId)))]);
          }
        },
        onEnd: (error) => this.#streamEnded(peer, stream, error ?? new Error('stream closed by the peer')),
      }),
      packed: false,
    };
    peer.stream = stream;
    return stream;
  }

  #backOff(peer: Peer, now: number): number {
    const delay = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** Math.min(peer.failures, 30));
    peer.failures += 1;
    peer.retryAt = now + delay;
    return delay;
  }

  #streamEnded(peer: Peer, stream: PeerStream, error: unknown): void {
    if (peer.stream !== stream) return;
    peer.stream = undefined;
    stream.call.cancel();
    if (this.#closing.signal.aborted) return;
    this.metrics.streamFailures += 1;
    const retryInMs = this.#backOff(peer, performance.now());
    this.#log({
      level: 'warn',
      event: 'stream_failed',
      node: this.nodeId,
      peer: peer.nodeId,
      ...(error instanceof RpcError ? { code: Status[error.code] } : {}),
      error: errorText(error),
      retryInMs,
    });
    const lost = new Set(distinctGroups(peer.lastFlush));
    for (const held of peer.delayed.splice(0)) {
      this.metrics.messagesDroppedUnreachable += held.outgoing.messages;
      for (const { groupId } of held.outgoing.sent) lost.add(groupId);
    }
    peer.lastFlush = [];
    if (lost.size > 0) this.#options.onUnreachable?.(peer.nodeId, [...lost]);
  }

  /** Cuts the messages into RaftBatches each within maxBatchBytes (a larger message alone), in order. */
  *#split(peer: Peer, messages: GroupMessage[], packed: boolean): Generator<OutgoingBatch> {
    const header = batchHeaderWireSize(this.nodeId, peer.nodeId);
    // Packed, the messages sit in one bytes field: its tag and length (at most 5 bytes) come on top.
    const overhead = packed ? PACKED_FIELD_OVERHEAD_BYTES : 0;
    const limit = this.#maxBatchBytes - overhead;
    let current: GroupMessage[] = [];
    let bytes = header;
    for (const item of messages) {
      const size = groupMessageWireSize(item.groupId, item.message);
      if (header + size > this.#maxMessageBytes - overhead) {
        this.metrics.messagesDroppedOversize += 1;
        this.#log({ level: 'warn', event: 'message_oversize', node: this.nodeId, peer: peer.nodeId, group: item.groupId, type: item.message.type, bytes: size });
        this.#options.onUnreachable?.(peer.nodeId, [item.groupId]);
        continue;
      }
      if (current.length > 0 && bytes + size > limit) {
        yield this.#batch(peer, current, bytes, packed);
        current = [];
        bytes = header;
      }
      current.push(item);
      bytes += size;
    }
    if (current.length > 0) yield this.#batch(peer, current, bytes, packed);
  }

  /** `packed`: the messages as one encoded GroupMessageList (a few bytes more on the wire), else as `messages`. */
  #batch(peer: Peer, messages: GroupMessage[], bytes: number, packed: boolean): OutgoingBatch {
    const frame = encodeRaftBatchFrame(this.nodeId, peer.nodeId, messages, packed);
    return { frame, bytes, messages: messages.length, sent: messages };
  }

  #emit(peer: Peer, stream: PeerStream, outgoing: OutgoingBatch, now: number): void {
    this.metrics.batchesSent += 1;
    this.metrics.messagesSent += outgoing.messages;
    this.metrics.bytesSent += outgoing.bytes;
    const delayMs = this.faults?.delayMsTo(peer.nodeId) ?? 0;
    if (delayMs === 0 && peer.delayed.length === 0) {
      stream.call.write(outgoing.frame);
      return;
    }
    // Held back in a FIFO released by one timer, so that a delay never reorders the stream.
    const last = peer.delayed.at(-1);
    peer.delayed.push({ due: Math.max(now + delayMs, last?.due ?? 0), stream, outgoing });
    if (peer.delayTimer === undefined) this.#scheduleDelayed(peer);
  }

  #scheduleDelayed(peer: Peer): void {
    const next = peer.delayed[0];
    if (next === undefined || this.#closing.signal.aborted) {
      peer.delayTimer = undefined;
      return;
    }
    peer.delayTimer = setTimeout(() => {
      const now = performance.now();
      while (peer.delayed.length > 0 && (peer.delayed[0] as DelayedBatch).due <= now) {
        const held = peer.delayed.shift() as DelayedBatch;
        if (held.stream === peer.stream) held.stream.call.write(held.outgoing.frame);
      }
      this.#scheduleDelayed(peer);
    }, Math.max(0, next.due - performance.now()));
  }

  async #transferSnapshot(groupId: number, message: Message, data: SnapshotData): Promise<SnapshotOutcome> {
    const to = message.to;
    const size = data.size;
    const failed = (error: string): SnapshotOutcome => {
      this.#log({ level: 'warn', event: 'snapshot_failed', node: this.nodeId, peer: to, group: groupId, bytes: size, error });
      return { groupId, to, ok: false, error };
    };
    if (this.faults?.dropsTo(to) === true) return failed('dropped by fault injection');
    const delayMs = this.faults?.delayMsTo(to) ?? 0;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const address = this.#resolve(to);
    if (address === undefined) return failed(`node ${to} is not known`);
    // A channel of its own, so the bulk data does not queue behind or ahead of the batched stream.
    const client = createClient(RaftTransportService, address, { channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
    const header = messageToWire({ ...message, snapshot: { metadata: message.snapshot!.metadata, data: new Uint8Array(0) } });
    const chunkBytes = this.#chunkBytes;
    const fromNode = BigInt(this.nodeId);
    async function* chunks(): AsyncGenerator<MessageInitShape<typeof SnapshotChunkSchema>> {
      yield {
        chunk: {
          case: 'header',
          value: { fromNode, toNode: BigInt(to), groupId: BigInt(groupId), message: header, dataSize: BigInt(size) },
        },
      };
      for await (const piece of data.chunks) {
        for (let offset = 0; offset < piece.length; offset += chunkBytes) {
          yield { chunk: { case: 'data', value: piece.subarray(offset, offset + chunkBytes) } };
        }
      }
    }
    try {
      const response = await client.sendSnapshot(chunks(), { signal: this.#closing.signal });
      if (response.receivedBytes !== BigInt(size)) {
        return failed(`node ${to} received ${response.receivedBytes} of ${size} bytes`);
      }
      this.metrics.snapshotBytesSent += size;
      return { groupId, to, ok: true };
    } catch (error) {
      return failed(errorText(error));
    } finally {
      client.close();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /** Refuses (and logs) traffic from a node we do not know or meant for another node. */
  #checkAddressing(fromNode: bigint | number, toNode: bigint | number, what: string, context: CallContext): NodeId {
    const from = safeNodeId(BigInt(fromNode));
    let refusal: RpcError | undefined;
    if (from === undefined || this.#resolve(from) === undefined) {
      refusal = new RpcError(Status.PERMISSION_DENIED, `${what} from unknown node ${fromNode} refused by node ${this.nodeId}`);
    } else if (BigInt(toNode) !== BigInt(this.nodeId)) {
      refusal = new RpcError(Status.FAILED_PRECONDITION, `${what} for node ${toNode} reached node ${this.nodeId}`);
    }
    if (refusal === undefined) return from as NodeId;
    this.#refused(what, refusal, { from: String(fromNode), to: String(toNode), remote: context.peer });
  }

  #refused(what: string, refusal: RpcError, fields: Record<string, unknown>): never {
    if (what === 'batch') this.metrics.batchesRefused += 1;
    else this.metrics.snapshotsRefused += 1;
    this.#log({ level: 'warn', event: `${what}_refused`, node: this.nodeId, ...fields, code: Status[refusal.code], error: refusal.message });
    throw refusal;
  }

  async *#serveStream(batches: AsyncIterable<Uint8Array>, context: CallContext): AsyncGenerator<Uint8Array> {
    const stream: InboundStream = { from: undefined };
    try {
      yield* this.#receiveBatches(batches, stream, context);
    } finally {
      if (stream.from !== undefined && this.#inbound.get(stream.from) === stream) this.#inbound.delete(stream.from);
    }
  }

  async *#receiveBatches(batches: AsyncIterable<Uint8Array>, stream: InboundStream, context: CallContext): AsyncGenerator<Uint8Array> {
    let acknowledged = false;
    for await (const bytes of batches) {
      let batch: DecodedRaftBatch;
      try {
        // A plain Uint8Array over the frame (not a Buffer), so the messages' bytes equal what the sender built.
        batch = decodeRaftBatch(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      } catch (error) {
        const refusal = error instanceof RpcError ? error : new RpcError(Status.INVALID_ARGUMENT, errorText(error));
        this.#refused('batch', refusal, { ...(stream.from === undefined ? {} : { from: stream.from }), remote: context.peer });
      }
      const from = this.#checkAddressing(batch.fromNode, batch.toNode, 'batch', context);
      if (stream.from !== undefined && from !== stream.from) {
        this.#refused('batch', new RpcError(Status.INVALID_ARGUMENT, `a stream from node ${stream.from} carried a batch from node ${from}`), { from, remote: context.peer });
      }
      // A sender keeps one stream to us. Once a newer one from the same node has delivered, batches
      // still arriving on the old one are late and would reorder that node's traffic: refused.
      if (stream.from !== undefined && this.#inbound.get(from) !== stream) {
        this.#refused('batch', new RpcError(Status.ABORTED, `stream from node ${from} superseded by a newer one`), { from, remote: context.peer });
      }
      const received: GroupMessage[] = batch.messages;
      if (this.faults?.dropsFrom(from) === true) {
        this.metrics.batchesDroppedByFault += 1;
        this.metrics.messagesDroppedByFault += received.length;
        continue;
      }
      if (stream.from === undefined) {
        stream.from = from;
        this.#inbound.set(from, stream);
      }
      this.metrics.batchesReceived += 1;
      this.metrics.messagesReceived += received.length;
      // The batch's size as its sender counted it (its messages as `messages`), whichever form it came in.
      let counted = batchHeaderWireSize(from, this.nodeId);
      for (const item of received) counted += groupMessageWireSize(item.groupId, item.message);
      this.metrics.bytesReceived += counted;
      const unhosted = this.#options.onMessages(received, from) ?? [];
      if (unhosted.length > 0) {
        const groups = new Set(unhosted);
        const undelivered = received
          .filter((m) => groups.has(m.groupId))
          .map((m) => ({ groupId: BigInt(m.groupId), to: BigInt(m.message.to), type: messageTypeToWire(m.message.type), reason: UndeliveredReason.GROUP_NOT_FOUND }));
        acknowledged = true;
        yield streamResponse({ undelivered, readsPackedMessages: true });
      } else if (!acknowledged) {
        acknowledged = true;
        yield streamResponse({ readsPackedMessages: true });
      }
    }
  }

  /**
   * Receives a snapshot into a staging file, chunk by chunk (each written before the next is read:
   * the bytes held stay within about one chunk), synced before the message goes to onMessages.
   */
  async #receiveSnapshot(chunks: AsyncIterable<SnapshotChunk>, context: CallContext): Promise<{ receivedBytes: bigint }> {
    let transfer: { from: NodeId; groupId: number; message: Message; size: number; received: number; path: string } | undefined;
    let file: Awaited<ReturnType<typeof open>> | undefined;
    let handedOver = false;
    const refuse = (code: Status, reason: string): never =>
      this.#refused('snapshot', new RpcError(code, reason), { remote: context.peer, ...(transfer === undefined ? {} : { from: transfer.from, group: transfer.groupId }) });
    try {
      for await (const { chunk } of chunks) {
        if (transfer === undefined) {
          if (chunk.case !== 'header') return refuse(Status.INVALID_ARGUMENT, 'a snapshot transfer must start with its header');
          const header = chunk.value;
          const from = this.#checkAddressing(header.fromNode, header.toNode, 'snapshot', context);
          const groupId = safeGroupId(header.groupId);
          if (groupId === undefined) return refuse(Status.INVALID_ARGUMENT, `invalid group id ${header.groupId}`);
          if (header.dataSize > BigInt(this.#maxSnapshotBytes)) {
            return refuse(Status.RESOURCE_EXHAUSTED, `snapshot of ${header.dataSize} bytes exceeds the limit of ${this.#maxSnapshotBytes}`);
          }
          if (this.faults?.dropsFrom(from) === true) return refuse(Status.UNAVAILABLE, 'dropped by fault injection');
          let message: Message;
          try {
            if (header.message === undefined) throw new RpcError(Status.INVALID_ARGUMENT, 'snapshot header without a message');
            message = messageFromWire(header.message);
          } catch (error) {
            return refuse(Status.INVALID_ARGUMENT, errorText(error));
          }
          if (message.type !== 'MsgSnap' || message.snapshot === undefined) return refuse(Status.INVALID_ARGUMENT, `snapshot header carries a ${message.type}`);
          const path = join(this.#stagingDir, `shoal-snapshot-${this.nodeId}-${process.pid}-${groupId}-${++this.#stagedFiles}`);
          transfer = { from, groupId, message, size: Number(header.dataSize), received: 0, path };
          file = await open(path, 'wx');
          continue;
        }
        if (chunk.case !== 'data') return refuse(Status.INVALID_ARGUMENT, 'a second snapshot header');
        if (transfer.received + chunk.value.length > transfer.size) {
          return refuse(Status.INVALID_ARGUMENT, `snapshot data exceeds the announced ${transfer.size} bytes`);
        }
        const metrics = this.metrics;
        metrics.snapshotBytesBuffered += chunk.value.length;
        metrics.snapshotBytesBufferedPeak = Math.max(metrics.snapshotBytesBufferedPeak, metrics.snapshotBytesBuffered);
        try {
          await file!.write(chunk.value);
        } finally {
          metrics.snapshotBytesBuffered -= chunk.value.length;
        }
        transfer.received += chunk.value.length;
        metrics.snapshotChunksReceived += 1;
      }
      if (transfer === undefined) return refuse(Status.INVALID_ARGUMENT, 'an empty snapshot transfer');
      if (transfer.received !== transfer.size) {
        return refuse(Status.INVALID_ARGUMENT, `snapshot truncated: ${transfer.received} of ${transfer.size} bytes`);
      }
      // Synced before Raft hears of it, its name too: a restore it feeds may be redone from it after a crash.
      await file!.sync();
      await file!.close();
      file = undefined;
      await syncDirectory(this.#stagingDir);
      this.metrics.snapshotsReceived += 1;
      this.metrics.snapshotBytesReceived += transfer.received;
      const snapshot = { metadata: transfer.message.snapshot!.metadata, data: new Uint8Array(0) };
      const staged = { path: transfer.path, size: transfer.received };
      const unhosted = this.#options.onMessages([{ groupId: transfer.groupId, message: { ...transfer.message, snapshot }, staged }], transfer.from) ?? [];
      if (unhosted.includes(transfer.groupId)) {
        throw new RpcError(Status.NOT_FOUND, `node ${this.nodeId} hosts no replica of group ${transfer.groupId}`);
      }
      handedOver = true;
      return { receivedBytes: BigInt(transfer.received) };
    } finally {
      await file?.close().catch(() => undefined);
      if (!handedOver && transfer !== undefined) await rm(transfer.path, { force: true });
    }
  }
}
