/**
 * The multi-Raft host of a storage node: runs every Raft group replica this node holds over one
 * RaftLogStore (group commit) and one transport, following the host loop of @shoal/raft.
 *
 * Everything that touches a RawNode happens inside a *round*, and rounds never overlap:
 *   1. deliver queued ticks, inbound messages, proposals, reads and reports to their RawNodes;
 *   2. take the Ready of every group touched since the last round that has one (idle groups cost
 *      nothing but their tick);
 *   3. send the messages of groups this node leads (appends may go out while the leader's own write
 *      is under way), start ONE `logStore.persist` of all Readies (synced when any Ready has
 *      mustSync), and meanwhile apply the committed entries the log held before this round;
 *   4. once the write is done, send the other groups' messages (acknowledgements, votes) and apply
 *      the rest (entries the round itself appended); each apply phase waits until the state
 *      machines' applied state is readable (`settled`: one store batch) before it resolves proposals
 *      by (index, term) and serves reads; then advance.
 * A round runs on every tick and as soon as anything arrives (while one runs, the next is formed), so
 * a proposal does not wait for a tick to be persisted and sent.
 *
 * Ticks are driven by wall time, not by counting timer callbacks: after a process pause the ticks it
 * missed are delivered at once, so a leader's lease (and check-quorum) see that time passed.
 */
