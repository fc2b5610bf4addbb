import { spaceLabel, spaceOwners, type TableRecord } from '@shoal/model';
import { AdminService, createClient, ErrorDetailSchema, MetaService, NodeState, ReplicaRole, RpcError, Status, tableRecordFromWire } from '@shoal/proto';
import type { PartitionLoad, StatusResponse } from '@shoal/proto';

/** `shoal admin status`: the cluster as the meta group's leader sees it (AdminService.Status). */

const CALL_TIMEOUT_MS = 5_000;
const ATTEMPTS = 6;

export interface NodeRow {
  id: number;
  address: string;
  state: string;
  /** Replicas the map places on the node. */
  replicas: number;
  /** Replicas the node reported hosting in its last heartbeat (a removed one goes once its group lets it go). */
  hosted: number;
  leaders: number;
  secondsSinceHeartbeat: number;
}

export interface PartitionRow {
  id: number;
  table: string;
  /** The key range, shortened to the first bytes of the partition key hash. */
  range: string;
  epoch: number;
  /** Node id of the leader as the replicas last reported it (the latest term's claim), else the map's hint; undefined when unknown. */
  leader: number | undefined;
  /** Node ids; learners marked `(learner)`. */
  replicas: string[];
  /** Highest applied index among the reported replicas. */
  appliedIndex: number | undefined;
  /** How far the slowest reported replica's applied index trails the highest one. */
  lag: number | undefined;
}

/** A partition hot on one key, which no split relieves (the meta leader's split decisions). */
export interface HotKeyRow {
  partition: number;
  table: string;
  /** The encoded key, hex (an item, or an item collection's start for a table with an LSI). */
  key: string;
  /** Its share of the partition's sampled load, in percent. */
  share: number;
  /** The hottest replica's units over the partition's limits, in percent. */
  utilization: number;
  /** Seconds since first reported. */
  seconds: number;
}

export interface ClusterStatus {
  metaLeader: number;
  mapVersion: number;
  nodes: NodeRow[];
  partitions: PartitionRow[];
  hotKeys: HotKeyRow[];
}

const NODE_STATES = new Map<number, string>([
  [NodeState.JOINING, 'joining'],
  [NodeState.UP, 'up'],
  [NodeState.DRAINING, 'draining'],
  [NodeState.DOWN, 'down'],
]);

/**
 * Calls the meta group: tries each address, follows a NotLeader hint to the leader, and gives up
 * after a bounded number of attempts. A refusal (FAILED_PRECONDITION without a NotLeader detail,
 * INVALID_ARGUMENT, NOT_FOUND...) is the leader's answer: thrown at once.
 */
export async function callMetaLeader<T>(addresses: readonly string[], call: (address: string) => Promise<T>): Promise<T> {
  const queue = [...addresses];
  let lastError: unknown = new Error('no meta address given');
  for (let attempt = 0; attempt < ATTEMPTS * Math.max(1, addresses.length); attempt++) {
    const address = queue.shift() ?? addresses[attempt % addresses.length];
    try {
      return await call(address);
    } catch (error) {
      lastError = error;
      const hint = error instanceof RpcError ? error.detail(ErrorDetailSchema) : undefined;
      if (hint?.kind.case === 'notLeader' && hint.kind.value.leader !== undefined && hint.kind.value.leader.address !== '') {
        queue.unshift(hint.kind.value.leader.address);
      } else if (!(error instanceof RpcError) || !(error.code === Status.UNAVAILABLE || error.code === Status.DEADLINE_EXCEEDED || hint?.kind.case === 'notLeader')) {
        throw error;
      } else if (queue.length === 0) {
        // Every peer tried: an election may be running; wait a moment before the next round.
        await new Promise((done) => setTimeout(done, 500));
      }
    }
  }
  throw lastError;
}

async function fetchFrom(address: string): Promise<{ status: StatusResponse; tables: TableRecord[] }> {
  const admin = createClient(AdminService, address);
  const meta = createClient(MetaService, address);
  try {
    const status = await admin.status({}, { timeoutMs: CALL_TIMEOUT_MS });
    const { records } = await meta.listTables({}, { timeoutMs: CALL_TIMEOUT_MS });
    return { status, tables: records.map(tableRecordFromWire) };
  } finally {
    admin.close();
    meta.close();
  }
}

/**
 * The first 4 bytes (hex) of the partition key hash that follows the 4-byte space id: enough to tell
 * ranges apart; `…` when the key goes on (more hash bits, or a key inside one item collection).
 */
export function shortKey(key: Uint8Array, end: boolean): string {
  if (key.length === 0) return end ? '∞' : '-∞';
  if (key.length <= 4) return end ? 'end' : 'start';
  const hash = Buffer.from(key.subarray(4, 12)).toString('hex');
  const more = key.length > 12 || /[^0]/.test(hash.slice(8));
  return `${hash.slice(0, 8)}${more ? '…' : ''}`;
}

function replicaLabel(nodeId: bigint, role: ReplicaRole): string {
  return role === ReplicaRole.LEARNER ? `${nodeId}(learner)` : String(nodeId);
}

/** What the nodes reported of each partition in their last heartbeats, by partition id. */
export function reportsByPartition(status: StatusResponse): Map<bigint, { nodeId: bigint; load: PartitionLoad }[]> {
  const reports = new Map<bigint, { nodeId: bigint; load: PartitionLoad }[]>();
  for (const node of status.nodes) {
    for (const load of node.reportedReplicas) {
      const list = reports.get(load.partitionId) ?? [];
      list.push({ nodeId: node.node?.id ?? 0n, load });
      reports.set(load.partitionId, list);
    }
  }
  return reports;
}

