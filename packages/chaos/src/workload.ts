/**
 * The chaos workload: closed-loop clients over the routers' DynamoDB API, recording every
 * operation's invocation and completion for the verdict.
 *
 * Keys (each a key of the linearizability history, `table/pk[/sk]`):
 * - registers `kv/r*`: PutItem, BatchWriteItem puts, strong GetItem, eventual GetItem;
 * - counters `kv/c*`: attribute `v` a compare-and-set register (UpdateItem with a condition on the
 *   value read before; the value carries the count), attribute `n` an ADD counter;
 * - lists `kv/l*`: UpdateItem list_append of unique elements, read by strong GetItem;
 * - transaction groups `txn/g*`: two items (sk a and b) of one item collection, hence of one
 *   partition, written together by TransactWriteItems with one value, read by TransactGetItems;
 * - cross-partition groups `x<n>`: an item in each table (`kv/x<n>` and `txn/x<n>/x`, hence two
 *   partitions), written only together by TransactWriteItems (two-phase commit) with one value,
 *   read by TransactGetItems.
 */
import type { KvOperation } from '@shoal/linearizability';
import { seededRandom } from '@shoal/linearizability';
import { DynamoDbClient } from './dynamodb-client.ts';
import type { Outcome } from './dynamodb-client.ts';

export const KV_TABLE = 'chaos_kv';
export const TXN_TABLE = 'chaos_txn';

