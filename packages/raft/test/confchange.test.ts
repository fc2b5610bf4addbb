import { describe, expect, it } from 'vitest';
import { Changer, confChangeKind, restoreConfig } from '../src/confchange.ts';
import { ConfChangeError } from '../src/errors.ts';
import { ProgressTracker } from '../src/tracker.ts';
import type { ConfChange, ConfChangeSingle, ConfState, NodeId } from '../src/types.ts';

const add = (nodeId: NodeId): ConfChangeSingle => ({ type: 'addNode', nodeId });
const remove = (nodeId: NodeId): ConfChangeSingle => ({ type: 'removeNode', nodeId });
const learner = (nodeId: NodeId): ConfChangeSingle => ({ type: 'addLearner', nodeId });

/** Applies changes one ConfChange after another, like replicas applying committed entries. */
function applyAll(ccs: ConfChange[], tracker = new ProgressTracker(10, Infinity)): ProgressTracker {
  for (const cc of ccs) {
    const next = new Changer(tracker, 10).apply(cc);
    tracker.config = next.config;
    tracker.progress = next.progress;
  }
  return tracker;
}

const cs = (t: ProgressTracker): ConfState => t.confState();

describe('confChangeKind', () => {
  it('distinguishes simple, implicit joint (auto-leave), explicit joint and leave', () => {
    expect(confChangeKind({ changes: [add(1)] })).toEqual({ kind: 'simple' });
    expect(confChangeKind({ changes: [add(1), add(2)] })).toEqual({ kind: 'enterJoint', autoLeave: true });
    expect(confChangeKind({ changes: [add(1)], joint: true })).toEqual({ kind: 'enterJoint', autoLeave: false });
    expect(confChangeKind({ changes: [] })).toEqual({ kind: 'leaveJoint' });
  });
});

describe('simple changes', () => {
  it('bootstraps, adds and removes one voter at a time, and manages learners', () => {
    const t = applyAll([{ changes: [add(1)] }, { changes: [add(2)] }, { changes: [learner(3)] }]);
    expect(cs(t)).toEqual({ voters: [1, 2], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: false });
    applyAll([{ changes: [add(3)] }], t); // promote the learner
    expect(cs(t).voters).toEqual([1, 2, 3]);
    expect(cs(t).learners).toEqual([]);
    expect(t.progress.get(3)!.isLearner).toBe(false);
    applyAll([{ changes: [learner(2)] }], t); // demote a voter
    expect(cs(t)).toMatchObject({ voters: [1, 3], learners: [2] });
    applyAll([{ changes: [remove(2)] }], t);
    expect(t.progress.has(2)).toBe(false);
    // Removing an unknown node or a change of node 0 is a no-op.
    applyAll([{ changes: [remove(42)] }, { changes: [add(0)] }], t);
    expect(cs(t).voters).toEqual([1, 3]);
  });

  it('a new member starts probing at the last index and counts as recently active', () => {
    const t = applyAll([{ changes: [add(1)] }, { changes: [add(2)] }]);
    const pr = t.progress.get(2)!;
    expect([pr.match, pr.next, pr.state, pr.recentActive]).toEqual([0, 10, 'probe', true]);
  });

  it.each([
    { name: 'two voters at once', cc: { changes: [add(3), add(4)] }, simple: true },
    { name: 'swapping a voter', cc: { changes: [add(3), remove(1)] }, simple: true },
    { name: 'removing all voters', cc: { changes: [remove(1)] }, simple: false },
  ])('rejects $name', ({ cc, simple }) => {
    const t = applyAll([{ changes: [add(1)] }, ...(simple ? [{ changes: [add(2)] }] : [])]);
    const before = cs(t);
    const changer = new Changer(t, 10);
    expect(() => changer.simple(cc.changes)).toThrow(ConfChangeError);
    expect(cs(t)).toEqual(before);
  });

  it('rejects a simple change in a joint configuration', () => {
    const t = applyAll([{ changes: [add(1)] }, { changes: [add(2), add(3)] }]);
    expect(() => new Changer(t, 10).simple([add(4)])).toThrow(/joint/);
  });
});

describe('joint consensus', () => {
  it('enters with the old voters as outgoing and leaves to the incoming set', () => {
    const t = applyAll([{ changes: [add(1)] }, { changes: [add(2)] }, { changes: [add(3)] }]);
    applyAll([{ changes: [add(4), remove(2), remove(3), add(5)] }], t);
    expect(cs(t)).toEqual({ voters: [1, 4, 5], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: true });
    // Outgoing voters keep their progress until the joint config is left.
    expect(t.progress.has(2)).toBe(true);
    applyAll([{ changes: [] }], t);
    expect(cs(t)).toEqual({ voters: [1, 4, 5], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });
    expect(t.progress.has(2)).toBe(false);
  });

  it('a demoted outgoing voter waits in learnersNext and becomes a learner on leaving', () => {
    const t = applyAll([{ changes: [add(1)] }, { changes: [add(2)] }, { changes: [add(3)] }]);
    applyAll([{ changes: [learner(3), add(4)], joint: true }], t);
    expect(cs(t)).toEqual({ voters: [1, 2, 4], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: false });
    expect(t.progress.get(3)!.isLearner).toBe(false);
    applyAll([{ changes: [] }], t);
    expect(cs(t)).toEqual({ voters: [1, 2, 4], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: false });
    expect(t.progress.get(3)!.isLearner).toBe(true);
  });

  it.each([
    { name: 'entering joint twice', setup: [{ changes: [add(2), add(3)] }], cc: { changes: [add(4), add(5)] } },
    { name: 'leaving a non-joint config', setup: [], cc: { changes: [] } },
    { name: 'a zero-voter joint config', setup: null, cc: { changes: [add(1), add(2)] } },
    { name: 'removing all incoming voters', setup: [], cc: { changes: [remove(1), learner(2)] } },
  ])('rejects $name', ({ setup, cc }) => {
    const t = setup === null ? new ProgressTracker(10, Infinity) : applyAll([{ changes: [add(1)] }, ...setup]);
    const before = cs(t);
    expect(() => new Changer(t, 10).apply(cc)).toThrow(ConfChangeError);
    expect(cs(t)).toEqual(before);
  });
});

describe('restore', () => {
  it.each<ConfState>([
    { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    { voters: [1, 2, 3], learners: [4, 5], votersOutgoing: [], learnersNext: [], autoLeave: false },
    { voters: [1, 4, 5], learners: [6], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: true },
    { voters: [1, 2], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: false },
  ])('rebuilds the tracker configuration from %j', (state) => {
    const t = new ProgressTracker(10, Infinity);
    restoreConfig(t, 10, state);
    expect(cs(t)).toEqual(state);
  });
});
