/**
 * Condition expression edge cases where Shoal answered differently from DynamoDB. Sources:
 * scylladb's alternator tests (test/alternator/test_condition_expression.py, run against DynamoDB
 * itself) and DynamoDB Local (AWS's emulator: Operator, OperatorValidator).
 */
import { PutItemCommand, QueryCommand, ScanCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();
const TABLE = 'fidelity-conditions';
const binary = (text: string): AttributeValue => ({ B: new TextEncoder().encode(text) });

beforeAll(async () => {
  await createTable(shoal.client, { TableName: TABLE, ...keyedBy(['id', 'S'], ['at', 'N']) });
  await shoal.client.send(
    new PutItemCommand({
      TableName: TABLE,
      Item: { id: s('c'), at: n(1), greeting: binary('hi there'), amount: n(5), tags: { L: [n(1), n(2)] } },
    }),
  );
});

function conditional(condition: string, values: Record<string, AttributeValue>): Promise<unknown> {
  return shoal.client.send(
    new UpdateItemCommand({
      TableName: TABLE,
      Key: { id: s('c'), at: n(1) },
      UpdateExpression: 'SET touched = :one',
      ConditionExpression: condition,
      ExpressionAttributeValues: { ':one': n(1), ...values },
    }),
  );
}

describe('contains() on a binary attribute', () => {
  // test_update_condition_contains: contains() finds a byte sequence in a binary, as a substring in a string.
  it('is true for a byte sequence the binary holds, false otherwise', async () => {
    await conditional('contains(greeting, :part)', { ':part': binary('here') });
    await expectDynamoError(conditional('contains(greeting, :part)', { ':part': binary('dog') }), 'ConditionalCheckFailedException');
    await expectDynamoError(conditional('contains(greeting, :part)', { ':part': s('here') }), 'ConditionalCheckFailedException');
  });

  // The API reference's Condition page: CONTAINS on a Binary target "looks for a subsequence of the
  // target that matches the input".
  it('legacy CONTAINS looks for a subsequence too', async () => {
    const scanned = await shoal.client.send(
      new ScanCommand({
        TableName: TABLE,
        ScanFilter: { greeting: { ComparisonOperator: 'CONTAINS', AttributeValueList: [binary('i th')] } },
      }),
    );
    expect(scanned.Count).toBe(1);
  });

  it('filters a Query the same way', async () => {
    const found = await shoal.client.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: 'id = :id',
        FilterExpression: 'contains(greeting, :part)',
        ExpressionAttributeValues: { ':id': s('c'), ':part': binary('there') },
      }),
    );
    expect(found.Count).toBe(1);
  });
});

describe('operands of a type the operator does not take', () => {
  // test_update_condition_lt/le/gt/ge/between: a value of the request of a type <, <=, >, >= or
  // BETWEEN cannot order is a ValidationException; an item attribute of such a type only fails the
  // condition. DynamoDB Local checks the same for size() and begins_with() operands.
  it.each<[string, Record<string, AttributeValue>, string]>([
    ['amount < :list', { ':list': { L: [n(1)] } }, 'operator or function: <, operand type: L'],
    [':list >= amount', { ':list': { L: [n(1)] } }, 'operator or function: >=, operand type: L'],
    ['amount > :yes', { ':yes': { BOOL: true } }, 'operator or function: >, operand type: BOOL'],
    ['amount BETWEEN :low AND :high', { ':low': { L: [] }, ':high': { L: [] } }, 'operator or function: BETWEEN, operand type: L'],
    ['size(size(greeting)) = :two', { ':two': n(2) }, 'operator or function: size, operand type: N'],
  ])('%s is refused', async (condition, values, detail) => {
    await expectDynamoError(
      conditional(condition, values),
      'ValidationException',
      `Invalid ConditionExpression: Incorrect operand type for operator or function; ${detail}`,
    );
  });

  it('an item attribute of such a type fails the condition, and fails a filter quietly', async () => {
    await expectDynamoError(conditional('tags < :one', {}), 'ConditionalCheckFailedException');
    await expectDynamoError(conditional(':one < tags', {}), 'ConditionalCheckFailedException');
    const scanned = await shoal.client.send(
      new ScanCommand({ TableName: TABLE, FilterExpression: 'tags > amount' }),
    );
    expect(scanned.Count).toBe(0);
  });

  it('the same value in a FilterExpression is refused too', async () => {
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: TABLE, FilterExpression: 'amount < :list', ExpressionAttributeValues: { ':list': { L: [] } } })),
      'ValidationException',
      'Invalid FilterExpression: Incorrect operand type for operator or function; operator or function: <, operand type: L',
    );
  });
});
