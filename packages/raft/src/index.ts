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
