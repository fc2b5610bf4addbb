import type { IndexSchema, TableSchema } from './schema.ts';

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
  /**
   * Set by a catalog that others may change concurrently (the cluster's meta group): grows with every
   * change of the record, and a change is made only on the revision it was computed from.
   */
  revision?: number;
}

/** A table change: the next record computed from the current one, or undefined for no change. */
export type TableChange = (current: TableRecord) => TableRecord | undefined | Promise<TableRecord | undefined>;

/** Where table definitions live: a local LevelDB on one node, the meta group in the cluster. */
export interface TableCatalog {
  get(name: string): Promise<TableRecord | undefined>;
  /** All tables, sorted by name. */
  list(): Promise<TableRecord[]>;
  /** A new table's record; the caller checked that no table has its name. */
  create(record: TableRecord): Promise<void>;
  /**
   * Changes a table's record through `change`, given the current record. Where the record may change
   * elsewhere meanwhile (other routers), the write is a compare-and-set on the record's revision and
   * `change` runs again on the newer record, a bounded number of times (then DynamoDB's
   * ResourceInUseException, as for a table being updated). Resolves with the record stored, or
   * undefined when `change` changed nothing. No such table: ResourceNotFoundException.
   */
  update(name: string, change: TableChange): Promise<TableRecord | undefined>;
  delete(name: string): Promise<void>;
  /** A key space id never handed out before, for a new table or index. */
  allocateSpaceId(): Promise<number>;
}

/** What a key space holds: a table's items, or the entries of one of its indexes. */
export interface SpaceOwner {
  record: TableRecord;
  /** The index whose entries the space holds; absent for the table's own space. */
  index?: IndexSchema;
}

/**
 * Every space of the given tables by space id: each table's, and each index's. In the cluster a
 * partition's `tableId` is one of these: a table's, or a GSI's (whose entries have partitions of
 * their own).
 */
export function spaceOwners(records: Iterable<TableRecord>): Map<number, SpaceOwner> {
  const owners = new Map<number, SpaceOwner>();
  for (const record of records) {
    owners.set(record.schema.tableId, { record });
    for (const index of record.schema.indexes) owners.set(index.indexId, { record, index });
  }
  return owners;
}

/** How operators see a space: the table's name, `table/index` for an index. */
export function spaceLabel(owner: SpaceOwner): string {
  return owner.index === undefined ? owner.record.schema.name : `${owner.record.schema.name}/${owner.index.name}`;
}
