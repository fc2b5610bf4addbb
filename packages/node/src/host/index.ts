export {
  MultiRaftHost,
  type GroupStatus,
  type MultiRaftHostOptions,
  type MultiRaftHostStats,
  type RaftMessageSender,
  type ReplicaStateMachine,
} from './multi-raft-host.ts';
export { GroupNotHostedError, NotLeaderError, RaftTimeoutError } from './errors.ts';
