/**
 * @shoal/raft — a deterministic Raft core in the shape of etcd's raft: no I/O, no timers, no
 * randomness except `Config.seed`.
 *
 * The host loop, per group member:
 *   - call `tick()` at a fixed interval (electionTick/heartbeatTick count these ticks);
 *   - `step(message)` every message received for this member;
 *   - `propose`, `proposeConfChange`, `readIndex`, `transferLeadership` on behalf of clients;
 *   - while `hasReady()`: `rd = ready()`, then in this order
 *       1. persist `rd.snapshot`, `rd.entries` (replacing any conflicting suffix) and `rd.hardState`,
 *          fsync'd when `rd.mustSync`;
 *       2. send `rd.messages` (a MsgSnap: call `reportSnapshot(to, ok)` when the transfer ends);
 *       3. apply `rd.snapshot`, then `rd.committedEntries` (for a confChange entry, call
 *          `applyConfChange(decodeConfChange(entry.data))`); serve `rd.readStates` once applied
 *          reaches their index;
 *       4. `advance(rd)`.
 *     Handle Readies one at a time and in order; messages only ever depend on state in their own
 *     or an earlier Ready.
 * A new group starts from a Storage whose `initialState().confState` lists the members. Prefer a
 * snapshot at index 1 (MemoryStorage.bootstrap): members added later, with empty storage, then
 * catch up by snapshot. With the membership at index 0 (`new MemoryStorage(confState)`), the
 * log from index 1 never names the initial members, so a later member must be created with that
 * same initial membership.
 */
export * from './types.ts';
export { RawNode, type ProgressStatus, type Status } from './rawnode.ts';
export { MemoryStorage, emptyConfState } from './storage.ts';
export { encodeConfChange, decodeConfChange } from './codec.ts';
export {
  CompactedError,
  UnavailableError,
  ProposalDroppedError,
  SnapshotOutOfDateError,
  SnapshotTemporarilyUnavailableError,
  ConfChangeError,
  RaftUsageError,
} from './errors.ts';
export type { ProgressState } from './progress.ts';
