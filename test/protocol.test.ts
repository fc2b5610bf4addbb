import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { shoalPerFile } from './helpers/shoal.ts';

/** The DynamoDB JSON protocol over raw HTTP: headers, checksums, error bodies, malformed requests. */

const shoal = shoalPerFile();

interface RawResponse {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json(): Record<string, unknown>;
}

async function post(
  body: string,
  options: { target?: string; contentType?: string; method?: string } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { 'Content-Type': options.contentType ?? 'application/x-amz-json-1.0' };
  if (options.target !== undefined) headers['X-Amz-Target'] = options.target;
  const response = await fetch(shoal.endpoint, { method: options.method ?? 'POST', headers, body });
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes, json: () => JSON.parse(bytes.toString('utf8')) };
}

const call = (operation: string, body: unknown, contentType?: string): Promise<RawResponse> =>
  post(JSON.stringify(body), { target: `DynamoDB_20120810.${operation}`, contentType });

function expectError(response: RawResponse, type: string, status = 400): Record<string, unknown> {
  expect(response.status).toBe(status);
  const body = response.json();
  expect(body.__type).toBe(type);
  expect(typeof body.message).toBe('string');
  return body;
}

const SERIALIZATION = 'com.amazon.coral.service#SerializationException';
const UNKNOWN_OPERATION = 'com.amazon.coral.service#UnknownOperationException';
const VALIDATION = 'com.amazonaws.dynamodb.v20120810#ValidationException';

describe('responses', () => {
  it('carry JSON, a correct x-amz-crc32 and a request id', async () => {
    const response = await call('ListTables', {});
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-amz-json-1.0');
    expect(response.headers.get('x-amz-crc32')).toBe(String(crc32(response.bytes)));
    expect(response.headers.get('x-amzn-requestid')).toMatch(/^[A-Z0-9]{52}$/);
    expect(response.json()).toEqual({ TableNames: [] });
  });

  it('give every request its own id', async () => {
    const ids = new Set<string | null>();
    for (let i = 0; i < 5; i++) ids.add((await call('ListTables', {})).headers.get('x-amzn-requestid'));
    expect(ids.size).toBe(5);
  });

  it('checksum error bodies too, with DynamoDB error types', async () => {
    const response = await call('DescribeTable', { TableName: 'missing_table' });
    expect(response.headers.get('x-amz-crc32')).toBe(String(crc32(response.bytes)));
    expect(response.json()).toEqual({
      __type: 'com.amazonaws.dynamodb.v20120810#ResourceNotFoundException',
      message: 'Requested resource not found: Table: missing_table not found',
    });
  });

  it('keep the connection alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const reused: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(shoal.endpoint, {
          agent,
          method: 'POST',
          headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': 'DynamoDB_20120810.ListTables' },
        });
        req.on('response', (res) => {
          reused.push(req.reusedSocket);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end('{}');
      });
    }
    agent.destroy();
    expect(reused).toEqual([false, true, true]);
  });

  it('accept the AWS JSON 1.1 content type', async () => {
    expect((await call('ListTables', {}, 'application/x-amz-json-1.1')).status).toBe(200);
  });
});

