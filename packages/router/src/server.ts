import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { DynamoDbError, serializationError } from '@shoal/model';
import type { EngineContext } from './operation.ts';
import type { RequestInfo } from './request.ts';
import { verifySignature } from './auth.ts';
import { dispatch, isKnownOperation } from './dispatch.ts';
import { HttpConnection } from './http-connection.ts';
import type { HttpAnswer, HttpRequest } from './http-connection.ts';
import {
  ACCEPTED_CONTENT_TYPES,
  MAX_REQUEST_BYTES,
  RESPONSE_CONTENT_TYPE,
  bodyChecksum,
  errorBody,
  JsonText,
  mediaTypeOf,
  newRequestId,
  operationOf,
  parseRequestBody,
  requestTooLarge,
  unknownOperation,
} from './protocol.ts';

/** The DynamoDB JSON-over-HTTP front end: a lean HTTP/1.1 server (http-connection.ts) with keep-alive. */

/** Told of each answered request naming an operation served: its time and, for an error, DynamoDB's error type. */
export type RequestObserver = (operation: string, seconds: number, errorType?: string) => void;

export interface HttpFrontEnd {
  port: number;
  close(): Promise<void>;
}

/** The CORS headers of a request that came from no browser. */
const NO_CORS: ReadonlyArray<readonly [string, string]> = [];

/** The headers every answer carries, CORS ones first when the request came from a browser. */
function answer(
  status: number,
  contentType: string,
  body: string,
  requestId: string,
  cors: ReadonlyArray<readonly [string, string]> = NO_CORS,
): HttpAnswer {
  const headers: (readonly [string, string])[] = [['Content-Type', contentType], ['x-amz-crc32', bodyChecksum(body)], ['x-amzn-RequestId', requestId]];
  return { status, headers: cors.length === 0 ? headers : [...cors, ...headers], body };
}

function jsonAnswer(status: number, value: unknown, requestId: string, cors?: ReadonlyArray<readonly [string, string]>): HttpAnswer {
  const body = value instanceof JsonText ? value.text : JSON.stringify(value);
  return answer(status, RESPONSE_CONTENT_TYPE, body, requestId, cors);
}

function errorAnswer(error: DynamoDbError, requestId: string, cors?: ReadonlyArray<readonly [string, string]>): HttpAnswer {
  return jsonAnswer(error.statusCode, errorBody(error), requestId, cors);
}

/** How long a refused oversized request may keep sending before its connection is cut. */
const LINGER_MS = 2000;
/**
 * SDK agents keep idle sockets open without a timeout of their own; a server that closes them
 * quickly races the client's next request on them (ECONNRESET). Hold them about as long as AWS does.
 */
const IDLE_TIMEOUT_MS = 65_000;

const HEALTH_PATHS = new Set(['/healthz', '/readyz']);
/** A header value the client chose, echoed back only when it is safe in a header line. */
const isHeaderSafe = (value: string): boolean => /^[\t\x20-\x7e]*$/.test(value);

export interface HttpFrontEndOptions {
  ctx: EngineContext;
  host: string;
  /** The port to listen on; with `host`, the Host of a request without one. */
  port: number;
  region: string;
  services: Omit<RequestInfo, 'host'>;
  /** Secret access keys by access key id; when absent, requests are not authenticated. */
  credentials?: ReadonlyMap<string, string>;
  onRequest?: RequestObserver;
}

/** The DynamoDB endpoint over connections handed to it (by a listening server, or a benchmark's own sockets). */
export interface HttpEndpoint {
  serve(socket: Socket): void;
  /** Lets the requests received be answered, then closes every connection. */
  close(): Promise<void>;
}

