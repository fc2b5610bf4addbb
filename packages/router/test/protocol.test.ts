import { crc32 } from 'node:zlib';
import { DynamoDbError } from '@shoal/model';
import { describe, expect, it } from 'vitest';
import { bodyChecksum, errorBody, JsonText, mediaTypeOf, newRequestId, operationOf, parseRequestBody, unknownOperation } from '../src/protocol.ts';

describe('protocol helpers', () => {
  it('read the operation from the target header', () => {
    expect(operationOf('DynamoDB_20120810.PutItem')).toBe('PutItem');
    expect(operationOf(undefined)).toBeUndefined();
    expect(operationOf('PutItem')).toBeUndefined();
    expect(operationOf('DynamoDB_20120810.')).toBeUndefined();
    expect(operationOf('DynamoDB_20120810.Put.Item')).toBeUndefined();
  });

  it('normalise the media type', () => {
    expect(mediaTypeOf('application/x-amz-json-1.0; charset=utf-8')).toBe('application/x-amz-json-1.0');
    expect(mediaTypeOf('Application/X-Amz-Json-1.1')).toBe('application/x-amz-json-1.1');
    expect(mediaTypeOf(undefined)).toBe('');
  });

  it('checksum the body bytes as an unsigned decimal', () => {
    const body = Buffer.from('{"TableNames":[]}');
    expect(bodyChecksum(body)).toBe(String(crc32(body)));
    expect(bodyChecksum(Buffer.from('healthy: dynamodb.us-east-1.amazonaws.com '))).toBe('3128867991');
  });

  it('checksum a string body as its UTF-8 bytes', () => {
    const text = '{"Item":{"name":{"S":"Zoë 🐟"}}}';
    expect(bodyChecksum(text)).toBe(bodyChecksum(Buffer.from(text, 'utf8')));
    expect(bodyChecksum(text)).not.toBe(bodyChecksum(Buffer.from(text, 'latin1')));
  });

  it('checksum each body right when the same short bodies come again and again (the last one is remembered)', () => {
    const bodies = ['{}', '{}', '{"a":1}', '{}', 'x'.repeat(65), 'x'.repeat(65), '{"a":2}', '{"a":1}', ''];
    for (const body of bodies) expect(bodyChecksum(body), body).toBe(String(crc32(Buffer.from(body, 'utf8'))));
  });

  it('make 52-character request ids', () => {
    const ids = new Set(Array.from({ length: 100 }, newRequestId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[A-Z0-9]{52}$/);
  });

  it('parse only JSON objects', () => {
    expect(parseRequestBody(Buffer.from('{"a":1}'))).toEqual({ a: 1 });
    for (const text of ['[1]', '1', 'null', '"s"', '{', '']) {
      expect(() => parseRequestBody(Buffer.from(text))).toThrow(DynamoDbError);
    }
    const deep = Buffer.from(`{"a":${'['.repeat(200)}${']'.repeat(200)}}`);
    expect(() => parseRequestBody(deep)).toThrow('Nesting Levels have exceeded supported limits');
    // 100 levels (the object and 99 lists) are allowed; brackets inside strings are no nesting.
    const nested = (lists: number) => Buffer.from(`{"a":${'['.repeat(lists)}${']'.repeat(lists)}}`);
    expect(() => parseRequestBody(nested(99))).not.toThrow();
    expect(() => parseRequestBody(nested(100))).toThrow('Nesting Levels have exceeded supported limits');
    expect(parseRequestBody(Buffer.from(`{"a":"${'{['.repeat(300)}"}`))).toEqual({ a: '{['.repeat(300) });
  });

  it('shape error bodies with the qualified type and extra fields', () => {
    const error = new DynamoDbError('TransactionCanceledException', 'cancelled', { CancellationReasons: [{ Code: 'None' }] });
    expect(errorBody(error)).toEqual({
      __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
      message: 'cancelled',
      CancellationReasons: [{ Code: 'None' }],
    });
    expect(errorBody(unknownOperation('Nope')).__type).toBe('com.amazon.coral.service#UnknownOperationException');
    expect(unknownOperation('ExecuteStatement').message).toBe('Shoal does not support the DynamoDB operation ExecuteStatement yet');
  });
});

describe('JsonText', () => {
  it('splices a JSON text in as the first member, the others following in order', () => {
    const item = '{"pk":{"S":"a"},"n":{"N":"1"}}';
    expect(JSON.parse(JsonText.withMember('Item', item, {}).text)).toEqual({ Item: JSON.parse(item) });
    const withRest = JsonText.withMember('Item', item, { ConsumedCapacity: { TableName: 't', CapacityUnits: 1 }, Other: [1] });
    expect(withRest.text).toBe(`{"Item":${item},"ConsumedCapacity":{"TableName":"t","CapacityUnits":1},"Other":[1]}`);
  });
});
