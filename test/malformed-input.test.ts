import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTable, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

/**
 * Thousands of generated bad requests across all operations. Every one must be answered with a 4xx and
 * a DynamoDB error type, the server must keep serving, and an item written before must be untouched.
 */

const TABLE = 'malformed';
const SEED = 20_261_125;
const SENTINEL = {
  pk: { S: 'sentinel' },
  sk: { N: '1' },
  payload: { M: { list: { L: [{ S: 'x' }, { N: '2' }] }, set: { SS: ['a', 'b'] } } },
  counter: { N: '7' },
};
const SENTINEL_KEY = { pk: SENTINEL.pk, sk: SENTINEL.sk };
const OTHER_ITEM = { pk: { S: 'other' }, sk: { N: '2' }, a: { M: { b: { L: [{ S: 'x' }] } } } };
const OTHER_KEY = { pk: OTHER_ITEM.pk, sk: OTHER_ITEM.sk };

const shoal = shoalPerFile();

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: TABLE,
    ...keyedBy(['pk', 'S'], ['sk', 'N'], ['g', 'S']),
    GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: keySchema('g'), Projection: { ProjectionType: 'ALL' } }],
  });
  await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: SENTINEL }));
});

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A valid request of each operation; the generators break them. Writes aim at the sentinel item. */
const VALID_REQUESTS: Record<string, Record<string, Json>> = {
  PutItem: { TableName: TABLE, Item: OTHER_ITEM, ConditionExpression: 'attribute_not_exists(pk)', ReturnValues: 'ALL_OLD' },
  GetItem: { TableName: TABLE, Key: SENTINEL_KEY, ProjectionExpression: '#p.#l[0], counter', ExpressionAttributeNames: { '#p': 'payload', '#l': 'list' } },
  UpdateItem: {
    TableName: TABLE,
    Key: SENTINEL_KEY,
    UpdateExpression: 'SET counter = counter + :one REMOVE payload',
    ConditionExpression: 'counter > :zero',
    ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
    ReturnValues: 'UPDATED_NEW',
  },
  DeleteItem: { TableName: TABLE, Key: SENTINEL_KEY, ConditionExpression: 'attribute_exists(pk)', ReturnValues: 'ALL_OLD' },
  Query: {
    TableName: TABLE,
    KeyConditionExpression: 'pk = :pk AND sk BETWEEN :lo AND :hi',
    FilterExpression: 'size(payload) > :zero',
    ExpressionAttributeValues: { ':pk': { S: 'sentinel' }, ':lo': { N: '0' }, ':hi': { N: '9' }, ':zero': { N: '0' } },
    Limit: 10,
    ScanIndexForward: false,
  },
  Scan: { TableName: TABLE, FilterExpression: 'counter = :c', ExpressionAttributeValues: { ':c': { N: '7' } }, Limit: 5, Segment: 0, TotalSegments: 2 },
  BatchGetItem: { RequestItems: { [TABLE]: { Keys: [SENTINEL_KEY, OTHER_KEY], ConsistentRead: true } } },
  BatchWriteItem: { RequestItems: { [TABLE]: [{ PutRequest: { Item: OTHER_ITEM } }, { DeleteRequest: { Key: SENTINEL_KEY } }] } },
  TransactWriteItems: {
    TransactItems: [
      { Put: { TableName: TABLE, Item: OTHER_ITEM } },
      { Delete: { TableName: TABLE, Key: SENTINEL_KEY } },
    ],
  },
  TransactGetItems: { TransactItems: [{ Get: { TableName: TABLE, Key: SENTINEL_KEY } }] },
  CreateTable: {
    TableName: 'malformed_new',
    KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
    ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 },
  },
  UpdateTable: { TableName: TABLE, BillingMode: 'PROVISIONED', ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 } },
  DeleteTable: { TableName: TABLE },
  DescribeTable: { TableName: TABLE },
  ListTables: { ExclusiveStartTableName: 'aaa', Limit: 3 },
  UpdateTimeToLive: { TableName: TABLE, TimeToLiveSpecification: { Enabled: true, AttributeName: 'counter' } },
  DescribeTimeToLive: { TableName: TABLE },
  TagResource: { ResourceArn: `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`, Tags: [{ Key: 'k', Value: 'v' }] },
  UntagResource: { ResourceArn: `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}`, TagKeys: ['k'] },
  ListTagsOfResource: { ResourceArn: `arn:aws:dynamodb:us-east-1:000000000000:table/${TABLE}` },
};
const OPERATIONS = Object.keys(VALID_REQUESTS);

