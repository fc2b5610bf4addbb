import { create } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type * as model from '@shoal/model';
import {
  ApplyIndexEntriesRequestSchema,
  applyIndexEntriesRequestFromWire,
  applyIndexEntriesRequestToWire,
  BackfillIndexRequestSchema,
  DropIndexRequestSchema,
  GetRequestSchema,
  GetResponseSchema,
  ReadRangeRequestSchema,
  ReadRangeResponseSchema,
  RpcError,
  Status,
  StatisticsRequestSchema,
  StatisticsResponseSchema,
  TableRecordJsonSchema,
  WriteRequestSchema,
  WriteResponseSchema,
  backfillIndexRequestFromWire,
  backfillIndexRequestToWire,
  dropIndexRequestFromWire,
  dropIndexRequestToWire,
  getRequestFromWire,
  getRequestToWire,
  getResultFromWire,
  getResultToWire,
  rangeReadRequestFromWire,
  rangeReadRequestToWire,
  rangeReadResultFromWire,
  rangeReadResultToWire,
  statisticsFromWire,
  statisticsRequestFromWire,
  statisticsRequestToWire,
  statisticsToWire,
  tableRecordFromWire,
  tableRecordToWire,
  writeRequestFromWire,
  writeRequestToWire,
  writeResultFromWire,
  writeResultToWire,
} from '../src/index.ts';
import { isOneJsonObject } from '../src/partition-codec.ts';
import { overTheWire } from './over-the-wire.ts';


const name = fc.string({ minLength: 1, maxLength: 8 });
const scalar: fc.Arbitrary<model.AttributeValue> = fc.oneof(
  fc.record({ S: fc.string({ maxLength: 10 }) }),
  fc.record({ N: fc.integer().map(String) }),
  fc.record({ B: fc.base64String({ maxLength: 12 }) }),
  fc.record({ BOOL: fc.boolean() }),
  fc.constant({ NULL: true as const }),
  fc.record({ SS: fc.uniqueArray(fc.string({ maxLength: 5 }), { minLength: 1, maxLength: 3 }) }),
);
const { attributeValue } = fc.letrec<{ attributeValue: model.AttributeValue }>((tie) => ({
  attributeValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.record({ M: fc.dictionary(name, tie('attributeValue'), { maxKeys: 3 }) }),
    fc.record({ L: fc.array(tie('attributeValue'), { maxLength: 3 }) }),
  ),
}));
const item: fc.Arbitrary<model.Item> = fc.dictionary(name, attributeValue, { minKeys: 1, maxKeys: 4 });
const names = fc.dictionary(fc.string({ minLength: 2, maxLength: 5 }).map((s) => `#${s}`), name, { minKeys: 1, maxKeys: 3 });
const values = fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }).map((s) => `:${s}`), attributeValue, { maxKeys: 3 });

const keyAttribute: fc.Arbitrary<model.KeyAttribute> = fc.record({ name, type: fc.constantFrom('S' as const, 'N' as const, 'B' as const) });
const projection: fc.Arbitrary<model.IndexProjection> = fc.oneof(
  fc.record({ type: fc.constantFrom('ALL' as const, 'KEYS_ONLY' as const) }),
  fc.record({ type: fc.constant('INCLUDE' as const), nonKeyAttributes: fc.array(name, { maxLength: 3 }) }),
);
const index: fc.Arbitrary<model.IndexSchema> = fc.record(
  {
    name,
    kind: fc.constantFrom('LSI' as const, 'GSI' as const),
    indexId: fc.nat(1_000_000),
    hashKey: keyAttribute,
    rangeKey: keyAttribute,
    projection,
  },
  { requiredKeys: ['name', 'kind', 'indexId', 'hashKey', 'projection'] },
);
const table: fc.Arbitrary<model.TableSchema> = fc.record(
  { name, tableId: fc.nat(1_000_000), hashKey: keyAttribute, rangeKey: keyAttribute, indexes: fc.array(index, { maxLength: 2 }) },
  { requiredKeys: ['name', 'tableId', 'hashKey', 'indexes'] },
);

