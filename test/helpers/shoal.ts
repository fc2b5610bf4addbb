import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { startRouter } from '@shoal/router';
import type { Credentials, Router } from '@shoal/router';
import { openLocalStore } from '@shoal/storage';
import { afterAll, beforeAll } from 'vitest';
import type { NodeCluster } from './cluster.ts';

/**
 * A Shoal under test with real AWS SDK clients: a router and local store inside the test process, or,
 * when SHOAL_TARGET=cluster (the `cluster` Vitest project), a router inside the test process over
 * 3 storage node processes.
 */
export interface ShoalUnderTest {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  router: Router;
  close(): Promise<void>;
}

export interface StartShoalOptions {
  /** A data directory (persistent store); default: in memory. Local target only. */
  dataDir?: string;
  inMemory?: boolean;
  sync?: boolean;
  /** Clock in milliseconds for the router (TTL); default Date.now. */
  now?: () => number;
  /** TTL sweep timer; default 0 (off): tests call `router.sweepTtl()`. */
  ttlSweepIntervalMs?: number;
  /** Require SigV4 signatures by these credentials (default: no authentication). */
  credentials?: Credentials[];
}

/** SDK clients pointed at `endpoint`: dummy credentials by default, no retries so every error surfaces. */
export function sdkClients(
  endpoint: string,
  options: { credentials?: Credentials; systemClockOffset?: number } = {},
): { client: DynamoDBClient; doc: DynamoDBDocumentClient } {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: options.credentials ?? { accessKeyId: 'shoal', secretAccessKey: 'shoal' },
    systemClockOffset: options.systemClockOffset,
    maxAttempts: 1,
  });
  return { client, doc: DynamoDBDocumentClient.from(client) };
}

/** What the tests run against (SHOAL_TARGET): the one-process engine (default) or a cluster. */
export const SHOAL_TARGET: 'local' | 'cluster' = process.env.SHOAL_TARGET === 'cluster' ? 'cluster' : 'local';

export async function startShoal(options: StartShoalOptions = {}): Promise<ShoalUnderTest> {
  return SHOAL_TARGET === 'cluster' ? startClusterShoal(options) : startLocalShoal(options);
}

/**
 * The storage node processes of this test file's cluster target, shared by every Shoal the file
 * starts (each gets a router of its own, so its own clock) and stopped when the last one closes:
 * starting 3 processes per Shoal would dominate the suite's time. The file's tables all have
 * distinct names, as they do on one local store.
 */
let sharedNodes: { cluster: Promise<NodeCluster>; users: number } | undefined;

async function acquireNodes(): Promise<NodeCluster> {
  if (sharedNodes === undefined) {
    // Loaded here: the local target needs no gRPC.
    const { NodeCluster } = await import('./cluster.ts');
    sharedNodes ??= { cluster: NodeCluster.start(), users: 0 };
  }
  sharedNodes.users++;
  return sharedNodes.cluster;
}

async function releaseNodes(): Promise<void> {
  if (sharedNodes === undefined || --sharedNodes.users > 0) return;
  const { cluster } = sharedNodes;
  sharedNodes = undefined;
  await (await cluster).close();
}

/** A router in this process (so that `now` and `sweepTtl` still apply) over the file's storage node processes. */
async function startClusterShoal(options: StartShoalOptions): Promise<ShoalUnderTest> {
  if (options.dataDir !== undefined || options.sync !== undefined) {
    throw new Error('dataDir and sync choose a local store; a cluster target keeps its data in its node processes');
  }
  const { startClusterRouter } = await import('./cluster.ts');
  let front;
  try {
    const nodes = await acquireNodes();
    front = await startClusterRouter(nodes.metaAddresses, {
      now: options.now,
      ttlSweepIntervalMs: options.ttlSweepIntervalMs,
      credentials: options.credentials,
    });
  } catch (error) {
    await releaseNodes();
    throw error;
  }
  const { client, doc } = sdkClients(front.endpoint);
  return {
    endpoint: front.endpoint,
    client,
    doc,
    router: front.router,
    async close() {
      client.destroy();
      await front.close();
      await releaseNodes();
    },
  };
}

async function startLocalShoal(options: StartShoalOptions): Promise<ShoalUnderTest> {
  const store = await openLocalStore(
    options.dataDir === undefined
      ? { inMemory: true, sync: options.sync }
      : { dataDir: options.dataDir, sync: options.sync },
  );
  const router = await startRouter({
    partitions: store.partitions,
    catalog: store.catalog,
    host: '127.0.0.1',
    port: 0,
    now: options.now,
    ttlSweepIntervalMs: options.ttlSweepIntervalMs ?? 0,
    credentials: options.credentials,
  });
  const endpoint = `http://127.0.0.1:${router.port}`;
  const { client, doc } = sdkClients(endpoint);
  return {
    endpoint,
    client,
    doc,
    router,
    async close() {
      client.destroy();
      await router.close();
      await store.close();
    },
  };
}

/**
 * One Shoal for the whole test file: started before its first test, closed after its last. The
 * returned object is filled in when the file's beforeAll hooks run; those declared after this call
 * already see it (Vitest runs beforeAll hooks in order).
 */
export function shoalPerFile(options: StartShoalOptions = {}): ShoalUnderTest {
  const shoal = {} as ShoalUnderTest;
  beforeAll(async () => {
    Object.assign(shoal, await startShoal(options));
  });
  afterAll(async () => {
    // Nothing to close when startup itself failed; Vitest reports that failure.
    if (shoal.close !== undefined) await shoal.close();
  });
  return shoal;
}

/** Runs `body` against a Shoal of its own, closed afterwards whatever the outcome. */
export async function withShoal(options: StartShoalOptions, body: (shoal: ShoalUnderTest) => Promise<void>): Promise<void> {
  const shoal = await startShoal(options);
  try {
    await body(shoal);
  } finally {
    await shoal.close();
  }
}
