/**
 * Readiness of storage nodes in this process (two meta peers): a node is not ready before it is
 * registered with the meta group and says so, both are ready once the group has its majority, and a
 * registered node whose meta group lost its leader is not ready again, naming what it waits for.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStorageNode, type MetaPeer, type NodeLog, type StorageNode } from '@shoal/node';
import { freePorts } from '@shoal/proto';
import { eventually } from './fixtures/eventually.ts';

const quiet: NodeLog = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

describe('startStorageNode: readiness', () => {
  let root = '';
  let peers: MetaPeer[] = [];
  const nodes = new Map<number, StorageNode>();

  const start = async (nodeId: number): Promise<StorageNode> => {
    const peer = peers.find((p) => p.nodeId === nodeId)!;
    const node = await startStorageNode({
      nodeId,
      dataDir: join(root, `node-${nodeId}`),
      host: '127.0.0.1',
      port: Number(peer.address.split(':')[1]),
      metaPeers: peers,
      tickMs: 10,
      heartbeatIntervalMs: 100,
      log: quiet,
    });
    nodes.set(nodeId, node);
    return node;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-storage-node-readiness-'));
    peers = (await freePorts(2)).map((port, index) => ({ nodeId: index + 1, address: `127.0.0.1:${port}` }));
  });

  afterAll(async () => {
    for (const node of nodes.values()) await node.close();
    await rm(root, { recursive: true, force: true });
  });

  it('waits for its registration while the meta group has no majority', async () => {
    const first = await start(1);
    // Its one peer of two cannot elect a meta leader: nothing can register it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(first.readiness()).toEqual({ ready: false, waitingFor: 'registration with the meta group' });
    expect(first.isReady()).toBe(false);
    expect(first.metrics().ready).toBe(0);
  });

  it('is ready once the meta group has its majority, registered and holding a map', async () => {
    await start(2);
    await eventually(async () => ([...nodes.values()].every((node) => node.isReady()) ? true : undefined), 'both ready');
    for (const node of nodes.values()) {
      expect(node.readiness()).toEqual({ ready: true });
      expect(node.metrics().ready).toBe(1);
    }
  });

  it('is not ready again when its meta group loses its leader, and says so', async () => {
    await nodes.get(2)!.close();
    nodes.delete(2);
    const first = nodes.get(1)!;
    // The leader steps down without a quorum (check quorum); the follower knows no leader.
    await eventually(async () => (first.isReady() ? undefined : true), 'node 1 not ready');
    expect(first.readiness()).toEqual({ ready: false, waitingFor: 'a leader of the meta group' });
  });
});
