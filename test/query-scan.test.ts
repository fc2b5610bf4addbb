import {
  BatchWriteItemCommand,
  DescribeTableCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateTableCommand,
  type AttributeValue,
  type QueryCommandInput,
  type ScanCommandInput,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { n, range, s } from './helpers/attribute-values.ts';
import { createTable, expectDynamoError, filler, keyedBy, keySchema } from './helpers/item-assertions.ts';
import { eventuallyConsistent } from './helpers/eventually.ts';
import { shoalPerFile } from './helpers/shoal.ts';

const shoal = shoalPerFile();

const POSTS = 30;
/** Post `seq` of forum f1: authors alternate, scores fall as seq rises, dates run through January. */
function post(seq: number): Record<string, AttributeValue> {
  return {
    forum: s('f1'),
    seq: n(seq),
    score: n(100 - seq),
    author: s(seq % 2 === 0 ? 'ann' : 'bob'),
    posted: s(`2026-01-${String(seq).padStart(2, '0')}`),
    title: s(`title ${seq}`),
    body: s(`body ${seq}`),
  };
}

async function writeAll(table: string, items: Record<string, AttributeValue>[]): Promise<void> {
  for (let start = 0; start < items.length; start += 25) {
    const chunk = items.slice(start, start + 25).map((Item) => ({ PutRequest: { Item } }));
    await shoal.client.send(new BatchWriteItemCommand({ RequestItems: { [table]: chunk } }));
  }
}

type Key = Record<string, AttributeValue>;

/** Every page of a Query or Scan, following LastEvaluatedKey; bounded so a broken cursor cannot loop forever. */
async function allPages(
  operation: string,
  readPage: (startKey: Key | undefined) => Promise<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Key }>,
): Promise<{ items: Record<string, AttributeValue>[]; pages: number }> {
  const items: Record<string, AttributeValue>[] = [];
  let startKey: Key | undefined;
  for (let pages = 1; pages <= 200; pages++) {
    const page = await readPage(startKey);
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
    if (!startKey) return { items, pages };
  }
  throw new Error(`${operation} did not finish in 200 pages`);
}

const queryAll = (input: QueryCommandInput) =>
  allPages('query', (startKey) => shoal.client.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey })));
const scanAll = (input: ScanCommandInput) =>
  allPages('scan', (startKey) => shoal.client.send(new ScanCommand({ ...input, ExclusiveStartKey: startKey })));

const seqs = (items: Record<string, AttributeValue>[]) => items.map((item) => Number((item.seq as { N: string }).N));

