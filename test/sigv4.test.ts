import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { failure } from './helpers/item-assertions.ts';
import { sdkClients, shoalPerFile } from './helpers/shoal.ts';

/** A router configured with credentials verifies SigV4 signatures the way DynamoDB does. */

const ALICE = { accessKeyId: 'AKIDALICE', secretAccessKey: 'alice-secret' };
const BOB = { accessKeyId: 'AKIDBOB', secretAccessKey: 'bob/secret+with=odd chars' };
const shoal = shoalPerFile({ credentials: [ALICE, BOB] });

describe('SigV4 verification', () => {
  it('accepts requests signed by any configured credential', async () => {
    for (const credentials of [ALICE, BOB]) {
      const { client, doc } = sdkClients(shoal.endpoint, { credentials });
      await client.send(
        new CreateTableCommand({
          TableName: `signed_${credentials.accessKeyId}`,
          KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      await doc.send(new PutCommand({ TableName: `signed_${credentials.accessKeyId}`, Item: { id: 'é unicode ✓', n: 1 } }));
      const { Item } = await doc.send(new GetCommand({ TableName: `signed_${credentials.accessKeyId}`, Key: { id: 'é unicode ✓' }, ConsistentRead: true }));
      expect(Item).toEqual({ id: 'é unicode ✓', n: 1 });
      client.destroy();
    }
  });

  it('accepts a signature scoped to any region', async () => {
    const client = new DynamoDBClient({ endpoint: shoal.endpoint, region: 'ap-southeast-2', credentials: ALICE, maxAttempts: 1 });
    expect((await client.send(new ListTablesCommand({}))).TableNames).toBeInstanceOf(Array);
    client.destroy();
  });

  it('rejects a wrong secret', async () => {
    const { client } = sdkClients(shoal.endpoint, { credentials: { ...ALICE, secretAccessKey: 'wrong' } });
    expect(await failure(client.send(new ListTablesCommand({})))).toEqual({
      name: 'InvalidSignatureException',
      message:
        'The request signature we calculated does not match the signature you provided. ' +
        'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    });
    client.destroy();
  });

  it('rejects an unknown access key', async () => {
    const { client } = sdkClients(shoal.endpoint, { credentials: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' } });
    expect(await failure(client.send(new ListTablesCommand({})))).toEqual({
      name: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    });
    client.destroy();
  });

  it('rejects a request signed too long ago', async () => {
    const { client } = sdkClients(shoal.endpoint, { credentials: ALICE, systemClockOffset: -20 * 60 * 1000 });
    const { name, message } = await failure(client.send(new ListTablesCommand({})));
    expect(name).toBe('InvalidSignatureException');
    expect(message).toMatch(/^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$/);
    client.destroy();
  });

  it('rejects unsigned and half-signed requests', async () => {
    const post = async (headers: Record<string, string>): Promise<Record<string, unknown>> => {
      const response = await fetch(shoal.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': 'DynamoDB_20120810.ListTables', ...headers },
        body: '{}',
      });
      expect(response.status).toBe(400);
      return (await response.json()) as Record<string, unknown>;
    };
    expect(await post({})).toEqual({
      __type: 'com.amazon.coral.service#MissingAuthenticationTokenException',
      message: 'Request is missing Authentication Token',
    });
    const partial = await post({ Authorization: 'AWS4-HMAC-SHA256 Credential=AKIDALICE/20260101/us-east-1/dynamodb/aws4_request' });
    expect(partial.__type).toBe('com.amazon.coral.service#IncompleteSignatureException');
    expect(partial.message).toContain("Authorization header requires 'Signature' parameter.");
    expect(partial.message).toContain("Authorization header requires 'SignedHeaders' parameter.");
  });

  it('answers a bad target before checking the signature, as DynamoDB does', async () => {
    for (const target of ['DynamoDB_20120810.Nope', undefined]) {
      const response = await fetch(shoal.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-amz-json-1.0', ...(target === undefined ? {} : { 'X-Amz-Target': target }) },
        body: '{}',
      });
      expect(((await response.json()) as Record<string, unknown>).__type).toBe('com.amazon.coral.service#UnknownOperationException');
    }
  });
});
