/**
 * The node's side of the hot PartitionService calls (Write, WriteMany, Get, GetMany), by hand: the
 * requests decoded from their bytes into the messages protobuf-es's `fromBinary` makes (so that
 * partition-codec's `*FromWire` check and convert them as before), the answers encoded from the
 * model's results straight into their bytes, as `toBinary` of partition-codec's `*ToWire` messages
 * would be. Reflection cost a leader about 4% of its CPU on these (more for the answers, which
 * `create` built first). Served through grpc.ts's encoded handlers (`addService`'s last argument).
 * See partition-answers.test.ts: equal to protobuf-es for any message, unknown fields skipped,
 * truncated or corrupt input refused with INVALID_ARGUMENT.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { toBinary } from '@bufbuild/protobuf';
import type * as model from '@shoal/model';
import { ErrorDetailSchema } from './gen/shoal/v1/errors_pb.ts';
import type {
  ExpressionInput,
  GetManyRequest,
  GetRequest,
  IndexKind,
  IndexSchema,
  KeyAttribute,
  KeyType,
  PartitionTarget,
  ProjectionType,
  ReadOptions,
  TableSchema,
  WriteKind,
  WriteManyRequest,
  WriteOperation,
  WriteRequest,
} from './gen/shoal/v1/node_pb.ts';
import { FRAME_HEADER_BYTES, RpcError, Status } from './grpc.ts';
import type { GetResult } from './partition-codec.ts';
import { FrameWriter, delimitedSize, stringFieldSize, uint32FieldSize, uint64FieldSize, utf8Length } from './partition-requests.ts';

// Wire types.
const VARINT = 0;
const BIT64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const BIT32 = 5;
/** Nested groups skipped at most this deep (protobuf-es's limit). */
const GROUP_DEPTH = 100;

/** Why a message does not decode; made an INVALID_ARGUMENT naming the message by `decoded`. */
export class CorruptMessage extends Error {}

const EMPTY_BYTES = new Uint8Array(0);

/**
 * Reads protobuf fields from one message: bytes fields are views into it, as protobuf-es makes them.
 * Shared with the router's decoders of the answers (partition-results.ts).
 */
export class Reader {
  readonly bytes: Uint8Array;
  /** The same bytes, for reading strings. */
  readonly #text: Buffer;
  pos = 0;

  constructor(message: Uint8Array) {
    // Bytes fields are plain Uint8Arrays, as grpc.ts's decode makes them, even from the Buffer grpc-js hands over.
    this.bytes = Buffer.isBuffer(message) ? new Uint8Array(message.buffer, message.byteOffset, message.byteLength) : message;
    this.#text = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  }

  #byte(): number {
    const byte = this.bytes[this.pos++];
    if (byte === undefined) throw new CorruptMessage('premature EOF');
    return byte;
  }

