import { GetItemCommand, ListTablesCommand, TransactGetItemsCommand, TransactWriteItemsCommand, type DynamoDBClient, type TransactWriteItemsCommandInput } from '@aws-sdk/client-dynamodb';
import { CLIENT_TOKEN_TABLE } from '@shoal/router';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { n, s } from './helpers/attribute-values.ts';
import { eventually, killStartedProcesses, NodeCluster, startClusterRouter, type ClusterRouter } from './helpers/cluster.ts';
import { createTable, expectDynamoError, keyedBy, type SdkError } from './helpers/item-assertions.ts';
import { sdkClients } from './helpers/shoal.ts';

/**
 * TransactWriteItems' ClientRequestToken over 3 storage node processes and two routers: the claim
 * of a token is an item the transaction writes itself, so every router finds it, a router restarted
 * or the nodes restarted still know it, and it ends with the router's TTL sweep after 10 minutes
 * (the routers' clock moved forward, not slept through).
 */

const STEP_TIMEOUT_MS = 180_000;
const TEN_MINUTES_MS = 10 * 60 * 1000;
/** Deadline of the transactions of the router whose transaction is held past it: the resolvers abort it soon after. */
const DYING_DEADLINE_MS = 2_000;

/** Added to the routers' clock: moved past a token's lifetime by the expiry test. */
let clockShift = 0;
const now = (): number => Date.now() + clockShift;

interface TestRouter {
  router: ClusterRouter;
  client: DynamoDBClient;
  /** Holds this router's next transaction right after its prepare until `hold` resolves; resolves once there. */
  holdNext(hold: Promise<void>): Promise<void>;
}

let nodes: NodeCluster;
const routers: TestRouter[] = [];
let first: TestRouter;
let second: TestRouter;

/** `deadlineMs`: how long its transactions may stay undecided before the partitions' resolvers abort them. */
async function startTestRouter(deadlineMs?: number): Promise<TestRouter> {
  let next: { hold: Promise<void>; reached: () => void } | undefined;
  const router = await startClusterRouter(nodes.metaAddresses, {
    now,
    transactions: {
      deadlineMs,
      faults: {
        afterPrepare: async () => {
          const held = next;
          next = undefined;
          held?.reached();
          await held?.hold;
        },
      },
    },
  });
  const started: TestRouter = {
    router,
    client: sdkClients(router.endpoint).client,
    holdNext: (hold) => new Promise<void>((reached) => (next = { hold, reached })),
  };
  routers.push(started);
  return started;
}

async function stopRouter(stopped: TestRouter): Promise<void> {
  routers.splice(routers.indexOf(stopped), 1);
  stopped.client.destroy();
  await stopped.router.close();
}

beforeAll(async () => {
  nodes = await NodeCluster.start();
  first = await startTestRouter();
  second = await startTestRouter();
  for (const TableName of ['counters', 'journal']) await createTable(first.client, { TableName, ...keyedBy(['id', 'S']) });
}, STEP_TIMEOUT_MS);

afterAll(async () => {
  for (const router of [...routers]) await stopRouter(router);
  await nodes?.close();
  killStartedProcesses();
});

const key = (id: string) => ({ id: s(id) });

/** A counter's increment and a journal line: two tables, so a transaction over two partitions (three with the claim). */
function increment(token: string, id: string, by = 1): TransactWriteItemsCommandInput {
  return {
    ClientRequestToken: token,
    TransactItems: [
      { Update: { TableName: 'counters', Key: key(id), UpdateExpression: 'ADD hits :by', ExpressionAttributeValues: { ':by': n(by) } } },
      { Update: { TableName: 'journal', Key: key(id), UpdateExpression: 'ADD lineCount :one', ExpressionAttributeValues: { ':one': n(1) } } },
    ],
  };
}

async function counts(client: DynamoDBClient, id: string): Promise<[string | undefined, string | undefined]> {
  const read = async (TableName: string, attribute: string): Promise<string | undefined> => {
    const { Item } = await client.send(new GetItemCommand({ TableName, Key: key(id), ConsistentRead: true }));
    return (Item?.[attribute] as { N: string } | undefined)?.N;
  };
  return [await read('counters', 'hits'), await read('journal', 'lineCount')];
}

/** The token's claim as stored, read through a router's cluster client. */
async function claimOf(router: TestRouter, token: string): Promise<Record<string, unknown> | undefined> {
  const table = await router.router.backend.catalog.get(CLIENT_TOKEN_TABLE);
  if (table === undefined) throw new Error('no token table');
  return (await router.router.backend.partitions.get({ table: table.schema, key: { token: { S: token } } }, { consistent: true }))?.item;
}

