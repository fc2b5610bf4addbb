/**
 * The public data types of the Raft core, in the shape of etcd's raft: the host owns storage, network
 * and clock; the core consumes ticks, messages and proposals and hands back a `Ready` with what to
 * persist, send and apply.
 */

/** A member's id. 0 means "none" (no vote, no leader). */
export type NodeId = number;
export const NONE: NodeId = 0;

export type EntryType = 'normal' | 'confChange';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque command bytes; for confChange, an encoded ConfChange (see encodeConfChange). */
  data: Uint8Array;
}

/** What must be durable before any message that depends on it leaves the node. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** The membership: in a joint configuration `votersOutgoing` is non-empty. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  /** Learners to add when leaving the joint configuration (voters being demoted). */
  learnersNext: NodeId[];
  /** Leave the joint configuration automatically once it is committed. */
  autoLeave: boolean;
}

export type ConfChangeType = 'addNode' | 'removeNode' | 'addLearner';

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

/**
 * A membership change. One change without `joint` is a simple change (at most one voter added or
 * removed); several, or `joint`, enter joint consensus. An empty `changes` leaves the joint state.
 */
export interface ConfChange {
  changes: ConfChangeSingle[];
  joint?: boolean;
  /** Opaque host data carried with the change. */
  context?: Uint8Array;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** Every message type; all of them travel between members (the host validates peers' messages). */
export const MESSAGE_TYPES = [
  'MsgApp',
  'MsgAppResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgSnap',
  'MsgReadIndex',
  'MsgReadIndexResp',
  'MsgTimeoutNow',
  'MsgTransferLeader',
  'MsgProp',
] as const;

export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** MsgApp: term and index of the entry before `entries`. Votes: the candidate's last entry. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** MsgAppResp rejection: the follower's hint for where to probe next. */
  rejectHint: number;
  /** ReadIndex request context, echoed in the response and in ReadState. */
  context?: Uint8Array;
}

export type StateRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface SoftState {
  leader: NodeId;
  role: StateRole;
}

/** A ReadIndex result: a read with `context` may be served once `index` is applied. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

/**
 * What the host must do, in order: persist `hardState`, `entries` and `snapshot` (fsync when
 * `mustSync`); then send `messages`; then apply `snapshot` and `committedEntries`; then call advance.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  mustSync: boolean;
}

/** The host's log storage, read by the core. Writes happen in the host when it handles a Ready. */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), stopping after maxBytes (but always at least one). */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; throws CompactedError below firstIndex-1, UnavailableError past lastIndex. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export type ReadOnlyOption = 'safe' | 'leaseBased';

export interface Config {
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning; randomized in [et, 2*et). */
  electionTick: number;
  heartbeatTick: number;
  storage: Storage;
  /** Last applied index when restarting. */
  applied?: number;
  maxSizePerMsg: number;
  /** Bound on the bytes of committed entries in one Ready (at least one entry); default maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  maxInflightMsgs: number;
  maxInflightBytes?: number;
  /** Bound on the bytes of uncommitted entries a leader accepts; proposals beyond are dropped. */
  maxUncommittedEntriesSize?: number;
  checkQuorum: boolean;
  preVote: boolean;
  /**
   * safe: each ReadIndex waits for a heartbeat round. leaseBased (requires checkQuorum): answered
   * at once while a quorum answered the leader within electionTick-2 ticks and no leadership
   * transfer was started in the term, else as safe; a node started with it grants no vote for
   * an election timeout. Assumes members tick at the same rate.
   */
  readOnlyOption: ReadOnlyOption;
  /** Seeds the randomized election timeout; the core has no other source of randomness. */
  seed: number;
}
