/**
 * The entry point: all expressions of one request checked together, as DynamoDB does, and compiled.
 */
import type { AttributeValue, Item } from '../attribute-value.ts';
import { DynamoDbError, validationError } from '../errors.ts';
import { setOwn } from '../records.ts';
import { validateAttributeValue } from '../validation.ts';
import type { ConditionNode, ProjectionNode } from './ast.ts';
import type { Placeholders, ProblemCategory } from './bind.ts';
import { LruCache } from './cache.ts';
import { bindCondition, CONDITION_PROBLEM_ORDER, countOperators, MAX_OPERATORS } from './condition.ts';
import { ExpressionError, ProblemCollector } from './expression-error.ts';
import { compiledKeyCondition, keyTermsOf, type CompiledKeyCondition } from './key-condition.ts';
import type { DocumentPath } from './paths.ts';
import { parseCondition, parseProjection, parseUpdate, type ParsedUpdate } from './parser.ts';
import { bindProjection, PROJECTION_PROBLEM_ORDER, type CompiledProjection } from './projection.ts';
import { bindUpdate, UPDATE_PROBLEM_ORDER, type CompiledUpdate } from './update.ts';

export interface ExpressionRequest {
  condition?: string;
  update?: string;
  projection?: string;
  keyCondition?: string;
  filter?: string;
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

export interface CompiledCondition {
  /** `item` undefined means there is no such item. */
  evaluate(item: Item | undefined): boolean;
  /** Every document path the condition reads. */
  readonly paths: readonly DocumentPath[];
}

export interface CompiledExpressions {
  condition?: CompiledCondition;
  filter?: CompiledCondition;
  update?: CompiledUpdate;
  projection?: CompiledProjection;
  keyCondition?: CompiledKeyCondition;
}

/** DynamoDB's limit on each expression string, in bytes. */
export const MAX_EXPRESSION_BYTES = 4096;
/** Parsed trees kept per kind of expression, by text. */
const PARSE_CACHE_CAPACITY = 1000;
const conditionTrees = new LruCache<string, ConditionNode>(PARSE_CACHE_CAPACITY);
const updateTrees = new LruCache<string, ParsedUpdate>(PARSE_CACHE_CAPACITY);
const projectionTrees = new LruCache<string, ProjectionNode>(PARSE_CACHE_CAPACITY);

function cached<T>(cache: LruCache<string, T>, text: string, parse: (text: string) => T): T {
  let tree = cache.get(text);
  if (tree === undefined) {
    tree = parse(text);
    cache.set(text, tree);
  }
  return tree;
}

function parseConditionWithinLimits(text: string): ConditionNode {
  const tree = parseCondition(text);
  const operators = countOperators(tree);
  if (operators > MAX_OPERATORS) {
    throw new ExpressionError(`The expression contains too many operators; operator count: ${operators}`);
  }
  return tree;
}

/** The request parameter each expression comes from, for messages. */
const PARAMETER_NAMES = {
  condition: 'ConditionExpression',
  update: 'UpdateExpression',
  keyCondition: 'KeyConditionExpression',
  filter: 'FilterExpression',
  projection: 'ProjectionExpression',
} as const;

type ExpressionField = keyof typeof PARAMETER_NAMES;

function checkText(field: ExpressionField, text: string): void {
  if (text.trim() === '') throw new ExpressionError('The expression can not be empty;');
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_EXPRESSION_BYTES) {
    // DynamoDB adds the size only for these two (observed behaviour).
    const suffix = field === 'condition' || field === 'filter' ? ` expression size: ${size}` : '';
    throw new ExpressionError(`Expression size has exceeded the maximum allowed size;${suffix}`);
  }
}

/** Runs `compile` for one expression, giving its errors the `Invalid <Parameter>: ` prefix. */
function compileOne<T>(field: ExpressionField, text: string, compile: () => T): T {
  try {
    checkText(field, text);
    return compile();
  } catch (error) {
    if (error instanceof ExpressionError) throw validationError(`Invalid ${PARAMETER_NAMES[field]}: ${error.message}`);
    throw error;
  }
}

function bindChecked<T>(order: readonly ProblemCategory[], bind: (problems: ProblemCollector<ProblemCategory>) => T): T {
  const problems = new ProblemCollector<ProblemCategory>(order);
  const bound = bind(problems);
  problems.throwFirst();
  return bound;
}

