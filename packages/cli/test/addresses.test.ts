import { describe, expect, it } from 'vitest';
import { parseHostPort, parseMetaPeers } from '../src/addresses.ts';

describe('command line addresses', () => {
  it('splits host:port, IPv6 in brackets too', () => {
    expect(parseHostPort('127.0.0.1:7001')).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(parseHostPort('shoal-storage-0.shoal-storage.shoal.svc.cluster.local:7000')).toEqual({
      host: 'shoal-storage-0.shoal-storage.shoal.svc.cluster.local',
      port: 7000,
    });
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
  });

  it('refuses an address without a valid port', () => {
    expect(() => parseHostPort('localhost')).toThrow('is not host:port');
    expect(() => parseHostPort(':7000')).toThrow('is not host:port');
    expect(() => parseHostPort('localhost:70000')).toThrow('has no valid port');
    expect(() => parseHostPort('localhost:x')).toThrow('has no valid port');
  });

  it('reads the meta group as id=host:port pairs', () => {
    expect(parseMetaPeers('1=127.0.0.1:7001,2=127.0.0.1:7002, 3=127.0.0.1:7003')).toEqual([
      { nodeId: 1, address: '127.0.0.1:7001' },
      { nodeId: 2, address: '127.0.0.1:7002' },
      { nodeId: 3, address: '127.0.0.1:7003' },
    ]);
  });

  it('refuses node ids below 1, missing ids and a node named twice', () => {
    expect(() => parseMetaPeers('0=127.0.0.1:7001')).toThrow('is not <node id>=<host:port>');
    expect(() => parseMetaPeers('127.0.0.1:7001')).toThrow('is not <node id>=<host:port>');
    expect(() => parseMetaPeers('1=a:1,1=b:2')).toThrow('name a node id twice');
    expect(() => parseMetaPeers('1=nowhere')).toThrow('is not host:port');
  });
});
