import {
  compileExpressions,
  validationError,
  type AttributeValue,
  type CompiledExpressions,
  type Item,
} from '@shoal/model';
import { optionalMap, optionalString, optionalStringMap, type RequestBody } from './request.ts';

/**
 * The expressions of one item operation, read from the request: the expression parameters, or the
 * legacy ones (Expected, AttributeUpdates, KeyConditions, QueryFilter, ScanFilter, AttributesToGet)
 * translated to expressions. Compiled once here so every syntax and placeholder error surfaces before
 * anything is read or written; the strings travel on to the partition, which compiles them again.
 */
export interface ExpressionStrings {
  condition?: string;
  update?: string;
  projection?: string;
  keyCondition?: string;
  filter?: string;
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

export interface ItemExpressions {
  strings: ExpressionStrings;
  compiled: CompiledExpressions;
}

/** The expression parameters an operation accepts. */
export type ExpressionParameter =
  | 'ConditionExpression'
  | 'UpdateExpression'
  | 'ProjectionExpression'
  | 'KeyConditionExpression'
  | 'FilterExpression';

const STRING_OF: Record<ExpressionParameter, keyof ExpressionStrings> = {
  ConditionExpression: 'condition',
  UpdateExpression: 'update',
  ProjectionExpression: 'projection',
  KeyConditionExpression: 'keyCondition',
  FilterExpression: 'filter',
};

export type LegacyParameter =
  | 'Expected'
  | 'ConditionalOperator'
  | 'AttributeUpdates'
  | 'KeyConditions'
  | 'QueryFilter'
  | 'ScanFilter'
  | 'AttributesToGet';

/** Which expression and legacy parameters an operation has; DynamoDB ignores any others. */
export interface ExpressionParameters {
  expressions: readonly ExpressionParameter[];
  legacy: readonly LegacyParameter[];
}

export function readItemExpressions(body: RequestBody, parameters: ExpressionParameters): ItemExpressions {
  const own: RequestBody = {};
  for (const name of [...parameters.expressions, ...parameters.legacy, 'ExpressionAttributeNames', 'ExpressionAttributeValues']) {
    if (body[name] !== undefined && body[name] !== null) own[name] = body[name];
  }
  const strings: ExpressionStrings = {};
  for (const parameter of parameters.expressions) {
    const source = optionalString(body, parameter);
    if (source !== undefined) (strings as Record<string, unknown>)[STRING_OF[parameter]] = source;
  }
  const names = optionalStringMap(body, 'ExpressionAttributeNames');
  const values = optionalMap(body, 'ExpressionAttributeValues') as Record<string, AttributeValue> | undefined;
  if (names !== undefined) strings.names = names;
  if (values !== undefined) strings.values = values;

  // The legacy parameters' translation lands with the expression layer's legacyToExpressions.
  const legacy = parameters.legacy.find((name) => own[name] !== undefined);
  if (legacy !== undefined) throw validationError(`Shoal does not support the legacy parameter ${legacy} yet`);

  return { strings, compiled: compileExpressions(strings) };
}

/** The projection of an item, or the whole item when the request has no projection. */
export function projectItem(expressions: ItemExpressions, item: Item): Item {
  return expressions.compiled.projection ? expressions.compiled.projection.apply(item) : item;
}

/** The top-level attribute names a filter reads (a filter may not read key attributes). */
export function filterAttributeNames(expressions: ItemExpressions): string[] {
  return expressions.compiled.filter ? expressions.compiled.filter.paths.map((path) => String(path[0])) : [];
}
