/**
 * A minimal DynamoDB JSON-protocol client over node:http with a keep-alive agent, for the setup calls
 * (the load itself goes through pipelined-http.ts).
 */
import http from 'node:http';

export interface Endpoint {
  host: string;
  port: number;
}

export interface DynamoDbResponse {
  status: number;
  body: string;
}

/**
 * A well-formed SigV4 Authorization header with a fixed signature. No target verifies signatures
 * (dynalite never does; Shoal only when started with credentials, which the bench does not pass), but
 * dynalite checks the header's shape, and a real client always sends one.
 */
export const DYNAMODB_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'application/x-amz-json-1.0',
  'X-Amz-Date': '20260101T000000Z',
  Authorization:
    'AWS4-HMAC-SHA256 Credential=AKIDBENCHMARK/20260101/us-east-1/dynamodb/aws4_request, ' +
    'SignedHeaders=content-type;host;x-amz-date;x-amz-target, ' +
    'Signature=0000000000000000000000000000000000000000000000000000000000000000',
};
/** A request unanswered this long counts as an error, so a hung server cannot hang the bench. */
const REQUEST_TIMEOUT_MS = 30_000;

export class DynamoDbHttpClient {
  readonly endpoint: Endpoint;
  private readonly agent: http.Agent;

  constructor(endpoint: Endpoint, maxSockets: number) {
    this.endpoint = endpoint;
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  /** Sends one operation (`PutItem`, `GetItem`, …) with a JSON body already serialized. */
  send(operation: string, body: string): Promise<DynamoDbResponse> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: this.endpoint.host,
          port: this.endpoint.port,
          method: 'POST',
          path: '/',
          agent: this.agent,
          headers: {
            ...DYNAMODB_HEADERS,
            'Content-Length': Buffer.byteLength(body),
            'X-Amz-Target': `DynamoDB_20120810.${operation}`,
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      request.end(body);
    });
  }

  /** Sends and insists on success: for setup steps, where a failure makes the run meaningless. */
  async call(operation: string, input: unknown): Promise<Record<string, unknown>> {
    const response = await this.send(operation, JSON.stringify(input));
    if (response.status !== 200) throw new Error(`${operation} failed with HTTP ${response.status}: ${response.body.slice(0, 300)}`);
    return JSON.parse(response.body) as Record<string, unknown>;
  }

  close(): void {
    this.agent.destroy();
  }
}
