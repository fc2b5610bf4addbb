import {
  attributeUpdatesMessage,
  checkItemSize,
  checkUpdateKeys,
  DynamoDbError,
  conditionalCheckFailed,
  transactionConflict,
  extractKey,
  getOwn,
  setOwn,
  validateItem,
  validateItemKeyAttributes,
  validateKey,
  validationError,
  type DocumentPath,
  type ExpressionInput,
  type Item,
  type TableRecord,
  type TableSchema,
  type WriteOperation,
} from '@shoal/model';
import { readTally, writeTally, type ReturnConsumedCapacity } from './capacity.ts';
import { readItemExpressions, projectItem, type ExpressionParameters, type ItemExpressions } from './item-expressions.ts';
import type { EngineContext, OperationHandler } from './operation.ts';
import { JsonText } from './protocol.ts';
import {
  Constraints,
  RETURN_CONSUMED_CAPACITY,
  optionalBoolean,
  optionalMap,
  optionalString,
  type RequestBody,
} from './request.ts';
import {
  checkOnlyOldReturned,
  RETURN_VALUES,
  RETURN_VALUES_ON_CONDITION_CHECK_FAILURE,
  returnedAttributes,
  type ReturnValues,
} from './return-values.ts';

/** PutItem, GetItem, UpdateItem and DeleteItem: one item, read or written through the partitions. */

export const RETURN_ITEM_COLLECTION_METRICS = ['SIZE', 'NONE'] as const;
/** In DynamoDB's order, which its enum message prints (paritysuite/dynamodb-conformance, captured: "[OR, AND]"). */
export const CONDITIONAL_OPERATORS = ['OR', 'AND'] as const;

/** The members every single-item write shares. */
interface WriteParameters {
  tableName: string;
  returnValues: ReturnValues;
  returnConsumedCapacity: ReturnConsumedCapacity;
  returnItemCollectionMetrics: boolean;
  returnOldOnConditionFailure: boolean;
}

function readWriteParameters(body: RequestBody, constraints: Constraints): WriteParameters {
  const tableName = optionalString(body, 'TableName');
  const returnValues = optionalString(body, 'ReturnValues');
  const returnConsumedCapacity = optionalString(body, 'ReturnConsumedCapacity');
  const returnItemCollectionMetrics = optionalString(body, 'ReturnItemCollectionMetrics');
  const onConditionFailure = optionalString(body, 'ReturnValuesOnConditionCheckFailure');
  constraints.tableNameOrArn('tableName', tableName);
  constraints.oneOf('returnValues', returnValues, RETURN_VALUES);
  constraints.oneOf('returnConsumedCapacity', returnConsumedCapacity, RETURN_CONSUMED_CAPACITY);
  constraints.oneOf('returnItemCollectionMetrics', returnItemCollectionMetrics, RETURN_ITEM_COLLECTION_METRICS);
  constraints.oneOf('returnValuesOnConditionCheckFailure', onConditionFailure, RETURN_VALUES_ON_CONDITION_CHECK_FAILURE);
  constraints.oneOf('conditionalOperator', optionalString(body, 'ConditionalOperator'), CONDITIONAL_OPERATORS);
  return {
    tableName: tableName as string,
    returnValues: (returnValues ?? 'NONE') as ReturnValues,
    returnConsumedCapacity: (returnConsumedCapacity ?? 'NONE') as ReturnConsumedCapacity,
    returnItemCollectionMetrics: returnItemCollectionMetrics === 'SIZE',
    returnOldOnConditionFailure: onConditionFailure === 'ALL_OLD',
  };
}

/** The condition and update strings of a write, in the shape the partition contract carries. */
function writeExpressions(expressions: ItemExpressions): ExpressionInput | undefined {
  const { condition, update, names, values } = expressions.strings;
  if (condition === undefined && update === undefined) return undefined;
  const carried: ExpressionInput = {};
  if (condition !== undefined) carried.condition = condition;
  if (update !== undefined) carried.update = update;
  if (names !== undefined) carried.names = names;
  if (values !== undefined) carried.values = values;
  return carried;
}

