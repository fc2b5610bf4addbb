import type { MessagePort } from 'node:worker_threads';
import { DynamoDbError, itemSize } from '@shoal/model';
import type {
  FoundItem,
  GetRequest,
  Item,
  PartitionClient,
  PartitionWrite,
  PartitionWriteResult,
  RangeReadRequest,
  RangeReadResult,
  ReadOptions,
  TableCatalog,
  TableRecord,
  TableSchema,
  TableStatistics,
} from '@shoal/model';
import type { EngineContext } from './operation.ts';
import { JsonText } from './protocol.ts';
import type { RequestBody, RequestInfo } from './request.ts';
import type { OperationRunner } from './server.ts';

/**
 * The channel between an HTTP worker thread and the engine thread that owns the store (`startRouter`
 * with `httpWorkers`). The worker parses, validates and answers requests; the engine thread serves the
 * `PartitionClient` and `TableCatalog` contracts behind it, and runs whole the operations a worker
 * hands over (table management, TTL, tags, write transactions), which need the router's one table
 * lock, its background work or the injectable clock.
 *
 * Each post carries the messages of one event loop turn (MessageBatcher); a message is an array,
 * its arguments JSON text (cheaper to clone than the object graph of an item):
 *   worker → engine  [id, call, argumentsJson]
 *   engine → worker  [id, REPLY_OK, value] | [id, REPLY_DYNAMODB_ERROR, EncodedError] | [id, REPLY_FAILURE, message]
 * A `get` answers the item's canonical JSON text (or null); a `dispatch` the answer body's text.
 */

export type EngineCall =
  | 'write'
  | 'get'
  | 'readRange'
  | 'statistics'
  | 'backfillIndex'
  | 'dropIndex'
  | 'dropTable'
  | 'catalogGet'
  | 'catalogList'
  | 'catalogPut'
  | 'catalogDelete'
  | 'allocateSpaceId'
  | 'dispatch';

export type EngineCallMessage = [id: number, call: EngineCall, argumentsJson: string];

const REPLY_OK = 0;
const REPLY_DYNAMODB_ERROR = 1;
const REPLY_FAILURE = 2;

interface EncodedError {
  type: string;
  message: string;
  fields: Record<string, unknown>;
  statusCode: number;
}

export type EngineReplyMessage =
  | [id: number, status: typeof REPLY_OK, value: unknown]
  | [id: number, status: typeof REPLY_DYNAMODB_ERROR, error: EncodedError]
  | [id: number, status: typeof REPLY_FAILURE, message: string];

export type DispatchOutcome = Awaited<ReturnType<OperationRunner>>;

/** What the engine thread serves to its workers. */
export interface EngineHost {
  partitions: PartitionClient;
  catalog: TableCatalog;
  /** Runs a whole operation a worker handed over, with the engine thread's context, lock and clock. */
  run(operation: string, body: RequestBody, host: string): Promise<DispatchOutcome>;
}

async function perform(engine: EngineHost, call: EngineCall, args: unknown[]): Promise<unknown> {
  const { partitions, catalog } = engine;
  switch (call) {
    case 'write':
      return partitions.write(args[0] as PartitionWrite);
    case 'get': {
      const found = await partitions.get(args[0] as GetRequest, args[1] as ReadOptions);
      return found === undefined ? null : (found.json ?? JSON.stringify(found.item));
    }
    case 'readRange':
      return partitions.readRange(args[0] as RangeReadRequest, args[1] as ReadOptions);
    case 'statistics':
      // An absent index name crossed as JSON null.
      return partitions.statistics(args[0] as TableSchema, (args[1] as string | null) ?? undefined);
    case 'backfillIndex':
      return partitions.backfillIndex(args[0] as TableSchema, args[1] as string);
    case 'dropIndex':
      return partitions.dropIndex(args[0] as TableSchema, args[1] as string);
    case 'dropTable':
      return partitions.dropTable(args[0] as TableSchema);
    case 'catalogGet':
      return (await catalog.get(args[0] as string)) ?? null;
    case 'catalogList':
      return catalog.list();
    case 'catalogPut':
      return catalog.put(args[0] as TableRecord);
    case 'catalogDelete':
      return catalog.delete(args[0] as string);
    case 'allocateSpaceId':
      return catalog.allocateSpaceId();
    case 'dispatch': {
      const outcome = await engine.run(args[0] as string, args[1] as RequestBody, args[2] as string);
      if (!outcome.ok) throw outcome.error;
      return outcome.result instanceof JsonText ? outcome.result.text : JSON.stringify(outcome.result);
    }
  }
}

