import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { findPartitionMapProblems, partitionContains } from '@shoal/model';
import {
  commandForAction,
  emptyMetaState,
  partitionList,
  placeReplicas,
  planDrain,
  planLiveness,
  planPlacement,
  planRebalance,
  planRepairs,
  rankNodes,
  type MetaState,
  type PlacementAction,
  type PlacementOptions,
} from '../src/index.ts';
import { run, tableRecord } from './support/meta-state.ts';

// Fixed seed: the properties explore the same cases on every run.
fc.configureGlobal({ seed: 20261125 });

const TIMEOUT = 60_000;

function addNodes(state: MetaState, count: number, at = 0): MetaState {
  const first = state.nextNodeId;
  for (let i = 0; i < count; i++) state = run(state, { type: 'registerNode', address: `node-${first + i}:7000`, nodeId: 0, at });
  return state;
}

function clusterWithTable(nodes: number, partitions: number): MetaState {
  return run(addNodes(emptyMetaState(3), nodes), { type: 'createTable', record: tableRecord('T'), partitionCount: partitions });
}

/** Carries out every action (as the meta leader would once the Raft change is done). */
function execute(state: MetaState, actions: PlacementAction[]): MetaState {
  for (const action of actions) state = run(state, commandForAction(state, action));
  return state;
}

/** Runs placement rounds until nothing is left to do; returns the state and the rounds it took. */
function settle(state: MetaState, now: number, options: PlacementOptions, maxRounds = 200): { state: MetaState; rounds: number } {
  for (let rounds = 0; rounds < maxRounds; rounds++) {
    const actions = planPlacement(state, now, options);
    if (actions.length === 0) return { state, rounds };
    expect(new Set(actions.map((a) => a.partitionId)).size).toBe(actions.length); // one change per partition
    state = execute(state, actions);
  }
  throw new Error('placement did not settle');
}

function replicaCounts(state: MetaState): Map<number, number> {
  const counts = new Map<number, number>();
  for (const n of Object.values(state.nodes)) if (n.state === 'up') counts.set(n.id, 0);
  for (const p of partitionList(state)) for (const r of p.replicas) counts.set(r.nodeId, (counts.get(r.nodeId) ?? 0) + 1);
  return counts;
}

function spread(values: Iterable<number>): number {
  const list = [...values];
  return Math.max(...list) - Math.min(...list);
}

/** Every partition: exactly `rf` voters, all on up nodes, no learners. */
function expectFullyReplicated(state: MetaState, rf = 3): void {
  for (const p of partitionList(state)) {
    expect(p.replicas).toHaveLength(rf);
    for (const r of p.replicas) {
      expect(r.role).toBe('voter');
      expect(state.nodes[r.nodeId].state).toBe('up');
    }
  }
}

describe('rendezvous placement', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('is deterministic, independent of node order, and never puts two replicas on one node', () => {
    for (let p = 1; p <= 300; p++) {
      const placed = placeReplicas(p, ids(7), 3);
      expect(placed).toHaveLength(3);
      expect(new Set(placed).size).toBe(3);
      expect(placeReplicas(p, [...ids(7)].reverse(), 3)).toEqual(placed);
      expect(rankNodes(p, ids(7)).slice(0, 3)).toEqual(placed);
    }
    expect(placeReplicas(1, [4, 9], 3).sort()).toEqual([4, 9]);
    expect(() => placeReplicas(1, [4, 4], 2)).toThrow(RangeError);
  });

  it('when a node joins, a partition changes at most by that node taking some of its places', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1001, max: 2000 }),
        fc.nat(100_000),
        fc.integer({ min: 1, max: 5 }),
        (nodes, joining, partitionId, n) => {
          const before = placeReplicas(partitionId, nodes, n);
          const after = placeReplicas(partitionId, [...nodes, joining], n);
          const kept = after.filter((x) => x !== joining);
          // The survivors keep their order of preference and are the best of the old choice.
          expect(kept).toEqual(before.slice(0, kept.length));
          expect(after.length).toBe(Math.min(n, nodes.length + 1));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('spreads replicas evenly', () => {
    const counts = new Map<number, number>();
    for (let p = 1; p <= 3000; p++) for (const n of placeReplicas(p, ids(6), 3)) counts.set(n, (counts.get(n) ?? 0) + 1);
    for (const c of counts.values()) expect(Math.abs(c - 1500)).toBeLessThan(150);
  });

  it('moves only about 1/N of the replicas when a node joins or leaves, and only those involving that node', () => {
    const partitions = 3000;
    for (const n of [4, 6, 9]) {
      let movedOnJoin = 0;
      let movedOnLeave = 0;
      for (let p = 1; p <= partitions; p++) {
        const before = placeReplicas(p, ids(n), 3);
        const joined = placeReplicas(p, ids(n + 1), 3);
        const added = joined.filter((x) => !before.includes(x));
        expect(added.every((x) => x === n + 1)).toBe(true); // only the joining node gains replicas
        movedOnJoin += added.length;
        const left = placeReplicas(p, ids(n).filter((x) => x !== 1), 3);
        const lost = before.filter((x) => !left.includes(x));
        expect(lost.every((x) => x === 1)).toBe(true); // only the leaving node's replicas move
        movedOnLeave += lost.length;
      }
      const replicas = partitions * 3;
      // Expected: replicas/(N+1) on join, replicas/N on leave.
      expect(movedOnJoin / replicas).toBeGreaterThan((1 / (n + 1)) * 0.85);
      expect(movedOnJoin / replicas).toBeLessThan((1 / (n + 1)) * 1.15);
      expect(movedOnLeave / replicas).toBeGreaterThan((1 / n) * 0.85);
      expect(movedOnLeave / replicas).toBeLessThan((1 / n) * 1.15);
    }
  });
});

