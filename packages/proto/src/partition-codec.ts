/**
 * Conversion between model's partition contract (partition.ts: what the router asks of a partition)
 * and PartitionService messages, for both ends: the router's gRPC PartitionClient encodes requests
 * and decodes results, the node decodes requests and encodes results, with one definition of each.
 * Items and attribute values cross as their DynamoDB JSON (see node.proto for why).
 */
import { create } from '@bufbuild/protobuf';
import type * as model from '@shoal/model';
import {
  ApplyIndexEntriesRequestSchema,
  BackfillIndexRequestSchema,
  DropIndexRequestSchema,
  GetManyRequestSchema,
  GetManyResponseSchema,
  GetRequestSchema,
  GetResponseSchema,
  IndexKind,
  KeyType,
  ProjectionType,
  ReadRangeRequestSchema,
  ReadRangeResponseSchema,
  Select,
  SortKeyOperator,
  StatisticsRequestSchema,
  StatisticsResponseSchema,
  TableSchemaSchema,
  WriteKind,
  WriteManyRequestSchema,
  WriteManyResponseSchema,
  WriteOutcome_TransactionConflictSchema,
  WriteRequestSchema,
  WriteResponseSchema,
} from './gen/shoal/v1/node_pb.ts';
import type {
  ApplyIndexEntriesRequest as WireApplyIndexEntriesRequest,
  BackfillIndexRequest as WireBackfillIndexRequest,
  DropIndexRequest as WireDropIndexRequest,
  CallError as WireCallError,
  ExpressionInput as WireExpressionInput,
  GetManyRequest as WireGetManyRequest,
  GetManyResponse as WireGetManyResponse,
  GetRequest as WireGetRequest,
  GetResponse as WireGetResponse,
  IndexSchema as WireIndexSchema,
  KeyAttribute as WireKeyAttribute,
  PartitionTarget,
  ReadOptions as WireReadOptions,
  ReadRangeRequest as WireReadRangeRequest,
  ReadRangeResponse as WireReadRangeResponse,
  StatisticsRequest as WireStatisticsRequest,
  StatisticsResponse as WireStatisticsResponse,
  TableSchema as WireTableSchema,
  WriteManyRequest as WireWriteManyRequest,
  WriteManyResponse as WireWriteManyResponse,
  WriteOperation as WireWriteOperation,
  WriteOutcome as WireWriteOutcome,
  WriteRequest as WireWriteRequest,
  WriteResponse as WireWriteResponse,
} from './gen/shoal/v1/node_pb.ts';
import type { TableRecordJson } from './gen/shoal/v1/meta_pb.ts';
import { TableRecordJsonSchema } from './gen/shoal/v1/meta_pb.ts';
import { ErrorDetailSchema } from './gen/shoal/v1/errors_pb.ts';
import { RpcError, Status } from './grpc.ts';

/** The partition and epoch a request was routed with (the node checks both). */
export interface RoutedTo {
  partitionId: bigint;
  epoch: bigint;
}

