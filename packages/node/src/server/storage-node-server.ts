/**
 * The storage node's gRPC PartitionService: serves the partitions whose replicas this node's
 * MultiRaftHost runs (partition id = Raft group id).
 *
 * Write: only the group's leader proposes; any other replica answers FAILED_PRECONDITION with a
 * NotLeader detail carrying the leader it knows of, so the router retries there.
 * Get / ReadRange: a consistent read first passes the group's ReadIndex (linearizable on any replica),
 * an eventual read is served from this replica's store at once, whatever its role.
 *
 * Not checked yet: the partition's key range and epoch (PartitionTarget.epoch is ignored), so a
 * request routed with a stale descriptor is served as if it were current. Statistics, BackfillIndex,
 * DropIndex and DropTable are not served (UNIMPLEMENTED).
 */
import { DynamoDbError } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import {
  ErrorDetailSchema,
  PartitionService,
  RpcError,
  Server,
  Status,
  addService,
  getRequestFromWire,
  getResultToWire,
  listen,
  rangeReadRequestFromWire,
  rangeReadResultToWire,
  shutdown,
  writeRequestFromWire,
  writeResultToWire,
  dynamoDbErrorToRpc,
  type RoutedTo,
} from '@shoal/proto';
import { GroupNotHostedError, NotLeaderError, RaftTimeoutError, type MultiRaftHost } from '../host/index.ts';
import { proposePartitionWrite, type PartitionReplica } from '../partition/index.ts';

export interface StorageNodeServerOptions {
  host: MultiRaftHost;
  /** This node's replica of a partition, or undefined when it holds none. */
  replicaOf(partitionId: number): PartitionReplica | undefined;
  /** The gRPC address of a node, for the NotLeader hint (absent: the hint carries the id only). */
  nodeAddress?(nodeId: NodeId): string | undefined;
}

/** Requests served per method, counted when they succeed. */
export interface StorageNodeServerStats {
  writes: number;
  consistentReads: number;
  eventualReads: number;
}

export class StorageNodeServer {
  readonly stats: StorageNodeServerStats = { writes: 0, consistentReads: 0, eventualReads: 0 };
  readonly #options: StorageNodeServerOptions;
  readonly #server = new Server();
  #port = 0;

  constructor(options: StorageNodeServerOptions) {
    this.#options = options;
    addService(this.#server, PartitionService, {
      write: async (request) => {
        const { target, write } = writeRequestFromWire(request);
        const groupId = this.#replica(target).groupId;
        const result = await this.#answer(groupId, () => proposePartitionWrite(this.#options.host, groupId, write));
        this.stats.writes++;
        return writeResultToWire(result);
      },
      get: async (request) => {
        const { target, request: get, options } = getRequestFromWire(request);
        const replica = this.#replica(target);
        const result = await this.#read(replica, options.consistent, () => replica.store.get(get, options));
        return getResultToWire(result === undefined ? undefined : { item: result.item, size: result.size });
      },
      readRange: async (request) => {
        const { target, request: range, options } = rangeReadRequestFromWire(request);
        const replica = this.#replica(target);
        return rangeReadResultToWire(await this.#read(replica, options.consistent, () => replica.store.readRange(range, options)));
      },
    });
  }

  /** Listens on host:port (port 0: any free port); resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    this.#port = await listen(this.#server, host, port);
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  close(graceMs?: number): Promise<void> {
    return shutdown(this.#server, graceMs);
  }

  async #read<T>(replica: PartitionReplica, consistent: boolean, read: () => Promise<T>): Promise<T> {
    const result = await this.#answer(replica.groupId, async () => {
      if (consistent) await this.#options.host.readIndex(replica.groupId);
      return read();
    });
    if (consistent) this.stats.consistentReads++;
    else this.stats.eventualReads++;
    return result;
  }

  /** This node's replica of the partition a request targets (its epoch is not checked yet). */
  #replica(target: RoutedTo): PartitionReplica {
    const id = target.partitionId;
    const replica = id <= BigInt(Number.MAX_SAFE_INTEGER) ? this.#options.replicaOf(Number(id)) : undefined;
    if (replica === undefined || !this.#options.host.hasGroup(replica.groupId)) throw partitionNotFound(id);
    return replica;
  }

  /** Runs `work` for a group, answering its failures with the gRPC error the router acts on. */
  async #answer<T>(groupId: number, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof NotLeaderError) throw this.#notLeader(error);
      if (error instanceof GroupNotHostedError) throw partitionNotFound(BigInt(groupId));
      if (error instanceof RaftTimeoutError) throw new RpcError(Status.UNAVAILABLE, error.message);
      if (error instanceof DynamoDbError) throw dynamoDbErrorToRpc(error);
      throw error;
    }
  }

  #notLeader(error: NotLeaderError): RpcError {
    const leader = error.leader === 0 ? undefined : { id: BigInt(error.leader), address: this.#options.nodeAddress?.(error.leader) ?? '' };
    return RpcError.withDetail(Status.FAILED_PRECONDITION, error.message, ErrorDetailSchema, {
      kind: { case: 'notLeader', value: { partitionId: BigInt(error.groupId), leader } },
    });
  }
}

function partitionNotFound(partitionId: bigint): RpcError {
  return RpcError.withDetail(Status.NOT_FOUND, `partition ${partitionId} is not hosted on this node`, ErrorDetailSchema, {
    kind: { case: 'partitionNotFound', value: { partitionId } },
  });
}
