/** The bench table, its setup, and the requests each workload sends. */
import type { DynamoDbHttpClient } from './dynamodb-http.ts';

export const WORKLOAD_NAMES = ['put', 'get', 'query', 'mixed'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export interface BenchRequest {
  operation: string;
  body: string;
}

export interface BenchTable {
  name: string;
  /** Keys are k0 … k{keyCount-1}: puts overwrite among them, reads hit pre-loaded ones. */
  keyCount: number;
  /** Filler that brings an item to the requested size. */
  payload: string;
}

const SETUP_POLLS = 100;
const SETUP_POLL_MS = 100;

/** DynamoDB counts an item's size as attribute names plus values; the filler makes up the rest. */
export function benchTable(name: string, keyCount: number, itemSize: number): BenchTable {
  const fixed = 'pk'.length + `k${keyCount - 1}`.length + 'payload'.length;
  return { name, keyCount, payload: 'x'.repeat(Math.max(1, itemSize - fixed)) };
}

/** Workloads that read keys and so need them written first. */
export function needsPreload(workload: WorkloadName): boolean {
  return workload !== 'put';
}

function putItem(table: BenchTable, key: string): BenchRequest {
  // Built by concatenation: keys and filler need no JSON escaping, and this runs per request.
  return {
    operation: 'PutItem',
    body: `{"TableName":"${table.name}","Item":{"pk":{"S":"${key}"},"payload":{"S":"${table.payload}"}}}`,
  };
}

function getItem(table: BenchTable, key: string): BenchRequest {
  return { operation: 'GetItem', body: `{"TableName":"${table.name}","Key":{"pk":{"S":"${key}"}}}` };
}

function query(table: BenchTable, key: string): BenchRequest {
  return {
    operation: 'Query',
    body: `{"TableName":"${table.name}","KeyConditionExpression":"pk = :pk","ExpressionAttributeValues":{":pk":{"S":"${key}"}}}`,
  };
}

/** The next request of a workload; `mixed` is half reads, half writes (YCSB A's shape). */
export function nextRequest(workload: WorkloadName, table: BenchTable, random: () => number): BenchRequest {
  const key = `k${Math.floor(random() * table.keyCount)}`;
  switch (workload) {
    case 'put':
      return putItem(table, key);
    case 'get':
      return getItem(table, key);
    case 'query':
      return query(table, key);
    case 'mixed':
      return random() < 0.5 ? getItem(table, key) : putItem(table, key);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates the table (hash key `pk`, string), or reuses it, and waits until it is ACTIVE. */
export async function createTable(client: DynamoDbHttpClient, table: BenchTable): Promise<void> {
  const response = await client.send(
    'CreateTable',
    JSON.stringify({
      TableName: table.name,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  if (response.status !== 200 && !response.body.includes('ResourceInUseException')) {
    throw new Error(`CreateTable failed with HTTP ${response.status}: ${response.body.slice(0, 300)}`);
  }
  for (let poll = 0; poll < SETUP_POLLS; poll++) {
    const described = await client.call('DescribeTable', { TableName: table.name });
    if ((described.Table as { TableStatus?: string } | undefined)?.TableStatus === 'ACTIVE') return;
    await sleep(SETUP_POLL_MS);
  }
  throw new Error(`table ${table.name} did not become ACTIVE within ${SETUP_POLLS * SETUP_POLL_MS} ms`);
}

/** Writes every key once, `concurrency` requests at a time. */
export async function preload(client: DynamoDbHttpClient, table: BenchTable, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < table.keyCount) {
      const { operation, body } = putItem(table, `k${next++}`);
      const response = await client.send(operation, body);
      if (response.status !== 200) throw new Error(`pre-load PutItem failed with HTTP ${response.status}: ${response.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
