import {
  CreateTableCommand,
  type AttributeDefinition,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type KeySchemaElement,
  type ScalarAttributeType,
} from '@aws-sdk/client-dynamodb';
import { expect } from 'vitest';

/** What the SDK throws for a DynamoDB error: its class name, message and modeled fields. */
export interface SdkError extends Error {
  name: string;
  message: string;
  Item?: Record<string, unknown>;
  CancellationReasons?: { Code?: string; Message?: string; Item?: Record<string, unknown> }[];
  $metadata?: { httpStatusCode?: number };
}

/** Awaits a request expected to fail; checks the error type and, when given, the exact message. */
export async function expectDynamoError(request: Promise<unknown>, type: string, message?: string | RegExp): Promise<SdkError> {
  const outcome = await request.then(
    (response) => ({ failed: false as const, response }),
    (error: unknown) => ({ failed: true as const, error: error as SdkError }),
  );
  if (!outcome.failed) throw new Error(`expected ${type}, got success: ${JSON.stringify(outcome.response)}`);
  expect(outcome.error.name).toBe(type);
  if (typeof message === 'string') expect(outcome.error.message).toBe(message);
  else if (message) expect(outcome.error.message).toMatch(message);
  return outcome.error;
}

/** The error a command fails with: its SDK name and message. */
export async function failure(promise: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    const { name, message } = error as Error;
    return { name, message };
  }
  throw new Error('expected the request to fail');
}

/** Creates a table, defaulting to on-demand billing. */
export async function createTable(client: DynamoDBClient, input: Omit<CreateTableCommandInput, 'BillingMode'> & { BillingMode?: 'PAY_PER_REQUEST' | 'PROVISIONED' }): Promise<void> {
  await client.send(new CreateTableCommand({ BillingMode: 'PAY_PER_REQUEST', ...input }));
}

/** An attribute a table or index keys on: its name and type. */
export type KeyAttribute = [name: string, type: ScalarAttributeType];

/** A key schema: the hash attribute, then the range attribute if there is one. */
export function keySchema(hash: string, range?: string): KeySchemaElement[] {
  const schema: KeySchemaElement[] = [{ AttributeName: hash, KeyType: 'HASH' }];
  if (range !== undefined) schema.push({ AttributeName: range, KeyType: 'RANGE' });
  return schema;
}

/**
 * The AttributeDefinitions and KeySchema of a table keyed on `hash` (and `range`); `indexed` defines
 * the further attributes its indexes key on.
 */
export function keyedBy(
  hash: KeyAttribute,
  range?: KeyAttribute,
  ...indexed: KeyAttribute[]
): { AttributeDefinitions: AttributeDefinition[]; KeySchema: KeySchemaElement[] } {
  const defined = range === undefined ? [hash, ...indexed] : [hash, range, ...indexed];
  return {
    AttributeDefinitions: defined.map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })),
    KeySchema: keySchema(hash[0], range?.[0]),
  };
}

/** A string of `bytes` ASCII characters, for items of a chosen size. */
export function filler(bytes: number): string {
  return 'x'.repeat(bytes);
}
