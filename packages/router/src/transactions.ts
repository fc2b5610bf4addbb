import {
  checkItemSize,
  DynamoDbError,
  extractKey,
  itemSize,
  KeyTypeMismatchError,
  TRANSACTION_CAPACITY_FACTOR,
  validateItem,
  validateItemKeyAttributes,
  validateKey,
  validationError,
  type Item,
  type PartitionWriteResult,
  type TableRecord,
  type WriteKind,
  type WriteOperation,
  type WriteOutcome,
} from '@shoal/model';
import { readTally, reportPerTable, writeTally, type CapacityTally, type ConsumedCapacity, type ReturnConsumedCapacity } from './capacity.ts';
import {
  claimOperation,
  claimState,
  clientTokenTable,
  idempotentParameterMismatch,
  requestDigest,
  transactionInProgress,
} from './client-request-tokens.ts';
import { projectItem, readItemExpressions, type ExpressionParameters, type ItemExpressions } from './item-expressions.ts';
import { collectionMetricsByTable, RETURN_ITEM_COLLECTION_METRICS, withExpressions } from './items.ts';
import type { EngineContext, OperationHandler } from './operation.ts';
import {
  Constraints,
  RETURN_CONSUMED_CAPACITY,
  asStruct,
  optionalList,
  optionalMap,
  optionalString,
  type RequestBody,
} from './request.ts';
import { RETURN_VALUES_ON_CONDITION_CHECK_FAILURE } from './return-values.ts';

/** TransactWriteItems and TransactGetItems: up to 100 actions, all or nothing. */

const MAX_TRANSACTION_ACTIONS = 100;
/** The aggregate size of the items a transaction writes. */
const MAX_TRANSACTION_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_LENGTH = 36;

/** The member of a TransactItem naming each write kind. */
const ACTION_MEMBERS: Record<string, WriteKind> = {
  ConditionCheck: 'ConditionCheck',
  Put: 'Put',
  Delete: 'Delete',
  Update: 'Update',
};

const ACTION_EXPRESSIONS: Record<WriteKind, ExpressionParameters> = {
  ConditionCheck: { expressions: ['ConditionExpression'], legacy: [] },
  Put: { expressions: ['ConditionExpression'], legacy: [] },
  Delete: { expressions: ['ConditionExpression'], legacy: [] },
  Update: { expressions: ['UpdateExpression', 'ConditionExpression'], legacy: [] },
};

/** One action of a transaction, read from the request and validated against its table. */
interface TransactionAction {
  table: TableRecord;
  operation: WriteOperation;
  returnOldOnConditionFailure: boolean;
}

/** An action whose key (or index key) has the wrong type: it cancels the transaction with this reason. */
interface RefusedAction {
  refusal: string;
}

/** An action as read from the request, before its table is known. */
interface RawAction {
  kind: WriteKind;
  member: RequestBody;
  tableName: string;
  expressions: ItemExpressions;
}

function readActionMember(raw: unknown, position: number, constraints: Constraints): { kind: WriteKind; member: RequestBody } {
  const transactItem = asStruct(raw);
  const present = Object.keys(ACTION_MEMBERS).filter((name) => transactItem[name] !== undefined && transactItem[name] !== null);
  if (present.length !== 1) throw validationError('TransactItems can only contain one of Check, Put, Update or Delete');
  const name = present[0];
  const kind = ACTION_MEMBERS[name];
  const member = asStruct(transactItem[name]);
  const path = `transactItems.${position}.member.${name.charAt(0).toLowerCase()}${name.slice(1)}`;
  constraints.tableNameOrArn(`${path}.tableName`, optionalString(member, 'TableName'));
  constraints.oneOf(
    `${path}.returnValuesOnConditionCheckFailure`,
    optionalString(member, 'ReturnValuesOnConditionCheckFailure'),
    RETURN_VALUES_ON_CONDITION_CHECK_FAILURE,
  );
  if (kind === 'Put') constraints.notNull(`${path}.item`, optionalMap(member, 'Item'));
  else constraints.notNull(`${path}.key`, optionalMap(member, 'Key'));
  if (kind === 'Update') constraints.notNull(`${path}.updateExpression`, optionalString(member, 'UpdateExpression'));
  if (kind === 'ConditionCheck') {
    constraints.notNull(`${path}.conditionExpression`, optionalString(member, 'ConditionExpression'));
  }
  return { kind, member };
}

