/**
 * RawNode: the host's handle on one Raft group member. The host ticks it, steps network messages
 * into it, proposes, and loops over `ready()` / `advance()`.
 */
import { encodeConfChange } from './codec.ts';
import { Changer } from './confchange.ts';
import { ProposalDroppedError, RaftUsageError } from './errors.ts';
import { payloadsSize } from './log.ts';
import type { ProgressState } from './progress.ts';
import { makeMessage, Raft } from './raft.ts';
import {
  MESSAGE_TYPES,
  type Config,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type Ready,
  type SoftState,
} from './types.ts';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  pendingSnapshot: number;
  /** Messages in flight (replicate state). */
  inflight: number;
}

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  /** Only on the leader. */
  progress?: Map<NodeId, ProgressStatus>;
  confState: ConfState;
  leadTransferee: NodeId;
}

/** The message types that travel between members; anything else from the network is a host bug. */
const NETWORK_MESSAGE_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(MESSAGE_TYPES);

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (with pre-vote if configured). */
  campaign(): void {
    this.raft.hup(this.raft.preVote ? 'preElection' : 'election');
  }

  propose(data: Uint8Array): void {
    const dropped = this.raft.step(
      makeMessage('MsgProp', this.raft.id, this.raft.id, { entries: [{ term: 0, index: 0, type: 'normal', data }] }),
    );
    if (dropped !== undefined) throw new ProposalDroppedError(dropped);
  }

  /**
   * Proposes a membership change. Throws ConfChangeError when the change is invalid against the
   * current configuration, and ProposalDroppedError like `propose`. A change proposed while
   * another is unapplied commits as an empty normal entry (it has no effect).
   */
  proposeConfChange(cc: ConfChange): void {
    new Changer(this.raft.trk, this.raft.raftLog.lastIndex()).apply(cc);
    const data = encodeConfChange(cc);
    const dropped = this.raft.step(
      makeMessage('MsgProp', this.raft.id, this.raft.id, { entries: [{ term: 0, index: 0, type: 'confChange', data }] }),
    );
    if (dropped !== undefined) throw new ProposalDroppedError(dropped);
  }

  /**
   * Applies a committed conf change entry's ConfChange; returns the new membership. Throws
   * ConfChangeError, leaving the configuration unchanged, when it is invalid; every member decides
   * the same, so the host may treat that entry as a no-op.
   */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Steps a message from the network. Proposals and read requests forwarded here that cannot be
   * served are dropped silently (their sender retries), as with etcd hosts ignoring Step errors.
   */
  step(message: Message): void {
    if (!NETWORK_MESSAGE_TYPES.has(message.type)) {
      throw new RaftUsageError(`cannot step message of type ${String(message.type)} from the network`);
    }
    this.raft.step(message);
  }

  /** Requests a linearizable read point; the answer comes as a ReadState with this context. */
  readIndex(context: Uint8Array): void {
    const dropped = this.raft.step(makeMessage('MsgReadIndex', this.raft.id, this.raft.id, { context }));
    if (dropped !== undefined) throw new ProposalDroppedError(dropped);
  }

  transferLeadership(to: NodeId): void {
    // The transferee travels as the sender, as in etcd.
    this.raft.step(makeMessage('MsgTransferLeader', to, this.raft.id));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok);
  }

  hasReady(): boolean {
    const r = this.raft;
    r.flushBroadcasts();
    if (!softStateEqual(r.softState(), this.prevSoftState)) return true;
    if (!hardStateEqual(r.hardState(), this.prevHardState)) return true;
    if (r.raftLog.nextUnstableSnapshot() !== undefined) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    return r.raftLog.hasNextUnstableEntries() || r.raftLog.hasNextCommittedEntries();
  }

  /**
   * What the host must do now (see Ready). Everything returned is handed over: a second call
   * before `advance` does not repeat it. Messages are only ever returned together with (or after)
   * the state they depend on, so persisting the Ready before sending its messages suffices.
   */
  ready(): Ready {
    const r = this.raft;
    r.flushBroadcasts();
    const rd: Ready = {
      readStates: r.readStates,
      entries: r.raftLog.nextUnstableEntries(),
      committedEntries: r.raftLog.nextCommittedEntries(),
      messages: r.msgs,
      mustSync: false,
    };
    const ss = r.softState();
    if (!softStateEqual(ss, this.prevSoftState)) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) {
      rd.hardState = hs;
      // Term and vote must be durable before any vote or message of the term leaves; a commit
      // index can be recovered from the log and need not force a sync.
      rd.mustSync = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
      this.prevHardState = hs;
    }
    const snapshot = r.raftLog.nextUnstableSnapshot();
    if (snapshot !== undefined) rd.snapshot = snapshot;
    if (rd.entries.length > 0 || snapshot !== undefined) rd.mustSync = true;

    r.msgs = [];
    r.readStates = [];
    r.raftLog.unstable.acceptInProgress();
    if (rd.committedEntries.length > 0) {
      r.raftLog.acceptApplying(rd.committedEntries[rd.committedEntries.length - 1].index);
      r.reduceUncommittedSize(payloadsSize(rd.committedEntries));
    }
    return rd;
  }

  /** The host persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    const r = this.raft;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      r.raftLog.stableTo(last.index, last.term);
    }
    if (rd.snapshot !== undefined) {
      r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
      r.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.committedEntries.length > 0) r.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
  }

  status(): Status {
    const r = this.raft;
    const s: Status = {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      confState: r.trk.confState(),
      leadTransferee: r.leadTransferee,
    };
    if (r.state === 'leader') {
      const progress = new Map<NodeId, ProgressStatus>();
      r.trk.visit((id, pr) => {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          pendingSnapshot: pr.pendingSnapshot,
          inflight: pr.inflights.count,
        });
      });
      s.progress = progress;
    }
    return s;
  }
}
