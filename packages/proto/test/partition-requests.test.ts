/**
 * The hand-written encoders of the router's hot requests (partition-requests.ts) against protobuf-es:
 * byte for byte the same as `toBinary` of partition-codec's messages, for any request, and pinned to
 * the messages' fields so that a field added to node.proto fails here until the encoder writes it.
 */
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ExpressionInputSchema,
  GetManyRequestSchema,
  GetRequestSchema,
  IndexSchemaSchema,
  KeyAttributeSchema,
  PartitionTargetSchema,
  ReadOptionsSchema,
  TableSchemaSchema,
  WriteManyRequestSchema,
  WriteOperationSchema,
  WriteRequestSchema,
  encodeGetManyRequest,
  encodeGetRequest,
  encodeWriteManyCalls,
  encodeWriteManyRequest,
  encodeWriteRequest,
  getManyRequestToWire,
  getRequestToWire,
  writeManyRequestToWire,
  writeRequestToWire,
} from '../src/index.ts';

import { get, readOptions, table, target, write } from './partition-arbitraries.ts';

const RUNS = { numRuns: 300 };

describe('hand-encoded partition requests', () => {
  it('encode a Write as protobuf-es does, byte for byte, framed for gRPC', () => {
    fc.assert(
      fc.property(fc.option(target, { nil: undefined }), write(table), (routedTo, request) => {
        const encoded = encodeWriteRequest(routedTo, request);
        const expected = toBinary(WriteRequestSchema, writeRequestToWire(routedTo, request));
        expect(Buffer.from(encoded.message).equals(Buffer.from(expected))).toBe(true);
        expect(encoded.frame[0]).toBe(0);
        expect(encoded.frame.readUInt32BE(1)).toBe(expected.length);
        expect(encoded.schema).toBe(WriteRequestSchema);
      }),
      RUNS,
    );
  });

  it('encode a WriteMany as protobuf-es does, the writes of one table or of several', () => {
    const writes = fc.oneof(
      fc.array(write(table), { minLength: 1, maxLength: 4 }),
      table.chain((shared) => fc.array(write(fc.constant(shared)), { minLength: 1, maxLength: 6 })),
    );
    fc.assert(
      fc.property(target, writes, (routedTo, batch) => {
        const encoded = encodeWriteManyRequest(routedTo, batch);
        expect(Buffer.from(encoded.message).equals(Buffer.from(toBinary(WriteManyRequestSchema, writeManyRequestToWire(routedTo, batch))))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('cut writes into WriteMany calls of at most maxBytes, in order, each as protobuf-es encodes its slice', () => {
    const writes = table.chain((shared) => fc.array(write(fc.constant(shared)), { minLength: 1, maxLength: 12 }));
    fc.assert(
      fc.property(target, writes, fc.integer({ min: 1, max: 4096 }), (routedTo, batch, maxBytes) => {
        const calls = encodeWriteManyCalls(routedTo, batch, maxBytes);
        expect(calls.reduce((sum, call) => sum + call.count, 0)).toBe(batch.length);
        let start = 0;
        for (const call of calls) {
          const slice = batch.slice(start, start + call.count);
          start += call.count;
          expect(call.count).toBeGreaterThan(0);
          expect(Buffer.from(call.message.message).equals(Buffer.from(toBinary(WriteManyRequestSchema, writeManyRequestToWire(routedTo, slice))))).toBe(true);
          // Within the bound, unless one write alone passes it.
          if (call.count > 1) expect(call.message.message.length).toBeLessThanOrEqual(maxBytes);
        }
        // As few calls as the bound allows: no two neighbours would have fitted in one.
        for (let i = 1, at = 0; i < calls.length; i++) {
          at += calls[i - 1].count;
          const joined = encodeWriteManyRequest(routedTo, batch.slice(at - calls[i - 1].count, at + 1));
          expect(joined.message.length).toBeGreaterThan(maxBytes);
        }
      }),
      { numRuns: 150 },
    );
    const [one] = encodeWriteManyCalls({ partitionId: 1n, epoch: 1n }, [], 100);
    expect(one).toBeUndefined();
  });

  it('encode a Get and a GetMany as protobuf-es does, with their read options', () => {
    fc.assert(
      fc.property(fc.option(target, { nil: undefined }), target, get(table), fc.array(get(table), { minLength: 1, maxLength: 5 }), readOptions, (one, routedTo, request, gets, options) => {
        expect(Buffer.from(encodeGetRequest(one, request, options).message).equals(Buffer.from(toBinary(GetRequestSchema, getRequestToWire(one, request, options))))).toBe(true);
        const many = encodeGetManyRequest(routedTo, gets, options);
        expect(Buffer.from(many.message).equals(Buffer.from(toBinary(GetManyRequestSchema, getManyRequestToWire(routedTo, gets, options))))).toBe(true);
      }),
      RUNS,
    );
  });

  it('cover every field of the messages they write (a new field in node.proto fails here until encoded)', () => {
    const fields = (schema: DescMessage): string[] => schema.fields.map((field) => `${field.number} ${field.name}`);
    expect(fields(WriteManyRequestSchema)).toEqual(['1 target', '2 writes']);
    expect(fields(WriteRequestSchema)).toEqual(['1 target', '3 operations', '4 return_items']);
    expect(fields(WriteOperationSchema)).toEqual(['1 kind', '2 key', '3 item', '4 expressions', '5 table']);
    expect(fields(ExpressionInputSchema)).toEqual(['1 condition', '2 update', '3 names', '4 values']);
    expect(fields(TableSchemaSchema)).toEqual(['1 name', '2 table_id', '3 hash_key', '4 range_key', '5 indexes']);
    expect(fields(IndexSchemaSchema)).toEqual(['1 name', '2 kind', '3 index_id', '4 hash_key', '5 range_key', '6 projection', '7 non_key_attributes']);
    expect(fields(KeyAttributeSchema)).toEqual(['1 name', '2 type']);
    expect(fields(PartitionTargetSchema)).toEqual(['1 partition_id', '2 epoch']);
    expect(fields(GetManyRequestSchema)).toEqual(['1 target', '2 gets', '3 options']);
    expect(fields(GetRequestSchema)).toEqual(['1 target', '2 table', '3 key', '4 options']);
    expect(fields(ReadOptionsSchema)).toEqual(['1 consistent', '2 min_applied_index']);
  });
});
