import {
  getOwn,
  setOwn,
  validateItem,
  validateKey,
  validationError,
  type IndexSchema,
  type Item,
  type RangeReadRequest,
  type Select,
  type TableRecord,
  type TableSchema,
} from '@shoal/model';
import { readTally, type ReturnConsumedCapacity } from './capacity.ts';
import { readItemExpressions, type ExpressionParameters, type ItemExpressions } from './item-expressions.ts';
import { CONDITIONAL_OPERATORS } from './items.ts';
import type { EngineContext } from './operation.ts';
import {
  Constraints,
  RETURN_CONSUMED_CAPACITY,
  optionalBoolean,
  optionalInteger,
  optionalMap,
  optionalString,
  optionalStringList,
  tableNameOf,
  type RequestBody,
} from './request.ts';

/**
 * What Query and Scan share: their common parameters, the choice of table or index, Select and its
 * rules, ExclusiveStartKey, the page read from the partitions and the response built from it.
 */

/** DynamoDB's page: a Query or Scan stops after reading 1 MB of items. */
const PAGE_BYTES = 1024 * 1024;

const SELECT_VALUES = ['ALL_ATTRIBUTES', 'ALL_PROJECTED_ATTRIBUTES', 'SPECIFIC_ATTRIBUTES', 'COUNT'] as const;

export interface RangeReadParameters {
  /** As the request gave it: a name or an ARN (ConsumedCapacity names the table the same way). */
  tableName: string;
  indexName?: string;
  select?: Select;
  limit?: number;
  consistent: boolean;
  exclusiveStartKey?: RequestBody;
  returnConsumedCapacity: ReturnConsumedCapacity;
  /** The projection parameter the request used, for Select's messages. */
  projectionParameter?: 'ProjectionExpression' | 'AttributesToGet';
}

/** Reads the members Query and Scan share, adding their constraint violations. */
export function readRangeParameters(body: RequestBody, constraints: Constraints): RangeReadParameters {
  const tableName = optionalString(body, 'TableName');
  const indexName = optionalString(body, 'IndexName');
  const select = optionalString(body, 'Select');
  const limit = optionalInteger(body, 'Limit');
  const consistent = optionalBoolean(body, 'ConsistentRead') ?? false;
  const exclusiveStartKey = optionalMap(body, 'ExclusiveStartKey');
  const returnConsumedCapacity = optionalString(body, 'ReturnConsumedCapacity');
  const attributesToGet = optionalStringList(body, 'AttributesToGet');
  const projection = optionalString(body, 'ProjectionExpression');
  constraints.tableNameOrArn('tableName', tableName);
  constraints.name('indexName', indexName);
  constraints.oneOf('select', select, SELECT_VALUES);
  constraints.range('limit', limit, 1);
  constraints.length('attributesToGet', attributesToGet, 1);
  constraints.oneOf('returnConsumedCapacity', returnConsumedCapacity, RETURN_CONSUMED_CAPACITY);
  constraints.oneOf('conditionalOperator', optionalString(body, 'ConditionalOperator'), CONDITIONAL_OPERATORS);
  const parameters: RangeReadParameters = {
    tableName: tableName as string,
    consistent,
    returnConsumedCapacity: (returnConsumedCapacity ?? 'NONE') as ReturnConsumedCapacity,
  };
  if (indexName !== undefined) parameters.indexName = indexName;
  if (select !== undefined) parameters.select = select as Select;
  if (limit !== undefined) parameters.limit = limit;
  if (exclusiveStartKey !== undefined) parameters.exclusiveStartKey = exclusiveStartKey;
  if (attributesToGet !== undefined) parameters.projectionParameter = 'AttributesToGet';
  else if (projection !== undefined) parameters.projectionParameter = 'ProjectionExpression';
  return parameters;
}

/** The index a request names, with DynamoDB's errors for a missing one and consistent GSI reads. */
function resolveIndex(table: TableRecord, parameters: RangeReadParameters): IndexSchema | undefined {
  if (parameters.indexName === undefined) return undefined;
  const index = table.schema.indexes.find((candidate) => candidate.name === parameters.indexName);
  if (!index) throw validationError(`The table does not have the specified index: ${parameters.indexName}`);
  if (table.backfilling?.includes(index.name)) {
    throw validationError(`Cannot read from backfilling global secondary index: ${index.name}`);
  }
  if (index.kind === 'GSI' && parameters.consistent) {
    throw validationError('Consistent reads are not supported on global secondary indexes');
  }
  return index;
}

