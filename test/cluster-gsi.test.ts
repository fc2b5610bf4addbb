import {
  BatchWriteItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  ScanCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  UpdateTableCommand,
  type AttributeValue,
  type TransactWriteItem,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  adminStatus,
  canonicalItem,
  eventually,
  expectedGsiEntries,
  routedClusterPerFile,
  runShoal,
  scanAll,
  reportedLeader,
  type AdminStatus,
  type GsiShape,
} from './helpers/cluster.ts';
import { eventuallyConsistent } from './helpers/eventually.ts';
import { createTable, keyedBy, keySchema } from './helpers/item-assertions.ts';

/**
 * Asynchronous GSIs on 3 `shoal node` processes with a router in this process: a table of 3
 * partitions with two GSIs (KEYS_ONLY and INCLUDE) of 3 partitions each. Writes (puts, updates moving
 * GSI keys, deletes, items without the GSI keys) go to the table; each GSI must converge to exactly
 * what a Scan of the table implies, through a SIGKILL of a base partition's leader, splits of a base
 * and a GSI partition, a GSI added over existing items (backfill); deleting the GSI and the table
 * takes their partitions out of the map. Then the backfill's lifecycle over 20,000 items: ACTIVE only
 * once the GSI holds every item (a Query right after finds them all), through a leadership transfer
 * of a base partition during the backfill, and a GSI deleted during its backfill stops it.
 */

const TABLE = 'gsi_orders';
const STEP_TIMEOUT_MS = 240_000;
/** How long a GSI may take to catch up with the table once writes stop. */
const CONVERGE_TIMEOUT_MS = 90_000;
/** DynamoDB's own answers a client retries: the write may or may not have been applied. */
const RETRYABLE = new Set(['InternalServerError', 'ServiceUnavailable', 'ThrottlingException', 'ProvisionedThroughputExceededException', 'TransactionConflictException']);

const BY_STATUS: GsiShape = { tableKeys: ['pk', 'sk'], hash: 'status', range: 'at', projection: 'KEYS_ONLY' };
const BY_OWNER: GsiShape = { tableKeys: ['pk', 'sk'], hash: 'owner', projection: { include: ['amount'] } };
const BY_AMOUNT: GsiShape = { tableKeys: ['pk', 'sk'], hash: 'amount', projection: 'KEYS_ONLY' };

/**
 * A base partition's outbox limit: a walk pauses once its outbox holds half of it. While the nodes
 * refuse shipped GSI records (fault injection) nothing leaves the outboxes, so each walk of the
 * backfill table (about 6,700 items a partition) stops after 2,000 items, in chunks of 100, until they
 * take them again: a leader moved or the index deleted then lands on walks part way, however fast
 * they go.
 */
const OUTBOX_LIMIT = 4_000;
const cluster = routedClusterPerFile(
  { partitions: 3, nodeArgs: ['--index-backfill-chunk-items', '100', '--index-outbox-limit', String(OUTBOX_LIMIT), '--enable-fault-injection'] },
  STEP_TIMEOUT_MS,
);

type AttributeMap = Record<string, AttributeValue>;
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

/** 120 keys over 40 partition key values; writer w owns the keys i with i % WRITERS === w, so each key's writes are in order. */
const KEYS = Array.from({ length: 120 }, (_, i) => ({ pk: S(`p${i % 40}`), sk: N(i) }));
const WRITERS = 4;
/** Per key index: the item as its last acknowledged write left it (null: deleted), unless a write of it failed (then unknown). */
const model = new Map<number, AttributeMap | null>();
const uncertain = new Set<number>();
const failures: string[] = [];

/** A small deterministic generator per writer and phase (mulberry32). */
function generator(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % bound);
  };
}

const STATUSES = ['open', 'shipped', 'lost'];
const OWNERS = ['ann', 'bob', 'cy', 'dee'];

/**
 * One write of key `i`: a put (sometimes without one GSI's keys or both), an update moving the
 * status (its GSI key) or the owner (setting or removing it), or a delete. Returns the item it leaves,
 * given the one before (undefined: unknown, so only a put is made).
 */
