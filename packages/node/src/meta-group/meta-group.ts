/**
 * This node's handle on the meta group, for the services and the placement driver: propose a meta
 * command and get its outcome, read the state linearizably. Both work on the group's leader only.
 */
import { encodeMetaCommand, MetaCommandError, type MetaApplyResult, type MetaCommand, type MetaState } from '@shoal/meta';
import type { NodeId } from '@shoal/raft';
import { NotLeaderError, type MultiRaftHost } from '../host/index.ts';
import { META_GROUP_ID, type MetaOutcome, type MetaReplica } from './meta-replica.ts';

export class MetaGroup {
  readonly host: MultiRaftHost;
  readonly meta: MetaReplica;
  readonly nodeId: NodeId;

  constructor(host: MultiRaftHost, meta: MetaReplica, nodeId: NodeId) {
    this.host = host;
    this.meta = meta;
    this.nodeId = nodeId;
  }

  /** The meta leader this node knows of, 0 when none (or the group is not hosted here). */
  leaderId(): NodeId {
    return this.host.leaderOf(META_GROUP_ID) ?? 0;
  }

  /** The meta group's current term on this node, undefined when the group is not hosted here. */
  term(): number | undefined {
    return this.host.status().find((s) => s.groupId === META_GROUP_ID)?.term;
  }

  /** Raft names a node its own leader only while it leads. */
  isLeader(): boolean {
    return this.leaderId() === this.nodeId;
  }

  /**
   * Replicates `command` and resolves with its result once applied here; rejects with the
   * MetaCommandError that refused it, or the host's NotLeaderError / RaftTimeoutError /
   * GroupNotHostedError.
   */
  async propose(command: MetaCommand): Promise<MetaApplyResult> {
    const outcome = (await this.host.propose(META_GROUP_ID, encodeMetaCommand(command))) as MetaOutcome;
    if (outcome instanceof MetaCommandError) throw outcome;
    return outcome;
  }

  /** The state with every command committed before the call applied (ReadIndex on the leader). */
  async read(): Promise<MetaState> {
    if (!this.isLeader()) throw new NotLeaderError(META_GROUP_ID, this.leaderId());
    await this.host.readIndex(META_GROUP_ID);
    return this.meta.state;
  }
}
