/**
 * Membership changes applied to a tracker configuration, as in etcd's confchange package:
 * - simple: at most one voter added or removed (learners freely), outside joint consensus;
 * - enterJoint: any set of changes, entering the joint configuration (incoming, outgoing);
 * - leaveJoint: drop the outgoing half, turning learnersNext into learners.
 * Every operation works on copies and either returns a valid new configuration or throws
 * ConfChangeError, leaving the input untouched.
 */
import { ConfChangeError } from './errors.ts';
import type { Progress } from './progress.ts';
import { type ProgressMap, type ProgressTracker, type TrackerConfig } from './tracker.ts';
import type { ConfChange, ConfChangeSingle, ConfState, NodeId } from './types.ts';

export interface ConfigAndProgress {
  config: TrackerConfig;
  progress: ProgressMap;
}

interface MutableConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  autoLeave: boolean;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
}

/** How a ConfChange is carried out: leave the joint state, enter it, or a simple change. */
export function confChangeKind(cc: ConfChange): { kind: 'leaveJoint' } | { kind: 'enterJoint'; autoLeave: boolean } | { kind: 'simple' } {
  if (cc.changes.length === 0) return { kind: 'leaveJoint' };
  // An explicit joint change waits for an explicit leave; an implied one leaves by itself.
  if (cc.joint === true) return { kind: 'enterJoint', autoLeave: false };
  if (cc.changes.length > 1) return { kind: 'enterJoint', autoLeave: true };
  return { kind: 'simple' };
}

export class Changer {
  private readonly tracker: ProgressTracker;
  /** The leader's last log index: where a new member's progress starts. */
  private readonly lastIndex: number;

  constructor(tracker: ProgressTracker, lastIndex: number) {
    this.tracker = tracker;
    this.lastIndex = lastIndex;
  }

  /** Applies `cc` as a simple, enter-joint or leave-joint change according to its shape. */
  apply(cc: ConfChange): ConfigAndProgress {
    const kind = confChangeKind(cc);
    if (kind.kind === 'leaveJoint') return this.leaveJoint();
    if (kind.kind === 'enterJoint') return this.enterJoint(kind.autoLeave, cc.changes);
    return this.simple(cc.changes);
  }

  enterJoint(autoLeave: boolean, changes: ConfChangeSingle[]): ConfigAndProgress {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ConfChangeError('config is already joint');
    if (cfg.incoming.size === 0) {
      // Adding nodes to an empty config is allowed (bootstrap), but not through joint consensus.
      throw new ConfChangeError("can't make a zero-voter config joint");
    }
    for (const id of cfg.incoming) cfg.outgoing.add(id);
    this.applyChanges(cfg, progress, changes);
    cfg.autoLeave = autoLeave;
    return checkAndReturn(cfg, progress);
  }

  leaveJoint(): ConfigAndProgress {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size === 0) throw new ConfChangeError("can't leave a non-joint config");
    for (const id of cfg.learnersNext) {
      cfg.learners.add(id);
      progress.get(id)!.isLearner = true;
    }
    cfg.learnersNext.clear();
    for (const id of cfg.outgoing) {
      if (!cfg.incoming.has(id) && !cfg.learners.has(id)) progress.delete(id);
    }
    cfg.outgoing.clear();
    cfg.autoLeave = false;
    return checkAndReturn(cfg, progress);
  }

  /** Changes that alter the voters by at most one, outside joint consensus. */
  simple(changes: ConfChangeSingle[]): ConfigAndProgress {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ConfChangeError("can't apply simple config change in joint config");
    const before = new Set(cfg.incoming);
    this.applyChanges(cfg, progress, changes);
    let diff = 0;
    for (const id of before) if (!cfg.incoming.has(id)) diff++;
    for (const id of cfg.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw new ConfChangeError('more than one voter changed without entering joint config');
    return checkAndReturn(cfg, progress);
  }

  private applyChanges(cfg: MutableConfig, progress: ProgressMap, changes: ConfChangeSingle[]): void {
    for (const cc of changes) {
      if (cc.nodeId === 0) continue; // etcd semantics: a change of node 0 is a no-op
      switch (cc.type) {
        case 'addNode':
          this.makeVoter(cfg, progress, cc.nodeId);
          break;
        case 'addLearner':
          this.makeLearner(cfg, progress, cc.nodeId);
          break;
        case 'removeNode':
          remove(cfg, progress, cc.nodeId);
          break;
        default:
          throw new ConfChangeError(`unknown conf change type ${String((cc as ConfChangeSingle).type)}`);
      }
    }
    if (cfg.incoming.size === 0) throw new ConfChangeError('removed all voters');
  }

  private makeVoter(cfg: MutableConfig, progress: ProgressMap, id: NodeId): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, progress, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.incoming.add(id);
  }

  /**
   * A voter of the outgoing config cannot become a learner while it still votes there: it is
   * parked in learnersNext and becomes a learner when the joint config is left.
   */
  private makeLearner(cfg: MutableConfig, progress: ProgressMap, id: NodeId): void {
    const pr = progress.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, progress, id, true);
      return;
    }
    if (pr.isLearner) return;
    remove(cfg, progress, id);
    // Keep the progress: the node stays in the group.
    progress.set(id, pr);
    if (cfg.outgoing.has(id)) {
      cfg.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      cfg.learners.add(id);
    }
  }

  private initProgress(cfg: MutableConfig, progress: ProgressMap, id: NodeId, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.incoming.add(id);
    // Start probing at the last index; recently active so check-quorum does not fire before the
    // new member had a chance to answer.
    const pr = this.tracker.newProgress(0, Math.max(this.lastIndex, 1), isLearner);
    pr.recentActive = true;
    progress.set(id, pr);
  }

  private checkAndCopy(): { cfg: MutableConfig; progress: ProgressMap } {
    const c = this.tracker.config;
    const cfg: MutableConfig = {
      incoming: new Set(c.voters.incoming),
      outgoing: new Set(c.voters.outgoing),
      autoLeave: c.autoLeave,
      learners: new Set(c.learners),
      learnersNext: new Set(c.learnersNext),
    };
    const progress: ProgressMap = new Map();
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.shallowCopy());
    checkInvariants(cfg, progress);
    return { cfg, progress };
  }
}

