import { AdminService, createClient } from '@shoal/proto';
import { callMetaLeader, fetchClusterStatus, type ClusterStatus, type NodeRow } from './admin-status.ts';

/**
 * `shoal admin drain <node-id> [--wait]`: marks the node draining (AdminService.Drain on the meta
 * leader); the placement driver then moves its partition replicas to the other nodes, one Raft
 * membership change at a time, and their leaderships with them. With `--wait` it follows the move
 * (AdminService.Status) until the map places no replica on the node and the node reports hosting
 * none, so that it can be stopped without loss.
 * `shoal admin undrain <node-id>` cancels a drain.
 */

const CALL_TIMEOUT_MS = 5_000;
/** Between two looks at the node's replicas while waiting. */
const POLL_MS = 1_000;

export interface AdminDrainOptions {
  meta: string[];
  nodeId: number;
  /** Wait until the node holds no replica. */
  wait?: boolean;
  /** How long to wait, in seconds (default 600). */
  timeoutSeconds?: number;
  json?: boolean;
  /** Where progress lines go (default stdout). */
  write?: (text: string) => void;
}

/**
 * The partitions on `nodeId` that no up node can take: every up node other than it already holds a
 * replica (the placement driver only moves a replica to an up node without one).
 */
export function drainBlockers(status: ClusterStatus, nodeId: number): number[] {
  const up = status.nodes.filter((node) => node.state === 'up' && node.id !== nodeId).map((node) => node.id);
  return status.partitions
    .filter((partition) => {
      const holders = new Set(partition.replicas.map((replica) => Number.parseInt(replica, 10)));
      return holders.has(nodeId) && up.every((id) => holders.has(id));
    })
    .map((partition) => partition.id);
}

/**
 * Whether a node is drained: the map places no replica on it and it let go of those it hosted (a
 * down node's last report is stale: it deletes its replicas once back, before it serves).
 */
export function isDrained(row: NodeRow): boolean {
  return row.replicas === 0 && (row.hosted === 0 || row.state === 'down');
}

async function nodeRow(meta: readonly string[], nodeId: number): Promise<NodeRow> {
  const { nodes } = await fetchClusterStatus(meta);
  const row = nodes.find((node) => node.id === nodeId);
  if (row === undefined) throw new Error(`the meta group knows no node ${nodeId}`);
  return row;
}

export async function runAdminDrain(options: AdminDrainOptions): Promise<void> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const { remainingReplicas } = await callMetaLeader(options.meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.drain({ nodeId: BigInt(options.nodeId) }, { timeoutMs: CALL_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
  const blocked = drainBlockers(await fetchClusterStatus(options.meta), options.nodeId);
  if (blocked.length > 0) {
    process.stderr.write(
      `shoal: warning: no up node can take the replicas of partition(s) ${blocked.join(', ')} (every other up node holds one already): the drain waits for another node, or undrain ${options.nodeId}\n`,
    );
  }
  if (!options.wait) {
    write(options.json ? `${JSON.stringify({ nodeId: options.nodeId, state: 'draining', replicas: remainingReplicas })}\n` : `node ${options.nodeId}: draining, ${remainingReplicas} replica(s) to move\n`);
    return;
  }
  if (!options.json) write(`node ${options.nodeId}: draining, ${remainingReplicas} replica(s) to move\n`);
  const deadline = Date.now() + (options.timeoutSeconds ?? 600) * 1000;
  let reported = remainingReplicas;
  for (;;) {
    const row = await nodeRow(options.meta, options.nodeId);
    if (isDrained(row)) {
      write(options.json ? `${JSON.stringify({ nodeId: row.id, state: row.state, replicas: 0 })}\n` : `node ${row.id}: drained, no replica left: it can be stopped\n`);
      return;
    }
    const left = Math.max(row.replicas, row.hosted);
    if (left !== reported && !options.json) write(`node ${row.id}: ${left} replica(s) left\n`);
    reported = left;
    if (Date.now() > deadline) {
      throw new Error(`node ${row.id} still holds ${reported} replica(s) after ${options.timeoutSeconds ?? 600} s (shoal admin status shows which; a move needs a live majority of the partition and another up node)`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function runAdminUndrain(options: { meta: string[]; nodeId: number; json?: boolean }): Promise<void> {
  await callMetaLeader(options.meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.undrain({ nodeId: BigInt(options.nodeId) }, { timeoutMs: CALL_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
  const row = await nodeRow(options.meta, options.nodeId);
  process.stdout.write(options.json ? `${JSON.stringify({ nodeId: row.id, state: row.state, replicas: row.replicas })}\n` : `node ${row.id}: ${row.state}, takes replicas again (${row.replicas} now)\n`);
}
