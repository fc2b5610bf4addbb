/**
 * Query and Scan where Shoal answered differently from DynamoDB. Source: paritysuite/dynamodb-conformance
 * tests/tier3/error-messages/queryKeyConditionOperands.test.ts (messages captured from DynamoDB,
 * eu-west-2, October 2026).
 */
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();
const TABLE = 'fidelity-queries';

beforeAll(async () => {
  await createTable(shoal.client, { TableName: TABLE, ...keyedBy(['pk', 'S'], ['sk', 'N']) });
});

describe('key conditions with too many parts', () => {
  it('two conditions on the sort key', async () => {
    await expectDynamoError(
      shoal.client.send(
        new QueryCommand({
          TableName: TABLE,
          KeyConditionExpression: 'pk = :p AND sk > :a AND sk < :b',
          ExpressionAttributeValues: { ':p': s('q'), ':a': n(1), ':b': n(5) },
        }),
      ),
      'ValidationException',
      'Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key',
    );
  });

  it('three conditions on three attributes of a two-attribute key', async () => {
    await expectDynamoError(
      shoal.client.send(
        new QueryCommand({
          TableName: TABLE,
          KeyConditionExpression: 'pk = :p AND sk > :a AND extra = :b',
          ExpressionAttributeValues: { ':p': s('q'), ':a': n(1), ':b': n(5) },
        }),
      ),
      'ValidationException',
      'The number of query conditions (3) exceeds the number of key attributes defined in the schema (2)',
    );
  });
});
