import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MESSAGE_TYPES, type ConfChange, type ConfState, type Entry, type Message } from '@shoal/raft';
import {
  ConfChangeSchema,
  GroupMessageListSchema,
  MessageSchema,
  RaftBatchSchema,
  RpcError,
  SnapshotSchema,
  Status,
  batchHeaderWireSize,
  confChangeFromWire,
  confChangeToWire,
  decodeGroupMessages,
  decodeRaftBatch,
  encodeGroupMessages,
  encodeRaftBatchFrame,
  groupMessageWireSize,
  messageFromWire,
  messageToWire,
} from '../src/index.ts';


// Small values and the edges: 0 and the largest the core can hold.
const u53 = fc.oneof(fc.nat(1000), fc.constant(0), fc.constant(Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const ids = fc.array(u53, { maxLength: 5 });
const bytes = fc.uint8Array({ maxLength: 64 });

const entry: fc.Arbitrary<Entry> = fc.record({
  term: u53,
  index: u53,
  type: fc.constantFrom('normal' as const, 'confChange' as const),
  data: bytes,
});

const confState: fc.Arbitrary<ConfState> = fc.record({
  voters: ids,
  learners: ids,
  votersOutgoing: ids,
  learnersNext: ids,
  autoLeave: fc.boolean(),
});

const message: fc.Arbitrary<Message> = fc.record(
  {
    type: fc.constantFrom(...MESSAGE_TYPES),
    from: u53,
    to: u53,
    term: u53,
    logTerm: u53,
    index: u53,
    entries: fc.array(entry, { maxLength: 4 }),
    commit: u53,
    snapshot: fc.record({ metadata: fc.record({ index: u53, term: u53, confState }), data: bytes }),
    reject: fc.boolean(),
    rejectHint: u53,
    context: bytes,
  },
  { requiredKeys: ['type', 'from', 'to', 'term', 'logTerm', 'index', 'entries', 'commit', 'reject', 'rejectHint'] },
);

const confChange: fc.Arbitrary<ConfChange> = fc.record(
  {
    changes: fc.array(
      fc.record({ type: fc.constantFrom('addNode' as const, 'removeNode' as const, 'addLearner' as const), nodeId: u53 }),
      { maxLength: 4 },
    ),
    joint: fc.boolean(),
    context: bytes,
  },
  { requiredKeys: ['changes'] },
);

/** A message encoded for the wire, through protobuf binary, and decoded again. */
const roundTrip = (m: Message): Message => messageFromWire(fromBinary(MessageSchema, toBinary(MessageSchema, messageToWire(m))));

describe('Raft messages on the wire', () => {
  it('round-trip through protobuf binary unchanged, absent optional fields included', () => {
    fc.assert(
      fc.property(message, (original) => {
        const decoded = roundTrip(original);
        expect(decoded).toEqual(original);
        expect(Object.keys(decoded).sort()).toEqual(Object.keys(original).sort());
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('keep an empty context apart from no context', () => {
    const base: Message = { type: 'MsgReadIndex', from: 1, to: 2, term: 3, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
    expect('context' in roundTrip(base)).toBe(false);
    expect(roundTrip({ ...base, context: new Uint8Array() }).context).toEqual(new Uint8Array());
  });

  it('round-trips membership changes', () => {
    fc.assert(
      fc.property(confChange, (original) => {
        const decoded = confChangeFromWire(fromBinary(ConfChangeSchema, toBinary(ConfChangeSchema, confChangeToWire(original))));
        expect(decoded).toEqual(original);
        expect(Object.keys(decoded).sort()).toEqual(Object.keys(original).sort());
      }),
      { numRuns: 200, seed: 11 },
    );
  });

  it('refuses what the core cannot take: unknown types, values past 2^53, a snapshot without metadata', () => {
    const wire = messageToWire({ type: 'MsgApp', from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 });
    const refused = (mutate: (m: typeof wire) => void): RpcError => {
      const copy = fromBinary(MessageSchema, toBinary(MessageSchema, wire));
      mutate(copy);
      try {
        messageFromWire(copy);
      } catch (error) {
        expect(error).toBeInstanceOf(RpcError);
        return error as RpcError;
      }
      throw new Error('accepted');
    };
    expect(refused((m) => (m.type = 0)).code).toBe(Status.INVALID_ARGUMENT);
    expect(refused((m) => (m.type = 99 as typeof m.type)).message).toContain('message type 99');
    expect(refused((m) => (m.term = 2n ** 53n)).message).toContain('term');
    expect(refused((m) => (m.snapshot = { $typeName: 'shoal.v1.Snapshot', data: new Uint8Array() })).message).toContain('metadata');
    expect(refused((m) => m.entries.push({ $typeName: 'shoal.v1.Entry', term: 1n, index: 1n, type: 0, data: new Uint8Array() })).message).toContain('entry type');
  });
});

describe('packed Raft batches (RaftBatch.packed_messages)', () => {
  const groupId = fc.oneof(fc.nat(1000), fc.constant(0), fc.maxSafeNat());
  const groupMessages = fc.array(fc.record({ groupId, message }), { maxLength: 5 });
  /** What protobuf-es makes of the same messages: the reference the hand-written codec must match. */
  const reference = (items: Array<{ groupId: number; message: Message }>): Uint8Array =>
    toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages: items.map((item) => ({ groupId: BigInt(item.groupId), message: messageToWire(item.message) })) }));

  it('encode byte for byte as protobuf-es does', () => {
    fc.assert(
      fc.property(groupMessages, (items) => {
        expect(encodeGroupMessages(items)).toEqual(reference(items));
      }),
      { numRuns: 300, seed: 21 },
    );
  });

  it('decode to the messages encoded, absent optional fields included', () => {
    fc.assert(
      fc.property(groupMessages, (items) => {
        const decoded = decodeGroupMessages(encodeGroupMessages(items));
        expect(decoded).toEqual(items);
        decoded.forEach((item, i) => expect(Object.keys(item.message).sort()).toEqual(Object.keys(items[i]!.message).sort()));
      }),
      { numRuns: 300, seed: 22 },
    );
  });

  it('size each message exactly (the sender cuts batches by these sizes)', () => {
    fc.assert(
      fc.property(groupId, message, fc.maxSafeNat(), fc.maxSafeNat(), (group, m, from, to) => {
        expect(groupMessageWireSize(group, m)).toBe(encodeGroupMessages([{ groupId: group, message: m }]).length);
        const batch = create(RaftBatchSchema, { fromNode: BigInt(from), toNode: BigInt(to), messages: [{ groupId: BigInt(group), message: messageToWire(m) }] });
        expect(batchHeaderWireSize(from, to) + groupMessageWireSize(group, m)).toBe(toBinary(RaftBatchSchema, batch).length);
      }),
      { numRuns: 300, seed: 23 },
    );
  });

  it('skip fields a newer peer adds and take repeated ids unpacked', () => {
    const m: Message = {
      type: 'MsgSnap', from: 1, to: 2, term: 3, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
      snapshot: { metadata: { index: 9, term: 3, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array([7]) },
    };
    const known = encodeGroupMessages([{ groupId: 4, message: m }]);
    // Field 15 of every kind a parser skips, after the known ones: a varint, 64 bits, bytes, 32 bits.
    const unknown = [0x78, 0x96, 0x01, 0x79, 1, 2, 3, 4, 5, 6, 7, 8, 0x7a, 2, 9, 9, 0x7d, 1, 2, 3, 4];
    expect(decodeGroupMessages(new Uint8Array([...known, ...unknown]))).toEqual([{ groupId: 4, message: m }]);
    // The voters as three varint fields rather than one packed field: GroupMessage{1: 4, 2: Message{1: MSG_SNAP, 9: Snapshot{1: metadata}}}.
    const confState = [0x08, 1, 0x08, 2, 0x08, 3];
    const metadata = [0x08, 9, 0x10, 3, 0x1a, confState.length, ...confState];
    const snapshot = [0x0a, metadata.length, ...metadata];
    const wire = [0x08, 9, 0x10, 1, 0x18, 2, 0x20, 3, 0x4a, snapshot.length, ...snapshot];
    const group = [0x08, 4, 0x12, wire.length, ...wire];
    const [decoded] = decodeGroupMessages(new Uint8Array([0x0a, group.length, ...group]));
    expect(decoded?.message.snapshot?.metadata.confState.voters).toEqual([1, 2, 3]);
  });

  it('refuse what the core cannot take with INVALID_ARGUMENT', () => {
    const refusal = (bytes: Uint8Array): RpcError => {
      try {
        decodeGroupMessages(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(RpcError);
        expect((error as RpcError).code).toBe(Status.INVALID_ARGUMENT);
        return error as RpcError;
      }
      throw new Error('accepted');
    };
    const base: Message = { type: 'MsgApp', from: 1, to: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
    const wire = (mutate: (m: ReturnType<typeof messageToWire>) => void): Uint8Array => {
      const m = messageToWire(base);
      mutate(m);
      return toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages: [{ groupId: 1n, message: m }] }));
    };
    expect(refusal(wire((m) => (m.type = 0))).message).toContain('message type 0');
    expect(refusal(wire((m) => (m.type = 99 as typeof m.type))).message).toContain('message type 99');
    expect(refusal(wire((m) => (m.term = 2n ** 53n))).message).toContain('term');
    expect(refusal(wire((m) => (m.snapshot = create(SnapshotSchema, {})))).message).toContain('metadata');
    expect(refusal(wire((m) => m.entries.push({ $typeName: 'shoal.v1.Entry', term: 1n, index: 1n, type: 0, data: new Uint8Array() }))).message).toContain('entry type');
    expect(refusal(toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages: [{ groupId: 5n }] }))).message).toContain('group 5: no message');
    // The message type sent as bytes rather than a varint.
    expect(refusal(new Uint8Array([0x0a, 6, 0x12, 4, 0x0a, 2, 1, 1])).message).toContain('wire type');
    // A group (wire type 3), which proto3 never uses.
    expect(refusal(new Uint8Array([0x0b])).message).toContain('wire type 3');
    // Field number 0 (tag 0 or 2, as protobuf-es refuses "illegal tag: field no 0").
    expect(refusal(new Uint8Array([0x00, 0x00])).message).toContain('field tag 0');
    expect(refusal(new Uint8Array([0x02, 0x00])).message).toContain('field tag 2');
  });

  it('refuse every truncation of a frame, and any garbage, with INVALID_ARGUMENT only', () => {
    fc.assert(
      fc.property(groupMessages.filter((items) => items.length > 0), fc.nat(), (items, cut) => {
        const bytes = encodeGroupMessages(items);
        const prefix = bytes.subarray(0, cut % bytes.length);
        try {
          // A cut between two GroupMessages is a shorter valid list.
          expect(items.slice(0, decodeGroupMessages(prefix).length)).toEqual(decodeGroupMessages(prefix));
        } catch (error) {
          expect(error).toBeInstanceOf(RpcError);
        }
      }),
      { numRuns: 300, seed: 24 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
        try {
          decodeGroupMessages(garbage);
        } catch (error) {
          expect(error).toBeInstanceOf(RpcError);
        }
      }),
      { numRuns: 500, seed: 25 },
    );
  });
});

describe('RaftBatch frames written and read by hand (the transport\'s stream)', () => {
  const groupId = fc.oneof(fc.nat(1000), fc.constant(0), fc.maxSafeNat());
  const groupMessages = fc.array(fc.record({ groupId, message }), { maxLength: 5 });
  const nodeId = fc.oneof(fc.nat(1000), fc.maxSafeNat());
  const wireMessages = (items: Array<{ groupId: number; message: Message }>) => items.map((item) => ({ groupId: BigInt(item.groupId), message: messageToWire(item.message) }));
  /** What protobuf-es makes of the same batch, in either form. */
  const reference = (from: number, to: number, items: Array<{ groupId: number; message: Message }>, packed: boolean): Uint8Array =>
    toBinary(
      RaftBatchSchema,
      create(RaftBatchSchema, {
        fromNode: BigInt(from),
        toNode: BigInt(to),
        ...(packed ? { packedMessages: toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages: wireMessages(items) })) } : { messages: wireMessages(items) }),
      }),
    );

  it('encode as a gRPC frame of protobuf-es\'s bytes, packed or not', () => {
    fc.assert(
      fc.property(nodeId, nodeId, groupMessages, fc.boolean(), (from, to, items, packed) => {
        const frame = encodeRaftBatchFrame(from, to, items, packed);
        const batch = reference(from, to, items, packed);
        expect(frame[0]).toBe(0);
        expect(new DataView(frame.buffer, frame.byteOffset).getUint32(1)).toBe(batch.length);
        expect(frame.subarray(5)).toEqual(batch);
      }),
      { numRuns: 300, seed: 31 },
    );
  });

  it('decode either form (and both at once, `messages` first) to the messages sent', () => {
    fc.assert(
      fc.property(nodeId, nodeId, groupMessages, groupMessages, (from, to, listed, packed) => {
        const both = create(RaftBatchSchema, {
          fromNode: BigInt(from),
          toNode: BigInt(to),
          messages: wireMessages(listed),
          packedMessages: toBinary(GroupMessageListSchema, create(GroupMessageListSchema, { messages: wireMessages(packed) })),
        });
        expect(decodeRaftBatch(toBinary(RaftBatchSchema, both))).toEqual({ fromNode: from, toNode: to, messages: [...listed, ...packed] });
        expect(decodeRaftBatch(encodeRaftBatchFrame(from, to, packed, true).subarray(5))).toEqual({ fromNode: from, toNode: to, messages: packed });
        expect(decodeRaftBatch(encodeRaftBatchFrame(from, to, listed, false).subarray(5))).toEqual({ fromNode: from, toNode: to, messages: listed });
      }),
      { numRuns: 300, seed: 32 },
    );
  });

  it('refuse a node id past 2^53, a corrupt list and garbage with INVALID_ARGUMENT only', () => {
    const refusal = (bytes: Uint8Array): string => {
      try {
        decodeRaftBatch(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(RpcError);
        expect((error as RpcError).code).toBe(Status.INVALID_ARGUMENT);
        return (error as RpcError).message;
      }
      throw new Error('accepted');
    };
    expect(refusal(toBinary(RaftBatchSchema, create(RaftBatchSchema, { fromNode: 2n ** 60n, toNode: 1n })))).toBe(`invalid Raft message: from node ${2n ** 60n} exceeds 2^53`);
    expect(refusal(toBinary(RaftBatchSchema, create(RaftBatchSchema, { fromNode: 1n, toNode: 1n, packedMessages: new Uint8Array([0x0a, 9]) })))).toBe('invalid Raft message: truncated frame');
    // The from node as bytes rather than a varint.
    expect(refusal(new Uint8Array([0x0a, 1, 1]))).toBe('invalid Raft message: from node with wire type 2');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
        try {
          decodeRaftBatch(garbage);
        } catch (error) {
          expect(error).toBeInstanceOf(RpcError);
        }
      }),
      { numRuns: 500, seed: 33 },
    );
  });
});