function failureReply(id: number, error: unknown): EngineReplyMessage {
  if (error instanceof DynamoDbError) {
    return [id, REPLY_DYNAMODB_ERROR, { type: error.type, message: error.message, fields: { ...error.fields }, statusCode: error.statusCode }];
  }
  // A bug on the engine thread: logged where it happened; the worker answers InternalServerError.
  console.error('shoal router: engine call failed:', error);
  return [id, REPLY_FAILURE, error instanceof Error ? error.message : String(error)];
}

/**
 * Messages to one port, posted together once this turn of the event loop is over: a post wakes the
 * other thread, and one wake-up per request cost as much CPU as the socket write of its answer.
 */
class MessageBatcher<T> {
  private readonly port: MessagePort;
  private queued: T[] = [];

  constructor(port: MessagePort) {
    this.port = port;
  }

  add(message: T): void {
    if (this.queued.length === 0) setImmediate(this.flush);
    this.queued.push(message);
  }

  private readonly flush = (): void => {
    const batch = this.queued;
    this.queued = [];
    this.port.postMessage(batch);
  };
}

/** Serves one worker's calls on the engine thread until the port closes. */
export function serveEngineChannel(port: MessagePort, engine: EngineHost): void {
  const replies = new MessageBatcher<EngineReplyMessage>(port);
  const serve = ([id, call, argumentsJson]: EngineCallMessage): void => {
    let result: Promise<unknown>;
    try {
      result = perform(engine, call, JSON.parse(argumentsJson) as unknown[]);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => replies.add([id, REPLY_OK, value]),
      (error: unknown) => replies.add(failureReply(id, error)),
    );
  };
  port.on('message', (calls: EngineCallMessage[]) => {
    for (const call of calls) serve(call);
  });
}

/** An item read through the channel: its text crossed the thread line; parsed and measured only when asked. */
class ChannelFoundItem implements FoundItem {
  readonly json: string;
  private parsed: Item | undefined;
  private measured: number | undefined;

  constructor(json: string) {
    this.json = json;
  }

  get item(): Item {
    return (this.parsed ??= JSON.parse(this.json) as Item);
  }

  get size(): number {
    return (this.measured ??= itemSize(this.item));
  }
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * The worker's side: a PartitionClient and a TableCatalog that call the engine thread, and an
 * `OperationRunner` handing whole operations over.
 *
 * Table records are cached here, since every item request looks its table up. `catalogVersion` is
 * shared memory the engine thread bumps after every durable catalog change and before it answers the
 * request that made it, so a worker reading it sees any change a client can already know about.
 */
export class EngineChannelClient {
  readonly partitions: PartitionClient;
  readonly catalog: TableCatalog;
  private readonly port: MessagePort;
  private readonly catalogVersion: Int32Array;
  private readonly pending = new Map<number, PendingCall>();
  private readonly calls: MessageBatcher<EngineCallMessage>;
  private nextId = 1;
  private closed = false;
  private cachedVersion = -1;
  private cachedRecords = new Map<string, TableRecord>();

