/**
 * Leadership moves the meta leader wants (after a split, so that the halves run on different nodes;
 * or an operator's TransferLeader). Partition leadership lives in the partitions' own Raft groups,
 * so meta cannot move it itself: the node that reports leading the partition is told in its next
 * heartbeat answer and asks its group to hand over (Raft's leadership transfer). A move is repeated
 * in every answer until the reports show the new leader, or given up after `ttlMs`. Kept in the meta
 * leader's memory only: a new meta leader forgets them, and leadership stays where it is.
 */
import type { NodeId } from '@shoal/raft';
import type { NodeReports } from './node-reports.ts';

export interface LeadershipTransfer {
  partitionId: number;
  toNode: NodeId;
}

/** How long a move is asked for before it is given up (the target stayed behind, or went down). */
const DEFAULT_TTL_MS = 30_000;

export class LeadershipTransfers {
  readonly #pending = new Map<number, { toNode: NodeId; until: number }>();

  request(partitionId: number, toNode: NodeId, now: number, ttlMs = DEFAULT_TTL_MS): void {
    this.#pending.set(partitionId, { toNode, until: now + ttlMs });
  }

  /** The moves `nodeId` should make now: those of the partitions it reports leading. */
  dueFor(nodeId: NodeId, reports: NodeReports, now: number): LeadershipTransfer[] {
    this.#settle(reports, now);
    const due: LeadershipTransfer[] = [];
    for (const [partitionId, { toNode }] of this.#pending) {
      if (reports.leaderOf(partitionId) === nodeId) due.push({ partitionId, toNode });
    }
    return due;
  }

  /** Drops the moves done (the target reports leading) or expired. */
  #settle(reports: NodeReports, now: number): void {
    for (const [partitionId, { toNode, until }] of this.#pending) {
      if (reports.leaderOf(partitionId) === toNode || now >= until) this.#pending.delete(partitionId);
    }
  }
}
