/** fast-check arbitraries of the model's partition requests and results, for the hand-written codecs' tests. */
import fc from 'fast-check';
import type * as model from '@shoal/model';
import { ErrorDetailSchema, RpcError, Status, type GetResult } from '../src/index.ts';

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

// Answers

export const writeOutcome: fc.Arbitrary<model.WriteOutcome> = fc.oneof(
  fc.record({ status: fc.constant('ok' as const), oldItem: item, newItem: item }, { requiredKeys: ['status'] }),
  fc.record({ status: fc.constant('conditionFailed' as const), item }, { requiredKeys: ['status'] }),
  fc.record({ status: fc.constant('invalid' as const), message: fc.oneof(fc.constant(''), fc.string({ unit: 'binary', maxLength: 20 })) }),
  fc.constant({ status: 'transactionConflict' as const }),
);
export const writeResult: fc.Arbitrary<model.PartitionWriteResult> = fc.record({ applied: fc.boolean(), outcomes: fc.array(writeOutcome, { maxLength: 3 }) });
export const getResult: fc.Arbitrary<GetResult> = fc.option(
  fc.record({ item, size: fc.oneof(fc.constant(0), fc.nat(400_000)), json: fc.constant(true) }, { requiredKeys: ['item', 'size'] }).map(
    ({ item: found, size, json }): model.FoundItem => (json === true ? { item: found, size, json: JSON.stringify(found) } : { item: found, size }),
  ),
  { nil: undefined },
);
export const callError: fc.Arbitrary<RpcError> = fc.oneof(
  fc.tuple(fc.constantFrom(Status.INVALID_ARGUMENT, Status.RESOURCE_EXHAUSTED, Status.OK), fc.string({ maxLength: 20 })).map(([code, message]) => new RpcError(code, message)),
  fc.tuple(uint64, fc.string({ maxLength: 10 })).map(([partitionId, message]) =>
    RpcError.withDetail(Status.FAILED_PRECONDITION, message, ErrorDetailSchema, { kind: { case: 'replicaBehind', value: { partitionId, appliedIndex: 3n, minAppliedIndex: 9n } } }),
  ),
  fc.string({ maxLength: 10 }).map((type) =>
    RpcError.withDetail(Status.FAILED_PRECONDITION, 'refused', ErrorDetailSchema, { kind: { case: 'dynamodb', value: { type, message: 'm', httpStatus: 400, fields: new Uint8Array() } } }),
  ),
);

// Unknown fields

/** A field no decoder knows, with a payload of its wire type (what protobuf-es keeps in `$unknown`). */
const unknownField = fc.oneof(
  fc.record({ no: fc.integer({ min: 8, max: 2 ** 29 - 1 }), wireType: fc.constant(0), data: fc.constantFrom([0], [0x80, 0x01], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) }),
  fc.record({ no: fc.integer({ min: 8, max: 100 }), wireType: fc.constant(1), data: fc.array(fc.nat(255), { minLength: 8, maxLength: 8 }) }),
  fc.record({ no: fc.integer({ min: 8, max: 100 }), wireType: fc.constant(2), data: fc.array(fc.nat(255), { maxLength: 5 }).map((bytes) => [bytes.length, ...bytes]) }),
  fc.record({ no: fc.integer({ min: 8, max: 100 }), wireType: fc.constant(5), data: fc.array(fc.nat(255), { minLength: 4, maxLength: 4 }) }),
  // A group: one varint field inside, then the end tag of the same number.
  fc.integer({ min: 8, max: 15 }).map((no) => ({ no, wireType: 3, data: [(1 << 3) | 0, 7, (no << 3) | 4] })),
).map(({ no, wireType, data }) => ({ no, wireType, data: Uint8Array.from(data) }));
export const unknownFields = fc.array(unknownField, { maxLength: 2 });

export type Unknown = { no: number; wireType: number; data: Uint8Array };
/** Adds unknown fields to a message and to the messages inside it (protobuf-es writes `$unknown`). */
export function withUnknown(message: object, pick: () => Unknown[]): void {
  for (const [key, value] of Object.entries(message)) {
    if (key === '$unknown') continue;
    if (value instanceof Uint8Array || value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) value.forEach((entry) => typeof entry === 'object' && withUnknown(entry as object, pick));
    else if ('$typeName' in value) withUnknown(value, pick);
    else if ('case' in value && typeof (value as { value?: unknown }).value === 'object') withUnknown((value as { value: object }).value, pick);
  }
  const fields = pick();
  if (fields.length > 0) (message as { $unknown?: Unknown[] }).$unknown = fields;
}
