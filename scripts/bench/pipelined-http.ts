/**
 * The load generator's transport: raw TCP sockets carrying pipelined HTTP/1.1 requests whose bytes are
 * built before the measurement, and a response parser that reads only the status line, the body's
 * length and (for errors) the body. On 2 cores shared with the server, every microsecond the client
 * spends is taken from the server it measures, so node:http (about 70 µs of client CPU per request)
 * is used only for the setup calls.
 */
import net from 'node:net';
import type { Endpoint } from './dynamodb-http.ts';

/** A request unanswered this long fails its connection, so a hung server cannot hang the bench. */
const RESPONSE_TIMEOUT_MS = 30_000;
/** A connection the server closes is reopened at most this many times per run. */
const MAX_RECONNECTS = 100;
const HEADER_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/** The complete bytes of one HTTP/1.1 POST with a JSON body. */
export function httpPost(endpoint: Endpoint, path: string, headers: Record<string, string>, body: string): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  let head = `POST ${path} HTTP/1.1\r\nHost: ${endpoint.host}:${endpoint.port}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  head += `Content-Length: ${bodyBytes.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bodyBytes]);
}

export interface PipelinedLoadOptions {
  /** Requests in flight in all. */
  concurrency: number;
  /** TCP connections they share; each carries concurrency / connections pipelined requests. */
  connections: number;
  durationMs: number;
  /** Hard cap on requests sent, so no loop depends on the clock alone. */
  maxRequests: number;
}

export interface DriveResult {
  /** Requests answered 200. */
  ops: number;
  /** Requests answered otherwise, or lost with their connection. */
  errors: number;
  errorSample: string | undefined;
  seconds: number;
  /** Latency of each successful request, in milliseconds, in completion order. */
  latenciesMs: number[];
  /** When each of them completed, in milliseconds since the phase started (same order). */
  completedAtMs: number[];
}

interface ParsedResponse {
  status: number;
  /** The body, decoded only for a failed request (to report it). */
  errorBody: string | undefined;
}

/**
 * Parses as many complete responses as `buffer` holds from `offset`; returns the offset after the
 * last one. Content-Length and chunked bodies are understood; nothing else of the headers is read.
 */
function parseResponses(buffer: Buffer, offset: number, onResponse: (response: ParsedResponse) => void): number {
  for (;;) {
    const headerEnd = buffer.indexOf(HEADER_END, offset);
    if (headerEnd < 0) return offset;
    const head = buffer.toString('latin1', offset, headerEnd);
    if (!head.startsWith('HTTP/1.')) throw new Error(`not an HTTP response: ${JSON.stringify(head.slice(0, 40))}`);
    const status = Number(head.slice(9, 12));
    const bodyStart = headerEnd + HEADER_END.length;
    let bodyEnd: number;
    let messageEnd: number;
    const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
    if (length !== null) {
      bodyEnd = bodyStart + Number(length[1]);
      messageEnd = bodyEnd;
      if (messageEnd > buffer.length) return offset;
    } else if (/\r\ntransfer-encoding:[ \t]*chunked/i.test(head)) {
      const end = chunkedEnd(buffer, bodyStart);
      if (end === undefined) return offset;
      bodyEnd = end;
      messageEnd = end;
    } else {
      bodyEnd = bodyStart;
      messageEnd = bodyStart;
    }
    onResponse({ status, errorBody: status === 200 ? undefined : buffer.toString('utf8', bodyStart, Math.min(bodyEnd, bodyStart + 300)) });
    offset = messageEnd;
  }
}

/** The end of a chunked body starting at `offset` (after its terminating empty chunk), if all of it is here. */
function chunkedEnd(buffer: Buffer, offset: number): number | undefined {
  for (;;) {
    const lineEnd = buffer.indexOf(CRLF, offset);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(buffer.toString('latin1', offset, lineEnd), 16);
    if (!Number.isFinite(size)) throw new Error('malformed chunk size');
    if (size === 0) {
      // No trailers expected: the last chunk is followed by one empty line.
      const end = lineEnd + 2 * CRLF.length;
      return end <= buffer.length ? end : undefined;
    }
    offset = lineEnd + CRLF.length + size + CRLF.length;
    if (offset > buffer.length) return undefined;
  }
}