describe('planRepairs', () => {
  it('waits out the timeout, then adds a learner on the next rendezvous choice, promotes it, removes the dead voter', () => {
    let state = clusterWithTable(5, 8);
    state = run(state, { type: 'markNodeDown', nodeId: 2, at: 1_000 });
    const affected = partitionList(state).filter((p) => p.replicas.some((r) => r.nodeId === 2));
    expect(affected.length).toBeGreaterThan(0);
    expect(planRepairs(state, 1_000 + TIMEOUT - 1, TIMEOUT)).toEqual([]);

    const now = 1_000 + TIMEOUT;
    const adds = planRepairs(state, now, TIMEOUT);
    expect(adds.map((a) => a.partitionId)).toEqual(affected.map((p) => p.id));
    for (const a of adds) {
      const p = state.partitions[a.partitionId];
      const next = rankNodes(p.id, [1, 3, 4, 5]).find((n) => !p.replicas.some((r) => r.nodeId === n));
      expect(a).toEqual({ kind: 'addLearner', partitionId: p.id, epoch: p.epoch, nodeId: next, reason: 'repair' });
    }
    state = execute(state, adds);
    const promotes = planRepairs(state, now, TIMEOUT);
    expect(promotes.map((a) => [a.kind, a.nodeId])).toEqual(adds.map((a) => ['promoteLearner', a.nodeId]));
    state = execute(state, promotes);
    const removes = planRepairs(state, now, TIMEOUT);
    expect(removes.map((a) => [a.kind, a.nodeId])).toEqual(adds.map(() => ['removeReplica', 2]));
    state = execute(state, removes);
    expect(planRepairs(state, now, TIMEOUT)).toEqual([]);
    expectFullyReplicated(state);
  });

  it('leaves a partition alone when it has lost its majority or there is no node to move to', () => {
    let state = clusterWithTable(3, 2);
    state = run(state, { type: 'markNodeDown', nodeId: 1, at: 0 });
    expect(planRepairs(state, TIMEOUT, TIMEOUT)).toEqual([]); // no spare node
    state = run(addNodes(state, 2), { type: 'markNodeDown', nodeId: 2, at: 0 });
    expect(planRepairs(state, TIMEOUT, TIMEOUT)).toEqual([]); // 2 of 3 voters dead: an operator's job
  });

  it('never removes a live voter when the rest would lack a live majority', () => {
    let state = run(addNodes(emptyMetaState(4), 7), { type: 'createTable', record: tableRecord('T'), partitionCount: 1 });
    const voters = state.partitions[1].replicas.map((r) => r.nodeId);
    const spare = [1, 2, 3, 4, 5, 6, 7].find((n) => !voters.includes(n))!;
    state = run(
      state,
      { type: 'setReplicas', partitionId: 1, replicas: [...voters, spare].map((nodeId) => ({ nodeId, role: 'voter' as const })) },
      { type: 'markNodeDown', nodeId: voters[0], at: 0 },
      { type: 'markNodeDown', nodeId: voters[1], at: 0 },
      { type: 'markNodeDraining', nodeId: voters[2] },
    );
    // 5 voters, 3 live: dropping the draining one would leave 2 live of 4.
    expect(planRepairs(state, 1, TIMEOUT)).toEqual([]);
    // Once the down ones count as dead they go first, and the group heals.
    state = settle(state, TIMEOUT, { downTimeoutMs: TIMEOUT }).state;
    expectFullyReplicated(state, 4);
  });

  it('tops up partitions created with fewer nodes than the replication factor', () => {
    let state = clusterWithTable(1, 4);
    state = addNodes(state, 3);
    state = settle(state, 0, { downTimeoutMs: TIMEOUT }).state;
    expectFullyReplicated(state);
  });

  it('plans actions at an epoch, so that a partition changed since rejects them', () => {
    let state = clusterWithTable(4, 1);
    state = run(state, { type: 'markNodeDown', nodeId: state.partitions[1].replicas[0].nodeId, at: 0 });
    const [action] = planRepairs(state, TIMEOUT, TIMEOUT);
    expect(action).toMatchObject({ kind: 'addLearner', epoch: 1 });
    const split = run(state, { type: 'splitPartition', partitionId: 1, splitKey: Buffer.concat([state.partitions[1].startKey, Buffer.from([0x80])]) });
    expect(() => run(split, commandForAction(split, action))).toThrow(/at epoch 2, not 1/);
  });

  it('converges to 3 live voters per partition under random failures, one at a time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 8 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat(100), { maxLength: 5 }),
        (nodes, partitions, victims) => {
          let state = clusterWithTable(nodes, partitions);
          let now = 0;
          for (const v of victims) {
            const up = Object.values(state.nodes).filter((n) => n.state === 'up');
            if (up.length <= 3) break;
            state = run(state, { type: 'markNodeDown', nodeId: up[v % up.length].id, at: now });
            now += TIMEOUT;
            const settled = settle(state, now, { downTimeoutMs: TIMEOUT });
            expect(settled.rounds).toBeLessThanOrEqual(4 * 3 + 2);
            state = settled.state;
            expectFullyReplicated(state);
          }
          expect(findPartitionMapProblems(partitionList(state))).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('after simultaneous failures, repairs every partition that kept a majority', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 6, max: 9 }),
        fc.integer({ min: 4, max: 16 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 3 }),
        (nodes, partitions, victims) => {
          let state = clusterWithTable(nodes, partitions);
          const dead = new Set(victims.filter((v) => v <= nodes));
          for (const v of dead) state = run(state, { type: 'markNodeDown', nodeId: v, at: 0 });
          const lost = new Map(
            partitionList(state)
              .filter((p) => p.replicas.filter((r) => dead.has(r.nodeId)).length >= 2)
              .map((p) => [p.id, p.replicas]),
          );
          state = settle(state, TIMEOUT, { downTimeoutMs: TIMEOUT }).state;
          for (const p of partitionList(state)) {
            if (lost.has(p.id)) {
              expect(p.replicas).toEqual(lost.get(p.id)); // left for an operator, untouched
              continue;
            }
            expect(p.replicas.map((r) => [r.role, state.nodes[r.nodeId].state])).toEqual([
              ['voter', 'up'],
              ['voter', 'up'],
              ['voter', 'up'],
            ]);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps a replica on a node that comes back before the timeout', () => {
    let state = clusterWithTable(5, 6);
    state = run(state, { type: 'markNodeDown', nodeId: 3, at: 0 });
    expect(planPlacement(state, TIMEOUT / 2, { downTimeoutMs: TIMEOUT })).toEqual([]);
    const before = partitionList(state).map((p) => p.replicas);
    state = run(state, { type: 'heartbeat', nodeId: 3, at: TIMEOUT / 2 });
    expect(planRepairs(state, TIMEOUT * 2, TIMEOUT)).toEqual([]);
    expect(partitionList(state).map((p) => p.replicas)).toEqual(before);
  });
});

describe('the placement driver against a changing cluster', () => {
  type Event = { kind: 'join' } | { kind: 'fail' | 'drain' | 'recover'; pick: number } | { kind: 'split'; pick: number; byte: number } | { kind: 'round' };
  const eventArb: fc.Arbitrary<Event> = fc.oneof(
    { weight: 1, arbitrary: fc.constant({ kind: 'join' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('fail' as const, 'drain' as const, 'recover' as const), pick: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('split' as const), pick: fc.nat(), byte: fc.integer({ min: 1, max: 255 }) }) },
    { weight: 4, arbitrary: fc.constant({ kind: 'round' as const }) },
  );

  it('keeps the map consistent and every replica set sane through any interleaving of events and single rounds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.array(eventArb, { maxLength: 40 }), (nodes, partitions, events) => {
        let state = clusterWithTable(nodes, partitions);
        let now = 0;
        for (const event of events) {
          now += TIMEOUT / 2;
          const ids = Object.values(state.nodes).map((n) => n.id);
          const parts = partitionList(state);
          if (event.kind === 'join') state = addNodes(state, 1, now);
          else if (event.kind === 'fail') state = run(state, { type: 'markNodeDown', nodeId: ids[event.pick % ids.length], at: now });
          else if (event.kind === 'drain') {
            const node = state.nodes[ids[event.pick % ids.length]];
            if (node.state !== 'down') state = run(state, { type: 'markNodeDraining', nodeId: node.id });
          } else if (event.kind === 'recover') state = run(state, { type: 'heartbeat', nodeId: ids[event.pick % ids.length], at: now });
          else if (event.kind === 'split') {
            const parent = parts[event.pick % parts.length];
            const splitKey = Buffer.concat([parent.startKey, Buffer.from([event.byte])]);
            if (partitionContains(parent, splitKey)) state = run(state, { type: 'splitPartition', partitionId: parent.id, splitKey });
          } else {
            const actions = planPlacement(state, now, { downTimeoutMs: TIMEOUT, maxMoves: 2 });
            expect(new Set(actions.map((a) => a.partitionId)).size).toBe(actions.length);
            state = execute(state, actions);
          }
          expect(findPartitionMapProblems(partitionList(state))).toEqual([]);
          for (const p of partitionList(state)) {
            expect(new Set(p.replicas.map((r) => r.nodeId)).size).toBe(p.replicas.length);
            expect(p.replicas.some((r) => r.role === 'voter')).toBe(true);
            expect(p.replicas.filter((r) => r.role === 'learner').length).toBeLessThanOrEqual(1);
            expect(p.replicas.filter((r) => r.role === 'voter').length).toBeLessThanOrEqual(state.replicationFactor + 1);
          }
        }
        // Once things calm down, every partition that kept a live majority ends fully replicated.
        const up = Object.values(state.nodes).filter((n) => n.state === 'up').length;
        const lostMajority = partitionList(state).some((p) => {
          const voters = p.replicas.filter((r) => r.role === 'voter');
          return voters.filter((r) => state.nodes[r.nodeId].state !== 'down').length <= voters.length / 2;
        });
        if (up >= 3 && !lostMajority) {
          state = settle(state, now + TIMEOUT, { downTimeoutMs: TIMEOUT, maxMoves: 2 }).state;
          expectFullyReplicated(state);
          expect(spread(replicaCounts(state).values())).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 80 },
    );
  });
});

