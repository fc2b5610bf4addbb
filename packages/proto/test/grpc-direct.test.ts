/**
 * Unary calls straight on HTTP/2 (ClientOptions.directUnary) against a grpc-js server: what the
 * shared unary tests of grpc.test.ts do not cover (metadata, many calls at once, the server's signal
 * on a client deadline, connection failures and reconnecting).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorDetailSchema, Metadata, PartitionService, RpcError, Server, Status, addService, createClient, freePort, listen, shutdown } from '../src/index.ts';
import type { ClientOf, ServiceImplementation } from '../src/index.ts';

const target = { partitionId: 1n, epoch: 1n };
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string => new TextDecoder().decode(value);

/** What the server saw. */
const seen = { metadata: [] as string[], aborted: 0 };

const service: ServiceImplementation<(typeof PartitionService)['method']> = {
  async get(request, context) {
    const name = request.table?.name;
    if (name === 'metadata') {
      seen.metadata.push(String(context.metadata.get('x-shoal-test')[0]));
      return {};
    }
    if (name === 'refused') {
      throw RpcError.withDetail(Status.FAILED_PRECONDITION, 'nicht hier: 100% sicher, ünicode ✓', ErrorDetailSchema, {
        kind: { case: 'partitionNotFound', value: { partitionId: 42n } },
      });
    }
    if (name === 'slow') {
      await new Promise((resolve) => context.signal.addEventListener('abort', resolve, { once: true }));
      seen.aborted++;
      throw new RpcError(Status.CANCELLED, 'gave up');
    }
    // Echoes the key, so that each of many concurrent calls can check it got its own answer.
    return { item: request.key, size: request.key.length };
  },
};

async function startServer(port = 0): Promise<{ server: Server; port: number }> {
  const server = new Server();
  addService(server, PartitionService, service);
  return { server, port: await listen(server, '127.0.0.1', port) };
}

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

describe('direct unary calls', () => {
  let running: { server: Server; port: number };
  let client: ClientOf<typeof PartitionService>;

  beforeAll(async () => {
    running = await startServer();
    client = createClient(PartitionService, `127.0.0.1:${running.port}`, { directUnary: true });
  });

  afterAll(async () => {
    client?.close();
    if (running !== undefined) await shutdown(running.server);
  });

  it('answers 500 concurrent calls, each with its own answer', async () => {
    const keys = Array.from({ length: 500 }, (_, i) => `key-${i}`);
    const answers = await Promise.all(keys.map((key) => client.get({ target, key: bytes(key) })));
    expect(answers.map((answer) => text(answer.item))).toEqual(keys);
  });

  it('sends the request metadata', async () => {
    const metadata = new Metadata();
    metadata.set('x-shoal-test', 'router-7');
    await client.get({ target, table: { name: 'metadata' } }, { metadata });
    expect(seen.metadata).toEqual(['router-7']);
  });

  it('carries an error status, its percent-encoded message and its typed detail', async () => {
    const error = await failure(client.get({ target, table: { name: 'refused' } }));
    expect(error.code).toBe(Status.FAILED_PRECONDITION);
    expect(error.message).toBe('nicht hier: 100% sicher, ünicode ✓');
    expect(error.detail(ErrorDetailSchema)?.kind).toMatchObject({ case: 'partitionNotFound', value: { partitionId: 42n } });
  });

  it('cancels the call at its deadline, which aborts the handler signal on the server', async () => {
    const before = seen.aborted;
    const error = await failure(client.get({ target, table: { name: 'slow' } }, { timeoutMs: 50 }));
    expect(error.code).toBe(Status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 200 && seen.aborted === before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen.aborted).toBe(before + 1);
    expect(text((await client.get({ target, key: bytes('after') })).item)).toBe('after');
  });

  it('fails a call to an address nobody listens on with "No connection established", then fails fast while backing off', async () => {
    // A port the OS just released: nobody listens on it.
    const port = await freePort();
    const nowhere = createClient(PartitionService, `127.0.0.1:${port}`, { directUnary: true });
    try {
      const first = await failure(nowhere.get({ target }, { timeoutMs: 5_000 }));
      expect(first.code).toBe(Status.UNAVAILABLE);
      expect(first.message).toContain('No connection established');
      const second = await failure(nowhere.get({ target }, { timeoutMs: 5_000 }));
      expect(second.code).toBe(Status.UNAVAILABLE);
      expect(second.message).toContain('No connection established. Last error:');
    } finally {
      nowhere.close();
    }
  });

  it('connects again once the server is back on its port', async () => {
    const first = await startServer();
    const address = `127.0.0.1:${first.port}`;
    const restarting = createClient(PartitionService, address, { directUnary: true });
    let second: { server: Server; port: number } | undefined;
    try {
      expect(text((await restarting.get({ target, key: bytes('one') })).item)).toBe('one');
      await shutdown(first.server);
      const down = await failure(restarting.get({ target, key: bytes('down') }));
      expect(down.code).toBe(Status.UNAVAILABLE);
      second = await startServer(first.port);
      // Bounded by attempts: the reconnect backoff is at most 2 s, the loop allows 10 s.
      let answer: string | undefined;
      for (let attempt = 0; attempt < 100 && answer === undefined; attempt++) {
        answer = await restarting.get({ target, key: bytes('two') }).then(
          (response) => text(response.item),
          async () => {
            await new Promise((resolve) => setTimeout(resolve, 100));
            return undefined;
          },
        );
      }
      expect(answer).toBe('two');
    } finally {
      restarting.close();
      if (second !== undefined) await shutdown(second.server);
    }
  });

  it('fails calls after close() without connecting', async () => {
    const closed = createClient(PartitionService, `127.0.0.1:${running.port}`, { directUnary: true });
    closed.close();
    const error = await failure(closed.get({ target }));
    expect(error.code).toBe(Status.UNAVAILABLE);
    expect(error.message).toContain('the client is closed');
  });
});
