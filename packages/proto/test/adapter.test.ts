import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorDetailSchema,
  Metadata,
  MetaService,
  NodeState,
  RpcError,
  Server,
  Status,
  addService,
  createClient,
  listen,
  shutdown,
} from '../src/index.ts';
import type { ClientOf, GetPartitionMapResponse } from '../src/index.ts';

/**
 * The adapter's server-streaming path, metadata and flow control, against a server in this process
 * so the handlers' side can be observed (the cross-process tests are in grpc.test.ts).
 */

const server = new Server();
let client: ClientOf<typeof MetaService>;
/** Settles when a watch handler has stopped, with how it stopped. */
let watchEnded: Promise<string> = Promise.resolve('none');

const KEY_BYTES = 10_000;

beforeAll(async () => {
  addService(server, MetaService, {
    async *watchPartitionMap(request, context) {
      let ended!: (how: string) => void;
      watchEnded = new Promise((resolve) => (ended = resolve));
      try {
        // known_version 0: an endless watch; otherwise that many versions, then the end.
        for (let version = 1n; request.knownVersion === 0n || version <= request.knownVersion; version++) {
          // Large answers, so that the server must wait for the client to drain them.
          yield { version, partitions: [{ id: version, startKey: new Uint8Array(KEY_BYTES).fill(Number(version % 256n)) }] };
          if (request.knownVersion === 7n && version === 2n) {
            throw RpcError.withDetail(Status.NOT_FOUND, 'map gone', ErrorDetailSchema, {
              kind: { case: 'partitionNotFound', value: { partitionId: 2n } },
            });
          }
        }
        ended('completed');
      } finally {
        ended(context.signal.aborted ? 'cancelled' : 'failed');
      }
    },
    async registerNode(request, context) {
      const [previous] = context.metadata.get('x-previous-id');
      return { nodeId: request.nodeId === 0n ? BigInt(String(previous ?? '0')) + 1n : request.nodeId };
    },
    async heartbeat() {
      return { state: NodeState.UP, mapVersion: 1n };
    },
  });
  const port = await listen(server, '127.0.0.1', 0);
  client = createClient(MetaService, `127.0.0.1:${port}`);
});

afterAll(async () => {
  client?.close();
  await shutdown(server);
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

describe('server streams', () => {
  it('deliver every response in order, through flow control', async () => {
    const responses = await collect(client.watchPartitionMap({ knownVersion: 1000n }));
    expect(responses.map((r) => r.version)).toEqual(Array.from({ length: 1000 }, (_, i) => BigInt(i + 1)));
    expect(responses.every((r) => r.partitions[0]?.startKey.length === KEY_BYTES)).toBe(true);
    expect(await watchEnded).toBe('completed');
  });

  it('cancel the server handler when the client stops reading', async () => {
    const seen: GetPartitionMapResponse[] = [];
    for await (const response of client.watchPartitionMap({ knownVersion: 0n })) {
      seen.push(response);
      if (seen.length === 3) break;
    }
    expect(seen.map((r) => r.version)).toEqual([1n, 2n, 3n]);
    expect(await watchEnded).toBe('cancelled');
  });

  it('cancel on the caller signal', async () => {
    const controller = new AbortController();
    const error: unknown = await (async () => {
      for await (const response of client.watchPartitionMap({ knownVersion: 0n }, { signal: controller.signal })) {
        if (response.version === 2n) controller.abort();
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(Status.CANCELLED);
    expect(await watchEnded).toBe('cancelled');
  });

  it('end with the handler error and its detail after the responses already sent', async () => {
    const versions: bigint[] = [];
    const error: unknown = await (async () => {
      for await (const response of client.watchPartitionMap({ knownVersion: 7n })) versions.push(response.version);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(versions).toEqual([1n, 2n]);
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(Status.NOT_FOUND);
    expect((error as RpcError).detail(ErrorDetailSchema)?.kind).toMatchObject({ case: 'partitionNotFound', value: { partitionId: 2n } });
  });
});

describe('unary calls', () => {
  it('carry request metadata to the handler', async () => {
    const metadata = new Metadata();
    metadata.set('x-previous-id', '41');
    expect((await client.registerNode({ address: '127.0.0.1:1' }, { metadata })).nodeId).toBe(42n);
    expect((await client.registerNode({ address: '127.0.0.1:1', nodeId: 5n })).nodeId).toBe(5n);
  });

  it('answer UNIMPLEMENTED for the methods not served', async () => {
    const error = await client.listTables({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(Status.UNIMPLEMENTED);
  });

  it('answer UNAVAILABLE when nothing listens', async () => {
    const probe = new Server();
    const port = await listen(probe, '127.0.0.1', 0);
    await shutdown(probe);
    const orphan = createClient(MetaService, `127.0.0.1:${port}`);
    try {
      const error = await orphan.heartbeat({ nodeId: 1n }, { timeoutMs: 5_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RpcError);
      expect((error as RpcError).code).toBe(Status.UNAVAILABLE);
    } finally {
      orphan.close();
    }
  });

  it('are cancelled by a shutdown whose grace has run out', async () => {
    const stuck = new Server();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    addService(stuck, MetaService, {
      async heartbeat(_request, context) {
        started();
        await new Promise((resolve) => context.signal.addEventListener('abort', resolve, { once: true }));
        return {};
      },
    });
    const port = await listen(stuck, '127.0.0.1', 0);
    const caller = createClient(MetaService, `127.0.0.1:${port}`);
    try {
      const call = caller.heartbeat({ nodeId: 1n }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await running;
      await shutdown(stuck, 100);
      const error = await call;
      expect(error).toBeInstanceOf(RpcError);
      expect((error as RpcError).code).toBe(Status.CANCELLED);
    } finally {
      caller.close();
    }
  });
});
