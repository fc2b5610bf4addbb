/**
 * Table-level provisioned throughput at the router (DynamoDB's PROVISIONED tables): each router
 * admits requests against its share of the table's ReadCapacityUnits / WriteCapacityUnits (and a
 * GSI's reads against the index's own), 1/`routers` of it: routers do not talk to each other, the
 * operator says how many share the cluster. A request is let through while its token bucket holds
 * tokens, taking the least it can cost at once and the rest of its capacity units once served
 * (DynamoDB's rules, as the ConsumedCapacity the router reports), so the bucket may go briefly into debt. On-demand tables pass straight through:
 * only the partitions' own limits apply to them (enforced by the nodes).
 *
 * The nodes leave the region out of the ARN in their throttling reasons: it is filled in here.
 */
import {
  DynamoDbError,
  LEAST_CAPACITY_UNITS,
  TokenBucket,
  readCapacityUnits,
  servedWriteUnits,
  type FoundItem,
  type GetRequest,
  type PartitionClient,
  type PartitionWrite,
  type PartitionWriteResult,
  type ProvisionedThroughput,
  type RangeReadRequest,
  type RangeReadResult,
  type ReadOptions,
  type TableRecord,
  type TableSchema,
  type TableStatistics,
} from '@shoal/model';
import { tableArn } from '../arn.ts';

export interface TableThroughputOptions {
  /** The table's current record (PROVISIONED tables carry their throughput). */
  tableRecord(name: string): TableRecord | undefined;
  /** Routers sharing each table's throughput evenly; default 1. */
  routers?: number;
  /** Seconds of its rate a bucket holds (the burst allowance); default 300, DynamoDB's burst capacity. */
  burstSeconds?: number;
  region?: string;
  /** The clock, in ms; default performance.now. */
  now?: () => number;
}

type Access = 'read' | 'write';

const TABLE_MESSAGE = 'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.';
const INDEX_MESSAGE =
  'The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. ' +
  'Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API';

/** One bucket of a table or index, remade when its provisioned units change. */
interface Gate {
  units: number;
  bucket: TokenBucket;
}

export class TableThroughputGate implements PartitionClient {
  readonly #inner: PartitionClient;
  readonly #options: TableThroughputOptions;
  readonly #routers: number;
  readonly #burstSeconds: number;
  readonly #region: string;
  readonly #now: () => number;
  /** By `table/access` or `table/index/access`. */
  readonly #gates = new Map<string, Gate>();
  /** Requests refused here. */
  throttled = 0;

  constructor(inner: PartitionClient, options: TableThroughputOptions) {
    this.#inner = inner;
    this.#options = options;
    this.#routers = Math.max(1, options.routers ?? 1);
    this.#burstSeconds = options.burstSeconds ?? 300;
    this.#region = options.region ?? 'us-east-1';
    this.#now = options.now ?? (() => performance.now());
  }

  async write(request: PartitionWrite): Promise<PartitionWriteResult> {
    const gates = this.#writeGates(request);
    let result: PartitionWriteResult;
    try {
      result = await this.#inner.write(request);
    } catch (error) {
      throw this.#regional(error);
    }
    // On-demand tables (no gate) cost nothing more here: the served units are counted only to charge.
    if (gates === undefined) return result;
    const now = this.#now();
    const served = servedWriteUnits(request, result);
    for (const { table, gate } of gates) gate.charge((served.get(table.name)?.units ?? 0) - LEAST_CAPACITY_UNITS.write, now);
    return result;
  }