  /** A varint's low 32 bits, unsigned (uint32, lengths, tags); `| 0` makes it an int32 (enums). */
  uint32(): number {
    let byte = this.#byte();
    if (byte < 0x80) return byte;
    let value = byte & 0x7f;
    for (let shift = 7; shift < 70; shift += 7) {
      byte = this.#byte();
      // Bits past the 32nd are dropped (`<<` keeps the low 32).
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    throw new CorruptMessage('invalid varint');
  }

  /** A varint's low 64 bits. */
  uint64(): bigint {
    let byte = this.#byte();
    if (byte < 0x80) return BigInt(byte);
    // Seven bytes (49 bits) add up exactly as a number; a longer varint goes on as a bigint.
    let value = byte & 0x7f;
    let scale = 0x80;
    for (let read = 1; read < 7; read++) {
      byte = this.#byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return BigInt(value);
      scale *= 0x80;
    }
    let big = BigInt(value);
    for (let shift = 49n; shift < 70n; shift += 7n) {
      byte = this.#byte();
      big |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asUintN(64, big);
    }
    throw new CorruptMessage('invalid varint');
  }

  bool(): boolean {
    const byte = this.bytes[this.pos];
    if (byte !== undefined && byte < 0x80) {
      this.pos++;
      return byte !== 0;
    }
    return this.uint64() !== 0n;
  }

  /** The end of the length-delimited field starting here. */
  end(limit: number): number {
    const length = this.uint32();
    const end = this.pos + length;
    if (end > limit) throw new CorruptMessage('premature EOF');
    return end;
  }

  /** A string field; invalid UTF-8 is refused, as protobuf-es refuses it in proto3. */
  string(limit: number): string {
    const end = this.end(limit);
    const start = this.pos;
    this.pos = end;
    const bytes = this.bytes;
    for (let at = start; at < end; at++) {
      if ((bytes[at] as number) < 0x80) continue;
      if (!isUtf8(bytes.subarray(start, end))) throw new CorruptMessage('invalid UTF-8 in a string field');
      return this.#text.toString('utf8', start, end);
    }
    return this.#text.toString('latin1', start, end);
  }

  byteField(limit: number): Uint8Array {
    const end = this.end(limit);
    const start = this.pos;
    this.pos = end;
    return this.bytes.subarray(start, end);
  }

  /** A tag: field number × 8 + wire type; refused as protobuf-es refuses it. */
  tag(): number {
    const start = this.pos;
    const tag = this.uint32();
    if (this.pos - start > 5 || (this.pos - start === 5 && (this.bytes[this.pos - 1] as number) > 0x0f)) throw new CorruptMessage('illegal tag: varint overflows uint32');
    if (tag >>> 3 === 0 || (tag & 7) > 5) throw new CorruptMessage(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
    return tag;
  }

  /** Skips a field this decoder does not know. */
  skip(tag: number, limit: number, depth = GROUP_DEPTH): void {
    switch (tag & 7) {
      case VARINT:
        this.uint64();
        break;
      case BIT64:
        this.pos += 8;
        break;
      case LENGTH_DELIMITED:
        this.pos = this.end(limit);
        break;
      case START_GROUP:
        if (depth <= 0) throw new CorruptMessage('maximum recursion depth reached');
        for (;;) {
          const inner = this.tag();
          if ((inner & 7) === END_GROUP) {
            if (inner >>> 3 !== tag >>> 3) throw new CorruptMessage('invalid end group tag');
            break;
          }
          this.skip(inner, limit, depth - 1);
        }
        break;
      case BIT32:
        this.pos += 4;
        break;
      default:
        throw new CorruptMessage(`cant skip wire type ${tag & 7}`);
    }
    if (this.pos > limit) throw new CorruptMessage('premature EOF');
  }

  /** After a message's fields: they must end where its length said. */
  finish(end: number): void {
    if (this.pos !== end) throw new CorruptMessage('a field overruns its message');
  }
}

/** A known field of the wrong wire type: protobuf-es would read garbage from it; refused here. */
function wrongType(tag: number): CorruptMessage {
  return new CorruptMessage(`field ${tag >>> 3} has wire type ${tag & 7}`);
}

/** The set of a message's length-delimited fields, as bits: bit n for field n (the others are varints). */
export const delimitedFields = (...fields: number[]): number => fields.reduce((bits, field) => bits | (1 << field), 0);
const ALL_DELIMITED = delimitedFields(1, 2, 3, 4, 5, 6, 7);
const KEY_ATTRIBUTE_DELIMITED = delimitedFields(1);
const INDEX_DELIMITED = delimitedFields(1, 4, 5, 7);
const TABLE_DELIMITED = delimitedFields(1, 3, 4, 5);
const OPERATION_DELIMITED = delimitedFields(2, 3, 4, 5);
const WRITE_DELIMITED = delimitedFields(1, 3);

/**
 * Reads the fields up to `end`: `field` handles a known field (by number, the tag checked against
 * its wire type) and answers false for an unknown one, which is skipped.
 */
export function readFields(reader: Reader, end: number, field: (tag: number, end: number) => boolean): void {
  while (reader.pos < end) {
    const tag = reader.tag();
    if (!field(tag, end)) reader.skip(tag, end);
  }
  reader.finish(end);
}

/** Checks a known field's wire type (`delimited`: bits of the length-delimited fields); false for an unknown field number. */
export function known(tag: number, fields: number, delimited: number): boolean {
  const field = tag >>> 3;
  if (field > fields) return false;
  if ((tag & 7) !== ((delimited >>> field) & 1 ? LENGTH_DELIMITED : VARINT)) throw wrongType(tag);
  return true;
}

function readTarget(reader: Reader, end: number, into: PartitionTarget = { $typeName: 'shoal.v1.PartitionTarget', partitionId: 0n, epoch: 0n }): PartitionTarget {
  readFields(reader, end, (tag) => {
    if (!known(tag, 2, 0)) return false;
    if (tag >>> 3 === 1) into.partitionId = reader.uint64();
    else into.epoch = reader.uint64();
    return true;
  });
  return into;
}

function readKeyAttribute(reader: Reader, end: number, into: KeyAttribute = { $typeName: 'shoal.v1.KeyAttribute', name: '', type: 0 }): KeyAttribute {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 2, KEY_ATTRIBUTE_DELIMITED)) return false;
    if (tag >>> 3 === 1) into.name = reader.string(limit);
    else into.type = (reader.uint32() | 0) as KeyType;
    return true;
  });
  return into;
}