beforeAll(async () => {
  await createTable(shoal.client, {
    TableName: 'posts',
    ...keyedBy(['forum', 'S'], ['seq', 'N'], ['score', 'N'], ['author', 'S'], ['posted', 'S']),
    LocalSecondaryIndexes: [
      {
        IndexName: 'by-score',
        KeySchema: keySchema('forum', 'score'),
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['title'] },
      },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: 'by-author',
        KeySchema: keySchema('author', 'posted'),
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
      {
        IndexName: 'author-all',
        KeySchema: keySchema('author'),
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  });
  await createTable(shoal.client, {
    TableName: 'bulk',
    ...keyedBy(['pk', 'S'], ['sk', 'N']),
  });
  await createTable(shoal.client, {
    TableName: 'spread',
    ...keyedBy(['id', 'S']),
  });
  await writeAll('posts', range(1, POSTS).map(post));
  await writeAll('posts', [{ forum: s('f2'), seq: n(1), score: n(1), author: s('cy'), posted: s('2025-12-31') }]);
  // 30 items of about 100 KB under one partition key: three to four 1 MB pages.
  await writeAll('bulk', range(1, 30).map((sk) => ({ pk: s('big'), sk: n(sk), data: s(filler(100 * 1024)) })));
  await writeAll('spread', range(1, 200).map((i) => ({ id: s(`item-${i}`), i: n(i) })));
});

describe('Query on the table', () => {
  const byForum = { TableName: 'posts', KeyConditionExpression: 'forum = :f', ExpressionAttributeValues: { ':f': s('f1') } };

  it('returns the partition in sort key order, forward and backward', async () => {
    const forward = await shoal.client.send(new QueryCommand(byForum));
    expect(seqs(forward.Items ?? [])).toEqual(range(1, POSTS));
    expect(forward.Count).toBe(POSTS);
    expect(forward.ScannedCount).toBe(POSTS);
    expect(forward.LastEvaluatedKey).toBeUndefined();
    expect(forward.Items?.[0]).toEqual(post(1));
    const backward = await shoal.client.send(new QueryCommand({ ...byForum, ScanIndexForward: false }));
    expect(seqs(backward.Items ?? [])).toEqual(range(1, POSTS).reverse());
  });

  it('applies every sort key condition', async () => {
    const cases: [string, Record<string, AttributeValue>, number[]][] = [
      ['seq = :a', { ':a': n(7) }, [7]],
      ['seq < :a', { ':a': n(4) }, [1, 2, 3]],
      ['seq <= :a', { ':a': n(3) }, [1, 2, 3]],
      ['seq > :a', { ':a': n(27) }, [28, 29, 30]],
      ['seq >= :a', { ':a': n(28) }, [28, 29, 30]],
      ['seq BETWEEN :a AND :b', { ':a': n(5), ':b': n(8) }, [5, 6, 7, 8]],
    ];
    for (const [condition, values, expected] of cases) {
      const result = await shoal.client.send(
        new QueryCommand({
          TableName: 'posts',
          KeyConditionExpression: `forum = :f AND ${condition}`,
          ExpressionAttributeValues: { ':f': s('f1'), ...values },
        }),
      );
      expect(seqs(result.Items ?? []), condition).toEqual(expected);
      // Each page's LastEvaluatedKey satisfies the condition it continues.
      const paged = await queryAll({
        TableName: 'posts',
        KeyConditionExpression: `forum = :f AND ${condition}`,
        ExpressionAttributeValues: { ':f': s('f1'), ...values },
        Limit: 2,
      });
      expect(seqs(paged.items), condition).toEqual(expected);
    }
  });

  it('pages with Limit to the last page', async () => {
    const { items, pages } = await queryAll({ ...byForum, Limit: 7 });
    expect(seqs(items)).toEqual(range(1, POSTS));
    expect(pages).toBeGreaterThanOrEqual(5);
    const first = await shoal.client.send(new QueryCommand({ ...byForum, Limit: 7 }));
    expect(first.Count).toBe(7);
    expect(first.LastEvaluatedKey).toEqual({ forum: s('f1'), seq: n(7) });
    const backward = await queryAll({ ...byForum, Limit: 4, ScanIndexForward: false });
    expect(seqs(backward.items)).toEqual(range(1, POSTS).reverse());
  });

  it('filters after reading: Count counts matches, ScannedCount what was read', async () => {
    const result = await shoal.client.send(
      new QueryCommand({
        ...byForum,
        FilterExpression: 'author = :a',
        ExpressionAttributeValues: { ':f': s('f1'), ':a': s('ann') },
      }),
    );
    expect(result.Count).toBe(15);
    expect(result.ScannedCount).toBe(POSTS);
    expect(seqs(result.Items ?? []).every((seq) => seq % 2 === 0)).toBe(true);
    // Limit counts items read before the filter.
    const limited = await shoal.client.send(
      new QueryCommand({
        ...byForum,
        Limit: 5,
        FilterExpression: 'author = :a',
        ExpressionAttributeValues: { ':f': s('f1'), ':a': s('ann') },
      }),
    );
    expect(limited.ScannedCount).toBe(5);
    expect(seqs(limited.Items ?? [])).toEqual([2, 4]);
  });

  it('projects and counts', async () => {
    const projected = await shoal.client.send(
      new QueryCommand({ ...byForum, ProjectionExpression: 'seq, #t', ExpressionAttributeNames: { '#t': 'title' }, Limit: 2 }),
    );
    expect(projected.Items).toEqual([
      { seq: n(1), title: s('title 1') },
      { seq: n(2), title: s('title 2') },
    ]);
    const counted = await shoal.client.send(new QueryCommand({ ...byForum, Select: 'COUNT' }));
    expect(counted.Items).toBeUndefined();
    expect(counted.Count).toBe(POSTS);
  });

  it('resumes from an ExclusiveStartKey', async () => {
    const result = await shoal.client.send(
      new QueryCommand({ ...byForum, ExclusiveStartKey: { forum: s('f1'), seq: n(27) } }),
    );
    expect(seqs(result.Items ?? [])).toEqual([28, 29, 30]);
  });

  it('rejects malformed queries with DynamoDB messages', async () => {
    const send = (input: Partial<QueryCommandInput>) => shoal.client.send(new QueryCommand({ TableName: 'posts', ...input }));
    await expectDynamoError(
      send({}),
      'ValidationException',
      'Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.',
    );
    await expectDynamoError(
      send({ KeyConditionExpression: 'seq = :s', ExpressionAttributeValues: { ':s': n(1) } }),
      'ValidationException',
      'Query condition missed key schema element: forum',
    );
    await expectDynamoError(
      send({ KeyConditionExpression: 'forum = :f', ExpressionAttributeValues: { ':f': n(1) } }),
      'ValidationException',
      'One or more parameter values were invalid: Condition parameter type does not match schema type',
    );
    await expectDynamoError(
      send({ ...byForum, FilterExpression: 'seq > :f' }),
      'ValidationException',
      'Filter Expression can only contain non-primary key attributes: Primary key attribute: seq',
    );
    await expectDynamoError(
      send({ ...byForum, IndexName: 'nope' }),
      'ValidationException',
      'The table does not have the specified index: nope',
    );
    await expectDynamoError(
      send({ ...byForum, Select: 'ALL_PROJECTED_ATTRIBUTES' }),
      'ValidationException',
      'ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName',
    );
    await expectDynamoError(
      send({ ...byForum, Select: 'COUNT', ProjectionExpression: 'title' }),
      'ValidationException',
      'Cannot specify the ProjectionExpression when choosing to get only the Count',
    );
    await expectDynamoError(
      send({ ...byForum, Select: 'ALL_ATTRIBUTES', ProjectionExpression: 'title' }),
      'ValidationException',
      'Cannot specify the ProjectionExpression when choosing to get ALL_ATTRIBUTES',
    );
    await expectDynamoError(
      send({ ...byForum, Select: 'SPECIFIC_ATTRIBUTES' }),
      'ValidationException',
      'Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES',
    );
    await expectDynamoError(
      send({ ...byForum, ExclusiveStartKey: { forum: s('f2'), seq: n(1) } }),
      'ValidationException',
      'The provided starting key is outside query boundaries based on provided conditions',
    );
    await expectDynamoError(
      send({
        TableName: 'posts',
        KeyConditionExpression: 'forum = :f AND seq > :low',
        ExpressionAttributeValues: { ':f': s('f1'), ':low': n(10) },
        ExclusiveStartKey: { forum: s('f1'), seq: n(3) },
      }),
      'ValidationException',
      'The provided starting key does not match the range key predicate',
    );
    await expectDynamoError(
      send({ ...byForum, ExclusiveStartKey: { forum: s('f1') } }),
      'ValidationException',
      'The provided starting key is invalid: The provided key element does not match the schema',
    );
    await expectDynamoError(
      send({ ...byForum, Limit: 0 }),
      'ValidationException',
      "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
    );
    await expectDynamoError(
      shoal.client.send(new QueryCommand({ ...byForum, TableName: 'missing-table' })),
      'ResourceNotFoundException',
    );
  });
});

describe('Query on secondary indexes', () => {
  it('queries an LSI in its sort order, with its projection or all attributes', async () => {
    const projected = await shoal.client.send(
      new QueryCommand({
        TableName: 'posts',
        IndexName: 'by-score',
        KeyConditionExpression: 'forum = :f AND score > :min',
        ExpressionAttributeValues: { ':f': s('f1'), ':min': n(96) },
      }),
    );
    // score = 100 - seq, ascending score means descending seq.
    expect(projected.Items).toEqual([
      { forum: s('f1'), seq: n(3), score: n(97), title: s('title 3') },
      { forum: s('f1'), seq: n(2), score: n(98), title: s('title 2') },
      { forum: s('f1'), seq: n(1), score: n(99), title: s('title 1') },
    ]);
    const all = await shoal.client.send(
      new QueryCommand({
        TableName: 'posts',
        IndexName: 'by-score',
        KeyConditionExpression: 'forum = :f AND score > :min',
        ExpressionAttributeValues: { ':f': s('f1'), ':min': n(98) },
        Select: 'ALL_ATTRIBUTES',
        ConsistentRead: true,
      }),
    );
    expect(all.Items).toEqual([post(1)]);
  });

  it('fetches attributes an LSI does not project from the table', async () => {
    const result = await shoal.client.send(
      new QueryCommand({
        TableName: 'posts',
        IndexName: 'by-score',
        KeyConditionExpression: 'forum = :f AND score = :score',
        ExpressionAttributeValues: { ':f': s('f1'), ':score': n(90) },
        ProjectionExpression: 'title, #b',
        ExpressionAttributeNames: { '#b': 'body' },
      }),
    );
    expect(result.Items).toEqual([{ title: s('title 10'), body: s('body 10') }]);
  });

  it('pages through an LSI with index-shaped LastEvaluatedKeys', async () => {
    const first = await shoal.client.send(
      new QueryCommand({
        TableName: 'posts',
        IndexName: 'by-score',
        KeyConditionExpression: 'forum = :f',
        ExpressionAttributeValues: { ':f': s('f1') },
        Limit: 4,
      }),
    );
    expect(first.LastEvaluatedKey).toEqual({ forum: s('f1'), seq: n(27), score: n(73) });
    const { items } = await queryAll({
      TableName: 'posts',
      IndexName: 'by-score',
      KeyConditionExpression: 'forum = :f',
      ExpressionAttributeValues: { ':f': s('f1') },
      Limit: 4,
    });
    expect(seqs(items)).toEqual(range(1, POSTS).reverse());
  });

  it('queries a GSI by its own keys', async () => {
    await eventuallyConsistent(
      () =>
        shoal.client.send(
          new QueryCommand({
            TableName: 'posts',
            IndexName: 'by-author',
            KeyConditionExpression: 'author = :a AND begins_with(posted, :month)',
            ExpressionAttributeValues: { ':a': s('ann'), ':month': s('2026-01-1') },
          }),
        ),
      (result) =>
        expect(result.Items).toEqual(
          [10, 12, 14, 16, 18].map((seq) => ({ forum: s('f1'), seq: n(seq), author: s('ann'), posted: s(`2026-01-${seq}`) })),
        ),
    );
    const { items } = await eventuallyConsistent(
      () =>
        queryAll({
          TableName: 'posts',
          IndexName: 'author-all',
          KeyConditionExpression: 'author = :a',
          ExpressionAttributeValues: { ':a': s('bob') },
          Limit: 4,
        }),
      (result) => expect(seqs(result.items).sort((a, b) => a - b)).toEqual(range(1, POSTS).filter((seq) => seq % 2 === 1)),
    );
    expect(items[0]).toHaveProperty('body');
  });

  it('rejects consistent reads and ALL_ATTRIBUTES on a GSI that does not project them', async () => {
    const byAuthor = {
      TableName: 'posts',
      IndexName: 'by-author',
      KeyConditionExpression: 'author = :a',
      ExpressionAttributeValues: { ':a': s('ann') },
    };
    await expectDynamoError(
      shoal.client.send(new QueryCommand({ ...byAuthor, ConsistentRead: true })),
      'ValidationException',
      'Consistent reads are not supported on global secondary indexes',
    );
    await expectDynamoError(
      shoal.client.send(new QueryCommand({ ...byAuthor, Select: 'ALL_ATTRIBUTES' })),
      'ValidationException',
      'One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index by-author because its projection type is not ALL',
    );
    await expectDynamoError(
      shoal.client.send(new QueryCommand({ ...byAuthor, FilterExpression: 'posted > :a' })),
      'ValidationException',
      'Filter Expression can only contain non-primary key attributes: Primary key attribute: posted',
    );
    await expectDynamoError(
      shoal.client.send(new QueryCommand({ ...byAuthor, ExclusiveStartKey: { forum: s('f1'), seq: n(2) } })),
      'ValidationException',
      'The provided starting key is invalid',
    );
  });
});

describe('the 1 MB page', () => {
  it('ends a Query page after 1 MB and pages through the rest', async () => {
    const first = await shoal.client.send(
      new QueryCommand({ TableName: 'bulk', KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': s('big') } }),
    );
    const firstCount = first.Count ?? 0;
    expect(firstCount).toBeGreaterThanOrEqual(9);
    expect(firstCount).toBeLessThanOrEqual(11);
    expect(first.LastEvaluatedKey).toEqual({ pk: s('big'), sk: n(firstCount) });
    const { items, pages } = await queryAll({
      TableName: 'bulk',
      KeyConditionExpression: 'pk = :p',
      ExpressionAttributeValues: { ':p': s('big') },
    });
    expect(seqs(items.map((item) => ({ seq: item.sk })))).toEqual(range(1, 30));
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it('ends a Scan page after 1 MB and pages through the rest', async () => {
    const first = await shoal.client.send(new ScanCommand({ TableName: 'bulk' }));
    expect(first.Count).toBeLessThan(30);
    expect(first.LastEvaluatedKey).toBeDefined();
    const { items } = await scanAll({ TableName: 'bulk', ProjectionExpression: 'sk' });
    expect(items.map((item) => Number((item.sk as { N: string }).N))).toEqual(range(1, 30));
  });
});

describe('Scan', () => {
  const ids = (items: Record<string, AttributeValue>[]) => items.map((item) => (item.id as { S: string }).S).sort();
  const allIds = range(1, 200).map((i) => `item-${i}`).sort();

  it('returns every item once, in one call or in Limit-sized pages', async () => {
    const whole = await shoal.client.send(new ScanCommand({ TableName: 'spread' }));
    expect(ids(whole.Items ?? [])).toEqual(allIds);
    expect(whole.ScannedCount).toBe(200);
    const { items, pages } = await scanAll({ TableName: 'spread', Limit: 33 });
    expect(ids(items)).toEqual(allIds);
    expect(pages).toBeGreaterThanOrEqual(7);
  });

  it('splits into parallel segments that together return every item once', async () => {
    for (const total of [1, 3, 8]) {
      const segments = await Promise.all(
        range(0, total - 1).map((segment) => scanAll({ TableName: 'spread', Segment: segment, TotalSegments: total, Limit: 20 })),
      );
      const union = segments.flatMap((result) => ids(result.items)).sort();
      expect(union, `TotalSegments ${total}`).toEqual(allIds);
    }
  });

  it('filters, projects and counts', async () => {
    const result = await shoal.client.send(
      new ScanCommand({ TableName: 'spread', FilterExpression: 'i <= :max', ExpressionAttributeValues: { ':max': n(10) }, ProjectionExpression: 'i' }),
    );
    expect(result.Count).toBe(10);
    expect(result.ScannedCount).toBe(200);
    expect(result.Items?.every((item) => Object.keys(item).join() === 'i')).toBe(true);
    const counted = await shoal.client.send(new ScanCommand({ TableName: 'spread', Select: 'COUNT' }));
    expect(counted.Count).toBe(200);
    expect(counted.Items).toBeUndefined();
  });

  it('scans a GSI, including only the items that have its key', async () => {
    const result = await eventuallyConsistent(() => scanAll({ TableName: 'posts', IndexName: 'by-author', Limit: 7 }), (answer) => expect(answer.items).toHaveLength(POSTS + 1));
    expect(result.items.every((item) => Object.keys(item).sort().join() === 'author,forum,posted,seq')).toBe(true);
  });

  it('validates Segment and TotalSegments', async () => {
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', Segment: 1 })),
      'ValidationException',
      'The TotalSegments parameter is required but was not present in the request when Segment parameter is present',
    );
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', TotalSegments: 2 })),
      'ValidationException',
      'The Segment parameter is required but was not present in the request when parameter TotalSegments is present',
    );
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', Segment: 2, TotalSegments: 2 })),
      'ValidationException',
      'The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: 2 is not less than TotalSegments: 2',
    );
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', Segment: 0, TotalSegments: 1_000_001 })),
      'ValidationException',
      "1 validation error detected: Value '1000001' at 'totalSegments' failed to satisfy constraint: Member must have value less than or equal to 1000000",
    );
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', IndexName: 'nope' })),
      'ValidationException',
      'The table does not have the specified index: nope',
    );
    await expectDynamoError(
      shoal.client.send(new ScanCommand({ TableName: 'spread', ExclusiveStartKey: { id: n(3) } })),
      'ValidationException',
      'The provided starting key is invalid: The provided key element does not match the schema',
    );
  });
});