export function createHttpEndpoint(options: HttpFrontEndOptions): HttpEndpoint {
  const { ctx, region, services, credentials, onRequest } = options;
  // The request info of the last Host seen: clients send the same one each time (an object per request cost more than its use).
  let lastInfo: RequestInfo = { ...services, host: '' };
  const requestInfo = (host: string): RequestInfo => {
    if (lastInfo.host !== host) lastInfo = { ...services, host };
    return lastInfo;
  };

  async function handle(req: HttpRequest): Promise<HttpAnswer> {
    const requestId = newRequestId();
    // Browsers may call DynamoDB directly (the JavaScript SDK in a web page): answer CORS as it does.
    let cors = NO_CORS;
    if (req.headers.origin !== undefined) {
      const browser: [string, string][] = [
        ['Access-Control-Allow-Origin', '*'],
        ['Access-Control-Expose-Headers', 'x-amzn-RequestId,x-amz-crc32'],
      ];
      if (req.method === 'OPTIONS') {
        const headers = req.headers['access-control-request-headers'];
        if (headers !== undefined && isHeaderSafe(headers)) browser.push(['Access-Control-Allow-Headers', headers]);
        const method = req.headers['access-control-request-method'];
        if (method !== undefined && isHeaderSafe(method)) browser.push(['Access-Control-Allow-Methods', method]);
        browser.push(['Access-Control-Max-Age', '172800']);
        return answer(200, 'text/plain', '', requestId, browser);
      }
      cors = browser;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      // DynamoDB answers any GET with this line (trailing space included); load balancers probe it.
      const text = HEALTH_PATHS.has(req.url.split('?')[0]) ? 'ok\n' : `healthy: dynamodb.${region}.amazonaws.com `;
      return answer(200, 'text/plain', text, requestId, cors);
    }
    if (req.method !== 'POST' || !ACCEPTED_CONTENT_TYPES.has(mediaTypeOf(req.headers['content-type']))) {
      // DynamoDB's answer to anything that is not its JSON protocol.
      return answer(404, 'application/xml', '<UnknownOperationException/>\n', requestId, cors);
    }
    // DynamoDB's order of checks: the JSON, the target, the signature, then the body's presence.
    let body;
    const operation = operationOf(req.headers['x-amz-target']);
    const known = operation !== undefined && isKnownOperation(operation);
    // Only requests naming an operation served are observed: the label stays a short, fixed list.
    const started = onRequest !== undefined && known ? performance.now() : 0;
    try {
      body = req.body.length === 0 ? undefined : parseRequestBody(req.body);
      if (!known) throw unknownOperation(operation);
      if (credentials !== undefined) {
        // Signatures are checked against the real clock, never the injectable one tests move.
        verifySignature({ method: 'POST', url: req.url, headers: req.headers, body: req.body, credentials, now: Date.now() });
      }
      if (body === undefined) throw serializationError('The request body is empty: expected a JSON object');
    } catch (error) {
      if (!(error instanceof DynamoDbError)) throw error;
      if (known) onRequest?.(operation, (performance.now() - started) / 1000, error.type);
      return errorAnswer(error, requestId, cors);
    }
    const outcome = await dispatch(operation, body, ctx, requestInfo(req.headers.host ?? `${options.host}:${options.port}`));
    onRequest?.(operation, (performance.now() - started) / 1000, outcome.ok ? undefined : outcome.error.type);
    return outcome.ok ? jsonAnswer(200, outcome.result, requestId, cors) : errorAnswer(outcome.error, requestId, cors);
  }

  // Requests being answered, counted rather than tracked one by one: a promise and a set entry per
  // request cost more than the rest of the bookkeeping of a GetItem.
  let inFlight = 0;
  let idleWaiters: Array<() => void> = [];
  const settle = (reply: HttpAnswer): HttpAnswer => {
    if (--inFlight === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
    return reply;
  };
  const failed = (error: unknown): HttpAnswer => {
    console.error('shoal router: request failed:', error);
    const body = JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'Internal server error' });
    return settle(answer(500, RESPONSE_CONTENT_TYPE, body, newRequestId()));
  };
  const answerRequest = (req: HttpRequest): Promise<HttpAnswer> => {
    inFlight++;
    return handle(req).then(settle, failed);
  };

  const connections = new Set<HttpConnection>();
  return {
    serve(socket: Socket): void {
      const connection = new HttpConnection(socket, {
        answer: answerRequest,
        tooLarge: () => errorAnswer(requestTooLarge(), newRequestId()),
        maxBodyBytes: MAX_REQUEST_BYTES,
        lingerMs: LINGER_MS,
        idleTimeoutMs: IDLE_TIMEOUT_MS,
      });
      connections.add(connection);
      socket.on('close', () => connections.delete(connection));
    },
    async close(): Promise<void> {
      for (const connection of connections) connection.closeWhenIdle();
      if (inFlight > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      for (const connection of connections) connection.destroy();
    },
  };
}

export async function startHttpFrontEnd(options: HttpFrontEndOptions): Promise<HttpFrontEnd> {
  const endpoint = createHttpEndpoint(options);
  // allowHalfOpen: a client that ends its side after its last request still gets the answers.
  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => endpoint.serve(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    async close(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await endpoint.close();
      await closed;
    },
  };
}
