import {
  DynamoDbError,
  checkItemSize,
  extractKey,
  setOwn,
  validateItem,
  validateItemKeyAttributes,
  validateKey,
  validationError,
  type Item,
  type TableRecord,
  type TableSchema,
  type WriteOperation,
} from '@shoal/model';
import { CapacityTally, readTally, reportPerTable, writeTally, type ReturnConsumedCapacity } from './capacity.ts';
import { collectionMetricsByTable, RETURN_ITEM_COLLECTION_METRICS } from './items.ts';
import { projectItem, readItemExpressions, type ExpressionParameters, type ItemExpressions } from './item-expressions.ts';
import type { OperationHandler } from './operation.ts';
import {
  Constraints,
  RETURN_CONSUMED_CAPACITY,
  asList,
  asStruct,
  optionalBoolean,
  optionalList,
  optionalMap,
  optionalString,
  tableNameOf,
  type RequestBody,
} from './request.ts';

/** BatchGetItem and BatchWriteItem: independent reads and writes of many items in several tables. */

const MAX_BATCH_GET_KEYS = 100;
const MAX_BATCH_WRITE_REQUESTS = 25;
/** BatchGetItem answers at most 16 MB of items; the keys beyond come back as UnprocessedKeys. */
const MAX_BATCH_GET_BYTES = 16 * 1024 * 1024;
/** A key of BatchGetItem refused by admission control. */
const THROTTLED: unique symbol = Symbol('throttled');

/** A key's identity within one table, for duplicate detection (keys are normalized by validateKey). */
function keyIdentity(schema: TableSchema, key: Item): string {
  return JSON.stringify([key[schema.hashKey.name], schema.rangeKey ? key[schema.rangeKey.name] : null]);
}

/**
 * A request refused by admission control (the partition's or the table's throughput). DynamoDB hands
 * such keys back unprocessed, and raises the error only when nothing of the batch could be done.
 */
function isThrottled(error: unknown): error is DynamoDbError {
  return error instanceof DynamoDbError && error.type === 'ProvisionedThroughputExceededException';
}

function duplicateKeys(): never {
  throw validationError('Provided list of item keys contains duplicates');
}

const GET_EXPRESSIONS: ExpressionParameters = { expressions: ['ProjectionExpression'], legacy: ['AttributesToGet'] };

interface TableGets {
  table: TableRecord;
  /** The table as the request names it (by name or by ARN), which keys the response's maps. */
  tableName: string;
  /** The request's own entry for the table, echoed in UnprocessedKeys. */
  entry: RequestBody;
  keys: Item[];
  consistent: boolean;
  expressions: ItemExpressions;
}

function readReturnConsumedCapacity(body: RequestBody, constraints: Constraints): ReturnConsumedCapacity {
  const mode = optionalString(body, 'ReturnConsumedCapacity');
  constraints.oneOf('returnConsumedCapacity', mode, RETURN_CONSUMED_CAPACITY);
  return (mode ?? 'NONE') as ReturnConsumedCapacity;
}