const expressions: fc.Arbitrary<model.ExpressionInput> = fc.record(
  { condition: fc.string({ maxLength: 20 }), update: fc.string({ maxLength: 20 }), names, values },
  { requiredKeys: [] },
);
const operation: fc.Arbitrary<model.WriteOperation> = fc.record(
  { table, kind: fc.constantFrom('Put' as const, 'Update' as const, 'Delete' as const, 'ConditionCheck' as const), key: item, item, expressions },
  { requiredKeys: ['table', 'kind', 'key'] },
);
const write: fc.Arbitrary<model.PartitionWrite> = fc.record(
  { operations: fc.array(operation, { minLength: 1, maxLength: 3 }), returnItems: fc.constant(true) },
  { requiredKeys: ['operations'] },
);
const outcome: fc.Arbitrary<model.WriteOutcome> = fc.oneof(
  fc.record({ status: fc.constant('ok' as const), oldItem: item, newItem: item }, { requiredKeys: ['status'] }),
  fc.record({ status: fc.constant('conditionFailed' as const), item }, { requiredKeys: ['status'] }),
  fc.record({ status: fc.constant('invalid' as const), message: fc.string({ maxLength: 30 }) }),
);
const rangeRead: fc.Arbitrary<model.RangeReadRequest> = fc.record(
  {
    table,
    indexName: name,
    hashValue: scalar,
    sortCondition: fc.record({
      op: fc.constantFrom<model.SortKeyOperator>('EQ', 'LT', 'LE', 'GT', 'GE', 'BETWEEN', 'BEGINS_WITH'),
      values: fc.array(scalar, { minLength: 1, maxLength: 2 }),
    }),
    forward: fc.boolean(),
    exclusiveStartKey: item,
    limit: fc.nat(10_000),
    maxBytes: fc.nat(2 ** 20),
    segment: fc.record({ segment: fc.nat(99), total: fc.integer({ min: 1, max: 100 }) }),
    select: fc.constantFrom<model.Select>('ALL_ATTRIBUTES', 'ALL_PROJECTED_ATTRIBUTES', 'SPECIFIC_ATTRIBUTES', 'COUNT'),
    filter: fc.string({ maxLength: 20 }),
    projection: fc.string({ maxLength: 20 }),
    names,
    values,
  },
  { requiredKeys: ['table', 'forward', 'maxBytes', 'select'] },
);

/** The paths of every property, sorted: toEqual alone does not tell an absent key from undefined. */
function keyPaths(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value)
    .flatMap(([key, inner]) => [`${path}.${key}`, ...keyPaths(inner, `${path}.${key}`)])
    .sort();
}

/** Equal, and with the same keys: an absent optional field must stay absent. */
function expectSame<T>(actual: T, expected: T): void {
  expect(actual).toEqual(expected);
  expect(keyPaths(actual)).toEqual(keyPaths(expected));
}

const routed = { partitionId: 12n, epoch: 3n };

/** A read item's fields as a plain object (its item is read through a getter). */
const plain = (found: model.FoundItem | undefined): model.FoundItem | undefined =>
  found === undefined ? undefined : { item: found.item, size: found.size, ...(found.json === undefined ? {} : { json: found.json }) };
const runs = { numRuns: 150, seed: 3 };