function readIndex(reader: Reader, end: number): IndexSchema {
  const index: IndexSchema = { $typeName: 'shoal.v1.IndexSchema', name: '', kind: 0, indexId: 0, projection: 0, nonKeyAttributes: [] };
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 7, INDEX_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        index.name = reader.string(limit);
        break;
      case 2:
        index.kind = (reader.uint32() | 0) as IndexKind;
        break;
      case 3:
        index.indexId = reader.uint32();
        break;
      case 4:
        index.hashKey = readKeyAttribute(reader, reader.end(limit), index.hashKey);
        break;
      case 5:
        index.rangeKey = readKeyAttribute(reader, reader.end(limit), index.rangeKey);
        break;
      case 6:
        index.projection = (reader.uint32() | 0) as ProjectionType;
        break;
      default:
        index.nonKeyAttributes.push(reader.string(limit));
    }
    return true;
  });
  return index;
}

function readTable(reader: Reader, end: number, into: TableSchema = { $typeName: 'shoal.v1.TableSchema', name: '', tableId: 0, indexes: [] }): TableSchema {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 5, TABLE_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        into.name = reader.string(limit);
        break;
      case 2:
        into.tableId = reader.uint32();
        break;
      case 3:
        into.hashKey = readKeyAttribute(reader, reader.end(limit), into.hashKey);
        break;
      case 4:
        into.rangeKey = readKeyAttribute(reader, reader.end(limit), into.rangeKey);
        break;
      default:
        into.indexes.push(readIndex(reader, reader.end(limit)));
    }
    return true;
  });
  return into;
}

function readNameEntry(reader: Reader, end: number, names: Record<string, string>): void {
  let key = '';
  let value = '';
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 2, ALL_DELIMITED)) return false;
    if (tag >>> 3 === 1) key = reader.string(limit);
    else value = reader.string(limit);
    return true;
  });
  names[key] = value;
}

function readExpressions(reader: Reader, end: number, into: ExpressionInput = { $typeName: 'shoal.v1.ExpressionInput', names: {}, values: EMPTY_BYTES }): ExpressionInput {
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 4, ALL_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        into.condition = reader.string(limit);
        break;
      case 2:
        into.update = reader.string(limit);
        break;
      case 3:
        readNameEntry(reader, reader.end(limit), into.names);
        break;
      default:
        into.values = reader.byteField(limit);
    }
    return true;
  });
  return into;
}

function readOperation(reader: Reader, end: number): WriteOperation {
  const operation: WriteOperation = { $typeName: 'shoal.v1.WriteOperation', kind: 0, key: EMPTY_BYTES };
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 5, OPERATION_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        operation.kind = (reader.uint32() | 0) as WriteKind;
        break;
      case 2:
        operation.key = reader.byteField(limit);
        break;
      case 3:
        operation.item = reader.byteField(limit);
        break;
      case 4:
        operation.expressions = readExpressions(reader, reader.end(limit), operation.expressions);
        break;
      default:
        operation.table = readTable(reader, reader.end(limit), operation.table);
    }
    return true;
  });
  return operation;
}