  constructor(port: MessagePort, catalogVersion: Int32Array) {
    this.port = port;
    this.catalogVersion = catalogVersion;
    this.calls = new MessageBatcher(port);
    port.on('message', (replies: EngineReplyMessage[]) => {
      for (const [id, status, value] of replies) {
        const call = this.pending.get(id);
        if (call === undefined) continue;
        this.pending.delete(id);
        if (status === REPLY_OK) call.resolve(value);
        else if (status === REPLY_DYNAMODB_ERROR) call.reject(new DynamoDbError(value.type, value.message, value.fields, value.statusCode));
        else call.reject(new Error(`engine thread: ${value}`));
      }
    });
    const call = <T>(name: EngineCall, ...args: unknown[]): Promise<T> => this.call(name, args) as Promise<T>;
    this.partitions = {
      write: (request: PartitionWrite) => call<PartitionWriteResult>('write', request),
      get: async (request: GetRequest, options: ReadOptions) => {
        const json = await call<string | null>('get', request, options);
        return json === null ? undefined : new ChannelFoundItem(json);
      },
      readRange: (request: RangeReadRequest, options: ReadOptions) => call<RangeReadResult>('readRange', request, options),
      statistics: (table: TableSchema, indexName?: string) => call<TableStatistics>('statistics', table, indexName),
      backfillIndex: (table: TableSchema, indexName: string) => call<void>('backfillIndex', table, indexName),
      dropIndex: (table: TableSchema, indexName: string) => call<void>('dropIndex', table, indexName),
      dropTable: (table: TableSchema) => call<void>('dropTable', table),
    };
    this.catalog = {
      get: (name: string) => this.tableRecord(name),
      list: () => call<TableRecord[]>('catalogList'),
      put: (record: TableRecord) => call<void>('catalogPut', record),
      delete: (name: string) => call<void>('catalogDelete', name),
      allocateSpaceId: () => call<number>('allocateSpaceId'),
    };
  }

  /** Hands a whole operation to the engine thread; its answer comes back as JSON text. */
  readonly runOnEngine: OperationRunner = async (
    operation: string,
    body: RequestBody,
    _ctx: EngineContext,
    request: RequestInfo,
  ): Promise<DispatchOutcome> => {
    try {
      const text = (await this.call('dispatch', [operation, body, request.host])) as string;
      return { ok: true, result: new JsonText(text) };
    } catch (error) {
      if (error instanceof DynamoDbError) return { ok: false, error };
      throw error;
    }
  };

  /** Fails the calls still waiting and stops listening. */
  close(): void {
    this.closed = true;
    this.port.close();
    for (const call of this.pending.values()) call.reject(new Error('engine channel closed'));
    this.pending.clear();
  }

  private call(call: EngineCall, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('engine channel closed'));
    const id = this.nextId++;
    const message: EngineCallMessage = [id, call, JSON.stringify(args)];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.calls.add(message);
    });
  }

  private async tableRecord(name: string): Promise<TableRecord | undefined> {
    const version = Atomics.load(this.catalogVersion, 0);
    if (version !== this.cachedVersion) {
      this.cachedVersion = version;
      this.cachedRecords = new Map();
    }
    const records = this.cachedRecords;
    const cached = records.get(name);
    if (cached !== undefined) return cached;
    const record = (await this.call('catalogGet', [name])) as TableRecord | null;
    // Unknown names are not kept (they must not grow the map); a record read under a version since
    // replaced lands in a map no longer used.
    if (record === null) return undefined;
    records.set(name, record);
    return record;
  }
}

/**
 * The engine thread's catalog: every durable change bumps the shared version the workers' caches
 * check, before the change's caller goes on (and so before its client hears of it).
 */
export function versionedCatalog(catalog: TableCatalog, catalogVersion: Int32Array): TableCatalog {
  const changed = (): void => {
    Atomics.add(catalogVersion, 0, 1);
  };
  return {
    get: (name) => catalog.get(name),
    list: () => catalog.list(),
    put: (record) => catalog.put(record).finally(changed),
    delete: (name) => catalog.delete(name).finally(changed),
    allocateSpaceId: () => catalog.allocateSpaceId(),
  };
}
