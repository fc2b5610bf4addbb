/**
 * UpdateTable's background backfill of a new GSI keeps trying after an attempt fails (the cluster
 * client's retry budget spent: ServiceUnavailable), with pauses, until it succeeds (the index turns
 * ACTIVE), the index or its table is gone, or the router closes. The store under the router is real;
 * its backfillIndex fails while `failing` says so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoDbError, type PartitionClient } from '@shoal/model';
import { openLocalStore, type LocalStore } from '@shoal/storage';
import { startRouter, type Router } from '../src/index.ts';
import { eventually } from './support/eventually.ts';

/** The store's PartitionClient, its backfillIndex failing as a cluster unreachable for a while does (counted). */
function withFailingBackfills(partitions: PartitionClient): { client: PartitionClient; attempts: () => number; heal(): void; failNext(count: number): void; hang(): void } {
  let attempts = 0;
  let failures = Number.POSITIVE_INFINITY;
  let hanging = false;
  const client = new Proxy(partitions, {
    get(target, property, receiver) {
      if (property === 'backfillIndex') {
        return async (...args: Parameters<PartitionClient['backfillIndex']>) => {
          attempts += 1;
          // A walk that does not end while the router runs (a large table, its GSI slow to take entries).
          if (hanging) return new Promise<void>(() => undefined);
          if (failures > 0) {
            failures -= 1;
            throw new DynamoDbError('ServiceUnavailable', 'the cluster did not answer within the retry budget', {}, 503);
          }
          return target.backfillIndex(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    client,
    attempts: () => attempts,
    heal: () => (failures = 0),
    failNext: (count) => (failures = count),
    hang: () => (hanging = true),
  };
}

describe('a GSI backfill that fails', () => {
  let store: LocalStore | undefined;
  let router: Router | undefined;

  afterEach(async () => {
    await router?.close();
    await store?.close();
    router = undefined;
    store = undefined;
  });

  const start = async (failNext: number, hang = false) => {
    store = await openLocalStore({ inMemory: true });
    const flaky = withFailingBackfills(store.partitions);
    flaky.failNext(failNext);
    if (hang) flaky.hang();
    router = await startRouter({ partitions: flaky.client, catalog: store.catalog, port: 0, ttlSweepIntervalMs: 0 });
    return flaky;
  };

  const call = async (target: string, body: unknown): Promise<Record<string, unknown>> => {
    const response = await fetch(`http://127.0.0.1:${router!.port}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': `DynamoDB_20120810.${target}` },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    if (response.status !== 200) throw new Error(`${target}: ${JSON.stringify(answer)}`);
    return answer;
  };

  /** A table of three items, then a GSI on `city` added by UpdateTable. */
  const tableWithNewIndex = async (): Promise<void> => {
    await call('CreateTable', {
      TableName: 'towns',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    });
    for (const [pk, city] of [['a', 'Oslo'], ['b', 'Rome'], ['c', 'Oslo']]) await call('PutItem', { TableName: 'towns', Item: { pk: { S: pk }, city: { S: city } } });
    await call('UpdateTable', {
      TableName: 'towns',
      AttributeDefinitions: [{ AttributeName: 'city', AttributeType: 'S' }],
      GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byCity', KeySchema: [{ AttributeName: 'city', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } } }],
    });
  };

  const indexStatus = async (): Promise<string | undefined> => {
    const { Table } = (await call('DescribeTable', { TableName: 'towns' })) as { Table: { GlobalSecondaryIndexes?: Array<{ IndexStatus: string }> } };
    return Table.GlobalSecondaryIndexes?.[0]?.IndexStatus;
  };

  it('is tried again after each failure until an attempt succeeds: the index turns ACTIVE and holds every item', async () => {
    const flaky = await start(3);
    await tableWithNewIndex();
    await eventually('the index ACTIVE', async () => (await indexStatus()) === 'ACTIVE', 400);
    expect(flaky.attempts()).toBe(4);
    const { Count } = (await call('Query', { TableName: 'towns', IndexName: 'byCity', KeyConditionExpression: 'city = :c', ExpressionAttributeValues: { ':c': { S: 'Oslo' } } })) as { Count: number };
    expect(Count).toBe(2);
  });

  it('stops once the index is deleted meanwhile', async () => {
    const flaky = await start(Number.POSITIVE_INFINITY);
    await tableWithNewIndex();
    await eventually('a second attempt', () => flaky.attempts() >= 2);
    expect(await indexStatus()).toBe('CREATING');
    await call('UpdateTable', { TableName: 'towns', GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byCity' } }] });
    expect(await indexStatus()).toBeUndefined();
    // The next attempt fails too and finds the index gone: none after it (the pause after it would be
    // at most 1.6 s by then).
    const stopped = flaky.attempts() + 1;
    await eventually('the last attempt', () => flaky.attempts() >= stopped);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(flaky.attempts()).toBe(stopped);
  });

  it('stops when the router closes, without waiting out its pause; the index stays CREATING for the next router', async () => {
    const flaky = await start(Number.POSITIVE_INFINITY);
    await tableWithNewIndex();
    await eventually('a second attempt', () => flaky.attempts() >= 2);
    await router!.close();
    router = undefined;
    const attempts = flaky.attempts();
    // The next router takes the backfill up, and it succeeds.
    flaky.heal();
    router = await startRouter({ partitions: flaky.client, catalog: store!.catalog, port: 0, ttlSweepIntervalMs: 0 });
    await eventually('the index ACTIVE', async () => (await indexStatus()) === 'ACTIVE', 400);
    expect(flaky.attempts()).toBe(attempts + 1);
  });

  it('stops waiting for a walk still under way when the router closes (close does not wait for the walk)', async () => {
    const flaky = await start(0, true);
    await tableWithNewIndex();
    await eventually('the attempt', () => flaky.attempts() >= 1);
    // Old code: close waited for the backfill call, here forever (the test's timeout).
    await router!.close();
    router = undefined;
    expect(flaky.attempts()).toBe(1);
  });
});