function readWrite(reader: Reader, end: number): WriteRequest {
  const write: WriteRequest = { $typeName: 'shoal.v1.WriteRequest', operations: [], returnItems: false };
  readFields(reader, end, (tag, limit) => {
    // Field 2 is reserved: skipped as unknown.
    if (tag >>> 3 === 2 || !known(tag, 4, WRITE_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        write.target = readTarget(reader, reader.end(limit), write.target);
        break;
      case 3:
        write.operations.push(readOperation(reader, reader.end(limit)));
        break;
      default:
        write.returnItems = reader.bool();
    }
    return true;
  });
  return write;
}

function readReadOptions(reader: Reader, end: number, into: ReadOptions = { $typeName: 'shoal.v1.ReadOptions', consistent: false, minAppliedIndex: 0n }): ReadOptions {
  readFields(reader, end, (tag) => {
    if (!known(tag, 2, 0)) return false;
    if (tag >>> 3 === 1) into.consistent = reader.bool();
    else into.minAppliedIndex = reader.uint64();
    return true;
  });
  return into;
}

function readGet(reader: Reader, end: number): GetRequest {
  const get: GetRequest = { $typeName: 'shoal.v1.GetRequest', key: EMPTY_BYTES };
  readFields(reader, end, (tag, limit) => {
    if (!known(tag, 4, ALL_DELIMITED)) return false;
    switch (tag >>> 3) {
      case 1:
        get.target = readTarget(reader, reader.end(limit), get.target);
        break;
      case 2:
        get.table = readTable(reader, reader.end(limit), get.table);
        break;
      case 3:
        get.key = reader.byteField(limit);
        break;
      default:
        get.options = readReadOptions(reader, reader.end(limit), get.options);
    }
    return true;
  });
  return get;
}

/** The message of `bytes`, or INVALID_ARGUMENT as grpc.ts answers a frame protobuf-es cannot decode. */
export function decoded<T>(typeName: string, bytes: Uint8Array, read: (reader: Reader, end: number) => T): T {
  try {
    return read(new Reader(bytes), bytes.length);
  } catch (error) {
    if (!(error instanceof CorruptMessage)) throw error;
    throw new RpcError(Status.INVALID_ARGUMENT, `corrupt ${typeName} message: ${error.message}`);
  }
}

/** WriteRequest, as `fromBinary` decodes it (unknown fields dropped). */
export function decodeWriteRequest(bytes: Uint8Array): WriteRequest {
  return decoded('shoal.v1.WriteRequest', bytes, readWrite);
}

export function decodeWriteManyRequest(bytes: Uint8Array): WriteManyRequest {
  return decoded('shoal.v1.WriteManyRequest', bytes, (reader, end) => {
    const request: WriteManyRequest = { $typeName: 'shoal.v1.WriteManyRequest', writes: [] };
    readFields(reader, end, (tag, limit) => {
      if (!known(tag, 2, ALL_DELIMITED)) return false;
      if (tag >>> 3 === 1) request.target = readTarget(reader, reader.end(limit), request.target);
      else request.writes.push(readWrite(reader, reader.end(limit)));
      return true;
    });
    return request;
  });
}

export function decodeGetRequest(bytes: Uint8Array): GetRequest {
  return decoded('shoal.v1.GetRequest', bytes, readGet);
}

export function decodeGetManyRequest(bytes: Uint8Array): GetManyRequest {
  return decoded('shoal.v1.GetManyRequest', bytes, (reader, end) => {
    const request: GetManyRequest = { $typeName: 'shoal.v1.GetManyRequest', gets: [] };
    readFields(reader, end, (tag, limit) => {
      if (!known(tag, 3, ALL_DELIMITED)) return false;
      switch (tag >>> 3) {
        case 1:
          request.target = readTarget(reader, reader.end(limit), request.target);
          break;
        case 2:
          request.gets.push(readGet(reader, reader.end(limit)));
          break;
        default:
          request.options = readReadOptions(reader, reader.end(limit), request.options);
      }
      return true;
    });
    return request;
  });
}

// ---------------------------------------------------------------------------------------------
// Answers

/** A JSON text and its UTF-8 length. */
interface Text {
  text: string;
  length: number;
}

const textOf = (text: string): Text => ({ text, length: utf8Length(text) });
const itemText = (item: model.Item | undefined): Text | undefined => (item === undefined ? undefined : textOf(JSON.stringify(item)));

/** A WriteOutcome: the oneof case's field and the texts it carries. */
interface OutcomeSize {
  field: number;
  first: Text | undefined;
  second: Text | undefined;
  /** The case's message size. */
  inner: number;
}

function outcomeSize(outcome: model.WriteOutcome): OutcomeSize {
  switch (outcome.status) {
    case 'ok': {
      const first = itemText(outcome.oldItem);
      const second = itemText(outcome.newItem);
      return { field: 1, first, second, inner: (first === undefined ? 0 : delimitedSize(first.length)) + (second === undefined ? 0 : delimitedSize(second.length)) };
    }
    case 'conditionFailed': {
      const first = itemText(outcome.item);
      return { field: 2, first, second: undefined, inner: first === undefined ? 0 : delimitedSize(first.length) };
    }
    case 'invalid': {
      const first = textOf(outcome.message);
      return { field: 3, first, second: undefined, inner: stringFieldSize(first.length) };
    }
    case 'transactionConflict':
      return { field: 4, first: undefined, second: undefined, inner: 0 };
  }
}

interface WriteResponseSize {
  result: model.PartitionWriteResult;
  outcomes: OutcomeSize[];
  size: number;
}

function writeResponseSize(result: model.PartitionWriteResult, appliedIndex: bigint): WriteResponseSize {
  const outcomes = result.outcomes.map(outcomeSize);
  const size = (result.applied ? 2 : 0) + outcomes.reduce((sum, outcome) => sum + delimitedSize(delimitedSize(outcome.inner)), 0) + uint64FieldSize(appliedIndex);
  return { result, outcomes, size };
}

function writeWriteResponse(out: FrameWriter, size: WriteResponseSize, appliedIndex: bigint): void {
  out.bool(1, size.result.applied);
  for (const outcome of size.outcomes) {
    out.delimited(2, delimitedSize(outcome.inner));
    out.delimited(outcome.field, outcome.inner);
    // Items (ok, conditionFailed) are optional bytes, written when present; Invalid's message is a plain string.
    if (outcome.first !== undefined) out.text(1, outcome.first.text, outcome.first.length, outcome.field !== 3);
    if (outcome.second !== undefined) out.text(2, outcome.second.text, outcome.second.length, true);
  }
  out.uint64(3, appliedIndex);
}

/** The message of a frame written by `out` (grpc-js frames the answer itself). */
const message = (out: FrameWriter): Buffer => out.finish().subarray(FRAME_HEADER_BYTES);

/** WriteResponse, as `toBinary` of writeResultToWire's. */
export function encodeWriteResponse(result: model.PartitionWriteResult, appliedIndex = 0n): Buffer {
  const size = writeResponseSize(result, appliedIndex);
  const out = new FrameWriter(size.size);
  writeWriteResponse(out, size, appliedIndex);
  return message(out);
}

interface GetResponseSize {
  item: Text | undefined;
  itemSize: number;
  size: number;
}

function getResponseSize(result: GetResult): GetResponseSize {
  if (result === undefined) return { item: undefined, itemSize: 0, size: 0 };
  // The stored JSON text when the store has it, as getResultToWire sends it.
  const item = textOf(result.json ?? JSON.stringify(result.item));
  return { item, itemSize: result.size, size: delimitedSize(item.length) + uint32FieldSize(result.size) };
}

function writeGetResponse(out: FrameWriter, size: GetResponseSize): void {
  if (size.item !== undefined) out.text(1, size.item.text, size.item.length, true);
  out.uint32(2, size.itemSize);
}

/** GetResponse, as `toBinary` of getResultToWire's. */
export function encodeGetResponse(result: GetResult): Buffer {
  const size = getResponseSize(result);
  const out = new FrameWriter(size.size);
  writeGetResponse(out, size);
  return message(out);
}

/** A request's own failure in a coalesced call, as a CallError (its ErrorDetail encoded by protobuf-es: rare). */
interface CallErrorSize {
  code: number;
  message: Text;
  detail: Uint8Array | undefined;
  size: number;
}

function callErrorSize(error: RpcError): CallErrorSize {
  const found = error.detail(ErrorDetailSchema);
  const detail = found === undefined ? undefined : toBinary(ErrorDetailSchema, found);
  const text = textOf(error.message);
  return { code: error.code, message: text, detail, size: uint32FieldSize(error.code) + stringFieldSize(text.length) + (detail === undefined ? 0 : delimitedSize(detail.length)) };
}

function writeCallError(out: FrameWriter, size: CallErrorSize): void {
  out.delimited(2, size.size);
  out.uint32(1, size.code);
  out.text(2, size.message.text, size.message.length);
  if (size.detail !== undefined) out.bytes(3, size.detail);
}

function isCallError(size: object): size is CallErrorSize {
  return 'code' in size;
}

/**
 * The answer of a coalesced call (WriteManyResponse, GetManyResponse): each result a oneof of its
 * answer (`sizeOf` and `write` of the single call's response) or its CallError.
 */
function encodeCoalescedResponse<T, S extends { size: number }>(results: ReadonlyArray<T | RpcError>, sizeOf: (result: T) => S, write: (out: FrameWriter, size: S) => void): Buffer {
  const sizes = results.map((result) => (result instanceof RpcError ? callErrorSize(result) : sizeOf(result)));
  const out = new FrameWriter(sizes.reduce((sum, size) => sum + delimitedSize(delimitedSize(size.size)), 0));
  for (const result of sizes) {
    out.delimited(1, delimitedSize(result.size));
    if (isCallError(result)) writeCallError(out, result);
    else {
      out.delimited(1, result.size);
      write(out, result);
    }
  }
  return message(out);
}

/** WriteManyResponse, as `toBinary` of writeManyResultsToWire's. */
export function encodeWriteManyResponse(results: ReadonlyArray<model.PartitionWriteResult | RpcError>, appliedIndex = 0n): Buffer {
  return encodeCoalescedResponse(results, (result) => writeResponseSize(result, appliedIndex), (out, size) => writeWriteResponse(out, size, appliedIndex));
}

/** GetManyResponse, as `toBinary` of getManyResultsToWire's. */
export function encodeGetManyResponse(results: ReadonlyArray<GetResult | RpcError>): Buffer {
  return encodeCoalescedResponse(results, getResponseSize, writeGetResponse);
}
