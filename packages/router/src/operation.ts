import type { PartitionClient, TableCatalog, TableRecord } from '@shoal/model';

/** What every DynamoDB operation handler works with. */
export interface EngineContext {
  catalog: TableCatalog;
  partitions: PartitionClient;
  /** The ACTIVE (or UPDATING) table, or ResourceNotFoundException. */
  requireTable(name: unknown): Promise<TableRecord>;
  /** Wall clock in milliseconds; injectable for TTL tests. */
  now(): number;
}

/**
 * One DynamoDB operation: takes the parsed JSON body (unvalidated: it may be anything), returns the
 * JSON response body or throws a DynamoDbError.
 */
export type OperationHandler = (body: Record<string, unknown>, ctx: EngineContext) => Promise<unknown>;
