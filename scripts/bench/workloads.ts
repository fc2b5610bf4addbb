/** The bench table, its setup, and the request bytes each workload sends to each kind of target. */
import { DYNAMODB_HEADERS } from './dynamodb-http.ts';
import type { DynamoDbHttpClient, Endpoint } from './dynamodb-http.ts';
import { httpPost } from './pipelined-http.ts';

export const WORKLOAD_NAMES = ['put', 'get', 'get-strong', 'query', 'mixed'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** How a target is spoken to: DynamoDB's JSON protocol, or etcd's v3 JSON gateway. */
export type Protocol = 'dynamodb' | 'etcd';

export interface BenchTable {
  name: string;
  /** Keys are k0 … k{keyCount-1}: puts overwrite among them, reads hit pre-loaded ones. */
  keyCount: number;
  /** Filler that brings an item (or an etcd value) to the requested size. */
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

/** Whether a protocol has a request for the workload (etcd has no Query). */
export function supports(protocol: Protocol, workload: WorkloadName): boolean {
  return protocol === 'dynamodb' || workload !== 'query';
}

type RequestKind = 'put' | 'get' | 'get-strong' | 'query';

const keyName = (index: number): string => `k${index}`;
const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** The JSON body of one request; built by concatenation, as keys and filler need no escaping. */
function dynamoDbRequest(kind: RequestKind, table: BenchTable, key: string): { operation: string; body: string } {
  const keyJson = `{"pk":{"S":"${key}"}}`;
  switch (kind) {
    case 'put':
      return { operation: 'PutItem', body: `{"TableName":"${table.name}","Item":{"pk":{"S":"${key}"},"payload":{"S":"${table.payload}"}}}` };
    case 'get':
      return { operation: 'GetItem', body: `{"TableName":"${table.name}","Key":${keyJson}}` };
    case 'get-strong':
      return { operation: 'GetItem', body: `{"TableName":"${table.name}","Key":${keyJson},"ConsistentRead":true}` };
    case 'query':
      return {
        operation: 'Query',
        body: `{"TableName":"${table.name}","KeyConditionExpression":"pk = :pk","ExpressionAttributeValues":{":pk":{"S":"${key}"}}}`,
      };
  }
}

/** etcd: a put, a serializable read (any member's local state) or a linearizable one (through the leader). */
function etcdRequest(kind: RequestKind, table: BenchTable, key: string): { path: string; body: string } {
  switch (kind) {
    case 'put':
      return { path: '/v3/kv/put', body: `{"key":"${base64(key)}","value":"${base64(table.payload)}"}` };
    case 'get':
      return { path: '/v3/kv/range', body: `{"key":"${base64(key)}","serializable":true}` };
    case 'get-strong':
      return { path: '/v3/kv/range', body: `{"key":"${base64(key)}"}` };
    case 'query':
      throw new Error('etcd has no Query');
  }
}

/** The complete HTTP request of one kind for one key. */
function requestBytes(protocol: Protocol, endpoint: Endpoint, kind: RequestKind, table: BenchTable, key: string): Buffer {
  if (protocol === 'etcd') {
    const { path, body } = etcdRequest(kind, table, key);
    return httpPost(endpoint, path, { 'Content-Type': 'application/json' }, body);
  }
  const { operation, body } = dynamoDbRequest(kind, table, key);
  return httpPost(endpoint, '/', { ...DYNAMODB_HEADERS, 'X-Amz-Target': `DynamoDB_20120810.${operation}` }, body);
}

/** The request of one kind for every key, built before the measurement so sending costs one write. */
function requestsByKey(protocol: Protocol, endpoint: Endpoint, kind: RequestKind, table: BenchTable): Buffer[] {
  return Array.from({ length: table.keyCount }, (_, index) => requestBytes(protocol, endpoint, kind, table, keyName(index)));
}

/**
 * The request source of a workload: the next request for a key drawn from `random`; `mixed` is half
 * reads, half writes (YCSB A's shape).
 */
export function workloadRequests(
  workload: WorkloadName,
  protocol: Protocol,
  endpoint: Endpoint,
  table: BenchTable,
  random: () => number,
): () => Buffer {
  const pick = (requests: Buffer[]) => () => requests[Math.floor(random() * requests.length)];
  if (workload !== 'mixed') return pick(requestsByKey(protocol, endpoint, workload, table));
  const gets = requestsByKey(protocol, endpoint, 'get', table);
  const puts = requestsByKey(protocol, endpoint, 'put', table);
  return () => {
    const key = Math.floor(random() * table.keyCount);
    return random() < 0.5 ? gets[key] : puts[key];
  };
}

/** Every key's put, in key order: the pre-load. */
export function preloadRequests(protocol: Protocol, endpoint: Endpoint, table: BenchTable): () => Buffer {
  const puts = requestsByKey(protocol, endpoint, 'put', table);
  let next = 0;
  return () => puts[next++ % puts.length];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates the table (hash key `pk`, string) with `tags`, or reuses it, and waits until it is ACTIVE. */
export async function createTable(client: DynamoDbHttpClient, table: BenchTable, tags: Readonly<Record<string, string>> = {}): Promise<void> {
  const tagList = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  const response = await client.send(
    'CreateTable',
    JSON.stringify({
      TableName: table.name,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      ...(tagList.length > 0 ? { Tags: tagList } : {}),
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

/**
 * Waits until a write succeeds: a cluster reports a table ACTIVE once meta has it, possibly before
 * every partition has elected its leader.
 */
export async function awaitWritable(client: DynamoDbHttpClient, table: BenchTable): Promise<void> {
  let last = '';
  for (let poll = 0; poll < SETUP_POLLS; poll++) {
    const { operation, body } = dynamoDbRequest('put', table, keyName(0));
    const response = await client.send(operation, body).catch((error: unknown) => ({ status: 0, body: String(error) }));
    if (response.status === 200) return;
    last = `HTTP ${response.status} ${response.body.slice(0, 200)}`;
    await sleep(SETUP_POLL_MS);
  }
  throw new Error(`table ${table.name} took no write within ${SETUP_POLLS * SETUP_POLL_MS} ms (last: ${last})`);
}
