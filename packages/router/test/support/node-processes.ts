/**
 * Storage nodes (startStorageNode through the storage-node-process fixture) as child processes on
 * loopback, each a meta peer, for the router's cluster tests; stopped (SIGTERM, then SIGKILL) and their
 * data removed by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StorageNodeOptions } from '@shoal/node';
import { freePorts } from '@shoal/proto';

const FIXTURE = fileURLToPath(new URL('./storage-node-process.ts', import.meta.url));

export interface NodeProcesses {
  /** The nodes' gRPC addresses (every node is a meta peer). */
  metaAddresses: string[];
  stop(): Promise<void>;
}

/** What a test may set of every node's options: data only (they reach the process as JSON), no clock. */
export interface NodeProcessOptions {
  heartbeatIntervalMs?: StorageNodeOptions['heartbeatIntervalMs'];
  load?: Omit<NonNullable<StorageNodeOptions['load']>, 'now'>;
  faultInjection?: StorageNodeOptions['faultInjection'];
}

/** Starts a node process per id, each with `options`; resolves once every one printed that it is ready. */
export async function startNodeProcesses(nodeIds: readonly number[], name: string, options: NodeProcessOptions = {}): Promise<NodeProcesses> {
  const root = await mkdtemp(join(tmpdir(), `shoal-router-${name}-`));
  const children: ChildProcess[] = [];
  const ports = await freePorts(nodeIds.length);
  const metaAddresses = ports.map((port) => `127.0.0.1:${port}`);
  const metaPeers = nodeIds.map((nodeId, i) => ({ nodeId, address: metaAddresses[i] }));
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    await rm(root, { recursive: true, force: true });
  };
  const startNode = (nodeId: number, port: number): Promise<void> => {
    const nodeOptions = { ...options, nodeId, dataDir: join(root, `node-${nodeId}`), host: '127.0.0.1', port, metaPeers };
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify(nodeOptions)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    return new Promise((resolve, reject) => {
      let stdout = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('\n')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`node ${nodeId} exited with ${code} before it was ready: ${stderr}`)));
    });
  };
  try {
    await Promise.all(nodeIds.map((id, i) => startNode(id, ports[i])));
  } catch (error) {
    await stop();
    throw error;
  }
  return { metaAddresses, stop };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
