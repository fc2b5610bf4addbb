/**
 * The Raft state machine (after etcd's raft.go): roles, terms, votes, replication, commit,
 * membership and leadership transfer. Pure: it consumes ticks and messages, and leaves messages in
 * `msgs` and state in the log for RawNode to hand to the host as a Ready.
 */
import { decodeConfChange, encodeConfChange } from './codec.ts';
import { Changer, restoreConfig, type ConfigAndProgress } from './confchange.ts';
import { CompactedError, RaftUsageError, SnapshotTemporarilyUnavailableError } from './errors.ts';
import { payloadsSize, RaftLog } from './log.ts';
import { Prng } from './prng.ts';
import { jointCommittedIndex, jointVoteResult } from './quorum.ts';
import type { Progress } from './progress.ts';
import { ReadOnly } from './readonly.ts';
import { isJoint, ProgressTracker } from './tracker.ts';
import {
  NONE,
  type Config,
  type ConfChange,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateRole,
} from './types.ts';

/** Marks the votes of a campaign started by MsgTimeoutNow: they bypass leader stickiness. */
export const CAMPAIGN_TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode('CampaignTransfer');

type CampaignType = 'preElection' | 'election' | 'transfer';

/** A proposed entry before the leader assigns its term and index. */
interface ProposedEntry {
  type: EntryType;
  data: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Ticks of the lease given up to message delay and clock drift between members. */
const LEASE_MARGIN_TICKS = 2;

/** A message with every field at its zero value except those given. */
export function makeMessage(type: MessageType, from: NodeId, to: NodeId, fields?: Partial<Message>): Message {
  const m: Message = { type, from, to, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0 };
  return fields === undefined ? m : Object.assign(m, fields);
}

function voteResponseType(t: MessageType): MessageType {
  return t === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp';
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function validateConfig(c: Config): void {
  if (c.id === NONE) throw new RaftUsageError('cannot use none as id');
  if (!(c.heartbeatTick > 0)) throw new RaftUsageError('heartbeat tick must be greater than 0');
  if (!(c.electionTick > c.heartbeatTick)) throw new RaftUsageError('election tick must be greater than heartbeat tick');
  if (!(c.maxInflightMsgs > 0)) throw new RaftUsageError('max inflight messages must be greater than 0');
  if (c.maxInflightBytes !== undefined && c.maxInflightBytes < c.maxSizePerMsg) {
    throw new RaftUsageError('max inflight bytes must be >= max message size');
  }
  if (c.readOnlyOption === 'leaseBased' && !c.checkQuorum) {
    throw new RaftUsageError('checkQuorum must be enabled when readOnlyOption is leaseBased');
  }
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  state: StateRole = 'follower';
  /** This node is a learner in the current configuration (never campaigns). */
  isLearner = false;
  readonly raftLog: RaftLog;
  trk: ProgressTracker;
  /** Outgoing messages, handed to the host with the next Ready. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = NONE;
  /** Index of the last conf change proposed by this leader; a new one waits until it is applied. */
  pendingConfIndex = 0;
  /** Payload bytes of uncommitted entries appended by this leader. */
  uncommittedSize = 0;
  readOnly: ReadOnly;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  private readonly maxMsgSize: number;
  private readonly maxUncommittedSize: number;
  private readonly prng: Prng;
  /** ReadIndex requests waiting for this leader's first commit in its term. */
  private pendingReadIndexMessages: Message[] = [];
  /**
   * New entries (or a new commit index) to replicate. MsgApp are built once per Ready rather
   * than once per proposal, so proposals that arrive together travel together.
   */
  private appendPending = false;
  private commitPending = false;
  /** Ticks since this node became leader: the clock of its lease. */
  private leaderTicks = 0;
  /**
   * A MsgTimeoutNow went out in this term: the transferee may win an election that bypasses the
   * followers' leases, so this leader's lease can no longer be trusted.
   */
  private leaseRevoked = false;
  /**
   * With lease-based reads, a node just started does not know when it last heard from a leader:
   * it grants no vote for an election timeout, as if it had just heard from one.
   */
  private startupLease: boolean;

  constructor(config: Config) {
    validateConfig(config);
    this.id = config.id;
    this.electionTimeout = config.electionTick;
    this.heartbeatTimeout = config.heartbeatTick;
    this.checkQuorum = config.checkQuorum;
    this.preVote = config.preVote;
    this.maxMsgSize = config.maxSizePerMsg;
    this.maxUncommittedSize = config.maxUncommittedEntriesSize ?? Infinity;
    // Mixing in the id keeps members' timeouts apart even when a host gives them all one seed.
    this.prng = new Prng(config.seed ^ Math.imul(config.id, 0x9e3779b1));
    this.readOnly = new ReadOnly(config.readOnlyOption);
    this.raftLog = new RaftLog(config.storage, config.maxCommittedSizePerReady ?? config.maxSizePerMsg);
    this.trk = new ProgressTracker(config.maxInflightMsgs, config.maxInflightBytes ?? Infinity);

    const { hardState, confState } = config.storage.initialState();
    this.switchToConfig(restoreConfig(this.trk, this.raftLog.lastIndex(), confState));
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (config.applied !== undefined && config.applied > 0) {
      // Applied entries were committed, even if the (unsynced) commit index did not survive a crash.
      if (config.applied > this.raftLog.committed && config.applied <= this.raftLog.lastIndex()) {
        this.raftLog.commitTo(config.applied);
      }
      this.raftLog.appliedTo(config.applied);
    }
    this.becomeFollower(this.term, NONE);
    this.startupLease = config.readOnlyOption === 'leaseBased';
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new RaftUsageError(`state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ----

  private send(m: Message): void {
    if (m.type === 'MsgVote' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVote' || m.type === 'MsgPreVoteResp') {
      // Votes carry the campaign's term, which for pre-votes is not our term.
      if (m.term === 0) throw new Error(`term should be set when sending ${m.type}`);
    } else if (m.type !== 'MsgProp' && m.type !== 'MsgReadIndex') {
      // Forwarded proposals and read requests are local to the group and carry no term.
      m.term = this.term;
    }
    this.msgs.push(m);
  }

  /**
   * Sends MsgApp to `to` if flow control allows; when the needed entries are compacted, a snapshot.
   * With `sendIfEmpty` false nothing is sent when there are no new entries.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.maybeTerm(prevIndex);
    let entries: Entry[] | undefined;
    if (prevTerm !== undefined) {
      try {
        entries = this.raftLog.entries(pr.next, this.maxMsgSize);
      } catch (e) {
        if (!(e instanceof CompactedError)) throw e;
      }
    }
    if (prevTerm === undefined || entries === undefined) return this.maybeSendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(makeMessage('MsgApp', this.id, to, { index: prevIndex, logTerm: prevTerm, entries, commit: this.raftLog.committed }));
    pr.sentEntries(entries.length, payloadsSize(entries));
    return true;
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    // A follower that does not answer would not take the snapshot either.
    if (!pr.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) return false;
      throw e;
    }
    if (snapshot.metadata.index === 0) throw new Error('need non-empty snapshot');
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send(makeMessage('MsgSnap', this.id, to, { snapshot }));
    return true;
  }

  private sendHeartbeat(to: NodeId, context: Uint8Array | undefined): void {
    // A follower may not have the leader's whole log: never ask it to commit past its match.
    const pr = this.trk.progress.get(to)!;
    const commit = Math.min(pr.match, this.raftLog.committed);
    const m = makeMessage('MsgHeartbeat', this.id, to, { commit });
    if (context !== undefined) m.context = context;
    this.send(m);
  }

  private forEachPeer(fn: (id: NodeId) => void): void {
    this.trk.visit((id) => {
      if (id !== this.id) fn(id);
    });
  }

  bcastAppend(): void {
    this.forEachPeer((id) => this.sendAppend(id));
  }

  private bcastHeartbeat(context?: Uint8Array): void {
    const ctx = context ?? this.readOnly.lastPendingRequestContext();
    this.forEachPeer((id) => this.sendHeartbeat(id, ctx));
  }

  /** Sends the MsgApp owed since the last call (new entries, a new commit index). */
  flushBroadcasts(): void {
    if (!this.appendPending && !this.commitPending) return;
    const commitPending = this.commitPending;
    this.appendPending = false;
    this.commitPending = false;
    if (this.state !== 'leader') return;
    this.forEachPeer((id) => {
      let sent = false;
      while (this.maybeSendAppend(id, false)) sent = true;
      if (!sent && commitPending) this.maybeSendAppend(id, true);
    });
  }

  /** Flushes and returns the outgoing messages (for tests and the host's Ready). */
  takeMessages(): Message[] {
    this.flushBroadcasts();
    const msgs = this.msgs;
    this.msgs = [];
    return msgs;
  }

  // ---- state transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = this.trk.newProgress(id === this.id ? lastIndex : 0, lastIndex + 1, pr.isLearner);
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
    this.pendingReadIndexMessages = [];
    this.appendPending = false;
    this.commitPending = false;
    this.leaderTicks = 0;
    this.leaseRevoked = false;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.prng.intBelow(this.electionTimeout);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = 'follower';
  }

  becomePreCandidate(): void {
    if (this.state === 'leader') throw new Error('invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: a lost pre-vote disturbs nobody.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = 'preCandidate';
  }

  becomeCandidate(): void {
    if (this.state === 'leader') throw new Error('invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'candidate';
  }

  becomeLeader(): void {
    if (this.state === 'follower') throw new Error('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = 'leader';
    const self = this.trk.progress.get(this.id)!;
    self.becomeReplicate();
    self.recentActive = true;
    // Conservatively treat the whole log as possibly holding an unapplied conf change.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An entry of the new term: committing it commits everything before it (§5.4.2).
    if (!this.appendEntry([{ type: 'normal', data: EMPTY }])) throw new Error('empty entry was dropped');
  }

  private promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
  }

  // ---- ticks ----

  tick(): void {
    if (this.state === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) this.startupLease = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.leaderTicks++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.checkQuorumActive();
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === 'leader' && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== 'leader') return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /** A leader that did not hear from a quorum within an election timeout steps down. */
  private checkQuorumActive(): void {
    if (!this.trk.quorumActive()) this.becomeFollower(this.term, NONE);
    this.trk.progress.forEach((pr, id) => {
      if (id !== this.id) pr.recentActive = false;
    });
  }

  // ---- elections ----

  /** Starts an election (the host's campaign, an election timeout, or MsgTimeoutNow). */
  hup(type: CampaignType): void {
    if (this.state === 'leader') return;
    if (!this.promotable()) return;
    // Campaigning before applying a committed conf change could act on a stale configuration.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(type);
  }

  private hasUnappliedConfChanges(): boolean {
    const log = this.raftLog;
    if (log.applied >= log.committed) return false;
    return log.slice(log.applied + 1, log.committed + 1, Infinity).some((e) => e.type === 'confChange');
  }

  campaign(type: CampaignType): void {
    if (!this.promotable()) return;
    let voteType: MessageType;
    let term: number;
    if (type === 'preElection') {
      this.becomePreCandidate();
      voteType = 'MsgPreVote';
      // Pre-votes ask about the term we would campaign in, without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'MsgVote';
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter group: elected by our own vote.
      if (type === 'preElection') this.campaign('election');
      else this.becomeLeaderAndAnnounce();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      const m = makeMessage(voteType, this.id, id, { term, index: lastIndex, logTerm: lastTerm });
      if (type === 'transfer') m.context = CAMPAIGN_TRANSFER_CONTEXT;
      this.send(m);
    }
  }

  private becomeLeaderAndAnnounce(): void {
    this.becomeLeader();
    this.bcastAppend();
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---- step ----

  /**
   * Handles a message. Returns the reason when a proposal or read request was dropped (the caller
   * decides whether that is an error), otherwise undefined.
   */
  step(m: Message): string | undefined {
    if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const force = sameBytes(m.context, CAMPAIGN_TRANSFER_CONTEXT);
        const inLease =
          this.checkQuorum && (this.lead !== NONE || this.startupLease) && this.electionElapsed < this.electionTimeout;
        // Leader stickiness: while we hear from a leader, a disruptive candidate is ignored.
        if (!force && inLease) return undefined;
      }
      if (m.type === 'MsgPreVote') {
        // Never change our term in response to a pre-vote.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // A granted pre-vote carries the future term; we move there only if we win.
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term !== 0 && m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // A stale leader (e.g. after a partition) would otherwise never learn the new term: with
        // pre-vote or check-quorum our term no longer reaches it through votes.
        this.send(makeMessage('MsgAppResp', this.id, m.from));
      } else if (m.type === 'MsgPreVote') {
        // Reject, so that a pre-candidate with a stale term learns of ours.
        this.send(makeMessage('MsgPreVoteResp', this.id, m.from, { term: this.term, reject: true }));
      }
      return undefined;
    }

    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return undefined;
    }
    switch (this.state) {
      case 'leader':
        return this.stepLeader(m);
      case 'candidate':
      case 'preCandidate':
        return this.stepCandidate(m);
      case 'follower':
        return this.stepFollower(m);
    }
  }

  private handleVoteRequest(m: Message): void {
    const canVote =
      this.vote === m.from ||
      // Not voted, and no known leader in this term.
      (this.vote === NONE && this.lead === NONE) ||
      // A pre-vote for a future term is not a vote.
      (m.type === 'MsgPreVote' && m.term > this.term);
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      this.send(makeMessage(voteResponseType(m.type), this.id, m.from, { term: m.term }));
      if (m.type === 'MsgVote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(makeMessage(voteResponseType(m.type), this.id, m.from, { term: this.term, reject: true }));
    }
  }

  private stepLeader(m: Message): string | undefined {
    switch (m.type) {
      case 'MsgProp':
        return this.handleProposal(m);
      case 'MsgReadIndex':
        this.handleReadIndexAsLeader(m);
        return undefined;
      case 'MsgTransferLeader':
        this.handleTransferLeader(m);
        return undefined;
      default:
        break;
    }
    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) return undefined;
    switch (m.type) {
      case 'MsgAppResp':
        this.handleAppendResponse(m, pr);
        break;
      case 'MsgHeartbeatResp':
        this.handleHeartbeatResponse(m, pr);
        break;
      default:
        break;
    }
    return undefined;
  }

  private handleProposal(m: Message): string | undefined {
    if (m.entries.length === 0) throw new RaftUsageError('proposal without entries');
    if (!this.trk.progress.has(this.id)) return 'this node was removed from the configuration';
    if (this.leadTransferee !== NONE) return `leadership is being transferred to ${this.leadTransferee}`;
    const entries: ProposedEntry[] = new Array(m.entries.length);
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.type !== 'confChange') {
        entries[i] = e;
        continue;
      }
      const refusal = this.confChangeRefusal(e.data);
      if (refusal === undefined) {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
        entries[i] = e;
      } else {
        // Keep the proposal's slot but make it a no-op: the proposer sees it applied as an empty
        // normal entry and can retry.
        entries[i] = { type: 'normal', data: EMPTY };
      }
    }
    if (!this.appendEntry(entries)) return 'too many uncommitted entries';
    this.appendPending = true;
    return undefined;
  }

  /** Why a conf change proposal cannot be accepted now, if it cannot. */
  private confChangeRefusal(data: Uint8Array): string | undefined {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(data);
    } catch (e) {
      if (e instanceof RangeError) return `undecodable conf change: ${e.message}`;
      throw e;
    }
    const joint = isJoint(this.trk.config);
    const wantsLeaveJoint = cc.changes.length === 0;
    if (this.pendingConfIndex > this.raftLog.applied) {
      return `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`;
    }
    if (joint && !wantsLeaveJoint) return 'must transition out of joint config first';
    if (!joint && wantsLeaveJoint) return 'not in joint state; refusing empty conf change';
    return undefined;
  }

  /** Appends entries of the current term to the leader's log; false when the size bound refuses. */
  private appendEntry(proposed: ProposedEntry[]): boolean {
    const li = this.raftLog.lastIndex();
    const entries: Entry[] = new Array(proposed.length);
    for (let i = 0; i < proposed.length; i++) {
      entries[i] = { term: this.term, index: li + 1 + i, type: proposed[i].type, data: proposed[i].data };
    }
    if (!this.increaseUncommittedSize(entries)) return false;
    const last = this.raftLog.append(entries);
    // The leader's own append counts towards the quorum: the host persists it before sending the
    // MsgApp that could bring the acknowledgements completing that quorum.
    this.trk.progress.get(this.id)?.maybeUpdate(last);
    // Only a quorum of one (the leader alone) can commit entries no follower has yet.
    const voters = this.trk.config.voters;
    if (voters.incoming.size <= 1 && voters.outgoing.size <= 1) this.maybeCommit();
    return true;
  }

  private increaseUncommittedSize(entries: Entry[]): boolean {
    const s = payloadsSize(entries);
    // Always admit one entry, however large, when nothing is uncommitted; empty entries always.
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(s: number): void {
    if (this.state !== 'leader') return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - s);
  }

  /** Advances the commit index to what a quorum holds, for entries of the current term only. */
  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.lastResponseTick = this.leaderTicks;
    if (m.reject) {
      // Skip past the whole conflicting term in one round trip when the follower told us its term.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe'))) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.raftLog.firstIndex()) {
      // The follower caught up past the compaction point (via the snapshot or otherwise).
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.commitPending = true;
    }
    // Pipeline whatever flow control admits.
    while (this.maybeSendAppend(m.from, false));
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.lastResponseTick = this.leaderTicks;
    pr.probeSent = false;
    // The follower is alive: free a slot of a full window whose acknowledgements may have been lost.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    // Behind, or in probe state (an empty probe's answer moves it back to replicate).
    if (pr.match < this.raftLog.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
    if (m.context === undefined || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined) return;
    if (jointVoteResult(this.trk.config.voters, acks) !== 'won') return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.request, rs.index);
  }

  private handleReadIndexAsLeader(m: Message): void {
    if (this.trk.isSingleton()) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    // Until the leader has committed an entry of its term, its commit index may be behind the
    // previous leader's: the read index would be too low.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.sendReadIndexResponse(m);
  }

  private sendReadIndexResponse(m: Message): void {
    if (this.readOnly.option === 'leaseBased' && this.leaseValid()) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    // Safe: confirm leadership with a heartbeat round (also the fallback of an expired lease).
    const context = m.context ?? EMPTY;
    this.readOnly.addRequest(this.raftLog.committed, m, context);
    this.readOnly.recvAck(this.id, context);
    this.bcastHeartbeat(context);
  }

  /**
   * The lease: a follower grants no vote within an election timeout of hearing from its leader
   * (check-quorum), so while a quorum answered us within that time — less a margin for message
   * delay and clock drift — no other leader can exist.
   */
  private leaseValid(): boolean {
    if (this.leaseRevoked) return false;
    const quorumHeardAt = jointCommittedIndex(this.trk.config.voters, (id) =>
      id === this.id ? this.leaderTicks : this.trk.progress.get(id)?.lastResponseTick,
    );
    return this.leaderTicks - quorumHeardAt < this.electionTimeout - LEASE_MARGIN_TICKS;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.maybeTerm(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.sendReadIndexResponse(m);
  }

  private respondToReadIndex(request: Message, index: number): void {
    const context = request.context ?? EMPTY;
    if (request.from === NONE || request.from === this.id) {
      this.readStates.push({ index, context });
      return;
    }
    this.send(makeMessage('MsgReadIndexResp', this.id, request.from, { index, context }));
  }

  private handleTransferLeader(m: Message): void {
    const transferee = m.from;
    const pr = this.trk.progress.get(transferee);
    if (pr === undefined || pr.isLearner) return;
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseRevoked = true;
    this.send(makeMessage('MsgTimeoutNow', this.id, to));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private stepCandidate(m: Message): string | undefined {
    const myVoteResponse: MessageType = this.state === 'preCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgProp':
        return 'no leader';
      case 'MsgReadIndex':
        return 'no leader';
      case 'MsgApp':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return undefined;
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return undefined;
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return undefined;
      default:
        break;
    }
    if (m.type === myVoteResponse) {
      const result = this.poll(m.from, !m.reject);
      if (result === 'won') {
        if (this.state === 'preCandidate') this.campaign('election');
        else this.becomeLeaderAndAnnounce();
      } else if (result === 'lost') {
        // A pre-candidate that lost goes back to following in its unchanged term.
        this.becomeFollower(this.term, NONE);
      }
    }
    return undefined;
  }

  private stepFollower(m: Message): string | undefined {
    switch (m.type) {
      case 'MsgProp':
        if (this.lead === NONE) return 'no leader';
        this.send({ ...m, to: this.lead });
        return undefined;
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return undefined;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return undefined;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return undefined;
      case 'MsgTransferLeader':
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return undefined;
      case 'MsgTimeoutNow':
        // The leader asks us to take over now, skipping pre-vote and leader stickiness.
        this.hup('transfer');
        return undefined;
      case 'MsgReadIndex':
        if (this.lead === NONE) return 'no leader';
        this.send({ ...m, to: this.lead });
        return undefined;
      case 'MsgReadIndexResp':
        this.readStates.push({ index: m.index, context: m.context ?? EMPTY });
        return undefined;
      default:
        return undefined;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index is known to match.
      this.send(makeMessage('MsgAppResp', this.id, m.from, { index: this.raftLog.committed }));
      return;
    }
    const last = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.send(makeMessage('MsgAppResp', this.id, m.from, { index: last }));
      return;
    }
    // Tell the leader where our log may match: the last index at or before m.index whose term is
    // at most m.logTerm, with that term (etcd's fast backtracking).
    const hint = this.raftLog.findConflictByTerm(Math.min(m.index, this.raftLog.lastIndex()), m.logTerm);
    this.send(
      makeMessage('MsgAppResp', this.id, m.from, { index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const resp = makeMessage('MsgHeartbeatResp', this.id, m.from);
    if (m.context !== undefined) resp.context = m.context;
    this.send(resp);
  }

  private handleSnapshot(m: Message): void {
    if (m.snapshot === undefined) return;
    if (this.restore(m.snapshot)) {
      this.send(makeMessage('MsgAppResp', this.id, m.from, { index: this.raftLog.lastIndex() }));
    } else {
      this.send(makeMessage('MsgAppResp', this.id, m.from, { index: this.raftLog.committed }));
    }
  }

  /** Restores from a leader's snapshot; false when it is stale or already covered by our log. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== 'follower') {
      // Only a follower of the current leader receives snapshots; be defensive anyway.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    // A snapshot taken before this node joined does not list it; the log after the snapshot
    // (which the leader sends next) holds the change that added it, so it is accepted anyway.
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // Our log already has the snapshot's last entry: just fast-forward the commit index.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.trk = new ProgressTracker(this.trk.maxInflight, this.trk.maxInflightBytes);
    this.switchToConfig(restoreConfig(this.trk, this.raftLog.lastIndex(), s.metadata.confState));
    return true;
  }

  // ---- host-driven events ----

  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.state !== 'leader') return;
    const pr = this.trk.progress.get(id);
    if (pr === undefined || pr.state !== 'snapshot') return;
    // On failure, forget the snapshot so probing restarts at match+1.
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat) before probing.
    pr.probeSent = true;
  }

  reportUnreachable(id: NodeId): void {
    if (this.state !== 'leader') return;
    const pr = this.trk.progress.get(id);
    // Optimistic pipelining to an unreachable follower only fills the window with lost messages.
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The host applied entries up to `index` (or a snapshot at `index`). */
  appliedTo(index: number): void {
    this.raftLog.appliedTo(index);
    if (this.trk.config.autoLeave && index >= this.pendingConfIndex && this.state === 'leader') {
      // The joint configuration is applied: propose leaving it.
      if (!this.appendEntry([{ type: 'confChange', data: encodeConfChange({ changes: [] }) }])) {
        throw new Error('refused un-refusable auto-leaving conf change');
      }
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.appendPending = true;
    }
  }

  /** Applies a committed ConfChange; throws ConfChangeError (and changes nothing) when invalid. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.switchToConfig(new Changer(this.trk, this.raftLog.lastIndex()).apply(cc));
  }

  private switchToConfig(next: ConfigAndProgress): ConfState {
    this.trk.config = next.config;
    this.trk.progress = next.progress;
    const cs = this.trk.confState();
    const self = this.trk.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if (this.state !== 'leader') return cs;
    if (self === undefined || this.isLearner) {
      // Removed (or demoted): leading a group one is not a voter of makes no sense.
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    // The quorum changed: the commit index may move, and new members need the log.
    if (this.maybeCommit()) this.commitPending = true;
    this.appendPending = true;
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }
}
