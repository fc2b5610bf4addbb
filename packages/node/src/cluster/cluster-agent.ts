/**
 * A storage node's membership in the cluster: registers the node's fixed id and address with the
 * meta group, heartbeats every `heartbeatIntervalMs` with a report of every partition replica it
 * hosts, and keeps the node's ClusterView current from WatchPartitionMap (re-established after any
 * failure with a bounded backoff; a heartbeat answer naming a newer map version fetches it at once,
 * should the watch be stuck on a deposed leader). Each map change is announced through onMapChanged.
 */
import { create } from '@bufbuild/protobuf';
import { PartitionLoadSchema, ReplicaRole, partitionDescriptorToWire, partitionMapResponseFromWire, type GetPartitionMapResponse, type PartitionLoad } from '@shoal/proto';
import type { PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import type { MultiRaftHost } from '../host/index.ts';
import type { PartitionLoadReport } from '../load/index.ts';
import type { ClusterView } from './cluster-view.ts';
import type { NodeLog } from './log.ts';
import type { MetaClient } from './meta-client.ts';

export interface ClusterAgentOptions {
  nodeId: NodeId;
  /** The address other nodes and routers reach this node at (host:port of its gRPC server). */
  address: string;
  meta: MetaClient;
  view: ClusterView;
  host: MultiRaftHost;
  heartbeatIntervalMs: number;
  log: NodeLog;
  /** The view changed (a newer map arrived). */
  onMapChanged(): void;
  /** What a partition's replica here measured (load tracking), for its report; undefined: nothing yet. */
  loadOf?(partitionId: number): PartitionLoadReport | undefined;
  /** A replica's own descriptor when it leads the map's (a split the map does not show yet), for its report. */
  descriptorAheadOf?(partitionId: number): PartitionDescriptor | undefined;
  /** The meta leader wants this node to hand the leadership of a partition it leads to `toNode` (heartbeat answer). */
  onLeadershipTransfer?(partitionId: number, toNode: NodeId): void;
  /** Retry delays of registration and the watch: doubling from `initialMs` up to `maxMs`. Default 100 / 2,000 ms. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface ClusterAgentStats {
  heartbeatsSent: number;
  heartbeatFailures: number;
  mapUpdates: number;
  watchRestarts: number;
}

/** Partition ids start at 1; group 0 is the meta group, which heartbeats do not report. */
const isPartitionGroup = (groupId: number): boolean => groupId >= 1;

export class ClusterAgent {
  readonly stats: ClusterAgentStats = { heartbeatsSent: 0, heartbeatFailures: 0, mapUpdates: 0, watchRestarts: 0 };
  readonly #options: ClusterAgentOptions;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #closing = new AbortController();
  #registered = false;
  #loops: Promise<void>[] = [];
  #refreshing: Promise<void> | undefined;
  /** Whether the last heartbeat failed, so a run of failures is logged once. */
  #heartbeatFailing = false;

  constructor(options: ClusterAgentOptions) {
    this.#options = options;
    this.#backoff = options.backoff ?? { initialMs: 100, maxMs: 2_000 };
  }

  /** Whether the meta group accepted this node's registration. */
  get registered(): boolean {
    return this.#registered;
  }

  /** Registers (retrying until it succeeds), then heartbeats; watches the map meanwhile. */
  start(): void {
    this.#loops = [this.#registerThenHeartbeat(), this.#watch()];
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.all(this.#loops);
  }

  /**
   * Fetches the map now if the view is older than `version` (or holds none, or no version is
   * given). Requests arriving meanwhile share the fetch in flight: requests routed with a newer
   * epoch may ask for one each.
   */
  refreshMap(version?: number): Promise<void> {
    const { view, meta } = this.#options;
    if (view.hasMap() && version !== undefined && version <= view.version) return Promise.resolve();
    this.#refreshing ??= meta
      .call((client, options) => client.getPartitionMap({ knownVersion: BigInt(view.version) }, options))
      .then((response) => this.#take(response))
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  #take(response: GetPartitionMapResponse): void {
    if (!this.#options.view.apply(partitionMapResponseFromWire(response))) return;
    this.stats.mapUpdates++;
    this.#options.log.info('partition map updated', { version: this.#options.view.version });
    this.#options.onMapChanged();
  }

  async #registerThenHeartbeat(): Promise<void> {
    const { nodeId, address, meta, log } = this.#options;
    let delayMs = this.#backoff.initialMs;
    while (!this.#closing.signal.aborted) {
      try {
        const response = await meta.call((client, options) => client.registerNode({ nodeId: BigInt(nodeId), address }, options));
        if (response.nodeId !== BigInt(nodeId)) throw new Error(`the meta group registered this node as ${response.nodeId}, not ${nodeId}`);
        this.#registered = true;
        log.info('registered with the meta group', { node: nodeId, address, metaLeader: meta.leaderAddress });
        break;
      } catch (error) {
        log.warn('registration failed; retrying', { node: nodeId, error, retryInMs: delayMs });
        await this.#sleep(delayMs);
        delayMs = Math.min(this.#backoff.maxMs, delayMs * 2);
      }
    }
    while (!this.#closing.signal.aborted) {
      await this.#heartbeat();
      await this.#sleep(this.#options.heartbeatIntervalMs);
    }
  }

  async #heartbeat(): Promise<void> {
    const { nodeId, meta, log } = this.#options;
    try {
      const response = await meta.call((client, options) => client.heartbeat({ nodeId: BigInt(nodeId), loads: this.#replicaReports() }, options));
      this.stats.heartbeatsSent++;
      if (this.#heartbeatFailing) log.info('heartbeats reach the meta group again', { metaLeader: meta.leaderAddress });
      this.#heartbeatFailing = false;
      for (const transfer of response.leadershipTransfers) this.#options.onLeadershipTransfer?.(Number(transfer.partitionId), Number(transfer.toNode));
      await this.refreshMap(Number(response.mapVersion));
    } catch (error) {
      this.stats.heartbeatFailures++;
      if (!this.#heartbeatFailing && !this.#closing.signal.aborted) log.warn('heartbeat failed', { error });
      this.#heartbeatFailing = true;
    }
  }

  /** One report per partition replica hosted here: its Raft progress as this replica sees it. */
  #replicaReports(): PartitionLoad[] {
    const nodeId = this.#options.nodeId;
    return this.#options.host
      .status()
      .filter((s) => isPartitionGroup(s.groupId))
      .map((s) =>
        create(PartitionLoadSchema, {
          partitionId: BigInt(s.groupId),
          leader: s.role === 'leader',
          role: s.voters.includes(nodeId) ? ReplicaRole.VOTER : s.learners.includes(nodeId) ? ReplicaRole.LEARNER : ReplicaRole.UNSPECIFIED,
          term: BigInt(s.term),
          leaderId: BigInt(s.leader),
          commitIndex: BigInt(s.commit),
          appliedIndex: BigInt(s.applied),
          ...this.#options.loadOf?.(s.groupId),
          ...descriptorField(this.#options.descriptorAheadOf?.(s.groupId)),
        }),
      );
  }

  async #watch(): Promise<void> {
    const { view, meta, log } = this.#options;
    let delayMs = this.#backoff.initialMs;
    while (!this.#closing.signal.aborted) {
      try {
        const stream = meta.leaderClient().watchPartitionMap({ knownVersion: BigInt(view.version) }, { signal: this.#closing.signal });
        for await (const response of stream) {
          this.#take(response);
          delayMs = this.#backoff.initialMs;
        }
        throw new Error('the meta group ended the partition map watch');
      } catch (error) {
        if (this.#closing.signal.aborted) return;
        this.stats.watchRestarts++;
        const redirect = meta.redirect(error);
        log.debug('partition map watch failed; retrying', { error, retryInMs: delayMs });
        await this.#sleep(delayMs);
        // Following a leader hint is no reason to back off further.
        if (redirect === undefined || !('to' in redirect)) delayMs = Math.min(this.#backoff.maxMs, delayMs * 2);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.#closing.signal;
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

const descriptorField = (descriptor: PartitionDescriptor | undefined): { descriptor?: ReturnType<typeof partitionDescriptorToWire> } =>
  descriptor === undefined ? {} : { descriptor: partitionDescriptorToWire(descriptor) };