async function writeOnce(i: number, random: (bound: number) => number, before: AttributeMap | null | undefined): Promise<AttributeMap | null> {
  const key = KEYS[i];
  const choice = random(10);
  if (before === undefined || before === null || choice < 5) {
    const item: AttributeMap = { ...key, amount: N(random(50)), note: S(`n${random(1000)}`) };
    if (random(5) !== 0) {
      item.status = S(STATUSES[random(STATUSES.length)]);
      item.at = N(random(100_000));
    }
    if (random(4) !== 0) item.owner = S(OWNERS[random(OWNERS.length)]);
    await cluster.client.send(new PutItemCommand({ TableName: TABLE, Item: item }));
    return item;
  }
  if (choice < 7) {
    const status = S(STATUSES[random(STATUSES.length)]);
    const at = N(random(100_000));
    await cluster.client.send(
      new UpdateItemCommand({ TableName: TABLE, Key: key, UpdateExpression: 'SET #s = :s, #at = :at', ExpressionAttributeNames: { '#s': 'status', '#at': 'at' }, ExpressionAttributeValues: { ':s': status, ':at': at } }),
    );
    return { ...before, status, at };
  }
  if (choice < 9) {
    if (random(2) === 0) {
      await cluster.client.send(new UpdateItemCommand({ TableName: TABLE, Key: key, UpdateExpression: 'REMOVE #o', ExpressionAttributeNames: { '#o': 'owner' } }));
      const { owner: _removed, ...rest } = before;
      return rest;
    }
    const owner = S(OWNERS[random(OWNERS.length)]);
    const amount = N(random(50));
    await cluster.client.send(
      new UpdateItemCommand({ TableName: TABLE, Key: key, UpdateExpression: 'SET #o = :o, amount = :a', ExpressionAttributeNames: { '#o': 'owner' }, ExpressionAttributeValues: { ':o': owner, ':a': amount } }),
    );
    return { ...before, owner, amount };
  }
  await cluster.client.send(new DeleteItemCommand({ TableName: TABLE, Key: key }));
  return null;
}

/**
 * WRITERS loops of writes over their own keys until `stop` (or `limit` writes each: `done`);
 * acknowledged ones update the model.
 */
