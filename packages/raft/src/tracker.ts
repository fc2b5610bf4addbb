/**
 * The tracker: the active configuration (joint voters, learners) and a Progress per member.
 */
import { Inflights } from './inflights.ts';
import { Progress } from './progress.ts';
import {
  jointCommittedIndex,
  jointVoteResult,
  jointVoterIds,
  type JointConfig,
  type VoteResult,
} from './quorum.ts';
import type { ConfState, NodeId } from './types.ts';

export interface TrackerConfig {
  voters: JointConfig;
  /** Leave the joint configuration automatically once its entry is applied. */
  autoLeave: boolean;
  learners: ReadonlySet<NodeId>;
  /** Voters of the outgoing half that become learners when the joint configuration is left. */
  learnersNext: ReadonlySet<NodeId>;
}

export type ProgressMap = Map<NodeId, Progress>;

export function emptyTrackerConfig(): TrackerConfig {
  return {
    voters: { incoming: new Set(), outgoing: new Set() },
    autoLeave: false,
    learners: new Set(),
    learnersNext: new Set(),
  };
}

export function isJoint(config: TrackerConfig): boolean {
  return config.voters.outgoing.size > 0;
}

const sortedIds = (ids: ReadonlySet<NodeId>): NodeId[] => [...ids].sort((a, b) => a - b);

export function confStateOf(config: TrackerConfig): ConfState {
  return {
    voters: sortedIds(config.voters.incoming),
    learners: sortedIds(config.learners),
    votersOutgoing: sortedIds(config.voters.outgoing),
    learnersNext: sortedIds(config.learnersNext),
    autoLeave: config.autoLeave,
  };
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress: ProgressMap = new Map();
  readonly votes = new Map<NodeId, boolean>();
  readonly maxInflight: number;
  readonly maxInflightBytes: number;

  constructor(maxInflight: number, maxInflightBytes: number) {
    this.maxInflight = maxInflight;
    this.maxInflightBytes = maxInflightBytes;
  }

  newProgress(match: number, next: number, isLearner: boolean): Progress {
    return new Progress(match, next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner);
  }

  confState(): ConfState {
    return confStateOf(this.config);
  }

  /** Exactly one voter and no joint configuration. */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  /** The largest index a quorum of voters has in its log. */
  committed(): number {
    return jointCommittedIndex(this.config.voters, (id) => this.progress.get(id)?.match);
  }

  /** Members in id order, so that iteration (and hence output) is deterministic. */
  visit(fn: (id: NodeId, pr: Progress) => void): void {
    const ids = [...this.progress.keys()].sort((a, b) => a - b);
    for (const id of ids) fn(id, this.progress.get(id)!);
  }

  /** Whether a quorum of voters was recently active (the leader counts itself as active). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    }
    return jointVoteResult(this.config.voters, votes) === 'won';
  }

  voterIds(): NodeId[] {
    return jointVoterIds(this.config.voters);
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.incoming.has(id) || this.config.voters.outgoing.has(id);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; only the first vote of each node counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config.voters, this.votes) };
  }
}
