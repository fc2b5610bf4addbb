/**
 * The node's hand-written codec of the hot PartitionService calls (partition-answers.ts) against
 * protobuf-es: requests decode to what `fromBinary` makes (unknown fields dropped), answers encode to
 * the bytes `toBinary` writes of partition-codec's messages; truncated or corrupt requests are refused
 * with INVALID_ARGUMENT, and a server answering on bytes keeps serving after one.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as model from '@shoal/model';
import {
  EncodedMessage,
  GetManyRequestSchema,
  GetManyResponseSchema,
  GetRequestSchema,
  GetResponseSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  WriteManyRequestSchema,
  WriteManyResponseSchema,
  WriteRequestSchema,
  WriteResponseSchema,
  addService,
  createClient,
  decodeGetManyRequest,
  decodeGetRequest,
  decodeWriteManyRequest,
  decodeWriteRequest,
  encodeGetManyResponse,
  encodeGetResponse,
  encodeWriteManyResponse,
  encodeWriteResponse,
  encodeWriteRequest,
  getManyRequestToWire,
  getManyResultsToWire,
  getRequestToWire,
  getResultToWire,
  listen,
  shutdown,
  writeManyRequestToWire,
  writeManyResultsToWire,
  writeRequestFromWire,
  writeRequestToWire,
  writeResultToWire,
} from '../src/index.ts';
import type { ClientOf } from '../src/index.ts';
import { itDecodesAsProtobufEs, reference, type DecoderCase } from './hand-decoder-properties.ts';
import { callError, get, getResult, readOptions, table, target, uint64, write, writeResult } from './partition-arbitraries.ts';

const RUNS = { numRuns: 100 };

const cases: DecoderCase[] = [
  { name: 'Write', schema: WriteRequestSchema, decode: decodeWriteRequest, messages: fc.tuple(fc.option(target, { nil: undefined }), write(table)).map(([to, request]) => writeRequestToWire(to, request)) },
  {
    name: 'WriteMany',
    schema: WriteManyRequestSchema,
    decode: decodeWriteManyRequest,
    messages: fc.tuple(target, fc.array(write(table), { minLength: 1, maxLength: 4 })).map(([to, writes]) => writeManyRequestToWire(to, writes)),
  },
  { name: 'Get', schema: GetRequestSchema, decode: decodeGetRequest, messages: fc.tuple(fc.option(target, { nil: undefined }), get(table), readOptions).map(([to, request, options]) => getRequestToWire(to, request, options)) },
  {
    name: 'GetMany',
    schema: GetManyRequestSchema,
    decode: decodeGetManyRequest,
    messages: fc.tuple(target, fc.array(get(table), { minLength: 1, maxLength: 5 }), readOptions).map(([to, gets, options]) => getManyRequestToWire(to, gets, options)),
  },
];

describe('hand-decoded partition requests', () => {
  for (const test of cases) itDecodesAsProtobufEs(test);

  it('refuse what protobuf-es refuses: a field cut short, an illegal tag, a varint past 10 bytes', () => {
    const refused = (bytes: number[]): string => {
      try {
        decodeWriteRequest(Uint8Array.from(bytes));
      } catch (error) {
        expect(() => fromBinary(WriteRequestSchema, Uint8Array.from(bytes))).toThrow();
        return (error as RpcError).message;
      }
      throw new Error('decoded');
    };
    expect(refused([0x0a, 0x05, 0x08])).toBe('corrupt shoal.v1.WriteRequest message: premature EOF');
    expect(refused([0x00])).toBe('corrupt shoal.v1.WriteRequest message: illegal tag: field no 0 wire type 0');
    expect(refused([0x27])).toBe('corrupt shoal.v1.WriteRequest message: illegal tag: field no 4 wire type 7');
    expect(refused([0x20, ...Array<number>(10).fill(0x80), 0x01])).toBe('corrupt shoal.v1.WriteRequest message: invalid varint');
    // A known field of another wire type: protobuf-es would read garbage, refused here.
    expect(() => decodeWriteRequest(Uint8Array.from([0x21, 1, 2, 3, 4, 5, 6, 7, 8]))).toThrow('corrupt shoal.v1.WriteRequest message: field 4 has wire type 1');
  });

  it('give partition-codec the messages it converts as before (a key that is not JSON refused the same)', () => {
    fc.assert(
      fc.property(fc.option(target, { nil: undefined }), write(table), (to, request) => {
        const bytes = toBinary(WriteRequestSchema, writeRequestToWire(to ?? { partitionId: 1n, epoch: 1n }, request));
        expect(writeRequestFromWire(decodeWriteRequest(bytes))).toEqual(writeRequestFromWire(fromBinary(WriteRequestSchema, bytes)));
        // From the Buffer grpc-js hands over: the same message, its bytes fields plain Uint8Arrays.
        const fromBuffer = decodeWriteRequest(Buffer.from(bytes));
        expect(fromBuffer).toEqual(reference(WriteRequestSchema, bytes));
        expect(fromBuffer.operations.every((operation) => !Buffer.isBuffer(operation.key))).toBe(true);
      }),
      { numRuns: 100 },
    );
    const notJson = toBinary(WriteRequestSchema, create(WriteRequestSchema, { target: { partitionId: 1n, epoch: 1n }, operations: [{ kind: 1, key: Uint8Array.from([0x7b]), table: { name: 't', hashKey: { name: 'id', type: 1 } } }] }));
    expect(() => writeRequestFromWire(decodeWriteRequest(notJson))).toThrow('invalid partition request: key is not JSON');
  });
});

// ---------------------------------------------------------------------------------------------
// Answers

const same = (actual: Uint8Array, expected: Uint8Array): void => expect(Buffer.from(actual).equals(Buffer.from(expected))).toBe(true);

describe('hand-encoded partition answers', () => {
  it('encode a WriteResponse and a GetResponse as protobuf-es does', () => {
    fc.assert(
      fc.property(writeResult, uint64, getResult, (result, appliedIndex, found) => {
        same(encodeWriteResponse(result, appliedIndex), toBinary(WriteResponseSchema, writeResultToWire(result, appliedIndex)));
        same(encodeGetResponse(found), toBinary(GetResponseSchema, getResultToWire(found)));
      }),
      RUNS,
    );
  });

  it('encode a WriteManyResponse and a GetManyResponse as protobuf-es does, errors with their detail included', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(writeResult, callError), { maxLength: 5 }), uint64, fc.array(fc.oneof(getResult, callError), { maxLength: 5 }), (writes, appliedIndex, gets) => {
        same(encodeWriteManyResponse(writes, appliedIndex), toBinary(WriteManyResponseSchema, writeManyResultsToWire(writes, appliedIndex)));
        same(encodeGetManyResponse(gets), toBinary(GetManyResponseSchema, getManyResultsToWire(gets)));
      }),
      RUNS,
    );
  });

  it('encode large items (lengths of several varint bytes)', () => {
    const big: model.Item = { pk: { S: 'k' }, payload: { S: 'é'.repeat(70_000) } };
    const result: model.PartitionWriteResult = { applied: true, outcomes: [{ status: 'ok', oldItem: big, newItem: big }] };
    same(encodeWriteResponse(result, 1n), toBinary(WriteResponseSchema, writeResultToWire(result, 1n)));
    same(encodeGetManyResponse([{ item: big, size: 140_010 }]), toBinary(GetManyResponseSchema, getManyResultsToWire([{ item: big, size: 140_010 }])));
  });
});

describe('a server answering on bytes', () => {
  const server = new Server();
  let client: ClientOf<typeof PartitionService>;

  beforeAll(async () => {
    addService(server, PartitionService, {}, {
      write: async (bytes) => {
        const { write: request } = writeRequestFromWire(decodeWriteRequest(bytes));
        return encodeWriteResponse({ applied: true, outcomes: request.operations.map(() => ({ status: 'ok' })) }, 7n);
      },
    });
    const port = await listen(server, '127.0.0.1', 0);
    client = createClient(PartitionService, `127.0.0.1:${port}`);
  });

  afterAll(async () => {
    client.close();
    await shutdown(server);
  });

  it('refuses a corrupt request with INVALID_ARGUMENT and keeps serving', async () => {
    const header = Buffer.from([0, 0, 0, 0, 3]);
    const corrupt = new EncodedMessage(WriteRequestSchema, Buffer.concat([header, Buffer.from([0x0a, 0x05, 0x08])]));
    await expect(client.write(corrupt)).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT, message: 'corrupt shoal.v1.WriteRequest message: premature EOF' });
    const request: model.PartitionWrite = { operations: [{ table: { name: 't', tableId: 1, hashKey: { name: 'id', type: 'S' }, indexes: [] }, kind: 'Put', key: { id: { S: 'a' } }, item: { id: { S: 'a' } } }] };
    const answer = await client.write(encodeWriteRequest({ partitionId: 1n, epoch: 1n }, request));
    expect(answer.applied).toBe(true);
    expect(answer.appliedIndex).toBe(7n);
    expect(answer.outcomes.map((outcome) => outcome.outcome.case)).toEqual(['ok']);
    // A method left out of both maps answers UNIMPLEMENTED, as before.
    await expect(client.get({})).rejects.toMatchObject({ code: Status.UNIMPLEMENTED });
  });
});