export const OPERATION_KINDS = [
  'put',
  'get',
  'get-eventual',
  'cas',
  'add',
  'append',
  'read-list',
  'batch-write',
  'transact',
  'transact-read',
  'transact-cross',
  'transact-read-cross',
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

/** Relative frequency of each kind. */
const WEIGHTS: Record<OperationKind, number> = {
  put: 14,
  get: 14,
  'get-eventual': 10,
  cas: 14,
  add: 5,
  append: 12,
  'read-list': 8,
  'batch-write': 7,
  transact: 7,
  'transact-read': 5,
  'transact-cross': 5,
  'transact-read-cross': 4,
};

export type Completion = 'ok' | 'failed' | 'indeterminate';

/** One request as the timeline shows it. */
export interface RequestRecord {
  kind: OperationKind;
  client: number;
  /** ms since the run's start (performance.now() based). */
  start: number;
  end: number;
  completion: Completion;
  /** History keys the request touched. */
  keys: string[];
  /** The error type or reason when not ok. */
  error?: string;
}

export interface EventualRead {
  key: string;
  client: number;
  call: number;
  return: number;
  /** Register value (null when absent) or list elements. */
  output: string | null | string[];
}

export interface AddTally {
  ok: number;
  indeterminate: number;
}

/** A transactional read of a group's items, which must all hold one value. */
export interface TransactionRead {
  /** History keys of the group's items. */
  keys: string[];
  call: number;
  return: number;
  values: (string | null)[];
}

/** Everything the clients saw. Times are ms since the run's start. */
export class Recorder {
  readonly history: KvOperation[] = [];
  readonly requests: RequestRecord[] = [];
  readonly eventualReads: EventualRead[] = [];
  readonly adds = new Map<string, AddTally>();
  readonly transactionReads: TransactionRead[] = [];
  readonly #origin: number;

  constructor(origin: number) {
    this.#origin = origin;
  }

  /**
   * ms since the start, to 0.1 ms (rounding keeps the order of times, so operations can only become
   * concurrent, never ordered, and the checker never sees a false violation from it).
   */
  now(): number {
    return Math.round((performance.now() - this.#origin) * 10) / 10;
  }

  tally(key: string): AddTally {
    let tally = this.adds.get(key);
    if (tally === undefined) {
      tally = { ok: 0, indeterminate: 0 };
      this.adds.set(key, tally);
    }
    return tally;
  }
}

export interface WorkloadOptions {
  seed: number;
  clients: number;
  /** Keys of each kind (registers, counters, lists, transaction groups). */
  keys: number;
  requestTimeoutMs: number;
  /**
   * TEST ONLY, deliberately unsafe: "strong" reads are sent as eventually consistent reads (any
   * replica may answer) but recorded as strong ones, so the verdict must find stale reads. They go
   * through the last router, which then serves no write of the run: a router makes its own
   * acknowledged writes visible to its eventual reads (read-your-writes), which would hide the bug.
   */
  unsafeEventualAsStrong: boolean;
}

type S = { S: string };
type Item = Record<string, { S?: string; N?: string; L?: S[] }>;

function registerKey(index: number): string {
  return `r${index}`;
}

function historyKey(table: string, pk: string, sk?: string): string {
  return sk === undefined ? `${table === KV_TABLE ? 'kv' : 'txn'}/${pk}` : `txn/${pk}/${sk}`;
}

interface GroupItem {
  table: string;
  pk: string;
  sk?: string;
  historyKey: string;
}

function groupItem(table: string, pk: string, sk?: string): GroupItem {
  return { table, pk, sk, historyKey: historyKey(table, pk, sk) };
}

function itemKey(item: GroupItem): Record<string, S> {
  return item.sk === undefined ? { pk: { S: item.pk } } : { pk: { S: item.pk }, sk: { S: item.sk } };
}

/** The items of a transaction group: `g*` two of one item collection, `x*` one in each table. */
function groupItems(group: string): GroupItem[] {
  if (group.startsWith('x')) return [groupItem(KV_TABLE, group), groupItem(TXN_TABLE, group, 'x')];
  return [groupItem(TXN_TABLE, group, 'a'), groupItem(TXN_TABLE, group, 'b')];
}

/** The count carried by a compare-and-set value `count:token`; 0 when absent. */
export function countOf(value: string | null): number {
  return value === null ? 0 : Number(value.slice(0, value.indexOf(':')));
}

function itemOf(body: Record<string, unknown>): Item | undefined {
  return body.Item as Item | undefined;
}

export async function createTables(client: DynamoDbClient): Promise<void> {
  const tables = [
    { TableName: KV_TABLE, KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }] },
    {
      TableName: TXN_TABLE,
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
    },
  ];
  for (const table of tables) {
    const outcome = await client.send('CreateTable', { ...table, BillingMode: 'PAY_PER_REQUEST' });
    if (outcome.kind === 'failed' && outcome.type !== 'ResourceInUseException') throw new Error(`CreateTable ${table.TableName}: ${outcome.type}: ${outcome.message}`);
    for (let attempt = 0; ; attempt++) {
      const described = await client.send('DescribeTable', { TableName: table.TableName });
      const status = described.kind === 'ok' ? (described.body.Table as { TableStatus?: string } | undefined)?.TableStatus : undefined;
      if (status === 'ACTIVE') break;
      if (attempt > 200) throw new Error(`table ${table.TableName} not ACTIVE`);
      await new Promise((done) => setTimeout(done, 100));
    }
  }
}

/** One client: its own connection(s), random choices and value sequence. */
class WorkloadClient {
  readonly #id: number;
  readonly #http: DynamoDbClient;
  /** Where reads recorded as strong go: #http, or in the unsafe mode a router of their own. */
  readonly #strongReads: DynamoDbClient;
  readonly #recorder: Recorder;
  readonly #options: WorkloadOptions;
  readonly #random: () => number;
  readonly #totalWeight: number;
  #sequence = 0;

  constructor(id: number, endpoints: readonly string[], recorder: Recorder, options: WorkloadOptions) {
    this.#id = id;
    if (options.unsafeEventualAsStrong) {
      if (endpoints.length < 2) throw new Error('the unsafe eventual-as-strong mode needs 2 routers or more: its reads go through a router of their own');
      this.#http = new DynamoDbClient({ endpoints: endpoints.slice(0, -1), preferred: id, timeoutMs: options.requestTimeoutMs });
      this.#strongReads = new DynamoDbClient({ endpoints: endpoints.slice(-1), preferred: 0, timeoutMs: options.requestTimeoutMs });
    } else {
      this.#http = new DynamoDbClient({ endpoints, preferred: id, timeoutMs: options.requestTimeoutMs });
      this.#strongReads = this.#http;
    }
    this.#recorder = recorder;
    this.#options = options;
    this.#random = seededRandom(options.seed * 7919 + id);
    this.#totalWeight = OPERATION_KINDS.reduce((sum, kind) => sum + WEIGHTS[kind], 0);
  }

  async run(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) await this.step();
    this.#http.close();
    if (this.#strongReads !== this.#http) this.#strongReads.close();
  }

  #pick(count: number): number {
    return Math.floor(this.#random() * count);
  }

  #value(): string {
    return `${this.#id}-${this.#sequence++}`;
  }

  async step(): Promise<void> {
    let roll = this.#random() * this.#totalWeight;
    const kind = OPERATION_KINDS.find((candidate) => (roll -= WEIGHTS[candidate]) < 0) ?? 'get';
    const keys = this.#options.keys;
    switch (kind) {
      case 'put':
        return this.put(registerKey(this.#pick(keys)));
      case 'get':
        await this.getRegister(KV_TABLE, registerKey(this.#pick(keys)));
        return;
      case 'get-eventual':
        return this.getEventual(['r', 'c', 'l'][this.#pick(3)] + this.#pick(keys));
      case 'cas':
        return this.cas(`c${this.#pick(keys)}`);
      case 'add':
        return this.add(`c${this.#pick(keys)}`);
      case 'append':
        return this.append(`l${this.#pick(keys)}`);
      case 'read-list':
        return this.readList(`l${this.#pick(keys)}`);
      case 'batch-write':
        return this.batchWrite();
      case 'transact':
        return this.transact(kind, `g${this.#pick(keys)}`);
      case 'transact-read':
        return this.transactRead(kind, `g${this.#pick(keys)}`);
      case 'transact-cross':
        return this.transact(kind, `x${this.#pick(keys)}`);
      case 'transact-read-cross':
        return this.transactRead(kind, `x${this.#pick(keys)}`);
    }
  }

  /** Sends one request and records it on the timeline. */
  async #request(kind: OperationKind, keys: string[], operation: string, input: unknown, via = this.#http): Promise<{ outcome: Outcome; call: number; end: number }> {
    const call = this.#recorder.now();
    const outcome = await via.send(operation, input);
    const end = this.#recorder.now();
    const record: RequestRecord = { kind, client: this.#id, start: call, end, completion: outcome.kind, keys };
    if (outcome.kind === 'failed') record.error = outcome.type;
    if (outcome.kind === 'indeterminate') record.error = outcome.reason;
    this.#recorder.requests.push(record);
    return { outcome, call, end };
  }

  /** A write's history entry: completed when ok, without a return when indeterminate, absent when it certainly failed. */
  #recordWrite(outcome: Outcome, operation: KvOperation, end: number): void {
    if (outcome.kind === 'ok') this.#recorder.history.push({ ...operation, return: end });
    else if (outcome.kind === 'indeterminate') this.#recorder.history.push(operation);
  }

  async put(pk: string): Promise<void> {
    const value = this.#value();
    const key = historyKey(KV_TABLE, pk);
    const { outcome, call, end } = await this.#request('put', [key], 'PutItem', { TableName: KV_TABLE, Item: { pk: { S: pk }, v: { S: value } } });
    this.#recordWrite(outcome, { process: this.#id, key, call, type: 'put', value }, end);
  }

  /** A strong read of a register (or of a counter's compare-and-set value); returns the value seen. */
  async getRegister(table: string, pk: string): Promise<string | null | undefined> {
    const key = historyKey(table, pk);
    const consistent = !this.#options.unsafeEventualAsStrong;
    const { outcome, call, end } = await this.#request('get', [key], 'GetItem', { TableName: table, Key: { pk: { S: pk } }, ConsistentRead: consistent }, this.#strongReads);
    if (outcome.kind !== 'ok') return undefined;
    const output = itemOf(outcome.body)?.v?.S ?? null;
    this.#recorder.history.push({ process: this.#id, key, call, return: end, type: 'get', output });
    return output;
  }

  async getEventual(pk: string): Promise<void> {
    const key = historyKey(KV_TABLE, pk);
    const { outcome, call, end } = await this.#request('get-eventual', [key], 'GetItem', { TableName: KV_TABLE, Key: { pk: { S: pk } }, ConsistentRead: false });
    if (outcome.kind !== 'ok') return;
    const item = itemOf(outcome.body);
    const output = pk.startsWith('l') ? (item?.l?.L ?? []).map((element) => element.S ?? '') : (item?.v?.S ?? null);
    this.#recorder.eventualReads.push({ key, client: this.#id, call, return: end, output });
  }

  /** Reads the counter's value, then sets it to the next count if nobody changed it meanwhile. */
  async cas(pk: string): Promise<void> {
    const expected = await this.getRegister(KV_TABLE, pk);
    if (expected === undefined) return;
    const key = historyKey(KV_TABLE, pk);
    const value = `${countOf(expected) + 1}:${this.#value()}`;
    const input = {
      TableName: KV_TABLE,
      Key: { pk: { S: pk } },
      UpdateExpression: 'SET v = :value',
      ConditionExpression: expected === null ? 'attribute_not_exists(v)' : 'v = :expected',
      ExpressionAttributeValues: expected === null ? { ':value': { S: value } } : { ':value': { S: value }, ':expected': { S: expected } },
    };
    const { outcome, call, end } = await this.#request('cas', [key], 'UpdateItem', input);
    const operation = { process: this.#id, key, call, type: 'cas' as const, expected, value };
    if (outcome.kind === 'failed' && outcome.type === 'ConditionalCheckFailedException') {
      this.#recorder.history.push({ ...operation, return: end, ok: false });
    } else if (outcome.kind === 'ok') {
      this.#recorder.history.push({ ...operation, return: end, ok: true });
    } else if (outcome.kind === 'indeterminate') {
      this.#recorder.history.push(operation);
    }
  }

  async add(pk: string): Promise<void> {
    const key = historyKey(KV_TABLE, pk);
    const input = { TableName: KV_TABLE, Key: { pk: { S: pk } }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': { N: '1' } } };
    const { outcome } = await this.#request('add', [key], 'UpdateItem', input);
    if (outcome.kind === 'ok') this.#recorder.tally(key).ok++;
    if (outcome.kind === 'indeterminate') this.#recorder.tally(key).indeterminate++;
  }

  async append(pk: string): Promise<void> {
    const key = historyKey(KV_TABLE, pk);
    const value = this.#value();
    const input = {
      TableName: KV_TABLE,
      Key: { pk: { S: pk } },
      UpdateExpression: 'SET l = list_append(if_not_exists(l, :empty), :element)',
      ExpressionAttributeValues: { ':empty': { L: [] }, ':element': { L: [{ S: value }] } },
    };
    const { outcome, call, end } = await this.#request('append', [key], 'UpdateItem', input);
    this.#recordWrite(outcome, { process: this.#id, key, call, type: 'append', value }, end);
  }

  async readList(pk: string): Promise<void> {
    const key = historyKey(KV_TABLE, pk);
    const consistent = !this.#options.unsafeEventualAsStrong;
    const { outcome, call, end } = await this.#request('read-list', [key], 'GetItem', { TableName: KV_TABLE, Key: { pk: { S: pk } }, ConsistentRead: consistent }, this.#strongReads);
    if (outcome.kind !== 'ok') return;
    const output = (itemOf(outcome.body)?.l?.L ?? []).map((element) => element.S ?? '');
    this.#recorder.history.push({ process: this.#id, key, call, return: end, type: 'read-list', output });
  }

  /** Puts on 2 to 4 distinct registers in one BatchWriteItem; unprocessed items took no effect. */
  async batchWrite(): Promise<void> {
    const count = Math.min(this.#options.keys, 2 + this.#pick(3));
    const chosen = new Set<string>();
    while (chosen.size < count) chosen.add(registerKey(this.#pick(this.#options.keys)));
    const puts = [...chosen].map((pk) => ({ pk, value: this.#value() }));
    const input = { RequestItems: { [KV_TABLE]: puts.map(({ pk, value }) => ({ PutRequest: { Item: { pk: { S: pk }, v: { S: value } } } })) } };
    const keys = puts.map(({ pk }) => historyKey(KV_TABLE, pk));
    const { outcome, call, end } = await this.#request('batch-write', keys, 'BatchWriteItem', input);
    const unprocessed = new Set<string>();
    if (outcome.kind === 'ok') {
      const left = (outcome.body.UnprocessedItems as Record<string, { PutRequest: { Item: Item } }[]> | undefined)?.[KV_TABLE] ?? [];
      for (const request of left) unprocessed.add(request.PutRequest.Item.pk.S ?? '');
    }
    for (const { pk, value } of puts) {
      if (unprocessed.has(pk)) continue;
      this.#recordWrite(outcome, { process: this.#id, key: historyKey(KV_TABLE, pk), call, type: 'put', value }, end);
    }
  }

  /**
   * Both items of a group get one new value, in one transaction: all or nothing, whether the group
   * is one partition's or spans two (then the router runs a two-phase commit).
   */
  async transact(kind: OperationKind, group: string): Promise<void> {
    const value = this.#value();
    const items = groupItems(group);
    const input = { TransactItems: items.map((item) => ({ Put: { TableName: item.table, Item: { ...itemKey(item), v: { S: value } } } })) };
    const keys = items.map((item) => item.historyKey);
    const { outcome, call, end } = await this.#request(kind, keys, 'TransactWriteItems', input);
    for (const key of keys) this.#recordWrite(outcome, { process: this.#id, key, call, type: 'put', value }, end);
  }

  async transactRead(kind: OperationKind, group: string): Promise<void> {
    const items = groupItems(group);
    const keys = items.map((item) => item.historyKey);
    const input = { TransactItems: items.map((item) => ({ Get: { TableName: item.table, Key: itemKey(item) } })) };
    const { outcome, call, end } = await this.#request(kind, keys, 'TransactGetItems', input);
    if (outcome.kind !== 'ok') return;
    const responses = (outcome.body.Responses as { Item?: Item }[] | undefined) ?? [];
    const values = keys.map((_, index) => responses[index]?.Item?.v?.S ?? null);
    keys.forEach((key, index) => this.#recorder.history.push({ process: this.#id, key, call, return: end, type: 'get', output: values[index] }));
    this.#recorder.transactionReads.push({ keys, call, return: end, values });
  }
}

/** Runs the clients until `stop` aborts; resolves when every one has finished its last request. */
export async function runWorkload(endpoints: readonly string[], recorder: Recorder, options: WorkloadOptions, stop: AbortSignal): Promise<void> {
  const clients = Array.from({ length: options.clients }, (_, id) => new WorkloadClient(id, endpoints, recorder, options));
  await Promise.all(clients.map((client) => client.run(stop)));
}

export interface FinalState {
  registers: Map<string, string | null>;
  lists: Map<string, string[]>;
  /** ADD counters' final `n`. */
  counts: Map<string, number>;
  /** Keys whose final read never succeeded. */
  unread: string[];
  /** History keys of each transaction group's items (whose values are in `registers` when read). */
  transactionGroups: string[][];
}

/**
 * A strong read of every key once the faults are over, each retried until it answers; every read is
 * also added to the history (so "acknowledged writes present" is part of the linearizability check).
 */
export async function readFinalState(endpoints: readonly string[], recorder: Recorder, options: WorkloadOptions): Promise<FinalState> {
  const http = new DynamoDbClient({ endpoints, preferred: 0, timeoutMs: options.requestTimeoutMs });
  const final: FinalState = { registers: new Map(), lists: new Map(), counts: new Map(), unread: [], transactionGroups: [] };
  const process = options.clients;
  const read = async (table: string, pk: string, sk?: string): Promise<{ item: Item | undefined; call: number; end: number } | undefined> => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const call = recorder.now();
      const key = sk === undefined ? { pk: { S: pk } } : { pk: { S: pk }, sk: { S: sk } };
      const outcome = await http.send('GetItem', { TableName: table, Key: key, ConsistentRead: true });
      if (outcome.kind === 'ok') return { item: itemOf(outcome.body), call, end: recorder.now() };
      await new Promise((done) => setTimeout(done, 250));
    }
    return undefined;
  };
  /** Reads a register into the history and the final state; undefined when it never answered. */
  const readRegister = async (table: string, pk: string, sk?: string): Promise<{ item: Item | undefined } | undefined> => {
    const key = historyKey(table, pk, sk);
    const answer = await read(table, pk, sk);
    if (answer === undefined) {
      final.unread.push(key);
      return undefined;
    }
    const output = answer.item?.v?.S ?? null;
    recorder.history.push({ process, key, call: answer.call, return: answer.end, type: 'get', output });
    final.registers.set(key, output);
    return answer;
  };
  try {
    for (let index = 0; index < options.keys; index++) {
      for (const pk of [registerKey(index), `c${index}`]) {
        const answer = await readRegister(KV_TABLE, pk);
        if (answer !== undefined && pk.startsWith('c')) final.counts.set(historyKey(KV_TABLE, pk), Number(answer.item?.n?.N ?? '0'));
      }
      const listKey = historyKey(KV_TABLE, `l${index}`);
      const list = await read(KV_TABLE, `l${index}`);
      if (list === undefined) final.unread.push(listKey);
      else {
        const output = (list.item?.l?.L ?? []).map((element) => element.S ?? '');
        recorder.history.push({ process, key: listKey, call: list.call, return: list.end, type: 'read-list', output });
        final.lists.set(listKey, output);
      }
      for (const group of [`g${index}`, `x${index}`]) {
        const items = groupItems(group);
        for (const item of items) await readRegister(item.table, item.pk, item.sk);
        final.transactionGroups.push(items.map((item) => item.historyKey));
      }
    }
  } finally {
    http.close();
  }
  return final;
}
