import type { TableSchema } from './schema.ts';

export type TableStatus = 'CREATING' | 'ACTIVE' | 'UPDATING' | 'DELETING';
export type BillingMode = 'PROVISIONED' | 'PAY_PER_REQUEST';

export interface ProvisionedThroughput {
  readCapacityUnits: number;
  writeCapacityUnits: number;
}

/** Everything Shoal keeps about a table besides its items. */
export interface TableRecord {
  schema: TableSchema;
  status: TableStatus;
  /** Seconds since the epoch, as DynamoDB's CreationDateTime. */
  createdAt: number;
  billingMode: BillingMode;
  /** Table throughput (PROVISIONED) and each GSI's, by index name. */
  provisioned?: ProvisionedThroughput;
  indexThroughput?: Record<string, ProvisionedThroughput>;
  /** GSIs still being backfilled, by name. */
  backfilling?: string[];
  ttl?: { attributeName: string; enabled: boolean };
  tags: Record<string, string>;
}

/** Where table definitions live: a local LevelDB on one node, the meta group in the cluster. */
export interface TableCatalog {
  get(name: string): Promise<TableRecord | undefined>;
  /** All tables, sorted by name. */
  list(): Promise<TableRecord[]>;
  put(record: TableRecord): Promise<void>;
  delete(name: string): Promise<void>;
  /** A key space id never handed out before, for a new table or index. */
  allocateSpaceId(): Promise<number>;
}