/** A write operation carrying the request's condition and update, which the partition evaluates. */
export function withExpressions(operation: WriteOperation, expressions: ItemExpressions): WriteOperation {
  const carried = writeExpressions(expressions);
  return carried ? { ...operation, expressions: carried } : operation;
}

/**
 * DynamoDB's estimate of the size of the item collection a key belongs to (tables with an LSI only).
 * Shoal reports the smallest range, 0 to 1 GB, without measuring the collection.
 */
function itemCollectionMetrics(schema: TableSchema, key: Item): RequestBody | undefined {
  if (!schema.indexes.some((index) => index.kind === 'LSI')) return undefined;
  return { ItemCollectionKey: { [schema.hashKey.name]: key[schema.hashKey.name] }, SizeEstimateRangeGB: [0, 1] };
}

/** ItemCollectionMetrics by table, for the written items of tables with an LSI. */
export function collectionMetricsByTable(written: { table: TableRecord; key: Item }[]): Record<string, RequestBody[]> | undefined {
  const byTable: Record<string, RequestBody[]> = {};
  for (const { table, key } of written) {
    const metrics = itemCollectionMetrics(table.schema, key);
    if (!metrics) continue;
    const metricsOfTable = getOwn(byTable, table.schema.name);
    if (metricsOfTable) metricsOfTable.push(metrics);
    else setOwn(byTable, table.schema.name, [metrics]);
  }
  return Object.keys(byTable).length > 0 ? byTable : undefined;
}

/** Applies one write and answers as DynamoDB's single-item write operations do. */
async function applySingleWrite(
  ctx: EngineContext,
  table: TableRecord,
  operation: WriteOperation,
  parameters: WriteParameters,
  updatedPaths?: readonly DocumentPath[],
): Promise<RequestBody> {
  const schema = table.schema;
  const result = await ctx.partitions.write({
    operations: [operation],
    returnItems:
      parameters.returnValues !== 'NONE' ||
      parameters.returnConsumedCapacity !== 'NONE' ||
      parameters.returnOldOnConditionFailure,
  });
  const outcome = result.outcomes[0];
  if (outcome.status === 'conditionFailed') {
    throw conditionalCheckFailed(parameters.returnOldOnConditionFailure ? outcome.item : undefined);
  }
  if (outcome.status === 'invalid') throw validationError(outcome.message);
  if (outcome.status === 'transactionConflict') throw transactionConflict();

  const response: RequestBody = {};
  const attributes = returnedAttributes(parameters.returnValues, outcome.oldItem, outcome.newItem, updatedPaths);
  if (attributes) response.Attributes = attributes;
  const consumed = writeTally(schema, outcome.oldItem, outcome.newItem).report(parameters.returnConsumedCapacity);
  // ConsumedCapacity names the table as the request did: a table ARN when it gave one (API reference, ConsumedCapacity).
  if (consumed) response.ConsumedCapacity = { ...consumed, TableName: parameters.tableName };
  if (parameters.returnItemCollectionMetrics) {
    const metrics = itemCollectionMetrics(schema, operation.key);
    if (metrics) response.ItemCollectionMetrics = metrics;
  }
  return response;
}

const WRITE_EXPRESSIONS: ExpressionParameters = {
  expressions: ['ConditionExpression'],
  legacy: ['Expected'],
  conditionalOperator: true,
};
const UPDATE_EXPRESSIONS: ExpressionParameters = {
  expressions: ['UpdateExpression', 'ConditionExpression'],
  legacy: ['AttributeUpdates', 'Expected'],
  conditionalOperator: true,
};
const GET_EXPRESSIONS: ExpressionParameters = { expressions: ['ProjectionExpression'], legacy: ['AttributesToGet'] };

