/** fast-check arbitraries of the model's partition requests, for the hand-written codecs' tests. */
import fc from 'fast-check';
import type * as model from '@shoal/model';

/** Any text: multi-byte characters, empty strings and lone surrogates (which UTF-8 writes as U+FFFD) included. */
export const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('', 'é', '\ud800', 'a\udc00b', '😀'));
export const name = fc.oneof(text, fc.string({ minLength: 1, maxLength: 6 }));
export const scalar: fc.Arbitrary<model.AttributeValue> = fc.oneof(
  fc.record({ S: text }),
  fc.record({ N: fc.integer().map(String) }),
  fc.record({ B: fc.base64String({ maxLength: 12 }) }),
  fc.record({ BOOL: fc.boolean() }),
  fc.record({ M: fc.dictionary(name, fc.record({ S: text }), { maxKeys: 2 }) }),
);
export const item: fc.Arbitrary<model.Item> = fc.dictionary(name, scalar, { minKeys: 1, maxKeys: 4 });
/** A large item: lengths past one and two varint bytes. */
export const bigItem = fc.integer({ min: 100, max: 70_000 }).map((size): model.Item => ({ pk: { S: 'k' }, payload: { S: 'x'.repeat(size) } }));
export const keyAttribute: fc.Arbitrary<model.KeyAttribute> = fc.record({ name, type: fc.constantFrom('S' as const, 'N' as const, 'B' as const) });
export const projection: fc.Arbitrary<model.IndexProjection> = fc.oneof(
  fc.record({ type: fc.constantFrom('ALL' as const, 'KEYS_ONLY' as const) }),
  fc.record({ type: fc.constant('INCLUDE' as const), nonKeyAttributes: fc.array(name, { maxLength: 3 }) }),
);
export const index: fc.Arbitrary<model.IndexSchema> = fc.record(
  {
    name,
    kind: fc.constantFrom('LSI' as const, 'GSI' as const),
    indexId: fc.oneof(fc.constant(0), fc.nat(), fc.constant(2 ** 32 - 1)),
    hashKey: keyAttribute,
    rangeKey: keyAttribute,
    projection,
  },
  { requiredKeys: ['name', 'kind', 'indexId', 'hashKey', 'projection'] },
);
export const table: fc.Arbitrary<model.TableSchema> = fc.record(
  {
    name,
    tableId: fc.oneof(fc.constant(0), fc.nat(), fc.constant(2 ** 32 - 1)),
    hashKey: keyAttribute,
    rangeKey: keyAttribute,
    indexes: fc.array(index, { maxLength: 3 }),
  },
  { requiredKeys: ['name', 'tableId', 'hashKey', 'indexes'] },
);
export const expressions: fc.Arbitrary<model.ExpressionInput> = fc.record(
  {
    condition: text,
    update: text,
    names: fc.dictionary(name, text, { maxKeys: 3 }),
    values: fc.dictionary(name, scalar, { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
export const operation = (tables: fc.Arbitrary<model.TableSchema>): fc.Arbitrary<model.WriteOperation> =>
  fc.record(
    {
      table: tables,
      kind: fc.constantFrom('Put' as const, 'Update' as const, 'Delete' as const, 'ConditionCheck' as const),
      key: item,
      item: fc.oneof(item, bigItem),
      expressions,
    },
    { requiredKeys: ['table', 'kind', 'key'] },
  );
export const write = (tables: fc.Arbitrary<model.TableSchema>): fc.Arbitrary<model.PartitionWrite> =>
  fc.record({ operations: fc.array(operation(tables), { minLength: 1, maxLength: 3 }), returnItems: fc.boolean() }, { requiredKeys: ['operations'] });
export const uint64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), fc.constant(2n ** 64n - 1n), fc.constant(127n), fc.constant(128n));
export const target = fc.record({ partitionId: uint64, epoch: uint64 });
export const readOptions = fc.record({ consistent: fc.boolean(), minAppliedIndex: uint64 }, { requiredKeys: ['consistent'] });
export const get = (tables: fc.Arbitrary<model.TableSchema>): fc.Arbitrary<model.GetRequest> => fc.record({ table: tables, key: item });
