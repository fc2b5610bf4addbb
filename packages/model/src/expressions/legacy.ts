/**
 * DynamoDB's legacy conditional parameters (Expected, AttributeUpdates, KeyConditions, QueryFilter,
 * ScanFilter, AttributesToGet), translated into equivalent expressions so that one engine serves both.
 * Generated placeholders (#legacyN, :legacyN) cannot clash with a client's, since a request may not mix
 * the two forms.
 */
import type { AttributeType, AttributeValue } from '../attribute-value.ts';
import { validationError } from '../errors.ts';
import { validateAttributeValue } from '../validation.ts';
import { attributeTypeOf, compareScalars } from '../values.ts';
import type { ExpressionRequest } from './compile.ts';
import { WRONG_DATA_TYPE } from './update.ts';

export interface LegacyParameters {
  Expected?: Record<string, unknown>;
  ConditionalOperator?: string;
  AttributeUpdates?: Record<string, unknown>;
  KeyConditions?: Record<string, unknown>;
  QueryFilter?: Record<string, unknown>;
  ScanFilter?: Record<string, unknown>;
  AttributesToGet?: string[];
}

const INVALID = 'One or more parameter values were invalid: ';

type ComparisonOperator =
  | 'EQ'
  | 'NE'
  | 'LE'
  | 'LT'
  | 'GE'
  | 'GT'
  | 'NOT_NULL'
  | 'NULL'
  | 'CONTAINS'
  | 'NOT_CONTAINS'
  | 'BEGINS_WITH'
  | 'IN'
  | 'BETWEEN';

/** How many values each operator takes: an exact count, or at least one for IN. */
const ARGUMENT_COUNTS: Readonly<Record<ComparisonOperator, number | 'some'>> = {
  EQ: 1,
  NE: 1,
  LE: 1,
  LT: 1,
  GE: 1,
  GT: 1,
  NOT_NULL: 0,
  NULL: 0,
  CONTAINS: 1,
  NOT_CONTAINS: 1,
  BEGINS_WITH: 1,
  IN: 'some',
  BETWEEN: 2,
};

const SCALARS: readonly AttributeType[] = ['S', 'N', 'B'];
const SCALARS_AND_SETS: readonly AttributeType[] = ['S', 'N', 'B', 'SS', 'NS', 'BS'];
/** The value types each operator accepts. */
const ACCEPTED_TYPES: Readonly<Partial<Record<ComparisonOperator, readonly AttributeType[]>>> = {
  EQ: SCALARS_AND_SETS,
  NE: SCALARS_AND_SETS,
  LE: SCALARS,
  LT: SCALARS,
  GE: SCALARS,
  GT: SCALARS,
  CONTAINS: SCALARS,
  NOT_CONTAINS: SCALARS,
  BEGINS_WITH: ['S', 'B'],
  IN: SCALARS,
  BETWEEN: SCALARS,
};

/** Operators a key condition cannot use. */
const NOT_INDEXABLE = new Set<ComparisonOperator>(['NULL', 'NOT_NULL', 'NE', 'CONTAINS', 'NOT_CONTAINS', 'IN']);

