import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, freePorts } from '@shoal/proto';

function listenOn(port: number): Promise<void> {
  const server = createServer();
  return new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => server.close(() => done()));
  });
}

describe('freePorts', () => {
  it('answers distinct ports a server can then listen on', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const port of ports) {
      expect(port).toBeGreaterThan(0);
      await listenOn(port);
    }
  });

  it('answers one port with freePort', async () => {
    const port = await freePort();
    expect(Number.isInteger(port) && port > 0 && port < 65536).toBe(true);
    await listenOn(port);
  });

  it('fails on an address this machine does not have', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a local address.
    await expect(freePorts(2, '192.0.2.1')).rejects.toThrow(/EADDRNOTAVAIL/);
  });
});