import {
  ConfChangeError,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type ProgressState,
  type Ready,
  type ReadOnlyOption,
  type Snapshot,
  type StateRole,
} from '@shoal/raft';
import { closeSync, openSync, readSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { GroupPersist, RaftLogStore } from '../raft-log/store.ts';
import { withPrefix, type GroupMessage, type SnapshotData, type SnapshotOutcome, type StagedSnapshotData } from '../transport/raft-transport.ts';
import { GroupNotHostedError, MembershipChangeRefusedError, NotLeaderError, ProposalOutcomeUnknownError, RaftTimeoutError } from './errors.ts';

/** The replicated state of one group on this node. */
export interface ReplicaStateMachine {
  /** Applies a committed command; the result goes back to the proposer (on the leader). */
  apply(data: Uint8Array, index: number): Promise<unknown> | unknown;
  /**
   * What the log store records for a snapshot at appliedIndex(), before the log up to it may be
   * dropped: the whole state (a small one), or a small descriptor of a state the machine keeps
   * durably itself (then it resolves once that state is durable, and openSnapshotPayload streams it).
   */
  snapshot(): Promise<Uint8Array> | Uint8Array;
  /**
   * Takes the state of the snapshot the log store holds at `index`: at a restart, when appliedIndex()
   * is below it; and for a snapshot received from a leader, unless installSnapshot takes it.
   */
  restore(data: Uint8Array, index: number): void;
  /** The last index applied (entries at or below it are not applied again after a restart). */
  appliedIndex(): number;
  /**
   * For a state kept outside the snapshot's data (see snapshot): opens a read of the state as it is
   * NOW, synchronously; the function returned reads it into the payload that travels with a snapshot
   * to a follower. The host calls it while none of the group's entries is being applied.
   */
  openSnapshotPayload?(): () => Promise<SnapshotData>;
  /**
   * Replaces the state with a payload received with the leader's snapshot at `index` (the payload's
   * state may be newer: entries up to its own applied index are then not applied again), durably,
   * before the log store records the snapshot. The payload is staged in a file, which stays until
   * this resolves (the host deletes it then): a restore a crash interrupted may be redone from it.
   */
  installSnapshot?(snapshot: { index: number; data: Uint8Array; payload: StagedPayload }): Promise<void>;
  /**
   * Resolves once what `apply` did so far is visible to readers. A state machine whose `apply`
   * resolves earlier (its changes staged, written later in one batch) has it; the host answers the
   * proposals and reads a round applied only after it.
   */
  settled?(): Promise<void>;
}

/** A snapshot's payload as received: staged in a file by the transport, `size` bytes from `offset`. */
export interface StagedPayload {
  path: string;
  offset: number;
  size: number;
}

/** What the host needs of a transport: RaftTransport satisfies it. */
export interface RaftMessageSender {
  send(groupId: number, message: Message): void;
  /** Sends what is queued; called once per round. */
  flush(): void;
  /** Sends a MsgSnap with its data read as it goes (RaftTransport); without it, the host reads it all and uses `send`. */
  sendSnapshot?(groupId: number, message: Message, data: SnapshotData): void;
}

export interface MultiRaftHostOptions {
  nodeId: NodeId;
  logStore: RaftLogStore;
  sender: RaftMessageSender;
  /** The state machine of a replica being created or restarted. */
  stateMachine(groupId: number): ReplicaStateMachine;
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
  seed: number;
  /** Default 5,000 ms. */
  proposalTimeoutMs?: number;
  /** Default 'safe' (a heartbeat round per ReadIndex). */
  readOnlyOption?: ReadOnlyOption;
  /** Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Default 256. */
  maxInflightMsgs?: number;
  /**
   * Log compaction: every `every` applied entries, record the state machine's snapshot in the log
   * store and drop the log up to `keep` entries behind it (lagging followers then catch up by
   * snapshot). Off by default. Only for state machines whose `snapshot()` holds, or durably stands
   * for, the state at `appliedIndex()`: the dropped entries can no longer replay it.
   */
  snapshotPolicy?: { every: number; keep: number };
  /**
   * Quiescence of idle groups (CockroachDB's): off without it. At a tick, a leader with nothing
   * pending, everything committed and applied, and every member caught up (replicating) sends its
   * followers a heartbeat marked quiesce and stops ticking the group; a follower that hears it from
   * its leader stops too. A quiesced group costs nothing until anything for it arrives (a proposal,
   * a read, a membership change, a message other than a heartbeat answer), which wakes it; a quiesced
   * follower also wakes, at a tick, once `isNodeLive` says its leader's node is not live, so the group
   * elects again.
   */
  quiescence?: { isNodeLive(nodeId: NodeId): boolean };
  /**
   * How long an append without entries (a leader telling a follower its new commit index, or a probe)
   * is held before it is sent: an append with entries to the same follower of the group sent
   * meanwhile carries the commit index too, and the held one is dropped (as a lost message would be).
   * Under load most commit notifications then ride on the next append instead of costing a message,
   * its answer and a round on each side; idle, a follower learns a commit this much later. Default 0:
   * sent at once.
   */
  commitNotificationHoldMs?: number;
  /**
   * An idle group's leader (nothing pending, everything committed and applied, every member caught up
   * and replicating) sends only every n-th of its heartbeat rounds (Raft makes one every heartbeatTick
   * ticks); the others are dropped before they leave. Heartbeats were half the CPU of idle groups
   * (scripts/bench-idle-groups.ts). Keep heartbeatTick x n well below electionTick, so that a leader
   * hears its followers several times per check-quorum window. Heartbeats carrying a ReadIndex or
   * quiescence context always leave. Default 1: every round.
   */
  idleHeartbeatEvery?: number;
}

export interface GroupStatus {
  groupId: number;
  role: StateRole;
  /** 0 when none is known. */
  leader: NodeId;
  term: number;
  commit: number;
  applied: number;
  voters: NodeId[];
  learners: NodeId[];
  /**
   * An applied membership change (or a snapshot's configuration) left this node out of the group:
   * its replica may be removed. A removed node does not always learn it (the leader stops sending to
   * it), so false does not prove membership.
   */
  leftGroup: boolean;
  /** Times this replica saw its group's known leader change to another node (for metrics). */
  leaderChanges: number;
  /** Commands this replica proposed as leader (for metrics). */
  proposals: number;
}

/** One member's replication progress as the group's leader tracks it. */
export interface PeerProgress {
  nodeId: NodeId;
  /** The highest log index known to be replicated on that member. */
  match: number;
  isLearner: boolean;
  /** How the leader sends to it: probing, pipelining (caught up enough to stream), or by snapshot. */
  state: ProgressState;
  /** Heard from within the last election timeout. */
  recentActive: boolean;
}

/**
 * One membership change at a time, as partition leaders converge their groups to the descriptors:
 * a new node joins as a learner, is promoted once caught up, and a member no longer wanted leaves.
 */
export interface MembershipChange {
  kind: 'addLearner' | 'promote' | 'remove';
  nodeId: NodeId;
}

const CONF_CHANGE_TYPES: Record<MembershipChange['kind'], ConfChangeType> = {
  addLearner: 'addLearner',
  // Adding a learner as a voter promotes it.
  promote: 'addNode',
  remove: 'removeNode',
};

/** Counters for tests, benchmarks and metrics. */
export interface MultiRaftHostStats {
  rounds: number;
  ticks: number;
  /** `logStore.persist` calls (at most one per round). */
  persistCalls: number;
  /** Group Readies persisted, summed over persist calls. */
  groupsPersisted: number;
  /** The most groups one persist call carried. */
  maxGroupsPerPersist: number;
  entriesApplied: number;
  /** Times a group led here was quiesced. */
  quiesced: number;
  snapshotsTaken: number;
  /** Snapshots received from a leader and restored into the state machine. */
  snapshotsRestored: number;
  /** Times a replica here became its group's leader (summed over nodes: the elections won). */
  leadersElected: number;
  /** Times a replica here stopped leading its group (stepped down or deposed). */
  leadersLost: number;
  /** Timer callbacks that found 3 or more ticks due: the event loop was held up 2 tick intervals or more. */
  tickStalls: number;
  /** Appends without entries held (commitNotificationHoldMs), and those of them an append with entries made unnecessary. */
  emptyAppendsHeld: number;
  emptyAppendsSuperseded: number;
  /** Heartbeats of idle groups not sent (idleHeartbeatEvery). */
  idleHeartbeatsDropped: number;
  /** ReadIndex requests handed to Raft (each serves every read of its group that arrived before it). */
  readIndexRequests: number;
}

interface PendingProposal {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
  term: number;
}

/** A membership change proposed here, found in the log by its unique context bytes. */
interface PendingMembershipChange {
  context: Uint8Array;
  proposal: PendingProposal;
  /** Set once handed to Raft: the same round's Ready shows whether Raft appended it. */
  proposed: boolean;
}

interface ReadWaiter {
  resolve(): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * One ReadIndex request of Raft, shared by every read of the group that arrived before it was
 * issued (at the start of the next round): one heartbeat round confirms them all.
 */
interface PendingRead {
  waiters: Set<ReadWaiter>;
  /** Its context id, once issued. */
  id: number | undefined;
  /** Known once the ReadState arrived. */
  index: number | undefined;
}

class Replica {
  readonly groupId: number;
  readonly raw: RawNode;
  readonly stateMachine: ReplicaStateMachine;
  role: StateRole = 'follower';
  leader: NodeId = 0;
  term: number;
  commit: number;
  applied: number;
  confState: ConfState;
  lastSnapshotIndex: number;
  /** Not ticked: idle (see MultiRaftHostOptions.quiescence). */
  quiesced = false;
  /** Heartbeat rounds made while idle since the group last was not (idleHeartbeatEvery). */
  idleHeartbeatRounds = 0;
  /** Ticks left during which a campaign asked for (see MultiRaftHost.campaign) starts again while no leader is known. */
  campaignTicks = 0;
  /** The payloads of the snapshots stepped this round (framed after their data), until the round's Ready takes one. */
  incoming: Array<{ index: number; payload: StagedPayload }> = [];
  removed = false;
  leftGroup = false;
  leaderChanges = 0;
  proposals = 0;
  /** The one membership change in flight from this replica, until it is placed in the log. */
  unplacedChange: PendingMembershipChange | undefined;
  /** Whether a membership change proposed here has not settled yet (one at a time). */
  changing = false;
  /** Proposed, not yet seen in a Ready's entries; keyed by the entry data's identity. */
  readonly unplaced = new Map<Uint8Array, PendingProposal>();
  /** Placed in the log at an index, waiting for that index to apply. */
  readonly placed = new Map<number, PendingProposal>();
  /** ReadIndex requests by context id. */
  readonly reads = new Map<number, PendingRead>();
  /** Reads waiting for the next round to issue their ReadIndex request. */
  nextRead: PendingRead | undefined;

  constructor(groupId: number, raw: RawNode, stateMachine: ReplicaStateMachine, applied: number, term: number, commit: number, confState: ConfState) {
    this.groupId = groupId;
    this.raw = raw;
    this.stateMachine = stateMachine;
    this.applied = applied;
    this.term = term;
    this.commit = commit;
    this.confState = confState;
    this.lastSnapshotIndex = applied;
  }

  /**
   * Fails everything pending with `error`, except proposals placed in the log: those may still
   * commit through the other replicas, so their outcome is unknown.
   */
  failAll(error: () => Error): void {
    const unplacedChange = this.unplacedChange === undefined ? [] : [this.unplacedChange.proposal];
    const reads = [...this.reads.values(), ...(this.nextRead === undefined ? [] : [this.nextRead])].flatMap((read) => [...read.waiters]);
    for (const pending of [...this.unplaced.values(), ...unplacedChange, ...reads]) {
      clearTimeout(pending.timer);
      pending.reject(error());
    }
    for (const pending of this.placed.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ProposalOutcomeUnknownError(this.groupId, error().message));
    }
    this.unplacedChange = undefined;
    this.unplaced.clear();
    this.placed.clear();
    this.reads.clear();
    this.nextRead = undefined;
  }
}

type Action = (replica: Replica) => void;

/**
 * The leader to name when this replica drops a proposal: while it hands its leadership over, the
 * node it hands it to (which leads within a round trip), so that a router goes there rather than
 * back to this replica after a backoff.
 */
function leaderHint(replica: Replica): NodeId {
  if (replica.role !== 'leader') return replica.leader;
  const transferee = replica.raw.status().leadTransferee;
  return transferee !== 0 ? transferee : replica.leader;
}

/** Completes a proposal or read applied in this round, once the round's applied state is readable (or failed). */
type Answer = (failure: Error | undefined) => void;

const contextBytes = (id: number): Uint8Array => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, id);
  return bytes;
};
const contextId = (bytes: Uint8Array): number =>
  bytes.length === 8 ? new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0) : -1;