describe('planLiveness', () => {
  it('marks down the nodes whose last heartbeat is older than the timeout, once', () => {
    let state = addNodes(emptyMetaState(), 3, 0);
    state = run(state, { type: 'heartbeat', nodeId: 2, at: 5_000 });
    expect(planLiveness(state, 9_999, 10_000)).toEqual([]);
    const commands = planLiveness(state, 10_000, 10_000);
    expect(commands).toEqual([
      { type: 'markNodeDown', nodeId: 1, at: 10_000 },
      { type: 'markNodeDown', nodeId: 3, at: 10_000 },
    ]);
    state = run(state, ...commands);
    expect(planLiveness(state, 20_000, 10_000)).toEqual([{ type: 'markNodeDown', nodeId: 2, at: 20_000 }]);
    expect(planLiveness(run(state, { type: 'heartbeat', nodeId: 2, at: 19_000 }), 20_000, 10_000)).toEqual([]);
  });
});

describe('planDrain', () => {
  it('moves leadership off a draining node first, then its replicas, until it holds nothing', () => {
    let state = clusterWithTable(5, 10);
    for (const p of partitionList(state)) {
      const leader = p.replicas.some((r) => r.nodeId === 1) ? 1 : p.replicas[0].nodeId;
      state = run(state, { type: 'setLeaderHint', partitionId: p.id, nodeId: leader });
    }
    const held = partitionList(state).filter((p) => p.replicas.some((r) => r.nodeId === 1));
    const first = planDrain(state, 1, 0, TIMEOUT);
    expect(first.map((a) => [a.partitionId, a.kind, a.reason])).toEqual(held.map((p) => [p.id, 'transferLeader', 'drain']));
    const second = planDrain(execute(state, first), 1, 0, TIMEOUT);
    expect(second.every((a) => a.kind === 'addLearner' && a.nodeId !== 1)).toBe(true);

    state = run(state, { type: 'markNodeDraining', nodeId: 1 });
    state = settle(state, 0, { downTimeoutMs: TIMEOUT }).state;
    for (const p of partitionList(state)) {
      expect(p.replicas.map((r) => r.nodeId)).not.toContain(1);
      expect(p.leaderHint).not.toBe(1);
      expect(p.replicas.filter((r) => r.role === 'voter')).toHaveLength(3);
    }
    expect(planDrain(state, 1, 0, TIMEOUT)).toEqual([]);
  });
});