function remove(cfg: MutableConfig, progress: ProgressMap, id: NodeId): void {
  if (!progress.has(id)) return;
  cfg.incoming.delete(id);
  cfg.learners.delete(id);
  cfg.learnersNext.delete(id);
  // A voter of the outgoing config stays tracked until the joint config is left.
  if (!cfg.outgoing.has(id)) progress.delete(id);
}

function checkInvariants(cfg: MutableConfig, progress: ProgressMap): void {
  const mustHave = (id: NodeId): Progress => {
    const pr = progress.get(id);
    if (pr === undefined) throw new ConfChangeError(`no progress for ${id}`);
    return pr;
  };
  for (const id of cfg.incoming) mustHave(id);
  for (const id of cfg.outgoing) mustHave(id);
  for (const id of cfg.learners) {
    if (!mustHave(id).isLearner) throw new ConfChangeError(`${id} is in learners but is not a learner`);
    if (cfg.incoming.has(id) || cfg.outgoing.has(id)) throw new ConfChangeError(`${id} is in learners and voters`);
  }
  for (const id of cfg.learnersNext) {
    if (mustHave(id).isLearner) throw new ConfChangeError(`${id} is in learnersNext but is already a learner`);
    if (!cfg.outgoing.has(id)) throw new ConfChangeError(`${id} is in learnersNext but not an outgoing voter`);
  }
  if (cfg.outgoing.size === 0) {
    if (cfg.learnersNext.size > 0) throw new ConfChangeError('learnersNext must be empty when not joint');
    if (cfg.autoLeave) throw new ConfChangeError('autoLeave must be false when not joint');
  }
}

function checkAndReturn(cfg: MutableConfig, progress: ProgressMap): ConfigAndProgress {
  checkInvariants(cfg, progress);
  return {
    config: {
      voters: { incoming: cfg.incoming, outgoing: cfg.outgoing },
      autoLeave: cfg.autoLeave,
      learners: cfg.learners,
      learnersNext: cfg.learnersNext,
    },
    progress,
  };
}

/**
 * Rebuilds a configuration from a ConfState (on start and on snapshot): the outgoing voters are
 * added as simple changes, then the joint config is entered with the incoming side.
 */
export function restoreConfig(tracker: ProgressTracker, lastIndex: number, cs: ConfState): ConfigAndProgress {
  const outgoing: ConfChangeSingle[] = cs.votersOutgoing.map((nodeId) => ({ type: 'addNode', nodeId }));
  const incoming: ConfChangeSingle[] = [
    ...cs.votersOutgoing.map((nodeId): ConfChangeSingle => ({ type: 'removeNode', nodeId })),
    ...cs.voters.map((nodeId): ConfChangeSingle => ({ type: 'addNode', nodeId })),
    ...cs.learners.map((nodeId): ConfChangeSingle => ({ type: 'addLearner', nodeId })),
    ...cs.learnersNext.map((nodeId): ConfChangeSingle => ({ type: 'addLearner', nodeId })),
  ];
  const step = (fn: (changer: Changer) => ConfigAndProgress): void => {
    const result = fn(new Changer(tracker, lastIndex));
    tracker.config = result.config;
    tracker.progress = result.progress;
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.autoLeave, incoming));
  }
  return { config: tracker.config, progress: tracker.progress };
}
