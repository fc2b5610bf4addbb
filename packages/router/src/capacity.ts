import {
  attributeValuesEqual,
  getOwn,
  itemSize,
  readCapacityUnits,
  setOwn,
  writeCapacityUnits,
  type IndexSchema,
  type Item,
  type TableSchema,
} from '@shoal/model';

/**
 * Consumed capacity as DynamoDB reports it: reads in 4 KB units (half for eventually consistent reads),
 * writes in 1 KB units of the larger of the old and new item, plus one write per index entry written or
 * deleted, doubled inside transactions.
 */

export type ReturnConsumedCapacity = 'NONE' | 'TOTAL' | 'INDEXES';

interface Capacity {
  CapacityUnits: number;
}

export interface ConsumedCapacity {
  TableName: string;
  CapacityUnits: number;
  Table?: Capacity;
  LocalSecondaryIndexes?: Record<string, Capacity>;
  GlobalSecondaryIndexes?: Record<string, Capacity>;
}

/** Units one request consumed on a table and on each of its indexes. */
export class CapacityTally {
  readonly tableName: string;
  private tableUnits = 0;
  private readonly indexUnits = new Map<string, { kind: 'LSI' | 'GSI'; units: number }>();

  constructor(tableName: string) {
    this.tableName = tableName;
  }

  addTable(units: number): void {
    this.tableUnits += units;
  }

  addIndex(index: IndexSchema, units: number): void {
    const entry = this.indexUnits.get(index.name) ?? { kind: index.kind, units: 0 };
    entry.units += units;
    this.indexUnits.set(index.name, entry);
  }

  /** Adds all of another tally of the same table (a transaction sums its actions). */
  merge(other: CapacityTally): void {
    this.tableUnits += other.tableUnits;
    for (const [name, entry] of other.indexUnits) {
      const mine = this.indexUnits.get(name) ?? { kind: entry.kind, units: 0 };
      mine.units += entry.units;
      this.indexUnits.set(name, mine);
    }
  }

  scale(factor: number): void {
    this.tableUnits *= factor;
    for (const entry of this.indexUnits.values()) entry.units *= factor;
  }

  report(mode: ReturnConsumedCapacity): ConsumedCapacity | undefined {
    if (mode === 'NONE') return undefined;
    let total = this.tableUnits;
    for (const entry of this.indexUnits.values()) total += entry.units;
    const consumed: ConsumedCapacity = { TableName: this.tableName, CapacityUnits: total };
    if (mode === 'INDEXES') {
      consumed.Table = { CapacityUnits: this.tableUnits };
      for (const [name, entry] of this.indexUnits) {
        const key = entry.kind === 'LSI' ? 'LocalSecondaryIndexes' : 'GlobalSecondaryIndexes';
        setOwn((consumed[key] ??= {}), name, { CapacityUnits: entry.units });
      }
    }
    return consumed;
  }
}

/** Capacity of one read of `bytes` from the table or from one index. */
export function readTally(table: TableSchema, bytes: number, consistent: boolean, index?: IndexSchema): CapacityTally {
  const tally = new CapacityTally(table.name);
  const units = readCapacityUnits(bytes, consistent);
  if (index) tally.addIndex(index, units);
  else tally.addTable(units);
  return tally;
}

/**
 * The index entry an item has in an index: the table and index keys plus the projected attributes, or
 * undefined when the item lacks an index key attribute (sparse indexes skip such items).
 */
function indexEntry(table: TableSchema, index: IndexSchema, item: Item): Item | undefined {
  const indexKeys = index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey];
  for (const key of indexKeys) {
    const value = getOwn(item, key.name);
    if (value === undefined || !(key.type in value)) return undefined;
  }
  if (index.projection.type === 'ALL') return item;
  const names = new Set<string>([table.hashKey.name, ...indexKeys.map((key) => key.name)]);
  if (table.rangeKey) names.add(table.rangeKey.name);
  if (index.projection.type === 'INCLUDE') for (const name of index.projection.nonKeyAttributes ?? []) names.add(name);
  const entry: Item = {};
  for (const name of names) {
    const value = getOwn(item, name);
    if (value !== undefined) setOwn(entry, name, value);
  }
  return entry;
}

function sameEntry(a: Item, b: Item): boolean {
  return attributeValuesEqual({ M: a }, { M: b });
}

/** Both entries exist, so their index key attributes are present. */
function sameIndexKey(index: IndexSchema, a: Item, b: Item): boolean {
  const keys = index.rangeKey ? [index.hashKey, index.rangeKey] : [index.hashKey];
  return keys.every((key) => attributeValuesEqual(a[key.name], b[key.name]));
}

/**
 * Capacity of one item write. The table pays for the larger of the old and new item (at least one unit,
 * even when nothing was there to delete); each index pays one write per entry put and one per entry
 * deleted, a changed index key costing both.
 */
export function writeTally(table: TableSchema, oldItem: Item | undefined, newItem: Item | undefined): CapacityTally {
  const tally = new CapacityTally(table.name);
  const oldSize = oldItem ? itemSize(oldItem) : 0;
  const newSize = newItem ? itemSize(newItem) : 0;
  tally.addTable(writeCapacityUnits(Math.max(oldSize, newSize)));
  for (const index of table.indexes) {
    const oldEntry = oldItem && indexEntry(table, index, oldItem);
    const newEntry = newItem && indexEntry(table, index, newItem);
    if (oldEntry && newEntry) {
      if (!sameIndexKey(index, oldEntry, newEntry)) {
        tally.addIndex(index, writeCapacityUnits(itemSize(oldEntry)) + writeCapacityUnits(itemSize(newEntry)));
      } else if (!sameEntry(oldEntry, newEntry)) {
        tally.addIndex(index, writeCapacityUnits(Math.max(itemSize(oldEntry), itemSize(newEntry))));
      }
    } else if (oldEntry) {
      tally.addIndex(index, writeCapacityUnits(itemSize(oldEntry)));
    } else if (newEntry) {
      tally.addIndex(index, writeCapacityUnits(itemSize(newEntry)));
    }
  }
  return tally;
}

/** One ConsumedCapacity entry per table, for the operations that touch several tables. */
export function reportPerTable(tallies: Iterable<CapacityTally>, mode: ReturnConsumedCapacity): ConsumedCapacity[] | undefined {
  if (mode === 'NONE') return undefined;
  const byTable = new Map<string, CapacityTally>();
  for (const tally of tallies) {
    const sum = byTable.get(tally.tableName) ?? new CapacityTally(tally.tableName);
    sum.merge(tally);
    byTable.set(tally.tableName, sum);
  }
  return [...byTable.values()].map((sum) => sum.report(mode) as ConsumedCapacity);
}
