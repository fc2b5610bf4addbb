/**
 * The router's hand-written decoders of the hot PartitionService answers (partition-results.ts)
 * against protobuf-es: any answer decodes to what `fromBinary` makes (unknown fields dropped),
 * fields given twice (a oneof member merged, a CallError's detail merged) included; truncated or
 * corrupt answers are refused with INVALID_ARGUMENT or read as protobuf-es reads them; and a
 * client given them as answer decoders answers with what they decode.
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorDetailSchema,
  GetManyResponseSchema,
  GetResponseSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  WriteManyResponseSchema,
  WriteResponseSchema,
  addService,
  createClient,
  decodeGetManyResponse,
  decodeGetResponse,
  decodeWriteManyResponse,
  decodeWriteResponse,
  encodeGetManyResponse,
  encodeWriteManyResponse,
  getManyResultsFromWire,
  getManyResultsToWire,
  getResultToWire,
  listen,
  shutdown,
  writeManyResultsFromWire,
  writeManyResultsToWire,
  writeResultToWire,
} from '../src/index.ts';
import type { ClientOf } from '../src/index.ts';
import { concat, itDecodesAsProtobufEs, reference, type DecoderCase } from './hand-decoder-properties.ts';
import { callError, getResult, uint64, writeResult } from './partition-arbitraries.ts';

const cases: DecoderCase[] = [
  { name: 'WriteResponse', schema: WriteResponseSchema, decode: decodeWriteResponse, messages: fc.tuple(writeResult, uint64).map(([result, index]) => writeResultToWire(result, index)) },
  {
    name: 'WriteManyResponse',
    schema: WriteManyResponseSchema,
    decode: decodeWriteManyResponse,
    messages: fc.tuple(fc.array(fc.oneof(writeResult, callError), { maxLength: 5 }), uint64).map(([results, index]) => writeManyResultsToWire(results, index)),
  },
  { name: 'GetResponse', schema: GetResponseSchema, decode: decodeGetResponse, messages: getResult.map(getResultToWire) },
  { name: 'GetManyResponse', schema: GetManyResponseSchema, decode: decodeGetManyResponse, messages: fc.array(fc.oneof(getResult, callError), { maxLength: 5 }).map(getManyResultsToWire) },
];

describe('hand-decoded partition answers', () => {
  for (const test of cases) itDecodesAsProtobufEs(test);

  it('merge a CallError given twice in one result: its message replaced, its detail merged', () => {
    const first = RpcError.withDetail(Status.FAILED_PRECONDITION, 'first', ErrorDetailSchema, { kind: { case: 'replicaBehind', value: { partitionId: 4n, appliedIndex: 3n, minAppliedIndex: 9n } } });
    const second = RpcError.withDetail(Status.FAILED_PRECONDITION, 'second', ErrorDetailSchema, { kind: { case: 'replicaBehind', value: { partitionId: 4n, appliedIndex: 5n, minAppliedIndex: 0n } } });
    // Two encodings of a GetManyResponse with one error result each, read as one: two results.
    const bytes = concat(encodeGetManyResponse([first]), encodeGetManyResponse([second]));
    expect(decodeGetManyResponse(bytes)).toEqual(reference(GetManyResponseSchema, bytes));
    // Within one result: the bytes of the second error appended inside the first result's field.
    const one = toBinary(GetManyResponseSchema, getManyResultsToWire([first]));
    const inner = toBinary(GetManyResponseSchema, getManyResultsToWire([second])).subarray(2);
    const merged = concat(Uint8Array.from([0x0a, one[1]! + inner.length]), one.subarray(2), inner);
    const decoded = decodeGetManyResponse(merged);
    expect(decoded).toEqual(reference(GetManyResponseSchema, merged));
    const [result] = getManyResultsFromWire(decoded, 1);
    expect(result).toBeInstanceOf(RpcError);
    expect((result as RpcError).message).toBe('second');
    expect((result as RpcError).detail(ErrorDetailSchema)?.kind).toEqual({ case: 'replicaBehind', value: expect.objectContaining({ partitionId: 4n, appliedIndex: 5n, minAppliedIndex: 9n }) });
  });

  it('refuse a known field of another wire type (protobuf-es would read garbage from it)', () => {
    expect(() => decodeWriteResponse(Uint8Array.from([0x0a, 0x00]))).toThrow('corrupt shoal.v1.WriteResponse message: field 1 has wire type 2');
    expect(() => decodeGetResponse(Uint8Array.from([0x10, 0x01, 0x08, 0x01]))).toThrow('corrupt shoal.v1.GetResponse message: field 1 has wire type 0');
  });

  it('give partition-codec the messages it converts as before', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(writeResult, callError), { maxLength: 5 }), uint64, fc.array(fc.oneof(getResult, callError), { maxLength: 5 }), (writes, index, gets) => {
        const writeBytes = encodeWriteManyResponse(writes, index);
        expect(writeManyResultsFromWire(decodeWriteManyResponse(writeBytes), writes.length)).toEqual(writeManyResultsFromWire(fromBinary(WriteManyResponseSchema, writeBytes), writes.length));
        const getBytes = encodeGetManyResponse(gets);
        expect(getManyResultsFromWire(decodeGetManyResponse(getBytes), gets.length)).toEqual(getManyResultsFromWire(fromBinary(GetManyResponseSchema, getBytes), gets.length));
      }),
      { numRuns: 50 },
    );
  });
});

describe('a client given answer decoders', () => {
  const server = new Server();
  let client: ClientOf<typeof PartitionService>;
  const decodedBy: string[] = [];

  beforeAll(async () => {
    addService(server, PartitionService, {}, {
      writeMany: async () => encodeWriteManyResponse([{ applied: true, outcomes: [{ status: 'ok' }] }, new RpcError(Status.RESOURCE_EXHAUSTED, 'throttled')], 12n),
    });
    const port = await listen(server, '127.0.0.1', 0);
    client = createClient(PartitionService, `127.0.0.1:${port}`, { directUnary: true }, {
      writeMany: (message) => {
        decodedBy.push('hand');
        return decodeWriteManyResponse(message);
      },
    });
  });

  afterAll(async () => {
    client.close();
    await shutdown(server);
  });

  it('answers what the decoder made of the bytes, which protobuf-es reads the same', async () => {
    const answer = await client.writeMany({});
    expect(decodedBy).toEqual(['hand']);
    const results = writeManyResultsFromWire(answer, 2);
    expect(results[0]).toEqual({ result: { applied: true, outcomes: [{ status: 'ok' }] }, appliedIndex: 12n });
    expect(results[1]).toMatchObject({ code: Status.RESOURCE_EXHAUSTED, message: 'throttled' });
  });
});