function workload(phase: number, limit = 100_000): { acknowledged(): number; stop(): Promise<void>; done: Promise<unknown> } {
  let running = true;
  let acknowledged = 0;
  const loops = Array.from({ length: WRITERS }, async (_, writer) => {
    const random = generator(1_000 * phase + writer + 1);
    const mine = KEYS.map((_, i) => i).filter((i) => i % WRITERS === writer);
    for (let n = 0; running && n < limit; n++) {
      const i = mine[random(mine.length)];
      const before = uncertain.has(i) ? undefined : (model.get(i) ?? null);
      try {
        const after = await writeOnce(i, random, before);
        model.set(i, after);
        // A put makes the key's state known again; anything else on an unknown state keeps it unknown.
        if (before === undefined) uncertain.delete(i);
        acknowledged++;
      } catch (error) {
        const name = (error as Error).name;
        failures.push(name);
        if (!RETRYABLE.has(name)) throw error;
        uncertain.add(i);
        await new Promise((done) => setTimeout(done, 20));
      }
    }
  });
  const done = Promise.all(loops);
  return {
    acknowledged: () => acknowledged,
    done,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The table as a consistent Scan reads it; every key whose state is known holds what its last acknowledged write left. */
async function tableAsWritten(): Promise<AttributeMap[]> {
  const items = await scanAll(cluster.client, { TableName: TABLE, ConsistentRead: true });
  const byKey = new Map(items.map((item) => [`${item.pk.S}/${item.sk.N}`, item]));
  for (const [i, expected] of model) {
    if (uncertain.has(i)) continue;
    const key = `${KEYS[i].pk.S}/${KEYS[i].sk.N}`;
    expect(byKey.get(key) === undefined ? null : canonicalItem(byKey.get(key)!), key).toEqual(expected === null ? null : canonicalItem(expected));
  }
  return items;
}

/** Waits (bounded) until a Scan of the GSI gives exactly the entries the table's items imply. */
async function converges(indexName: string, shape: GsiShape, items: readonly AttributeMap[]): Promise<void> {
  const expected = expectedGsiEntries(items, shape);
  await eventuallyConsistent(
    async () => (await scanAll(cluster.client, { TableName: TABLE, IndexName: indexName, Limit: 40 })).map(canonicalItem).sort(),
    (entries) => expect(entries, `${TABLE}/${indexName}`).toEqual(expected),
    { once: false, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 250 },
  );
}

async function bothConverge(): Promise<AttributeMap[]> {
  const items = await tableAsWritten();
  await converges('byStatus', BY_STATUS, items);
  await converges('byOwner', BY_OWNER, items);
  return items;
}

/** The partitions `shoal admin status` labels with the table, or with `table/index`. */
async function rowsOf(label: string): Promise<AdminStatus['partitions']> {
  return (await adminStatus(cluster.nodes.metaAddresses)).partitions.filter((row) => row.table === label);
}

async function split(target: string): Promise<void> {
  const answer = await runShoal(['admin', 'split', target, '--json', '--meta', cluster.nodes.metaAddresses.join(',')]);
  expect(answer.code, answer.stderr).toBe(0);
}

beforeAll(async () => {
  await createTable(cluster.client, {
    TableName: TABLE,
    ...keyedBy(['pk', 'S'], ['sk', 'N'], ['status', 'S'], ['at', 'N'], ['owner', 'S']),
    GlobalSecondaryIndexes: [
      { IndexName: 'byStatus', KeySchema: keySchema('status', 'at'), Projection: { ProjectionType: 'KEYS_ONLY' } },
      { IndexName: 'byOwner', KeySchema: keySchema('owner'), Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['amount'] } },
    ],
  });
}, STEP_TIMEOUT_MS);

describe('asynchronous GSIs on a 3-node cluster', () => {
  it('gives each GSI partitions of its own, labelled table/index', { timeout: STEP_TIMEOUT_MS }, async () => {
    const status = await adminStatus(cluster.nodes.metaAddresses);
    const count = (label: string): number => status.partitions.filter((row) => row.table === label).length;
    expect([count(TABLE), count(`${TABLE}/byStatus`), count(`${TABLE}/byOwner`)]).toEqual([3, 3, 3]);
  });

  it('keeps both GSIs equal to what the table implies through puts, updates moving GSI keys, deletes and items without the keys', { timeout: STEP_TIMEOUT_MS }, async () => {
    const load = workload(1, 60);
    await load.done;
    expect(load.acknowledged()).toBe(WRITERS * 60);
    const items = await bothConverge();
    // The workload made every kind of item: with both GSI keys, with one, with none.
    expect(items.some((item) => item.status === undefined && item.owner === undefined)).toBe(true);
    expect(items.some((item) => item.status !== undefined && item.owner === undefined)).toBe(true);
    expect(items.some((item) => item.status !== undefined && item.owner !== undefined)).toBe(true);
    expect(items.length).toBeLessThan(KEYS.length);
    // The nodes' metrics: records shipped and applied, and the outboxes emptied by their trims.
    await eventually('outboxes trimmed', async () => (await cluster.nodes.metricSum('shoal_node_index_outbox_records')) === 0, 30_000, 250);
    expect(await cluster.nodes.metricSum('shoal_node_index_records_shipped_total')).toBeGreaterThan(0);
    expect(await cluster.nodes.metricSum('shoal_node_index_entries_applied_total')).toBeGreaterThan(0);
  });

  it('shows a write in a GSI Query soon after it is acknowledged (the lag is printed, not asserted)', { timeout: STEP_TIMEOUT_MS }, async () => {
    const lags: number[] = [];
    for (let sample = 0; sample < 20; sample++) {
      const owner = S(`lag-${sample}`);
      await cluster.client.send(new PutItemCommand({ TableName: TABLE, Item: { pk: S('lag'), sk: N(sample), owner } }));
      const acknowledgedAt = performance.now();
      await eventuallyConsistent(
        () => cluster.client.send(new QueryCommand({ TableName: TABLE, IndexName: 'byOwner', KeyConditionExpression: '#o = :o', ExpressionAttributeNames: { '#o': 'owner' }, ExpressionAttributeValues: { ':o': owner } })),
        (answer) => expect(answer.Items).toEqual([{ pk: S('lag'), sk: N(sample), owner }]),
        { once: false, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 5 },
      );
      lags.push(performance.now() - acknowledgedAt);
    }
    lags.sort((a, b) => a - b);
    console.log(`GSI lag, acknowledged put to its entry in a GSI Query (20 samples, polled every 5 ms): median ${Math.round(lags[10])} ms, max ${Math.round(lags[19])} ms`);
    // Gone again, as the later phases' model knows nothing of these items.
    for (let sample = 0; sample < 20; sample++) await cluster.client.send(new DeleteItemCommand({ TableName: TABLE, Key: { pk: S('lag'), sk: N(sample) } }));
  });

  it('converges after transactions across partitions and batch writes', { timeout: STEP_TIMEOUT_MS }, async () => {
    const random = generator(77);
    const known = (): number[] => KEYS.map((_, i) => i).filter((i) => !uncertain.has(i));
    /** One operation of key i on the state the model knows: a new item, its GSI key moved, or its deletion. */
    const operationOn = (i: number): { operation: TransactWriteItem; after: AttributeMap | null } => {
      const before = model.get(i) ?? null;
      if (before === null) {
        const item: AttributeMap = { ...KEYS[i], status: S(STATUSES[random(3)]), at: N(random(100_000)), owner: S(OWNERS[random(4)]), amount: N(random(50)) };
        return { operation: { Put: { TableName: TABLE, Item: item } }, after: item };
      }
      if (random(3) === 0) return { operation: { Delete: { TableName: TABLE, Key: KEYS[i] } }, after: null };
      // Both GSI keys moved (or given to an item that had none).
      const status = S(STATUSES[random(3)]);
      const at = N(random(100_000));
      const owner = S(OWNERS[random(4)]);
      return {
        operation: {
          Update: {
            TableName: TABLE,
            Key: KEYS[i],
            UpdateExpression: 'SET #s = :s, #at = :at, #o = :o',
            ExpressionAttributeNames: { '#s': 'status', '#at': 'at', '#o': 'owner' },
            ExpressionAttributeValues: { ':s': status, ':at': at, ':o': owner },
          },
        },
        after: { ...before, status, at, owner },
      };
    };
    for (let t = 0; t < 20; t++) {
      // Three keys of three partition key values: across partitions (3 of them) most of the time.
      const candidates = known();
      const chosen = new Set<number>();
      while (chosen.size < 3) chosen.add(candidates[random(candidates.length)]);
      const operations = [...chosen].map(operationOn);
      await cluster.client.send(new TransactWriteItemsCommand({ TransactItems: operations.map(({ operation }) => operation) }));
      [...chosen].forEach((i, position) => model.set(i, operations[position].after));
    }
    // A BatchWriteItem of 25 puts and deletes over every partition.
    const batch = known().slice(0, 25);
    const requests = batch.map((i) => {
      const item: AttributeMap = { ...KEYS[i], status: S('batched'), at: N(i), owner: S(OWNERS[i % 4]), amount: N(i) };
      return { i, request: i % 5 === 0 ? { DeleteRequest: { Key: KEYS[i] } } : { PutRequest: { Item: item } }, after: i % 5 === 0 ? null : item };
    });
    let pending: WriteRequest[] = requests.map(({ request }) => request);
    for (let round = 0; pending.length > 0 && round < 20; round++) {
      const answer = await cluster.client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: pending } }));
      pending = answer.UnprocessedItems?.[TABLE] ?? [];
    }
    expect(pending).toEqual([]);
    for (const { i, after } of requests) model.set(i, after);
    const items = await bothConverge();
    expect(items.filter((item) => item.status?.S === 'batched').length).toBe(20);
  });

  it('converges after a SIGKILL of a base partition\'s leader during writes, losing no acknowledged write', { timeout: STEP_TIMEOUT_MS }, async () => {
    const leader = (await rowsOf(TABLE)).find((row) => row.leader !== undefined)?.leader;
    expect(leader).toBeDefined();
    const load = workload(2);
    try {
      await eventually('writes before the kill', () => load.acknowledged() >= 40, 60_000, 50);
      await cluster.nodes.signal(leader!, 'SIGKILL');
      const atKill = load.acknowledged();
      await eventually('writes after the kill', () => load.acknowledged() >= atKill + 80, 120_000, 50);
    } finally {
      await load.stop();
    }
    expect(failures.filter((name) => !RETRYABLE.has(name))).toEqual([]);
    await cluster.nodes.startNode(leader!);
    await cluster.nodes.waitReady();
    await bothConverge();
  });

  it('converges across a split of a base partition and of a GSI partition made during writes', { timeout: STEP_TIMEOUT_MS }, async () => {
    const load = workload(3);
    try {
      await eventually('writes before the splits', () => load.acknowledged() >= 30, 60_000, 50);
      await split(TABLE);
      await split(`${TABLE}/byStatus`);
      const atSplit = load.acknowledged();
      await eventually('writes after the splits', () => load.acknowledged() >= atSplit + 60, 120_000, 50);
    } finally {
      await load.stop();
    }
    expect(failures.filter((name) => !RETRYABLE.has(name))).toEqual([]);
    expect((await rowsOf(TABLE)).length).toBe(4);
    expect((await rowsOf(`${TABLE}/byStatus`)).length).toBe(4);
    await bothConverge();
  });

  it('backfills a GSI added by UpdateTable over the existing items, then deletes it: its partitions leave the map', { timeout: STEP_TIMEOUT_MS }, async () => {
    await cluster.client.send(
      new UpdateTableCommand({
        TableName: TABLE,
        AttributeDefinitions: [{ AttributeName: 'amount', AttributeType: 'N' }],
        GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'byAmount', KeySchema: keySchema('amount'), Projection: { ProjectionType: 'KEYS_ONLY' } } }],
      }),
    );
    // As many partitions as the table has now (4 after the split).
    const added = await rowsOf(`${TABLE}/byAmount`);
    expect(added.length).toBe(4);
    await eventually('byAmount active', async () => {
      const { Table } = await cluster.client.send(new DescribeTableCommand({ TableName: TABLE }));
      return Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === 'byAmount')?.IndexStatus === 'ACTIVE';
    }, 120_000, 250);
    const items = await tableAsWritten();
    await converges('byAmount', BY_AMOUNT, items);
    await eventuallyConsistent(
      () => cluster.client.send(new DescribeTableCommand({ TableName: TABLE })),
      ({ Table }) => expect(Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === 'byAmount')?.ItemCount).toBe(expectedGsiEntries(items, BY_AMOUNT).length),
      { once: false, timeoutMs: CONVERGE_TIMEOUT_MS },
    );

    await cluster.client.send(new UpdateTableCommand({ TableName: TABLE, GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byAmount' } }] }));
    const ids = new Set(added.map((row) => row.id));
    await eventually('byAmount\'s partitions gone from the map', async () => !(await adminStatus(cluster.nodes.metaAddresses)).partitions.some((row) => ids.has(row.id)), 60_000, 500);
    // The other GSIs still follow the table.
    await workload(4, 10).done;
    await bothConverge();
  });

  it('DeleteTable removes the table\'s partitions and its GSIs\'', { timeout: STEP_TIMEOUT_MS }, async () => {
    const status = await adminStatus(cluster.nodes.metaAddresses);
    const ids = new Set(status.partitions.filter((row) => row.table === TABLE || row.table.startsWith(`${TABLE}/`)).map((row) => row.id));
    expect(ids.size).toBe(4 + 4 + 3);
    await cluster.client.send(new DeleteTableCommand({ TableName: TABLE }));
    await eventually('every partition of the table gone from the map', async () => !(await adminStatus(cluster.nodes.metaAddresses)).partitions.some((row) => ids.has(row.id)), 60_000, 500);
  });
});