const batchGetItem: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const requestItems = optionalMap(body, 'RequestItems');
  const returnConsumedCapacity = readReturnConsumedCapacity(body, constraints);
  if (constraints.notNull('requestItems', requestItems)) {
    constraints.length('requestItems', requestItems, 1, MAX_BATCH_GET_KEYS);
  }
  const entries = Object.entries(requestItems ?? {}).map(([tableName, raw]) => {
    const entry = asStruct(raw);
    const path = `requestItems.${tableName}.member`;
    constraints.name(path, tableNameOf(tableName));
    const keys = optionalList(entry, 'Keys');
    if (constraints.notNull(`${path}.keys`, keys)) constraints.length(`${path}.keys`, keys, 1, MAX_BATCH_GET_KEYS);
    const consistent = optionalBoolean(entry, 'ConsistentRead') ?? false;
    return { tableName, entry, keys: keys ?? [], consistent };
  });
  constraints.throwIfAny();

  let totalKeys = 0;
  const tables: TableGets[] = [];
  for (const { tableName, entry, keys, consistent } of entries) {
    const expressions = readItemExpressions(entry, GET_EXPRESSIONS);
    totalKeys += keys.length;
    if (totalKeys > MAX_BATCH_GET_KEYS) throw validationError('Too many items requested for the BatchGetItem call');
    tables.push({
      table: await ctx.requireTable(tableName),
      tableName,
      entry,
      keys: keys as Item[],
      consistent,
      expressions,
    });
  }
  for (const gets of tables) {
    const seen = new Set<string>();
    gets.keys = gets.keys.map((raw) => {
      const key = validateKey(raw, gets.table.schema);
      const identity = keyIdentity(gets.table.schema, key);
      if (seen.has(identity)) duplicateKeys();
      seen.add(identity);
      return key;
    });
  }

  const responses: Record<string, Item[]> = {};
  const unprocessed: Record<string, RequestBody> = {};
  const tallies: CapacityTally[] = [];
  const throttled: DynamoDbError[] = [];
  let responseBytes = 0;
  for (const gets of tables) {
    const schema = gets.table.schema;
    const found = await Promise.all(
      gets.keys.map((key) =>
        ctx.partitions.get({ table: schema, key }, { consistent: gets.consistent }).catch((error: unknown): typeof THROTTLED => {
          if (!isThrottled(error)) throw error;
          throttled.push(error);
          return THROTTLED;
        }),
      ),
    );
    const items: Item[] = [];
    const leftOver: Item[] = [];
    found.forEach((result, position) => {
      if (result === THROTTLED) {
        leftOver.push(gets.keys[position]);
        return;
      }
      if (result && responseBytes + result.size > MAX_BATCH_GET_BYTES) {
        leftOver.push(gets.keys[position]);
        return;
      }
      tallies.push(readTally(schema, result?.size ?? 0, gets.consistent));
      if (!result) return;
      responseBytes += result.size;
      items.push(projectItem(gets.expressions, result.item));
    });
    // Keyed as the request named the table: by name or by ARN.
    setOwn(responses, gets.tableName, items);
    if (leftOver.length > 0) setOwn(unprocessed, gets.tableName, { ...gets.entry, Keys: leftOver });
  }
  if (throttled.length > 0 && throttled.length === totalKeys) throw throttled[0];

  const response: RequestBody = { Responses: responses, UnprocessedKeys: unprocessed };
  const consumed = reportPerTable(tallies, returnConsumedCapacity);
  if (consumed) response.ConsumedCapacity = consumed;
  return response;
};

interface TableWrites {
  table: TableRecord;
  /** The table as the request names it (by name or by ARN), which keys UnprocessedItems. */
  tableName: string;
  operations: WriteOperation[];
  /** The request's own entries, echoed in UnprocessedItems. */
  requests: unknown[];
}

/** One PutRequest or DeleteRequest, validated against its table. */
function batchWriteOperation(raw: unknown, schema: TableSchema): WriteOperation {
  const request = asStruct(raw);
  const put = optionalMap(request, 'PutRequest');
  const del = optionalMap(request, 'DeleteRequest');
  if ((put === undefined) === (del === undefined)) {
    throw validationError(
      'Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes',
    );
  }
  if (put !== undefined) {
    const item = validateItem(put.Item, 'item');
    checkItemSize(item);
    try {
      validateItemKeyAttributes(item, schema);
    } catch (error) {
      // BatchWriteItem reports a missing or mistyped key attribute as a key mismatch.
      if (/Missing the key|Type mismatch for key/.test((error as Error).message)) {
        throw validationError('The provided key element does not match the schema');
      }
      throw error;
    }
    return { table: schema, kind: 'Put', key: extractKey(item, schema), item };
  }
  return { table: schema, kind: 'Delete', key: validateKey((del as RequestBody).Key, schema) };
}