async function resolveAction(ctx: EngineContext, raw: RawAction): Promise<TransactionAction | RefusedAction> {
  const table = await ctx.requireTable(raw.tableName);
  const schema = table.schema;
  let operation: WriteOperation;
  try {
    if (raw.kind === 'Put') {
      const item = validateItem(raw.member.Item, 'item');
      checkItemSize(item);
      validateItemKeyAttributes(item, schema);
      operation = { table: schema, kind: 'Put', key: extractKey(item, schema), item };
    } else {
      operation = { table: schema, kind: raw.kind, key: validateKey(raw.member.Key, schema) };
    }
  } catch (error) {
    if (error instanceof KeyTypeMismatchError) return { refusal: error.message };
    throw error;
  }
  return {
    table,
    operation: withExpressions(operation, raw.expressions),
    returnOldOnConditionFailure: optionalString(raw.member, 'ReturnValuesOnConditionCheckFailure') === 'ALL_OLD',
  };
}

/** An item's identity across tables, for the one-action-per-item rule. */
function itemIdentity(table: TableRecord, key: Item): string {
  const { hashKey, rangeKey } = table.schema;
  return JSON.stringify([table.schema.name, key[hashKey.name], rangeKey ? key[rangeKey.name] : null]);
}

function rejectRepeatedItems(keys: { table: TableRecord; key: Item }[]): void {
  const seen = new Set<string>();
  for (const { table, key } of keys) {
    const identity = itemIdentity(table, key);
    if (seen.has(identity)) throw validationError('Transaction request cannot include multiple operations on one item');
    seen.add(identity);
  }
}

/**
 * Applies a transaction's operations as one partition write, atomic across its tables, and returns
 * the outcomes in request order. On one node every table lives in one store; this is where a cluster
 * splits a transaction by partition and coordinates the parts.
 */
function applyTransaction(ctx: EngineContext, operations: WriteOperation[], returnItems: boolean): Promise<PartitionWriteResult> {
  return ctx.partitions.write({ operations, returnItems });
}

