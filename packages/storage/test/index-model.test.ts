import { describe, expect, it } from 'vitest';
import { itemSize, type IndexSchema, type Item, type PartitionWrite, type TableSchema } from '@shoal/model';
import { N, S, baseRequest, key, memoryStore, random, readAllPages, table } from './helpers.ts';

const indexes: IndexSchema[] = [
  { name: 'lsiAll', kind: 'LSI', indexId: 41, hashKey: key('pk', 'S'), rangeKey: key('a', 'N'), projection: { type: 'ALL' } },
  { name: 'lsiInclude', kind: 'LSI', indexId: 42, hashKey: key('pk', 'S'), rangeKey: key('b', 'S'), projection: { type: 'INCLUDE', nonKeyAttributes: ['c'] } },
  { name: 'gsiKeys', kind: 'GSI', indexId: 43, hashKey: key('b', 'S'), projection: { type: 'KEYS_ONLY' } },
  { name: 'gsiAll', kind: 'GSI', indexId: 44, hashKey: key('a', 'N'), rangeKey: key('b', 'S'), projection: { type: 'ALL' } },
  { name: 'gsiOnSortKey', kind: 'GSI', indexId: 45, hashKey: key('sk', 'N'), rangeKey: key('pk', 'S'), projection: { type: 'INCLUDE', nonKeyAttributes: ['a', 'zz'] } },
];
const schema: TableSchema = table(40, key('pk', 'S'), key('sk', 'N'), indexes);

function project(index: IndexSchema, item: Item): Item | undefined {
  const keyNames = [index.hashKey.name, ...(index.rangeKey ? [index.rangeKey.name] : [])];
  if (keyNames.some((name) => item[name] === undefined)) return undefined;
  if (index.projection.type === 'ALL') return item;
  const names = new Set(['pk', 'sk', ...keyNames, ...(index.projection.nonKeyAttributes ?? [])]);
  return Object.fromEntries(Object.entries(item).filter(([name]) => names.has(name)));
}

const canonical = (items: Item[]) => items.map((item) => JSON.stringify(Object.entries(item).sort())).sort();

describe('indexes against a model', () => {
  it('match the table after random puts, updates and deletes', async () => {
    const store = await memoryStore();
    const next = random(20261125);
    const pick = <T>(values: T[]): T => values[Math.floor(next() * values.length)];
    const model = new Map<string, Item>();
    const mustApply = async (write: PartitionWrite) => expect(await store.partitions.write(write)).toMatchObject({ applied: true });
    for (let step = 0; step < 600; step++) {
      const pk = S(`p${Math.floor(next() * 4)}`);
      const sk = N(Math.floor(next() * 8) - 3);
      const id = JSON.stringify([pk, sk]);
      const roll = next();
      if (roll < 0.4) {
        const item: Item = { pk, sk };
        if (next() < 0.7) item.a = N(pick(['-1.5', '0', '2', '10']));
        if (next() < 0.7) item.b = S(pick(['x', 'y', 'xy', 'é']));
        if (next() < 0.5) item.c = S('c'.repeat(Math.floor(next() * 20)));
        await mustApply({ operations: [{ table: schema, kind: 'Put', key: { pk, sk }, item }] });
        model.set(id, item);
      } else if (roll < 0.8) {
        const [expression, values]: [string, Item | undefined] = pick<[string, Item | undefined]>([
          ['SET a = :v', { ':v': N(pick(['-1.5', '3', '10'])) }],
          ['SET b = :v', { ':v': S(pick(['x', 'z'])) }],
          ['REMOVE a', undefined],
          ['REMOVE b, c', undefined],
          ['SET c = :v', { ':v': S('changed') }],
          ['SET zz = :v', { ':v': N(1) }],
        ]);
        await mustApply({
          operations: [{ table: schema, kind: 'Update', key: { pk, sk }, expressions: { update: expression, ...(values ? { values } : {}) } }],
        });
        const item: Item = { ...(model.get(id) ?? { pk, sk }) };
        if (expression.startsWith('SET')) item[expression.split(' ')[1]] = values?.[':v'] as Item[string];
        else for (const name of expression.slice('REMOVE '.length).split(', ')) delete item[name];
        model.set(id, item);
      } else {
        await mustApply({ operations: [{ table: schema, kind: 'Delete', key: { pk, sk } }] });
        model.delete(id);
      }
    }
    const expectedItems = [...model.values()];
    const tableItems = (await readAllPages(store.partitions, baseRequest(schema, { limit: 13 }))).flatMap((page) => page.items);
    expect(canonical(tableItems)).toEqual(canonical(expectedItems));
    expect(await store.partitions.statistics(schema)).toEqual({
      itemCount: expectedItems.length,
      sizeBytes: expectedItems.reduce((sum, item) => sum + itemSize(item), 0),
    });
    for (const index of indexes) {
      const expected = expectedItems.flatMap((item): Item[] => {
        const entry = project(index, item);
        return entry ? [entry] : [];
      });
      const pages = await readAllPages(store.partitions, baseRequest(schema, { indexName: index.name, select: 'ALL_PROJECTED_ATTRIBUTES', limit: 7 }));
      expect(canonical(pages.flatMap((page) => page.items)), index.name).toEqual(canonical(expected));
      expect(await store.partitions.statistics(schema, index.name), index.name).toEqual({
        itemCount: expected.length,
        sizeBytes: expected.reduce((sum, item) => sum + itemSize(item), 0),
      });
    }
    await store.close();
  });
});