const BACKFILLED = 'gsi_backfill';
const BACKFILLED_ITEMS = 20_000;
const GROUPS = 20;
/** Item i of the backfill table: its GSI key `grp` one of GROUPS values. */
const backfilledItem = (i: number): AttributeMap => ({ pk: S(`b${i}`), grp: S(`g${i % GROUPS}`), n: N(i) });

/** Adds a KEYS_ONLY GSI on `grp` to the backfill table; resolves once UpdateTable answered (the backfill runs on). */
async function addGroupIndex(indexName: string): Promise<void> {
  await cluster.client.send(
    new UpdateTableCommand({
      TableName: BACKFILLED,
      AttributeDefinitions: [{ AttributeName: 'grp', AttributeType: 'S' }],
      GlobalSecondaryIndexUpdates: [{ Create: { IndexName: indexName, KeySchema: keySchema('grp'), Projection: { ProjectionType: 'KEYS_ONLY' } } }],
    }),
  );
}

/**
 * Adds the GSI while the nodes refuse shipped GSI records; resolves once every base partition's walk
 * paused at half the outbox limit (none walks further while nothing ships, so all have once the
 * table's partitions walked that much each), still held: `cluster.nodes.refuseIndexEntries(false)` lets
 * them go on. Answers the items walked before.
 */