describe('planRebalance', () => {
  it('evens out replica counts when nodes join, a bounded number of moves per round', () => {
    let state = clusterWithTable(3, 24);
    state = addNodes(state, 3);
    const firstRound = planRebalance(state, { maxMoves: 4 });
    expect(firstRound.filter((a) => a.kind === 'addLearner')).toHaveLength(4);
    expect(firstRound.every((a) => a.reason === 'rebalance' && [4, 5, 6].includes(a.nodeId))).toBe(true);
    const settled = settle(state, 0, { downTimeoutMs: TIMEOUT, maxMoves: 4 });
    state = settled.state;
    expectFullyReplicated(state);
    expect(spread(replicaCounts(state).values())).toBeLessThanOrEqual(1);
    expect(planRebalance(state)).toEqual([]);
  });

  it('evens out leader counts by transfers to voters', () => {
    let state = clusterWithTable(4, 24);
    for (const p of partitionList(state)) {
      const leader = p.replicas.some((r) => r.nodeId === 1) ? 1 : p.replicas[0].nodeId;
      state = run(state, { type: 'setLeaderHint', partitionId: p.id, nodeId: leader });
    }
    const leaders = (s: MetaState) => {
      const counts = new Map<number, number>([1, 2, 3, 4].map((n) => [n, 0]));
      for (const p of partitionList(s)) counts.set(p.leaderHint!, counts.get(p.leaderHint!)! + 1);
      return counts;
    };
    expect(spread(leaders(state).values())).toBeGreaterThan(6);
    const round = planRebalance(state, { maxMoves: 0, maxLeaderTransfers: 3 });
    expect(round.map((a) => a.kind)).toEqual(['transferLeader', 'transferLeader', 'transferLeader']);
    state = settle(state, 0, { downTimeoutMs: TIMEOUT }).state;
    expect(spread(leaders(state).values())).toBeLessThanOrEqual(1);
    for (const p of partitionList(state)) expect(p.replicas.find((r) => r.nodeId === p.leaderHint)?.role).toBe('voter');
  });

  it('does nothing on a balanced cluster or a single node', () => {
    expect(planRebalance(clusterWithTable(3, 8))).toEqual([]);
    expect(planRebalance(clusterWithTable(1, 8))).toEqual([]);
  });

  it('balances after any mix of joins, failures and drains', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 5 }),
        fc.integer({ min: 3, max: 20 }),
        fc.array(fc.oneof(fc.constant('join' as const), fc.constant('fail' as const), fc.constant('drain' as const)), { maxLength: 5 }),
        fc.nat(),
        (nodes, partitions, events, seed) => {
          let state = clusterWithTable(nodes, partitions);
          let now = 0;
          events.forEach((event, i) => {
            const up = Object.values(state.nodes).filter((n) => n.state === 'up');
            if (event === 'join') state = addNodes(state, 1, now);
            else if (up.length > 3) {
              const victim = up[(seed + i) % up.length].id;
              state = run(state, event === 'fail' ? { type: 'markNodeDown', nodeId: victim, at: now } : { type: 'markNodeDraining', nodeId: victim });
            }
            now += TIMEOUT;
            state = settle(state, now, { downTimeoutMs: TIMEOUT, maxMoves: 3 }).state;
            expectFullyReplicated(state);
            expect(spread(replicaCounts(state).values())).toBeLessThanOrEqual(1);
          });
        },
      ),
      { numRuns: 50 },
    );
  });
});
