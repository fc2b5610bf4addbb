import { attributeValuesEqual, validationError } from '@shoal/model';
import { filterAttributeNames, type ExpressionParameters } from './item-expressions.ts';
import type { OperationHandler } from './operation.ts';
import { prepareRangeRead, readPage, readRangeParameters } from './read-range.ts';
import { Constraints, optionalBoolean } from './request.ts';

/** Query: the items of one partition key value of the table or an index, in sort key order. */

const QUERY_EXPRESSIONS: ExpressionParameters = {
  expressions: ['ProjectionExpression', 'FilterExpression', 'KeyConditionExpression'],
  legacy: ['AttributesToGet', 'QueryFilter', 'ConditionalOperator', 'KeyConditions'],
};

const query: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const parameters = readRangeParameters(body, constraints);
  const forward = optionalBoolean(body, 'ScanIndexForward') ?? true;
  constraints.throwIfAny();
  if (body.KeyConditions == null && body.KeyConditionExpression == null) {
    throw validationError('Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.');
  }

  const prepared = await prepareRangeRead(body, ctx, parameters, QUERY_EXPRESSIONS);
  const { request, expressions } = prepared;
  const keys = prepared.index ?? prepared.table.schema;
  const keyCondition = expressions.compiled.keyCondition;
  if (!keyCondition) throw validationError('Query key condition not supported');
  const { hashValue, sortCondition } = keyCondition.resolve(keys.hashKey, keys.rangeKey);

  const filterParameter = body.QueryFilter != null ? 'QueryFilter' : 'Filter Expression';
  const filtered = new Set(filterAttributeNames(expressions));
  for (const key of keys.rangeKey ? [keys.hashKey, keys.rangeKey] : [keys.hashKey]) {
    if (filtered.has(key.name)) {
      throw validationError(
        `${filterParameter} can only contain non-primary key attributes: Primary key attribute: ${key.name}`,
      );
    }
  }

  if (request.exclusiveStartKey) {
    const startHash = request.exclusiveStartKey[keys.hashKey.name];
    if (!attributeValuesEqual(startHash, hashValue)) {
      throw validationError('The provided starting key is outside query boundaries based on provided conditions');
    }
  }

  request.hashValue = hashValue;
  if (sortCondition) request.sortCondition = sortCondition;
  request.forward = forward;
  return readPage(ctx, prepared);
};

export const queryOperations: Record<string, OperationHandler> = { Query: query };
