/**
 * UpdateItem edge cases where Shoal answered differently from DynamoDB. Each case names where
 * DynamoDB's behaviour comes from: scylladb's alternator tests (test/alternator/*.py, run against
 * DynamoDB itself), DynamoDB Local (AWS's own emulator), or the DynamoDB API reference.
 */
import { GetItemCommand, PutItemCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();
const TABLE = 'fidelity-updates';
const INDEXED = 'fidelity-updates-indexed';

beforeAll(async () => {
  await createTable(shoal.client, { TableName: TABLE, ...keyedBy(['id', 'S']) });
  await createTable(shoal.client, {
    TableName: INDEXED,
    ...keyedBy(['a', 'S'], ['b', 'S'], ['c', 'S'], ['d', 'S']),
    LocalSecondaryIndexes: [
      { IndexName: 'index1', KeySchema: keySchema('a', 'c'), Projection: { ProjectionType: 'ALL' } },
      { IndexName: 'index2', KeySchema: keySchema('a', 'd'), Projection: { ProjectionType: 'ALL' } },
    ],
  });
});

const list = (...values: number[]): AttributeValue => ({ L: values.map(n) });

async function read(id: string): Promise<Record<string, AttributeValue> | undefined> {
  const got = await shoal.client.send(new GetItemCommand({ TableName: TABLE, Key: { id: s(id) }, ConsistentRead: true }));
  return got.Item;
}

describe('functions nested in an update expression', () => {
  // scylladb test_update_expression.py::test_update_expression_function_nesting: DynamoDB refuses
  // list_append(list_append(...)); DynamoDB Local's parser (ASTListener.enterFunctionCall) lets only
  // if_not_exists stand inside another function or inside + and -.
  it.each([
    'SET a = list_append(list_append(:x, :y), :x)',
    'SET a = if_not_exists(a, list_append(:x, :y))',
    'SET a = list_append(:x, :y) + :one',
  ])('%s is refused', async (expression) => {
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: { id: s('nest'), a: list(1) } }));
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { id: s('nest') },
          UpdateExpression: expression,
          ExpressionAttributeValues: Object.fromEntries(
            [[':x', list(2)], [':y', list(3)], [':one', n(1)]].filter(([name]) => expression.includes(name as string)),
          ),
        }),
      ),
      'ValidationException',
      'Invalid UpdateExpression: The function is not allowed to be used this way in an expression; function: list_append',
    );
    expect(await read('nest')).toEqual({ id: s('nest'), a: list(1) });
  });

  it('takes if_not_exists inside list_append and inside if_not_exists', async () => {
    await shoal.client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { id: s('nest-ok') },
        UpdateExpression: 'SET a = list_append(if_not_exists(a, :empty), :x), b = if_not_exists(b, if_not_exists(c, :one))',
        ExpressionAttributeValues: { ':empty': { L: [] }, ':x': list(2), ':one': n(1) },
      }),
    );
    expect(await read('nest-ok')).toEqual({ id: s('nest-ok'), a: list(2), b: n(1) });
  });
});

describe('an update that only removes, on an item that does not exist', () => {
  // scylladb test_item.py::test_update_item_non_existent and test_update_item_delete, and
  // test_update_expression.py::test_nested_attribute_remove_from_missing_item (all run against
  // DynamoDB; scylladb issue #5862): no item is created, and REMOVE of a nested path is no error.
  it.each<[string, Omit<ConstructorParameters<typeof UpdateItemCommand>[0], 'TableName' | 'Key'>]>([
    ['REMOVE a', { UpdateExpression: 'REMOVE a' }],
    ['REMOVE a.b, c[2]', { UpdateExpression: 'REMOVE a.b, c[2]' }],
    ['DELETE of set elements', { UpdateExpression: 'DELETE a :v', ExpressionAttributeValues: { ':v': { SS: ['x'] } } }],
    ['AttributeUpdates DELETE', { AttributeUpdates: { a: { Action: 'DELETE' } } }],
    ['AttributeUpdates DELETE of set elements', { AttributeUpdates: { a: { Action: 'DELETE', Value: { NS: ['4'] } } } }],
  ])('%s creates no item', async (label, update) => {
    const id = `removes-only ${label}`;
    const answer = await shoal.client.send(new UpdateItemCommand({ TableName: TABLE, Key: { id: s(id) }, ReturnValues: 'ALL_NEW', ...update }));
    expect(answer.Attributes).toBeUndefined();
    expect(await read(id)).toBeUndefined();
  });

  it('an update that writes too, or an empty one, creates the item', async () => {
    await shoal.client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { id: s('writes') },
        UpdateExpression: 'SET a = :v REMOVE b',
        ExpressionAttributeValues: { ':v': n(1) },
      }),
    );
    expect(await read('writes')).toEqual({ id: s('writes'), a: n(1) });
    await shoal.client.send(new UpdateItemCommand({ TableName: TABLE, Key: { id: s('empty') } }));
    expect(await read('empty')).toEqual({ id: s('empty') });
  });

  it('REMOVE of a nested path under a missing attribute of an existing item is still refused', async () => {
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: { id: s('present'), a: s('x') } }));
    for (const expression of ['REMOVE b.c', 'REMOVE a.c', 'REMOVE b[0]']) {
      await expectDynamoError(
        shoal.client.send(new UpdateItemCommand({ TableName: TABLE, Key: { id: s('present') }, UpdateExpression: expression })),
        'ValidationException',
        'The document path provided in the update expression is invalid for update',
      );
    }
  });
});