interface BadRequest {
  kind: string;
  operation: string;
  body: string;
  /** The whole X-Amz-Target header, when not `DynamoDB_20120810.<operation>`. */
  target?: string;
}

type Path = (string | number)[];

/** Every position in a JSON value (excluding the root), so a generator can replace what is there. */
function pathsOf(value: Json, prefix: Path = []): Path[] {
  if (value === null || typeof value !== 'object') return [];
  const entries: [string | number, Json][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...pathsOf(child, [...prefix, key])]);
}

function replaceAt(value: Json, path: Path, replacement: Json): Json {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((child, i) => (i === head ? replaceAt(child, rest, replacement) : child));
  const object = value as Record<string, Json>;
  return { ...object, [head]: replaceAt(object[head as string], rest, replacement) };
}

function valueAt(value: Json, path: Path): Json {
  return path.reduce<Json>((current, key) => (current as Record<string | number, Json>)[key], value);
}

function kindOf(value: Json): string {
  if (Array.isArray(value)) return 'array';
  return value === null ? 'null' : typeof value;
}

const jsonOfEveryKind: fc.Arbitrary<Json> = fc.oneof(
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 8 }),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxKeys: 3 }),
);

/** A member replaced by a JSON value of another kind: always a type error. */
const wrongType: fc.Arbitrary<BadRequest> = fc
  .constantFrom(...OPERATIONS)
  .chain((operation) => {
    const valid = VALID_REQUESTS[operation];
    return fc.tuple(fc.constant(operation), fc.constantFrom(...pathsOf(valid)), jsonOfEveryKind);
  })
  .filter(([operation, path, replacement]) => kindOf(valueAt(VALID_REQUESTS[operation], path)) !== kindOf(replacement))
  .map(([operation, path, replacement]) => ({
    kind: `wrong type at ${path.join('.')}`,
    operation,
    body: JSON.stringify(replaceAt(VALID_REQUESTS[operation], path, replacement)),
  }));

/** Truncated JSON (a strict prefix of an object is never JSON), sometimes with garbage after it. */
const badJson: fc.Arbitrary<BadRequest> = fc
  .tuple(fc.constantFrom(...OPERATIONS), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.constantFrom('', '}}', ']', 'x', '\u0000', '{', ',"a":'))
  .map(([operation, cut, garbage]) => {
    const text = JSON.stringify(VALID_REQUESTS[operation]);
    return { kind: 'bad JSON', operation, body: text.slice(0, Math.floor(cut * text.length)) + garbage };
  })
  .filter((request) => {
    try {
      JSON.parse(request.body);
      return false;
    } catch {
      return true;
    }
  });

const KNOWN = new Set(OPERATIONS);
const unknownOperation: fc.Arbitrary<BadRequest> = fc
  .stringMatching(/^[A-Za-z]{1,24}$/)
  .filter((name) => !KNOWN.has(name) && !/^(Describe|List|Batch|Transact|Create|Update|Delete|Get|Put|Query|Scan|Tag|Untag)/.test(name))
  .map((operation) => ({ kind: 'unknown operation', operation, body: '{}' }));

/** Target headers that name no operation: garbage, other API versions, near misses. */
const badTarget: fc.Arbitrary<BadRequest> = fc
  .oneof(
    fc.stringMatching(/^[!-~]{0,40}$/),
    fc.constantFrom(...OPERATIONS).map((operation) => `DynamoDB_20111205.${operation}`),
    fc.constantFrom(...OPERATIONS).map((operation) => `dynamodb_20120810.${operation}`),
    fc.constantFrom(...OPERATIONS).map((operation) => `DynamoDB_20120810.${operation.toLowerCase()}`),
    fc.constantFrom(...OPERATIONS).map((operation) => `DynamoDB_20120810.${operation}.Extra`),
  )
  .filter((target) => !OPERATIONS.some((operation) => target === `DynamoDB_20120810.${operation}`))
  .map((target) => ({ kind: `target ${JSON.stringify(target)}`, operation: 'ListTables', body: '{}', target }));