  async get(request: GetRequest, options: ReadOptions): Promise<FoundItem | undefined> {
    const gate = this.#admit(request.table, 'read');
    let found: FoundItem | undefined;
    try {
      found = await this.#inner.get(request, options);
    } catch (error) {
      throw this.#regional(error);
    }
    gate?.charge(readCapacityUnits(found?.size ?? 0, options.consistent) - LEAST_CAPACITY_UNITS.read, this.#now());
    return found;
  }

  async readRange(request: RangeReadRequest, options: ReadOptions): Promise<RangeReadResult> {
    const index = request.indexName === undefined ? undefined : request.table.indexes.find((candidate) => candidate.name === request.indexName);
    const gate = this.#admit(request.table, 'read', index?.kind === 'GSI' ? index.name : undefined);
    let result: RangeReadResult;
    try {
      result = await this.#inner.readRange(request, options);
    } catch (error) {
      throw this.#regional(error);
    }
    gate?.charge(readCapacityUnits(result.bytesRead, options.consistent) - LEAST_CAPACITY_UNITS.read, this.#now());
    return result;
  }

  statistics(table: TableSchema, indexName?: string): Promise<TableStatistics> {
    return this.#inner.statistics(table, indexName);
  }

  backfillIndex(table: TableSchema, indexName: string): Promise<void> {
    return this.#inner.backfillIndex(table, indexName);
  }

  dropIndex(table: TableSchema, indexName: string): Promise<void> {
    return this.#inner.dropIndex(table, indexName);
  }

  dropTable(table: TableSchema): Promise<void> {
    return this.#inner.dropTable(table);
  }

  /** The bucket a request is charged to, once it let the request in; undefined for on-demand tables. */
  #admit(table: TableSchema, access: Access, gsi?: string): TokenBucket | undefined {
    const record = this.#options.tableRecord(table.name);
    if (record === undefined || record.billingMode !== 'PROVISIONED') return undefined;
    const throughput: ProvisionedThroughput | undefined = gsi === undefined ? record.provisioned : record.indexThroughput?.[gsi];
    if (throughput === undefined) return undefined;
    const units = (access === 'read' ? throughput.readCapacityUnits : throughput.writeCapacityUnits) / this.#routers;
    if (!(units > 0)) return undefined;
    const id = gsi === undefined ? `${table.name}/${access}` : `${table.name}/${gsi}/${access}`;
    let gate = this.#gates.get(id);
    if (gate === undefined || gate.units !== units) {
      gate = { units, bucket: new TokenBucket(units, units * this.#burstSeconds) };
      this.#gates.set(id, gate);
    }
    if (gate.bucket.take(LEAST_CAPACITY_UNITS[access], this.#now())) return gate.bucket;
    this.throttled++;
    const resource = gsi === undefined ? tableArn(this.#region, table.name) : `${tableArn(this.#region, table.name)}/index/${gsi}`;
    const kind = gsi === undefined ? 'Table' : 'Index';
    throw new DynamoDbError('ProvisionedThroughputExceededException', gsi === undefined ? TABLE_MESSAGE : INDEX_MESSAGE, {
      ThrottlingReasons: [{ reason: `${kind}${access === 'read' ? 'Read' : 'Write'}ProvisionedThroughputExceeded`, resource }],
    });
  }

  /** The write buckets of the tables a write touches (each once); undefined when none is PROVISIONED. */
  #writeGates(request: PartitionWrite): Array<{ table: TableSchema; gate: TokenBucket }> | undefined {
    const [first] = request.operations;
    const tables =
      request.operations.length === 1 && first !== undefined
        ? [first.table]
        : [...new Map(request.operations.map((operation) => [operation.table.name, operation.table])).values()];
    let gates: Array<{ table: TableSchema; gate: TokenBucket }> | undefined;
    for (const table of tables) {
      const gate = this.#admit(table, 'write');
      if (gate !== undefined) (gates ??= []).push({ table, gate });
    }
    return gates;
  }

  /** A call's failure, with the region of the ARNs in a node's throttling reasons completed. */
  #regional(error: unknown): unknown {
    return error instanceof DynamoDbError ? withRegion(error, this.#region) : error;
  }
}

function withRegion(error: DynamoDbError, region: string): DynamoDbError {
  const reasons = error.fields.ThrottlingReasons;
  if (!Array.isArray(reasons)) return error;
  const filled = reasons.map((reason: unknown) => {
    if (typeof reason !== 'object' || reason === null) return reason;
    const resource = (reason as { resource?: unknown }).resource;
    return typeof resource === 'string' ? { ...reason, resource: resource.replace('arn:aws:dynamodb::', `arn:aws:dynamodb:${region}:`) } : reason;
  });
  return new DynamoDbError(error.type, error.message, { ...error.fields, ThrottlingReasons: filled }, error.statusCode);
}
