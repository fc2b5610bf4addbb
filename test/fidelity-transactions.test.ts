/**
 * TransactWriteItems where Shoal answered differently from DynamoDB. Source: paritysuite/dynamodb-conformance,
 * tests/tier3/error-messages/transactWriteItems.test.ts (messages captured from real DynamoDB in four
 * regions): a key of the wrong type cancels the transaction with a ValidationError reason, while an
 * empty key value is the request's own ValidationException.
 */
import { GetItemCommand, TransactWriteItemsCommand, type TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();
const TABLE = 'fidelity-transactions';

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: TABLE,
    ...keyedBy(['pk', 'S'], undefined, ['tag', 'S']),
    GlobalSecondaryIndexes: [{ IndexName: 'by-tag', KeySchema: keySchema('tag'), Projection: { ProjectionType: 'KEYS_ONLY' } }],
  });
});

const update = (key: Record<string, unknown>): TransactWriteItem =>
  ({ Update: { TableName: TABLE, Key: key, UpdateExpression: 'SET attr = :v', ExpressionAttributeValues: { ':v': s('x') } } }) as TransactWriteItem;
const remove = (key: Record<string, unknown>): TransactWriteItem => ({ Delete: { TableName: TABLE, Key: key } }) as TransactWriteItem;
const check = (key: Record<string, unknown>): TransactWriteItem =>
  ({ ConditionCheck: { TableName: TABLE, Key: key, ConditionExpression: 'attribute_not_exists(pk)' } }) as TransactWriteItem;
const put = (item: Record<string, unknown>): TransactWriteItem => ({ Put: { TableName: TABLE, Item: item } }) as TransactWriteItem;

describe('a key of the wrong type in a transaction', () => {
  it.each<[string, TransactWriteItem, string]>([
    ['Put, number key', put({ pk: n(5) }), 'One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N'],
    ['Put, list key', put({ pk: { L: [s('x')] } }), 'One or more parameter values were invalid: Type mismatch for key pk expected: S actual: L'],
    ['Put, number index key', put({ pk: s('p'), tag: n(1) }), 'One or more parameter values were invalid: Type mismatch for Index Key tag Expected: S Actual: N IndexName: by-tag'],
    ['Update, number key', update({ pk: n(5) }), 'The provided key element does not match the schema'],
    ['Update, list key', update({ pk: { L: [s('x')] } }), 'The provided key element does not match the schema'],
    ['Delete, number key', remove({ pk: n(5) }), 'The provided key element does not match the schema'],
    ['ConditionCheck, number key', check({ pk: n(5) }), 'The provided key element does not match the schema'],
  ])('%s cancels the transaction with a ValidationError reason', async (label, action, reason) => {
    const error = await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: [action] })),
      'TransactionCanceledException',
      'Transaction cancelled, please refer cancellation reasons for specific reasons [ValidationError]',
    );
    expect(error.CancellationReasons).toEqual([{ Code: 'ValidationError', Message: reason }]);
  });

  it('writes none of the other actions', async () => {
    const error = await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: [put({ pk: s('kept-out') }), update({ pk: n(5) })] })),
      'TransactionCanceledException',
    );
    expect(error.CancellationReasons?.[1]?.Code).toBe('ValidationError');
    const got = await shoal.client.send(new GetItemCommand({ TableName: TABLE, Key: { pk: s('kept-out') }, ConsistentRead: true }));
    expect(got.Item).toBeUndefined();
  });

  it.each<[string, TransactWriteItem]>([
    ['Put', put({ pk: s('') })],
    ['Update', update({ pk: s('') })],
    ['Delete', remove({ pk: s('') })],
    ['ConditionCheck', check({ pk: s('') })],
  ])('an empty key in a %s is the request\'s ValidationException', async (label, action) => {
    await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: [action] })),
      'ValidationException',
      'One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk',
    );
  });
});
