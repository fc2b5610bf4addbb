import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
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

  it('picks them below the kernel\'s ephemeral range, which outgoing connections and port-0 listens take from', async () => {
    const [ephemeralLow] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    for (const port of await freePorts(20)) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
  });

  it('skips a port in use and picks another', async () => {
    const [ephemeralLow] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    const held = createServer();
    const [port] = await freePorts(1);
    await new Promise<void>((done) => held.listen(port, '127.0.0.1', done));
    // The first pick falls on the held port.
    const random = vi.spyOn(Math, 'random').mockReturnValueOnce((port - 10_000 + 0.5) / (ephemeralLow - 10_000));
    try {
      const [other] = await freePorts(1);
      expect(random).toHaveBeenCalledTimes(2);
      expect(other).not.toBe(port);
      await listenOn(other);
    } finally {
      random.mockRestore();
      await new Promise<void>((closed) => held.close(() => closed()));
    }
  });

  it('fails on an address this machine does not have', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a local address.
    await expect(freePorts(2, '192.0.2.1')).rejects.toThrow(/EADDRNOTAVAIL/);
  });
});