/** Another transaction holds the item. */
function transactionConflictReason(): RequestBody {
  return { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' };
}

function cancellationReason(outcome: WriteOutcome, action: TransactionAction): RequestBody {
  if (outcome.status === 'conditionFailed') {
    const reason: RequestBody = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' };
    if (action.returnOldOnConditionFailure && outcome.item) reason.Item = outcome.item;
    return reason;
  }
  if (outcome.status === 'invalid') return { Code: 'ValidationError', Message: outcome.message };
  if (outcome.status === 'transactionConflict') return transactionConflictReason();
  return { Code: 'None' };
}

function transactionCanceled(reasons: RequestBody[]): DynamoDbError {
  const codes = reasons.map((reason) => reason.Code).join(', ');
  return new DynamoDbError(
    'TransactionCanceledException',
    `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes}]`,
    { CancellationReasons: reasons },
  );
}

const transactWriteItems: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const transactItems = optionalList(body, 'TransactItems');
  const token = optionalString(body, 'ClientRequestToken');
  const returnConsumedCapacity = optionalString(body, 'ReturnConsumedCapacity');
  constraints.oneOf('returnConsumedCapacity', returnConsumedCapacity, RETURN_CONSUMED_CAPACITY);
  const returnItemCollectionMetrics = optionalString(body, 'ReturnItemCollectionMetrics');
  constraints.oneOf('returnItemCollectionMetrics', returnItemCollectionMetrics, RETURN_ITEM_COLLECTION_METRICS);
  constraints.length('clientRequestToken', token, 1, MAX_TOKEN_LENGTH);
  if (constraints.notNull('transactItems', transactItems)) {
    constraints.length('transactItems', transactItems, 1, MAX_TRANSACTION_ACTIONS);
  }
  const members = (transactItems ?? []).map((raw, position) => readActionMember(raw, position + 1, constraints));
  constraints.throwIfAny();

  const rawActions: RawAction[] = members.map(({ kind, member }) => ({
    kind,
    member,
    tableName: optionalString(member, 'TableName') as string,
    expressions: readItemExpressions(member, ACTION_EXPRESSIONS[kind]),
  }));
  const resolved: (TransactionAction | RefusedAction)[] = [];
  for (const raw of rawActions) resolved.push(await resolveAction(ctx, raw));
  const actions = resolved.filter((action): action is TransactionAction => !('refusal' in action));
  rejectRepeatedItems(actions.map((action) => ({ table: action.table, key: action.operation.key })));
  if (actions.length < resolved.length) {
    // Nothing is written; the other actions are reported as not having failed.
    throw transactionCanceled(
      resolved.map((action): RequestBody => ('refusal' in action ? { Code: 'ValidationError', Message: action.refusal } : { Code: 'None' })),
    );
  }
  const bytes = actions.reduce((sum, action) => sum + (action.operation.item ? itemSize(action.operation.item) : 0), 0);
  if (bytes > MAX_TRANSACTION_BYTES) {
    throw validationError('Transaction request size exceeds the maximum allowed size of 4 MB');
  }

  // With a token, the transaction claims it too (client-request-tokens.ts): its first operation.
  const claim = token === undefined ? undefined : await claimFor(ctx, token, body);
  const mode = (returnConsumedCapacity ?? 'NONE') as ReturnConsumedCapacity;
  const operations = actions.map((action) => action.operation);
  const result = await applyTransaction(
    ctx,
    claim === undefined ? operations : [claim.operation, ...operations],
    mode !== 'NONE' || actions.some((action) => action.returnOldOnConditionFailure),
  );
  const outcomes = claim === undefined ? result.outcomes : result.outcomes.slice(1);
  if (claim !== undefined) {
    switch (claimState(result.outcomes[0], claim.digest)) {
      case 'inProgress':
        throw transactionInProgress();
      case 'mismatch':
        throw idempotentParameterMismatch();
      case 'replay':
        // Done before: nothing applied now; the capacity is that of reading the items (DynamoDB's answer).
        return transactionResponse(actions, returnItemCollectionMetrics, reportPerTable(actions.map(replayReadTally), mode));
      case 'claimed':
        break;
    }
  }
  if (!result.applied) {
    throw transactionCanceled(outcomes.map((outcome, position) => cancellationReason(outcome, actions[position])));
  }
  const tallies = outcomes.map((outcome, position) => {
    const tally = transactionalWriteTally(actions[position], outcome);
    tally.scale(TRANSACTION_CAPACITY_FACTOR);
    return tally;
  });
  return transactionResponse(actions, returnItemCollectionMetrics, reportPerTable(tallies, mode));
};

/** The claim of a request's token: the operation, and the digest of the request it claims it for. */
async function claimFor(ctx: EngineContext, token: string, body: RequestBody): Promise<{ operation: WriteOperation; digest: string }> {
  const { ClientRequestToken: _token, ...request } = body;
  const digest = requestDigest(request);
  const table = await clientTokenTable(ctx.catalog, ctx.now);
  return { operation: claimOperation(table, token, digest, ctx.now()), digest };
}

function transactionResponse(
  actions: TransactionAction[],
  returnItemCollectionMetrics: string | undefined,
  consumed: ConsumedCapacity[] | undefined,
): RequestBody {
  const response: RequestBody = {};
  if (consumed) response.ConsumedCapacity = consumed;
  if (returnItemCollectionMetrics === 'SIZE') {
    const written = actions.filter((action) => action.operation.kind !== 'ConditionCheck');
    const metrics = collectionMetricsByTable(written.map((action) => ({ table: action.table, key: action.operation.key })));
    if (metrics) response.ItemCollectionMetrics = metrics;
  }
  return response;
}