/** Attribute values DynamoDB rejects. */
const invalidAttributeValue: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  {},
  { S: 5 },
  { N: 'abc' },
  { N: '' },
  { N: '1e400' },
  { N: '1'.repeat(39) },
  { S: 'a', N: '1' },
  { SS: [] },
  { SS: ['a', 'a'] },
  { NS: ['1', '1.0'] },
  { NS: ['x'] },
  { BS: [] },
  { B: 'not base64!' },
  { NULL: false },
  { BOOL: 'maybe' },
  { M: 5 },
  { M: { a: {} } },
  { L: {} },
  { L: [{ Q: '1' }] },
  { X: '1' },
  'plain',
  42,
  [],
);

/** An invalid attribute value planted somewhere inside the items, keys and values of a request. */
const badAttributeValue: fc.Arbitrary<BadRequest> = fc
  .constantFrom('PutItem', 'GetItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'BatchGetItem', 'BatchWriteItem', 'TransactWriteItems', 'TransactGetItems')
  .chain((operation) => {
    const valid = VALID_REQUESTS[operation];
    // Positions that hold an attribute value: under Item, Key, Keys or ExpressionAttributeValues.
    const positions = pathsOf(valid).filter((path) => {
      const parent = path.slice(0, -1);
      const container = String(parent[parent.length - 1] ?? '');
      const inside = ['Item', 'Key', 'ExpressionAttributeValues', 'M'].includes(container) || (typeof parent[parent.length - 1] === 'number' && path.some((p) => p === 'Keys' || p === 'L'));
      return inside && typeof valueAt(valid, path) === 'object';
    });
    return fc.tuple(fc.constant(operation), fc.constantFrom(...positions), invalidAttributeValue);
  })
  .map(([operation, path, replacement]) => ({
    kind: `bad attribute value at ${path.join('.')}: ${JSON.stringify(replacement)}`,
    operation,
    body: JSON.stringify(replaceAt(VALID_REQUESTS[operation], path, replacement)),
  }));

const EXPRESSION_MEMBERS: [string, string][] = [
  ['PutItem', 'ConditionExpression'],
  ['UpdateItem', 'UpdateExpression'],
  ['UpdateItem', 'ConditionExpression'],
  ['DeleteItem', 'ConditionExpression'],
  ['GetItem', 'ProjectionExpression'],
  ['Query', 'KeyConditionExpression'],
  ['Query', 'FilterExpression'],
  ['Scan', 'FilterExpression'],
];
const expressionNoise = fc.array(
  fc.constantFrom('(', ')', 'AND', 'OR', 'NOT', '=', '<>', '<', 'BETWEEN', 'IN', ',', 'SET', 'REMOVE', 'ADD', 'DELETE', '+', '-', 'size(', 'a', 'b.c', 'd[1]', '#p', ':one', ':zero', 'counter', 'pk', '[', ']', '.', 'attribute_exists(', '"', '\u00e9'),
  { maxLength: 12 },
);

/** Expressions that can never be valid: they use a value placeholder nobody defined, or are empty. */
const badExpression: fc.Arbitrary<BadRequest> = fc
  .tuple(fc.constantFrom(...EXPRESSION_MEMBERS), expressionNoise, fc.boolean())
  .map(([[operation, member], noise, empty]) => {
    const expression = empty ? '' : `${noise.join(' ')} :never_defined`;
    return {
      kind: `bad ${member}: ${JSON.stringify(expression)}`,
      operation,
      body: JSON.stringify({ ...VALID_REQUESTS[operation], [member]: expression }),
    };
  });

/** Members with values out of their range or enum. */
const badEnumOrRange: fc.Arbitrary<BadRequest> = fc
  .tuple(
    fc.constantFrom<[string, string, Json]>(
      ['PutItem', 'ReturnValues', 'SOMETIMES'],
      ['UpdateItem', 'ReturnValues', 'ALL'],
      ['GetItem', 'ReturnConsumedCapacity', 'ALL'],
      ['Query', 'Limit', 0],
      ['Query', 'Select', 'EVERYTHING'],
      ['Scan', 'Limit', -5],
      ['Scan', 'Segment', 7],
      ['Scan', 'TotalSegments', 1_000_001],
      ['ListTables', 'Limit', 1000],
      ['CreateTable', 'BillingMode', 'FREE'],
      ['DescribeTable', 'TableName', 'no'],
      ['DescribeTable', 'TableName', 'bad name'],
      ['DeleteTable', 'TableName', ''],
      ['UpdateTable', 'BillingMode', 'CHEAP'],
    ),
    fc.constant(null),
  )
  .map(([[operation, member, value]]) => ({
    kind: `bad ${member}`,
    operation,
    body: JSON.stringify({ ...VALID_REQUESTS[operation], [member]: value }),
  }));

function sample(arbitrary: fc.Arbitrary<BadRequest>, count: number, seedOffset: number): BadRequest[] {
  return fc.sample(arbitrary, { seed: SEED + seedOffset, numRuns: count });
}

async function send(request: BadRequest): Promise<{ status: number; body: string }> {
  const response = await fetch(shoal.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': request.target ?? `DynamoDB_20120810.${request.operation}` },
    body: request.body,
  });
  return { status: response.status, body: await response.text() };
}

