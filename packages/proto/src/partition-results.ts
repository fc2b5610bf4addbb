/**
 * The router's side of the hot PartitionService answers (WriteResponse, WriteManyResponse,
 * GetResponse, GetManyResponse), decoded by hand from their bytes into the messages protobuf-es's
 * `fromBinary` makes (unknown fields dropped; a CallError's ErrorDetail, rare, still by protobuf-es),
 * so that partition-codec's `*FromWire` check and convert them as before. Reflection cost the router
 * about 1 µs per coalesced put or get (a GetMany of 20 items of 1 KB: 25 µs). Given to the
 * PartitionService client as its answer decoders (createClient's `answerDecoders`). See
 * partition-results.test.ts: equal to protobuf-es for any message, unknown fields and repeated
 * fields included; truncated or corrupt answers refused.
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { Buffer } from 'node:buffer';
import { ErrorDetailSchema, type ErrorDetail } from './gen/shoal/v1/errors_pb.ts';
import type {
  CallError,
  GetManyResponse,
  GetManyResult,
  GetResponse,
  WriteManyResponse,
  WriteManyResult,
  WriteOutcome,
  WriteOutcome_ConditionFailed,
  WriteOutcome_Invalid,
  WriteOutcome_Ok,
  WriteResponse,
} from './gen/shoal/v1/node_pb.ts';
import { CorruptMessage, decoded, delimitedFields, known, readFields, type Reader } from './partition-answers.ts';

const ALL_DELIMITED = delimitedFields(1, 2, 3, 4);
const WRITE_RESPONSE_DELIMITED = delimitedFields(2);
const CALL_ERROR_DELIMITED = delimitedFields(2, 3);
const GET_RESPONSE_DELIMITED = delimitedFields(1);

function readOk(reader: Reader, end: number, into: WriteOutcome_Ok = { $typeName: 'shoal.v1.WriteOutcome.Ok' }): WriteOutcome_Ok {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 2, ALL_DELIMITED)) return false;
    if (tag >>> 3 === 1) into.oldItem = reader.byteField(limit);
    else into.newItem = reader.byteField(limit);
    return true;
  });
  return into;
}

function readConditionFailed(reader: Reader, end: number, into: WriteOutcome_ConditionFailed = { $typeName: 'shoal.v1.WriteOutcome.ConditionFailed' }): WriteOutcome_ConditionFailed {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 1, ALL_DELIMITED)) return false;
    into.item = reader.byteField(limit);
    return true;
  });
  return into;
}

function readInvalid(reader: Reader, end: number, into: WriteOutcome_Invalid = { $typeName: 'shoal.v1.WriteOutcome.Invalid', message: '' }): WriteOutcome_Invalid {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 1, ALL_DELIMITED)) return false;
    into.message = reader.string(limit);
    return true;
  });
  return into;
}

/** A oneof member that is a message, read again into the same case: merged into it, as protobuf-es does. */
function readOutcome(reader: Reader, end: number): WriteOutcome {
  const outcome: WriteOutcome = { $typeName: 'shoal.v1.WriteOutcome', outcome: { case: undefined } };
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 4, ALL_DELIMITED)) return false;
    const at = reader.end(limit);
    const current = outcome.outcome;
    switch (tag >>> 3) {
      case 1:
        outcome.outcome = { case: 'ok', value: readOk(reader, at, current.case === 'ok' ? current.value : undefined) };
        break;
      case 2:
        outcome.outcome = { case: 'conditionFailed', value: readConditionFailed(reader, at, current.case === 'conditionFailed' ? current.value : undefined) };
        break;
      case 3:
        outcome.outcome = { case: 'invalid', value: readInvalid(reader, at, current.case === 'invalid' ? current.value : undefined) };
        break;
      default:
        // TransactionConflict has no fields: whatever it holds is unknown.
        readFields(reader, at, () => false);
        outcome.outcome = { case: 'transactionConflict', value: current.case === 'transactionConflict' ? current.value : { $typeName: 'shoal.v1.WriteOutcome.TransactionConflict' } };
    }
    return true;
  });
  return outcome;
}