describe('ClientRequestToken across routers', () => {
  it('applies the same request once through router 1 then router 2, and refuses other parameters through router 2', { timeout: STEP_TIMEOUT_MS }, async () => {
    await first.client.send(new TransactWriteItemsCommand(increment('token-a', 'a')));
    expect(await counts(first.client, 'a')).toEqual(['1', '1']);
    await second.client.send(new TransactWriteItemsCommand(increment('token-a', 'a')));
    expect(await counts(second.client, 'a')).toEqual(['1', '1']);

    await expectDynamoError(
      second.client.send(new TransactWriteItemsCommand(increment('token-a', 'a', 2))),
      'IdempotentParameterMismatchException',
      'The request uses the same client token as a previous, but non-identical request.',
    );
    // Other parameters on other items are a mismatch too: the claim is found from the token alone.
    await expectDynamoError(second.client.send(new TransactWriteItemsCommand(increment('token-a', 'elsewhere'))), 'IdempotentParameterMismatchException');
    expect(await counts(second.client, 'a')).toEqual(['1', '1']);
    expect(await counts(second.client, 'elsewhere')).toEqual([undefined, undefined]);
    // The hidden table is not listed.
    expect((await second.client.send(new ListTablesCommand({}))).TableNames).toEqual(['counters', 'journal']);
  });

  it('answers TransactionInProgressException for a token whose first call is in flight, then success, applied once', { timeout: STEP_TIMEOUT_MS }, async () => {
    let release!: () => void;
    const reached = first.holdNext(new Promise<void>((done) => (release = done)));
    const held = first.client.send(new TransactWriteItemsCommand(increment('token-b', 'b'))).then(
      () => 'applied',
      (error: Error) => error.name,
    );
    try {
      await reached;
      await expectDynamoError(
        second.client.send(new TransactWriteItemsCommand(increment('token-b', 'b'))),
        'TransactionInProgressException',
        'The transaction with the given request token is already in progress.',
      );
      // Whatever its parameters: the token is taken by the transaction in flight.
      await expectDynamoError(second.client.send(new TransactWriteItemsCommand(increment('token-b', 'b', 5))), 'TransactionInProgressException');
    } finally {
      release();
    }
    expect(await held).toBe('applied');
    await second.client.send(new TransactWriteItemsCommand(increment('token-b', 'b')));
    expect(await counts(second.client, 'b')).toEqual(['1', '1']);
  });

  it('leaves the token free when its transaction was aborted by the resolvers (its deadline passed while held)', { timeout: STEP_TIMEOUT_MS }, async () => {
    const dying = await startTestRouter(DYING_DEADLINE_MS);
    let release!: () => void;
    const reached = dying.holdNext(new Promise<void>((done) => (release = done)));
    const held = dying.client.send(new TransactWriteItemsCommand(increment('token-d', 'd'))).then(
      () => undefined,
      (error: SdkError) => error,
    );
    try {
      await reached;
      // Aborted by a resolver: its intents released, a read of its items no longer in conflict.
      await eventually('the held transaction aborted', async () => {
        const read = dying.client.send(new TransactGetItemsCommand({ TransactItems: [{ Get: { TableName: 'counters', Key: key('d') } }, { Get: { TableName: 'journal', Key: key('d') } }] }));
        return read.then(() => true, () => false);
      }, 60_000, 250);
    } finally {
      release();
    }
    const refused = await held;
    expect(refused?.name).toBe('TransactionCanceledException');
    expect(refused?.CancellationReasons?.map((reason) => reason.Code)).toEqual(['TransactionConflict', 'TransactionConflict']);
    await stopRouter(dying);
    await second.client.send(new TransactWriteItemsCommand(increment('token-d', 'd')));
    expect(await counts(second.client, 'd')).toEqual(['1', '1']);
  });

  it('applies concurrent calls with one token through both routers once', { timeout: STEP_TIMEOUT_MS }, async () => {
    const outcomes = await Promise.all(
      [first, second, first, second].map(({ client }) =>
        client.send(new TransactWriteItemsCommand(increment('token-c', 'c'))).then(
          () => 'applied',
          (error: Error) => error.name,
        ),
      ),
    );
    // Each call meets the claim first: taken by a call in flight, or done (its items are never reached before).
    expect(outcomes.every((outcome) => outcome === 'applied' || outcome === 'TransactionInProgressException')).toBe(true);
    expect(outcomes).toContain('applied');
    await second.client.send(new TransactWriteItemsCommand(increment('token-c', 'c')));
    expect(await counts(second.client, 'c')).toEqual(['1', '1']);
  });

  it('is still known to a restarted router', { timeout: STEP_TIMEOUT_MS }, async () => {
    await stopRouter(first);
    first = await startTestRouter();
    await first.client.send(new TransactWriteItemsCommand(increment('token-a', 'a')));
    await expectDynamoError(first.client.send(new TransactWriteItemsCommand(increment('token-a', 'a', 2))), 'IdempotentParameterMismatchException');
    expect(await counts(first.client, 'a')).toEqual(['1', '1']);
  });

  it('is still known after every node restarted', { timeout: STEP_TIMEOUT_MS }, async () => {
    await Promise.all(nodes.nodeIds().map((id) => nodes.signal(id, 'SIGKILL')));
    await Promise.all(nodes.nodeIds().map((id) => nodes.startNode(id)));
    await nodes.waitReady();
    await eventually('the counters readable again', async () => (await counts(second.client, 'a').catch(() => undefined)) !== undefined, 120_000, 250);
    await second.client.send(new TransactWriteItemsCommand(increment('token-a', 'a')));
    await expectDynamoError(second.client.send(new TransactWriteItemsCommand(increment('token-a', 'a', 2))), 'IdempotentParameterMismatchException');
    expect(await counts(second.client, 'a')).toEqual(['1', '1']);
  });

  it('forgets a token 10 minutes on: its claim swept by the TTL sweep, the token free for a new request', { timeout: STEP_TIMEOUT_MS }, async () => {
    expect(await claimOf(second, 'token-a')).toBeDefined();
    clockShift += TEN_MINUTES_MS + 1_000;
    // The claims of token-a, token-b, token-c and token-d.
    expect(await second.router.router.sweepTtl()).toBe(4);
    expect(await claimOf(second, 'token-a')).toBeUndefined();
    await first.client.send(new TransactWriteItemsCommand(increment('token-a', 'a', 2)));
    expect(await counts(first.client, 'a')).toEqual(['3', '2']);
    expect(await claimOf(first, 'token-a')).toBeDefined();
  });
});
