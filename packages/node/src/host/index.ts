export {
  MultiRaftHost,
  type GroupStatus,
  type MembershipChange,
  type MultiRaftHostOptions,
  type MultiRaftHostStats,
  type PeerProgress,
  type RaftMessageSender,
  type ReplicaStateMachine,
  type StagedPayload,
} from './multi-raft-host.ts';
export { GroupNotHostedError, MembershipChangeRefusedError, NotLeaderError, ProposalOutcomeUnknownError, RaftTimeoutError } from './errors.ts';
