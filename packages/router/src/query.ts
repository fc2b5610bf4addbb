import {
  attributeValuesEqual,
  compareScalars,
  decodeBinary,
  validationError,
  type AttributeValue,
  type SortKeyCondition,
} from '@shoal/model';
import { filterAttributeNames, type ExpressionParameters } from './item-expressions.ts';
import type { OperationHandler } from './operation.ts';
import { prepareRangeRead, readPage, readRangeParameters } from './read-range.ts';
import { Constraints, optionalBoolean } from './request.ts';

/** Query: the items of one partition key value of the table or an index, in sort key order. */

const QUERY_EXPRESSIONS: ExpressionParameters = {
  expressions: ['ProjectionExpression', 'FilterExpression', 'KeyConditionExpression'],
  legacy: ['AttributesToGet', 'QueryFilter', 'ConditionalOperator', 'KeyConditions'],
};

/** Whether a sort key value satisfies a key condition's sort key part. */
function satisfies(value: AttributeValue, condition: SortKeyCondition): boolean {
  const [bound, upper] = condition.values;
  const order = compareScalars(value, bound);
  if (order === undefined) return false;
  switch (condition.op) {
    case 'EQ':
      return order === 0;
    case 'LT':
      return order < 0;
    case 'LE':
      return order <= 0;
    case 'GT':
      return order > 0;
    case 'GE':
      return order >= 0;
    case 'BETWEEN':
      return order >= 0 && (compareScalars(value, upper) ?? 1) <= 0;
    case 'BEGINS_WITH':
      if ('S' in value && 'S' in bound) return value.S.startsWith(bound.S);
      if ('B' in value && 'B' in bound) {
        const prefix = decodeBinary(bound.B);
        return decodeBinary(value.B).subarray(0, prefix.length).equals(prefix);
      }
      return false;
  }
}

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
    const startRange = keys.rangeKey && request.exclusiveStartKey[keys.rangeKey.name];
    if (sortCondition && startRange && !satisfies(startRange, sortCondition)) {
      throw validationError('The provided starting key does not match the range key predicate');
    }
  }

  request.hashValue = hashValue;
  if (sortCondition) request.sortCondition = sortCondition;
  request.forward = forward;
  return readPage(ctx, prepared);
};

export const queryOperations: Record<string, OperationHandler> = { Query: query };