/** A transactional read of one item (its size unknown here: the least a read costs). */
function replayReadTally(action: TransactionAction): CapacityTally {
  const tally = readTally(action.table.schema, 0, true);
  tally.scale(TRANSACTION_CAPACITY_FACTOR);
  return tally;
}

/** A condition check costs a write of the item checked; it writes no index entry. */
function transactionalWriteTally(action: TransactionAction, outcome: WriteOutcome): CapacityTally {
  const schema = action.table.schema;
  const oldItem = outcome.status === 'ok' ? outcome.oldItem : undefined;
  if (action.operation.kind === 'ConditionCheck') return writeTally(schema, oldItem, oldItem);
  return writeTally(schema, oldItem, outcome.status === 'ok' ? outcome.newItem : undefined);
}

const GET_EXPRESSIONS: ExpressionParameters = { expressions: ['ProjectionExpression'], legacy: [] };

const transactGetItems: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const transactItems = optionalList(body, 'TransactItems');
  const returnConsumedCapacity = optionalString(body, 'ReturnConsumedCapacity');
  constraints.oneOf('returnConsumedCapacity', returnConsumedCapacity, RETURN_CONSUMED_CAPACITY);
  if (constraints.notNull('transactItems', transactItems)) {
    constraints.length('transactItems', transactItems, 1, MAX_TRANSACTION_ACTIONS);
  }
  const gets = (transactItems ?? []).map((raw, position) => {
    const get = optionalMap(asStruct(raw), 'Get');
    const path = `transactItems.${position + 1}.member.get`;
    if (!constraints.notNull(path, get)) return undefined;
    const member = get as RequestBody;
    constraints.tableNameOrArn(`${path}.tableName`, optionalString(member, 'TableName'));
    constraints.notNull(`${path}.key`, optionalMap(member, 'Key'));
    return member;
  });
  constraints.throwIfAny();

  const reads: { table: TableRecord; key: Item; expressions: ItemExpressions }[] = [];
  for (const member of gets as RequestBody[]) {
    const expressions = readItemExpressions(member, GET_EXPRESSIONS);
    const table = await ctx.requireTable(optionalString(member, 'TableName'));
    reads.push({ table, key: validateKey(member.Key, table.schema), expressions });
  }
  rejectRepeatedItems(reads);

  // Unconditional condition checks that return the items read every table's items at one instant.
  const checks = reads.map((read): WriteOperation => ({ table: read.table.schema, kind: 'ConditionCheck', key: read.key }));
  const { applied, outcomes } = await applyTransaction(ctx, checks, true);
  // Only another transaction holding an item stops unconditional checks.
  if (!applied) throw transactionCanceled(outcomes.map((outcome) => (outcome.status === 'transactionConflict' ? transactionConflictReason() : { Code: 'None' })));
  const tallies: CapacityTally[] = [];
  const responses = outcomes.map((outcome, position) => {
    const read = reads[position];
    const item = outcome.status === 'ok' ? outcome.oldItem : undefined;
    const tally = readTally(read.table.schema, item ? itemSize(item) : 0, true);
    tally.scale(TRANSACTION_CAPACITY_FACTOR);
    tallies.push(tally);
    return item ? { Item: projectItem(read.expressions, item) } : {};
  });
  const response: RequestBody = { Responses: responses };
  const consumed = reportPerTable(tallies, (returnConsumedCapacity ?? 'NONE') as ReturnConsumedCapacity);
  if (consumed) response.ConsumedCapacity = consumed;
  return response;
};

export const transactionOperations: Record<string, OperationHandler> = {
  TransactWriteItems: transactWriteItems,
  TransactGetItems: transactGetItems,
};