describe('AttributeUpdates ADD or DELETE on an attribute of another type', () => {
  // dynalite's UpdateItem tests (captured from DynamoDB) and scylladb test_item.py::test_update_item_delete
  // and test_update_item_add (run against DynamoDB): the legacy parameter says "Type mismatch for
  // attribute to update"; the same update written as an UpdateExpression keeps its own message.
  it.each<[string, AttributeValue, { Action: 'ADD' | 'DELETE'; Value: AttributeValue }]>([
    ['DELETE NS from SS', { SS: ['1'] }, { Action: 'DELETE', Value: { NS: ['1'] } }],
    ['DELETE NS from N', n(1), { Action: 'DELETE', Value: { NS: ['1'] } }],
    ['ADD NS to SS', { SS: ['1'] }, { Action: 'ADD', Value: { NS: ['2'] } }],
    ['ADD N to NS', { NS: ['1'] }, { Action: 'ADD', Value: n(2) }],
  ])('%s', async (label, existing, update) => {
    const id = `mismatch ${label}`;
    await shoal.client.send(new PutItemCommand({ TableName: TABLE, Item: { id: s(id), b: existing } }));
    await expectDynamoError(
      shoal.client.send(new UpdateItemCommand({ TableName: TABLE, Key: { id: s(id) }, AttributeUpdates: { b: update } })),
      'ValidationException',
      'Type mismatch for attribute to update',
    );
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { id: s(id) },
          UpdateExpression: `${update.Action} b :v`,
          ExpressionAttributeValues: { ':v': update.Value },
        }),
      ),
      'ValidationException',
      'An operand in the update expression has an incorrect data type',
    );
    expect(await read(id)).toEqual({ id: s(id), b: existing });
  });
});

describe('an update against the keys of the table and its indexes', () => {
  // dynalite's UpdateItem tests (test/updateItem.js, captured from DynamoDB): these are checked before
  // the item is read, in this order: key attributes written, an index key given a value of a type
  // known from the request, a path into an index key; an index key set from the item to another type
  // has a message of its own.
  const key = (id: string) => ({ a: s(id), b: s('b') });
  const one = { ':one': n(1) };

  it.each<[string, string, Record<string, AttributeValue> | undefined, string]>([
    ['set d.a = a add c :one', 'ADD of a number to index key c (before the bad path d.a)', one, 'One or more parameter values were invalid: Type mismatch for Index Key c Expected: S Actual: N IndexName: index1'],
    ['set e = c[1], c = a + :one', 'a sum into index key c (before the missing c[1])', one, 'One or more parameter values were invalid: Type mismatch for Index Key c Expected: S Actual: N IndexName: index1'],
    ['add d.b :one', 'ADD into a path under index key d', one, "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: IndexKey: d"],
    ['set d[1] = :one', 'SET of an element of index key d', one, "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: IndexKey: d"],
    ['set e = list_append(a, b), f = d[1]', 'a read of an element of index key d', undefined, "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: IndexKey: d"],
    ['set d[1] = :one add b.b :one', 'a write under range key b', one, 'One or more parameter values were invalid: Cannot update attribute b. This attribute is part of the key'],
  ])('%s: %s', async (expression, label, values, message) => {
    await expectDynamoError(
      shoal.client.send(new UpdateItemCommand({ TableName: INDEXED, Key: key(`static ${expression}`), UpdateExpression: expression, ExpressionAttributeValues: values })),
      'ValidationException',
      message,
    );
  });

  it('an index key set from an attribute of another type', async () => {
    await shoal.client.send(
      new UpdateItemCommand({ TableName: INDEXED, Key: key('from-item'), UpdateExpression: 'SET e = :one', ExpressionAttributeValues: one }),
    );
    for (const expression of ['SET c = e', 'SET d = e']) {
      await expectDynamoError(
        shoal.client.send(new UpdateItemCommand({ TableName: INDEXED, Key: key('from-item'), UpdateExpression: expression })),
        'ValidationException',
        'The update expression attempted to update the secondary index key to unsupported type',
      );
    }
  });
});

describe('an unknown ConditionalOperator', () => {
  // paritysuite/dynamodb-conformance tests/tier3/validation-ordering/updateItem.test.ts (captured from
  // DynamoDB in two regions): the enum is listed as [OR, AND].
  it('is listed in DynamoDB\'s order', async () => {
    await expectDynamoError(
      shoal.client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { id: s('xor') },
          AttributeUpdates: { x: { Action: 'PUT', Value: s('1') } },
          Expected: { a: { Exists: false }, b: { Exists: false } },
          ConditionalOperator: 'XOR' as never,
        }),
      ),
      'ValidationException',
      "1 validation error detected: Value 'XOR' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [OR, AND]",
    );
  });
});
