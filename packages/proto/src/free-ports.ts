/**
 * Ports free now, for addresses that must be known before their servers start (a node's meta peers, a
 * cluster's layout). Each is free when asked; something else may take it before it is used, so a
 * caller that cannot retry should listen on port 0 instead.
 *
 * They are picked at random BELOW the kernel's ephemeral range (Linux: ip_local_port_range), not
 * asked of the kernel with port 0: the kernel hands out ports of that range to every outgoing
 * connection and every listen on port 0, so a port it just gave here was soon given again to a
 * connection of a busy machine (a test run saw a node fail to start with EADDRINUSE). Below the range
 * only another caller picking the same port at random could take it first. Where the range is unknown
 * (another OS), the kernel picks.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';

/** The lowest port picked at random: above the registered ports most services use. */
const LOWEST_PICKED = 10_000;
/** Random ports tried for each one asked for before giving up (a port in use is skipped). */
const PICKS_PER_PORT = 100;

/** `count` distinct free ports on `host` (held open together while asked for, so never the same twice). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const range = await pickedRange();
  const attempts = await Promise.allSettled(Array.from({ length: count }, () => (range === undefined ? listening(host, 0) : listeningInRange(host, range))));
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

/** The ports below the kernel's ephemeral range, [low, high]; undefined where the range is unknown or leaves none. */
async function pickedRange(): Promise<[number, number] | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return undefined;
  }
  const ephemeralLow = Number(text.trim().split(/\s+/)[0]);
  return Number.isInteger(ephemeralLow) && ephemeralLow - 1 > LOWEST_PICKED + 1_000 ? [LOWEST_PICKED, ephemeralLow - 1] : undefined;
}

/** A server listening on a random free port of `range`; a port in use is skipped, any other failure thrown. */
async function listeningInRange(host: string, [low, high]: [number, number]): Promise<Server> {
  let last: unknown;
  for (let pick = 0; pick < PICKS_PER_PORT; pick++) {
    try {
      return await listening(host, low + Math.floor(Math.random() * (high - low + 1)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      last = error;
    }
  }
  throw last;
}

async function listening(host: string, port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, host, done);
  });
  return server;
}