/**
 * Runs a closed loop for `durationMs`: each connection keeps its share of requests in flight, sending
 * the next (from `nextRequest`) as each answer arrives. Responses of one connection arrive in request
 * order (HTTP/1.1), so send times queue per connection; the requests a read completes are sent back
 * in one write.
 */
export function drivePipelined(endpoint: Endpoint, nextRequest: () => Buffer, options: PipelinedLoadOptions): Promise<DriveResult> {
  const connections = Math.max(1, Math.min(options.connections, options.concurrency));
  const latenciesMs: number[] = [];
  const completedAtMs: number[] = [];
  let errors = 0;
  let errorSample: string | undefined;
  let sent = 0;
  let reconnects = 0;
  const start = performance.now();
  const until = start + options.durationMs;
  const mayContinue = (): boolean => sent < options.maxRequests && performance.now() < until;

  return new Promise((resolve) => {
    let open = connections;
    const finished = (): void => {
      open--;
      if (open === 0) resolve({ ops: latenciesMs.length, errors, errorSample, seconds: (performance.now() - start) / 1000, latenciesMs, completedAtMs });
    };
    const fail = (message: string, count: number): void => {
      errors += count;
      errorSample ??= message;
    };

    const connect = (depth: number): void => {
      const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
      // Send times of the requests in flight, oldest first (a queue with a moving head).
      let sendTimes: number[] = [];
      let head = 0;
      let pending: Buffer | undefined;
      let closed = false;
      const inFlight = (): number => sendTimes.length - head;

      const send = (): void => {
        sent++;
        sendTimes.push(performance.now());
        socket.write(nextRequest());
      };
      const close = (): void => {
        if (closed) return;
        closed = true;
        socket.destroy();
        const lost = inFlight();
        const reopen = lost > 0 && mayContinue() && reconnects < MAX_RECONNECTS;
        if (lost > 0) fail(`connection lost with ${lost} request(s) in flight`, lost);
        if (reopen) {
          reconnects++;
          connect(depth);
        } else {
          finished();
        }
      };

      socket.setTimeout(RESPONSE_TIMEOUT_MS, () => {
        if (inFlight() > 0) fail(`no answer within ${RESPONSE_TIMEOUT_MS} ms`, 0);
        close();
      });
      socket.on('connect', () => {
        socket.cork();
        for (let i = 0; i < depth && mayContinue(); i++) send();
        socket.uncork();
        if (inFlight() === 0) close();
      });
      socket.on('data', (chunk: Buffer) => {
        const buffer = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
        const now = performance.now();
        let answered = 0;
        let consumed: number;
        try {
          consumed = parseResponses(buffer, 0, (response) => {
            const sentAt = sendTimes[head++];
            answered++;
            if (response.status === 200) {
              latenciesMs.push(now - sentAt);
              completedAtMs.push(now - start);
            }
            else fail(`HTTP ${response.status} ${response.errorBody ?? ''}`, 1);
          });
        } catch (error) {
          fail((error as Error).message, 0);
          close();
          return;
        }
        pending = consumed === buffer.length ? undefined : buffer.subarray(consumed);
        if (head > 1024 && head * 2 > sendTimes.length) {
          sendTimes = sendTimes.slice(head);
          head = 0;
        }
        socket.cork();
        for (let i = 0; i < answered && mayContinue(); i++) send();
        socket.uncork();
        if (inFlight() === 0) {
          socket.end();
          close();
        }
      });
      socket.on('error', (error) => {
        fail(error.message, 0);
        close();
      });
      socket.on('close', close);
    };

    const base = Math.floor(options.concurrency / connections);
    const extra = options.concurrency % connections;
    for (let i = 0; i < connections; i++) connect(base + (i < extra ? 1 : 0));
  });
}
