/**
 * Condition and filter expressions: checked against a request's placeholders with DynamoDB's messages,
 * then compiled into closures so that evaluating an item walks no syntax tree.
 */
import type { AttributeType, AttributeValue, Item } from '../attribute-value.ts';
import { attributeTypeOf, attributeValuesEqual, compareScalars, decodeBinary } from '../values.ts';
import { compareNumbers } from '../number.ts';
import { getOwn } from '../records.ts';
import type { CallNode, Comparator, ConditionNode, OperandNode } from './ast.ts';
import { bindPath, bindValue, type Placeholders, type Problems } from './bind.ts';
import { formatPath, valueAtPath, type DocumentPath } from './paths.ts';

/** How DynamoDB ranks the problems of a condition expression. */
export const CONDITION_PROBLEM_ORDER = [
  'parens',
  'unknownFunction',
  'misusedFunction',
  'reserved',
  'undefinedName',
  'undefinedValue',
  'operand',
  'distinct',
  'function',
] as const;

export type ItemPredicate = (item: Item | undefined) => boolean;
export type OperandResolver = (item: Item | undefined) => AttributeValue | undefined;

/** A bound operand: how to read it from an item, and what is statically known about it. */
export interface BoundOperand {
  resolve: OperandResolver;
  /** Set when the operand is a document path. */
  path?: DocumentPath;
  /** Set when the operand is an expression attribute value. */
  literal?: AttributeValue;
  /** Set when the operand is a function call. */
  functionName?: string;
  /** The operand's type when known before reading any item: a value's type, or N for size(). */
  staticType?: AttributeType;
}

/** Functions that are conditions, with their operand counts. */
const CONDITION_FUNCTIONS: Readonly<Record<string, number>> = {
  attribute_exists: 1,
  attribute_not_exists: 1,
  attribute_type: 2,
  begins_with: 2,
  contains: 2,
};
/** Functions that are values in conditions. */
const OPERAND_FUNCTIONS: Readonly<Record<string, number>> = { size: 1 };
/** Functions of update expressions. */
export const UPDATE_FUNCTIONS: Readonly<Record<string, number>> = { if_not_exists: 2, list_append: 2 };

const ATTRIBUTE_TYPE_NAMES = new Set(['S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L', 'SS', 'NS', 'BS']);
/**
 * The operand types an operator or function takes, checked before any item is read against what is
 * known of an operand (DynamoDB Local's Operator and OperatorValidator: <, <=, >, >= and BETWEEN take
 * ordered types, begins_with strings and binaries, size iterables): `a < :list` or size(size(a)) is a
 * ValidationException, while a path of the wrong type in the item only makes the condition false.
 */
const ORDERED_TYPES: ReadonlySet<AttributeType> = new Set(['S', 'N', 'B']);
const STRING_BINARY_TYPES: ReadonlySet<AttributeType> = new Set(['S', 'B']);
const ITERABLE_TYPES: ReadonlySet<AttributeType> = new Set(['S', 'B', 'SS', 'NS', 'BS', 'L', 'M']);
/** More operands than this in an IN list are refused. */
export const MAX_IN_OPERANDS = 100;
/** DynamoDB's limit on operators and functions in one expression. */
export const MAX_OPERATORS = 300;

function isKnownFunction(name: string): boolean {
  return Object.hasOwn(CONDITION_FUNCTIONS, name) || Object.hasOwn(OPERAND_FUNCTIONS, name) || Object.hasOwn(UPDATE_FUNCTIONS, name);
}

/** `{S:abc}`, as DynamoDB prints a value in messages. */
export function formatValue(value: AttributeValue): string {
  const type = attributeTypeOf(value);
  const raw = (value as Record<string, unknown>)[type];
  return `{${type}:${Array.isArray(raw) ? `[${raw.join(', ')}]` : String(raw)}}`;
}

function reportOperandCount(name: string, expected: number, actual: number, problems: Problems): boolean {
  if (expected === actual) return true;
  problems.report(
    'operand',
    `Incorrect number of operands for operator or function; operator or function: ${name}, number of operands: ${actual}`,
  );
  return false;
}

function samePath(a: DocumentPath, b: DocumentPath): boolean {
  return a.length === b.length && a.every((segment, i) => segment === b[i]);
}