export class MultiRaftHost {
  readonly nodeId: NodeId;
  readonly stats: MultiRaftHostStats = { rounds: 0, ticks: 0, persistCalls: 0, groupsPersisted: 0, maxGroupsPerPersist: 0, entriesApplied: 0, quiesced: 0, snapshotsTaken: 0, snapshotsRestored: 0, leadersElected: 0, leadersLost: 0, tickStalls: 0, emptyAppendsHeld: 0, emptyAppendsSuperseded: 0, idleHeartbeatsDropped: 0, readIndexRequests: 0 };
  readonly #options: MultiRaftHostOptions;
  readonly #groups = new Map<number, Replica>();
  /** Replicas a snapshot with a payload was stepped into this round. */
  readonly #incoming = new Set<Replica>();
  /** Groups with work since the last round. */
  #dirty = new Set<Replica>();
  #actions: Array<{ groupId: number; action: Action; wakes: boolean; dropped?: () => void }> = [];
  #pendingTicks = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastTickAt = 0;
  #nextRequestId = 1;
  /** Appends without entries waiting for commitNotificationHoldMs, by group and follower (one each: the newest). */
  readonly #heldAppends = new Map<number, Map<NodeId, Message>>();
  #heldAppendsTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #failure: Error | undefined;

  constructor(options: MultiRaftHostOptions) {
    this.nodeId = options.nodeId;
    this.#options = options;
  }

