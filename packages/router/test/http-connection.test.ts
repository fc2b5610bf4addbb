import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpConnection } from '../src/http-connection.ts';
import type { HttpAnswer, HttpRequest } from '../src/http-connection.ts';

/**
 * The lean HTTP/1.1 connection on raw sockets: framing, pipelining order, keep-alive rules and
 * refusals, byte by byte. The DynamoDB behaviour on top is covered by test/protocol.test.ts.
 */

/** Echoes what it parsed; a body "slow:<n>" answers after n ms, so later requests finish first. */
async function echo(request: HttpRequest): Promise<HttpAnswer> {
  const text = request.body.toString('utf8');
  const delay = /^slow:(\d+)$/.exec(text);
  if (delay !== null) await new Promise((resolve) => setTimeout(resolve, Number(delay[1])));
  const body = JSON.stringify({ method: request.method, url: request.url, headers: request.headers, body: text });
  return { status: 200, headers: [['Content-Type', 'application/json']], body };
}

let server: Server;
let port: number;
const connections = new Set<HttpConnection>();

beforeAll(async () => {
  server = createServer({ allowHalfOpen: true }, (socket) => {
    const connection = new HttpConnection(socket, {
      answer: echo,
      tooLarge: () => ({ status: 413, headers: [], body: 'too large' }),
      maxBodyBytes: 1000,
      lingerMs: 500,
      idleTimeoutMs: 5000,
    });
    connections.add(connection);
    socket.on('close', () => connections.delete(connection));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const connection of connections) connection.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits a byte stream of Content-Length-framed responses (the only framing the connection sends). */
function parseResponses(text: string): ParsedResponse[] {
  const responses: ParsedResponse[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`incomplete response: ${JSON.stringify(rest)}`);
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = end + 4;
    responses.push({ status: Number(statusLine.split(' ')[1]), headers, body: rest.slice(bodyStart, bodyStart + length) });
    rest = rest.slice(bodyStart + length);
  }
  return responses;
}

/** Complete responses at the start of `text` (an incomplete last one is left out). */
function completeResponses(text: string): number {
  let count = 0;
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return count;
    const length = Number(/content-length: (\d+)/i.exec(rest.slice(0, end))?.[1] ?? 0);
    if (rest.length < end + 4 + length) return count;
    rest = rest.slice(end + 4 + length);
    count++;
  }
}

/** How long an exchange may take before the test gives up on it (a bound, not a timing assertion). */
const EXCHANGE_TIMEOUT_MS = 10_000;

/**
 * Sends `parts` (with a pause between them), then collects what the server sends until `responses`
 * complete answers have arrived (and, with `untilClose`, the server has closed), or the server closes.
 */
function exchange(
  parts: (string | Buffer)[],
  options: { responses: number; untilClose?: boolean; endAfter?: boolean },
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(finish, EXCHANGE_TIMEOUT_MS);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!options.untilClose && completeResponses(text) >= options.responses) finish();
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('error', reject);
    socket.on('connect', async () => {
      for (const part of parts) {
        socket.write(part);
        await new Promise((done) => setTimeout(done, 20));
      }
      if (options.endAfter) socket.end();
    });
  });
}

