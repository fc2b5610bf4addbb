import { describe, expect, it } from 'vitest';
import { spaceKeyAttributes, type IndexSchema, type KeyAttribute, type TableSchema } from '../src/schema.ts';

const pk: KeyAttribute = { name: 'pk', type: 'S' };
const sk: KeyAttribute = { name: 'sk', type: 'N' };
const lsiSort: KeyAttribute = { name: 'when', type: 'S' };
const gsiHash: KeyAttribute = { name: 'owner', type: 'S' };
const gsiSort: KeyAttribute = { name: 'rank', type: 'N' };

const lsi: IndexSchema = { name: 'byWhen', kind: 'LSI', indexId: 11, hashKey: pk, rangeKey: lsiSort, projection: { type: 'ALL' } };
const gsi: IndexSchema = { name: 'byOwner', kind: 'GSI', indexId: 12, hashKey: gsiHash, rangeKey: gsiSort, projection: { type: 'KEYS_ONLY' } };
const hashOnlyGsi: IndexSchema = { name: 'owners', kind: 'GSI', indexId: 13, hashKey: gsiHash, projection: { type: 'ALL' } };
const table: TableSchema = { name: 't', tableId: 10, hashKey: pk, rangeKey: sk, indexes: [lsi, gsi, hashOnlyGsi] };
const hashOnlyTable: TableSchema = { name: 'h', tableId: 20, hashKey: pk, indexes: [] };

describe('spaceKeyAttributes', () => {
  it('is the table key for the table space', () => {
    expect(spaceKeyAttributes(table)).toEqual([pk, sk]);
    expect(spaceKeyAttributes(hashOnlyTable)).toEqual([pk]);
  });

  it('puts an LSI sort key between the shared hash and the table sort key', () => {
    expect(spaceKeyAttributes(table, lsi)).toEqual([pk, lsiSort, sk]);
  });

  it('puts the whole table key after a GSI key', () => {
    expect(spaceKeyAttributes(table, gsi)).toEqual([gsiHash, gsiSort, pk, sk]);
    expect(spaceKeyAttributes(table, hashOnlyGsi)).toEqual([gsiHash, pk, sk]);
    expect(spaceKeyAttributes(hashOnlyTable, hashOnlyGsi)).toEqual([gsiHash, pk]);
  });
});