const putItem: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const parameters = readWriteParameters(body, constraints);
  const rawItem = optionalMap(body, 'Item');
  constraints.notNull('item', rawItem);
  constraints.throwIfAny();
  checkOnlyOldReturned(parameters.returnValues);

  const item = validateItem(rawItem);
  checkItemSize(item);
  const expressions = readItemExpressions(body, WRITE_EXPRESSIONS);
  const table = await ctx.requireTable(parameters.tableName);
  validateItemKeyAttributes(item, table.schema);

  const operation = withExpressions({ table: table.schema, kind: 'Put', key: extractKey(item, table.schema), item }, expressions);
  return applySingleWrite(ctx, table, operation, parameters);
};

const deleteItem: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const parameters = readWriteParameters(body, constraints);
  const rawKey = optionalMap(body, 'Key');
  constraints.notNull('key', rawKey);
  constraints.throwIfAny();
  checkOnlyOldReturned(parameters.returnValues);

  const expressions = readItemExpressions(body, WRITE_EXPRESSIONS);
  const table = await ctx.requireTable(parameters.tableName);
  const key = validateKey(rawKey, table.schema);

  const operation = withExpressions({ table: table.schema, kind: 'Delete', key }, expressions);
  return applySingleWrite(ctx, table, operation, parameters);
};

const updateItem: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const parameters = readWriteParameters(body, constraints);
  const rawKey = optionalMap(body, 'Key');
  constraints.notNull('key', rawKey);
  constraints.throwIfAny();

  const expressions = readItemExpressions(body, UPDATE_EXPRESSIONS);
  const table = await ctx.requireTable(parameters.tableName);
  const key = validateKey(rawKey, table.schema);
  if (expressions.compiled.update) checkUpdateKeys(expressions.compiled.update, table.schema);

  const operation = withExpressions({ table: table.schema, kind: 'Update', key }, expressions);
  const written = applySingleWrite(ctx, table, operation, parameters, expressions.compiled.update?.updatedPaths);
  if (body.AttributeUpdates === undefined || body.AttributeUpdates === null) return written;
  return written.catch((error: unknown) => {
    if (error instanceof DynamoDbError && error.type === 'ValidationException') {
      const message = attributeUpdatesMessage(error.message);
      if (message !== error.message) throw validationError(message);
    }
    throw error;
  });
};

const getItem: OperationHandler = async (body, ctx) => {
  const tableName = optionalString(body, 'TableName');
  const rawKey = optionalMap(body, 'Key');
  const consistent = optionalBoolean(body, 'ConsistentRead') ?? false;
  const returnConsumedCapacity = optionalString(body, 'ReturnConsumedCapacity');
  const constraints = new Constraints();
  constraints.tableNameOrArn('tableName', tableName);
  constraints.notNull('key', rawKey);
  constraints.oneOf('returnConsumedCapacity', returnConsumedCapacity, RETURN_CONSUMED_CAPACITY);
  constraints.throwIfAny();

  const expressions = readItemExpressions(body, GET_EXPRESSIONS);
  const table = await ctx.requireTable(tableName);
  const key = validateKey(rawKey, table.schema);

  const found = await ctx.partitions.get({ table: table.schema, key }, { consistent });
  const rest: RequestBody = {};
  // Only a report of the consumed capacity needs the item's size (which parses a stored item).
  if (returnConsumedCapacity !== undefined && returnConsumedCapacity !== 'NONE') {
    const consumed = readTally(table.schema, found?.size ?? 0, consistent).report(returnConsumedCapacity as ReturnConsumedCapacity);
    if (consumed) rest.ConsumedCapacity = { ...consumed, TableName: tableName };
  }
  // The stored JSON is the item's canonical text: without a projection it is the answer's Item as is.
  if (found?.json !== undefined && !expressions.compiled.projection) return JsonText.withMember('Item', found.json, rest);
  return found ? { Item: projectItem(expressions, found.item), ...rest } : rest;
};

export const itemOperations: Record<string, OperationHandler> = {
  PutItem: putItem,
  GetItem: getItem,
  UpdateItem: updateItem,
  DeleteItem: deleteItem,
};
