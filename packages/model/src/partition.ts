import type { AttributeValue, Item } from './attribute-value.ts';
import type { TableSchema } from './schema.ts';

/**
 * The contract between the router and the partitions that hold the data. On one node it is served
 * in-process by `@shoal/storage`; in the cluster, over gRPC by the storage nodes. Everything in it is
 * plain data so it can cross the wire and enter a Raft log unchanged.
 */

/** Expression strings with their placeholders, exactly as the client sent them. */
export interface ExpressionInput {
  condition?: string;
  update?: string;
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

export type WriteKind = 'Put' | 'Update' | 'Delete' | 'ConditionCheck';

export interface WriteOperation {
  /** The table written; one write may span tables (a transaction), so each operation names its own. */
  table: TableSchema;
  kind: WriteKind;
  /** The primary key of the item written (for Put: the key attributes of `item`). */
  key: Item;
  /** Put only: the whole new item. */
  item?: Item;
  /** Condition (all kinds) and update (Update only) expressions. */
  expressions?: ExpressionInput;
}

/** Operations applied atomically, all or none: one item for PutItem, many for a transaction. */
export interface PartitionWrite {
  operations: WriteOperation[];
  /** Return the old and new images of each item in the outcomes. */
  returnItems?: boolean;
}

export type WriteOutcome =
  | { status: 'ok'; oldItem?: Item; newItem?: Item }
  /** The condition was false; `item` is the current item (for ReturnValuesOnConditionCheckFailure). */
  | { status: 'conditionFailed'; item?: Item }
  /** The operation cannot apply to the current item (e.g. ADD to a string); `message` is DynamoDB's. */
  | { status: 'invalid'; message: string }
  /** Another transaction holds the item (an intent of a cross-partition transaction); nothing was applied. */
  | { status: 'transactionConflict' };

export interface PartitionWriteResult {
  /** True when every outcome is `ok` and the writes were applied; false when nothing was applied. */
  applied: boolean;
  outcomes: WriteOutcome[];
}

export interface ReadOptions {
  /** Linearizable read from the leader; otherwise any replica's applied state. */
  consistent: boolean;
}

export interface GetRequest {
  table: TableSchema;
  key: Item;
}

export type SortKeyOperator = 'EQ' | 'LT' | 'LE' | 'GT' | 'GE' | 'BETWEEN' | 'BEGINS_WITH';

export interface SortKeyCondition {
  op: SortKeyOperator;
  /** One value, two for BETWEEN. */
  values: AttributeValue[];
}

export type Select = 'ALL_ATTRIBUTES' | 'ALL_PROJECTED_ATTRIBUTES' | 'SPECIFIC_ATTRIBUTES' | 'COUNT';

/** A Query (with `hashValue`) or a Scan (without) over the table or one of its indexes. */
export interface RangeReadRequest {
  table: TableSchema;
  /** Name of an LSI or GSI; absent for the table itself. */
  indexName?: string;
  /** Query: the partition key value of the table or index. Absent for Scan. */
  hashValue?: AttributeValue;
  sortCondition?: SortKeyCondition;
  /** ScanIndexForward; Scan is always forward. */
  forward: boolean;
  exclusiveStartKey?: Item;
  /** The most items to evaluate (DynamoDB's Limit counts items read, before the filter). */
  limit?: number;
  /** Stop after reading this many bytes of items (DynamoDB's 1 MB page). */
  maxBytes: number;
  /** Parallel scan: this segment of `total` equal slices of the hash space. */
  segment?: { segment: number; total: number };
  select: Select;
  filter?: string;
  projection?: string;
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

export interface RangeReadResult {
  items: Item[];
  /** Items that matched the filter (equals items.length unless Select is COUNT). */
  count: number;
  /** Items evaluated before the filter. */
  scannedCount: number;
  lastEvaluatedKey?: Item;
  /** Sum of the sizes of the items read, for consumed capacity. */
  bytesRead: number;
}

export interface TableStatistics {
  itemCount: number;
  sizeBytes: number;
}

/** An item read by key. */
export interface FoundItem {
  item: Item;
  /** Its size in bytes, as DynamoDB counts it. */
  size: number;
  /**
   * Its JSON text, when the store holds it as such: canonical (numbers were normalized when written),
   * so a response may carry it as is instead of serializing the item again.
   */
  json?: string;
}

export interface PartitionClient {
  write(request: PartitionWrite): Promise<PartitionWriteResult>;
  /** The item and its size in bytes, or undefined when absent. */
  get(request: GetRequest, options: ReadOptions): Promise<FoundItem | undefined>;
  readRange(request: RangeReadRequest, options: ReadOptions): Promise<RangeReadResult>;
  /** Item count and size of a table or of one of its indexes. */
  statistics(table: TableSchema, indexName?: string): Promise<TableStatistics>;
  /** Build a newly added index from the table's items. */
  backfillIndex(table: TableSchema, indexName: string): Promise<void>;
  /** Delete every entry of one index of a table. */
  dropIndex(table: TableSchema, indexName: string): Promise<void>;
  /** Delete every item of a table and of its indexes. */
  dropTable(table: TableSchema): Promise<void>;
}
