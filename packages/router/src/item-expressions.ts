import {
  compileExpressions,
  legacyToExpressions,
  rejectMixedParameters,
  type AttributeValue,
  type CompiledExpressions,
  type ExpressionRequest,
  type Item,
} from '@shoal/model';
import { optionalMap, optionalString, optionalStringList, optionalStringMap, type RequestBody } from './request.ts';

/**
 * The expressions of one item operation, read from the request: the expression parameters, or the
 * legacy ones (Expected, AttributeUpdates, KeyConditions, QueryFilter, ScanFilter, AttributesToGet)
 * translated to expressions. Compiled once here so every syntax and placeholder error surfaces before
 * anything is read or written; the strings travel on to the partition, which compiles them again.
 */
export interface ItemExpressions {
  strings: ExpressionRequest;
  compiled: CompiledExpressions;
}

/** The expression parameters an operation accepts. */
export type ExpressionParameter =
  | 'ConditionExpression'
  | 'UpdateExpression'
  | 'ProjectionExpression'
  | 'KeyConditionExpression'
  | 'FilterExpression';

const EXPRESSION_FIELDS = ['condition', 'update', 'projection', 'keyCondition', 'filter'] as const;
type ExpressionField = (typeof EXPRESSION_FIELDS)[number];

const STRING_OF: Record<ExpressionParameter, ExpressionField> = {
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

/**
 * Which expression and legacy parameters an operation has, in DynamoDB's order for its messages;
 * DynamoDB ignores any others. ConditionalOperator, where not listed, still joins the conditions of
 * Expected but does not count as mixing the two forms.
 */
export interface ExpressionParameters {
  expressions: readonly ExpressionParameter[];
  legacy: readonly LegacyParameter[];
  conditionalOperator?: boolean;
}

/** The request members each operation's parameters read, listed once per parameters object. */
const membersOf = new WeakMap<ExpressionParameters, readonly string[]>();

function expressionMembers(parameters: ExpressionParameters): readonly string[] {
  let members = membersOf.get(parameters);
  if (members === undefined) {
    members = [...parameters.expressions, ...parameters.legacy, 'ExpressionAttributeNames', 'ExpressionAttributeValues'];
    if (parameters.conditionalOperator) members = [...members, 'ConditionalOperator'];
    membersOf.set(parameters, members);
  }
  return members;
}

export function readItemExpressions(body: RequestBody, parameters: ExpressionParameters): ItemExpressions {
  const own: RequestBody = {};
  let present = false;
  for (const name of expressionMembers(parameters)) {
    if (body[name] !== undefined && body[name] !== null) {
      own[name] = body[name];
      present = true;
    }
  }
  // Most requests (a plain GetItem or PutItem) have none: nothing to check, translate or compile.
  if (!present) return { strings: {}, compiled: {} };
  rejectMixedParameters(own, parameters.expressions, parameters.legacy);

  const strings: ExpressionRequest = {};
  for (const parameter of parameters.expressions) {
    const source = optionalString(own, parameter);
    if (source !== undefined) strings[STRING_OF[parameter]] = source;
  }
  const names = optionalStringMap(own, 'ExpressionAttributeNames');
  const values = optionalMap(own, 'ExpressionAttributeValues') as Record<string, AttributeValue> | undefined;
  if (names !== undefined) strings.names = names;
  if (values !== undefined) strings.values = values;

  // A request uses one form or the other, so the translation's placeholders never meet the client's.
  const legacy = legacyToExpressions({
    Expected: optionalMap(own, 'Expected'),
    ConditionalOperator: optionalString(own, 'ConditionalOperator'),
    AttributeUpdates: optionalMap(own, 'AttributeUpdates'),
    KeyConditions: optionalMap(own, 'KeyConditions'),
    QueryFilter: optionalMap(own, 'QueryFilter'),
    ScanFilter: optionalMap(own, 'ScanFilter'),
    AttributesToGet: optionalStringList(own, 'AttributesToGet'),
  });
  for (const field of EXPRESSION_FIELDS) {
    const translated = legacy[field];
    if (translated !== undefined) strings[field] = translated;
  }
  if (legacy.names) strings.names = { ...strings.names, ...legacy.names };
  if (legacy.values) strings.values = { ...strings.values, ...legacy.values };

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
