import {
  GetItemCommand,
  PutItemCommand,
  TransactGetItemsCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type AttributeValue,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, range, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, filler, keyedBy } from './helpers/item-assertions.ts';
import { shoalPerFile, withShoal } from './helpers/shoal.ts';

const shoal = shoalPerFile();

beforeAll(async () => {
  for (const TableName of ['accounts', 'ledger']) {
    await createTable(shoal.client, {
      TableName,
      ...keyedBy(['id', 'S']),
    });
  }
  await createTable(shoal.client, {
    TableName: 'journal',
    ...keyedBy(['id', 'S'], ['seq', 'N']),
  });
});

const key = (id: string) => ({ id: s(id) });
async function read(id: string, table = 'accounts'): Promise<Record<string, AttributeValue> | undefined> {
  return (await shoal.client.send(new GetItemCommand({ TableName: table, Key: key(id), ConsistentRead: true }))).Item;
}
async function readJournal(id: string, seq: number): Promise<Record<string, AttributeValue> | undefined> {
  return (await shoal.client.send(new GetItemCommand({ TableName: 'journal', Key: { id: s(id), seq: n(seq) }, ConsistentRead: true }))).Item;
}
async function seed(id: string, balance: number): Promise<void> {
  await shoal.client.send(new PutItemCommand({ TableName: 'accounts', Item: { id: s(id), balance: n(balance), owner: s(`owner ${id}`) } }));
}

