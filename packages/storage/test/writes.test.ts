import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { itemSize, type Item, type PartitionWrite } from '@shoal/model';
import type { LocalStore } from '../src/index.ts';
import { N, S, key, memoryStore, put, table } from './helpers.ts';

const schema = table(1, key('pk', 'S'), key('sk', 'N'));

describe('partition writes', () => {
  let store: LocalStore;
  beforeEach(async () => {
    store = await memoryStore();
  });
  afterEach(async () => {
    await store.close();
  });

  const get = async (pk: string, sk: number): Promise<Item | undefined> =>
    (await store.partitions.get({ table: schema, key: { pk: S(pk), sk: N(sk) } }, { consistent: true }))?.item;

  it('puts, gets with the item size, overwrites and deletes', async () => {
    await put(store.partitions, schema, { pk: S('a'), sk: N(1), v: S('x') });
    expect(await store.partitions.get({ table: schema, key: { pk: S('a'), sk: N(1) } }, { consistent: false })).toEqual({
      item: { pk: S('a'), sk: N(1), v: S('x') },
      size: 'pk'.length + 1 + 'sk'.length + 2 + 'v'.length + 1,
      json: '{"pk":{"S":"a"},"sk":{"N":"1"},"v":{"S":"x"}}',
    });
    await put(store.partitions, schema, { pk: S('a'), sk: N(1), v: S('y') });
    expect(await get('a', 1)).toEqual({ pk: S('a'), sk: N(1), v: S('y') });
    const result = await store.partitions.write({
      operations: [{ table: schema, kind: 'Delete', key: { pk: S('a'), sk: N(1) } }],
      returnItems: true,
    });
    expect(result).toEqual({ applied: true, outcomes: [{ status: 'ok', oldItem: { pk: S('a'), sk: N(1), v: S('y') } }] });
    expect(await get('a', 1)).toBeUndefined();
  });

  it('treats equal numbers in different spellings as the same key', async () => {
    await put(store.partitions, schema, { pk: S('a'), sk: N('1.50'), v: S('x') });
    expect(await store.partitions.get({ table: schema, key: { pk: S('a'), sk: N('15E-1') } }, { consistent: true })).toBeDefined();
  });

  it('evaluates conditions against the current item and reports it on failure', async () => {
    const create = (value: string): PartitionWrite => ({
      operations: [{
        table: schema,
        kind: 'Put',
        key: { pk: S('c'), sk: N(1) },
        item: { pk: S('c'), sk: N(1), v: S(value) },
        expressions: { condition: 'attribute_not_exists(pk)' },
      }],
    });
    expect((await store.partitions.write(create('first'))).applied).toBe(true);
    expect(await store.partitions.write(create('second'))).toEqual({
      applied: false,
      outcomes: [{ status: 'conditionFailed', item: { pk: S('c'), sk: N(1), v: S('first') } }],
    });
    expect(await get('c', 1)).toEqual({ pk: S('c'), sk: N(1), v: S('first') });
  });

  it('applies all operations of a write or none', async () => {
    await put(store.partitions, schema, { pk: S('t'), sk: N(3), v: N(0) });
    const operations: PartitionWrite['operations'] = [
      { table: schema, kind: 'Put', key: { pk: S('t'), sk: N(1) }, item: { pk: S('t'), sk: N(1) } },
      {
        table: schema,
        kind: 'Update',
        key: { pk: S('t'), sk: N(2) },
        expressions: { update: 'SET v = :v', values: { ':v': N(5) } },
      },
      {
        table: schema,
        kind: 'ConditionCheck',
        key: { pk: S('t'), sk: N(3) },
        expressions: { condition: 'v = :expected', values: { ':expected': N(1) } },
      },
      { table: schema, kind: 'Delete', key: { pk: S('t'), sk: N(4) }, expressions: { condition: 'attribute_exists(pk)' } },
    ];
    const cancelled = await store.partitions.write({ operations, returnItems: true });
    expect(cancelled).toEqual({
      applied: false,
      outcomes: [
        { status: 'ok' },
        { status: 'ok' },
        { status: 'conditionFailed', item: { pk: S('t'), sk: N(3), v: N(0) } },
        { status: 'conditionFailed' },
      ],
    });
    expect(await get('t', 1)).toBeUndefined();
    expect(await get('t', 2)).toBeUndefined();
    expect(await store.partitions.statistics(schema)).toEqual({ itemCount: 1, sizeBytes: itemSize({ pk: S('t'), sk: N(3), v: N(0) }) });

    const applied = await store.partitions.write({ operations: operations.slice(0, 2), returnItems: true });
    expect(applied).toEqual({
      applied: true,
      outcomes: [
        { status: 'ok', newItem: { pk: S('t'), sk: N(1) } },
        { status: 'ok', newItem: { pk: S('t'), sk: N(2), v: N(5) } },
      ],
    });
    expect(await get('t', 2)).toEqual({ pk: S('t'), sk: N(2), v: N(5) });
  });

  it('applies a write spanning two tables all or none, indexes and statistics included', async () => {
    const other = table(2, key('id', 'S'), undefined, [
      { name: 'byV', kind: 'GSI', indexId: 3, hashKey: key('v', 'S'), projection: { type: 'KEYS_ONLY' } },
    ]);
    await put(store.partitions, other, { id: S('guard'), v: S('closed') });
    const guarded = (expected: string): PartitionWrite => ({
      operations: [
        { table: schema, kind: 'Put', key: { pk: S('x'), sk: N(1) }, item: { pk: S('x'), sk: N(1) } },
        { table: other, kind: 'Put', key: { id: S('new') }, item: { id: S('new'), v: S('w') } },
        {
          table: other,
          kind: 'ConditionCheck',
          key: { id: S('guard') },
          expressions: { condition: 'v = :v', values: { ':v': S(expected) } },
        },
      ],
    });
    const before = { items: await store.partitions.statistics(schema), index: await store.partitions.statistics(other, 'byV') };
    expect(await store.partitions.write(guarded('open'))).toEqual({
      applied: false,
      outcomes: [{ status: 'ok' }, { status: 'ok' }, { status: 'conditionFailed', item: { id: S('guard'), v: S('closed') } }],
    });
    expect(await get('x', 1)).toBeUndefined();
    expect(await store.partitions.get({ table: other, key: { id: S('new') } }, { consistent: true })).toBeUndefined();
    expect({ items: await store.partitions.statistics(schema), index: await store.partitions.statistics(other, 'byV') }).toEqual(before);

    expect((await store.partitions.write(guarded('closed'))).applied).toBe(true);
    expect(await get('x', 1)).toEqual({ pk: S('x'), sk: N(1) });
    expect((await store.partitions.get({ table: other, key: { id: S('new') } }, { consistent: true }))?.item).toEqual({ id: S('new'), v: S('w') });
    expect(await store.partitions.statistics(schema)).toEqual({ itemCount: 1, sizeBytes: itemSize({ pk: S('x'), sk: N(1) }) });
    expect(await store.partitions.statistics(other, 'byV')).toEqual({
      itemCount: 2,
      sizeBytes: itemSize({ id: S('guard'), v: S('closed') }) + itemSize({ id: S('new'), v: S('w') }),
    });
  });

  it('lets later operations of one write see the earlier ones', async () => {
    const result = await store.partitions.write({
      operations: [
        { table: schema, kind: 'Put', key: { pk: S('s'), sk: N(1) }, item: { pk: S('s'), sk: N(1), n: N(1) } },
        { table: schema, kind: 'Update', key: { pk: S('s'), sk: N(1) }, expressions: { update: 'ADD n :one', values: { ':one': N(1) } } },
      ],
    });
    expect(result.applied).toBe(true);
    expect(await get('s', 1)).toEqual({ pk: S('s'), sk: N(1), n: N(2) });
    expect(await store.partitions.statistics(schema)).toEqual({ itemCount: 1, sizeBytes: itemSize({ pk: S('s'), sk: N(1), n: N(2) }) });
  });

  it('reports updates that cannot apply as invalid, with DynamoDB messages', async () => {
    await put(store.partitions, schema, { pk: S('u'), sk: N(1), s: S('text'), big: S('x'.repeat(300_000)) });
    const update = (expression: string, values: Item) =>
      store.partitions.write({
        operations: [{ table: schema, kind: 'Update', key: { pk: S('u'), sk: N(1) }, expressions: { update: expression, values } }],
      });
    const wrongType = await update('ADD s :one', { ':one': N(1) });
    expect(wrongType.applied).toBe(false);
    expect(wrongType.outcomes[0]).toMatchObject({ status: 'invalid' });

    const tooBig = await update('SET more = :more', { ':more': S('y'.repeat(150_000)) });
    expect(tooBig).toEqual({
      applied: false,
      outcomes: [{ status: 'invalid', message: 'Item size to update has exceeded the maximum allowed size' }],
    });

    const keyChange = await update('SET sk = :sk', { ':sk': N(2) });
    expect(keyChange.applied).toBe(false);
    expect(keyChange.outcomes[0]).toMatchObject({ status: 'invalid', message: expect.stringContaining('part of the key') });
    expect(await get('u', 1)).toMatchObject({ s: S('text') });
  });

  it('creates an item with only its key on an update without expression', async () => {
    const result = await store.partitions.write({ operations: [{ table: schema, kind: 'Update', key: { pk: S('k'), sk: N(1) } }] });
    expect(result.applied).toBe(true);
    expect(await get('k', 1)).toEqual({ pk: S('k'), sk: N(1) });
  });

  it('serializes concurrent conditional increments', async () => {
    await put(store.partitions, schema, { pk: S('counter'), sk: N(0), n: N(0) });
    const increment = async (): Promise<void> => {
      // Read-modify-write with optimistic concurrency: retry while another write got there first.
      for (let attempt = 0; attempt < 1000; attempt++) {
        const current = await get('counter', 0);
        const n = Number((current?.n as { N: string }).N);
        const result = await store.partitions.write({
          operations: [{
            table: schema,
            kind: 'Update',
            key: { pk: S('counter'), sk: N(0) },
            expressions: { update: 'SET n = :next', condition: 'n = :seen', values: { ':next': N(n + 1), ':seen': N(n) } },
          }],
        });
        if (result.applied) return;
      }
      throw new Error('increment kept failing');
    };
    await Promise.all(Array.from({ length: 200 }, increment));
    expect(await get('counter', 0)).toEqual({ pk: S('counter'), sk: N(0), n: N(200) });
  });

  it('applies 200 concurrent ADDs exactly once each', async () => {
    const add = () =>
      store.partitions.write({
        operations: [{ table: schema, kind: 'Update', key: { pk: S('adds'), sk: N(0) }, expressions: { update: 'ADD n :one', values: { ':one': N(1) } } }],
      });
    const results = await Promise.all(Array.from({ length: 200 }, add));
    expect(results.every((result) => result.applied)).toBe(true);
    expect(await get('adds', 0)).toEqual({ pk: S('adds'), sk: N(0), n: N(200) });
  });

  it('rejects a key that does not match the schema', async () => {
    const result = await store.partitions.write({ operations: [{ table: schema, kind: 'Delete', key: { pk: S('x') } }] });
    expect(result).toEqual({ applied: false, outcomes: [{ status: 'invalid', message: 'The provided key element does not match the schema' }] });
    await expect(store.partitions.get({ table: schema, key: { pk: S('x') } }, { consistent: true })).rejects.toMatchObject({
      type: 'ValidationException',
    });
  });
});