/** Select as DynamoDB resolves it: the default depends on the projection and the index. */
function resolveSelect(parameters: RangeReadParameters, index: IndexSchema | undefined): Select {
  const projection = parameters.projectionParameter;
  const select = parameters.select;
  if (select === undefined) {
    if (projection) return 'SPECIFIC_ATTRIBUTES';
    return index ? 'ALL_PROJECTED_ATTRIBUTES' : 'ALL_ATTRIBUTES';
  }
  if (projection && select !== 'SPECIFIC_ATTRIBUTES') {
    const what = select === 'COUNT' ? 'only the Count' : select;
    throw validationError(`Cannot specify the ${projection} when choosing to get ${what}`);
  }
  if (select === 'SPECIFIC_ATTRIBUTES' && !projection) {
    throw validationError('Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES');
  }
  if (select === 'ALL_PROJECTED_ATTRIBUTES' && !index) {
    throw validationError('ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName');
  }
  if (select === 'ALL_ATTRIBUTES' && index?.kind === 'GSI' && index.projection.type !== 'ALL') {
    throw validationError(
      `One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index ${index.name} because its projection type is not ALL`,
    );
  }
  return select;
}

/** The key schema a page's keys follow: the table's, plus the index's when reading an index. */
function startKeySchema(schema: TableSchema, index: IndexSchema | undefined): string[] {
  const names = [schema.hashKey.name];
  if (schema.rangeKey) names.push(schema.rangeKey.name);
  if (index) {
    for (const key of index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey]) {
      if (!names.includes(key.name)) names.push(key.name);
    }
  }
  return names;
}

const INVALID_START_KEY = 'The provided starting key is invalid';

/**
 * Checks an ExclusiveStartKey against the table's and the index's key schema: exactly their key
 * attributes, each of its key type.
 */
function validateExclusiveStartKey(
  raw: RequestBody,
  schema: TableSchema,
  index: IndexSchema | undefined,
): Item {
  const startKey = validateItem(raw, 'exclusiveStartKey');
  const names = startKeySchema(schema, index);
  const tableKey: Item = {};
  for (const name of [schema.hashKey.name, schema.rangeKey?.name]) {
    const value = name === undefined ? undefined : getOwn(startKey, name);
    if (value !== undefined) setOwn(tableKey, name as string, value);
  }
  if (Object.keys(startKey).length !== names.length || names.some((name) => !Object.hasOwn(startKey, name))) {
    throw validationError(index ? INVALID_START_KEY : `${INVALID_START_KEY}: The provided key element does not match the schema`);
  }
  try {
    validateKey(tableKey, schema);
    if (index) {
      const indexKey: Item = { [index.hashKey.name]: startKey[index.hashKey.name] };
      if (index.rangeKey) setOwn(indexKey, index.rangeKey.name, startKey[index.rangeKey.name]);
      validateKey(indexKey, index);
    }
  } catch (error) {
    throw validationError(`${INVALID_START_KEY}: ${(error as Error).message}`);
  }
  return startKey;
}

export interface PreparedRangeRead {
  table: TableRecord;
  index: IndexSchema | undefined;
  expressions: ItemExpressions;
  request: RangeReadRequest;
  parameters: RangeReadParameters;
}

/** Everything a Query or Scan needs up to its own key condition or segment: the base request. */
export async function prepareRangeRead(
  body: RequestBody,
  ctx: EngineContext,
  parameters: RangeReadParameters,
  accepted: ExpressionParameters,
): Promise<PreparedRangeRead> {
  const expressions = readItemExpressions(body, accepted);
  const table = await ctx.requireTable(tableNameOf(parameters.tableName));
  const index = resolveIndex(table, parameters);
  const select = resolveSelect(parameters, index);
  const request: RangeReadRequest = { table: table.schema, forward: true, maxBytes: PAGE_BYTES, select };
  if (index) request.indexName = index.name;
  if (parameters.limit !== undefined) request.limit = parameters.limit;
  if (parameters.exclusiveStartKey !== undefined) {
    request.exclusiveStartKey = validateExclusiveStartKey(parameters.exclusiveStartKey, table.schema, index);
  }
  const { filter, projection, names, values } = expressions.strings;
  if (filter !== undefined) request.filter = filter;
  if (projection !== undefined) request.projection = projection;
  if (names !== undefined) request.names = names;
  if (values !== undefined) request.values = values;
  return { table, index, expressions, request, parameters };
}

/** Reads the page and builds the Query or Scan response. */
export async function readPage(ctx: EngineContext, prepared: PreparedRangeRead): Promise<RequestBody> {
  const { request, parameters, table, index } = prepared;
  const result = await ctx.partitions.readRange(request, { consistent: parameters.consistent });
  const response: RequestBody = {};
  if (request.select !== 'COUNT') response.Items = result.items;
  response.Count = result.count;
  response.ScannedCount = result.scannedCount;
  if (result.lastEvaluatedKey) response.LastEvaluatedKey = result.lastEvaluatedKey;
  const consumed = readTally(table.schema, result.bytesRead, parameters.consistent, index).report(
    parameters.returnConsumedCapacity,
  );
  if (consumed) response.ConsumedCapacity = { ...consumed, TableName: parameters.tableName };
  return response;
}