function readWriteResponse(reader: Reader, end: number, into: WriteResponse = { $typeName: 'shoal.v1.WriteResponse', applied: false, outcomes: [], appliedIndex: 0n }): WriteResponse {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 3, WRITE_RESPONSE_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        into.applied = reader.bool();
        break;
      case 2:
        into.outcomes.push(readOutcome(reader, reader.end(limit)));
        break;
      default:
        into.appliedIndex = reader.uint64();
    }
    return true;
  });
  return into;
}

/**
 * A CallError; its ErrorDetail (a failure of one request of a coalesced call: rare) decoded by
 * protobuf-es, from every occurrence of the field together (protobuf merges a message field given
 * twice exactly as it reads the two encodings one after the other).
 */
function readCallError(reader: Reader, end: number, into: CallError = { $typeName: 'shoal.v1.CallError', code: 0, message: '' }): CallError {
  const details: Uint8Array[] = [];
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 3, CALL_ERROR_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        into.code = reader.uint32();
        break;
      case 2:
        into.message = reader.string(limit);
        break;
      default:
        details.push(reader.byteField(limit));
    }
    return true;
  });
  if (details.length > 0) into.detail = mergedDetail(into.detail, details);
  return into;
}

/** The ErrorDetail of `encodings` merged into `current` (a CallError read again into the same case): re-encoded first, then read on. */
function mergedDetail(current: ErrorDetail | undefined, encodings: Uint8Array[]): ErrorDetail {
  const bytes = Buffer.concat(current === undefined ? encodings : [toBinary(ErrorDetailSchema, current), ...encodings]);
  try {
    return fromBinary(ErrorDetailSchema, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new CorruptMessage(`error detail: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function readGetResponse(reader: Reader, end: number, into: GetResponse = { $typeName: 'shoal.v1.GetResponse', size: 0 }): GetResponse {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 2, GET_RESPONSE_DELIMITED)) return false;
    if (tag >>> 3 === 1) into.item = reader.byteField(limit);
    else into.size = reader.uint32();
    return true;
  });
  return into;
}

/** The results of a coalesced call: each a oneof of its response (`readResponse`) or its CallError. */
function readResults<Response, Result extends { result: { case: 'response'; value: Response } | { case: 'error'; value: CallError } | { case: undefined; value?: undefined } }>(
  reader: Reader,
  end: number,
  typeName: Result extends { $typeName: infer Name } ? Name : never,
  readResponse: (reader: Reader, end: number, into?: Response) => Response,
): Result[] {
  const results: Result[] = [];
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 1, ALL_DELIMITED)) return false;
    const result = { $typeName: typeName, result: { case: undefined } } as unknown as Result;
    readFields(reader, reader.end(limit), (inner, innerLimit) => {
      if (!known(inner, 2, ALL_DELIMITED)) return false;
      const at = reader.end(innerLimit);
      const current = result.result;
      if (inner >>> 3 === 1) result.result = { case: 'response', value: readResponse(reader, at, current.case === 'response' ? current.value : undefined) };
      else result.result = { case: 'error', value: readCallError(reader, at, current.case === 'error' ? current.value : undefined) };
      return true;
    });
    results.push(result);
    return true;
  });
  return results;
}

/** WriteResponse, as `fromBinary` decodes it (unknown fields dropped). */
export function decodeWriteResponse(bytes: Uint8Array): WriteResponse {
  return decoded('shoal.v1.WriteResponse', bytes, (reader, end) => readWriteResponse(reader, end));
}

export function decodeWriteManyResponse(bytes: Uint8Array): WriteManyResponse {
  return decoded('shoal.v1.WriteManyResponse', bytes, (reader, end) => ({
    $typeName: 'shoal.v1.WriteManyResponse',
    results: readResults<WriteResponse, WriteManyResult>(reader, end, 'shoal.v1.WriteManyResult', readWriteResponse),
  }));
}

export function decodeGetResponse(bytes: Uint8Array): GetResponse {
  return decoded('shoal.v1.GetResponse', bytes, (reader, end) => readGetResponse(reader, end));
}

export function decodeGetManyResponse(bytes: Uint8Array): GetManyResponse {
  return decoded('shoal.v1.GetManyResponse', bytes, (reader, end) => ({
    $typeName: 'shoal.v1.GetManyResponse',
    results: readResults<GetResponse, GetManyResult>(reader, end, 'shoal.v1.GetManyResult', readGetResponse),
  }));
}
