/**
 * Conversion between the Raft core's messages (@shoal/raft) and their wire form (shoal.v1 raft.proto).
 * The wire keeps terms, indexes and ids as uint64 (bigint); the core keeps JS numbers, so a value past
 * 2^53 from a peer is refused rather than rounded.
 */
import { create } from '@bufbuild/protobuf';
import type * as raft from '@shoal/raft';
import {
  ConfChangeSchema,
  ConfChangeType as WireConfChangeType,
  EntryType as WireEntryType,
  MessageSchema,
  MessageType as WireMessageType,
} from './gen/shoal/v1/raft_pb.ts';
import type {
  ConfChange as WireConfChange,
  ConfState as WireConfState,
  Entry as WireEntry,
  Message as WireMessage,
  Snapshot as WireSnapshot,
} from './gen/shoal/v1/raft_pb.ts';
import { RpcError, Status } from './grpc.ts';

const MESSAGE_TYPES: Record<raft.MessageType, WireMessageType> = {
  MsgApp: WireMessageType.MSG_APP,
  MsgAppResp: WireMessageType.MSG_APP_RESP,
  MsgVote: WireMessageType.MSG_VOTE,
  MsgVoteResp: WireMessageType.MSG_VOTE_RESP,
  MsgPreVote: WireMessageType.MSG_PRE_VOTE,
  MsgPreVoteResp: WireMessageType.MSG_PRE_VOTE_RESP,
  MsgHeartbeat: WireMessageType.MSG_HEARTBEAT,
  MsgHeartbeatResp: WireMessageType.MSG_HEARTBEAT_RESP,
  MsgSnap: WireMessageType.MSG_SNAP,
  MsgReadIndex: WireMessageType.MSG_READ_INDEX,
  MsgReadIndexResp: WireMessageType.MSG_READ_INDEX_RESP,
  MsgTimeoutNow: WireMessageType.MSG_TIMEOUT_NOW,
  MsgTransferLeader: WireMessageType.MSG_TRANSFER_LEADER,
  MsgProp: WireMessageType.MSG_PROP,
};
const ENTRY_TYPES: Record<raft.EntryType, WireEntryType> = {
  normal: WireEntryType.NORMAL,
  confChange: WireEntryType.CONF_CHANGE,
};
const CONF_CHANGE_TYPES: Record<raft.ConfChangeType, WireConfChangeType> = {
  addNode: WireConfChangeType.ADD_NODE,
  removeNode: WireConfChangeType.REMOVE_NODE,
  addLearner: WireConfChangeType.ADD_LEARNER,
};

function inverse<K extends string>(map: Record<K, number>): Map<number, K> {
  return new Map(Object.entries<number>(map).map(([name, value]) => [value, name as K]));
}
const MESSAGE_TYPE_NAMES = inverse(MESSAGE_TYPES);
const ENTRY_TYPE_NAMES = inverse(ENTRY_TYPES);
const CONF_CHANGE_TYPE_NAMES = inverse(CONF_CHANGE_TYPES);

function invalid(what: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, `invalid Raft message: ${what}`);
}

function named<K>(names: Map<number, K>, value: number, what: string): K {
  const name = names.get(value);
  if (name === undefined) throw invalid(`${what} ${value}`);
  return name;
}

function toNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${value} exceeds 2^53`);
  return Number(value);
}

const numbers = (values: bigint[], what: string): number[] => values.map((v) => toNumber(v, what));
const bigints = (values: number[]): bigint[] => values.map(BigInt);

function entryToWire(entry: raft.Entry): Omit<WireEntry, '$typeName'> {
  return { term: BigInt(entry.term), index: BigInt(entry.index), type: ENTRY_TYPES[entry.type], data: entry.data };
}

function entryFromWire(entry: WireEntry): raft.Entry {
  return {
    term: toNumber(entry.term, 'entry term'),
    index: toNumber(entry.index, 'entry index'),
    type: named(ENTRY_TYPE_NAMES, entry.type, 'entry type'),
    data: entry.data,
  };
}

function confStateToWire(state: raft.ConfState): Omit<WireConfState, '$typeName'> {
  return {
    voters: bigints(state.voters),
    learners: bigints(state.learners),
    votersOutgoing: bigints(state.votersOutgoing),
    learnersNext: bigints(state.learnersNext),
    autoLeave: state.autoLeave,
  };
}

function confStateFromWire(state: WireConfState | undefined): raft.ConfState {
  if (state === undefined) throw invalid('snapshot without a ConfState');
  return {
    voters: numbers(state.voters, 'voter'),
    learners: numbers(state.learners, 'learner'),
    votersOutgoing: numbers(state.votersOutgoing, 'outgoing voter'),
    learnersNext: numbers(state.learnersNext, 'next learner'),
    autoLeave: state.autoLeave,
  };
}

function snapshotFromWire(snapshot: WireSnapshot): raft.Snapshot {
  const metadata = snapshot.metadata;
  if (metadata === undefined) throw invalid('snapshot without metadata');
  return {
    metadata: {
      index: toNumber(metadata.index, 'snapshot index'),
      term: toNumber(metadata.term, 'snapshot term'),
      confState: confStateFromWire(metadata.confState),
    },
    data: snapshot.data,
  };
}

/** The wire form of a core message. */
export function messageToWire(message: raft.Message): WireMessage {
  return create(MessageSchema, {
    type: MESSAGE_TYPES[message.type],
    from: BigInt(message.from),
    to: BigInt(message.to),
    term: BigInt(message.term),
    logTerm: BigInt(message.logTerm),
    index: BigInt(message.index),
    entries: message.entries.map(entryToWire),
    commit: BigInt(message.commit),
    reject: message.reject,
    rejectHint: BigInt(message.rejectHint),
    ...(message.snapshot === undefined
      ? {}
      : {
          snapshot: {
            metadata: {
              index: BigInt(message.snapshot.metadata.index),
              term: BigInt(message.snapshot.metadata.term),
              confState: confStateToWire(message.snapshot.metadata.confState),
            },
            data: message.snapshot.data,
          },
        }),
    ...(message.context === undefined ? {} : { context: message.context }),
  });
}

/** The core message a peer sent; throws RpcError INVALID_ARGUMENT for one the core cannot take. */
export function messageFromWire(message: WireMessage): raft.Message {
  const out: raft.Message = {
    type: named(MESSAGE_TYPE_NAMES, message.type, 'message type'),
    from: toNumber(message.from, 'from'),
    to: toNumber(message.to, 'to'),
    term: toNumber(message.term, 'term'),
    logTerm: toNumber(message.logTerm, 'log term'),
    index: toNumber(message.index, 'index'),
    entries: message.entries.map(entryFromWire),
    commit: toNumber(message.commit, 'commit'),
    reject: message.reject,
    rejectHint: toNumber(message.rejectHint, 'reject hint'),
  };
  if (message.snapshot !== undefined) out.snapshot = snapshotFromWire(message.snapshot);
  if (message.context !== undefined) out.context = message.context;
  return out;
}

/** The wire form of a membership change (admin moves, placement). */
export function confChangeToWire(change: raft.ConfChange): WireConfChange {
  return create(ConfChangeSchema, {
    changes: change.changes.map((c) => ({ type: CONF_CHANGE_TYPES[c.type], nodeId: BigInt(c.nodeId) })),
    ...(change.joint === undefined ? {} : { joint: change.joint }),
    ...(change.context === undefined ? {} : { context: change.context }),
  });
}

export function confChangeFromWire(change: WireConfChange): raft.ConfChange {
  const out: raft.ConfChange = {
    changes: change.changes.map((c) => ({
      type: named(CONF_CHANGE_TYPE_NAMES, c.type, 'conf change type'),
      nodeId: toNumber(c.nodeId, 'node id'),
    })),
  };
  if (change.joint !== undefined) out.joint = change.joint;
  if (change.context !== undefined) out.context = change.context;
  return out;
}