async function addGroupIndexHeld(indexName: string): Promise<number> {
  await cluster.nodes.refuseIndexEntries(true);
  const walkedBefore = await cluster.nodes.metricSum('shoal_node_index_backfill_items_total');
  const partitions = (await rowsOf(BACKFILLED)).length;
  await addGroupIndex(indexName);
  await eventually('every walk paused', async () => (await cluster.nodes.metricSum('shoal_node_index_backfill_items_total')) - walkedBefore >= (partitions * OUTBOX_LIMIT) / 2, 120_000, 100);
  return walkedBefore;
}

/** The index's status in DescribeTable, polled every 50 ms until it is ACTIVE (bounded). */
async function activeAfterBackfill(indexName: string): Promise<void> {
  await eventually(`${indexName} ACTIVE`, async () => {
    const { Table } = await cluster.client.send(new DescribeTableCommand({ TableName: BACKFILLED }));
    return Table?.GlobalSecondaryIndexes?.find((index) => index.IndexName === indexName)?.IndexStatus === 'ACTIVE';
  }, 180_000, 50);
}

/** One pass over the GSI, no retry: how many entries each group's Query finds, and a Scan's count. */
async function gsiCountsOnce(indexName: string): Promise<{ scanned: number; byGroup: number[] }> {
  let scanned = 0;
  let startKey: AttributeMap | undefined;
  for (let page = 0; page < 100; page++) {
    const answer = await cluster.client.send(new ScanCommand({ TableName: BACKFILLED, IndexName: indexName, Select: 'COUNT', ...(startKey ? { ExclusiveStartKey: startKey } : {}) }));
    scanned += answer.Count ?? 0;
    startKey = answer.LastEvaluatedKey;
    if (startKey === undefined) break;
  }
  const byGroup: number[] = [];
  for (let group = 0; group < GROUPS; group++) {
    let count = 0;
    let queryKey: AttributeMap | undefined;
    for (let page = 0; page < 100; page++) {
      const answer = await cluster.client.send(
        new QueryCommand({ TableName: BACKFILLED, IndexName: indexName, Select: 'COUNT', KeyConditionExpression: 'grp = :g', ExpressionAttributeValues: { ':g': S(`g${group}`) }, ...(queryKey ? { ExclusiveStartKey: queryKey } : {}) }),
      );
      count += answer.Count ?? 0;
      queryKey = answer.LastEvaluatedKey;
      if (queryKey === undefined) break;
    }
    byGroup.push(count);
  }
  return { scanned, byGroup };
}

