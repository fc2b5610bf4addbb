import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { DynamoDbError, serializationError } from '@shoal/model';
import type { EngineContext } from './operation.ts';
import type { RequestInfo } from './request.ts';
import { verifySignature } from './auth.ts';
import { dispatch, isKnownOperation } from './dispatch.ts';
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

/** The DynamoDB JSON-over-HTTP front end: one node:http server with keep-alive. */

export interface HttpFrontEnd {
  port: number;
  close(): Promise<void>;
}

/**
 * A string body goes out in one write together with the headers (Node joins them only for strings);
 * a Buffer would cost a second chunk and a writev per response.
 */
function send(res: ServerResponse, status: number, contentType: string, body: string, requestId?: string): void {
  const headers: Record<string, string | number> = {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'x-amz-crc32': bodyChecksum(body),
  };
  if (requestId !== undefined) headers['x-amzn-RequestId'] = requestId;
  res.writeHead(status, headers);
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, requestId: string): void {
  const body = value instanceof JsonText ? value.text : JSON.stringify(value);
  send(res, status, RESPONSE_CONTENT_TYPE, body, requestId);
}

function sendError(res: ServerResponse, error: DynamoDbError, requestId: string): void {
  sendJson(res, error.statusCode, errorBody(error), requestId);
}

/**
 * Reads the whole body. Undefined when there is nothing to answer with a body: the request passed
 * DynamoDB's size limit (413 already sent) or the client went away before sending all of it.
 */
function readBody(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_REQUEST_BYTES) {
    rejectTooLarge(req, res, requestId);
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        req.off('data', onData);
        rejectTooLarge(req, res, requestId);
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
    req.on('close', () => {
      if (!req.complete) resolve(undefined);
    });
  });
}

/** How long a refused oversized request may keep sending before its connection is cut. */
const LINGER_MS = 2000;

/**
 * Answers 413 at once. Closing the connection right away would make the kernel reset it under a client
 * still sending, and the client would lose this answer; so the rest of the body is read and discarded
 * for a while (up to another 16 MB or LINGER_MS), then the connection is cut.
 */
function rejectTooLarge(req: IncomingMessage, res: ServerResponse, requestId: string): void {
  sendError(res, requestTooLarge(), requestId);
  let drained = 0;
  const cut = (): void => {
    req.socket.destroy();
  };
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > MAX_REQUEST_BYTES) cut();
  });
  req.once('end', () => clearTimeout(timer));
  req.socket.once('close', () => clearTimeout(timer));
  req.resume();
}

const HEALTH_PATHS = new Set(['/healthz', '/readyz']);

export async function startHttpFrontEnd(options: {
  ctx: EngineContext;
  host: string;
  port: number;
  region: string;
  services: Omit<RequestInfo, 'host'>;
  /** Secret access keys by access key id; when absent, requests are not authenticated. */
  credentials?: ReadonlyMap<string, string>;
}): Promise<HttpFrontEnd> {
  const { ctx, region, services, credentials } = options;
  const inFlight = new Set<Promise<void>>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId();
    const path = (req.url ?? '/').split('?')[0];
    // Browsers may call DynamoDB directly (the JavaScript SDK in a web page): answer CORS as it does.
    if (req.headers.origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Expose-Headers', 'x-amzn-RequestId,x-amz-crc32');
      if (req.method === 'OPTIONS') {
        req.resume();
        const headers = req.headers['access-control-request-headers'];
        if (headers !== undefined) res.setHeader('Access-Control-Allow-Headers', headers);
        const method = req.headers['access-control-request-method'];
        if (method !== undefined) res.setHeader('Access-Control-Allow-Methods', method);
        res.setHeader('Access-Control-Max-Age', '172800');
        send(res, 200, 'text/plain', '', requestId);
        return;
      }
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      req.resume();
      // DynamoDB answers any GET with this line (trailing space included); load balancers probe it.
      const text = HEALTH_PATHS.has(path) ? 'ok\n' : `healthy: dynamodb.${region}.amazonaws.com `;
      send(res, 200, 'text/plain', text, requestId);
      return;
    }
    if (req.method !== 'POST' || !ACCEPTED_CONTENT_TYPES.has(mediaTypeOf(req.headers['content-type']))) {
      // DynamoDB's answer to anything that is not its JSON protocol.
      req.resume();
      send(res, 404, 'application/xml', '<UnknownOperationException/>\n', requestId);
      return;
    }
    const raw = await readBody(req, res, requestId);
    if (raw === undefined) return;
    // DynamoDB's order of checks: the JSON, the target, the signature, then the body's presence.
    let body;
    const target = req.headers['x-amz-target'];
    const operation = operationOf(Array.isArray(target) ? target[0] : target);
    try {
      body = raw.length === 0 ? undefined : parseRequestBody(raw);
      if (operation === undefined || !isKnownOperation(operation)) throw unknownOperation(operation);
      if (credentials !== undefined) {
        // Signatures are checked against the real clock, never the injectable one tests move.
        verifySignature({ method: 'POST', url: req.url ?? '/', headers: req.headers, body: raw, credentials, now: Date.now() });
      }
      if (body === undefined) throw serializationError('The request body is empty: expected a JSON object');
    } catch (error) {
      if (!(error instanceof DynamoDbError)) throw error;
      sendError(res, error, requestId);
      return;
    }
    const host = req.headers.host ?? `${options.host}:${options.port}`;
    const outcome = await dispatch(operation!, body, ctx, { ...services, host });
    if (outcome.ok) sendJson(res, 200, outcome.result, requestId);
    else sendError(res, outcome.error, requestId);
  }

  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    const done = handle(req, res)
      .catch((error: unknown) => {
        console.error('shoal router: request failed:', error);
        if (!res.headersSent) {
          send(res, 500, RESPONSE_CONTENT_TYPE, JSON.stringify({
            __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
            message: 'Internal server error',
          }));
        } else {
          res.destroy();
        }
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  });
  // SDK agents keep idle sockets open without a timeout of their own; a server that closes them
  // quickly races the client's next request on them (ECONNRESET). Hold them about as long as AWS does.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Keep-alive connections from SDK clients outlive their requests; track them to close promptly.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

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
      server.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
