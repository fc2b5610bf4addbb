/**
 * BatchWriteItem where Shoal answered differently from DynamoDB. Source: paritysuite/dynamodb-conformance
 * tests/tier3/error-messages/batchWriteItem.test.ts (messages captured from DynamoDB in several regions,
 * 2026; where regions give two wordings the test there accepts both, and Shoal gives one of them).
 */
import { BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, it } from 'vitest';
import { s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();
const TABLE = 'fidelity-batch';

beforeAll(async () => {
  await createTable(shoal.client, { TableName: TABLE, ...keyedBy(['pk', 'S']) });
});

describe('BatchWriteItem request lists of the wrong length', () => {
  it('no tables at all', async () => {
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: {} })),
      'ValidationException',
      'The requestItems parameter is required for BatchWriteItem',
    );
  });

  it('an empty list for a table', async () => {
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: [] } })),
      'ValidationException',
      `1 validation error detected: Value '{${TABLE}=[]}' at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]`,
    );
  });

  it('26 requests for a table', async () => {
    const requests = Array.from({ length: 26 }, (_, i) => ({ PutRequest: { Item: { pk: s(`p${i}`) } } }));
    await expectDynamoError(
      shoal.client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: requests } })),
      'ValidationException',
      `1 validation error detected: Value at 'RequestItems.${TABLE}.member' failed to satisfy constraint: Member must have length less than or equal to 25`,
    );
  });
});