describe('a GSI added to a table with items', () => {
  it('answers queries with the items written before and after it was created', async () => {
    await createTable(shoal.client, {
      TableName: 'late',
      ...keyedBy(['id', 'S']),
    });
    await writeAll('late', range(1, 40).map((i) => ({ id: s(`l${i}`), color: s(i % 4 === 0 ? 'green' : 'grey') })));
    await shoal.client.send(
      new UpdateTableCommand({
        TableName: 'late',
        AttributeDefinitions: [{ AttributeName: 'color', AttributeType: 'S' }],
        GlobalSecondaryIndexUpdates: [
          { Create: { IndexName: 'by-color', KeySchema: keySchema('color'), Projection: { ProjectionType: 'ALL' } } },
        ],
      }),
    );
    await shoal.client.send(new PutItemCommand({ TableName: 'late', Item: { id: s('l41'), color: s('green') } }));
    let status: string | undefined;
    for (let attempt = 0; attempt < 500 && status !== 'ACTIVE'; attempt++) {
      const described = await shoal.client.send(new DescribeTableCommand({ TableName: 'late' }));
      status = described.Table?.GlobalSecondaryIndexes?.[0]?.IndexStatus;
      if (status !== 'ACTIVE') {
        // The backfill may finish at any moment; until it has, a read of the index is refused.
        const early = await shoal.client
          .send(new QueryCommand({ TableName: 'late', IndexName: 'by-color', KeyConditionExpression: 'color = :c', ExpressionAttributeValues: { ':c': s('green') } }))
          .then(() => undefined, (error: Error) => error.message);
        if (early !== undefined) expect(early).toBe('Cannot read from backfilling global secondary index: by-color');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    expect(status).toBe('ACTIVE');
    await eventuallyConsistent(
      () =>
        queryAll({
          TableName: 'late',
          IndexName: 'by-color',
          KeyConditionExpression: 'color = :c',
          ExpressionAttributeValues: { ':c': s('green') },
        }),
      ({ items }) =>
        expect(items.map((item) => (item.id as { S: string }).S).sort()).toEqual(
          [...range(1, 10).map((i) => `l${i * 4}`), 'l41'].sort(),
        ),
    );
  });
});