/** DynamoDB refuses `a = a`, `contains(a, a)` and the like. */
function checkDistinct(operator: string, operands: readonly BoundOperand[], problems: Problems): void {
  const [first, second] = operands;
  if (operands.length === 2 && first.path && second.path && samePath(first.path, second.path)) {
    problems.report(
      'distinct',
      `The first operand must be distinct from the remaining operands for this operator or function; operator: ${operator}, first operand: ${formatPath(first.path)}`,
    );
  }
}

function wrongOperandType(name: string, type: string, problems: Problems): void {
  problems.report('function', `Incorrect operand type for operator or function; operator or function: ${name}, operand type: ${type}`);
}

/** Reports the first operand whose known type `name` does not take. */
function checkOperandTypes(name: string, operands: readonly BoundOperand[], accepted: ReadonlySet<AttributeType>, problems: Problems): void {
  const wrong = operands.find((operand) => operand.staticType !== undefined && !accepted.has(operand.staticType));
  if (wrong?.staticType !== undefined) wrongOperandType(name, wrong.staticType, problems);
}

function reportParentheses(node: OperandNode, problems: Problems): void {
  if (node.parenthesized) problems.report('parens', 'The expression has redundant parentheses;');
}

function sizeOf(value: AttributeValue | undefined): AttributeValue | undefined {
  if (value === undefined) return undefined;
  let size: number;
  // A string's size counts UTF-16 code units, as DynamoDB's does (size of 'é𝄞' is 3).
  if ('S' in value) size = value.S.length;
  else if ('B' in value) size = decodeBinary(value.B).length;
  else if ('SS' in value) size = value.SS.length;
  else if ('NS' in value) size = value.NS.length;
  else if ('BS' in value) size = value.BS.length;
  else if ('L' in value) size = value.L.length;
  else if ('M' in value) size = Object.keys(value.M).length;
  else return undefined;
  return { N: String(size) };
}

/** Binds an operand of a condition (a path, a value, or size()). */
export function bindConditionOperand(node: OperandNode, placeholders: Placeholders, problems: Problems): BoundOperand {
  reportParentheses(node, problems);
  if (node.type === 'path') {
    const path = bindPath(node, placeholders, problems);
    const head = path[0] as string;
    const resolve: OperandResolver =
      path.length === 1
        ? (item) => getOwn(item, head)
        : (item) => valueAtPath(item, path);
    return { resolve, path };
  }
  if (node.type === 'value') {
    const literal = bindValue(node, placeholders, problems);
    return { resolve: () => literal, literal, staticType: literal === undefined ? undefined : attributeTypeOf(literal) };
  }
  return bindOperandCall(node, placeholders, problems);
}

function bindOperandCall(node: CallNode, placeholders: Placeholders, problems: Problems): BoundOperand {
  const args = node.args.map((arg) => bindConditionOperand(arg, placeholders, problems));
  const name = node.name;
  if (!isKnownFunction(name)) {
    problems.report('unknownFunction', `Invalid function name; function: ${name}`);
  } else if (Object.hasOwn(UPDATE_FUNCTIONS, name)) {
    problems.report('misusedFunction', `The function is not allowed in a condition expression; function: ${name}`);
  } else if (!Object.hasOwn(OPERAND_FUNCTIONS, name)) {
    problems.report('misusedFunction', `The function is not allowed to be used this way in an expression; function: ${name}`);
  } else if (reportOperandCount(name, 1, args.length, problems)) {
    checkOperandTypes(name, args, ITERABLE_TYPES, problems);
  }
  const operand = args[0];
  return { resolve: (item) => sizeOf(operand.resolve(item)), functionName: name, staticType: 'N' };
}

function beginsWith(value: AttributeValue | undefined, prefix: AttributeValue | undefined): boolean {
  if (value === undefined || prefix === undefined) return false;
  if ('S' in value) return 'S' in prefix && value.S.startsWith(prefix.S);
  if ('B' in value && 'B' in prefix) {
    const bytes = decodeBinary(value.B);
    const start = decodeBinary(prefix.B);
    return start.length <= bytes.length && bytes.subarray(0, start.length).equals(start);
  }
  return false;
}

