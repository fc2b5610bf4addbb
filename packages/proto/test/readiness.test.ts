import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answersReady, freePort } from '@shoal/proto';

describe('answersReady', () => {
  let ready = false;
  const paths: string[] = [];
  let server: Server;
  let port: number;
  /** Answers nothing until closed. */
  let silent: Server;
  let silentPort: number;

  beforeAll(async () => {
    server = createServer((request, response) => {
      paths.push(request.url ?? '');
      response.writeHead(ready ? 200 : 503).end(ready ? 'ready\n' : 'waiting for the partition map\n');
    });
    silent = createServer(() => {});
    for (const s of [server, silent]) await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
    port = (server.address() as AddressInfo).port;
    silentPort = (silent.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of [server, silent]) {
      s.closeAllConnections();
      await new Promise<void>((done) => s.close(() => done()));
    }
  });

  it('is true once /readyz answers 200, false while it answers otherwise', async () => {
    ready = false;
    expect(await answersReady('127.0.0.1', port)).toBe(false);
    ready = true;
    expect(await answersReady('127.0.0.1', port)).toBe(true);
    expect(paths).toEqual(['/readyz', '/readyz']);
  });

  it('is false where nothing listens', async () => {
    expect(await answersReady('127.0.0.1', await freePort())).toBe(false);
  });

  it('is false when no answer comes within the timeout', async () => {
    expect(await answersReady('127.0.0.1', silentPort, 100)).toBe(false);
  });
});