/** Moves `amount` from one account to another if the source has enough, checking a third exists. */
function transfer(from: string, to: string, amount: number, witness: string): TransactWriteItem[] {
  return [
    {
      Update: {
        TableName: 'accounts',
        Key: key(from),
        UpdateExpression: 'SET balance = balance - :amount',
        ConditionExpression: 'balance >= :amount',
        ExpressionAttributeValues: { ':amount': n(amount) },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    },
    {
      Update: {
        TableName: 'accounts',
        Key: key(to),
        UpdateExpression: 'ADD balance :amount',
        ExpressionAttributeValues: { ':amount': n(amount) },
      },
    },
    { ConditionCheck: { TableName: 'accounts', Key: key(witness), ConditionExpression: 'attribute_exists(id)' } },
  ];
}

describe('TransactWriteItems', () => {
  it('applies Put, Update, Delete and ConditionCheck together', async () => {
    await seed('a1', 100);
    await seed('a2', 0);
    await seed('gone', 1);
    await shoal.client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          ...transfer('a1', 'a2', 30, 'gone'),
          { Put: { TableName: 'accounts', Item: { id: s('new'), balance: n(5) }, ConditionExpression: 'attribute_not_exists(id)' } },
        ],
      }),
    );
    expect((await read('a1'))?.balance).toEqual(n(70));
    expect((await read('a2'))?.balance).toEqual(n(30));
    expect(await read('new')).toEqual({ id: s('new'), balance: n(5) });
    await shoal.client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Delete: { TableName: 'accounts', Key: key('gone'), ConditionExpression: 'balance = :one', ExpressionAttributeValues: { ':one': n(1) } } },
          { ConditionCheck: { TableName: 'accounts', Key: key('new'), ConditionExpression: 'balance = :five', ExpressionAttributeValues: { ':five': n(5) } } },
        ],
      }),
    );
    expect(await read('gone')).toBeUndefined();
  });

  it('cancels everything when a condition fails, with a reason per action', async () => {
    await seed('b1', 10);
    await seed('b2', 0);
    const error = await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: transfer('b1', 'b2', 50, 'a1') })),
      'TransactionCanceledException',
      'Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None, None]',
    );
    expect(error.CancellationReasons).toEqual([
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed', Item: { id: s('b1'), balance: n(10), owner: s('owner b1') } },
      { Code: 'None' },
      { Code: 'None' },
    ]);
    expect((await read('b1'))?.balance).toEqual(n(10));
    expect((await read('b2'))?.balance).toEqual(n(0));

    const missingWitness = await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: transfer('b1', 'b2', 5, 'nobody') })),
      'TransactionCanceledException',
      'Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, ConditionalCheckFailed]',
    );
    expect(missingWitness.CancellationReasons?.[2]).toEqual({ Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' });
    expect((await read('b2'))?.balance).toEqual(n(0));
  });

  it('keeps the total of concurrent transfers, cancelling those that would overdraw', async () => {
    const accounts = ['k1', 'k2', 'k3', 'k4'];
    for (const id of accounts) await seed(id, 10);
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        shoal.client
          .send(new TransactWriteItemsCommand({ TransactItems: transfer(accounts[i % 4], accounts[(i + 1) % 4], 3 + (i % 5), accounts[(i + 2) % 4]) }))
          .then(
            () => 'applied',
            (error: Error) => error.name,
          ),
      ),
    );
    expect(outcomes.every((outcome) => outcome === 'applied' || outcome === 'TransactionCanceledException')).toBe(true);
    const balances = await Promise.all(accounts.map(async (id) => Number(((await read(id))?.balance as { N: string }).N)));
    expect(balances.reduce((sum, balance) => sum + balance, 0)).toBe(40);
    expect(balances.every((balance) => balance >= 0)).toBe(true);
  });

  it('cancels with ValidationError when an update cannot apply', async () => {
    await seed('c1', 1);
    const error = await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: 'accounts', Item: { id: s('c2'), balance: n(1) } } },
            { Update: { TableName: 'accounts', Key: key('c1'), UpdateExpression: 'ADD #o :one', ExpressionAttributeNames: { '#o': 'owner' }, ExpressionAttributeValues: { ':one': n(1) } } },
          ],
        }),
      ),
      'TransactionCanceledException',
      'Transaction cancelled, please refer cancellation reasons for specific reasons [None, ValidationError]',
    );
    expect(error.CancellationReasons?.[1]?.Code).toBe('ValidationError');
    expect(error.CancellationReasons?.[1]?.Message).toMatch(/incorrect data type/);
    expect(await read('c2')).toBeUndefined();
  });

  it('rejects two actions on one item, more than 100 actions, and more than 4 MB', async () => {
    await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: 'accounts', Item: { id: s('d1') } } },
            { ConditionCheck: { TableName: 'accounts', Key: key('d1'), ConditionExpression: 'attribute_exists(id)' } },
          ],
        }),
      ),
      'ValidationException',
      'Transaction request cannot include multiple operations on one item',
    );
    await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: range(1, 101).map((i) => ({ Put: { TableName: 'accounts', Item: { id: s(`many-${i}`) } } })),
        }),
      ),
      'ValidationException',
      /^1 validation error detected: Value '.*' at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100$/,
    );
    const big = filler(390 * 1024);
    await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: range(1, 11).map((i) => ({ Put: { TableName: 'accounts', Item: { id: s(`big-${i}`), data: s(big) } } })),
        }),
      ),
      'ValidationException',
      'Transaction request size exceeds the maximum allowed size of 4 MB',
    );
    expect(await read('many-1')).toBeUndefined();
    expect(await read('big-1')).toBeUndefined();
  });

  it('rejects an action with no operation or with two', async () => {
    await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: [{}] })),
      'ValidationException',
      'TransactItems can only contain one of Check, Put, Update or Delete',
    );
    await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [{ Put: { TableName: 'accounts', Item: { id: s('e1') } }, Delete: { TableName: 'accounts', Key: key('e2') } }],
        }),
      ),
      'ValidationException',
      'TransactItems can only contain one of Check, Put, Update or Delete',
    );
  });

  it('applies a request once per ClientRequestToken', async () => {
    await seed('f1', 0);
    const request = {
      ClientRequestToken: 'token-f1',
      TransactItems: [{ Update: { TableName: 'accounts', Key: key('f1'), UpdateExpression: 'ADD balance :one', ExpressionAttributeValues: { ':one': n(1) } } }],
    };
    await shoal.client.send(new TransactWriteItemsCommand(request));
    await shoal.client.send(new TransactWriteItemsCommand(request));
    expect((await read('f1'))?.balance).toEqual(n(1));
    await expectDynamoError(
      shoal.client.send(
        new TransactWriteItemsCommand({
          ...request,
          TransactItems: [{ Update: { TableName: 'accounts', Key: key('f1'), UpdateExpression: 'ADD balance :two', ExpressionAttributeValues: { ':two': n(2) } } }],
        }),
      ),
      'IdempotentParameterMismatchException',
    );
    expect((await read('f1'))?.balance).toEqual(n(1));
  });

  it('applies concurrent requests with one token once', async () => {
    await seed('f2', 0);
    const request = {
      ClientRequestToken: 'token-f2',
      TransactItems: [{ Update: { TableName: 'accounts', Key: key('f2'), UpdateExpression: 'ADD balance :one', ExpressionAttributeValues: { ':one': n(1) } } }],
    };
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () =>
        shoal.client.send(new TransactWriteItemsCommand(request)).then(
          () => 'applied',
          (error: Error) => error.name,
        ),
      ),
    );
    expect(outcomes.every((outcome) => outcome === 'applied' || outcome === 'TransactionInProgressException')).toBe(true);
    expect(outcomes).toContain('applied');
    expect((await read('f2'))?.balance).toEqual(n(1));
  });

  it('forgets a token after 10 minutes', async () => {
    let clock = 1_000_000;
    await withShoal({ now: () => clock }, async (timed) => {
      await createTable(timed.client, {
        TableName: 'counters',
        ...keyedBy(['id', 'S']),
      });
      const request = {
        ClientRequestToken: 'token-clock',
        TransactItems: [{ Update: { TableName: 'counters', Key: key('c'), UpdateExpression: 'ADD hits :one', ExpressionAttributeValues: { ':one': n(1) } } }],
      };
      await timed.client.send(new TransactWriteItemsCommand(request));
      clock += 9 * 60 * 1000;
      await timed.client.send(new TransactWriteItemsCommand(request));
      clock += 2 * 60 * 1000;
      await timed.client.send(new TransactWriteItemsCommand(request));
      const item = await timed.client.send(new GetItemCommand({ TableName: 'counters', Key: key('c'), ConsistentRead: true }));
      expect(item.Item?.hits).toEqual(n(2));
    });
  });

  it('applies a transaction across tables all or none, with reasons in request order', async () => {
    await seed('x1', 10);
    await shoal.client.send(new PutItemCommand({ TableName: 'ledger', Item: { id: s('x1'), state: s('open') } }));
    const closeAccount = (expectedState: string): TransactWriteItem[] => [
      { Update: { TableName: 'accounts', Key: key('x1'), UpdateExpression: 'SET balance = :zero', ExpressionAttributeValues: { ':zero': n(0) } } },
      {
        ConditionCheck: {
          TableName: 'ledger',
          Key: key('x1'),
          ConditionExpression: '#state = :expected',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':expected': s(expectedState) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
      { Put: { TableName: 'journal', Item: { id: s('x1'), seq: n(1), note: s('closed') } } },
      // The same key in another table is another item.
      { Put: { TableName: 'ledger', Item: { id: s('x2'), state: s('closed') } } },
      { Delete: { TableName: 'journal', Key: { id: s('x1'), seq: n(0) }, ConditionExpression: 'attribute_exists(id)' } },
    ];

    const error = await expectDynamoError(
      shoal.client.send(new TransactWriteItemsCommand({ TransactItems: closeAccount('frozen') })),
      'TransactionCanceledException',
      'Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed, None, None, ConditionalCheckFailed]',
    );
    expect(error.CancellationReasons).toEqual([
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed', Item: { id: s('x1'), state: s('open') } },
      { Code: 'None' },
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' },
    ]);
    expect((await read('x1'))?.balance).toEqual(n(10));
    expect(await readJournal('x1', 1)).toBeUndefined();
    expect(await read('x2', 'ledger')).toBeUndefined();

    await shoal.client.send(new PutItemCommand({ TableName: 'journal', Item: { id: s('x1'), seq: n(0), note: s('opened') } }));
    const closed = await shoal.client.send(new TransactWriteItemsCommand({ TransactItems: closeAccount('open'), ReturnConsumedCapacity: 'TOTAL' }));
    // Per table, two write units per item written or checked (transactional writes cost double).
    expect(closed.ConsumedCapacity?.map(({ TableName, CapacityUnits }) => ({ TableName, CapacityUnits }))).toEqual([
      { TableName: 'accounts', CapacityUnits: 2 },
      { TableName: 'ledger', CapacityUnits: 4 },
      { TableName: 'journal', CapacityUnits: 4 },
    ]);
    expect((await read('x1'))?.balance).toEqual(n(0));
    expect(await readJournal('x1', 1)).toEqual({ id: s('x1'), seq: n(1), note: s('closed') });
    expect(await readJournal('x1', 0)).toBeUndefined();
    expect(await read('x2', 'ledger')).toEqual({ id: s('x2'), state: s('closed') });
    expect(await read('x2')).toBeUndefined();
  });

  it('keeps a total split over two tables under concurrent transfers', async () => {
    await seed('y1', 100);
    await shoal.client.send(new PutItemCommand({ TableName: 'ledger', Item: { id: s('y1'), balance: n(0) } }));
    const move = (from: string, to: string, amount: number) =>
      shoal.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Update: {
                TableName: from,
                Key: key('y1'),
                UpdateExpression: 'SET balance = balance - :amount',
                ConditionExpression: 'balance >= :amount',
                ExpressionAttributeValues: { ':amount': n(amount) },
              },
            },
            { Update: { TableName: to, Key: key('y1'), UpdateExpression: 'ADD balance :amount', ExpressionAttributeValues: { ':amount': n(amount) } } },
          ],
        }),
      );
    const totals: number[] = [];
    // A read meeting a transfer in progress (across partitions, in a cluster) is cancelled with
    // TransactionConflict, as on DynamoDB: read again, a bounded number of times.
    const readOnce = () =>
      shoal.client.send(
        new TransactGetItemsCommand({
          TransactItems: [
            { Get: { TableName: 'accounts', Key: key('y1'), ProjectionExpression: 'balance' } },
            { Get: { TableName: 'ledger', Key: key('y1'), ProjectionExpression: 'balance' } },
          ],
        }),
      );
    const readBoth = async () => {
      let got: Awaited<ReturnType<typeof readOnce>> | undefined;
      for (let attempt = 1; got === undefined; attempt++) {
        got = await readOnce().catch((error: Error) => {
          const conflict = error instanceof TransactionCanceledException && error.CancellationReasons?.some((reason) => reason.Code === 'TransactionConflict');
          if (!conflict || attempt === 60) throw error;
          return undefined;
        });
        // Backs off as a DynamoDB client would before reading again.
        if (got === undefined) await new Promise((done) => setTimeout(done, Math.min(25 * attempt, 250)));
      }
      totals.push((got.Responses ?? []).reduce((sum, response) => sum + Number((response.Item?.balance as { N: string }).N), 0));
    };
    const work: Promise<unknown>[] = [];
    let applied = 0;
    for (let i = 0; i < 40; i++) {
      const transfer = i % 2 === 0 ? move('accounts', 'ledger', 7) : move('ledger', 'accounts', 3);
      work.push(
        transfer.then(
          () => applied++,
          (error: Error) => {
            if (error.name !== 'TransactionCanceledException') throw error;
          },
        ),
      );
      work.push(readBoth());
    }
    await Promise.all(work);
    expect(applied).toBeGreaterThan(0);
    expect(totals).toHaveLength(40);
    expect(new Set(totals)).toEqual(new Set([100]));
  });
});

