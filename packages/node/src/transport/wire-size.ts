/**
 * The exact protobuf encoded size of the transport's frames (shoal.v1 raft.proto), computed from the
 * core message without encoding it: the sender splits batches below gRPC's message limit and counts
 * bytes, and encoding every message twice to learn its size would double the transport's CPU cost.
 * Every field number in these messages is below 16, so each tag takes one byte.
 */
import type { ConfState, Entry, Message, Snapshot } from '@shoal/raft';

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) size += 1;
  return size;
}

/** A scalar field of implicit presence: absent when zero. */
const uint64Field = (value: number): number => (value === 0 ? 0 : 1 + varintSize(value));
const boolField = (value: boolean): number => (value ? 2 : 0);
/** A length-delimited field that is always written (an embedded message, an optional bytes). */
const delimited = (length: number): number => 1 + varintSize(length) + length;
const bytesField = (value: Uint8Array): number => (value.length === 0 ? 0 : delimited(value.length));

function packedField(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let payload = 0;
  for (const value of values) payload += varintSize(value);
  return delimited(payload);
}

function entrySize(entry: Entry): number {
  // The entry type is 1 or 2 on the wire, never the omitted zero.
  return uint64Field(entry.term) + uint64Field(entry.index) + 2 + bytesField(entry.data);
}

function confStateSize(state: ConfState): number {
  return (
    packedField(state.voters) +
    packedField(state.learners) +
    packedField(state.votersOutgoing) +
    packedField(state.learnersNext) +
    boolField(state.autoLeave)
  );
}

function snapshotSize(snapshot: Snapshot): number {
  const metadata =
    uint64Field(snapshot.metadata.index) + uint64Field(snapshot.metadata.term) + delimited(confStateSize(snapshot.metadata.confState));
  return delimited(metadata) + bytesField(snapshot.data);
}

/** The size of the encoded shoal.v1.Message. */
export function messageWireSize(message: Message): number {
  let size = 2; // the message type: 1 to 14, never the omitted zero
  size += uint64Field(message.from) + uint64Field(message.to) + uint64Field(message.term);
  size += uint64Field(message.logTerm) + uint64Field(message.index) + uint64Field(message.commit);
  for (const entry of message.entries) size += delimited(entrySize(entry));
  if (message.snapshot !== undefined) size += delimited(snapshotSize(message.snapshot));
  size += boolField(message.reject) + uint64Field(message.rejectHint);
  if (message.context !== undefined) size += delimited(message.context.length);
  return size;
}

/** What one GroupMessage adds to the encoded RaftBatch (its field tag and length included). */
export function groupMessageWireSize(groupId: number, message: Message): number {
  return delimited(uint64Field(groupId) + delimited(messageWireSize(message)));
}

/** The encoded RaftBatch without its messages. */
export function batchHeaderWireSize(fromNode: number, toNode: number): number {
  return uint64Field(fromNode) + uint64Field(toNode);
}
