import { describe, expect, it } from 'vitest';
import { emptyMetaState, partitionList, planPlacement, planRebalance, type MetaState } from '../src/index.ts';
import { run, tableRecord } from './support/meta-state.ts';

/** Partitions an operator placed (pinned) are left where they are by rebalancing, not by repairs. */

const TIMEOUT = 60_000;

const record = tableRecord('T');

/** Three nodes holding every replica of 6 partitions, then a fourth, empty node. */
function unbalanced(): MetaState {
  let state = emptyMetaState(3);
  for (let id = 1; id <= 3; id++) state = run(state, { type: 'registerNode', address: `node-${id}:7000`, nodeId: id, at: 0 });
  state = run(state, { type: 'createTable', record, partitionCount: 6 });
  return run(state, { type: 'registerNode', address: 'node-4:7000', nodeId: 4, at: 0 });
}

describe('pinned partitions', () => {
  it('are not moved by rebalancing, whose moves go to the other partitions', () => {
    const state = unbalanced();
    const ids = partitionList(state).map((p) => p.id);
    const unpinned = planRebalance(state, { maxMoves: 4 }).map((a) => a.partitionId);
    expect(unpinned.length).toBeGreaterThan(0);
    const pinned = new Set(unpinned.slice(0, 1));
    const moved = planRebalance(state, { maxMoves: 4, pinned }).map((a) => a.partitionId);
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.some((id) => pinned.has(id))).toBe(false);
    expect(planRebalance(state, { pinned: new Set(ids) })).toEqual([]);
    expect(planPlacement(state, 0, { downTimeoutMs: TIMEOUT, pinned: new Set(ids) })).toEqual([]);
  });

  it('still count in the replica loads', () => {
    // Node 4 holds as many replicas as the others once it takes the pinned ones: nothing to even out.
    let state = unbalanced();
    const partitions = partitionList(state);
    for (const p of partitions.slice(0, 4)) {
      const replicas = p.replicas.map((r) => (r.nodeId === partitions.indexOf(p) % 3 + 1 ? { nodeId: 4, role: r.role } : r));
      state = run(state, { type: 'setReplicas', partitionId: p.id, replicas });
    }
    const pinned = new Set(partitions.slice(0, 4).map((p) => p.id));
    expect(planRebalance(state, { pinned })).toEqual([]);
  });

  it('are still repaired and drained', () => {
    const state = run(unbalanced(), { type: 'markNodeDraining', nodeId: 1 });
    const pinned = new Set(partitionList(state).map((p) => p.id));
    const actions = planPlacement(state, 0, { downTimeoutMs: TIMEOUT, pinned });
    expect(actions.map((a) => [a.kind, a.reason])).toEqual(partitionList(state).map(() => ['addLearner', 'drain']));
  });
});
