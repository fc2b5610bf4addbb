/**
 * Hand-written protobuf encoders of the router's hot PartitionService requests (Write, WriteMany, Get,
 * GetMany): the model's request straight into a gRPC frame, sized first and written once, instead of
 * building the message with `create` (partition-codec.ts) and encoding it by reflection, which cost
 * the router about 10 µs per coalesced put and 5 µs per get. The bytes equal protobuf-es's `toBinary`
 * of partition-codec's messages (field order, presence and defaults alike; see
 * partition-requests.test.ts, which also fails when one of these messages gains a field).
 */
import { Buffer } from 'node:buffer';
import type * as model from '@shoal/model';
import { GetManyRequestSchema, GetRequestSchema, WriteManyRequestSchema, WriteRequestSchema } from './gen/shoal/v1/node_pb.ts';
import { EncodedMessage, FRAME_HEADER_BYTES } from './grpc.ts';
import type { RoutedTo } from './partition-codec.ts';

/** The read options a Get carries (the wire's ReadOptions). */
export interface EncodedReadOptions {
  consistent: boolean;
  /** Absent or 0n: not sent. */
  minAppliedIndex?: bigint;
}

// Wire types and the enum numbers of node.proto.
const VARINT = 0;
const LENGTH_DELIMITED = 2;
const KEY_TYPES: Record<model.KeyAttributeType, number> = { S: 1, N: 2, B: 3 };
const PROJECTION_TYPES: Record<model.ProjectionType, number> = { ALL: 1, KEYS_ONLY: 2, INCLUDE: 3 };
const INDEX_KINDS: Record<model.IndexSchema['kind'], number> = { LSI: 1, GSI: 2 };
const WRITE_KINDS: Record<model.WriteKind, number> = { Put: 1, Update: 2, Delete: 3, ConditionCheck: 4 };

/** Bytes of a varint of a non-negative integer below 2^32. */
export function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

export function varint64Size(value: bigint): number {
  let size = 1;
  for (let rest = value >> 7n; rest > 0n; rest >>= 7n) size++;
  return size;
}

export const utf8Length = (text: string): number => Buffer.byteLength(text, 'utf8');

/** A length-delimited field of `length` bytes (every field number here is below 16: a 1-byte tag). */
export const delimitedSize = (length: number): number => 1 + varintSize(length) + length;
/** A varint field; 0 when the value is the default (not written). */
export const uint32FieldSize = (value: number): number => (value === 0 ? 0 : 1 + varintSize(value));
export const uint64FieldSize = (value: bigint): number => (value === 0n ? 0 : 1 + varint64Size(value));
/** A string field with implicit presence: not written when empty. */
export const stringFieldSize = (length: number): number => (length === 0 ? 0 : delimitedSize(length));

/** Writes a frame whose message size is known: its header first, then fields in order. */
export class FrameWriter {
  readonly frame: Buffer;
  #at = FRAME_HEADER_BYTES;