function contains(container: AttributeValue | undefined, element: AttributeValue | undefined): boolean {
  if (container === undefined || element === undefined) return false;
  if ('S' in container) return 'S' in element && container.S.includes(element.S);
  // A binary contains a byte sequence, as a string a substring.
  if ('B' in container) return 'B' in element && decodeBinary(container.B).includes(decodeBinary(element.B));
  if ('SS' in container) return 'S' in element && container.SS.includes(element.S);
  if ('NS' in container) return 'N' in element && container.NS.some((n) => compareNumbers(n, element.N) === 0);
  if ('BS' in container) {
    if (!('B' in element)) return false;
    const bytes = decodeBinary(element.B);
    return container.BS.some((b) => decodeBinary(b).equals(bytes));
  }
  if ('L' in container) return container.L.some((x) => attributeValuesEqual(x, element));
  return false;
}

function bindConditionFunction(call: CallNode, placeholders: Placeholders, problems: Problems): ItemPredicate {
  const args = call.args.map((arg) => bindConditionOperand(arg, placeholders, problems));
  const name = call.name;
  const never: ItemPredicate = () => false;
  if (!isKnownFunction(name)) {
    problems.report('unknownFunction', `Invalid function name; function: ${name}`);
    return never;
  }
  if (Object.hasOwn(UPDATE_FUNCTIONS, name)) {
    problems.report('misusedFunction', `The function is not allowed in a condition expression; function: ${name}`);
    return never;
  }
  if (!Object.hasOwn(CONDITION_FUNCTIONS, name)) {
    problems.report('misusedFunction', `The function is not allowed to be used this way in an expression; function: ${name}`);
    return never;
  }
  if (!reportOperandCount(name, CONDITION_FUNCTIONS[name], args.length, problems)) return never;
  checkDistinct(name, args, problems);
  const [first, second] = args;
  switch (name) {
    case 'attribute_exists':
    case 'attribute_not_exists': {
      if (!first.path) {
        problems.report('function', `Operator or function requires a document path; operator or function: ${name}`);
        return never;
      }
      const resolve = first.resolve;
      return name === 'attribute_exists' ? (item) => resolve(item) !== undefined : (item) => resolve(item) === undefined;
    }
    case 'attribute_type': {
      const typeName = second.literal;
      if (typeName === undefined || !('S' in typeName)) {
        const type = typeName === undefined ? '{NS,SS,L,BS,N,M,B,BOOL,NULL,S}' : attributeTypeOf(typeName);
        if (second.literal !== undefined || second.path || second.functionName) wrongOperandType(name, type, problems);
        return never;
      }
      if (!ATTRIBUTE_TYPE_NAMES.has(typeName.S)) {
        problems.report(
          'function',
          `Invalid attribute type name found; type: ${typeName.S}, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}`,
        );
        return never;
      }
      const wanted = typeName.S as AttributeType;
      const resolve = first.resolve;
      return (item) => {
        const value = resolve(item);
        return value !== undefined && attributeTypeOf(value) === wanted;
      };
    }
    case 'begins_with': {
      checkOperandTypes(name, args, STRING_BINARY_TYPES, problems);
      const [value, prefix] = [first.resolve, second.resolve];
      return (item) => beginsWith(value(item), prefix(item));
    }
    default: {
      const [container, element] = [first.resolve, second.resolve];
      return (item) => contains(container(item), element(item));
    }
  }
}

function compare(op: Comparator, left: OperandResolver, right: OperandResolver): ItemPredicate {
  const ordered = (accept: (order: number) => boolean): ItemPredicate => (item) => {
    const a = left(item);
    const b = right(item);
    if (a === undefined || b === undefined) return false;
    const order = compareScalars(a, b);
    return order !== undefined && accept(order);
  };
  switch (op) {
    case '=':
      return (item) => {
        const a = left(item);
        const b = right(item);
        return a !== undefined && b !== undefined && attributeValuesEqual(a, b);
      };
    case '<>':
      return (item) => {
        const a = left(item);
        const b = right(item);
        return a === undefined || b === undefined || !attributeValuesEqual(a, b);
      };
    case '<':
      return ordered((order) => order < 0);
    case '<=':
      return ordered((order) => order <= 0);
    case '>':
      return ordered((order) => order > 0);
    case '>=':
      return ordered((order) => order >= 0);
  }
}

/** Checks that comparison operands are paths, values or size(), not condition functions. */
function bindComparisonOperands(nodes: readonly OperandNode[], placeholders: Placeholders, problems: Problems): BoundOperand[] {
  return nodes.map((node) => bindConditionOperand(node, placeholders, problems));
}

