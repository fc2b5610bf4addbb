/**
 * The properties every hand-written decoder of a hot PartitionService message (partition-answers.ts
 * for requests, partition-results.ts for answers) shares with protobuf-es's `fromBinary`, as tests.
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { RpcError, Status } from '../src/index.ts';
import { unknownFields, withUnknown, type Unknown } from './partition-arbitraries.ts';

export interface DecoderCase {
  name: string;
  schema: DescMessage;
  decode: (bytes: Uint8Array) => unknown;
  /** A random message of this kind, as protobuf-es builds it. */
  messages: fc.Arbitrary<object>;
}

const RUNS = { numRuns: 100 };

/** Unknown fields dropped everywhere (protobuf-es keeps them in `$unknown`, and so does a CallError's detail the answer decoders read with it). */
function withoutUnknown<T>(message: T): T {
  if (message instanceof Uint8Array || message === null || typeof message !== 'object') return message;
  if (Array.isArray(message)) return message.map(withoutUnknown) as T;
  return Object.fromEntries(Object.entries(message).filter(([key]) => key !== '$unknown').map(([key, value]) => [key, withoutUnknown(value)])) as T;
}

/** What protobuf-es decodes, unknown fields dropped as the hand-written decoders drop them. */
export function reference<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  return withoutUnknown(fromBinary(schema, bytes));
}

/** Bytes one after the other, as a plain Uint8Array (protobuf-es's bytes fields are views of its input: Buffers from a Buffer). */
export const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

const decodeOf = (test: DecoderCase, bytes: Uint8Array): unknown => withoutUnknown(test.decode(bytes));

/** The decoder's answer to corrupt bytes: a message equal to protobuf-es's, or INVALID_ARGUMENT naming the type. */
function expectDecodedOrRefused(test: DecoderCase, bytes: Uint8Array): void {
  let decoded: unknown;
  try {
    decoded = decodeOf(test, bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(Status.INVALID_ARGUMENT);
    expect((error as RpcError).message).toMatch(new RegExp(`^corrupt ${test.schema.typeName} message: `));
    return;
  }
  // Accepted: then protobuf-es accepts it too, and reads the same message.
  expect(decoded).toEqual(reference(test.schema, bytes));
}

/**
 * The tests of one decoder: any message decodes as protobuf-es decodes it; a message given twice reads
 * as protobuf-es merges it (repeated fields appended, oneof members and details merged); unknown fields
 * are skipped, in the messages inside it too; truncated or corrupted bytes are refused with
 * INVALID_ARGUMENT or read as protobuf-es reads them.
 */
export function itDecodesAsProtobufEs(test: DecoderCase): void {
  it(`decode a ${test.name} as protobuf-es does`, () => {
    fc.assert(
      fc.property(test.messages, (message) => {
        const bytes = toBinary(test.schema, message as MessageShape<DescMessage>);
        expect(decodeOf(test, bytes)).toEqual(reference(test.schema, bytes));
      }),
      RUNS,
    );
  });

  it(`read a ${test.name} given twice as one, as protobuf-es merges it`, () => {
    fc.assert(
      fc.property(test.messages, test.messages, (first, second) => {
        const bytes = concat(toBinary(test.schema, first as MessageShape<DescMessage>), toBinary(test.schema, second as MessageShape<DescMessage>));
        expect(decodeOf(test, bytes)).toEqual(reference(test.schema, bytes));
      }),
      RUNS,
    );
  });

  it(`skip unknown fields of a ${test.name} and of the messages inside it`, () => {
    fc.assert(
      fc.property(test.messages, fc.infiniteStream(unknownFields), (message, stream) => {
        const unknown = stream[Symbol.iterator]();
        withUnknown(message, () => unknown.next().value as Unknown[]);
        const bytes = toBinary(test.schema, message as MessageShape<DescMessage>);
        expect(decodeOf(test, bytes)).toEqual(reference(test.schema, bytes));
      }),
      { numRuns: 50 },
    );
  });

  it(`refuse a truncated or corrupted ${test.name} with INVALID_ARGUMENT, or read it as protobuf-es does`, () => {
    fc.assert(
      fc.property(test.messages, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }), (message, cut, flips) => {
        const bytes = toBinary(test.schema, message as MessageShape<DescMessage>);
        if (bytes.length === 0) return;
        expectDecodedOrRefused(test, bytes.subarray(0, cut % bytes.length));
        const corrupted = Uint8Array.from(bytes);
        for (const [at, value] of flips) corrupted[at % corrupted.length] = value;
        expectDecodedOrRefused(test, corrupted);
      }),
      RUNS,
    );
  });
}
