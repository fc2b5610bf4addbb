/**
 * Conversion between the Raft core's messages (@shoal/raft) and their wire form (shoal.v1 raft.proto).
 * The wire keeps terms, indexes and ids as uint64 (bigint); the core keeps JS numbers, so a value past
 * 2^53 from a peer is refused rather than rounded.
 */
import { create } from '@bufbuild/protobuf';
import { Buffer } from 'node:buffer';
import type * as raft from '@shoal/raft';
import {
  ConfChangeSchema,
  ConfChangeType as WireConfChangeType,
  EntryType as WireEntryType,
  MessageSchema,
  MessageType as WireMessageType,
} from './gen/shoal/v1/raft_pb.ts';
import type {
  ConfChange as WireConfChange,
  ConfState as WireConfState,
  Entry as WireEntry,
  Message as WireMessage,
  Snapshot as WireSnapshot,
} from './gen/shoal/v1/raft_pb.ts';
import { FRAME_HEADER_BYTES, RpcError, Status } from './grpc.ts';

const MESSAGE_TYPES: Record<raft.MessageType, WireMessageType> = {
  MsgApp: WireMessageType.MSG_APP,
  MsgAppResp: WireMessageType.MSG_APP_RESP,
  MsgVote: WireMessageType.MSG_VOTE,
  MsgVoteResp: WireMessageType.MSG_VOTE_RESP,
  MsgPreVote: WireMessageType.MSG_PRE_VOTE,
  MsgPreVoteResp: WireMessageType.MSG_PRE_VOTE_RESP,
  MsgHeartbeat: WireMessageType.MSG_HEARTBEAT,
  MsgHeartbeatResp: WireMessageType.MSG_HEARTBEAT_RESP,
  MsgSnap: WireMessageType.MSG_SNAP,
  MsgReadIndex: WireMessageType.MSG_READ_INDEX,
  MsgReadIndexResp: WireMessageType.MSG_READ_INDEX_RESP,
  MsgTimeoutNow: WireMessageType.MSG_TIMEOUT_NOW,
  MsgTransferLeader: WireMessageType.MSG_TRANSFER_LEADER,
  MsgProp: WireMessageType.MSG_PROP,
};
const ENTRY_TYPES: Record<raft.EntryType, WireEntryType> = {
  normal: WireEntryType.NORMAL,
  confChange: WireEntryType.CONF_CHANGE,
};
const CONF_CHANGE_TYPES: Record<raft.ConfChangeType, WireConfChangeType> = {
  addNode: WireConfChangeType.ADD_NODE,
  removeNode: WireConfChangeType.REMOVE_NODE,
  addLearner: WireConfChangeType.ADD_LEARNER,
};

function inverse<K extends string>(map: Record<K, number>): Map<number, K> {
  return new Map(Object.entries<number>(map).map(([name, value]) => [value, name as K]));
}
const MESSAGE_TYPE_NAMES = inverse(MESSAGE_TYPES);
const ENTRY_TYPE_NAMES = inverse(ENTRY_TYPES);
const CONF_CHANGE_TYPE_NAMES = inverse(CONF_CHANGE_TYPES);

function invalid(what: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, `invalid Raft message: ${what}`);
}

function named<K>(names: Map<number, K>, value: number, what: string): K {
  const name = names.get(value);
  if (name === undefined) throw invalid(`${what} ${value}`);
  return name;
}

function toNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${value} exceeds 2^53`);
  return Number(value);
}

const numbers = (values: bigint[], what: string): number[] => values.map((v) => toNumber(v, what));
const bigints = (values: number[]): bigint[] => values.map(BigInt);

function entryToWire(entry: raft.Entry): Omit<WireEntry, '$typeName'> {
  return { term: BigInt(entry.term), index: BigInt(entry.index), type: ENTRY_TYPES[entry.type], data: entry.data };
}

function entryFromWire(entry: WireEntry): raft.Entry {
  return {
    term: toNumber(entry.term, 'entry term'),
    index: toNumber(entry.index, 'entry index'),
    type: named(ENTRY_TYPE_NAMES, entry.type, 'entry type'),
    data: entry.data,
  };
}

function confStateToWire(state: raft.ConfState): Omit<WireConfState, '$typeName'> {
  return {
    voters: bigints(state.voters),
    learners: bigints(state.learners),
    votersOutgoing: bigints(state.votersOutgoing),
    learnersNext: bigints(state.learnersNext),
    autoLeave: state.autoLeave,
  };
}

function confStateFromWire(state: WireConfState | undefined): raft.ConfState {
  if (state === undefined) throw invalid('snapshot without a ConfState');
  return {
    voters: numbers(state.voters, 'voter'),
    learners: numbers(state.learners, 'learner'),
    votersOutgoing: numbers(state.votersOutgoing, 'outgoing voter'),
    learnersNext: numbers(state.learnersNext, 'next learner'),
    autoLeave: state.autoLeave,
  };
}

function snapshotFromWire(snapshot: WireSnapshot): raft.Snapshot {
  const metadata = snapshot.metadata;
  if (metadata === undefined) throw invalid('snapshot without metadata');
  return {
    metadata: {
      index: toNumber(metadata.index, 'snapshot index'),
      term: toNumber(metadata.term, 'snapshot term'),
      confState: confStateFromWire(metadata.confState),
    },
    data: snapshot.data,
  };
}

/** The wire enum value of a core message type. */
export function messageTypeToWire(type: raft.MessageType): WireMessageType {
  return MESSAGE_TYPES[type];
}

/** The wire form of a core message. */
export function messageToWire(message: raft.Message): WireMessage {
  return create(MessageSchema, {
    type: MESSAGE_TYPES[message.type],
    from: BigInt(message.from),
    to: BigInt(message.to),
    term: BigInt(message.term),
    logTerm: BigInt(message.logTerm),
    index: BigInt(message.index),
    entries: message.entries.map(entryToWire),
    commit: BigInt(message.commit),
    reject: message.reject,
    rejectHint: BigInt(message.rejectHint),
    ...(message.snapshot === undefined
      ? {}
      : {
          snapshot: {
            metadata: {
              index: BigInt(message.snapshot.metadata.index),
              term: BigInt(message.snapshot.metadata.term),
              confState: confStateToWire(message.snapshot.metadata.confState),
            },
            data: message.snapshot.data,
          },
        }),
    ...(message.context === undefined ? {} : { context: message.context }),
  });
}

/** The core message a peer sent; throws RpcError INVALID_ARGUMENT for one the core cannot take. */
export function messageFromWire(message: WireMessage): raft.Message {
  const out: raft.Message = {
    type: named(MESSAGE_TYPE_NAMES, message.type, 'message type'),
    from: toNumber(message.from, 'from'),
    to: toNumber(message.to, 'to'),
    term: toNumber(message.term, 'term'),
    logTerm: toNumber(message.logTerm, 'log term'),
    index: toNumber(message.index, 'index'),
    entries: message.entries.map(entryFromWire),
    commit: toNumber(message.commit, 'commit'),
    reject: message.reject,
    rejectHint: toNumber(message.rejectHint, 'reject hint'),
  };
  if (message.snapshot !== undefined) out.snapshot = snapshotFromWire(message.snapshot);
  if (message.context !== undefined) out.context = message.context;
  return out;
}

/** The wire form of a membership change (admin moves, placement). */
export function confChangeToWire(change: raft.ConfChange): WireConfChange {
  return create(ConfChangeSchema, {
    changes: change.changes.map((c) => ({ type: CONF_CHANGE_TYPES[c.type], nodeId: BigInt(c.nodeId) })),
    ...(change.joint === undefined ? {} : { joint: change.joint }),
    ...(change.context === undefined ? {} : { context: change.context }),
  });
}

export function confChangeFromWire(change: WireConfChange): raft.ConfChange {
  const out: raft.ConfChange = {
    changes: change.changes.map((c) => ({
      type: named(CONF_CHANGE_TYPE_NAMES, c.type, 'conf change type'),
      nodeId: toNumber(c.nodeId, 'node id'),
    })),
  };
  if (change.joint !== undefined) out.joint = change.joint;
  if (change.context !== undefined) out.context = change.context;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Packed batches (RaftBatch.packed_messages): a GroupMessageList encoded and decoded by hand, byte
// for byte what protobuf-es makes of the same messages (property-tested), at a fraction of its cost:
// the generic runtime builds a message object per field level, BigInts for every number, and copies
// each entry's data through its writer's chunks. Decoded entry data, snapshot data and contexts are
// views into the frame, as protobuf-es gives them.

/** One Raft message and the group it belongs to (the core's form of a GroupMessage). */
interface CoreGroupMessage {
  groupId: number;
  message: raft.Message;
}

// Wire types and the tags of the fields written (field number << 3 | wire type); every field number
// of these messages is below 16, so each tag is one byte.
const VARINT = 0;
const FIXED64 = 1;
const DELIMITED = 2;
const FIXED32 = 5;

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) size += 1;
  return size;
}

/** A scalar field of implicit presence: absent when zero. */
const uint64Field = (value: number): number => (value === 0 ? 0 : 1 + varintSize(value));
const boolField = (value: boolean): number => (value ? 2 : 0);
/** A length-delimited field that is always written (an embedded message, an optional bytes). */
const delimited = (length: number): number => 1 + varintSize(length) + length;
const bytesField = (value: Uint8Array): number => (value.length === 0 ? 0 : delimited(value.length));

function packedPayload(values: readonly number[]): number {
  let payload = 0;
  for (const value of values) payload += varintSize(value);
  return payload;
}

const packedField = (values: readonly number[]): number => (values.length === 0 ? 0 : delimited(packedPayload(values)));

function entrySize(entry: raft.Entry): number {
  // The entry type is 1 or 2 on the wire, never the omitted zero.
  return uint64Field(entry.term) + uint64Field(entry.index) + 2 + bytesField(entry.data);
}

function confStateSize(state: raft.ConfState): number {
  return packedField(state.voters) + packedField(state.learners) + packedField(state.votersOutgoing) + packedField(state.learnersNext) + boolField(state.autoLeave);
}

function snapshotMetadataSize(snapshot: raft.Snapshot): number {
  const { index, term, confState } = snapshot.metadata;
  return uint64Field(index) + uint64Field(term) + delimited(confStateSize(confState));
}

function snapshotSize(snapshot: raft.Snapshot): number {
  return delimited(snapshotMetadataSize(snapshot)) + bytesField(snapshot.data);
}

/** The size of the encoded shoal.v1.Message. */
export function messageWireSize(message: raft.Message): number {
  let size = 2; // the message type: 1 to 14, never the omitted zero
  size += uint64Field(message.from) + uint64Field(message.to) + uint64Field(message.term);
  size += uint64Field(message.logTerm) + uint64Field(message.index) + uint64Field(message.commit);
  for (const entry of message.entries) size += delimited(entrySize(entry));
  if (message.snapshot !== undefined) size += delimited(snapshotSize(message.snapshot));
  size += boolField(message.reject) + uint64Field(message.rejectHint);
  if (message.context !== undefined) size += delimited(message.context.length);
  return size;
}

/**
 * What one GroupMessage adds to an encoded GroupMessageList, or to a RaftBatch's `messages` (its tag
 * and length included: both fields have one-byte tags).
 */
export function groupMessageWireSize(groupId: number, message: raft.Message): number {
  return delimited(uint64Field(groupId) + delimited(messageWireSize(message)));
}

/** The encoded RaftBatch without its messages. */
export function batchHeaderWireSize(fromNode: number, toNode: number): number {
  return uint64Field(fromNode) + uint64Field(toNode);
}

class Writer {
  readonly bytes: Uint8Array;
  at = 0;

  constructor(size: number) {
    // Not zeroed (a large frame's memset cost more than its encoding): the sizes are exact, so
    // every byte is written. A plain Uint8Array view, not a Buffer.
    const memory = Buffer.allocUnsafe(size);
    this.bytes = new Uint8Array(memory.buffer, memory.byteOffset, size);
  }

  varint(value: number): void {
    const bytes = this.bytes;
    let rest = value;
    while (rest >= 128) {
      bytes[this.at++] = (rest % 128) | 128;
      rest = Math.floor(rest / 128);
    }
    bytes[this.at++] = rest;
  }

  tag(field: number, wireType: number): void {
    this.bytes[this.at++] = (field << 3) | wireType;
  }

  uint64(field: number, value: number): void {
    if (value === 0) return;
    this.tag(field, VARINT);
    this.varint(value);
  }

  bool(field: number, value: boolean): void {
    if (!value) return;
    this.tag(field, VARINT);
    this.bytes[this.at++] = 1;
  }

  /** Tag and length of an embedded message or bytes field written next. */
  delimited(field: number, length: number): void {
    this.tag(field, DELIMITED);
    this.varint(length);
  }

  raw(value: Uint8Array): void {
    this.bytes.set(value, this.at);
    this.at += value.length;
  }

  packed(field: number, values: readonly number[]): void {
    if (values.length === 0) return;
    this.delimited(field, packedPayload(values));
    for (const value of values) this.varint(value);
  }
}

function writeMessage(w: Writer, message: raft.Message): void {
  w.tag(1, VARINT);
  w.varint(MESSAGE_TYPES[message.type]);
  w.uint64(2, message.from);
  w.uint64(3, message.to);
  w.uint64(4, message.term);
  w.uint64(5, message.logTerm);
  w.uint64(6, message.index);
  for (const entry of message.entries) {
    w.delimited(7, entrySize(entry));
    w.uint64(1, entry.term);
    w.uint64(2, entry.index);
    w.tag(3, VARINT);
    w.varint(ENTRY_TYPES[entry.type]);
    if (entry.data.length > 0) {
      w.delimited(4, entry.data.length);
      w.raw(entry.data);
    }
  }
  w.uint64(8, message.commit);
  const snapshot = message.snapshot;
  if (snapshot !== undefined) {
    w.delimited(9, snapshotSize(snapshot));
    w.delimited(1, snapshotMetadataSize(snapshot));
    const { index, term, confState } = snapshot.metadata;
    w.uint64(1, index);
    w.uint64(2, term);
    w.delimited(3, confStateSize(confState));
    w.packed(1, confState.voters);
    w.packed(2, confState.learners);
    w.packed(3, confState.votersOutgoing);
    w.packed(4, confState.learnersNext);
    w.bool(5, confState.autoLeave);
    if (snapshot.data.length > 0) {
      w.delimited(2, snapshot.data.length);
      w.raw(snapshot.data);
    }
  }
  w.bool(10, message.reject);
  w.uint64(11, message.rejectHint);
  if (message.context !== undefined) {
    w.delimited(12, message.context.length);
    w.raw(message.context);
  }
}

/** The GroupMessageList of `messages` (RaftBatch.packed_messages), in one buffer of its exact size. */
export function encodeGroupMessages(messages: readonly CoreGroupMessage[]): Uint8Array {
  let size = 0;
  for (const { groupId, message } of messages) size += groupMessageWireSize(groupId, message);
  const w = new Writer(size);
  for (const { groupId, message } of messages) {
    const messageSize = messageWireSize(message);
    w.delimited(1, uint64Field(groupId) + delimited(messageSize));
    w.uint64(1, groupId);
    w.delimited(2, messageSize);
    writeMessage(w, message);
  }
  return w.bytes;
}

/**
 * A RaftBatch as a gRPC message frame (compression flag, big-endian length, the message), written
 * straight from the core's messages into one buffer: what the Raft transport puts on its stream as
 * is. `packed`: the messages as one GroupMessageList in `packed_messages`, else as the repeated
 * `messages` (for a receiver that has not said it reads packed ones). Byte for byte protobuf-es's
 * encoding of the same RaftBatch.
 */
export function encodeRaftBatchFrame(fromNode: number, toNode: number, messages: readonly CoreGroupMessage[], packed: boolean): Uint8Array {
  let list = 0;
  for (const { groupId, message } of messages) list += groupMessageWireSize(groupId, message);
  // Packed or not, each GroupMessage takes the same bytes: a one-byte tag, its length, itself.
  const size = batchHeaderWireSize(fromNode, toNode) + (packed && messages.length > 0 ? delimited(list) : list);
  const w = new Writer(FRAME_HEADER_BYTES + size);
  w.bytes[0] = 0;
  new DataView(w.bytes.buffer, w.bytes.byteOffset).setUint32(1, size);
  w.at = FRAME_HEADER_BYTES;
  w.uint64(1, fromNode);
  w.uint64(2, toNode);
  if (packed && messages.length > 0) w.delimited(4, list);
  const field = packed ? 1 : 3;
  for (const { groupId, message } of messages) {
    const messageSize = messageWireSize(message);
    w.delimited(field, uint64Field(groupId) + delimited(messageSize));
    w.uint64(1, groupId);
    w.delimited(2, messageSize);
    writeMessage(w, message);
  }
  return w.bytes;
}

/**
 * Reads one encoded message (or the part of one between `at` and `end`) field by field; every misstep
 * is the sender's corrupt frame. Each decoder below is a loop over `field()` whose cases read the
 * field with the method of its type, which checks the wire type the field came with.
 */
class Reader {
  readonly bytes: Uint8Array;
  at: number;
  end: number;
  /** The wire type of the field `field()` answered last. */
  wireType = 0;

  constructor(bytes: Uint8Array, at: number, end: number) {
    this.bytes = bytes;
    this.at = at;
    this.end = end;
  }

  /** A uint64 varint as a JS number; past 2^53 it is refused as `what`. */
  varint(what: string): number {
    const at = this.at;
    if (at < this.end) {
      const byte = this.bytes[at] as number;
      if (byte < 128) {
        this.at = at + 1;
        return byte;
      }
    }
    return this.longVarint(what);
  }

  /** A varint of more than one byte (kept out of `varint`, so that it inlines where it is read). */
  longVarint(what: string): number {
    const bytes = this.bytes;
    const start = this.at;
    let value = 0;
    let scale = 1;
    for (let read = 0; read < 10; read++) {
      if (this.at >= this.end) throw invalid('truncated frame');
      const byte = bytes[this.at++] as number;
      value += (byte & 127) * scale;
      if (byte < 128) {
        if (value > Number.MAX_SAFE_INTEGER) throw invalid(`${what} ${exactVarint(bytes.subarray(start, this.at))} exceeds 2^53`);
        return value;
      }
      scale *= 128;
    }
    throw invalid('varint longer than 10 bytes');
  }

  /** The next field's number (its wire type in `wireType`), or 0 at the end of the message. */
  field(): number {
    if (this.at >= this.end) return 0;
    const tag = this.varint('field tag');
    // Field number 0 is no field (protobuf-es refuses it too).
    if (tag > 0xffffffff || tag < 8) throw invalid(`field tag ${tag}`);
    this.wireType = tag & 7;
    return tag >>> 3;
  }

  /** The current field came with the wire type its type has. */
  expect(wireType: number, what: string): void {
    if (this.wireType !== wireType) throw invalid(`${what} with wire type ${this.wireType}`);
  }

  /** The end of the length-delimited field whose length comes next; the reader stands at its start. */
  delimitedEnd(): number {
    const length = this.varint('length');
    const end = this.at + length;
    if (end > this.end) throw invalid('truncated frame');
    return end;
  }

  /** A uint64 field, as a JS number. */
  uint64(what: string): number {
    this.expect(VARINT, what);
    return this.varint(what);
  }

  bool(what: string): boolean {
    return this.uint64(what) !== 0;
  }

  /** A bytes field: a view into the frame. */
  bytesField(what: string): Uint8Array {
    this.expect(DELIMITED, what);
    const end = this.delimitedEnd();
    const value = this.bytes.subarray(this.at, end);
    this.at = end;
    return value;
  }

  /** An embedded message, read by `read` with the reader bounded to it; the reader stands after it. */
  message<T>(what: string, read: (reader: Reader) => T): T {
    this.expect(DELIMITED, what);
    const end = this.delimitedEnd();
    const outer = this.end;
    this.end = end;
    const value = read(this);
    this.end = outer;
    this.at = end;
    return value;
  }

  /** A repeated uint64 field: packed, or one value per field (parsers accept both). */
  repeated(into: number[], what: string): void {
    if (this.wireType === VARINT) {
      into.push(this.varint(what));
      return;
    }
    this.expect(DELIMITED, what);
    const outer = this.end;
    this.end = this.delimitedEnd();
    while (this.at < this.end) into.push(this.varint(what));
    this.end = outer;
  }

  /** Skips a field this decoder does not know (a newer peer's), as protobuf parsers do. */
  skip(): void {
    const wireType = this.wireType;
    if (wireType === VARINT) this.varint('unknown field');
    else if (wireType === DELIMITED) this.at = this.delimitedEnd();
    else if (wireType === FIXED64 || wireType === FIXED32) {
      this.at += wireType === FIXED64 ? 8 : 4;
      if (this.at > this.end) throw invalid('truncated frame');
    } else throw invalid(`wire type ${wireType}`);
  }
}

/** A varint's exact value, for the message refusing it. */
function exactVarint(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 7n) | BigInt((bytes[i] as number) & 127);
  return value;
}

function readEntry(r: Reader): raft.Entry {
  let term = 0;
  let index = 0;
  let type = 0;
  let data: Uint8Array = EMPTY;
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) term = r.uint64('entry term');
    else if (field === 2) index = r.uint64('entry index');
    else if (field === 3) type = r.uint64('entry type');
    else if (field === 4) data = r.bytesField('entry data');
    else r.skip();
  }
  return { term, index, type: named(ENTRY_TYPE_NAMES, type, 'entry type'), data };
}

function readConfState(r: Reader): raft.ConfState {
  const state: raft.ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) r.repeated(state.voters, 'voter');
    else if (field === 2) r.repeated(state.learners, 'learner');
    else if (field === 3) r.repeated(state.votersOutgoing, 'outgoing voter');
    else if (field === 4) r.repeated(state.learnersNext, 'next learner');
    else if (field === 5) state.autoLeave = r.bool('auto leave');
    else r.skip();
  }
  return state;
}

function readSnapshotMetadata(r: Reader): raft.SnapshotMetadata {
  let index = 0;
  let term = 0;
  let confState: raft.ConfState | undefined;
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) index = r.uint64('snapshot index');
    else if (field === 2) term = r.uint64('snapshot term');
    else if (field === 3) confState = r.message('conf state', readConfState);
    else r.skip();
  }
  if (confState === undefined) throw invalid('snapshot without a ConfState');
  return { index, term, confState };
}

function readSnapshot(r: Reader): raft.Snapshot {
  let metadata: raft.SnapshotMetadata | undefined;
  let data: Uint8Array = EMPTY;
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) metadata = r.message('snapshot metadata', readSnapshotMetadata);
    else if (field === 2) data = r.bytesField('snapshot data');
    else r.skip();
  }
  if (metadata === undefined) throw invalid('snapshot without metadata');
  return { metadata, data };
}

function readMessage(r: Reader): raft.Message {
  let type = 0;
  const message: raft.Message = { type: 'MsgApp', from: 0, to: 0, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
  let field: number;
  while ((field = r.field()) !== 0) {
    switch (field) {
      case 1:
        type = r.uint64('message type');
        break;
      case 2:
        message.from = r.uint64('from');
        break;
      case 3:
        message.to = r.uint64('to');
        break;
      case 4:
        message.term = r.uint64('term');
        break;
      case 5:
        message.logTerm = r.uint64('log term');
        break;
      case 6:
        message.index = r.uint64('index');
        break;
      case 7:
        message.entries.push(r.message('entry', readEntry));
        break;
      case 8:
        message.commit = r.uint64('commit');
        break;
      case 9:
        message.snapshot = r.message('snapshot', readSnapshot);
        break;
      case 10:
        message.reject = r.bool('reject');
        break;
      case 11:
        message.rejectHint = r.uint64('reject hint');
        break;
      case 12:
        message.context = r.bytesField('context');
        break;
      default:
        r.skip();
    }
  }
  message.type = named(MESSAGE_TYPE_NAMES, type, 'message type');
  return message;
}

function readGroupMessage(r: Reader): CoreGroupMessage {
  let groupId = 0;
  let message: raft.Message | undefined;
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) groupId = r.uint64('group id');
    else if (field === 2) message = r.message('message', readMessage);
    else r.skip();
  }
  if (message === undefined) throw invalid(`group ${groupId}: no message`);
  return { groupId, message };
}

/** A RaftBatch read by hand (RaftBatch.messages and packed_messages as one list, in that order). */
export interface DecodedRaftBatch {
  fromNode: number;
  toNode: number;
  messages: CoreGroupMessage[];
}

/**
 * An encoded RaftBatch, without the protobuf runtime; throws RpcError INVALID_ARGUMENT for one the
 * core cannot take (node ids past 2^53 included).
 */
export function decodeRaftBatch(bytes: Uint8Array): DecodedRaftBatch {
  const r = new Reader(bytes, 0, bytes.length);
  const batch: DecodedRaftBatch = { fromNode: 0, toNode: 0, messages: [] };
  let packed: Uint8Array = EMPTY;
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) batch.fromNode = r.uint64('from node');
    else if (field === 2) batch.toNode = r.uint64('to node');
    else if (field === 3) batch.messages.push(r.message('group message', readGroupMessage));
    else if (field === 4) packed = r.bytesField('packed messages'); // given twice, the last counts (as protobuf parsers take it)
    else r.skip();
  }
  if (packed.length > 0) batch.messages.push(...decodeGroupMessages(packed));
  return batch;
}

/** The messages of an encoded GroupMessageList; throws RpcError INVALID_ARGUMENT for a frame the core cannot take. */
export function decodeGroupMessages(bytes: Uint8Array): CoreGroupMessage[] {
  const r = new Reader(bytes, 0, bytes.length);
  const messages: CoreGroupMessage[] = [];
  let field: number;
  while ((field = r.field()) !== 0) {
    if (field === 1) messages.push(r.message('group message', readGroupMessage));
    else r.skip();
  }
  return messages;
}

const EMPTY = new Uint8Array(0);
