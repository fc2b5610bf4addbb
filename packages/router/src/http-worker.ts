import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { createEngineContext, dispatch } from './dispatch.ts';
import { EngineChannelClient } from './engine-channel.ts';
import type { OperationRunner } from './server.ts';
import { startHttpFrontEnd } from './server.ts';

/**
 * An HTTP worker thread (`startRouter` with `httpWorkers`): the DynamoDB HTTP front end on the shared
 * port, the item operations run here over the engine thread's store, everything else handed over.
 */

export interface HttpWorkerData {
  host: string;
  port: number;
  region: string;
  /** [accessKeyId, secretAccessKey] pairs; absent: requests are not authenticated. */
  credentials?: Array<[string, string]>;
  /** One Int32 the engine thread bumps on each catalog change (see EngineChannelClient). */
  catalogVersion: SharedArrayBuffer;
  engine: MessagePort;
}

/** Messages between the engine thread and a worker on the worker's parentPort. */
export type HttpWorkerMessage = { kind: 'listening'; port: number } | { kind: 'closed' };
export type HttpWorkerCommand = { kind: 'close' };

/**
 * Operations a worker runs itself: they need the partitions and table records only. The others need
 * the router's single table lock, its background work, or the clock tests inject (TTL and the
 * ClientRequestToken claims of TransactWriteItems), all kept on the engine thread.
 */
export const WORKER_OPERATIONS: ReadonlySet<string> = new Set([
  'GetItem',
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'Query',
  'Scan',
  'BatchGetItem',
  'BatchWriteItem',
  'TransactGetItems',
]);

const refuse = (): never => {
  throw new Error('table management runs on the engine thread, not in an HTTP worker');
};

async function main(data: HttpWorkerData, parent: MessagePort): Promise<void> {
  const client = new EngineChannelClient(data.engine, new Int32Array(data.catalogVersion));
  const ctx = createEngineContext(client.catalog, client.partitions, Date.now);
  const runOperation: OperationRunner = (operation, body, operationCtx, request) =>
    WORKER_OPERATIONS.has(operation) ? dispatch(operation, body, operationCtx, request) : client.runOnEngine(operation, body, operationCtx, request);
  const http = await startHttpFrontEnd({
    ctx,
    host: data.host,
    port: data.port,
    region: data.region,
    services: { region: data.region, tableLock: refuse, background: refuse },
    credentials: data.credentials === undefined ? undefined : new Map(data.credentials),
    reusePort: true,
    runOperation,
  });
  parent.on('message', (command: HttpWorkerCommand) => {
    if (command.kind !== 'close') return;
    void http.close().then(() => {
      client.close();
      parent.postMessage({ kind: 'closed' } satisfies HttpWorkerMessage);
      parent.close();
    });
  });
  parent.postMessage({ kind: 'listening', port: http.port } satisfies HttpWorkerMessage);
}

if (parentPort === null) throw new Error('http-worker.ts runs as a worker thread');
await main(workerData as HttpWorkerData, parentPort);