/** The node whose report claims leadership of the partition in the latest term, if any. */
export function reportedLeader(reported: readonly { nodeId: bigint; load: PartitionLoad }[]): bigint | undefined {
  // A dead leader's last report may still claim leadership: the claim of the latest term wins.
  const claims = reported.filter((report) => report.load.leader).toSorted((a, b) => (a.load.term > b.load.term ? -1 : a.load.term < b.load.term ? 1 : 0));
  return claims[0]?.nodeId;
}

export function clusterStatus(status: StatusResponse, tables: readonly TableRecord[]): ClusterStatus {
  // A GSI's partitions are labelled table/index.
  const owners = spaceOwners(tables);
  const tableNames = new Map([...owners].map(([space, owner]) => [space, spaceLabel(owner)]));
  const reports = reportsByPartition(status);
  const partitions = status.partitions.map((partition): PartitionRow => {
    const reported = reports.get(partition.id) ?? [];
    const leader = reportedLeader(reported) ?? (partition.leaderHint === 0n ? undefined : partition.leaderHint);
    const applied = reported.map((report) => Number(report.load.appliedIndex));
    const highest = applied.length === 0 ? undefined : Math.max(...applied);
    return {
      id: Number(partition.id),
      table: tableNames.get(partition.tableId) ?? `#${partition.tableId}`,
      range: `${shortKey(partition.startKey, false)}..${shortKey(partition.endKey, true)}`,
      epoch: Number(partition.epoch),
      leader: leader === undefined ? undefined : Number(leader),
      replicas: partition.replicas.map((replica) => replicaLabel(replica.nodeId, replica.role)),
      appliedIndex: highest,
      lag: highest === undefined ? undefined : highest - Math.min(...applied),
    };
  });
  return {
    metaLeader: Number(status.metaLeaderId),
    mapVersion: Number(status.mapVersion),
    nodes: status.nodes.map((node) => ({
      id: Number(node.node?.id ?? 0n),
      address: node.node?.address ?? '',
      state: NODE_STATES.get(node.node?.state ?? NodeState.UNSPECIFIED) ?? 'unknown',
      replicas: node.replicas,
      hosted: node.reportedReplicas.length,
      leaders: node.leaders,
      secondsSinceHeartbeat: Math.round(node.secondsSinceHeartbeat * 10) / 10,
    })),
    partitions,
    hotKeys: status.hotKeys.map((hot) => ({
      partition: Number(hot.partitionId),
      table: tableNames.get(status.partitions.find((p) => p.id === hot.partitionId)?.tableId ?? -1) ?? '?',
      key: Buffer.from(hot.key).toString('hex'),
      share: Math.round(hot.share * 100),
      utilization: Math.round(hot.utilization * 100),
      seconds: Math.round(hot.seconds),
    })),
  };
}

/** Not known yet (no leader, nothing reported). */
const UNKNOWN = '-';

/** Columns padded to their widest cell; columns of numbers (or unknowns) right-aligned. */
export function textTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column].length)));
  const numeric = header.map(
    (_, column) => rows.length > 0 && rows.every((row) => typeof row[column] === 'number' || row[column] === UNKNOWN),
  );
  return cells
    .map((row) => row.map((cell, column) => (numeric[column] ? cell.padStart(widths[column]) : cell.padEnd(widths[column]))).join('  ').trimEnd())
    .join('\n');
}

export function formatStatus(status: ClusterStatus): string {
  const nodes = textTable(
    ['NODE', 'ADDRESS', 'STATE', 'REPLICAS', 'HOSTED', 'LEADERS', 'HEARTBEAT'],
    status.nodes.map((node) => [node.id, node.address, node.state, node.replicas, node.hosted, node.leaders, `${node.secondsSinceHeartbeat.toFixed(1)}s ago`]),
  );
  const partitions = textTable(
    ['PARTITION', 'TABLE', 'RANGE', 'EPOCH', 'LEADER', 'REPLICAS', 'APPLIED', 'LAG'],
    status.partitions.map((partition) => [
      partition.id,
      partition.table,
      partition.range,
      partition.epoch,
      partition.leader ?? UNKNOWN,
      partition.replicas.join(','),
      partition.appliedIndex ?? UNKNOWN,
      partition.lag ?? UNKNOWN,
    ]),
  );
  const hot =
    status.hotKeys.length === 0
      ? ''
      : `\nhot items (one key carries most of the partition's load: no split relieves it)\n${textTable(
          ['PARTITION', 'TABLE', 'KEY', 'SHARE', 'LOAD', 'FOR'],
          status.hotKeys.map((row) => [row.partition, row.table, row.key, `${row.share}%`, `${row.utilization}%`, `${row.seconds}s`]),
        )}\n`;
  return `meta leader: node ${status.metaLeader}   map version: ${status.mapVersion}\n\n${nodes}\n\n${partitions}\n${hot}`;
}

/** AdminService.Status of the meta leader, as it answers it. */
export function fetchAdminStatus(meta: readonly string[]): Promise<StatusResponse> {
  return callMetaLeader(meta, async (address) => {
    const admin = createClient(AdminService, address);
    try {
      return await admin.status({}, { timeoutMs: CALL_TIMEOUT_MS });
    } finally {
      admin.close();
    }
  });
}

/** The cluster as the meta leader sees it. */
export async function fetchClusterStatus(meta: readonly string[]): Promise<ClusterStatus> {
  const { status, tables } = await callMetaLeader(meta, fetchFrom);
  return clusterStatus(status, tables);
}

export async function runAdminStatus(options: { meta: string[]; json?: boolean }): Promise<void> {
  const summary = await fetchClusterStatus(options.meta);
  process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : formatStatus(summary));
}
