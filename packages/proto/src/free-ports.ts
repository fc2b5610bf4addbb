/**
 * Ports the OS hands out free, for addresses that must be known before their servers start (a node's
 * meta peers, a cluster's layout). Each is free when asked; something else may take it before it is
 * used, so a caller that cannot retry should listen on port 0 instead.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';

/** `count` distinct free ports on `host` (held open together while asked for, so never the same twice). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const attempts = await Promise.allSettled(Array.from({ length: count }, () => listening(host)));
  const servers = attempts.flatMap((attempt) => (attempt.status === 'fulfilled' ? [attempt.value] : []));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  // Closed also when another could not listen: none stays open behind a failure.
  await Promise.all(servers.map((server) => new Promise<void>((closed) => server.close(() => closed()))));
  const failed = attempts.find((attempt) => attempt.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return ports;
}

/** One free port on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port;
}

async function listening(host: string): Promise<Server> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, host, done);
  });
  return server;
}