const batchWriteItem: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const requestItems = optionalMap(body, 'RequestItems');
  const returnConsumedCapacity = readReturnConsumedCapacity(body, constraints);
  const returnItemCollectionMetrics = optionalString(body, 'ReturnItemCollectionMetrics');
  constraints.oneOf('returnItemCollectionMetrics', returnItemCollectionMetrics, RETURN_ITEM_COLLECTION_METRICS);
  if (constraints.notNull('requestItems', requestItems)) {
    constraints.length('requestItems', requestItems, undefined, MAX_BATCH_WRITE_REQUESTS);
  }
  const entries = Object.entries(requestItems ?? {}).map(([tableName, raw]) => {
    const requests = raw === null || raw === undefined ? undefined : asList(raw);
    const path = `requestItems.${tableName}.member`;
    constraints.name(path, tableNameOf(tableName));
    // DynamoDB's words (paritysuite/dynamodb-conformance batchWriteItem, captured from DynamoDB): an
    // empty list echoes the map; a long one names the member without its value.
    if (requests?.length === 0) {
      constraints.violation(
        `Value '{${tableName}=[]}' at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to ${MAX_BATCH_WRITE_REQUESTS}, Member must have length greater than or equal to 1]`,
      );
    } else if (requests !== undefined && requests.length > MAX_BATCH_WRITE_REQUESTS) {
      constraints.violation(
        `Value at 'RequestItems.${tableName}.member' failed to satisfy constraint: Member must have length less than or equal to ${MAX_BATCH_WRITE_REQUESTS}`,
      );
    } else {
      constraints.notNull(path, requests);
    }
    return { tableName, requests: requests ?? [] };
  });
  constraints.throwIfAny();
  if (entries.length === 0) throw validationError('The requestItems parameter is required for BatchWriteItem');
  const total = entries.reduce((sum, { requests }) => sum + requests.length, 0);
  if (total > MAX_BATCH_WRITE_REQUESTS) throw validationError('Too many items requested for the BatchWriteItem call');

  // Every request is validated before anything is written.
  const tables: TableWrites[] = [];
  for (const { tableName, requests } of entries) {
    const table = await ctx.requireTable(tableName);
    const seen = new Set<string>();
    const operations = requests.map((raw) => {
      const operation = batchWriteOperation(raw, table.schema);
      const identity = keyIdentity(table.schema, operation.key);
      if (seen.has(identity)) duplicateKeys();
      seen.add(identity);
      return operation;
    });
    tables.push({ table, tableName, operations, requests });
  }

  const returnItems = returnConsumedCapacity !== 'NONE';
  const throttled: DynamoDbError[] = [];
  const unprocessed: Record<string, unknown[]> = {};
  const tallies = await Promise.all(
    tables.flatMap(({ table, tableName, operations, requests }) =>
      operations.map(async (operation, position) => {
        // A request not done (throttled, or its item held by a transaction) goes back to the client
        // in UnprocessedItems; the others are done, so failing the whole call would be a lie.
        const leaveUnprocessed = (): undefined => {
          setOwn(unprocessed, tableName, [...(unprocessed[tableName] ?? []), requests[position]]);
          return undefined;
        };
        let result;
        try {
          result = await ctx.partitions.write({ operations: [operation], returnItems });
        } catch (error) {
          if (!isThrottled(error)) throw error;
          throttled.push(error);
          return leaveUnprocessed();
        }
        const outcome = result.outcomes[0];
        if (outcome.status === 'transactionConflict') return leaveUnprocessed();
        if (outcome.status !== 'ok') {
          throw validationError(outcome.status === 'invalid' ? outcome.message : 'The conditional request failed');
        }
        return writeTally(table.schema, outcome.oldItem, outcome.newItem);
      }),
    ),
  );
  if (throttled.length > 0 && throttled.length === total) throw throttled[0];

  const response: RequestBody = { UnprocessedItems: unprocessed };
  const consumed = reportPerTable(
    tallies.filter((tally) => tally !== undefined),
    returnConsumedCapacity,
  );
  if (consumed) response.ConsumedCapacity = consumed;
  if (returnItemCollectionMetrics === 'SIZE') {
    const metrics = collectionMetricsByTable(tables.flatMap(({ table, operations }) => operations.map((operation) => ({ table, key: operation.key }))));
    if (metrics) response.ItemCollectionMetrics = metrics;
  }
  return response;
};

export const batchOperations: Record<string, OperationHandler> = {
  BatchGetItem: batchGetItem,
  BatchWriteItem: batchWriteItem,
};
