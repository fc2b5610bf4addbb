/**
 * startRouter's onRequest hook: told once per answered request that names an operation served, with
 * its time and, for an error answer, DynamoDB's error type (refusals before dispatch included);
 * requests naming no served operation, and GETs, are not observed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { startRouter, type Router } from '../src/index.ts';

interface Observed {
  operation: string;
  seconds: number;
  errorType: string | undefined;
}

describe('startRouter onRequest', () => {
  let store: LocalStore;
  let router: Router;
  const observed: Observed[] = [];

  const call = async (target: string, body: string): Promise<{ status: number; type: string | undefined }> => {
    const response = await fetch(`http://127.0.0.1:${router.port}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': `DynamoDB_20120810.${target}` },
      body,
    });
    const answer = (await response.json()) as { __type?: string };
    return { status: response.status, type: answer.__type?.split('#')[1] };
  };

  beforeAll(async () => {
    store = await openLocalStore({ inMemory: true });
    router = await startRouter({
      partitions: store.partitions,
      catalog: store.catalog,
      port: 0,
      ttlSweepIntervalMs: 0,
      onRequest: (operation, seconds, errorType) => void observed.push({ operation, seconds, errorType }),
    });
  });

  afterAll(async () => {
    await router.close();
    await store.close();
  });

  it('reports each answered operation with its time, and the error type of error answers', async () => {
    const table = {
      TableName: 'observed',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    };
    expect((await call('CreateTable', JSON.stringify(table))).status).toBe(200);
    expect((await call('PutItem', JSON.stringify({ TableName: 'observed', Item: { pk: { S: 'a' } } }))).status).toBe(200);
    expect(await call('GetItem', JSON.stringify({ TableName: 'missing', Key: { pk: { S: 'a' } } }))).toEqual({ status: 400, type: 'ResourceNotFoundException' });
    // Refused before dispatch: still the operation's answer.
    expect(await call('Query', '{not json')).toEqual({ status: 400, type: 'SerializationException' });
    // Not an operation served: no label for it.
    expect(await call('FlyToTheMoon', '{}')).toEqual({ status: 400, type: 'UnknownOperationException' });
    expect((await fetch(`http://127.0.0.1:${router.port}/healthz`)).status).toBe(200);

    expect(observed.map(({ operation, errorType }) => ({ operation, errorType }))).toEqual([
      { operation: 'CreateTable', errorType: undefined },
      { operation: 'PutItem', errorType: undefined },
      { operation: 'GetItem', errorType: 'ResourceNotFoundException' },
      { operation: 'Query', errorType: 'SerializationException' },
    ]);
    for (const { seconds } of observed) {
      expect(seconds).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(seconds)).toBe(true);
    }
  });
});