const COMPARATOR_SYMBOLS: Readonly<Partial<Record<ComparisonOperator, string>>> = {
  EQ: '=',
  NE: '<>',
  LE: '<=',
  LT: '<',
  GE: '>=',
  GT: '>',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Hands out placeholders for one request. */
class PlaceholderAllocator {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, AttributeValue> = {};
  private readonly nameOf = new Map<string, string>();
  private valueCount = 0;

  name(attribute: string): string {
    let placeholder = this.nameOf.get(attribute);
    if (placeholder === undefined) {
      placeholder = `#legacy${this.nameOf.size}`;
      this.nameOf.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  value(value: AttributeValue): string {
    const placeholder = `:legacy${this.valueCount++}`;
    this.values[placeholder] = value;
    return placeholder;
  }
}

function attributeValue(raw: unknown): AttributeValue {
  return validateAttributeValue(raw);
}

function comparisonOperator(raw: unknown): ComparisonOperator {
  if (typeof raw !== 'string' || !Object.hasOwn(ARGUMENT_COUNTS, raw)) {
    throw validationError(
      `1 validation error detected: Value '${String(raw)}' at 'comparisonOperator' failed to satisfy constraint: ` +
        `Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]`,
    );
  }
  return raw as ComparisonOperator;
}

/** Checks an operator's values as DynamoDB does and returns the expression for one attribute. */
function comparison(
  op: ComparisonOperator,
  values: AttributeValue[],
  placeholder: string,
  allocator: PlaceholderAllocator,
): string {
  const count = ARGUMENT_COUNTS[op];
  if (count === 'some' ? values.length === 0 : values.length !== count) {
    throw validationError(`${INVALID}Invalid number of argument(s) for the ${op} ComparisonOperator`);
  }
  if (values.length > 0) {
    const firstType = attributeTypeOf(values[0]);
    if (values.some((v) => attributeTypeOf(v) !== firstType)) {
      throw validationError(`${INVALID}AttributeValues inside AttributeValueList must be of same type`);
    }
    const accepted = ACCEPTED_TYPES[op];
    if (accepted !== undefined && !accepted.includes(firstType)) {
      throw validationError(`${INVALID}ComparisonOperator ${op} is not valid for ${firstType} AttributeValue type`);
    }
    if (op === 'BETWEEN' && (compareScalars(values[0], values[1]) ?? 0) > 0) {
      throw validationError('The BETWEEN condition was provided a range where the lower bound is greater than the upper bound');
    }
  }
  const refs = values.map((v) => allocator.value(v));
  switch (op) {
    case 'NULL':
      return `attribute_not_exists(${placeholder})`;
    case 'NOT_NULL':
      return `attribute_exists(${placeholder})`;
    case 'CONTAINS':
      return `contains(${placeholder}, ${refs[0]})`;
    case 'NOT_CONTAINS':
      return `NOT contains(${placeholder}, ${refs[0]})`;
    case 'BEGINS_WITH':
      return `begins_with(${placeholder}, ${refs[0]})`;
    case 'IN':
      return `${placeholder} IN (${refs.join(', ')})`;
    case 'BETWEEN':
      return `${placeholder} BETWEEN ${refs[0]} AND ${refs[1]}`;
    default:
      return `${placeholder} ${COMPARATOR_SYMBOLS[op]} ${refs[0]}`;
  }
}

function valueList(condition: Record<string, unknown>): AttributeValue[] {
  const list = condition.AttributeValueList;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw validationError(`${INVALID}AttributeValueList must be a list`);
  return list.map(attributeValue);
}

function joiner(conditionalOperator: string | undefined): string {
  if (conditionalOperator === undefined || conditionalOperator === 'AND') return ' AND ';
  if (conditionalOperator === 'OR') return ' OR ';
  throw validationError(
    `1 validation error detected: Value '${conditionalOperator}' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [OR, AND]`,
  );
}

/** One Expected entry: the Exists/Value form or the ComparisonOperator form. */
function expectedCondition(attribute: string, raw: unknown, allocator: PlaceholderAllocator): string {
  const condition = isRecord(raw) ? raw : {};
  const has = (field: string) => condition[field] !== undefined && condition[field] !== null;
  if (has('AttributeValueList') && has('Value')) {
    throw validationError(`${INVALID}Value and AttributeValueList cannot be used together for Attribute: ${attribute}`);
  }
  const placeholder = allocator.name(attribute);
  if (has('ComparisonOperator')) {
    if (has('Exists')) {
      throw validationError(`${INVALID}Exists and ComparisonOperator cannot be used together for Attribute: ${attribute}`);
    }
    const op = comparisonOperator(condition.ComparisonOperator);
    if (op !== 'NULL' && op !== 'NOT_NULL' && !has('AttributeValueList') && !has('Value')) {
      throw validationError(`${INVALID}Value or AttributeValueList must be used with ComparisonOperator: ${op} for Attribute: ${attribute}`);
    }
    const values = has('Value') ? [attributeValue(condition.Value)] : valueList(condition);
    return comparison(op, values, placeholder, allocator);
  }
  if (has('AttributeValueList')) {
    throw validationError(`${INVALID}AttributeValueList can only be used with a ComparisonOperator for Attribute: ${attribute}`);
  }
  const exists = condition.Exists;
  if (exists !== false) {
    if (!has('Value')) {
      const shown = exists === undefined || exists === null ? 'null' : String(exists);
      throw validationError(`${INVALID}Value must be provided when Exists is ${shown} for Attribute: ${attribute}`);
    }
    return `${placeholder} = ${allocator.value(attributeValue(condition.Value))}`;
  }
  if (has('Value')) {
    throw validationError(`${INVALID}Value cannot be used when Exists is false for Attribute: ${attribute}`);
  }
  return `attribute_not_exists(${placeholder})`;
}

/** A QueryFilter, ScanFilter or KeyConditions entry: always the ComparisonOperator form. */
function filterCondition(attribute: string, raw: unknown, allocator: PlaceholderAllocator, forKey: boolean): string {
  const condition = isRecord(raw) ? raw : {};
  const op = comparisonOperator(condition.ComparisonOperator);
  const values = valueList(condition);
  const expression = comparison(op, values, allocator.name(attribute), allocator);
  if (forKey && NOT_INDEXABLE.has(op)) throw validationError('Attempted conditional constraint is not an indexable operation');
  return expression;
}

function combined(
  conditions: Record<string, unknown>,
  separator: string,
  translate: (attribute: string, condition: unknown) => string,
): string | undefined {
  const parts = Object.entries(conditions).map(([attribute, condition]) => translate(attribute, condition));
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : parts.map((p) => `(${p})`).join(separator);
}

function updateAction(attribute: string, raw: unknown, allocator: PlaceholderAllocator): { section: 'SET' | 'REMOVE' | 'ADD' | 'DELETE'; clause: string } {
  const update = isRecord(raw) ? raw : {};
  const action = update.Action ?? 'PUT';
  const hasValue = update.Value !== undefined && update.Value !== null;
  const placeholder = allocator.name(attribute);
  if (action !== 'PUT' && action !== 'ADD' && action !== 'DELETE') {
    throw validationError(
      `1 validation error detected: Value '${String(action)}' at 'attributeUpdates.${attribute}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]`,
    );
  }
  if (!hasValue) {
    if (action !== 'DELETE') throw validationError(`${INVALID}Only DELETE action is allowed when no attribute value is specified`);
    return { section: 'REMOVE', clause: placeholder };
  }
  const value = attributeValue(update.Value);
  const type = attributeTypeOf(value);
  if (action === 'PUT') return { section: 'SET', clause: `${placeholder} = ${allocator.value(value)}` };
  const isSet = type === 'SS' || type === 'NS' || type === 'BS';
  if (action === 'DELETE') {
    if (!isSet) throw validationError(`${INVALID}DELETE action with value is not supported for the type ${type}`);
    return { section: 'DELETE', clause: `${placeholder} ${allocator.value(value)}` };
  }
  if (type === 'L') {
    // Legacy ADD appends to a list, creating it when missing.
    const empty = allocator.value({ L: [] });
    return { section: 'SET', clause: `${placeholder} = list_append(if_not_exists(${placeholder}, ${empty}), ${allocator.value(value)})` };
  }
  if (type !== 'N' && !isSet) throw validationError(`${INVALID}ADD action is not supported for the type ${type}`);
  return { section: 'ADD', clause: `${placeholder} ${allocator.value(value)}` };
}

/**
 * The message of an UpdateItem whose AttributeUpdates were translated into an update expression: an
 * ADD or DELETE meeting an attribute of another type is, in the legacy parameter's words, a type
 * mismatch (dynalite's tests captured from DynamoDB: DELETE NS from SS or N, ADD NS to SS, ADD N to
 * NS; scylladb test_item.py::test_update_item_delete and test_update_item_add, run against DynamoDB).
 */
export function attributeUpdatesMessage(message: string): string {
  return message === WRONG_DATA_TYPE ? 'Type mismatch for attribute to update' : message;
}

function updateExpression(updates: Record<string, unknown>, allocator: PlaceholderAllocator): string | undefined {
  const sections = new Map<string, string[]>();
  for (const [attribute, update] of Object.entries(updates)) {
    const { section, clause } = updateAction(attribute, update, allocator);
    const clauses = sections.get(section) ?? [];
    clauses.push(clause);
    sections.set(section, clauses);
  }
  if (sections.size === 0) return undefined;
  return [...sections].map(([section, clauses]) => `${section} ${clauses.join(', ')}`).join(' ');
}

function projection(attributes: readonly string[], allocator: PlaceholderAllocator): string | undefined {
  const seen = new Set<string>();
  for (const attribute of attributes) {
    if (seen.has(attribute)) throw validationError(`${INVALID}Duplicate value in attribute name: ${attribute}`);
    seen.add(attribute);
  }
  return attributes.length === 0 ? undefined : attributes.map((a) => allocator.name(a)).join(', ');
}

/**
 * Translates the legacy parameters of a request into expressions with generated placeholders. Throws
 * validationError with DynamoDB's messages for malformed legacy parameters.
 */
export function legacyToExpressions(params: LegacyParameters): ExpressionRequest {
  const allocator = new PlaceholderAllocator();
  const result: ExpressionRequest = {};
  const separator = joiner(params.ConditionalOperator);
  if (params.Expected !== undefined) {
    result.condition = combined(params.Expected, separator, (a, c) => expectedCondition(a, c, allocator));
  }
  if (params.AttributeUpdates !== undefined) result.update = updateExpression(params.AttributeUpdates, allocator);
  if (params.KeyConditions !== undefined) {
    const count = Object.keys(params.KeyConditions).length;
    if (count !== 1 && count !== 2) throw validationError('Conditions can be of length 1 or 2 only');
    result.keyCondition = combined(params.KeyConditions, ' AND ', (a, c) => filterCondition(a, c, allocator, true));
  }
  const filter = params.QueryFilter ?? params.ScanFilter;
  if (filter !== undefined) result.filter = combined(filter, separator, (a, c) => filterCondition(a, c, allocator, false));
  if (params.AttributesToGet !== undefined) result.projection = projection(params.AttributesToGet, allocator);
  for (const key of ['condition', 'update', 'keyCondition', 'filter', 'projection'] as const) {
    if (result[key] === undefined) delete result[key];
  }
  if (Object.keys(allocator.names).length > 0) result.names = allocator.names;
  if (Object.keys(allocator.values).length > 0) result.values = allocator.values;
  return result;
}

/**
 * DynamoDB's refusal to mix the two forms in one request, and to take placeholders without expressions.
 * `expressionParameters` and `legacyParameters` are the ones the operation has, in DynamoDB's order.
 */
export function rejectMixedParameters(
  request: Readonly<Record<string, unknown>>,
  expressionParameters: readonly string[],
  legacyParameters: readonly string[],
): void {
  const present = (name: string) => request[name] !== undefined && request[name] !== null;
  const usedExpressions = expressionParameters.filter(present);
  if (usedExpressions.length > 0) {
    // KeyConditions may go with the other expressions when there is no KeyConditionExpression.
    const usedLegacy = legacyParameters.filter(
      (name) => present(name) && !(name === 'KeyConditions' && !present('KeyConditionExpression')),
    );
    if (usedLegacy.length > 0) {
      throw validationError(
        'Can not use both expression and non-expression parameters in the same request: ' +
          `Non-expression parameters: {${usedLegacy.join(', ')}} Expression parameters: {${usedExpressions.join(', ')}}`,
      );
    }
  }
  if (present('ExpressionAttributeNames') && usedExpressions.length === 0) {
    throw validationError('ExpressionAttributeNames can only be specified when using expressions');
  }
  const valueExpressions = expressionParameters.filter((name) => name !== 'ProjectionExpression');
  if (present('ExpressionAttributeValues') && valueExpressions.length > 0 && !valueExpressions.some(present)) {
    throw validationError(
      `ExpressionAttributeValues can only be specified when using expressions: ${valueExpressions.join(' and ')} ${valueExpressions.length > 1 ? 'are' : 'is'} null`,
    );
  }
}
