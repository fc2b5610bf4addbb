import type { NodeId } from '@shoal/raft';

/** This replica is not the group's leader; `leader` is the leader it knows of (0: none known). */
export class NotLeaderError extends Error {
  readonly groupId: number;
  readonly leader: NodeId;
  constructor(groupId: number, leader: NodeId) {
    super(`group ${groupId}: this replica is not the leader${leader !== 0 ? ` (leader is node ${leader})` : ' (no leader known)'}`);
    this.name = 'NotLeaderError';
    this.groupId = groupId;
    this.leader = leader;
  }
}

/** A proposal or read did not complete in time; a proposal may still commit later. */
export class RaftTimeoutError extends Error {
  readonly groupId: number;
  constructor(groupId: number, what: string, ms: number) {
    super(`group ${groupId}: ${what} did not complete within ${ms} ms`);
    this.name = 'RaftTimeoutError';
    this.groupId = groupId;
  }
}

/**
 * A proposal already placed in this replica's log (persisted, perhaps sent) can no longer be followed
 * here: the replica stopped, was removed, or a snapshot replaced its log. It may still commit
 * elsewhere, so the caller must treat it as "maybe applied", never retry it blindly.
 */
export class ProposalOutcomeUnknownError extends Error {
  readonly groupId: number;
  constructor(groupId: number, why: string) {
    super(`group ${groupId}: the outcome of a proposal is unknown: ${why}`);
    this.name = 'ProposalOutcomeUnknownError';
    this.groupId = groupId;
  }
}

/** This node hosts no replica of the group (never created, removed, or the host stopped). */
export class GroupNotHostedError extends Error {
  readonly groupId: number;
  constructor(groupId: number, why = 'is not hosted on this node') {
    super(`group ${groupId} ${why}`);
    this.name = 'GroupNotHostedError';
    this.groupId = groupId;
  }
}

/**
 * A membership change was not proposed because another one is still in flight (from this leader, or
 * unapplied in the group's log): nothing changed, retry once it settled.
 */
export class MembershipChangeRefusedError extends Error {
  readonly groupId: number;
  constructor(groupId: number, why: string) {
    super(`group ${groupId}: membership change refused: ${why}`);
    this.name = 'MembershipChangeRefusedError';
    this.groupId = groupId;
  }
}