function invalid(what: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, `invalid partition request: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Enums

function inverse<K extends string>(map: Record<K, number>): Map<number, K> {
  return new Map(Object.entries<number>(map).map(([name, value]) => [value, name as K]));
}

function named<K>(names: Map<number, K>, value: number, what: string): K {
  const name = names.get(value);
  if (name === undefined) throw invalid(`${what} ${value}`);
  return name;
}

const KEY_TYPES: Record<model.KeyAttributeType, KeyType> = { S: KeyType.S, N: KeyType.N, B: KeyType.B };
const PROJECTION_TYPES: Record<model.ProjectionType, ProjectionType> = {
  ALL: ProjectionType.ALL,
  KEYS_ONLY: ProjectionType.KEYS_ONLY,
  INCLUDE: ProjectionType.INCLUDE,
};
const INDEX_KINDS: Record<model.IndexSchema['kind'], IndexKind> = { LSI: IndexKind.LSI, GSI: IndexKind.GSI };
const WRITE_KINDS: Record<model.WriteKind, WriteKind> = {
  Put: WriteKind.PUT,
  Update: WriteKind.UPDATE,
  Delete: WriteKind.DELETE,
  ConditionCheck: WriteKind.CONDITION_CHECK,
};
const SORT_KEY_OPERATORS: Record<model.SortKeyOperator, SortKeyOperator> = {
  EQ: SortKeyOperator.EQ,
  LT: SortKeyOperator.LT,
  LE: SortKeyOperator.LE,
  GT: SortKeyOperator.GT,
  GE: SortKeyOperator.GE,
  BETWEEN: SortKeyOperator.BETWEEN,
  BEGINS_WITH: SortKeyOperator.BEGINS_WITH,
};
const SELECTS: Record<model.Select, Select> = {
  ALL_ATTRIBUTES: Select.ALL_ATTRIBUTES,
  ALL_PROJECTED_ATTRIBUTES: Select.ALL_PROJECTED_ATTRIBUTES,
  SPECIFIC_ATTRIBUTES: Select.SPECIFIC_ATTRIBUTES,
  COUNT: Select.COUNT,
};
const KEY_TYPE_NAMES = inverse(KEY_TYPES);
const PROJECTION_TYPE_NAMES = inverse(PROJECTION_TYPES);
const INDEX_KIND_NAMES = inverse(INDEX_KINDS);
const WRITE_KIND_NAMES = inverse(WRITE_KINDS);
const SORT_KEY_OPERATOR_NAMES = inverse(SORT_KEY_OPERATORS);
const SELECT_NAMES = inverse(SELECTS);

// ---------------------------------------------------------------------------------------------
// DynamoDB JSON

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function json(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return fromUtf8.decode(bytes);
  } catch {
    throw invalid(`${what} is not JSON (not UTF-8)`);
  }
}

function parseText<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw invalid(`${what} is not JSON`);
  }
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  return parseText<T>(utf8Text(bytes, what), what);
}

const item = (bytes: Uint8Array, what: string): model.Item => parseJson<model.Item>(bytes, what);
const value = (bytes: Uint8Array, what: string): model.AttributeValue => parseJson<model.AttributeValue>(bytes, what);

/** Expression attribute values: empty bytes when there are none. */
const valuesToWire = (values: Record<string, model.AttributeValue> | undefined): Uint8Array =>
  values === undefined ? new Uint8Array() : json(values);
const valuesFromWire = (bytes: Uint8Array): Record<string, model.AttributeValue> | undefined =>
  bytes.length === 0 ? undefined : parseJson<Record<string, model.AttributeValue>>(bytes, 'expression values');

/** Expression attribute names: an empty map means none (DynamoDB refuses an empty map upstream). */
const namesFromWire = (names: Record<string, string>): Record<string, string> | undefined =>
  Object.keys(names).length === 0 ? undefined : { ...names };

// ---------------------------------------------------------------------------------------------
// Schemas

const keyAttributeToWire = (key: model.KeyAttribute): Omit<WireKeyAttribute, '$typeName'> => ({
  name: key.name,
  type: KEY_TYPES[key.type],
});

function keyAttributeFromWire(key: WireKeyAttribute | undefined, what: string): model.KeyAttribute {
  if (key === undefined) throw invalid(`${what} missing`);
  return { name: key.name, type: named(KEY_TYPE_NAMES, key.type, `${what} type`) };
}

function indexFromWire(index: WireIndexSchema): model.IndexSchema {
  const type = named(PROJECTION_TYPE_NAMES, index.projection, 'projection type');
  const out: model.IndexSchema = {
    name: index.name,
    kind: named(INDEX_KIND_NAMES, index.kind, 'index kind'),
    indexId: index.indexId,
    hashKey: keyAttributeFromWire(index.hashKey, 'index hash key'),
    projection: type === 'INCLUDE' ? { type, nonKeyAttributes: [...index.nonKeyAttributes] } : { type },
  };
  if (index.rangeKey !== undefined) out.rangeKey = keyAttributeFromWire(index.rangeKey, 'index range key');
  return out;
}

export function tableSchemaToWire(table: model.TableSchema): WireTableSchema {
  return create(TableSchemaSchema, {
    name: table.name,
    tableId: table.tableId,
    hashKey: keyAttributeToWire(table.hashKey),
    ...(table.rangeKey === undefined ? {} : { rangeKey: keyAttributeToWire(table.rangeKey) }),
    indexes: table.indexes.map((index) => ({
      name: index.name,
      kind: INDEX_KINDS[index.kind],
      indexId: index.indexId,
      hashKey: keyAttributeToWire(index.hashKey),
      ...(index.rangeKey === undefined ? {} : { rangeKey: keyAttributeToWire(index.rangeKey) }),
      projection: PROJECTION_TYPES[index.projection.type],
      nonKeyAttributes: index.projection.nonKeyAttributes ?? [],
    })),
  });
}

export function tableSchemaFromWire(table: WireTableSchema | undefined): model.TableSchema {
  if (table === undefined) throw invalid('table schema missing');
  const out: model.TableSchema = {
    name: table.name,
    tableId: table.tableId,
    hashKey: keyAttributeFromWire(table.hashKey, 'hash key'),
    indexes: table.indexes.map(indexFromWire),
  };
  if (table.rangeKey !== undefined) out.rangeKey = keyAttributeFromWire(table.rangeKey, 'range key');
  return out;
}

export function tableRecordToWire(record: model.TableRecord): TableRecordJson {
  return create(TableRecordJsonSchema, { json: json(record) });
}

export function tableRecordFromWire(record: TableRecordJson): model.TableRecord {
  return parseJson<model.TableRecord>(record.json, 'table record');
}

function targetFromWire(target: PartitionTarget | undefined): RoutedTo {
  if (target === undefined) throw invalid('target partition missing');
  return { partitionId: target.partitionId, epoch: target.epoch };
}

// ---------------------------------------------------------------------------------------------
// Write

function expressionsToWire(input: model.ExpressionInput): Omit<WireExpressionInput, '$typeName'> {
  return {
    condition: input.condition,
    update: input.update,
    names: input.names ?? {},
    values: valuesToWire(input.values),
  };
}

function expressionsFromWire(input: WireExpressionInput): model.ExpressionInput {
  const out: model.ExpressionInput = {};
  if (input.condition !== undefined) out.condition = input.condition;
  if (input.update !== undefined) out.update = input.update;
  const names = namesFromWire(input.names);
  if (names !== undefined) out.names = names;
  const values = valuesFromWire(input.values);
  if (values !== undefined) out.values = values;
  return out;
}

function operationFromWire(operation: WireWriteOperation): model.WriteOperation {
  const out: model.WriteOperation = {
    table: tableSchemaFromWire(operation.table),
    kind: named(WRITE_KIND_NAMES, operation.kind, 'write kind'),
    key: item(operation.key, 'key'),
  };
  if (operation.item !== undefined) out.item = item(operation.item, 'item');
  if (operation.expressions !== undefined) out.expressions = expressionsFromWire(operation.expressions);
  return out;
}

export function writeRequestToWire(target: RoutedTo | undefined, write: model.PartitionWrite): WireWriteRequest {
  return create(WriteRequestSchema, {
    ...(target === undefined ? {} : { target }),
    operations: write.operations.map((operation) => ({
      table: tableSchemaToWire(operation.table),
      kind: WRITE_KINDS[operation.kind],
      key: json(operation.key),
      ...(operation.item === undefined ? {} : { item: json(operation.item) }),
      ...(operation.expressions === undefined ? {} : { expressions: expressionsToWire(operation.expressions) }),
    })),
    returnItems: write.returnItems === true,
  });
}

export function writeRequestFromWire(request: WireWriteRequest): { target: RoutedTo; write: model.PartitionWrite } {
  return { target: targetFromWire(request.target), write: writeFromWire(request) };
}

function writeFromWire(request: WireWriteRequest): model.PartitionWrite {
  const write: model.PartitionWrite = {
    operations: request.operations.map(operationFromWire),
  };
  if (request.returnItems) write.returnItems = true;
  return write;
}

/** `appliedIndex`: the partition's index visible on the answering replica (WriteResponse.applied_index). */
export function writeResultToWire(result: model.PartitionWriteResult, appliedIndex = 0n): WireWriteResponse {
  return create(WriteResponseSchema, {
    applied: result.applied,
    outcomes: result.outcomes.map((outcome) => ({ outcome: outcomeInit(outcome) })),
    appliedIndex,
  });
}

function outcomeInit(outcome: model.WriteOutcome) {
  switch (outcome.status) {
    case 'ok':
      return {
        case: 'ok' as const,
        value: {
          ...(outcome.oldItem === undefined ? {} : { oldItem: json(outcome.oldItem) }),
          ...(outcome.newItem === undefined ? {} : { newItem: json(outcome.newItem) }),
        },
      };
    case 'conditionFailed':
      return { case: 'conditionFailed' as const, value: outcome.item === undefined ? {} : { item: json(outcome.item) } };
    case 'invalid':
      return { case: 'invalid' as const, value: { message: outcome.message } };
    case 'transactionConflict':
      return { case: 'transactionConflict' as const, value: create(WriteOutcome_TransactionConflictSchema) };
  }
}

function outcomeFromWire(outcome: WireWriteOutcome): model.WriteOutcome {
  const { outcome: kind } = outcome;
  switch (kind.case) {
    case 'ok': {
      const out: model.WriteOutcome = { status: 'ok' };
      if (kind.value.oldItem !== undefined) out.oldItem = item(kind.value.oldItem, 'old item');
      if (kind.value.newItem !== undefined) out.newItem = item(kind.value.newItem, 'new item');
      return out;
    }
    case 'conditionFailed':
      return kind.value.item === undefined ? { status: 'conditionFailed' } : { status: 'conditionFailed', item: item(kind.value.item, 'item') };
    case 'invalid':
      return { status: 'invalid', message: kind.value.message };
    case 'transactionConflict':
      return { status: 'transactionConflict' };
    case undefined:
      throw invalid('write outcome missing');
  }
}

export function writeResultFromWire(response: WireWriteResponse): model.PartitionWriteResult {
  return { applied: response.applied, outcomes: response.outcomes.map(outcomeFromWire) };
}

/** A write's result and the partition's applied index its leader answered with (0n: not said). */
export interface AppliedWrite {
  result: model.PartitionWriteResult;
  appliedIndex: bigint;
}

export function appliedWriteFromWire(response: WireWriteResponse): AppliedWrite {
  return { result: writeResultFromWire(response), appliedIndex: response.appliedIndex };
}

// ---------------------------------------------------------------------------------------------
// Read options

/**
 * Model's ReadOptions as they cross the wire: an eventual read may also name the lowest applied
 * index of the partition's log the serving replica must have (a router's own acknowledged writes).
 */
export interface PartitionReadOptions extends model.ReadOptions {
  /** Absent or 0n: any replica's state will do. */
  minAppliedIndex?: bigint;
}

function readOptionsToWire(options: PartitionReadOptions): Omit<WireReadOptions, '$typeName'> {
  return { consistent: options.consistent, minAppliedIndex: options.minAppliedIndex ?? 0n };
}

function readOptionsFromWire(options: WireReadOptions | undefined): PartitionReadOptions {
  const consistent = options?.consistent === true;
  const minAppliedIndex = options?.minAppliedIndex ?? 0n;
  return minAppliedIndex === 0n ? { consistent } : { consistent, minAppliedIndex };
}

// ---------------------------------------------------------------------------------------------
// Get

export function getRequestToWire(target: RoutedTo | undefined, request: model.GetRequest, options: PartitionReadOptions): WireGetRequest {
  return create(GetRequestSchema, {
    ...(target === undefined ? {} : { target }),
    table: tableSchemaToWire(request.table),
    key: json(request.key),
    options: readOptionsToWire(options),
  });
}

export function getRequestFromWire(request: WireGetRequest): {
  target: RoutedTo;
  request: model.GetRequest;
  options: PartitionReadOptions;
} {
  return {
    target: targetFromWire(request.target),
    request: { table: tableSchemaFromWire(request.table), key: item(request.key, 'key') },
    options: readOptionsFromWire(request.options),
  };
}

/** The item read, with its JSON text (what crossed the wire) for a response to splice in as is. */
export type GetResult = model.FoundItem | undefined;

/** Sends the stored JSON text when the store has it: no serialization of the item on the node. */
export function getResultToWire(result: GetResult): WireGetResponse {
  if (result === undefined) return create(GetResponseSchema, {});
  return create(GetResponseSchema, { item: result.json === undefined ? json(result.item) : utf8.encode(result.json), size: result.size });
}

/**
 * An item read from a node, parsed only when `item` is first read: a GetItem without a projection
 * answers the JSON text as is (the stored text, as a local store's read does), so most reads never
 * need it parsed. A class, so that every read item shares one shape (an object literal with a getter
 * makes a shape per object, and every access to such objects slow).
 */
class ReadItem implements model.FoundItem {
  readonly size: number;
  readonly json: string;
  #item: model.Item | undefined;

  constructor(json: string, size: number) {
    this.json = json;
    this.size = size;
  }

  get item(): model.Item {
    this.#item ??= parseText<model.Item>(this.json, 'item');
    return this.#item;
  }
}

export function getResultFromWire(response: WireGetResponse): GetResult {
  if (response.item === undefined) return undefined;
  const text = utf8Text(response.item, 'item');
  // Spliced as is into a GetItem answer: text cut short or followed by more would break it or add
  // members to it.
  if (!isOneJsonObject(text)) throw invalid('item is not one JSON object');
  return new ReadItem(text, response.size);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
/** The brackets open at each depth of a scan (DynamoDB nests 32 levels, two brackets each at most). */
const openBrackets = new Uint8Array(128);

/**
 * Whether `text` is one JSON object and nothing more: its brackets, outside strings, pair up (`{`
 * with `}`, `[` with `]`) and the first one, a `{`, closes at its last character. A structural scan,
 * not a parse (strings are skipped to their closing quote): enough that the text, set as a member's
 * value, stays that value. Nesting deeper than the scan tracks is decided by JSON.parse.
 */
export function isOneJsonObject(text: string): boolean {
  const last = text.length - 1;
  if (last < 1 || text.charCodeAt(0) !== OPEN_BRACE || text.charCodeAt(last) !== CLOSE_BRACE) return false;
  let depth = 0;
  for (let at = 0; at < last; at++) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) {
      // The closing quote: the next one after an even run of backslashes.
      do {
        at = text.indexOf('"', at + 1);
        if (at < 0) return false;
      } while (escapedAt(text, at));
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (depth === openBrackets.length) return parsesAsObject(text);
      openBrackets[depth++] = code;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      // Closed before the end (more text follows), or closing what it did not open.
      if (depth <= 1 || openBrackets[--depth] !== code - 2) return false;
    }
  }
  return depth === 1;
}

/** Whether the quote at `at` is escaped: an odd run of backslashes before it. */
function escapedAt(text: string, at: number): boolean {
  let before = at - 1;
  while (text.charCodeAt(before) === BACKSLASH) before--;
  return (at - before) % 2 === 0;
}

function parsesAsObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Coalesced requests (WriteMany, GetMany): one call, one result or error per request

/** A request's own failure in a coalesced call: the RpcError it would have failed with alone. */
function callErrorToWire(error: RpcError): Omit<WireCallError, '$typeName'> {
  const detail = error.detail(ErrorDetailSchema);
  return { code: error.code, message: error.message, ...(detail === undefined ? {} : { detail }) };
}

function callErrorFromWire(error: WireCallError): RpcError {
  const code = error.code in Status ? (error.code as Status) : Status.UNKNOWN;
  return error.detail === undefined ? new RpcError(code, error.message) : RpcError.withDetail(code, error.message, ErrorDetailSchema, error.detail);
}

function outcomesToWire<T, W>(results: ReadonlyArray<T | RpcError>, toWire: (result: T) => W) {
  return results.map((result) =>
    result instanceof RpcError ? { result: { case: 'error' as const, value: callErrorToWire(result) } } : { result: { case: 'response' as const, value: toWire(result) } },
  );
}

function outcomesFromWire<W, T>(results: ReadonlyArray<{ result: { case: 'response'; value: W } | { case: 'error'; value: WireCallError } | { case: undefined; value?: undefined } }>, fromWire: (response: W) => T, expected: number): Array<T | RpcError> {
  if (results.length !== expected) throw invalid(`a coalesced call answered ${results.length} results for ${expected} requests`);
  return results.map(({ result }) => {
    if (result.case === 'error') return callErrorFromWire(result.value);
    if (result.case === 'response') return fromWire(result.value);
    throw invalid('a coalesced result is missing');
  });
}

export function writeManyRequestToWire(target: RoutedTo, writes: readonly model.PartitionWrite[]): WireWriteManyRequest {
  return create(WriteManyRequestSchema, { target, writes: writes.map((write) => writeRequestToWire(undefined, write)) });
}

export function writeManyRequestFromWire(request: WireWriteManyRequest): { target: RoutedTo; writes: model.PartitionWrite[] } {
  return { target: targetFromWire(request.target), writes: request.writes.map(writeFromWire) };
}

/** `appliedIndex` as for writeResultToWire: the coalesced writes are one entry, every result carries it. */
export function writeManyResultsToWire(results: ReadonlyArray<model.PartitionWriteResult | RpcError>, appliedIndex = 0n): WireWriteManyResponse {
  return create(WriteManyResponseSchema, { results: outcomesToWire(results, (result) => writeResultToWire(result, appliedIndex)) });
}

/** One result per write sent, in order: its result with the applied index answered, or the RpcError it failed with. */
export function writeManyResultsFromWire(response: WireWriteManyResponse, expected: number): Array<AppliedWrite | RpcError> {
  return outcomesFromWire(response.results, appliedWriteFromWire, expected);
}

export function getManyRequestToWire(target: RoutedTo, gets: readonly model.GetRequest[], options: PartitionReadOptions): WireGetManyRequest {
  return create(GetManyRequestSchema, { target, gets: gets.map((get) => getRequestToWire(undefined, get, options)), options: readOptionsToWire(options) });
}

export function getManyRequestFromWire(request: WireGetManyRequest): { target: RoutedTo; gets: model.GetRequest[]; options: PartitionReadOptions } {
  return {
    target: targetFromWire(request.target),
    gets: request.gets.map((get) => ({ table: tableSchemaFromWire(get.table), key: item(get.key, 'key') })),
    options: readOptionsFromWire(request.options),
  };
}

export function getManyResultsToWire(results: ReadonlyArray<GetResult | RpcError>): WireGetManyResponse {
  return create(GetManyResponseSchema, { results: outcomesToWire(results, getResultToWire) });
}

export function getManyResultsFromWire(response: WireGetManyResponse, expected: number): Array<GetResult | RpcError> {
  return outcomesFromWire(response.results, getResultFromWire, expected);
}

// ---------------------------------------------------------------------------------------------
// Range reads (Query and Scan)

export function rangeReadRequestToWire(target: RoutedTo, request: model.RangeReadRequest, options: PartitionReadOptions): WireReadRangeRequest {
  return create(ReadRangeRequestSchema, {
    target,
    table: tableSchemaToWire(request.table),
    indexName: request.indexName,
    hashValue: request.hashValue === undefined ? undefined : json(request.hashValue),
    ...(request.sortCondition === undefined
      ? {}
      : { sortCondition: { op: SORT_KEY_OPERATORS[request.sortCondition.op], values: request.sortCondition.values.map(json) } }),
    forward: request.forward,
    exclusiveStartKey: request.exclusiveStartKey === undefined ? undefined : json(request.exclusiveStartKey),
    limit: request.limit,
    maxBytes: request.maxBytes,
    ...(request.segment === undefined ? {} : { segment: request.segment }),
    select: SELECTS[request.select],
    filter: request.filter,
    projection: request.projection,
    names: request.names ?? {},
    values: valuesToWire(request.values),
    options: readOptionsToWire(options),
  });
}

export function rangeReadRequestFromWire(request: WireReadRangeRequest): {
  target: RoutedTo;
  request: model.RangeReadRequest;
  options: PartitionReadOptions;
} {
  const out: model.RangeReadRequest = {
    table: tableSchemaFromWire(request.table),
    forward: request.forward,
    maxBytes: request.maxBytes,
    select: named(SELECT_NAMES, request.select, 'select'),
  };
  if (request.indexName !== undefined) out.indexName = request.indexName;
  if (request.hashValue !== undefined) out.hashValue = value(request.hashValue, 'hash value');
  if (request.sortCondition !== undefined) {
    out.sortCondition = {
      op: named(SORT_KEY_OPERATOR_NAMES, request.sortCondition.op, 'sort key operator'),
      values: request.sortCondition.values.map((v) => value(v, 'sort key value')),
    };
  }
  if (request.exclusiveStartKey !== undefined) out.exclusiveStartKey = item(request.exclusiveStartKey, 'exclusive start key');
  if (request.limit !== undefined) out.limit = request.limit;
  if (request.segment !== undefined) out.segment = { segment: request.segment.segment, total: request.segment.total };
  if (request.filter !== undefined) out.filter = request.filter;
  if (request.projection !== undefined) out.projection = request.projection;
  const names = namesFromWire(request.names);
  if (names !== undefined) out.names = names;
  const values = valuesFromWire(request.values);
  if (values !== undefined) out.values = values;
  return { target: targetFromWire(request.target), request: out, options: readOptionsFromWire(request.options) };
}

export function rangeReadResultToWire(result: model.RangeReadResult): WireReadRangeResponse {
  return create(ReadRangeResponseSchema, {
    items: result.items.map(json),
    count: result.count,
    scannedCount: result.scannedCount,
    lastEvaluatedKey: result.lastEvaluatedKey === undefined ? undefined : json(result.lastEvaluatedKey),
    bytesRead: result.bytesRead,
  });
}

export function rangeReadResultFromWire(response: WireReadRangeResponse): model.RangeReadResult {
  const out: model.RangeReadResult = {
    items: response.items.map((bytes) => item(bytes, 'item')),
    count: response.count,
    scannedCount: response.scannedCount,
    bytesRead: response.bytesRead,
  };
  if (response.lastEvaluatedKey !== undefined) out.lastEvaluatedKey = item(response.lastEvaluatedKey, 'last evaluated key');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Statistics
export interface StatisticsRequest {
  table: model.TableSchema;
  indexName?: string;
}

export function statisticsRequestToWire(target: RoutedTo, request: StatisticsRequest): WireStatisticsRequest {
  return create(StatisticsRequestSchema, { target, table: tableSchemaToWire(request.table), indexName: request.indexName });
}

export function statisticsRequestFromWire(request: WireStatisticsRequest): { target: RoutedTo; request: StatisticsRequest } {
  const out: StatisticsRequest = { table: tableSchemaFromWire(request.table) };
  if (request.indexName !== undefined) out.indexName = request.indexName;
  return { target: targetFromWire(request.target), request: out };
}

export function statisticsToWire(statistics: model.TableStatistics): WireStatisticsResponse {
  return create(StatisticsResponseSchema, {
    itemCount: BigInt(statistics.itemCount),
    sizeBytes: BigInt(statistics.sizeBytes),
  });
}

export function statisticsFromWire(response: WireStatisticsResponse): model.TableStatistics {
  return { itemCount: Number(response.itemCount), sizeBytes: Number(response.sizeBytes) };
}

// ---------------------------------------------------------------------------------------------
// Index commands (BackfillIndex and DropIndex carry the same fields)

export interface IndexRequest {
  table: model.TableSchema;
  indexName: string;
}

function indexRequestFromWire(request: WireBackfillIndexRequest | WireDropIndexRequest): { target: RoutedTo; request: IndexRequest } {
  if (request.indexName === '') throw invalid('index name missing');
  return { target: targetFromWire(request.target), request: { table: tableSchemaFromWire(request.table), indexName: request.indexName } };
}

/** A GSI backfill: `indexCreatedAtMapVersion`, a map version at or after the index's creation (absent: unknown). */
export interface BackfillIndexRequest extends IndexRequest {
  indexCreatedAtMapVersion?: number;
}

/** `waitMs`: how long the leader waits for the backfill to be done before it answers (0: at once). */
export function backfillIndexRequestToWire(target: RoutedTo, request: BackfillIndexRequest, waitMs = 0): WireBackfillIndexRequest {
  return create(BackfillIndexRequestSchema, {
    target,
    table: tableSchemaToWire(request.table),
    indexName: request.indexName,
    waitMs,
    indexCreatedAtMapVersion: BigInt(request.indexCreatedAtMapVersion ?? 0),
  });
}

export function backfillIndexRequestFromWire(request: WireBackfillIndexRequest): { target: RoutedTo; request: BackfillIndexRequest; waitMs: number } {
  const { target, request: index } = indexRequestFromWire(request);
  const createdAt = request.indexCreatedAtMapVersion;
  if (createdAt > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid('index creation version out of range');
  return { target, request: createdAt === 0n ? index : { ...index, indexCreatedAtMapVersion: Number(createdAt) }, waitMs: request.waitMs };
}

export function dropIndexRequestToWire(target: RoutedTo, request: IndexRequest): WireDropIndexRequest {
  return create(DropIndexRequestSchema, { target, table: tableSchemaToWire(request.table), indexName: request.indexName });
}

export const dropIndexRequestFromWire: (request: WireDropIndexRequest) => { target: RoutedTo; request: IndexRequest } = indexRequestFromWire;

// ---------------------------------------------------------------------------------------------
// Asynchronous GSIs: ApplyIndexEntries

/** One outbox record of a source partition: the put (`entry`) or delete of one GSI entry. */
export interface IndexEntryRecord {
  seq: number;
  indexId: number;
  entryKey: Uint8Array;
  entry?: model.Item;
  /** The base item's key. */
  itemKey: Uint8Array;
}

/** Records of `sourcePartitionId` for items at or beyond `fromKey` are not that source's any more (a split moved them). */
export interface IndexSourceFence {
  sourcePartitionId: number;
  fromKey: Uint8Array;
}

/** What a source partition's shipper sends one GSI partition: its records for it, in seq order, and the fences of its ancestors. */
export interface IndexEntriesBatch {
  sourcePartitionId: number;
  records: IndexEntryRecord[];
  fences: IndexSourceFence[];
}

export function applyIndexEntriesRequestToWire(target: RoutedTo, batch: IndexEntriesBatch): WireApplyIndexEntriesRequest {
  return create(ApplyIndexEntriesRequestSchema, {
    target,
    sourcePartitionId: BigInt(batch.sourcePartitionId),
    records: batch.records.map((record) => ({
      seq: BigInt(record.seq),
      indexId: record.indexId,
      entryKey: record.entryKey,
      itemKey: record.itemKey,
      ...(record.entry === undefined ? {} : { entry: json(record.entry) }),
    })),
    fences: batch.fences.map((fence) => ({ sourcePartitionId: BigInt(fence.sourcePartitionId), fromKey: fence.fromKey })),
  });
}

export function applyIndexEntriesRequestFromWire(request: WireApplyIndexEntriesRequest): { target: RoutedTo; batch: IndexEntriesBatch } {
  const sourcePartitionId = safeNumber(request.sourcePartitionId, 'source partition id');
  if (sourcePartitionId < 1) throw invalid('source partition id 0');
  let previous = 0;
  const records = request.records.map((wire): IndexEntryRecord => {
    const seq = safeNumber(wire.seq, 'record seq');
    if (seq <= previous) throw invalid(`record seqs must rise (${seq} after ${previous})`);
    previous = seq;
    const record: IndexEntryRecord = { seq, indexId: wire.indexId, entryKey: wire.entryKey, itemKey: wire.itemKey };
    if (wire.entry !== undefined) record.entry = item(wire.entry, 'index entry');
    return record;
  });
  const fences = request.fences.map((fence): IndexSourceFence => ({ sourcePartitionId: safeNumber(fence.sourcePartitionId, 'fence source partition id'), fromKey: fence.fromKey }));
  return { target: targetFromWire(request.target), batch: { sourcePartitionId, records, fences } };
}

function safeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${value} is too large`);
  return Number(value);
}
