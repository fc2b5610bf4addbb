/**
 * Key condition expressions: a Query's equality on the partition key and at most one condition on the
 * sort key, checked with DynamoDB's messages and turned into the partition layer's SortKeyCondition.
 */
import type { AttributeValue, KeyAttributeType } from '../attribute-value.ts';
import { validationError } from '../errors.ts';
import type { KeyAttribute } from '../schema.ts';
import type { SortKeyCondition, SortKeyOperator } from '../partition.ts';
import { attributeTypeOf } from '../values.ts';
import type { ConditionNode, OperandNode } from './ast.ts';
import type { Placeholders } from './bind.ts';
import { bindConditionOperand, CONDITION_PROBLEM_ORDER } from './condition.ts';
import { ProblemCollector } from './expression-error.ts';

export interface CompiledKeyCondition {
  /**
   * The partition key value and the sort key condition, once the condition is known to use exactly the
   * given key (names, or names with types to check the values against).
   */
  resolve(
    hashKey: string | KeyAttribute,
    rangeKey?: string | KeyAttribute,
  ): { hashValue: AttributeValue; sortCondition?: SortKeyCondition };
}

/** One condition on one key attribute, as written. */
interface KeyTerm {
  attribute: string;
  op: SortKeyOperator;
  values: AttributeValue[];
}

const COMPARATOR_OPS: Readonly<Record<string, SortKeyOperator>> = { '=': 'EQ', '<': 'LT', '<=': 'LE', '>': 'GT', '>=': 'GE' };
/** `:v < k` means `k > :v`. */
const MIRRORED: Readonly<Record<SortKeyOperator, SortKeyOperator>> = {
  EQ: 'EQ',
  LT: 'GT',
  LE: 'GE',
  GT: 'LT',
  GE: 'LE',
  BETWEEN: 'BETWEEN',
  BEGINS_WITH: 'BEGINS_WITH',
};
const NOT_KEY_FUNCTIONS = new Set(['attribute_exists', 'attribute_not_exists', 'attribute_type', 'contains']);

class KeyConditionProblem extends Error {}

function fail(message: string): never {
  throw new KeyConditionProblem(message);
}

function termFrom(operands: readonly OperandNode[], op: SortKeyOperator, label: string | undefined, placeholders: Placeholders): KeyTerm {
  const scratch = new ProblemCollector(CONDITION_PROBLEM_ORDER);
  const bound = operands.map((operand) => bindConditionOperand(operand, placeholders, scratch));
  if (bound.some((operand) => operand.functionName !== undefined)) fail('KeyConditionExpressions cannot contain nested operations');
  const pathIndexes = bound.flatMap((operand, i) => (operand.path ? [i] : []));
  if (pathIndexes.length > 1) fail('Invalid condition in KeyConditionExpression: Multiple attribute names used in one condition');
  if (pathIndexes.length === 0) fail('Invalid condition in KeyConditionExpression: No key attribute specified');
  const pathIndex = pathIndexes[0];
  const path = bound[pathIndex].path ?? [];
  if (label !== undefined && pathIndex !== 0) {
    fail(`Invalid condition in KeyConditionExpression: ${label} operator must have the key attribute as its first operand`);
  }
  if (path.length > 1) fail('KeyConditionExpressions cannot have conditions on nested attributes');
  const values = bound.filter((_, i) => i !== pathIndex).map((operand) => operand.literal as AttributeValue);
  return { attribute: path[0] as string, op: pathIndex === 0 ? op : MIRRORED[op], values };
}

function collectTerms(node: ConditionNode, placeholders: Placeholders, terms: KeyTerm[]): void {
  switch (node.type) {
    case 'parens':
      return collectTerms(node.inner, placeholders, terms);
    case 'and':
      collectTerms(node.left, placeholders, terms);
      return collectTerms(node.right, placeholders, terms);
    case 'or':
    case 'not':
    case 'in':
      return fail(`Invalid operator used in KeyConditionExpression: ${node.type.toUpperCase()}`);
    case 'compare':
      if (node.op === '<>') fail('Invalid operator used in KeyConditionExpression: <>');
      terms.push(termFrom([node.left, node.right], COMPARATOR_OPS[node.op], undefined, placeholders));
      return;
    case 'between':
      terms.push(termFrom([node.operand, node.low, node.high], 'BETWEEN', 'BETWEEN', placeholders));
      return;
    case 'function': {
      const name = node.call.name;
      if (NOT_KEY_FUNCTIONS.has(name)) fail(`Invalid operator used in KeyConditionExpression: ${name}`);
      terms.push(termFrom(node.call.args, 'BEGINS_WITH', 'begins_with', placeholders));
      return;
    }
  }
}

/**
 * The terms of a key condition, or DynamoDB's message for why it cannot be one. The caller reports the
 * message after the request's other checks, which DynamoDB makes first.
 */
export function keyTermsOf(node: ConditionNode, placeholders: Placeholders): KeyTerm[] | string {
  const terms: KeyTerm[] = [];
  try {
    collectTerms(node, placeholders, terms);
  } catch (error) {
    if (error instanceof KeyConditionProblem) return error.message;
    throw error;
  }
  // A repeated attribute is found before too many conditions (paritysuite/dynamodb-conformance
  // queryKeyConditionOperands, captured from DynamoDB: `pk = :p AND sk > :a AND sk < :b`).
  const seen = new Set<string>();
  for (const term of terms) {
    if (seen.has(term.attribute)) return 'Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key';
    seen.add(term.attribute);
  }
  return terms;
}

function keyName(key: string | KeyAttribute): string {
  return typeof key === 'string' ? key : key.name;
}

function checkValueTypes(term: KeyTerm, key: string | KeyAttribute): void {
  if (typeof key === 'string') return;
  const type: KeyAttributeType = key.type;
  if (term.values.some((value) => attributeTypeOf(value) !== type)) {
    throw validationError('One or more parameter values were invalid: Condition parameter type does not match schema type');
  }
}

export function compiledKeyCondition(terms: readonly KeyTerm[]): CompiledKeyCondition {
  return {
    resolve(hashKey, rangeKey) {
      const hashName = keyName(hashKey);
      const rangeName = rangeKey === undefined ? undefined : keyName(rangeKey);
      if (terms.length > 2) {
        throw validationError(
          `The number of query conditions (${terms.length}) exceeds the number of key attributes defined in the schema (${rangeName === undefined ? 1 : 2})`,
        );
      }
      if (rangeName === undefined && terms.length > 1) throw validationError('Query key condition not supported');
      const hashTerm = terms.find((t) => t.attribute === hashName);
      if (hashTerm === undefined) throw validationError(`Query condition missed key schema element: ${hashName}`);
      const rangeTerm = terms.find((t) => t.attribute !== hashName);
      if (rangeTerm !== undefined && rangeTerm.attribute !== rangeName) {
        throw validationError(`Query condition missed key schema element: ${rangeName}`);
      }
      checkValueTypes(hashTerm, hashKey);
      if (hashTerm.op !== 'EQ') throw validationError('Query key condition not supported');
      if (rangeTerm === undefined) return { hashValue: hashTerm.values[0] };
      checkValueTypes(rangeTerm, rangeKey as string | KeyAttribute);
      return { hashValue: hashTerm.values[0], sortCondition: { op: rangeTerm.op, values: rangeTerm.values } };
    },
  };
}