/** Answers that break the rule: not a 4xx, or not a DynamoDB error body. */
async function violations(requests: BadRequest[]): Promise<string[]> {
  const found: string[] = [];
  const concurrency = 16;
  for (let start = 0; start < requests.length; start += concurrency) {
    const batch = requests.slice(start, start + concurrency);
    const answers = await Promise.all(batch.map(send));
    answers.forEach((answer, i) => {
      let type: unknown;
      try {
        type = (JSON.parse(answer.body) as Record<string, unknown>).__type;
      } catch {
        type = undefined;
      }
      const typed = typeof type === 'string' && /^com\.amazon(aws\.dynamodb\.v20120810|\.coral\.service)#[A-Za-z]+$/.test(type);
      if (answer.status < 400 || answer.status >= 500 || !typed) {
        found.push(`${batch[i].operation} (${batch[i].kind}) -> ${answer.status} ${answer.body.slice(0, 300)}`);
      }
    });
  }
  return found;
}

describe('malformed input', () => {
  it.each<[string, () => BadRequest[]]>([
    ['members of the wrong type', () => sample(wrongType, 800, 1)],
    ['bad JSON', () => sample(badJson, 300, 2)],
    ['unknown operations', () => sample(unknownOperation, 200, 3)],
    ['malformed targets', () => sample(badTarget, 200, 7)],
    ['invalid attribute values', () => sample(badAttributeValue, 600, 4)],
    ['invalid expressions', () => sample(badExpression, 600, 5)],
    ['values out of range or enum', () => sample(badEnumOrRange, 100, 6)],
  ])('answers %s with a 4xx and a DynamoDB error type', async (_name, generate) => {
    expect(await violations(generate())).toEqual([]);
  });

  it('answers oversized requests with a 4xx and a DynamoDB error type', async () => {
    const big = 'x'.repeat(500 * 1024);
    const requests: BadRequest[] = [
      { kind: 'item over 400 KB', operation: 'PutItem', body: JSON.stringify({ TableName: TABLE, Item: { ...OTHER_ITEM, big: { S: big } } }) },
      {
        kind: 'too many batch writes',
        operation: 'BatchWriteItem',
        body: JSON.stringify({
          RequestItems: { [TABLE]: Array.from({ length: 26 }, (_, i) => ({ PutRequest: { Item: { pk: { S: `p${i}` }, sk: { N: '1' } } } })) },
        }),
      },
      {
        kind: 'too many transaction items',
        operation: 'TransactWriteItems',
        body: JSON.stringify({
          TransactItems: Array.from({ length: 101 }, (_, i) => ({ Put: { TableName: TABLE, Item: { pk: { S: `p${i}` }, sk: { N: '1' } } } })),
        }),
      },
      { kind: '5 MB of junk', operation: 'PutItem', body: `{"TableName":"${TABLE}","Item":${'['.repeat(10)}"${'y'.repeat(5 * 1024 * 1024)}"${']'.repeat(10)}}` },
    ];
    expect(await violations(requests)).toEqual([]);
  });

  it('leaves the sentinel item intact and keeps serving', async () => {
    const { Item } = await shoal.client.send(new GetItemCommand({ TableName: TABLE, Key: SENTINEL_KEY, ConsistentRead: true }));
    expect(Item).toEqual({ ...SENTINEL, payload: { M: { list: { L: [{ S: 'x' }, { N: '2' }] }, set: { SS: ['a', 'b'] } } } });
    const { Item: other } = await shoal.client.send(new GetItemCommand({ TableName: TABLE, Key: OTHER_KEY, ConsistentRead: true }));
    expect(other).toBeUndefined();
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: OTHER_ITEM }));
    expect((await shoal.client.send(new GetItemCommand({ TableName: TABLE, Key: OTHER_KEY, ConsistentRead: true }))).Item).toEqual(OTHER_ITEM);
  });
});
