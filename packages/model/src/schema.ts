import type { KeyAttributeType } from './attribute-value.ts';

/** A key attribute of a table or an index: its name and scalar type. */
export interface KeyAttribute {
  name: string;
  type: KeyAttributeType;
}

export type ProjectionType = 'ALL' | 'KEYS_ONLY' | 'INCLUDE';

export interface IndexProjection {
  type: ProjectionType;
  /** Only for INCLUDE. */
  nonKeyAttributes?: string[];
}

/** A secondary index. LSIs share the table's partition key; GSIs have their own. */
export interface IndexSchema {
  name: string;
  kind: 'LSI' | 'GSI';
  /** The key space id of the index's entries (see key encoding). */
  indexId: number;
  hashKey: KeyAttribute;
  rangeKey?: KeyAttribute;
  projection: IndexProjection;
}

/**
 * What the partition state machine needs to know about a table: its key space and key schema, and the
 * indexes it must maintain. Commands carry it, so every replica applies a command the same way.
 */
export interface TableSchema {
  name: string;
  /** The key space id of the table's items. */
  tableId: number;
  hashKey: KeyAttribute;
  rangeKey?: KeyAttribute;
  indexes: IndexSchema[];
}

/**
 * The key attributes that make up the key of one space, in key order: the first is the hash, the
 * rest are the sort values. An index's entries carry the table's key after its own so that two items
 * with equal index keys stay distinct.
 */
export function spaceKeyAttributes(table: TableSchema, index?: IndexSchema): KeyAttribute[] {
  const tableKey = table.rangeKey ? [table.hashKey, table.rangeKey] : [table.hashKey];
  if (!index) return tableKey;
  const indexKey = index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey];
  // An LSI shares the table's hash, which is therefore not repeated after the index's sort key.
  return index.kind === 'LSI' ? [...indexKey, ...tableKey.slice(1)] : [...indexKey, ...tableKey];
}