  constructor(messageSize: number) {
    this.frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + messageSize);
    this.frame[0] = 0;
    this.frame.writeUInt32BE(messageSize, 1);
  }

  /** Throws when the sizes and the writes disagree: a bug here, never sent. */
  finish(): Buffer {
    if (this.#at !== this.frame.length) throw new Error(`partition request encoder wrote ${this.#at} of ${this.frame.length} bytes`);
    return this.frame;
  }

  #varint(value: number): void {
    let rest = value;
    while (rest > 0x7f) {
      this.frame[this.#at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.frame[this.#at++] = rest;
  }

  uint32(field: number, value: number): void {
    if (value === 0) return;
    this.frame[this.#at++] = (field << 3) | VARINT;
    this.#varint(value);
  }

  uint64(field: number, value: bigint): void {
    if (value === 0n) return;
    this.frame[this.#at++] = (field << 3) | VARINT;
    let rest = value;
    while (rest > 0x7fn) {
      this.frame[this.#at++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.frame[this.#at++] = Number(rest);
  }

  bool(field: number, value: boolean): void {
    if (!value) return;
    this.frame[this.#at++] = (field << 3) | VARINT;
    this.frame[this.#at++] = 1;
  }

  /** The header of a length-delimited field (a message, or the text that follows). */
  delimited(field: number, length: number): void {
    this.frame[this.#at++] = (field << 3) | LENGTH_DELIMITED;
    this.#varint(length);
  }

  /** A bytes field written as is (always, even empty). */
  bytes(field: number, bytes: Uint8Array): void {
    this.delimited(field, bytes.length);
    this.frame.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  /** A string or bytes field holding UTF-8 text of `length` bytes; `always`: written even when empty. */
  text(field: number, text: string, length: number, always = false): void {
    if (length === 0 && !always) return;
    this.delimited(field, length);
    this.#at += this.frame.write(text, this.#at, length, 'utf8');
  }
}

// ---------------------------------------------------------------------------------------------
// Sizes, computed once per encode; a table schema once per distinct schema object of the request.

interface KeyAttributeSize {
  name: string;
  nameLength: number;
  type: number;
  /** KeyAttribute's message size. */
  size: number;
}

function keyAttributeSize(key: model.KeyAttribute): KeyAttributeSize {
  const nameLength = utf8Length(key.name);
  const type = KEY_TYPES[key.type];
  return { name: key.name, nameLength, type, size: stringFieldSize(nameLength) + uint32FieldSize(type) };
}

interface IndexSize {
  index: model.IndexSchema;
  nameLength: number;
  hashKey: KeyAttributeSize;
  rangeKey: KeyAttributeSize | undefined;
  nonKeyLengths: number[];
  size: number;
}

interface TableSize {
  nameLength: number;
  hashKey: KeyAttributeSize;
  rangeKey: KeyAttributeSize | undefined;
  indexes: IndexSize[];
  size: number;
}

function indexSize(index: model.IndexSchema): IndexSize {
  const nameLength = utf8Length(index.name);
  const hashKey = keyAttributeSize(index.hashKey);
  const rangeKey = index.rangeKey === undefined ? undefined : keyAttributeSize(index.rangeKey);
  const nonKeyLengths = (index.projection.nonKeyAttributes ?? []).map(utf8Length);
  const size =
    stringFieldSize(nameLength) +
    uint32FieldSize(INDEX_KINDS[index.kind]) +
    uint32FieldSize(index.indexId) +
    delimitedSize(hashKey.size) +
    (rangeKey === undefined ? 0 : delimitedSize(rangeKey.size)) +
    uint32FieldSize(PROJECTION_TYPES[index.projection.type]) +
    nonKeyLengths.reduce((sum, length) => sum + delimitedSize(length), 0);
  return { index, nameLength, hashKey, rangeKey, nonKeyLengths, size };
}

function tableSize(table: model.TableSchema): TableSize {
  const nameLength = utf8Length(table.name);
  const hashKey = keyAttributeSize(table.hashKey);
  const rangeKey = table.rangeKey === undefined ? undefined : keyAttributeSize(table.rangeKey);
  const indexes = table.indexes.map(indexSize);
  const size =
    stringFieldSize(nameLength) +
    uint32FieldSize(table.tableId) +
    delimitedSize(hashKey.size) +
    (rangeKey === undefined ? 0 : delimitedSize(rangeKey.size)) +
    indexes.reduce((sum, index) => sum + delimitedSize(index.size), 0);
  return { nameLength, hashKey, rangeKey, indexes, size };
}

/** Table sizes by schema object, for one request (the operations of a batch share their table's). */
class TableSizes {
  readonly #sizes = new Map<model.TableSchema, TableSize>();

  of(table: model.TableSchema): TableSize {
    let size = this.#sizes.get(table);
    if (size === undefined) {
      size = tableSize(table);
      this.#sizes.set(table, size);
    }
    return size;
  }
}

function writeKeyAttribute(out: FrameWriter, field: number, key: KeyAttributeSize): void {
  out.delimited(field, key.size);
  out.text(1, key.name, key.nameLength);
  out.uint32(2, key.type);
}

function writeTable(out: FrameWriter, field: number, table: model.TableSchema, size: TableSize): void {
  out.delimited(field, size.size);
  out.text(1, table.name, size.nameLength);
  out.uint32(2, table.tableId);
  writeKeyAttribute(out, 3, size.hashKey);
  if (size.rangeKey !== undefined) writeKeyAttribute(out, 4, size.rangeKey);
  for (const index of size.indexes) {
    const schema = index.index;
    out.delimited(5, index.size);
    out.text(1, schema.name, index.nameLength);
    out.uint32(2, INDEX_KINDS[schema.kind]);
    out.uint32(3, schema.indexId);
    writeKeyAttribute(out, 4, index.hashKey);
    if (index.rangeKey !== undefined) writeKeyAttribute(out, 5, index.rangeKey);
    out.uint32(6, PROJECTION_TYPES[schema.projection.type]);
    (schema.projection.nonKeyAttributes ?? []).forEach((name, position) => out.text(7, name, index.nonKeyLengths[position] ?? 0, true));
  }
}

function targetSize(target: RoutedTo): number {
  return uint64FieldSize(target.partitionId) + uint64FieldSize(target.epoch);
}

function writeTarget(out: FrameWriter, field: number, target: RoutedTo, size: number): void {
  out.delimited(field, size);
  out.uint64(1, target.partitionId);
  out.uint64(2, target.epoch);
}

// ---------------------------------------------------------------------------------------------
// Write and WriteMany

/** A text and its UTF-8 length. */
interface Text {
  text: string;
  length: number;
}

const textOf = (text: string): Text => ({ text, length: utf8Length(text) });

interface ExpressionsSize {
  condition: Text | undefined;
  update: Text | undefined;
  names: Array<{ key: Text; value: Text; size: number }>;
  /** Expression values as DynamoDB JSON; empty when there are none (not sent). */
  values: Text;
  size: number;
}

function expressionsSize(input: model.ExpressionInput): ExpressionsSize {
  const condition = input.condition === undefined ? undefined : textOf(input.condition);
  const update = input.update === undefined ? undefined : textOf(input.update);
  const names = Object.entries(input.names ?? {}).map(([name, value]) => {
    const key = textOf(name);
    const text = textOf(value);
    // A map entry writes its key and value even when empty.
    return { key, value: text, size: delimitedSize(key.length) + delimitedSize(text.length) };
  });
  const values = input.values === undefined ? { text: '', length: 0 } : textOf(JSON.stringify(input.values));
  const size =
    (condition === undefined ? 0 : delimitedSize(condition.length)) +
    (update === undefined ? 0 : delimitedSize(update.length)) +
    names.reduce((sum, entry) => sum + delimitedSize(entry.size), 0) +
    stringFieldSize(values.length);
  return { condition, update, names, values, size };
}

interface OperationSize {
  operation: model.WriteOperation;
  key: Text;
  item: Text | undefined;
  expressions: ExpressionsSize | undefined;
  table: TableSize;
  size: number;
}

interface WriteSize {
  write: model.PartitionWrite;
  operations: OperationSize[];
  size: number;
}

function writeSize(write: model.PartitionWrite, target: number | undefined, tables: TableSizes): WriteSize {
  const operations = write.operations.map((operation): OperationSize => {
    const key = textOf(JSON.stringify(operation.key));
    const item = operation.item === undefined ? undefined : textOf(JSON.stringify(operation.item));
    const expressions = operation.expressions === undefined ? undefined : expressionsSize(operation.expressions);
    const table = tables.of(operation.table);
    const size =
      uint32FieldSize(WRITE_KINDS[operation.kind]) +
      stringFieldSize(key.length) +
      (item === undefined ? 0 : delimitedSize(item.length)) +
      (expressions === undefined ? 0 : delimitedSize(expressions.size)) +
      delimitedSize(table.size);
    return { operation, key, item, expressions, table, size };
  });
  const size =
    (target === undefined ? 0 : delimitedSize(target)) +
    operations.reduce((sum, operation) => sum + delimitedSize(operation.size), 0) +
    (write.returnItems === true ? 2 : 0);
  return { write, operations, size };
}

function writeExpressions(out: FrameWriter, expressions: ExpressionsSize): void {
  out.delimited(4, expressions.size);
  if (expressions.condition !== undefined) out.text(1, expressions.condition.text, expressions.condition.length, true);
  if (expressions.update !== undefined) out.text(2, expressions.update.text, expressions.update.length, true);
  for (const { key, value, size } of expressions.names) {
    out.delimited(3, size);
    out.text(1, key.text, key.length, true);
    out.text(2, value.text, value.length, true);
  }
  out.text(4, expressions.values.text, expressions.values.length);
}

/** A WriteRequest's fields (its target only when sent alone, not within a WriteMany). */
function writeWrite(out: FrameWriter, size: WriteSize, target: RoutedTo | undefined, targetBytes: number): void {
  if (target !== undefined) writeTarget(out, 1, target, targetBytes);
  for (const operation of size.operations) {
    out.delimited(3, operation.size);
    out.uint32(1, WRITE_KINDS[operation.operation.kind]);
    out.text(2, operation.key.text, operation.key.length);
    if (operation.item !== undefined) out.text(3, operation.item.text, operation.item.length, true);
    if (operation.expressions !== undefined) writeExpressions(out, operation.expressions);
    writeTable(out, 5, operation.operation.table, operation.table);
  }
  out.bool(4, size.write.returnItems === true);
}

/** WriteRequest, as partition-codec's writeRequestToWire builds it. */
export function encodeWriteRequest(target: RoutedTo | undefined, write: model.PartitionWrite): EncodedMessage<typeof WriteRequestSchema> {
  const targetBytes = target === undefined ? 0 : targetSize(target);
  const size = writeSize(write, target === undefined ? undefined : targetBytes, new TableSizes());
  const out = new FrameWriter(size.size);
  writeWrite(out, size, target, targetBytes);
  return new EncodedMessage(WriteRequestSchema, out.finish());
}

/** WriteManyRequest, as writeManyRequestToWire builds it. */
export function encodeWriteManyRequest(target: RoutedTo, writes: readonly model.PartitionWrite[]): EncodedMessage<typeof WriteManyRequestSchema> {
  const tables = new TableSizes();
  return encodeWriteMany(target, writes.map((write) => writeSize(write, undefined, tables)));
}

/** One WriteManyRequest of `calls`: its message and how many of the writes (in order) it carries. */
export interface WriteManyCall {
  count: number;
  message: EncodedMessage<typeof WriteManyRequestSchema>;
}

/**
 * `writes` as WriteManyRequests of at most `maxBytes` each (a write larger than that alone in its
 * own), in order: a call, and so the Raft entry the node makes of it, stays within what one message
 * carries however large the items coalesced in one turn are. Each write is measured once.
 */
export function encodeWriteManyCalls(target: RoutedTo, writes: readonly model.PartitionWrite[], maxBytes: number): WriteManyCall[] {
  const tables = new TableSizes();
  const overhead = delimitedSize(targetSize(target));
  const calls: WriteManyCall[] = [];
  let current: WriteSize[] = [];
  let bytes = overhead;
  const cut = (): void => {
    calls.push({ count: current.length, message: encodeWriteMany(target, current) });
    current = [];
    bytes = overhead;
  };
  for (const write of writes) {
    const size = writeSize(write, undefined, tables);
    const framed = delimitedSize(size.size);
    if (current.length > 0 && bytes + framed > maxBytes) cut();
    current.push(size);
    bytes += framed;
  }
  if (current.length > 0) cut();
  return calls;
}

function encodeWriteMany(target: RoutedTo, sizes: readonly WriteSize[]): EncodedMessage<typeof WriteManyRequestSchema> {
  const targetBytes = targetSize(target);
  const out = new FrameWriter(delimitedSize(targetBytes) + sizes.reduce((sum, size) => sum + delimitedSize(size.size), 0));
  writeTarget(out, 1, target, targetBytes);
  for (const size of sizes) {
    out.delimited(2, size.size);
    writeWrite(out, size, undefined, 0);
  }
  return new EncodedMessage(WriteManyRequestSchema, out.finish());
}

// ---------------------------------------------------------------------------------------------
// Get and GetMany

function readOptionsSize(options: EncodedReadOptions): number {
  return (options.consistent ? 2 : 0) + uint64FieldSize(options.minAppliedIndex ?? 0n);
}

function writeReadOptions(out: FrameWriter, field: number, options: EncodedReadOptions, size: number): void {
  out.delimited(field, size);
  out.bool(1, options.consistent);
  out.uint64(2, options.minAppliedIndex ?? 0n);
}

interface GetSize {
  request: model.GetRequest;
  key: Text;
  table: TableSize;
  size: number;
}

function getSize(request: model.GetRequest, target: number | undefined, options: number, tables: TableSizes): GetSize {
  const key = textOf(JSON.stringify(request.key));
  const table = tables.of(request.table);
  const size = (target === undefined ? 0 : delimitedSize(target)) + delimitedSize(table.size) + stringFieldSize(key.length) + delimitedSize(options);
  return { request, key, table, size };
}

function writeGet(out: FrameWriter, size: GetSize, options: EncodedReadOptions, optionsBytes: number, target: RoutedTo | undefined, targetBytes: number): void {
  if (target !== undefined) writeTarget(out, 1, target, targetBytes);
  writeTable(out, 2, size.request.table, size.table);
  out.text(3, size.key.text, size.key.length);
  writeReadOptions(out, 4, options, optionsBytes);
}

/** GetRequest, as partition-codec's getRequestToWire builds it. */
export function encodeGetRequest(target: RoutedTo | undefined, request: model.GetRequest, options: EncodedReadOptions): EncodedMessage<typeof GetRequestSchema> {
  const targetBytes = target === undefined ? 0 : targetSize(target);
  const optionsBytes = readOptionsSize(options);
  const size = getSize(request, target === undefined ? undefined : targetBytes, optionsBytes, new TableSizes());
  const out = new FrameWriter(size.size);
  writeGet(out, size, options, optionsBytes, target, targetBytes);
  return new EncodedMessage(GetRequestSchema, out.finish());
}

/** GetManyRequest, as getManyRequestToWire builds it: every get carries the call's options too. */
export function encodeGetManyRequest(
  target: RoutedTo,
  gets: readonly model.GetRequest[],
  options: EncodedReadOptions,
): EncodedMessage<typeof GetManyRequestSchema> {
  const tables = new TableSizes();
  const targetBytes = targetSize(target);
  const optionsBytes = readOptionsSize(options);
  const sizes = gets.map((get) => getSize(get, undefined, optionsBytes, tables));
  const out = new FrameWriter(
    delimitedSize(targetBytes) + sizes.reduce((sum, size) => sum + delimitedSize(size.size), 0) + delimitedSize(optionsBytes),
  );
  writeTarget(out, 1, target, targetBytes);
  for (const size of sizes) {
    out.delimited(2, size.size);
    writeGet(out, size, options, optionsBytes, undefined, 0);
  }
  writeReadOptions(out, 3, options, optionsBytes);
  return new EncodedMessage(GetManyRequestSchema, out.finish());
}