const PLACEHOLDER_KEY = { names: /^#[0-9A-Za-z_]+$/, values: /^:[0-9A-Za-z_]+$/ } as const;

/** Checks both maps; returns the values validated and normalized (canonical numbers). */
function checkPlaceholderMaps(request: ExpressionRequest): Record<string, AttributeValue> | undefined {
  const maps = [
    ['ExpressionAttributeNames', request.names, PLACEHOLDER_KEY.names],
    ['ExpressionAttributeValues', request.values, PLACEHOLDER_KEY.values],
  ] as const;
  for (const [parameter, map, pattern] of maps) {
    if (map === undefined) continue;
    const keys = Object.keys(map);
    if (keys.length === 0) throw validationError(`${parameter} must not be empty`);
    const invalid = keys.find((key) => !pattern.test(key));
    if (invalid !== undefined) throw validationError(`${parameter} contains invalid key: Syntax error; key: "${invalid}"`);
  }
  for (const [key, name] of Object.entries(request.names ?? {})) {
    if (name === '') throw validationError(`ExpressionAttributeNames contains invalid value: Empty attribute name for key ${key}`);
  }
  if (request.values === undefined) return undefined;
  const values: Record<string, AttributeValue> = {};
  for (const [key, value] of Object.entries(request.values)) {
    try {
      setOwn(values, key, validateAttributeValue(value));
    } catch (error) {
      if (error instanceof DynamoDbError && error.type === 'ValidationException') {
        throw validationError(`ExpressionAttributeValues contains invalid value: ${error.message} for key ${key}`);
      }
      throw error;
    }
  }
  return values;
}

function checkAllUsed(request: ExpressionRequest, placeholders: Placeholders): void {
  const unusedNames = Object.keys(request.names ?? {}).filter((k) => !placeholders.usedNames.has(k));
  if (unusedNames.length > 0) {
    throw validationError(`Value provided in ExpressionAttributeNames unused in expressions: keys: {${unusedNames.join(', ')}}`);
  }
  const unusedValues = Object.keys(request.values ?? {}).filter((k) => !placeholders.usedValues.has(k));
  if (unusedValues.length > 0) {
    throw validationError(`Value provided in ExpressionAttributeValues unused in expressions: keys: {${unusedValues.join(', ')}}`);
  }
}

/**
 * Checks and compiles every expression of a request. Throws validationError with DynamoDB's message for
 * the first problem DynamoDB would report.
 */
export function compileExpressions(request: ExpressionRequest): CompiledExpressions {
  const values = checkPlaceholderMaps(request);
  const placeholders: Placeholders = {
    names: request.names,
    values,
    usedNames: new Set(),
    usedValues: new Set(),
  };
  const compiled: CompiledExpressions = {};
  const condition = (field: 'condition' | 'filter', text: string) =>
    compileOne(field, text, () => {
      const tree = cached(conditionTrees, text, parseConditionWithinLimits);
      const paths: DocumentPath[] = [];
      const evaluate = bindChecked(CONDITION_PROBLEM_ORDER, (p) => bindCondition(tree, { ...placeholders, paths }, p));
      return { evaluate, paths };
    });

  if (request.update !== undefined) {
    const text = request.update;
    compiled.update = compileOne('update', text, () => {
      const tree = cached(updateTrees, text, parseUpdate);
      return bindChecked(UPDATE_PROBLEM_ORDER, (p) => bindUpdate(tree, placeholders, p));
    });
  }
  if (request.condition !== undefined) compiled.condition = condition('condition', request.condition);
  let keyTerms: ReturnType<typeof keyTermsOf> | undefined;
  if (request.keyCondition !== undefined) {
    const text = request.keyCondition;
    keyTerms = compileOne('keyCondition', text, () => {
      const tree = cached(conditionTrees, text, parseConditionWithinLimits);
      bindChecked(CONDITION_PROBLEM_ORDER, (p) => bindCondition(tree, placeholders, p));
      return keyTermsOf(tree, placeholders);
    });
  }
  if (request.filter !== undefined) compiled.filter = condition('filter', request.filter);
  if (request.projection !== undefined) {
    const text = request.projection;
    compiled.projection = compileOne('projection', text, () => {
      const tree = cached(projectionTrees, text, parseProjection);
      return bindChecked(PROJECTION_PROBLEM_ORDER, (p) => bindProjection(tree, placeholders, p));
    });
  }
  checkAllUsed(request, placeholders);
  if (keyTerms !== undefined) {
    if (typeof keyTerms === 'string') throw validationError(keyTerms);
    compiled.keyCondition = compiledKeyCondition(keyTerms);
  }
  return compiled;
}