describe('TransactGetItems', () => {
  it('reads several items, projected, with an empty response for an absent one', async () => {
    await seed('h1', 1);
    await seed('h2', 2);
    await shoal.client.send(new PutItemCommand({ TableName: 'ledger', Item: { id: s('h1'), entry: s('opening') } }));
    const got = await shoal.client.send(
      new TransactGetItemsCommand({
        TransactItems: [
          { Get: { TableName: 'accounts', Key: key('h1') } },
          { Get: { TableName: 'accounts', Key: key('h2'), ProjectionExpression: '#b', ExpressionAttributeNames: { '#b': 'balance' } } },
          { Get: { TableName: 'accounts', Key: key('absent') } },
          { Get: { TableName: 'ledger', Key: key('h1') } },
        ],
      }),
    );
    expect(got.Responses).toEqual([
      { Item: { id: s('h1'), balance: n(1), owner: s('owner h1') } },
      { Item: { balance: n(2) } },
      {},
      { Item: { id: s('h1'), entry: s('opening') } },
    ]);
  });

  it('rejects two reads of one item and missing tables', async () => {
    await expectDynamoError(
      shoal.client.send(
        new TransactGetItemsCommand({ TransactItems: [{ Get: { TableName: 'accounts', Key: key('h1') } }, { Get: { TableName: 'accounts', Key: key('h1') } }] }),
      ),
      'ValidationException',
      'Transaction request cannot include multiple operations on one item',
    );
    await expectDynamoError(
      shoal.client.send(new TransactGetItemsCommand({ TransactItems: [{ Get: { TableName: 'nowhere', Key: key('h1') } }] })),
      'ResourceNotFoundException',
    );
  });
});
