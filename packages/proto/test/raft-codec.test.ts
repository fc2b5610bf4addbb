import { fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MESSAGE_TYPES, type ConfChange, type ConfState, type Entry, type Message } from '@shoal/raft';
import {
  ConfChangeSchema,
  MessageSchema,
  RpcError,
  Status,
  confChangeFromWire,
  confChangeToWire,
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