  /** Restarts every group found in the log store but those `deferred`. Ticks stay manual until `startTicking`. */
  open(deferred: (groupId: number) => boolean = () => false): void {
    for (const group of this.#options.logStore.listGroups()) {
      if (!this.#groups.has(group.groupId) && !deferred(group.groupId)) this.#openReplica(group.groupId);
    }
  }

  /**
   * Starts a group the log store holds that `open` deferred (a split half waiting for its parent to
   * apply the split again here); a group not in the log store is created with these members.
   */
  async openOrCreateGroup(groupId: number, voters: NodeId[], learners: NodeId[] = []): Promise<void> {
    this.#checkRunning();
    if (this.#groups.has(groupId)) return;
    if (this.#options.logStore.hasGroup(groupId)) this.#openReplica(groupId);
    else await this.createGroup(groupId, voters, learners);
  }

  /** Ticks every `tickMs`, delivering ticks missed during a pause at once (bounded: see #deliver). */
  startTicking(): void {
    if (this.#timer !== undefined) return;
    this.#lastTickAt = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor((now - this.#lastTickAt) / this.#options.tickMs);
      if (due <= 0) return;
      if (due >= 3) this.stats.tickStalls++;
      this.#lastTickAt += due * this.#options.tickMs;
      void this.tickOnce(due).catch(() => undefined);
    }, this.#options.tickMs);
  }

  /** Delivers `ticks` ticks to every group and runs a round; resolves when the round is done. */
  tickOnce(ticks = 1): Promise<void> {
    this.#pendingTicks += ticks;
    return this.#kick();
  }

  /** Creates a new group with these initial voters (and learners; every initial member creates it alike). */
  async createGroup(groupId: number, voters: NodeId[], learners: NodeId[] = []): Promise<void> {
    this.#checkRunning();
    const stateMachine = this.#options.stateMachine(groupId);
    await this.#options.logStore.bootstrapGroup(groupId, { voters, learners }, await stateMachine.snapshot());
    this.#openReplica(groupId, stateMachine);
  }

  /**
   * Creates an empty replica of an existing group (a node added to it): no membership, no entries.
   * It waits for the group's leader, which sends it the group's initial snapshot and then the log.
   */
  async joinGroup(groupId: number): Promise<void> {
    this.#checkRunning();
    const stateMachine = this.#options.stateMachine(groupId);
    await this.#options.logStore.createGroup(groupId);
    this.#openReplica(groupId, stateMachine);
  }

  /** Stops the replica and deletes its log (the replica moved away). */
  async removeGroup(groupId: number): Promise<void> {
    const replica = this.#replica(groupId);
    replica.removed = true;
    this.#groups.delete(groupId);
    this.#dirty.delete(replica);
    replica.failAll(() => new GroupNotHostedError(groupId, 'was removed from this node'));
    // A round in flight may still be persisting this group's Ready.
    await this.#running;
    await this.#options.logStore.removeGroup(groupId);
  }

  /** Why the host stopped on its own (a Ready it could not persist or apply); undefined while it runs. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  hasGroup(groupId: number): boolean {
    return this.#groups.has(groupId);
  }

  /**
   * Whether the group is hosted here and its configuration (as applied here) names a voter or a
   * learner: false for a replica created empty that has not taken in its group's snapshot yet.
   */
  hasMembers(groupId: number): boolean {
    const replica = this.#groups.get(groupId);
    return replica !== undefined && replica.confState.voters.length + replica.confState.learners.length > 0;
  }

  /**
   * The group's configuration as applied here. Read by a state machine while it applies an entry, it
   * is the configuration at that entry, the same on every replica.
   */
  configuration(groupId: number): { voters: NodeId[]; learners: NodeId[] } | undefined {
    const replica = this.#groups.get(groupId);
    return replica === undefined ? undefined : { voters: [...replica.confState.voters], learners: [...replica.confState.learners] };
  }

  /**
   * Replicates `data` and resolves with the state machine's result once it is applied here.
   * Rejects with NotLeaderError (with the leader hint) unless this replica leads, and with
   * RaftTimeoutError after proposalTimeoutMs (the command may still commit).
   */
  propose(groupId: number, data: Uint8Array): Promise<unknown> {
    const replica = this.#requestReplica(groupId);
    if (replica instanceof Error) return Promise.reject(replica);
    if (replica.role !== 'leader') return Promise.reject(new NotLeaderError(groupId, replica.leader));
    if (data.length === 0) return Promise.reject(new RangeError('a proposal must not be empty'));
    // A private copy: its identity is what finds the entry in the next Ready.
    const command = data.slice();
    const ms = this.#options.proposalTimeoutMs ?? 5_000;
    return new Promise<unknown>((resolve, reject) => {
      const pending: PendingProposal = {
        resolve,
        reject,
        term: 0,
        timer: setTimeout(() => {
          replica.unplaced.delete(command);
          for (const [index, p] of replica.placed) if (p === pending) replica.placed.delete(index);
          reject(new RaftTimeoutError(groupId, 'proposal', ms));
        }, ms),
      };
      this.#enqueue(groupId, (r) => {
        try {
          r.raw.propose(command);
          r.unplaced.set(command, pending);
          r.proposals++;
        } catch (error) {
          clearTimeout(pending.timer);
          if (error instanceof ProposalDroppedError) reject(new NotLeaderError(groupId, leaderHint(r)));
          else reject(error as Error);
        }
      });
    });
  }

  /**
   * Proposes one membership change of the group this replica leads; resolves with the group's new
   * configuration once the change is applied here. One at a time: while one is unsettled, or while
   * Raft still has one unapplied (a new leader's log may hold one), the next is refused with
   * MembershipChangeRefusedError; an invalid change (removing the last voter...) with ConfChangeError.
   * Rejects like `propose` otherwise (NotLeaderError, RaftTimeoutError).
   */
  changeMembership(groupId: number, change: MembershipChange): Promise<ConfState> {
    const replica = this.#requestReplica(groupId);
    if (replica instanceof Error) return Promise.reject(replica);
    if (replica.role !== 'leader') return Promise.reject(new NotLeaderError(groupId, replica.leader));
    if (replica.changing) return Promise.reject(new MembershipChangeRefusedError(groupId, 'another membership change from this leader is not settled yet'));
    replica.changing = true;
    const context = contextBytes(this.#nextRequestId++);
    const ms = this.#options.proposalTimeoutMs ?? 5_000;
    return new Promise<ConfState>((resolve, reject) => {
      const settle = (): void => {
        replica.changing = false;
        if (replica.unplacedChange?.proposal === pending) replica.unplacedChange = undefined;
      };
      const pending: PendingProposal = {
        resolve: (result) => {
          settle();
          if (result instanceof Error) reject(result);
          else resolve(result as ConfState);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
        term: 0,
        timer: setTimeout(() => {
          for (const [index, p] of replica.placed) if (p === pending) replica.placed.delete(index);
          pending.reject(new RaftTimeoutError(groupId, 'membership change', ms));
        }, ms),
      };
      const membershipChange: PendingMembershipChange = { context, proposal: pending, proposed: false };
      replica.unplacedChange = membershipChange;
      this.#enqueue(groupId, (r) => {
        if (r.unplacedChange !== membershipChange) return;
        try {
          r.raw.proposeConfChange({ changes: [{ type: CONF_CHANGE_TYPES[change.kind], nodeId: change.nodeId }], context });
          membershipChange.proposed = true;
        } catch (error) {
          clearTimeout(pending.timer);
          if (error instanceof ProposalDroppedError) pending.reject(new NotLeaderError(groupId, leaderHint(r)));
          else pending.reject(error as Error);
        }
      });
    });
  }

  /**
   * The replication progress of every member of a group this replica leads (this node included),
   * by node id; undefined unless it leads.
   */
  progress(groupId: number): PeerProgress[] | undefined {
    const replica = this.#groups.get(groupId);
    if (replica === undefined || replica.role !== 'leader') return undefined;
    const progress = replica.raw.status().progress;
    if (progress === undefined) return undefined;
    return [...progress]
      .sort(([a], [b]) => a - b)
      .map(([nodeId, p]) => ({ nodeId, match: p.match, isLearner: p.isLearner, state: p.state, recentActive: p.recentActive }));
  }

  /**
   * Resolves once a linearizable read may be served from this replica's state machine (ReadIndex:
   * the leader confirmed its leadership and this replica applied up to the read point). The reads of
   * a group that arrive between two rounds share one ReadIndex request, issued after the last of them
   * arrived, so its read point holds for each.
   */
  readIndex(groupId: number): Promise<void> {
    const replica = this.#requestReplica(groupId);
    if (replica instanceof Error) return Promise.reject(replica);
    const ms = this.#options.proposalTimeoutMs ?? 5_000;
    let read = replica.nextRead;
    if (read === undefined) {
      const issued: PendingRead = { waiters: new Set(), id: undefined, index: undefined };
      replica.nextRead = read = issued;
      this.#enqueue(groupId, (r) => {
        r.nextRead = undefined;
        if (issued.waiters.size === 0) return;
        const id = this.#nextRequestId++;
        try {
          r.raw.readIndex(contextBytes(id));
          issued.id = id;
          r.reads.set(id, issued);
          this.stats.readIndexRequests++;
        } catch (error) {
          const failure = error instanceof ProposalDroppedError ? new NotLeaderError(groupId, r.leader) : (error as Error);
          for (const waiter of issued.waiters) {
            clearTimeout(waiter.timer);
            waiter.reject(failure);
          }
        }
      });
    }
    const shared = read;
    return new Promise<void>((resolve, reject) => {
      const waiter: ReadWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          shared.waiters.delete(waiter);
          if (shared.waiters.size === 0 && shared.id !== undefined) replica.reads.delete(shared.id);
          reject(new RaftTimeoutError(groupId, 'read index', ms));
        }, ms),
      };
      shared.waiters.add(waiter);
    });
  }

  /** How many groups here are quiesced now. */
  quiescedGroups(): number {
    let count = 0;
    for (const replica of this.#groups.values()) if (replica.quiesced) count++;
    return count;
  }

  /** The leader this replica knows of (0: none), or undefined when the group is not hosted. */
  leaderOf(groupId: number): NodeId | undefined {
    return this.#groups.get(groupId)?.leader;
  }

  /**
   * Starts an election of the group at once instead of after an election timeout: for a group just
   * created here whose other members are being created alongside it (a split's right half, on the
   * parent's leader), which would otherwise stay leaderless for 1-2 election timeouts. Members not
   * created yet drop the vote requests, so the campaign starts again at each tick while no leader is
   * known, for at most an election timeout. With pre-vote it disturbs no group that has a leader.
   */
  campaign(groupId: number): void {
    this.#replica(groupId);
    this.#enqueue(groupId, (r) => {
      if (r.leader !== 0) return;
      r.campaignTicks = this.#options.electionTick;
      r.raw.campaign();
    });
  }

  /** Asks the leader (this replica) to hand leadership to `to`; check leaderOf for the outcome. */
  transferLeadership(groupId: number, to: NodeId): void {
    this.#replica(groupId);
    this.#enqueue(groupId, (r) => r.raw.transferLeadership(to));
  }

  status(): GroupStatus[] {
    return [...this.#groups.values()]
      .sort((a, b) => a.groupId - b.groupId)
      .map((r) => ({
        groupId: r.groupId,
        role: r.role,
        leader: r.leader,
        term: r.term,
        commit: r.commit,
        applied: r.applied,
        voters: [...r.confState.voters],
        learners: [...r.confState.learners],
        leftGroup: r.leftGroup,
        leaderChanges: r.leaderChanges,
        proposals: r.proposals,
      }));
  }

  /**
   * Inbound messages (the transport's onMessages). Returns the groups among them this node does
   * not host, for the sender's onUndelivered.
   */
  receive(batch: readonly GroupMessage[]): number[] {
    // A stopping host drops what arrives: its replicas still exist, and the senders retry.
    if (this.#stopped) {
      for (const { staged } of batch) if (staged !== undefined) discardStaged(staged.path);
      return [];
    }
    const notHosted = new Set<number>();
    for (const { groupId, message, staged } of batch) {
      if (!this.#groups.has(groupId)) {
        notHosted.add(groupId);
      } else if (message.type === 'MsgHeartbeat' && isQuiesceContext(message.context)) {
        // Stepped as a plain heartbeat; the follower stops ticking if it comes from its leader.
        const { context: _marker, ...heartbeat } = message;
        this.#enqueue(
          groupId,
          (r) => {
            r.raw.step(heartbeat);
            if (r.leader === message.from && r.term === message.term) r.quiesced = true;
          },
          false,
        );
      } else if (message.type === 'MsgHeartbeatResp') {
        this.#enqueue(groupId, (r) => r.raw.step(message), false);
      } else if (message.type === 'MsgSnap' && message.snapshot !== undefined) {
        // Staged by the transport; a sender in this process (tests) may frame a payload-less snapshot in the message.
        const framed = staged === undefined ? unframeSnapshot(message.snapshot.data) : unframeStagedSnapshot(staged);
        // A frame that does not parse is dropped: the leader, told the transfer went well, probes and sends again.
        if (framed === undefined) {
          if (staged !== undefined) discardStaged(staged.path);
          continue;
        }
        const snapshot = { metadata: message.snapshot.metadata, data: framed.data };
        const { payload } = framed;
        this.#enqueue(
          groupId,
          (r) => {
            if (payload !== undefined) {
              r.incoming.push({ index: snapshot.metadata.index, payload });
              this.#incoming.add(r);
            }
            r.raw.step({ ...message, snapshot });
          },
          true,
          // The group was removed before this round: nothing will install or discard the file.
          () => {
            if (payload !== undefined) discardStaged(payload.path);
          },
        );
      } else {
        this.#enqueue(groupId, (r) => r.raw.step(message));
      }
    }
    return [...notHosted];
  }

  /** Messages to `nodeId` of these groups were lost (the transport's onUnreachable). */
  reportUnreachable(nodeId: NodeId, groupIds: readonly number[]): void {
    for (const groupId of groupIds) {
      if (this.#groups.has(groupId)) this.#enqueue(groupId, (r) => r.raw.reportUnreachable(nodeId), false);
    }
  }

  /** A snapshot transfer ended (the transport's onSnapshotSent). */
  reportSnapshot(outcome: SnapshotOutcome): void {
    if (this.#groups.has(outcome.groupId)) this.#enqueue(outcome.groupId, (r) => r.raw.reportSnapshot(outcome.to, outcome.ok));
  }

  /** Stops ticking, waits for the round in flight, fails what is pending. The log store stays open. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#dropHeldAppends();
    await this.#running?.catch(() => undefined);
    for (const replica of this.#groups.values()) replica.failAll(() => new GroupNotHostedError(replica.groupId, 'is stopping on this node'));
  }

  #openReplica(groupId: number, given?: ReplicaStateMachine): void {
    const options = this.#options;
    const storage = options.logStore.group(groupId);
    const snapshot = storage.snapshot();
    const stateMachine = given ?? options.stateMachine(groupId);
    if (stateMachine.appliedIndex() < snapshot.metadata.index) stateMachine.restore(snapshot.data, snapshot.metadata.index);
    // Entries after the snapshot replay from the log: conf changes always, commands only past the
    // state machine's own applied index.
    const applied = snapshot.metadata.index;
    const raw = new RawNode({
      id: options.nodeId,
      electionTick: options.electionTick,
      heartbeatTick: options.heartbeatTick,
      storage,
      applied,
      maxSizePerMsg: options.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: options.maxInflightMsgs ?? 256,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: options.readOnlyOption ?? 'safe',
      seed: (options.seed * 1_000_003 + groupId * 7_919 + options.nodeId) >>> 0,
    });
    const { hardState, confState } = storage.initialState();
    const replica = new Replica(groupId, raw, stateMachine, applied, hardState.term, hardState.commit, confState);
    this.#noteMembership(replica);
    this.#groups.set(groupId, replica);
    this.#dirty.add(replica);
    void this.#kick().catch(() => undefined);
  }

  /** The replica a request for `groupId` goes to, or the error to reject it with (not running, not hosted). */
  #requestReplica(groupId: number): Replica | Error {
    try {
      this.#checkRunning();
      return this.#replica(groupId);
    } catch (error) {
      return error as Error;
    }
  }

  #replica(groupId: number): Replica {
    const replica = this.#groups.get(groupId);
    if (replica === undefined) throw new GroupNotHostedError(groupId);
    return replica;
  }

  #checkRunning(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#stopped) throw new Error('multi-raft host is stopped');
  }

  /** `wakes`: whether the action wakes a quiesced group (all but heartbeat answers and lost-message reports). */
  /** `dropped` runs instead of `action` when the group is gone by the time the action is delivered. */
  #enqueue(groupId: number, action: Action, wakes = true, dropped?: () => void): void {
    this.#actions.push({ groupId, action, wakes, dropped });
    void this.#kick().catch(() => undefined);
  }

  #kick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    const running = (async () => {
      // Start on the next microtask, so everything queued in this turn joins the round.
      await null;
      try {
        do {
          this.#again = false;
          await this.#round();
        } while (this.#again && !this.#stopped);
      } catch (error) {
        // A Ready half handled cannot be resumed: the host stops and the node restarts from its log.
        this.#fail(error as Error);
        throw error;
      } finally {
        this.#running = undefined;
      }
    })();
    this.#running = running;
    return running;
  }

  async #round(): Promise<void> {
    this.stats.rounds++;
    this.#deliver();
    const readies: Array<{ replica: Replica; rd: Ready }> = [];
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const replica of dirty) {
      if (!replica.removed && replica.raw.hasReady()) readies.push({ replica, rd: replica.raw.ready() });
    }
    if (readies.length === 0) {
      this.#discardIncoming();
      return;
    }

    // A snapshot received is installed before the log store records it: a crash in between leaves the
    // state machine ahead of the log (entries it holds are not applied again), never behind it.
    for (const { replica, rd } of readies) {
      if (rd.snapshot !== undefined) await this.#installSnapshot(replica, rd.snapshot);
    }
    this.#discardIncoming();
    const updates: GroupPersist[] = [];
    let sync = false;
    const sendFirst: Array<{ replica: Replica; rd: Ready }> = [];
    const sendAfter: Array<{ replica: Replica; rd: Ready }> = [];
    for (const ready of readies) {
      const { replica, rd } = ready;
      const term = replica.term;
      this.#noteState(replica, rd);
      // A leader's messages (appends, heartbeats) leave while its own log write is under way (Raft
      // thesis 10.2.1, as etcd does): an entry commits once a quorum persisted it, and the leader's
      // next round, which applies it, starts only after this round's write. A follower's answers and
      // votes, and a Ready that changes the term, wait for the write.
      (replica.role === 'leader' && replica.term === term ? sendFirst : sendAfter).push(ready);
      if (rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined) {
        updates.push({ groupId: replica.groupId, hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
      }
      sync ||= rd.mustSync;
    }
    this.#send(sendFirst);
    const persisted = updates.length > 0 ? this.#options.logStore.persist(updates, { sync }) : undefined;
    // Awaited below; failures surface there, none goes unhandled meanwhile.
    persisted?.catch(() => undefined);

    // A leader's committed entries that its log held before the round are durable here and on a
    // quorum: they are applied and answered while the round's log write is under way, so an answer
    // waits for one log write, not also for the next round's. Entries the Ready appends itself (a
    // group of one commits its own appends at once) wait for the write, as followers' entries do.
    const early: typeof readies = [];
    const late: typeof readies = [];
    for (const ready of readies) {
      const { replica, rd } = ready;
      const durable =
        replica.role === 'leader' &&
        rd.snapshot === undefined &&
        rd.committedEntries.length > 0 &&
        (rd.entries.length === 0 || rd.committedEntries[rd.committedEntries.length - 1].index < rd.entries[0].index);
      (durable ? early : late).push(ready);
    }
    await this.#applyAndAnswer(early);
    if (persisted !== undefined) {
      await persisted;
      this.stats.persistCalls++;
      this.stats.groupsPersisted += updates.length;
      this.stats.maxGroupsPerPersist = Math.max(this.stats.maxGroupsPerPersist, updates.length);
    }
    this.#send(sendAfter);
    await this.#applyAndAnswer(late);

    for (const { replica, rd } of readies) {
      if (replica.removed) continue;
      replica.raw.advance(rd);
      // Awaited only when one is due: an await per group per round is a turn of the microtask queue each.
      if (this.#snapshotDue(replica)) await this.#maybeSnapshot(replica);
      // More may be ready at once (committed entries beyond one Ready's bound).
      this.#dirty.add(replica);
      this.#again = true;
    }
  }

  /**
   * Applies the Readies' committed entries (every group's first, then their answers: a state machine
   * that stages its changes, PartitionReplica, writes them all in one batch, which `settled` waits
   * for), then completes the proposals and reads they answer.
   */
  async #applyAndAnswer(readies: ReadonlyArray<{ replica: Replica; rd: Ready }>): Promise<void> {
    const answers: Answer[] = [];
    const machines = new Set<ReplicaStateMachine>();
    for (const { replica, rd } of readies) {
      if (replica.removed) continue;
      // Most Readies of idle groups carry heartbeats only: nothing to apply or answer, no await.
      if (rd.snapshot === undefined && rd.committedEntries.length === 0 && rd.readStates.length === 0 && replica.reads.size === 0) continue;
      await this.#apply(replica, rd, answers);
      machines.add(replica.stateMachine);
    }
    try {
      await Promise.all([...machines].map((machine) => machine.settled?.()));
    } catch (error) {
      for (const answer of answers) answer(error as Error);
      throw error;
    }
    for (const answer of answers) answer(undefined);
  }

  /**
   * Hands the Readies' messages to the sender (a snapshot with its payload) and flushes once. Appends
   * without entries are held (commitNotificationHoldMs) unless an append with entries follows them.
   */
  #send(readies: ReadonlyArray<{ replica: Replica; rd: Ready }>): void {
    const sender = this.#options.sender;
    const holdMs = this.#options.commitNotificationHoldMs ?? 0;
    let sent = false;
    for (const { replica, rd } of readies) {
      if (replica.removed) continue;
      const dropHeartbeats = this.#thinsHeartbeats(replica, rd);
      for (const message of rd.messages) {
        if (message.type === 'MsgSnap') {
          this.#sendSnapshot(replica, message);
          continue;
        }
        if (dropHeartbeats && message.type === 'MsgHeartbeat' && message.context === undefined) {
          this.stats.idleHeartbeatsDropped++;
          continue;
        }
        if (holdMs > 0 && message.type === 'MsgApp' && this.#holdAppend(replica.groupId, message)) continue;
        sender.send(replica.groupId, message);
        sent = true;
      }
    }
    if (sent) sender.flush();
    if (this.#heldAppends.size > 0 && this.#heldAppendsTimer === undefined) {
      this.#heldAppendsTimer = setTimeout(() => this.#sendHeldAppends(), holdMs);
    }
  }

  /** Whether the Ready's plain heartbeats stay here: an idle leader's heartbeat round that is not an n-th one (idleHeartbeatEvery). */
  #thinsHeartbeats(replica: Replica, rd: Ready): boolean {
    const every = this.#options.idleHeartbeatEvery ?? 1;
    if (every <= 1 || replica.role !== 'leader' || !rd.messages.some((m) => m.type === 'MsgHeartbeat' && m.context === undefined)) return false;
    if (rd.entries.length > 0 || rd.committedEntries.length > 0 || this.#idle(replica) === undefined) {
      replica.idleHeartbeatRounds = 0;
      return false;
    }
    replica.idleHeartbeatRounds++;
    return replica.idleHeartbeatRounds % every !== 0;
  }

  /** Holds an append without entries (true), or drops the one held for the same follower that this one, with entries, supersedes. */
  #holdAppend(groupId: number, message: Message): boolean {
    let held = this.#heldAppends.get(groupId);
    if (message.entries.length > 0) {
      if (held?.delete(message.to) === true) {
        this.stats.emptyAppendsSuperseded++;
        if (held.size === 0) this.#heldAppends.delete(groupId);
      }
      return false;
    }
    if (held === undefined) this.#heldAppends.set(groupId, (held = new Map()));
    held.set(message.to, message);
    this.stats.emptyAppendsHeld++;
    return true;
  }

  #sendHeldAppends(): void {
    this.#heldAppendsTimer = undefined;
    if (this.#heldAppends.size === 0 || this.#stopped) return;
    const sender = this.#options.sender;
    for (const [groupId, held] of this.#heldAppends) {
      if (!this.#groups.has(groupId)) continue;
      for (const message of held.values()) sender.send(groupId, message);
    }
    this.#heldAppends.clear();
    sender.flush();
  }

  #dropHeldAppends(): void {
    if (this.#heldAppendsTimer !== undefined) clearTimeout(this.#heldAppendsTimer);
    this.#heldAppendsTimer = undefined;
    this.#heldAppends.clear();
  }

  /**
   * Sends a snapshot Raft asked for with its payload: the state machine's state opened now (this
   * round applies nothing of the group before), framed after the data Raft keeps (frameSnapshot),
   * streamed by the transport as it is read; the outcome comes back through reportSnapshot.
   */
  #sendSnapshot(replica: Replica, message: Message): void {
    const { groupId } = replica;
    const snapshot = message.snapshot;
    const failed = (error: unknown): void => this.reportSnapshot({ groupId, to: message.to, ok: false, error: String(error) });
    if (snapshot === undefined) return;
    let read: () => Promise<SnapshotData>;
    try {
      read = replica.stateMachine.openSnapshotPayload?.() ?? (async () => ({ size: 0, chunks: [], release: () => undefined }));
    } catch (error) {
      failed(error);
      return;
    }
    const sender = this.#options.sender;
    read().then(async (payload) => {
      const framed = withPrefix(frameSnapshot(snapshot.data), payload);
      if (replica.removed || this.#stopped) return framed.release();
      if (sender.sendSnapshot !== undefined) return sender.sendSnapshot(groupId, message, framed);
      // A sender without streaming: the whole frame in the message, sent outside a round (nothing else queued).
      const parts: Uint8Array[] = [];
      try {
        for await (const chunk of framed.chunks) parts.push(chunk);
      } finally {
        framed.release();
      }
      sender.send(groupId, { ...message, snapshot: { metadata: snapshot.metadata, data: new Uint8Array(Buffer.concat(parts)) } });
      sender.flush();
    }).catch(failed);
  }

  /**
   * Hands a snapshot received from the leader to the state machine (see #round), then deletes its
   * staged payload (kept when the install fails: the host stops, and the store may redo it at the restart).
   */
  async #installSnapshot(replica: Replica, snapshot: Snapshot): Promise<void> {
    const { index } = snapshot.metadata;
    const at = replica.incoming.findIndex((incoming) => incoming.index === index);
    const incoming = at < 0 ? undefined : replica.incoming.splice(at, 1)[0];
    const machine = replica.stateMachine;
    if (machine.installSnapshot === undefined) {
      machine.restore(snapshot.data, index);
    } else {
      if (incoming === undefined) throw new Error(`group ${replica.groupId}: the snapshot at ${index} arrived without its payload`);
      await machine.installSnapshot({ index, data: snapshot.data, payload: incoming.payload });
    }
    if (incoming !== undefined) discardStaged(incoming.payload.path);
    this.stats.snapshotsRestored++;
  }

  /** Deletes the staged payloads of snapshots stepped this round that Raft did not take (stale, or superseded). */
  #discardIncoming(): void {
    for (const replica of this.#incoming) {
      for (const { payload } of replica.incoming.splice(0)) discardStaged(payload.path);
    }
    this.#incoming.clear();
  }

  #snapshotDue(replica: Replica): boolean {
    const policy = this.#options.snapshotPolicy;
    return policy !== undefined && replica.applied - replica.lastSnapshotIndex >= policy.every;
  }

  async #maybeSnapshot(replica: Replica): Promise<void> {
    const policy = this.#options.snapshotPolicy;
    if (policy === undefined || !this.#snapshotDue(replica)) return;
    const logStore = this.#options.logStore;
    const storage = logStore.group(replica.groupId);
    // Applied entries are normally persisted here; a follower may apply entries it has not yet appended.
    const index = replica.applied;
    if (index > storage.lastIndex()) return;
    const confState = replica.confState;
    await logStore.createSnapshot(replica.groupId, index, confState, await replica.stateMachine.snapshot());
    replica.lastSnapshotIndex = index;
    this.stats.snapshotsTaken++;
    const compactTo = index - policy.keep;
    if (compactTo >= storage.firstIndex()) await logStore.compact(replica.groupId, compactTo);
  }

  /**
   * Steps queued actions, then queued ticks, into their RawNodes. Ticks pile up while the event loop
   * or a round is held up (a slow fsync, a GC pause, CPU starvation), and messages that arrived
   * meanwhile were sent before those ticks ran out: stepping the messages first keeps a follower that
   * has a leader's heartbeat waiting from starting an election, and a leader whose followers' answers
   * are waiting from failing check-quorum. Less than an election timeout of ticks is stepped at once,
   * so one delivery never runs out a timeout by itself: a follower that just heard its leader stays
   * loyal, a leader crosses at most one check-quorum boundary (two in a row would depose it however
   * recently it heard from its followers). Ticks carry no safety with 'safe' reads; a 'leaseBased'
   * lease still ends at a capped delivery (electionTick - 1 ticks exceed the lease, which keeps a
   * margin), and answers stepped before the ticks count as heard earlier, which only shortens it.
   */
  #deliver(): void {
    const actions = this.#actions;
    this.#actions = [];
    for (const { groupId, action, wakes, dropped } of actions) {
      const replica = this.#groups.get(groupId);
      if (replica === undefined) {
        dropped?.();
        continue;
      }
      if (wakes) replica.quiesced = false;
      action(replica);
      this.#dirty.add(replica);
    }
    const ticks = Math.min(this.#pendingTicks, Math.max(1, this.#options.electionTick - 1));
    this.#pendingTicks = 0;
    if (ticks > 0) {
      this.stats.ticks += ticks;
      const quiescence = this.#options.quiescence;
      let quiesced = false;
      for (const replica of this.#groups.values()) {
        if (replica.quiesced) {
          if (replica.role === 'leader' || (replica.leader !== 0 && quiescence?.isNodeLive(replica.leader) === true)) continue;
          replica.quiesced = false;
        }
        if (quiescence !== undefined && this.#quiesce(replica)) {
          quiesced = true;
          continue;
        }
        for (let i = 0; i < ticks; i++) replica.raw.tick();
        if (replica.campaignTicks > 0) this.#campaignAgain(replica, ticks);
        this.#dirty.add(replica);
      }
      if (quiesced) this.#options.sender.flush();
    }
  }

  /** A campaign asked for goes on while no leader is known (see campaign); a candidate's own votes are under way. */
  #campaignAgain(replica: Replica, ticks: number): void {
    replica.campaignTicks = replica.leader === 0 ? Math.max(0, replica.campaignTicks - ticks) : 0;
    if (replica.campaignTicks > 0 && replica.role !== 'candidate') replica.raw.campaign();
  }

  /**
   * Quiesces a group this replica leads if it is idle: nothing pending, everything committed and
   * applied, every member caught up and replicating. Its followers get a heartbeat marked quiesce
   * (the marker never reaches Raft: see receive). Returns whether it did.
   */
  #quiesce(replica: Replica): boolean {
    const idle = replica.raw.hasReady() ? undefined : this.#idle(replica);
    if (idle === undefined) return false;
    const { members, last } = idle;
    // The quiesce heartbeat carries the commit index; a held append arriving after it would wake the followers.
    this.#heldAppends.delete(replica.groupId);
    for (const to of members) {
      if (to === this.nodeId) continue;
      const heartbeat: Message = { type: 'MsgHeartbeat', from: this.nodeId, to, term: replica.term, logTerm: 0, index: 0, entries: [], commit: last, reject: false, rejectHint: 0, context: QUIESCE_CONTEXT };
      this.#options.sender.send(replica.groupId, heartbeat);
    }
    replica.quiesced = true;
    this.stats.quiesced++;
    return true;
  }

  /**
   * A leader with nothing pending (no proposal, read or membership change), everything committed and
   * applied, no leadership transfer, and every member caught up and replicating: its members and
   * last index then, else undefined.
   */
  #idle(replica: Replica): { members: Iterable<NodeId>; last: number } | undefined {
    if (replica.role !== 'leader' || replica.unplaced.size + replica.placed.size + replica.reads.size > 0 || replica.unplacedChange !== undefined) return undefined;
    const status = replica.raw.status();
    const last = this.#options.logStore.group(replica.groupId).lastIndex();
    if (status.leadTransferee !== 0 || status.hardState.commit !== last || replica.applied !== last || status.progress === undefined) return undefined;
    for (const progress of status.progress.values()) if (progress.match !== last || progress.state !== 'replicate') return undefined;
    return { members: status.progress.keys(), last };
  }

  /** Role, leader and term from the Ready; places this leader's new proposals at their indexes. */
  #noteState(replica: Replica, rd: Ready): void {
    if (rd.softState !== undefined) {
      if (rd.softState.role === 'leader' && replica.role !== 'leader') this.stats.leadersElected++;
      if (rd.softState.role !== 'leader' && replica.role === 'leader') this.stats.leadersLost++;
      if (rd.softState.leader !== 0 && rd.softState.leader !== replica.leader) replica.leaderChanges++;
      replica.role = rd.softState.role;
      replica.leader = rd.softState.leader;
    }
    if (rd.hardState !== undefined) {
      if (rd.hardState.term > replica.term) {
        // A read not yet confirmed in the old term is dropped by Raft (the old leader's heartbeat
        // round will not finish): fail it now rather than at its timeout.
        for (const [id, read] of replica.reads) {
          if (read.index !== undefined) continue;
          replica.reads.delete(id);
          for (const waiter of read.waiters) {
            clearTimeout(waiter.timer);
            waiter.reject(new NotLeaderError(replica.groupId, replica.leader));
          }
        }
      }
      replica.term = rd.hardState.term;
      replica.commit = rd.hardState.commit;
    }
    this.#placeMembershipChange(replica, rd);
    if (replica.unplaced.size === 0) return;
    for (const entry of rd.entries) {
      const pending = replica.unplaced.get(entry.data);
      if (pending === undefined) continue;
      replica.unplaced.delete(entry.data);
      pending.term = entry.term;
      replica.placed.set(entry.index, pending);
    }
  }

  /**
   * Finds the membership change proposed in this round among the entries Raft appended. Raft turns a
   * change it refuses (one still unapplied) into an empty entry: absent here, it was refused.
   */
  #placeMembershipChange(replica: Replica, rd: Ready): void {
    const change = replica.unplacedChange;
    if (change === undefined || !change.proposed) return;
    replica.unplacedChange = undefined;
    const context = contextId(change.context);
    for (const entry of rd.entries) {
      if (entry.type !== 'confChange' || contextId(decodeConfChange(entry.data).context ?? new Uint8Array(0)) !== context) continue;
      change.proposal.term = entry.term;
      replica.placed.set(entry.index, change.proposal);
      return;
    }
    clearTimeout(change.proposal.timer);
    change.proposal.reject(
      replica.role === 'leader'
        ? new MembershipChangeRefusedError(replica.groupId, 'the group has a membership change not applied yet')
        : new NotLeaderError(replica.groupId, replica.leader),
    );
  }

  /** Whether the group's configuration (applied here) still lists this node. */
  #noteMembership(replica: Replica): void {
    const { voters, learners } = replica.confState;
    const listed = voters.length + learners.length > 0;
    replica.leftGroup = listed && !voters.includes(this.nodeId) && !learners.includes(this.nodeId);
  }

  /** Applies the Ready's snapshot and committed entries; the proposals and reads they complete are answered through `answers`. */
  async #apply(replica: Replica, rd: Ready, answers: Answer[]): Promise<void> {
    if (rd.snapshot !== undefined) {
      // The state machine took the snapshot before it was persisted (#installSnapshot).
      const { index, confState } = rd.snapshot.metadata;
      replica.confState = confState;
      this.#noteMembership(replica);
      replica.applied = index;
      replica.lastSnapshotIndex = index;
      // Proposals the snapshot covers have an unknown outcome here.
      for (const [at, pending] of replica.placed) {
        if (at > index) continue;
        replica.placed.delete(at);
        clearTimeout(pending.timer);
        pending.reject(new ProposalOutcomeUnknownError(replica.groupId, 'a snapshot replaced the log holding it'));
      }
    }
    // The applied index reported (status) moves once what was applied is readable (`settled`).
    let applied = replica.applied;
    for (const entry of rd.committedEntries) {
      const result = await this.#applyEntry(replica, entry);
      applied = entry.index;
      this.stats.entriesApplied++;
      const pending = replica.placed.get(entry.index);
      if (pending === undefined) continue;
      replica.placed.delete(entry.index);
      const { term } = entry;
      answers.push((failure) => {
        clearTimeout(pending.timer);
        if (failure !== undefined) pending.reject(failure);
        // Another leader's entry took the index: the proposal was lost.
        else if (pending.term === term) pending.resolve(result);
        else pending.reject(new NotLeaderError(replica.groupId, replica.leader));
      });
    }
    for (const state of rd.readStates) {
      const read = replica.reads.get(contextId(state.context));
      if (read !== undefined) read.index = state.index;
    }
    const through = applied;
    answers.push((failure) => {
      if (failure === undefined) replica.applied = Math.max(replica.applied, through);
    });
    for (const [id, read] of replica.reads) {
      if (read.index === undefined || read.index > applied) continue;
      replica.reads.delete(id);
      answers.push((failure) => {
        for (const waiter of read.waiters) {
          clearTimeout(waiter.timer);
          if (failure !== undefined) waiter.reject(failure);
          else waiter.resolve();
        }
      });
    }
  }

  async #applyEntry(replica: Replica, entry: Entry): Promise<unknown> {
    if (entry.type === 'confChange') {
      try {
        replica.confState = replica.raw.applyConfChange(decodeConfChange(entry.data));
      } catch (error) {
        // Every replica refuses the same invalid change: a no-op everywhere, an error for its proposer.
        if (!(error instanceof ConfChangeError)) throw error;
        return error;
      }
      this.#noteMembership(replica);
      return replica.confState;
    }
    // An empty entry is a new leader's; commands at or below the state machine's applied index were
    // applied before a restart.
    if (entry.data.length === 0 || entry.index <= replica.stateMachine.appliedIndex()) return undefined;
    return await replica.stateMachine.apply(entry.data, entry.index);
  }

  #fail(error: Error): void {
    this.#failure = error;
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#dropHeldAppends();
    for (const replica of this.#groups.values()) replica.failAll(() => error);
  }
}

