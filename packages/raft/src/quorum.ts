/**
 * Quorum math over majority and joint configurations. A joint configuration is two majority
 * configurations (incoming, outgoing); a decision needs a majority in both. The outgoing half is
 * empty outside joint consensus, and an empty majority agrees to everything, so the same code
 * serves both.
 */
import type { NodeId } from './types.ts';

export type VoteResult = 'pending' | 'lost' | 'won';

/** The index acknowledged by a node, or undefined when unknown. */
export type AckedIndexer = (id: NodeId) => number | undefined;

export interface JointConfig {
  incoming: ReadonlySet<NodeId>;
  outgoing: ReadonlySet<NodeId>;
}

/**
 * The largest index acknowledged by a majority of `voters`. An empty configuration commits
 * everything (Infinity) so that it is neutral inside a joint configuration.
 */
export function majorityCommittedIndex(voters: ReadonlySet<NodeId>, acked: AckedIndexer): number {
  const n = voters.size;
  if (n === 0) return Infinity;
  const indexes: number[] = [];
  for (const id of voters) indexes.push(acked(id) ?? 0);
  indexes.sort((a, b) => b - a);
  // The (n/2+1)-th largest index is held by a majority.
  return indexes[Math.floor(n / 2)];
}

/** Won when a majority granted, lost when a majority can no longer be reached, else pending. */
export function majorityVoteResult(
  voters: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.size === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const quorum = Math.floor(voters.size / 2) + 1;
  if (granted >= quorum) return 'won';
  if (granted + missing >= quorum) return 'pending';
  return 'lost';
}

export function jointCommittedIndex(config: JointConfig, acked: AckedIndexer): number {
  return Math.min(
    majorityCommittedIndex(config.incoming, acked),
    majorityCommittedIndex(config.outgoing, acked),
  );
}

export function jointVoteResult(config: JointConfig, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const r1 = majorityVoteResult(config.incoming, votes);
  const r2 = majorityVoteResult(config.outgoing, votes);
  if (r1 === r2) return r1;
  if (r1 === 'lost' || r2 === 'lost') return 'lost';
  // One side won and the other is pending.
  return 'pending';
}

/** All voters of the joint configuration, sorted. */
export function jointVoterIds(config: JointConfig): NodeId[] {
  const ids = new Set<NodeId>(config.incoming);
  for (const id of config.outgoing) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}
