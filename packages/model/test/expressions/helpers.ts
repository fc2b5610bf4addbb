import type { AttributeValue, Item } from '../../src/index.ts';
import { compileExpressions, DynamoDbError, type ExpressionRequest } from '../../src/index.ts';

/** Placeholders the tests draw from; each request gets only the ones its expressions use. */
export const VALUES: Record<string, AttributeValue> = {
  ':s': { S: 'hello' },
  ':he': { S: 'he' },
  ':lo': { S: 'lo' },
  ':empty': { S: '' },
  ':n1': { N: '1' },
  ':n2': { N: '2' },
  ':n5': { N: '5' },
  ':n10': { N: '10' },
  ':n10f': { N: '10.0' },
  ':neg': { N: '-3' },
  ':b': { B: 'AQID' },
  ':b12': { B: 'AQI=' },
  ':b9': { B: 'CQ==' },
  ':t': { BOOL: true },
  ':f': { BOOL: false },
  ':null': { NULL: true },
  ':ss': { SS: ['a', 'b'] },
  ':ssba': { SS: ['b', 'a'] },
  ':ns': { NS: ['1', '2'] },
  ':bs': { BS: ['AQ=='] },
  ':l': { L: [{ S: 'x' }, { N: '1' }] },
  ':m': { M: { k: { S: 'v' } } },
  ':a': { S: 'a' },
  ':x': { S: 'x' },
  ':typeS': { S: 'S' },
  ':typeN': { S: 'N' },
  ':typeL': { S: 'L' },
  ':typeM': { S: 'M' },
  ':typeSS': { S: 'SS' },
  ':typeBOOL': { S: 'BOOL' },
  ':typeNULL': { S: 'NULL' },
  ':typeBad': { S: 'STRING' },
};

export const NAMES: Record<string, string> = {
  '#name': 'name',
  '#s': 's',
  '#n': 'n',
  '#dot': 'a.b',
  '#m': 'm',
  '#l': 'l',
  '#status': 'status',
};

function used<T>(pool: Record<string, T>, texts: string[], pattern: RegExp): Record<string, T> | undefined {
  const keys = new Set(texts.flatMap((text) => text.match(pattern) ?? []));
  const picked = Object.fromEntries([...keys].filter((k) => Object.hasOwn(pool, k)).map((k) => [k, pool[k]]));
  return Object.keys(picked).length > 0 ? picked : undefined;
}

/** A request whose ExpressionAttributeNames/Values hold exactly the pool entries the expressions use. */
export function request(expressions: Omit<ExpressionRequest, 'names' | 'values'>): ExpressionRequest {
  const texts = Object.values(expressions).filter((t): t is string => typeof t === 'string');
  const names = used(NAMES, texts, /#[A-Za-z0-9_]+/g);
  const values = used(VALUES, texts, /:[A-Za-z0-9_]+/g);
  return { ...expressions, ...(names ? { names } : {}), ...(values ? { values } : {}) };
}

export function evaluateCondition(condition: string, item: Item | undefined): boolean {
  const compiled = compileExpressions(request({ condition })).condition;
  if (compiled === undefined) throw new Error('no condition compiled');
  return compiled.evaluate(item);
}

/** The ValidationException message `run` throws. */
export function validationMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof DynamoDbError && error.type === 'ValidationException') return error.message;
    throw error;
  }
  throw new Error('expected a ValidationException');
}

/** A sample document exercising every type, nesting and lists. */
export const ITEM: Item = {
  pk: { S: 'key' },
  s: { S: 'hello' },
  n: { N: '10' },
  neg: { N: '-3' },
  b: { B: 'AQID' },
  t: { BOOL: true },
  nul: { NULL: true },
  ss: { SS: ['a', 'b'] },
  ns: { NS: ['1', '2'] },
  bs: { BS: ['AQ==', 'Ag=='] },
  l: { L: [{ S: 'x' }, { N: '1' }, { M: { deep: { S: 'a' } } }] },
  m: { M: { k: { S: 'v' }, nest: { M: { n: { N: '5' } } }, arr: { L: [{ N: '1' }, { N: '2' }] } } },
  name: { S: 'reserved' },
  'a.b': { S: 'dotted' },
  unicode: { S: 'é𝄞' },
};
