import { createServer } from 'node:net';
import { MessageChannel, Worker } from 'node:worker_threads';
import { serveEngineChannel } from './engine-channel.ts';
import type { EngineHost } from './engine-channel.ts';
import type { HttpWorkerCommand, HttpWorkerData, HttpWorkerMessage } from './http-worker.ts';
import type { HttpFrontEnd } from './server.ts';

/**
 * The DynamoDB HTTP front end on worker threads: each worker listens on the same port (SO_REUSEPORT,
 * so the kernel spreads connections over them) and reaches the store through an engine channel
 * served here, on the thread that owns it.
 */

export interface HttpWorkersOptions {
  count: number;
  host: string;
  /** 0: the first worker's OS-assigned port, then shared by the others. */
  port: number;
  region: string;
  credentials?: ReadonlyMap<string, string>;
  engine: EngineHost;
  /** The Int32 the engine's catalog bumps on every change (`versionedCatalog`). */
  catalogVersion: SharedArrayBuffer;
}

const WORKER_URL = new URL('./http-worker.ts', import.meta.url);

/** Fails when another socket holds the port: SO_REUSEPORT would otherwise let two servers share it. */
async function checkPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

interface RunningWorker {
  worker: Worker;
  /** Set once the worker was asked to stop: its exit is then expected. */
  stopping: boolean;
  exited: Promise<void>;
}

export async function startHttpWorkers(options: HttpWorkersOptions): Promise<HttpFrontEnd> {
  if (options.port !== 0) await checkPortFree(options.host, options.port);
  const running = new Set<RunningWorker>();
  let closing = false;

  /** Starts one worker on `port`; resolves with the port it listens on. */
  const startWorker = (port: number): Promise<number> => {
    const channel = new MessageChannel();
    serveEngineChannel(channel.port1, options.engine);
    const data: HttpWorkerData = {
      host: options.host,
      port,
      region: options.region,
      credentials: options.credentials === undefined ? undefined : [...options.credentials],
      catalogVersion: options.catalogVersion,
      engine: channel.port2,
    };
    const worker = new Worker(WORKER_URL, { workerData: data, transferList: [channel.port2] });
    let listening = false;
    const entry: RunningWorker = {
      worker,
      stopping: false,
      exited: new Promise((resolve) => worker.once('exit', () => resolve())),
    };
    running.add(entry);
    return new Promise<number>((resolve, reject) => {
      worker.on('message', (message: HttpWorkerMessage) => {
        if (message.kind === 'listening') {
          listening = true;
          resolve(message.port);
        }
      });
      worker.on('error', (error) => {
        if (listening) console.error('shoal router: HTTP worker failed:', error);
        else reject(error);
      });
      worker.once('exit', (code) => {
        running.delete(entry);
        channel.port1.close();
        if (!listening) {
          reject(new Error(`HTTP worker exited with code ${code} before listening`));
          return;
        }
        if (entry.stopping || closing) return;
        // Its connections are lost, but the port stays served: the others keep listening.
        console.error(`shoal router: HTTP worker exited unexpectedly (code ${code}); starting another`);
        startWorker(actualPort).catch((error: unknown) => console.error('shoal router: could not restart an HTTP worker:', error));
      });
    });
  };

  const stopAll = async (): Promise<void> => {
    closing = true;
    const workers = [...running];
    for (const entry of workers) {
      entry.stopping = true;
      entry.worker.postMessage({ kind: 'close' } satisfies HttpWorkerCommand);
    }
    await Promise.all(workers.map((entry) => entry.exited));
  };

  let actualPort = options.port;
  try {
    actualPort = await startWorker(options.port);
    await Promise.all(Array.from({ length: options.count - 1 }, () => startWorker(actualPort)));
  } catch (error) {
    await stopAll();
    throw error;
  }
  return { port: actualPort, close: stopAll };
}
