import { AdminService, createClient, NodeState, partitionDescriptorFromWire } from '@shoal/proto';
import type { StatusResponse } from '@shoal/proto';
import { callMetaLeader, fetchAdminStatus, reportedLeader, reportsByPartition } from './admin-status.ts';

/**
 * `shoal admin move <partition> --from <node> --to <node> [--wait]`: moves one replica of a
 * partition (AdminService.Move on the meta leader): the map puts the target in the source's place at
 * once, then the partition's leader adds the target as a learner, promotes it once caught up and
 * removes the source. With `--wait` it follows the move (AdminService.Status) until the map and the
 * nodes' reports agree: the target reports its replica in the role the map gives it, the source
 * reports none.
 *
 * `shoal admin transfer-leader <partition> <node> [--wait]`: asks the partition's leader to hand its
 * leadership to the node, a voter of it (AdminService.TransferLeader); with `--wait` until the node
 * reports leading it.
 */

/** Move and TransferLeader answer once recorded (a meta command), not when done. */
const CALL_TIMEOUT_MS = 10_000;
/** Between two looks at the cluster while waiting. */
const POLL_MS = 500;

export interface AdminMoveOptions {
  meta: string[];
  partitionId: number;
  from: number;
  to: number;
  /** Wait until the move is done. */
  wait?: boolean;
  /** How long to wait, in seconds (default 600). */
  timeoutSeconds?: number;
  json?: boolean;
  /** Where output goes (default stdout). */
  write?: (text: string) => void;
}

export interface AdminTransferLeaderOptions {
  meta: string[];
  partitionId: number;
  nodeId: number;
  /** Wait until the node reports leading the partition. */
  wait?: boolean;
  /** How long to wait, in seconds (default 60; the meta leader asks for 30 s). */
  timeoutSeconds?: number;
  json?: boolean;
  write?: (text: string) => void;
}

/** How far a move went, as the meta leader's Status shows it. */
export type MoveProgress =
  /** The target reports its replica in the role the map gives it, the source (unless down) reports none. */
  | 'done'
  /** The map shows the move; the partition's group is still converging to it. */
  | 'moving'
  /** The partition is gone, or the map no longer places a replica on the target (moved on since). */
  | 'overtaken';

export function moveProgress(status: StatusResponse, partitionId: number, from: number, to: number): MoveProgress {
  const partition = status.partitions.find((p) => p.id === BigInt(partitionId));
  const wanted = partition?.replicas.find((r) => r.nodeId === BigInt(to));
  if (partition === undefined || wanted === undefined) return 'overtaken';
  if (partition.replicas.some((r) => r.nodeId === BigInt(from))) return 'moving';
  const reported = reportsByPartition(status).get(BigInt(partitionId)) ?? [];
  const targetReady = reported.some((report) => report.nodeId === BigInt(to) && report.load.role === wanted.role);
  const source = status.nodes.find((node) => node.node?.id === BigInt(from));
  // A down node's last report is stale: it deletes the replica once back, before it serves.
  const sourceGone = source?.node?.state === NodeState.DOWN || !reported.some((report) => report.nodeId === BigInt(from));
  return targetReady && sourceGone ? 'done' : 'moving';
}

/** The node that reports leading the partition in the latest term, if any. */
export function partitionLeader(status: StatusResponse, partitionId: number): number | undefined {
  const leader = reportedLeader(reportsByPartition(status).get(BigInt(partitionId)) ?? []);
  return leader === undefined ? undefined : Number(leader);
}

/** Polls Status until `done` holds of it (bounded by the deadline), and returns it; `describe` names what was awaited. */
async function waitFor(meta: readonly string[], done: (status: StatusResponse) => boolean, timeoutSeconds: number, describe: () => string): Promise<StatusResponse> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const status = await fetchAdminStatus(meta);
    if (done(status)) return status;
    if (Date.now() > deadline) throw new Error(`${describe()} after ${timeoutSeconds} s (shoal admin status shows the partition)`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

const replicaLabels = (replicas: readonly { nodeId: number; role: string }[]): string[] =>
  replicas.map((r) => (r.role === 'learner' ? `${r.nodeId}(learner)` : String(r.nodeId)));

export async function runAdminMove(options: AdminMoveOptions): Promise<void> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const { partitionId, from, to } = options;
  const response = await callMetaLeader(options.meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.move({ partitionId: BigInt(partitionId), fromNode: BigInt(from), toNode: BigInt(to) }, { timeoutMs: CALL_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
  const moved = partitionDescriptorFromWire(response.partition);
  const summary = { partition: partitionId, from, to, epoch: moved.epoch, replicas: replicaLabels(moved.replicas) };
  if (!options.wait) {
    write(options.json ? `${JSON.stringify({ ...summary, state: 'moving' })}\n` : `partition ${partitionId}: replica moving from node ${from} to node ${to} (epoch ${moved.epoch}, replicas ${summary.replicas.join(',')})\n`);
    return;
  }
  if (!options.json) write(`partition ${partitionId}: replica moving from node ${from} to node ${to} (epoch ${moved.epoch})\n`);
  const timeoutSeconds = options.timeoutSeconds ?? 600;
  const settled = await waitFor(
    options.meta,
    (status) => moveProgress(status, partitionId, from, to) !== 'moving',
    timeoutSeconds,
    () => `partition ${partitionId}: its group has not finished moving the replica from node ${from} to node ${to}`,
  );
  if (moveProgress(settled, partitionId, from, to) === 'overtaken') throw new Error(`partition ${partitionId} no longer places a replica on node ${to}: it was deleted or moved again meanwhile`);
  write(options.json ? `${JSON.stringify({ ...summary, state: 'moved' })}\n` : `partition ${partitionId}: moved from node ${from} to node ${to}\n`);
}

export async function runAdminTransferLeader(options: AdminTransferLeaderOptions): Promise<void> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const { partitionId, nodeId } = options;
  await callMetaLeader(options.meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.transferLeader({ partitionId: BigInt(partitionId), toNode: BigInt(nodeId) }, { timeoutMs: CALL_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
  if (!options.wait) {
    write(options.json ? `${JSON.stringify({ partition: partitionId, leader: nodeId, state: 'asked' })}\n` : `partition ${partitionId}: leadership transfer to node ${nodeId} asked\n`);
    return;
  }
  const timeoutSeconds = options.timeoutSeconds ?? 60;
  await waitFor(
    options.meta,
    (status) => partitionLeader(status, partitionId) === nodeId,
    timeoutSeconds,
    () => `node ${nodeId} does not lead partition ${partitionId} yet (a voter behind on the log, or down, cannot take over)`,
  );
  write(options.json ? `${JSON.stringify({ partition: partitionId, leader: nodeId, state: 'transferred' })}\n` : `partition ${partitionId}: led by node ${nodeId}\n`);
}
