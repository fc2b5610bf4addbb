import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProcessMetrics } from './metrics.ts';

/**
 * The operations endpoint of every Shoal process: `/metrics` (Prometheus), `/healthz` (the process
 * answers and needs no restart) and `/readyz` (200 once the process can serve, else 503), as Kubernetes probes expect.
 */

export interface OpsServerOptions {
  host: string;
  /** 0 lets the OS choose. */
  port: number;
  metrics: ProcessMetrics;
  /** Whether the process can serve; when not, what it waits for (the body of a 503 /readyz). */
  readiness(): { ready: boolean; waitingFor?: string };
  /** Whether the process can go on without a restart (the liveness probe); healthy when absent. */
  health?(): { healthy: boolean; problem?: string };
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (status: number, body: string, contentType = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'method not allowed\n');
    switch (path) {
      case '/healthz': {
        const health = options.health?.() ?? { healthy: true };
        return health.healthy ? answer(200, 'ok\n') : answer(503, `unhealthy${health.problem === undefined ? '' : `: ${health.problem}`}\n`);
      }
      case '/readyz': {
        const { ready, waitingFor } = options.readiness();
        return ready ? answer(200, 'ready\n') : answer(503, `not ready${waitingFor === undefined ? '' : `: waiting for ${waitingFor}`}\n`);
      }
      case '/metrics':
        options.metrics.scrape().then(
          (text) => answer(200, text, options.metrics.contentType),
          (error: unknown) => answer(500, `metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
        );
        return;
      default:
        return answer(404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  });
  // Probes open a connection per request; idle keep-alive sockets must not hold close() up.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}