const EVERY_ITEM = { scanned: BACKFILLED_ITEMS, byGroup: Array.from({ length: GROUPS }, () => BACKFILLED_ITEMS / GROUPS) };

describe('the lifecycle of a GSI backfill on a 3-node cluster', () => {
  // A test that failed while holding the walks leaves the next one a cluster that ships.
  afterEach(() => cluster.nodes.refuseIndexEntries(false));

  beforeAll(async () => {
    await createTable(cluster.client, { TableName: BACKFILLED, ...keyedBy(['pk', 'S']) });
    // 20,000 items, 8 BatchWriteItems of 25 at a time.
    const batches = Array.from({ length: BACKFILLED_ITEMS / 25 }, (_, b) => Array.from({ length: 25 }, (_, n) => ({ PutRequest: { Item: backfilledItem(b * 25 + n) } })));
    for (let at = 0; at < batches.length; at += 8) {
      await Promise.all(
        batches.slice(at, at + 8).map(async (batch) => {
          let pending: WriteRequest[] = batch;
          for (let round = 0; pending.length > 0 && round < 50; round++) {
            if (round > 0) await new Promise((done) => setTimeout(done, 50));
            pending = (await cluster.client.send(new BatchWriteItemCommand({ RequestItems: { [BACKFILLED]: pending } }))).UnprocessedItems?.[BACKFILLED] ?? [];
          }
          expect(pending).toEqual([]);
        }),
      );
    }
  }, STEP_TIMEOUT_MS);

  it('turns a GSI ACTIVE only once it holds every backfilled item: a Scan and Queries right after find all 20,000, at once', { timeout: STEP_TIMEOUT_MS }, async () => {
    await addGroupIndex('byGroup');
    await activeAfterBackfill('byGroup');
    // One pass, no polling: DynamoDB's ACTIVE means the backfill is done.
    expect(await gsiCountsOnce('byGroup')).toEqual(EVERY_ITEM);
  });

  it('finishes a backfill through a leadership transfer of a base partition while it runs: ACTIVE, and the GSI holds exactly the items', { timeout: STEP_TIMEOUT_MS }, async () => {
    const walkedBefore = await addGroupIndexHeld('byGroupMoved');
    const [base] = await rowsOf(BACKFILLED);
    // To a node that does not lead it (a lagging leader hint would name the leader itself: no move).
    const leader = await reportedLeader(cluster.nodes, base.id);
    const to = base.replicas.map(Number).find((nodeId) => nodeId !== leader)!;
    const moved = await runShoal(['admin', 'transfer-leader', String(base.id), String(to), '--wait', '--timeout', '60', '--meta', cluster.nodes.metaAddresses.join(',')]);
    expect(moved.code, moved.stderr).toBe(0);
    // Moved while its walk was part way.
    expect((await cluster.nodes.metricSum('shoal_node_index_backfill_items_total')) - walkedBefore).toBeLessThan(BACKFILLED_ITEMS);
    await cluster.nodes.refuseIndexEntries(false);
    await activeAfterBackfill('byGroupMoved');
    expect(await gsiCountsOnce('byGroupMoved')).toEqual(EVERY_ITEM);
    const entries = await scanAll(cluster.client, { TableName: BACKFILLED, IndexName: 'byGroupMoved' });
    expect(entries.map(canonicalItem).sort()).toEqual(Array.from({ length: BACKFILLED_ITEMS }, (_, i) => canonicalItem({ pk: S(`b${i}`), grp: S(`g${i % GROUPS}`) })).sort());
  });

  it('stops the backfill of a GSI deleted while it runs: no chunk walks after, its records leave the outboxes, the table keeps serving', { timeout: STEP_TIMEOUT_MS }, async () => {
    const walkedBefore = await addGroupIndexHeld('byGroupDropped');
    await cluster.client.send(new UpdateTableCommand({ TableName: BACKFILLED, GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'byGroupDropped' } }] }));
    // Answered once every base partition's leader stopped the walk.
    const walkedAtDelete = await cluster.nodes.metricSum('shoal_node_index_backfill_items_total');
    await cluster.nodes.refuseIndexEntries(false);
    await eventually('the outboxes empty', async () => (await cluster.nodes.metricSum('shoal_node_index_outbox_records')) === 0, 60_000, 250);
    const { Table } = await cluster.client.send(new DescribeTableCommand({ TableName: BACKFILLED }));
    expect(Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.IndexStatus]).sort()).toEqual([['byGroup', 'ACTIVE'], ['byGroupMoved', 'ACTIVE']]);
    // The walk stopped part way and walked nothing after the delete.
    expect(walkedAtDelete - walkedBefore).toBeLessThan(BACKFILLED_ITEMS);
    expect(await cluster.nodes.metricSum('shoal_node_index_backfill_items_total')).toBe(walkedAtDelete);
    // The table serves: a write, a strong read of it, and the other GSIs follow it.
    await cluster.client.send(new PutItemCommand({ TableName: BACKFILLED, Item: { pk: S('after'), grp: S('g-after') } }));
    expect((await cluster.client.send(new GetItemCommand({ TableName: BACKFILLED, Key: { pk: S('after') }, ConsistentRead: true }))).Item).toEqual({ pk: S('after'), grp: S('g-after') });
    await eventuallyConsistent(
      () => cluster.client.send(new QueryCommand({ TableName: BACKFILLED, IndexName: 'byGroup', KeyConditionExpression: 'grp = :g', ExpressionAttributeValues: { ':g': S('g-after') } })),
      (answer) => expect(answer.Items).toEqual([{ pk: S('after'), grp: S('g-after') }]),
      { once: false, timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 50 },
    );
  });
});