describe('the partition contract on the wire', () => {
  it('round-trips writes and their results', () => {
    fc.assert(
      fc.property(write, (request) => {
        const decoded = writeRequestFromWire(overTheWire(WriteRequestSchema, writeRequestToWire(routed, request)));
        expect(decoded.target).toEqual(routed);
        expectSame(decoded.write, request);
      }),
      runs,
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(outcome, { maxLength: 4 }), (applied, outcomes) => {
        const result = { applied, outcomes };
        expectSame(writeResultFromWire(overTheWire(WriteResponseSchema, writeResultToWire(result))), result);
      }),
      runs,
    );
  });

  it('round-trips gets and their results, absent items included', () => {
    fc.assert(
      fc.property(table, item, fc.boolean(), (schema, key, consistent) => {
        const decoded = getRequestFromWire(overTheWire(GetRequestSchema, getRequestToWire(routed, { table: schema, key }, { consistent })));
        expectSame(decoded, { target: routed, request: { table: schema, key }, options: { consistent } });
      }),
      runs,
    );
    fc.assert(
      fc.property(fc.option(fc.record({ item, size: fc.nat(400 * 1024) }), { nil: undefined }), (result) => {
        // The answer also carries the item's JSON text, as it crossed the wire.
        const expected = result === undefined ? undefined : { ...result, json: JSON.stringify(result.item) };
        expectSame(plain(getResultFromWire(overTheWire(GetResponseSchema, getResultToWire(result)))), expected);
      }),
      runs,
    );
    // A stored item's JSON text is sent as is, not serialized again.
    const stored = '{"pk":{"S":"a"},"n":{"N":"1.50"}}';
    const found = { item: { pk: { S: 'b' } }, size: 3, json: stored };
    expect(plain(getResultFromWire(overTheWire(GetResponseSchema, getResultToWire(found))))).toEqual({ item: JSON.parse(stored), size: 3, json: stored });
  });

  it('parses a read item only when its item is first read (a GetItem answers the JSON text as is)', () => {
    const read = getResultFromWire(overTheWire(GetResponseSchema, create(GetResponseSchema, { item: new TextEncoder().encode('{"pk":{"S":"a"}}'), size: 4 })));
    const first = read?.item;
    expect(first).toEqual({ pk: { S: 'a' } });
    expect(read?.item).toBe(first);
    // Text shaped as one object but not JSON inside fails where the item is wanted, not when the
    // answer is decoded (a GetItem answering it as is would send a malformed body, nothing more).
    const broken = getResultFromWire(overTheWire(GetResponseSchema, create(GetResponseSchema, { item: new TextEncoder().encode('{"pk":}'), size: 4 })));
    expect(broken?.json).toBe('{"pk":}');
    expect(() => broken?.item).toThrow(RpcError);
    // Bytes that are not UTF-8 are still refused at once.
    expect(() => getResultFromWire(overTheWire(GetResponseSchema, create(GetResponseSchema, { item: new Uint8Array([0xff, 0xfe]), size: 2 })))).toThrow(RpcError);
  });

  it('refuses at once a read item that is not one JSON object (it would be spliced into the answer as is)', () => {
    const decode = (text: string) => () => getResultFromWire(overTheWire(GetResponseSchema, create(GetResponseSchema, { item: new TextEncoder().encode(text), size: 4 })));
    for (const text of [
      '{"pk":{"S":"a"', // cut short
      '{"pk":{"S":"a"}},"Injected":{"S":"x"}', // members after the object's end
      '{"pk":{"S":"a"}}{"x":1}',
      '{"pk":{"S":"a"}} ',
      '{"pk":{"S":"a}"}', // a brace inside a string closes nothing
      String.raw`{"pk":{"S":"a\\"}`, // an escaped backslash, then the string's end: one brace short
      '{"pk":{"L":[{"S":"a"}}]}', // brackets crossed
      '{"pk":{"S":"unterminated}',
      String.raw`{"pk":{"S":"a\"}}`, // an escaped quote: the string never ends
      '[{"S":"a"}]',
      '"text"',
      '',
    ]) {
      expect(decode(text), text).toThrowError(expect.objectContaining({ code: Status.INVALID_ARGUMENT }));
    }
    // Escaped quotes (after an odd run of backslashes) end no string.
    expect(decode(String.raw`{"pk":{"S":"a\"}"},"q":{"S":"\\\"]"}}`)()?.item).toEqual({ pk: { S: 'a"}' }, q: { S: '\\"]' } });
  });

  it('tells one JSON object from text cut short or followed by more', () => {
    const tricky = fc.string({ unit: fc.constantFrom('"', '\\', '{', '}', '[', ']', ',', ':', 'a', 'é', '😀') });
    const nested = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, tricky, fc.integer(), fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(tricky, tie('value'), { maxKeys: 3 })),
    })).value;
    fc.assert(
      fc.property(fc.oneof(item, fc.dictionary(tricky, nested, { maxKeys: 4 })), fc.nat(), fc.string({ minLength: 1, unit: fc.constantFrom('}', ']', '"', ',', ' ', '{"x":1}') }), (value, cut, more) => {
        const text = JSON.stringify(value);
        expect(isOneJsonObject(text)).toBe(true);
        expect(isOneJsonObject(text.slice(0, cut % text.length))).toBe(false);
        expect(isOneJsonObject(text + more)).toBe(false);
      }),
      { numRuns: 2_000 },
    );
    // Nesting deeper than the scan tracks is decided by parsing.
    const deep = (levels: number): string => `${'{"M":'.repeat(levels)}{}${'}'.repeat(levels)}`;
    expect(isOneJsonObject(deep(300))).toBe(true);
    expect(isOneJsonObject(`${deep(300).slice(0, -1)}]`)).toBe(false);
  });

  it('round-trips range reads and their results', () => {
    fc.assert(
      fc.property(rangeRead, fc.boolean(), (request, consistent) => {
        const decoded = rangeReadRequestFromWire(overTheWire(ReadRangeRequestSchema, rangeReadRequestToWire(routed, request, { consistent })));
        expectSame(decoded, { target: routed, request, options: { consistent } });
      }),
      runs,
    );
    fc.assert(
      fc.property(
        fc.record(
          { items: fc.array(item, { maxLength: 4 }), count: fc.nat(1000), scannedCount: fc.nat(1000), lastEvaluatedKey: item, bytesRead: fc.nat(2 ** 21) },
          { requiredKeys: ['items', 'count', 'scannedCount', 'bytesRead'] },
        ),
        (result) => {
          expectSame(rangeReadResultFromWire(overTheWire(ReadRangeResponseSchema, rangeReadResultToWire(result))), result);
        },
      ),
      runs,
    );
  });

  it('round-trips statistics and table records', () => {
    const statistics = { itemCount: 123_456_789, sizeBytes: 2 ** 40 };
    expect(statisticsFromWire(overTheWire(StatisticsResponseSchema, statisticsToWire(statistics)))).toEqual(statistics);
    fc.assert(
      fc.property(table, (schema) => {
        const record: model.TableRecord = { schema, status: 'ACTIVE', createdAt: 1_700_000_000.5, billingMode: 'PAY_PER_REQUEST', tags: { team: 'x' } };
        expectSame(tableRecordFromWire(overTheWire(TableRecordJsonSchema, tableRecordToWire(record))), record);
      }),
      runs,
    );
  });

  it('round-trips statistics and index command requests', () => {
    fc.assert(
      fc.property(table, fc.option(fc.string(), { nil: undefined }), fc.string({ minLength: 1 }), (schema, indexName, named) => {
        const statistics = statisticsRequestFromWire(overTheWire(StatisticsRequestSchema, statisticsRequestToWire(routed, { table: schema, indexName })));
        expectSame(statistics, { target: routed, request: indexName === undefined ? { table: schema } : { table: schema, indexName } });
        const request = { table: schema, indexName: named };
        expectSame(backfillIndexRequestFromWire(overTheWire(BackfillIndexRequestSchema, backfillIndexRequestToWire(routed, request))), { target: routed, request, waitMs: 0 });
        expectSame(backfillIndexRequestFromWire(overTheWire(BackfillIndexRequestSchema, backfillIndexRequestToWire(routed, request, 5_000))), { target: routed, request, waitMs: 5_000 });
        // A GSI's creation map version, when the router knows one (absent: unknown, as older routers send).
        const versioned = { ...request, indexCreatedAtMapVersion: 41 };
        expectSame(backfillIndexRequestFromWire(overTheWire(BackfillIndexRequestSchema, backfillIndexRequestToWire(routed, versioned, 5_000))), { target: routed, request: versioned, waitMs: 5_000 });
        expectSame(dropIndexRequestFromWire(overTheWire(DropIndexRequestSchema, dropIndexRequestToWire(routed, request))), { target: routed, request });
      }),
      runs,
    );
    const schema: model.TableSchema = { name: 't', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    expect(() => dropIndexRequestFromWire(overTheWire(DropIndexRequestSchema, dropIndexRequestToWire(routed, { table: schema, indexName: '' })))).toThrow(
      /index name missing/,
    );
  });

  it('round-trips shipped GSI records (puts and deletes, in seq order)', () => {
    const bytes = fc.uint8Array({ minLength: 1, maxLength: 40 });
    const record = fc.record({ indexId: fc.integer({ min: 1, max: 2 ** 32 - 1 }), entryKey: bytes, itemKey: bytes, entry: fc.option(item, { nil: undefined }) });
    const fence = fc.record({ sourcePartitionId: fc.integer({ min: 1, max: 2 ** 40 }), fromKey: bytes });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), record), { maxLength: 20 }), fc.array(fence, { maxLength: 3 }), (source, steps, fences) => {
        let seq = 0;
        const records = steps.map(([step, { entry, ...rest }]) => ({ seq: (seq += step), ...rest, ...(entry === undefined ? {} : { entry }) }));
        const batch = { sourcePartitionId: source, records, fences };
        expectSame(applyIndexEntriesRequestFromWire(overTheWire(ApplyIndexEntriesRequestSchema, applyIndexEntriesRequestToWire(routed, batch))), { target: routed, batch });
      }),
      runs,
    );
    const refused = (batch: Parameters<typeof applyIndexEntriesRequestToWire>[1]): string => {
      try {
        applyIndexEntriesRequestFromWire(overTheWire(ApplyIndexEntriesRequestSchema, applyIndexEntriesRequestToWire(routed, batch)));
      } catch (error) {
        expect((error as RpcError).code).toBe(Status.INVALID_ARGUMENT);
        return (error as RpcError).message;
      }
      throw new Error('accepted');
    };
    const deleted = { indexId: 5, entryKey: new Uint8Array([0, 0, 0, 5, 1]), itemKey: new Uint8Array([0, 0, 0, 4, 1]) };
    expect(refused({ sourcePartitionId: 3, records: [{ seq: 2, ...deleted }, { seq: 2, ...deleted }], fences: [] })).toContain('seqs must rise');
    expect(refused({ sourcePartitionId: 0, records: [], fences: [] })).toContain('source partition id 0');
    const bad = applyIndexEntriesRequestToWire(routed, { sourcePartitionId: 3, records: [{ seq: 1, ...deleted }], fences: [] });
    bad.records[0]!.entry = new Uint8Array([0x7b]);
    expect(() => applyIndexEntriesRequestFromWire(overTheWire(ApplyIndexEntriesRequestSchema, bad))).toThrow(/index entry is not JSON/);
  });

  it('refuses requests a node cannot serve with INVALID_ARGUMENT', () => {
    const schema: model.TableSchema = { name: 't', tableId: 1, hashKey: { name: 'pk', type: 'S' }, indexes: [] };
    const good = getRequestToWire(routed, { table: schema, key: { pk: { S: 'a' } } }, { consistent: false });
    const refusal = (mutate: (request: typeof good) => void): RpcError => {
      const request = overTheWire(GetRequestSchema, good);
      mutate(request);
      try {
        getRequestFromWire(request);
      } catch (error) {
        expect(error).toBeInstanceOf(RpcError);
        expect((error as RpcError).code).toBe(Status.INVALID_ARGUMENT);
        return error as RpcError;
      }
      throw new Error('accepted');
    };
    expect(refusal((r) => (r.key = new Uint8Array([0x7b]))).message).toContain('key is not JSON');
    expect(refusal((r) => (r.key = new Uint8Array([0xff, 0xfe]))).message).toContain('key is not JSON');
    expect(refusal((r) => (r.target = undefined)).message).toContain('target');
    expect(refusal((r) => (r.table = undefined)).message).toContain('table schema');
    expect(refusal((r) => r.table!.hashKey!.type = 0).message).toContain('hash key type');
  });
});
