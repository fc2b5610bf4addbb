/**
 * A lean DynamoDB JSON-protocol client over node:http with keep-alive, which tells apart the answers
 * a history needs: success, a definite failure (the request certainly took no effect) and an
 * indeterminate one (it may have taken effect: a timeout, a 5xx, a connection lost after sending).
 */
import http from 'node:http';

/** A well-formed SigV4 header with a fixed signature: the chaos routers run without credentials. */
const HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'application/x-amz-json-1.0',
  'X-Amz-Date': '20260101T000000Z',
  Authorization:
    'AWS4-HMAC-SHA256 Credential=AKIDCHAOS/20260101/us-east-1/dynamodb/aws4_request, ' +
    'SignedHeaders=content-type;host;x-amz-date;x-amz-target, ' +
    'Signature=0000000000000000000000000000000000000000000000000000000000000000',
};

export type Outcome =
  | { kind: 'ok'; body: Record<string, unknown> }
  /** DynamoDB's answer to a request it refused (4xx), or a connection never established. */
  | { kind: 'failed'; type: string; message: string }
  | { kind: 'indeterminate'; reason: string };

export interface ClientOptions {
  /** host:port of every router; requests go to `preferred` and move on after a connection failure. */
  endpoints: readonly string[];
  preferred: number;
  timeoutMs: number;
}

/** Errors of a connection that was never established: the request was not sent, so it took no effect. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function errorType(body: string): { type: string; message: string } {
  try {
    const parsed = JSON.parse(body) as { __type?: unknown; message?: unknown; Message?: unknown };
    const type = typeof parsed.__type === 'string' ? parsed.__type.slice(parsed.__type.indexOf('#') + 1) : 'UnknownError';
    const message = typeof parsed.message === 'string' ? parsed.message : typeof parsed.Message === 'string' ? parsed.Message : '';
    return { type, message };
  } catch {
    return { type: 'UnparsableError', message: body.slice(0, 200) };
  }
}

export class DynamoDbClient {
  readonly #endpoints: { host: string; port: number; agent: http.Agent }[];
  readonly #timeoutMs: number;
  #current: number;

  constructor(options: ClientOptions) {
    this.#endpoints = options.endpoints.map((endpoint) => {
      const at = endpoint.lastIndexOf(':');
      return {
        host: endpoint.slice(0, at),
        port: Number(endpoint.slice(at + 1)),
        agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
      };
    });
    this.#timeoutMs = options.timeoutMs;
    this.#current = options.preferred % this.#endpoints.length;
  }

  /** Index of the router the next request goes to. */
  get router(): number {
    return this.#current;
  }

  async send(operation: string, input: unknown): Promise<Outcome> {
    const endpoint = this.#endpoints[this.#current];
    const body = JSON.stringify(input);
    const outcome = await new Promise<Outcome>((resolve) => {
      const request = http.request(
        {
          host: endpoint.host,
          port: endpoint.port,
          method: 'POST',
          path: '/',
          agent: endpoint.agent,
          headers: { ...HEADERS, 'Content-Length': Buffer.byteLength(body), 'X-Amz-Target': `DynamoDB_20120810.${operation}` },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => resolve({ kind: 'indeterminate', reason: `answer cut off: ${error.message}` }));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = response.statusCode ?? 0;
            if (status === 200) {
              try {
                resolve({ kind: 'ok', body: JSON.parse(text) as Record<string, unknown> });
              } catch {
                resolve({ kind: 'indeterminate', reason: 'unparsable 200 answer' });
              }
            } else if (status >= 400 && status < 500) {
              resolve({ kind: 'failed', ...errorType(text) });
            } else {
              const { type, message } = errorType(text);
              resolve({ kind: 'indeterminate', reason: `HTTP ${status} ${type}${message === '' ? '' : `: ${message}`}` });
            }
          });
        },
      );
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== undefined && NOT_SENT_CODES.has(error.code)) {
          resolve({ kind: 'failed', type: 'ConnectionRefused', message: `${endpoint.host}:${endpoint.port}: ${error.code}` });
        } else {
          resolve({ kind: 'indeterminate', reason: error.message === '' ? (error.code ?? 'connection error') : error.message });
        }
      });
      request.setTimeout(this.#timeoutMs, () => request.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      request.end(body);
    });
    // A router that cannot be reached (or dropped the connection): the next request tries another.
    if ((outcome.kind === 'failed' && outcome.type === 'ConnectionRefused') || (outcome.kind === 'indeterminate' && !outcome.reason.startsWith('HTTP'))) {
      endpoint.agent.destroy();
      endpoint.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.#current = (this.#current + 1) % this.#endpoints.length;
    }
    return outcome;
  }

  /** Sends and insists on success, retrying definite failures and timeouts: for setup steps only. */
  async call(operation: string, input: unknown, attempts = 20): Promise<Record<string, unknown>> {
    let last = '';
    for (let attempt = 0; attempt < attempts; attempt++) {
      const outcome = await this.send(operation, input);
      if (outcome.kind === 'ok') return outcome.body;
      last = outcome.kind === 'failed' ? `${outcome.type}: ${outcome.message}` : outcome.reason;
      await new Promise((done) => setTimeout(done, 250));
    }
    throw new Error(`${operation} failed ${attempts} times, last: ${last}`);
  }

  close(): void {
    for (const endpoint of this.#endpoints) endpoint.agent.destroy();
  }
}