/**
 * A snapshot on the wire: the data Raft keeps (a descriptor, or a small state) and the state
 * machine's payload after it, `u32 data length | data | payload`. Raft, and so the log store, only
 * ever see the data; the payload goes to the state machine.
 */
function frameSnapshot(data: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(4 + data.length);
  new DataView(prefix.buffer).setUint32(0, data.length, false);
  prefix.set(data, 4);
  return prefix;
}

function unframeSnapshot(framed: Uint8Array): { data: Uint8Array; payload?: StagedPayload } | undefined {
  if (framed.length < 4) return undefined;
  const length = new DataView(framed.buffer, framed.byteOffset, framed.byteLength).getUint32(0, false);
  // A payload travels staged (RaftTransport): a frame in the message is a payload-less snapshot's.
  if (4 + length !== framed.length) return undefined;
  return { data: framed.slice(4, 4 + length) };
}

/**
 * A staged snapshot's frame (frameSnapshot): its data read from the file, its payload left there.
 * Synchronous, as the host receives messages: the data is small (a descriptor, or a small state).
 */
function unframeStagedSnapshot(staged: StagedSnapshotData): { data: Uint8Array; payload?: StagedPayload } | undefined {
  let file: number | undefined;
  try {
    file = openSync(staged.path, 'r');
    const prefix = new Uint8Array(4);
    if (staged.size < 4 || readSync(file, prefix, 0, 4, 0) !== 4) return undefined;
    const length = new DataView(prefix.buffer).getUint32(0, false);
    if (4 + length > staged.size) return undefined;
    const data = new Uint8Array(length);
    if (length > 0 && readSync(file, data, 0, length, 4) !== length) return undefined;
    return { data, payload: { path: staged.path, offset: 4 + length, size: staged.size - 4 - length } };
  } catch {
    return undefined;
  } finally {
    if (file !== undefined) closeSync(file);
  }
}

function discardStaged(path: string): void {
  void rm(path, { force: true }).catch(() => undefined);
}

/** The context of a heartbeat that quiesces its group: 9 bytes, so never a ReadIndex context (8). */
const QUIESCE_CONTEXT = new Uint8Array([0x71, 0x75, 0x69, 0x65, 0x73, 0x63, 0x65, 0x21, 0x00]);

function isQuiesceContext(context: Uint8Array | undefined): boolean {
  return context !== undefined && context.length === QUIESCE_CONTEXT.length && context.every((byte, i) => byte === QUIESCE_CONTEXT[i]);
}