describe('malformed requests', () => {
  it('reject an unknown operation', async () => {
    expectError(await call('FlyToTheMoon', {}), UNKNOWN_OPERATION);
  });

  it('reject a missing or malformed target', async () => {
    expectError(await post('{}'), UNKNOWN_OPERATION);
    expectError(await post('{}', { target: 'ListTables' }), UNKNOWN_OPERATION);
    expectError(await post('{}', { target: 'DynamoDB_20111205.ListTables' }), UNKNOWN_OPERATION);
  });

  it('reject bad JSON, empty bodies and bodies that are not objects', async () => {
    for (const body of ['{', '{"TableName": }', 'not json', '', '[]', '42', '"text"', 'null', 'true']) {
      expectError(await post(body, { target: 'DynamoDB_20120810.ListTables' }), SERIALIZATION);
    }
  });

  it('reject members of the wrong JSON type as SerializationException, like DynamoDB', async () => {
    expect(expectError(await call('DescribeTable', { TableName: 5 }), SERIALIZATION).message).toBe(
      'class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String',
    );
    expect(expectError(await call('DescribeTable', { TableName: true }), SERIALIZATION).message).toBe(
      'class java.lang.Boolean can not be converted to an String',
    );
    expect(expectError(await call('ListTables', { Limit: 'ten' }), SERIALIZATION).message).toBe(
      'class java.lang.String can not be converted to an Integer',
    );
    expectError(await call('CreateTable', { TableName: 'abc', KeySchema: 'pk' }), SERIALIZATION);
    expectError(await call('CreateTable', { TableName: 'abc', KeySchema: [5] }), SERIALIZATION);
  });

  it('treat null members as absent', async () => {
    expect(expectError(await call('DescribeTable', { TableName: null }), VALIDATION).message).toBe(
      "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null",
    );
  });

  it('reject nesting no request can have', async () => {
    const deep = '{"TableName":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
    expectError(await post(deep, { target: 'DynamoDB_20120810.DescribeTable' }), SERIALIZATION);
  });

  it('answer a foreign content type the way DynamoDB does', async () => {
    const response = await post('{}', { target: 'DynamoDB_20120810.ListTables', contentType: 'text/plain' });
    expect(response.status).toBe(404);
    expect(response.bytes.toString()).toBe('<UnknownOperationException/>\n');
  });

  it('refuse a body over 16 MB without reading it all, and keep serving', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(shoal.endpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-amz-json-1.0',
          'X-Amz-Target': 'DynamoDB_20120810.ListTables',
          'Content-Length': String(17 * 1024 * 1024),
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      // Only a sliver of the declared body is ever sent.
      req.write('{"TableName":"');
    });
    expect(status).toBe(413);
    expect((await call('ListTables', {})).status).toBe(200);
  });

  it('refuse a chunked body once it passes 16 MB', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(shoal.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': 'DynamoDB_20120810.ListTables' },
      });
      let sent = 0;
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      // The server drops the connection after answering; that is expected here.
      req.on('error', (error) => (answered ? undefined : reject(error)));
      const pump = (): void => {
        while (!answered && sent < 40) {
          sent++;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    expect(status).toBe(413);
    expect((await call('ListTables', {})).status).toBe(200);
  });

  it('survive clients that hang up halfway through a body', async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(new URL(shoal.endpoint).port), '127.0.0.1', () => {
          socket.write(
            'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n' +
              'X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{"Lim',
            () => {
              socket.destroy();
              resolve();
            },
          );
        });
      });
    }
    expect((await call('ListTables', {})).status).toBe(200);
  });

  it('answer garbage that is not HTTP with 400 and keep serving', async () => {
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      const socket = connect(Number(new URL(shoal.endpoint).port), '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await call('ListTables', {})).status).toBe(200);
  });
});

describe('CORS', () => {
  it('answers a browser preflight and marks responses shareable', async () => {
    const preflight = await fetch(shoal.endpoint, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://localhost:3000',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-amz-target,authorization,x-amz-date',
      },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type,x-amz-target,authorization,x-amz-date');
    const response = await fetch(shoal.endpoint, {
      method: 'POST',
      headers: { Origin: 'http://localhost:3000', 'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': 'DynamoDB_20120810.ListTables' },
      body: '{}',
    });
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-expose-headers')).toContain('x-amz-crc32');
    expect((await call('ListTables', {})).headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('other paths', () => {
  it('answer GET / with the DynamoDB health line', async () => {
    const response = await fetch(shoal.endpoint);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('healthy: dynamodb.us-east-1.amazonaws.com ');
  });

  it('serve /healthz and /readyz', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const response = await fetch(`${shoal.endpoint}${path}`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('ok\n');
    }
  });

  it('answer other methods like a foreign content type', async () => {
    const response = await fetch(shoal.endpoint, { method: 'PUT', body: '{}' });
    expect(response.status).toBe(404);
  });
});

describe('GetItem bodies built around the stored item text', () => {
  const table = 'spliced-get';
  const item = { pk: { S: 'k' }, '7': { N: '1.5' }, name: { S: 'Zoë "quoted" 🐟' }, list: { L: [{ NULL: true }, { M: {} }] } };
  const expectChecksummed = (response: RawResponse): void => {
    expect(response.status).toBe(200);
    expect(response.headers.get('x-amz-crc32')).toBe(String(crc32(response.bytes)));
    expect(Number(response.headers.get('content-length'))).toBe(response.bytes.length);
  };

  it('are the JSON DynamoDB sends, with consumed capacity and projections too', async () => {
    const created = await call('CreateTable', {
      TableName: table,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    });
    expect(created.status).toBe(200);
    try {
      expect((await call('PutItem', { TableName: table, Item: item })).status).toBe(200);
      const key = { pk: { S: 'k' } };

      const plain = await call('GetItem', { TableName: table, Key: key });
      expectChecksummed(plain);
      expect(plain.bytes.toString('utf8')).toBe(JSON.stringify({ Item: item }));

      const withCapacity = await call('GetItem', { TableName: table, Key: key, ReturnConsumedCapacity: 'TOTAL' });
      expectChecksummed(withCapacity);
      expect(withCapacity.json()).toEqual({ Item: item, ConsumedCapacity: { TableName: table, CapacityUnits: 0.5 } });

      const projected = await call('GetItem', { TableName: table, Key: key, ProjectionExpression: '#n', ExpressionAttributeNames: { '#n': 'name' } });
      expectChecksummed(projected);
      expect(projected.json()).toEqual({ Item: { name: item.name } });

      const absent = await call('GetItem', { TableName: table, Key: { pk: { S: 'none' } } });
      expectChecksummed(absent);
      expect(absent.json()).toEqual({});
    } finally {
      expect((await call('DeleteTable', { TableName: table })).status).toBe(200);
    }
  });
});