const post = (body: string, extra = ''): string =>
  `POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

describe('HttpConnection', () => {
  it('parses a request and answers with Content-Length and Date, keeping the connection open', async () => {
    const { text, closed } = await exchange([post('{"a":1}', 'X-Thing: one\r\nx-thing: two\r\n')], { responses: 1 });
    const [response] = parseResponses(text);
    expect(response.status).toBe(200);
    expect(response.headers.date).toMatch(/GMT$/);
    expect(response.headers.connection).toBeUndefined();
    expect(JSON.parse(response.body)).toMatchObject({
      method: 'POST',
      url: '/p?q=1',
      headers: { host: 'h', 'x-thing': 'one, two' },
      body: '{"a":1}',
    });
    expect(closed).toBe(false);
  });

  it('reads header names in any case, and values with tabs and obs-text', async () => {
    // The echo answers in UTF-8, which this client reads as latin1.
    const echoedAsLatin1 = (value: string): string => Buffer.from(value, 'utf8').toString('latin1');
    const body = '{"b":2}';
    const request =
      `POST / HTTP/1.1\r\nHOST: h\r\nCONTENT-length: ${body.length}\r\nX-Amz-TARGET: T\r\nx-amz-target-x: u\r\n` +
      `Content-Type:\tapplication/x-amz-json-1.0 \r\nX-Text: caf\xe9\ta\r\n\r\n${body}`;
    const { text } = await exchange([Buffer.from(request, 'latin1')], { responses: 1 });
    const [response] = parseResponses(text);
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({
      headers: { host: 'h', 'content-length': '7', 'x-amz-target': 'T', 'x-amz-target-x': 'u', 'content-type': 'application/x-amz-json-1.0', 'x-text': echoedAsLatin1('caf\u00e9\ta') },
      body,
    });
  });

  it('answers pipelined requests in request order, even when later ones finish first', async () => {
    const { text } = await exchange([post('slow:100') + post('fast') + post('slow:30')], { responses: 3 });
    expect(parseResponses(text).map((response) => JSON.parse(response.body).body)).toEqual(['slow:100', 'fast', 'slow:30']);
  });

  it('reassembles requests split at any byte', async () => {
    const request = post('{"split":true}');
    const parts = [request.slice(0, 7), request.slice(7, 30), request.slice(30, request.length - 3), request.slice(request.length - 3)];
    const [response] = parseResponses((await exchange(parts, { responses: 1 })).text);
    expect(JSON.parse(response.body).body).toBe('{"split":true}');
  });

  it('decodes a chunked body (extensions and trailers ignored)', async () => {
    const request =
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '4;ext=1\r\n{"a"\r\n' + '3\r\n:12\r\n' + '1\r\n}\r\n' + '0\r\nTrailer: x\r\n\r\n';
    const { text } = await exchange([request.slice(0, 60), request.slice(60)], { responses: 1 });
    const [response] = parseResponses(text);
    expect(JSON.parse(response.body).body).toBe('{"a":12}');
  });

  it('sends 100 Continue to a client that asks before sending its body', async () => {
    const head = 'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n';
    const { text } = await exchange([head, '{}'], { responses: 2 });
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n')).toBe(true);
  });

  it('closes after answering Connection: close, and after an HTTP/1.0 request without keep-alive', async () => {
    const closing = await exchange([post('x', 'Connection: close\r\n') + post('ignored')], { responses: 2, untilClose: true });
    expect(closing.closed).toBe(true);
    const answered = parseResponses(closing.text);
    expect(answered).toHaveLength(1);
    expect(answered[0].headers.connection).toBe('close');

    const old = await exchange(['POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx'], { responses: 1, untilClose: true });
    expect(old.closed).toBe(true);
    expect(parseResponses(old.text)).toHaveLength(1);
  });

  it('keeps an HTTP/1.0 connection that asks for keep-alive', async () => {
    const request = 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx';
    const { text, closed } = await exchange([request, request], { responses: 2 });
    const responses = parseResponses(text);
    expect(responses).toHaveLength(2);
    expect(responses[0].headers.connection).toBe('keep-alive');
    expect(closed).toBe(false);
  });

  it('still answers a client that half-closes after its requests', async () => {
    const { text, closed } = await exchange([post('slow:50') + post('b')], { responses: 2, untilClose: true, endAfter: true });
    expect(parseResponses(text)).toHaveLength(2);
    expect(closed).toBe(true);
  });

  it('refuses malformed heads with 400 and closes, after answering the requests before them', async () => {
    for (const bad of [
      'NOT HTTP AT ALL\r\n\r\n',
      'POST / HTTP/2.0\r\n\r\n',
      'POST / HTTP/1.1\r\nBad Header\r\n\r\n',
      'POST / HTTP/1.1\r\n folded: value\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'POST / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n',
      'POST / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n',
      'POST / HTTP/1.1\r\nX-A: a\nb\r\n\r\n',
      'POST / HTTP/1.1\r\nX-A: a\rb\r\n\r\n',
      'POST /a\x00b HTTP/1.1\r\n\r\n',
      'POST /a\tb HTTP/1.1\r\n\r\n',
      'POST / HTTP/1.9\r\n\r\n',
      'POST  / HTTP/1.1\r\n\r\n',
      'POST / HTTP/1.1 \r\n\r\n',
      'POST / http/1.1\r\n\r\n',
      'POST / HTTP/1.x\r\n\r\n',
      ' / HTTP/1.1\r\n\r\n',
      'PO(ST / HTTP/1.1\r\n\r\n',
    ]) {
      const { text, closed } = await exchange([post('first') + bad], { responses: 2, untilClose: true });
      const responses = parseResponses(text);
      expect(responses.map((response) => response.status), bad).toEqual([200, 400]);
      expect(closed, bad).toBe(true);
    }
  });

  it('refuses a head over 16 KB with 431', async () => {
    const { text, closed } = await exchange([`POST / HTTP/1.1\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`], { responses: 1, untilClose: true });
    expect(parseResponses(text)[0].status).toBe(431);
    expect(closed).toBe(true);
  });

  it('answers 413 at once to a declared or chunked body over the limit, then cuts the connection', async () => {
    const declared = await exchange(['POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{"a":'], { responses: 1, untilClose: true });
    expect(parseResponses(declared.text).map((response) => [response.status, response.headers.connection])).toEqual([[413, 'close']]);
    expect(declared.closed).toBe(true);

    const chunked = await exchange(['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', `7d0\r\n${'a'.repeat(2000)}\r\n`], { responses: 1, untilClose: true });
    expect(parseResponses(chunked.text)[0].status).toBe(413);
    expect(chunked.closed).toBe(true);
  });

  it('sends no body for HEAD but the length it would have', async () => {
    const { text } = await exchange(['HEAD / HTTP/1.1\r\nHost: h\r\n\r\n' + post('after', 'Connection: close\r\n')], { responses: 2, untilClose: true });
    const headEnd = text.indexOf('\r\n\r\n');
    expect(Number(/Content-Length: (\d+)/.exec(text.slice(0, headEnd))![1])).toBeGreaterThan(0);
    // The next response starts right after the HEAD answer's blank line.
    expect(text.slice(headEnd + 4).startsWith('HTTP/1.1 200 OK')).toBe(true);
  });
});
