/**
 * Rendezvous (highest-random-weight) hashing of partitions onto nodes: every node gets a score per
 * partition from a stable hash, and a partition's replicas go to its highest-scoring nodes. A node
 * joining or leaving changes only the partitions for which it is (or was) among the winners: about
 * replicas/N of them.
 */
import { fingerprint64 } from '@shoal/model';

/** farmhash fingerprint64 of "partitionId/nodeId": stable across versions and platforms. */
export function rendezvousScore(partitionId: number, nodeId: number): bigint {
  return fingerprint64({ S: `${partitionId}/${nodeId}` });
}

/** Nodes from most to least preferred for a partition (ties, vanishingly rare, by node id). */
export function rankNodes(partitionId: number, nodeIds: readonly number[]): number[] {
  const scored = nodeIds.map((nodeId) => ({ nodeId, score: rendezvousScore(partitionId, nodeId) }));
  scored.sort((a, b) => (a.score === b.score ? a.nodeId - b.nodeId : a.score > b.score ? -1 : 1));
  return scored.map((s) => s.nodeId);
}

/** The `count` preferred nodes of a partition among `nodeIds` (fewer when there are fewer nodes). */
export function placeReplicas(partitionId: number, nodeIds: readonly number[], count: number): number[] {
  if (new Set(nodeIds).size !== nodeIds.length) throw new RangeError('a node is listed twice');
  return rankNodes(partitionId, nodeIds).slice(0, count);
}