function checkBetweenBounds(low: AttributeValue | undefined, high: AttributeValue | undefined, problems: Problems): void {
  if (low === undefined || high === undefined) return;
  const lowType = attributeTypeOf(low);
  const highType = attributeTypeOf(high);
  const operands = `lower bound operand: AttributeValue: ${formatValue(low)}, upper bound operand: AttributeValue: ${formatValue(high)}`;
  if (lowType !== highType) {
    problems.report('function', `The BETWEEN operator requires same data type for lower and upper bounds; ${operands}`);
  } else if ((compareScalars(low, high) ?? 0) > 0) {
    problems.report('function', `The BETWEEN operator requires upper bound to be greater than or equal to lower bound; ${operands}`);
  }
}

/** Binds a condition tree and compiles it into a predicate; problems are reported, not thrown. */
export function bindCondition(node: ConditionNode, placeholders: Placeholders, problems: Problems): ItemPredicate {
  switch (node.type) {
    case 'and': {
      const left = bindCondition(node.left, placeholders, problems);
      const right = bindCondition(node.right, placeholders, problems);
      return (item) => left(item) && right(item);
    }
    case 'or': {
      const left = bindCondition(node.left, placeholders, problems);
      const right = bindCondition(node.right, placeholders, problems);
      return (item) => left(item) || right(item);
    }
    case 'not': {
      const operand = bindCondition(node.operand, placeholders, problems);
      return (item) => !operand(item);
    }
    case 'parens':
      if (node.inner.type === 'parens') problems.report('parens', 'The expression has redundant parentheses;');
      return bindCondition(node.inner, placeholders, problems);
    case 'function':
      return bindConditionFunction(node.call, placeholders, problems);
    case 'compare': {
      const [left, right] = bindComparisonOperands([node.left, node.right], placeholders, problems);
      if (node.op !== '=' && node.op !== '<>') checkOperandTypes(node.op, [left, right], ORDERED_TYPES, problems);
      checkDistinct(node.op, [left, right], problems);
      return compare(node.op, left.resolve, right.resolve);
    }
    case 'between': {
      const [operand, low, high] = bindComparisonOperands([node.operand, node.low, node.high], placeholders, problems);
      checkOperandTypes('BETWEEN', [operand, low, high], ORDERED_TYPES, problems);
      checkBetweenBounds(low.literal, high.literal, problems);
      return (item) => {
        const value = operand.resolve(item);
        const lower = low.resolve(item);
        const upper = high.resolve(item);
        if (value === undefined || lower === undefined || upper === undefined) return false;
        const fromLow = compareScalars(lower, value);
        const toHigh = compareScalars(value, upper);
        return fromLow !== undefined && toHigh !== undefined && fromLow <= 0 && toHigh <= 0;
      };
    }
    case 'in': {
      const [operand, ...list] = bindComparisonOperands([node.operand, ...node.list], placeholders, problems);
      if (list.length > MAX_IN_OPERANDS) {
        problems.report(
          'operand',
          `The IN operator is provided with too many operands; number of operands: ${list.length}`,
        );
      }
      const candidates = list.map((o) => o.resolve);
      return (item) => {
        const value = operand.resolve(item);
        if (value === undefined) return false;
        for (const candidate of candidates) {
          const other = candidate(item);
          if (other !== undefined && attributeValuesEqual(value, other)) return true;
        }
        return false;
      };
    }
  }
}

function countCalls(node: OperandNode): number {
  return node.type === 'call' ? 1 + node.args.reduce((sum, arg) => sum + countCalls(arg), 0) : 0;
}

/** Operators and function calls in a condition, as DynamoDB counts them against MAX_OPERATORS. */
export function countOperators(node: ConditionNode): number {
  switch (node.type) {
    case 'and':
    case 'or':
      return 1 + countOperators(node.left) + countOperators(node.right);
    case 'not':
      return 1 + countOperators(node.operand);
    case 'parens':
      return countOperators(node.inner);
    case 'function':
      return countCalls(node.call);
    case 'compare':
      return 1 + countCalls(node.left) + countCalls(node.right);
    case 'between':
      return 1 + countCalls(node.operand) + countCalls(node.low) + countCalls(node.high);
    case 'in':
      return 1 + [node.operand, ...node.list].reduce((sum, operand) => sum + countCalls(operand), 0);
  }
}
