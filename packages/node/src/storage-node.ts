/**
 * A whole storage node process: one Raft log store (<dataDir>/raft, fsynced), one data store for
 * every partition replica (<dataDir>/partitions, not fsynced: the Raft log replays what a crash
 * lost), snapshots being received (<dataDir>/incoming-snapshots), what it last knew of their
 * partitions (<dataDir>/partitions.json) and of the nodes' addresses (<dataDir>/nodes.json), one MultiRaftHost running every group replica here, and ONE
 * gRPC server (contracts #2) carrying RaftTransportService, PartitionService and, on meta peers,
 * MetaService + AdminService.
 *
 * Meta peers (`metaPeers`, fixed like etcd's initial cluster) host the meta group (group 0): each
 * bootstraps it with the same voters when its log store does not hold it yet, and runs the
 * placement driver, which acts only while it leads. Every node registers its fixed id with the meta
 * group, heartbeats, watches the partition map, and reconciles its replicas with it.
 */
import { join } from 'node:path';
import { SERVER_OPTIONS, Server, listen, shutdown } from '@shoal/proto';
import { DEFAULT_SPLIT_POLICY, isSplitSize, MAX_SPLIT_SIZE_BYTES, type SplitPolicy } from '@shoal/meta';
import type { PartitionDescriptor } from '@shoal/model';
import type { NodeId } from '@shoal/raft';
import { openLocalStore, partitionBound, type BackfillChunkLimits } from '@shoal/storage';
import { IndexShipper, type IndexShipperOptions } from './index-shipper/index-shipper.ts';
import { ClusterAgent } from './cluster/cluster-agent.ts';
import { ClusterView } from './cluster/cluster-view.ts';
import { stderrLog, type NodeLog } from './cluster/log.ts';
import { MetaClient, type MetaPeer } from './cluster/meta-client.ts';
import { NodeAddressBook } from './cluster/node-address-book.ts';
import { PartitionReplicaSet } from './cluster/partition-replica-set.ts';
import { ReplicaReconciler } from './cluster/replica-reconciler.ts';
import { MultiRaftHost, type GroupStatus, type ReplicaStateMachine } from './host/index.ts';
import { NodeLoad, PartitionSizes, type LoadTrackingOptions } from './load/index.ts';
import { META_GROUP_ID, MetaReplica, PlacementDriver, addMetaServices, type MetaServices } from './meta-group/index.ts';
import { DiskFaults } from './raft-log/disk-faults.ts';
import { RaftLogStore, SYNC_SECONDS_BUCKETS } from './raft-log/store.ts';
import { addFaultInjectionService } from './server/fault-injection-service.ts';
import { StorageNodeServer, type PartitionServiceFaults } from './server/index.ts';
import { BackfillDriver, TransactionResolver } from './partition/index.ts';
import { RaftTransport } from './transport/raft-transport.ts';

export interface StorageNodeOptions {
  /** Fixed, >= 1 (contracts #1); also this node's Raft member id in every group. */
  nodeId: NodeId;
  dataDir: string;
  /** Interface the gRPC server listens on. */
  host: string;
  /** 0: any free port (see StorageNode.address). */
  port: number;
  /** host:port other nodes and routers reach this node at; default host:bound port. */
  advertiseAddress?: string;
  /** The meta group's members and their addresses; this node is one of them when its id is listed. */
  metaPeers: MetaPeer[];
  /** Raft tick. Default 50 ms. */
  tickMs?: number;
  /**
   * Ticks without a leader before an election (randomized up to twice that). Default 20: 1 s, as
   * etcd, so that a leader held up for half a second under load (CPU starvation, GC, a slow fsync)
   * keeps its leadership; a dead leader is replaced within 1-2 s.
   */
  electionTick?: number;
  /** Ticks between leader heartbeats. Default 2. */
  heartbeatTick?: number;
  /**
   * How long a leader holds an append without entries (a commit index for a follower) in case the
   * next append carries it (MultiRaftHostOptions.commitNotificationHoldMs). Default 5 ms: under load
   * it saves a message, its answer and a round on each side per entry; idle, followers apply 5 ms later.
   */
  commitNotificationHoldMs?: number;
  /** Between heartbeats to the meta group. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /** The placement driver replaces a down node's replicas after this long (meta peers). Default 30,000 ms. */
  downTimeoutMs?: number;
  /** Partitions of a table created without a count (meta peers). Default 1. */
  defaultPartitions?: number;
  /** Structured logs; default: one JSON object a line on stderr. */
  log?: NodeLog;
  /** Per-partition admission limits (default 3,000 read / 1,000 write units a second, 30 s burst) and load window. */
  load?: LoadTrackingOptions;
  /**
   * TEST ONLY: serves FaultInjectionService (Raft network partitions and delays, slow or full Raft
   * log disk, leadership transfers) for chaos tests. Default false: the service does not exist.
   */
  faultInjection?: boolean;
  /**
   * Splits for size and heat (meta peers: the meta leader decides them): the cluster's policy,
   * DEFAULT_SPLIT_POLICY where not given; tables override it with their `shoal:split*` tags.
   */
  splitting?: Partial<SplitPolicy>;
  /**
   * Raft log compaction, for every group here (partitions and the meta group): every `every` applied
   * entries a group records a snapshot and drops its log up to `keep` entries behind it; a replica
   * further behind (or new) is sent a snapshot. Default { every: 10,000, keep: 2,000 }; `every: 0`
   * turns compaction off.
   */
  logCompaction?: { every: number; keep: number };
  /**
   * Idle groups go quiet (MultiRaftHostOptions.quiescence): no ticks, no heartbeats, until a request
   * or a message wakes them; a quiesced follower wakes once its leader's node looks dead: the Raft
   * transport's stream to it failed, or the map marks it down. Default false: a leader that hangs
   * without closing its connections is only seen dead once meta marks it down (seconds), where
   * ticking groups elect within an election timeout.
   */
  quiesceIdleGroups?: boolean;
  /**
   * The index shipper's timing and steps (IndexShipperOptions): its pass interval, how long records of
   * an index the map does not show are held, and how much one step of a split's outbox move carries.
   */
  indexShipping?: Pick<IndexShipperOptions, 'intervalMs' | 'unknownIndexGraceMs' | 'outboxMoveStep'>;
  /** How much one chunk of a GSI backfill walks (default 1,000 items or 1 MiB): its apply holds the node's other groups that long. */
  indexBackfillChunk?: BackfillChunkLimits;
  /**
   * GSI back-pressure: a base partition whose outbox holds this many records not yet trimmed (its GSI
   * partitions do not keep up, or cannot be reached) refuses new writes of tables with a GSI
   * (ProvisionedThroughputExceededException) until it drains. Default 100,000.
   */
  indexOutboxLimit?: number;
}

/** One Raft group hosted here, for per-partition metrics (the meta group is partition 0). */
export interface RaftGroupMetrics {
  partitionId: number;
  term: number;
  /** 1 where this replica leads the group, else 0. */
  leader: number;
  /** Times this replica saw the group's leader change. */
  leaderChanges: number;
  /** Commands this replica proposed as leader. */
  proposals: number;
  /** Committed entries this replica has not applied yet. */
  applyLag: number;
  voters: number;
  learners: number;
  /** Where this replica leads: how many entries each other member's log is behind the leader's last index. */
  followerLag: { nodeId: NodeId; entries: number }[];
}

/** Plain numbers for /metrics. */
export interface StorageNodeMetrics {
  ready: number;
  /** 1 while the partition map shows this node draining (`shoal admin drain`). */
  draining: number;
  mapVersion: number;
  raftGroups: number;
  raftLeaders: number;
  partitionReplicas: number;
  raftRounds: number;
  raftEntriesApplied: number;
  raftPersistCalls: number;
  /** Raft groups whose leadership this node won / lost (summed over nodes: leader changes). */
  raftLeadersElected: number;
  raftLeadersLost: number;
  /** Raft tick timer callbacks held up by 2 tick intervals or more (event-loop stalls). */
  raftTickStalls: number;
  /** Appends without entries a leader held (commitNotificationHoldMs), and those an append with entries made unnecessary. */
  raftEmptyAppendsHeld: number;
  raftEmptyAppendsSuperseded: number;
  raftLogBatches: number;
  raftLogSyncedBatches: number;
  transportMessagesSent: number;
  transportMessagesReceived: number;
  transportBytesSent: number;
  transportBytesReceived: number;
  transportStreamFailures: number;
  partitionWrites: number;
  partitionConsistentReads: number;
  partitionEventualReads: number;
  /** Eventual reads that waited for their replica to apply the router's own writes (read-your-writes), and those refused (ReplicaBehind) after the wait. */
  partitionReadsWaited: number;
  partitionReadsReplicaBehind: number;
  partitionRequestsRefused: number;
  replicasCreated: number;
  replicasRemoved: number;
  membershipChanges: number;
  heartbeatsSent: number;
  heartbeatFailures: number;
  mapUpdates: number;
  /** Snapshot transfers: sent to lagging members, failed to send, received (and handed to Raft), restored into a state machine. */
  snapshotsSent: number;
  snapshotSendFailures: number;
  snapshotsReceived: number;
  snapshotsRestored: number;
  /** Requests refused by a partition's admission control, reads and writes. */
  throttledReads: number;
  throttledWrites: number;
  /** Splits the placement driver made while this node led the meta group, by reason; failed ones. */
  splitsForSize: number;
  splitsForHeat: number;
  splitFailures: number;
  /** Splits operators asked for (`shoal admin split`) while this node led the meta group. */
  adminSplits: number;
  /** Hot items reported while this node led the meta group (a partition hot on one key, which no split relieves). */
  hotKeysReported: number;
  /**
   * Asynchronous GSIs: records in the outboxes of the partitions led here (at the shipper's last
   * pass, every 500 ms; shipped ones count until trimmed, within a pass), records shipped
   * (acknowledged by every GSI partition) and dropped (their index deleted), failed
   * ApplyIndexEntries calls (retried); shipped records this node's GSI partitions applied and
   * skipped (applied before).
   */
  indexOutboxRecords: number;
  indexRecordsShipped: number;
  indexRecordsDropped: number;
  indexShipCallsFailed: number;
  /** Outbox batches held back at a record not routable yet (its GSI or partition not in this node's map). */
  indexBatchesHeld: number;
  /** Writes and transaction prepares refused (GSI back-pressure) because their partition's outbox held indexOutboxLimit records. */
  indexBacklogThrottledWrites: number;
  /** ApplyIndexEntries calls this node's GSI partitions refused by admission control (the shippers retry them). */
  indexEntryCallsThrottled: number;
  indexEntriesApplied: number;
  indexEntriesSkipped: number;
  /** GSI backfills of the partitions led here: chunks proposed here, counted as they applied here, and the items they walked. */
  indexBackfillChunks: number;
  indexBackfillItems: number;
  /** GSI backfills ended here because the map showed their index no more (its deleter never asked the base partitions), and walks paused for a half-full outbox. */
  indexBackfillsOfDeletedIndexes: number;
  indexBackfillPauses: number;
  /** Base partition splits led here: outbox move steps (moveIndexOutbox entries) proposed and applied, the records they moved to the right half, and the moves they ended. */
  indexOutboxMoveSteps: number;
  indexOutboxRecordsMoved: number;
  indexOutboxMovesEnded: number;
  /** Every Raft group hosted here (not plain numbers: exported with a partition label). */
  groups: RaftGroupMetrics[];
  /** Synced Raft log batches by duration: `counts[i]` within `buckets[i]` seconds (above the bound before), the last count slower. */
  raftLogSyncSeconds: { buckets: readonly number[]; counts: readonly number[]; sum: number };
}

/** Whether a node serves its replicas, and if not, what it waits for. */
export interface StorageNodeReadiness {
  ready: boolean;
  /** What is missing, for /readyz and the logs; undefined when ready. */
  waitingFor?: string;
}

export interface StorageNodeHealth {
  healthy: boolean;
  /** Why it needs a restart, for /healthz and the logs; undefined when healthy. */
  problem?: string;
}

export interface StorageNode {
  readonly nodeId: NodeId;
  /** host:port actually bound (or the advertised address). */
  readonly address: string;
  /**
   * Serves its replicas: its Raft host runs, it is registered with the meta group and holds a
   * partition map; on a meta peer, the meta group has a leader; every partition replica the map
   * gives it and it hosts knows its group's leader and has applied all but READY_APPLY_LAG of the
   * entries it knows committed (a replica replaying a long log is not serving yet).
   */
  isReady(): boolean;
  readiness(): StorageNodeReadiness;
  /**
   * Alive unless it cannot go on without a restart (its Raft host stopped on a failed log write,
   * e.g. a full disk): what a liveness probe asks, so that the orchestrator restarts it.
   */
  health(): StorageNodeHealth;
  metrics(): StorageNodeMetrics;
  /** Stops everything, in reverse order of start; a second call waits for the first. */
  close(): Promise<void>;
}

/** See StorageNodeOptions.electionTick. */
const DEFAULT_ELECTION_TICK = 20;
const IDLE_HEARTBEATS_PER_ELECTION_TIMEOUT = 3;
const DEFAULT_COMMIT_NOTIFICATION_HOLD_MS = 5;

/** A node missing this many heartbeats in a row is marked down by the placement driver. */
const HEARTBEATS_MISSED_BEFORE_DOWN = 5;
/** One heartbeat of a node in this many is recorded in the meta log. */
const HEARTBEATS_PER_LOGGED_HEARTBEAT = 30;

/** A replica with more committed entries than this left to apply is still catching up (not ready). */
const READY_APPLY_LAG = 1_000;

/** See StorageNodeOptions.indexOutboxLimit. */
const DEFAULT_INDEX_OUTBOX_LIMIT = 100_000;

/** Between reconciler passes besides those a map change starts: learners catching up get promoted. */
const RECONCILE_INTERVAL_MS = 250;

export async function startStorageNode(options: StorageNodeOptions): Promise<StorageNode> {
  const nodeId = options.nodeId;
  if (!Number.isSafeInteger(nodeId) || nodeId < 1) throw new RangeError(`node id must be an integer >= 1, not ${nodeId}`);
  if (options.metaPeers.length === 0) throw new Error('a storage node needs the meta peers');
  const indexOutboxLimit = options.indexOutboxLimit ?? DEFAULT_INDEX_OUTBOX_LIMIT;
  if (!Number.isSafeInteger(indexOutboxLimit) || indexOutboxLimit < 1) throw new RangeError(`the index outbox limit must be an integer >= 1, not ${indexOutboxLimit}`);
  const splitSize = options.splitting?.maxSizeBytes;
  if (splitSize !== undefined && !isSplitSize(splitSize)) {
    throw new RangeError(`the split size must be above 0 and at most ${MAX_SPLIT_SIZE_BYTES} bytes (installing a partition's snapshot holds up its node), not ${splitSize}`);
  }
  const log = options.log ?? stderrLog({ component: 'storage-node', node: nodeId });
  const tickMs = options.tickMs ?? 50;
  const electionTick = options.electionTick ?? DEFAULT_ELECTION_TICK;
  const heartbeatTick = options.heartbeatTick ?? 2;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
  const compaction = options.logCompaction ?? { every: 10_000, keep: 2_000 };
  const metaPeer = new Map(options.metaPeers.map((p) => [p.nodeId, p.address]));
  const isMetaPeer = metaPeer.has(nodeId);
  const view = new ClusterView();
  // Before the map arrives, nodes beyond the meta peers are found at the addresses the last map gave.
  const addressBook = await NodeAddressBook.open(join(options.dataDir, 'nodes.json'), log);
  const nodeAddress = (id: NodeId): string | undefined => view.nodeAddress(id) ?? metaPeer.get(id) ?? addressBook.address(id);

  // Stopped in reverse order by close(), also when the start fails half way.
  const stops: Array<() => Promise<void> | void> = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        log.warn('stopping a component failed', { error });
      }
    }
  };

  try {
    const disk = options.faultInjection === true ? new DiskFaults() : undefined;
    const logStore = await RaftLogStore.open(join(options.dataDir, 'raft'), { beforeWrite: disk?.beforeWrite });
    stops.push(() => logStore.close());
    // GSI entries of base partitions go to their groups' outboxes, shipped to the GSI partitions (index-shipper).
    const local = await openLocalStore({ dataDir: join(options.dataDir, 'partitions'), sync: false, indexOutbox: true });
    stops.push(() => local.close());

    // The host asks for state machines synchronously: every replica in the log opens first.
    const partitionGroups = logStore.listGroups().map((g) => g.groupId).filter((id) => id !== META_GROUP_ID);
    const replicas = await PartitionReplicaSet.open(local, view, log, join(options.dataDir, 'partitions.json'), partitionGroups, options.indexBackfillChunk);
    stops.push(() => replicas.flush());
    stops.push(() => addressBook.flush());
    const metaReplica = isMetaPeer ? new MetaReplica() : undefined;

    // Shoal's message limit (16 MiB): an append carries a whole entry, a transaction's up to ~5.5 MB.
    const server = new Server(SERVER_OPTIONS);
    let host: MultiRaftHost | undefined;
    const transport = new RaftTransport({
      nodeId,
      server,
      resolvePeer: nodeAddress,
      onMessages: (batch) => host?.receive(batch),
      onUnreachable: (peer, groups) => host?.reportUnreachable(peer, groups),
      onSnapshotSent: (outcome) => host?.reportSnapshot(outcome),
      // Swept as the transport starts: after the store opened, which completed any restore a staged file was named by.
      snapshotStagingDir: join(options.dataDir, 'incoming-snapshots'),
      log: ({ level, event, ...fields }) => log[level](event, { component: 'raft-transport', ...fields }),
      faults: disk !== undefined,
    });
    stops.push(() => transport.close());
    const raftHost = new MultiRaftHost({
      nodeId,
      logStore,
      sender: transport,
      stateMachine: (groupId): ReplicaStateMachine => {
        const machine = groupId === META_GROUP_ID ? metaReplica : replicas.get(groupId);
        if (machine === undefined) throw new Error(`node ${nodeId} has no state machine for group ${groupId}`);
        return machine;
      },
      tickMs,
      electionTick,
      heartbeatTick,
      commitNotificationHoldMs: options.commitNotificationHoldMs ?? DEFAULT_COMMIT_NOTIFICATION_HOLD_MS,
      // Idle leaders heartbeat only every n-th round, n such that an election timeout still sees 3 of
      // them (defaults: every 3rd, 300 ms): a third of the messages of idle groups (bench-idle-groups).
      idleHeartbeatEvery: Math.max(1, Math.floor(electionTick / (heartbeatTick * IDLE_HEARTBEATS_PER_ELECTION_TIMEOUT))),
      seed: nodeId,
      ...(compaction.every > 0 ? { snapshotPolicy: compaction } : {}),
      ...(options.quiesceIdleGroups === true ? { quiescence: { isNodeLive: (id: NodeId) => transport.peerConnected(id) && !view.isDown(id) } } : {}),
    });
    host = raftHost;
    // Before any entry applies: a split applied (or replayed) creates its right half's group.
    replicas.bindHost(raftHost);
    raftHost.open((id) => replicas.waitsForParent(id));
    stops.push(() => raftHost.stop());
    if (isMetaPeer && !logStore.hasGroup(META_GROUP_ID)) {
      await raftHost.createGroup(META_GROUP_ID, [...metaPeer.keys()]);
      log.info('meta group bootstrapped', { voters: [...metaPeer.keys()] });
    }

    let agent: ClusterAgent | undefined;
    const load = new NodeLoad({ seed: nodeId, ...options.load });
    const serviceFaults: PartitionServiceFaults = { refuseIndexEntries: false };
    const partitionServer = new StorageNodeServer({
      server,
      host: raftHost,
      replicaOf: (id) => replicas.get(id),
      // A replica's own descriptor leads the map after a split the map does not show yet.
      descriptorOf: (id) => replicas.descriptorOf(id),
      nodeAddress,
      onMapBehind: () => void agent?.refreshMap().catch((error: unknown) => log.warn('map refresh failed', { error })),
      log,
      load,
      indexOutboxLimit,
      gsiOf: (spaceId) => view.gsiOf(spaceId),
      ...(disk === undefined ? {} : { faults: serviceFaults }),
    });
    let metaServices: MetaServices | undefined;
    let driver: PlacementDriver | undefined;
    if (metaReplica !== undefined) {
      metaServices = addMetaServices(server, {
        host: raftHost,
        meta: metaReplica,
        nodeId,
        nodeAddress,
        defaultPartitions: options.defaultPartitions,
        // The meta log is not compacted yet: a heartbeat enters it only now and then, the placement
        // driver counts the others from the reports this leader keeps.
        heartbeatLogIntervalMs: HEARTBEATS_PER_LOGGED_HEARTBEAT * heartbeatIntervalMs,
      });
      const placement = new PlacementDriver({
        host: raftHost,
        meta: metaReplica,
        nodeId,
        reports: metaServices.reports,
        pins: metaServices.pins,
        splitting: {
          policy: { ...DEFAULT_SPLIT_POLICY, ...options.splitting },
          splitter: metaServices.splitter,
          transfers: metaServices.transfers,
          hotKeys: metaServices.hotKeys,
        },
        // A step waits for the groups' next reports: rounds as often as heartbeats.
        intervalMs: heartbeatIntervalMs,
        downTimeoutMs: options.downTimeoutMs,
        heartbeatTimeoutMs: HEARTBEATS_MISSED_BEFORE_DOWN * heartbeatIntervalMs,
        log: ({ level, event, ...fields }) => log[level](event, { component: 'placement', ...fields }),
      });
      placement.start();
      stops.push(() => placement.stop());
      driver = placement;
    }

    if (disk !== undefined && transport.faults !== undefined) {
      addFaultInjectionService(server, { nodeId, network: transport.faults, disk, partitionService: serviceFaults, host: raftHost, log: (message, fields) => log.warn(message, fields) });
      log.warn('fault injection enabled (test only)', { node: nodeId });
    }

    const port = await listen(server, options.host, options.port);
    const address = options.advertiseAddress ?? `${options.host}:${port}`;
    stops.push(async () => {
      metaServices?.close();
      await shutdown(server, 1_000);
    });
    // Before the server stops carrying Raft traffic: a leader elsewhere within a round trip, rather
    // than after an election timeout.
    stops.push(() => handOverLeadership(raftHost, log, Math.max(2_000, 2 * electionTick * tickMs)));
    raftHost.startTicking();
    // Intents of transactions whose router died are resolved by the leaders of their partitions.
    const partitionsHeld = (): PartitionDescriptor[] =>
      raftHost.status().flatMap(({ groupId }) => {
        const descriptor = groupId === META_GROUP_ID ? undefined : replicas.descriptorOf(groupId);
        return descriptor === undefined ? [] : [descriptor];
      });
    const resolver = new TransactionResolver({ store: local.partitions, host: raftHost, partitions: () => partitionsHeld(), descriptorOf: (id) => replicas.descriptorOf(id), nodeAddress, log });
    resolver.start();
    stops.push(() => resolver.close());
    const shipper = new IndexShipper({
      store: local.partitions,
      host: raftHost,
      view,
      ledGroups: () => raftHost.status().filter((g) => g.groupId !== META_GROUP_ID && g.role === 'leader').map((g) => g.groupId),
      splitCount: (groupId) => replicas.splitsOf(groupId).length,
      ancestorsOf: (groupId) => replicas.ancestorsOf(groupId),
      nodeAddress,
      log,
      ...options.indexShipping,
    });
    // GSI backfills of the base partitions led here, one bounded chunk per log entry.
    const backfills = new BackfillDriver({
      store: local.partitions,
      host: raftHost,
      isPartition: (groupId) => groupId !== META_GROUP_ID,
      view,
      // A walk pauses at half the back-pressure limit: its records alone never throttle the table's writes.
      pauseAtBacklog: Math.ceil(indexOutboxLimit / 2),
      log,
    });
    replicas.onBackfillChunkApplied((chunk) => backfills.chunkApplied(chunk));
    replicas.onReplicaSettled((groupId) => {
      shipper.wake(groupId);
      backfills.wake();
    });
    shipper.start();
    stops.push(() => shipper.close());
    backfills.start();
    stops.push(() => backfills.close());

    const sizes = new PartitionSizes(
      load,
      {
        ledPartitions: () => raftHost.status().filter((g) => g.groupId !== META_GROUP_ID && g.role === 'leader').map((g) => g.groupId),
        measure: async (partitionId) => {
          const descriptor = view.descriptorOf(partitionId);
          const table = descriptor === undefined ? undefined : view.tableOf(descriptor.tableId);
          const replica = replicas.get(partitionId);
          if (descriptor === undefined || table === undefined || replica === undefined) return undefined;
          return (await replica.store.statistics(table, undefined, partitionBound(descriptor))).sizeBytes;
        },
      },
      options.load?.sizeIntervalMs ?? 30_000,
      (error) => log.warn('measuring a partition size failed', { error }),
    );
    sizes.start();
    stops.push(() => sizes.stop());
    const reconciler = new ReplicaReconciler({ nodeId, host: raftHost, view, replicas, log });
    stops.push(() => reconciler.close());
    const metaClient = new MetaClient({ peers: options.metaPeers });
    stops.push(() => metaClient.close());
    const clusterAgent = new ClusterAgent({
      nodeId,
      address,
      meta: metaClient,
      view,
      host: raftHost,
      heartbeatIntervalMs,
      log,
      loadOf: (partitionId) => load.report(partitionId, replicas.descriptorOf(partitionId)),
      onLeadershipTransfer: (partitionId, toNode) => {
        const group = raftHost.status().find((g) => g.groupId === partitionId);
        if (group?.role !== 'leader' || toNode === nodeId || !group.voters.includes(toNode)) return;
        log.info('handing partition leadership over, as the meta leader asks', { partition: partitionId, to: toNode });
        raftHost.transferLeadership(partitionId, toNode);
      },
      descriptorAheadOf: (id) => replicas.descriptorAheadOf(id),
      onMapChanged: () => {
        load.retain((partitionId) => raftHost.hasGroup(partitionId));
        replicas.noteMap().catch((error: unknown) => log.warn('could not record the partitions held here', { error }));
        addressBook.record(view.nodeAddresses()).catch((error: unknown) => log.warn('could not record the node addresses', { error }));
        void reconciler.reconcile();
      },
    });
    agent = clusterAgent;
    clusterAgent.start();
    stops.push(() => clusterAgent.close());
    let failureLogged = false;
    const reconcileTimer = setInterval(() => {
      const failure = raftHost.failure;
      if (failure !== undefined && !failureLogged) {
        failureLogged = true;
        log.error('the Raft host stopped: restart the node, it recovers from its log', { error: failure });
      }
      void reconciler.reconcile();
    }, RECONCILE_INTERVAL_MS);
    stops.push(() => clearInterval(reconcileTimer));
    log.info('storage node started', { node: nodeId, address, metaPeer: isMetaPeer, replicas: replicas.size });

    const readiness = (): StorageNodeReadiness => {
      const waiting = (waitingFor: string): StorageNodeReadiness => ({ ready: false, waitingFor });
      if (raftHost.failure !== undefined) return waiting('the Raft host stopped: restart the node');
      if (!clusterAgent.registered) return waiting('registration with the meta group');
      if (!view.hasMap()) return waiting('the partition map');
      for (const group of raftHost.status()) {
        const isMeta = group.groupId === META_GROUP_ID;
        // Replicas on their way out (no longer in the map for this node) serve nothing.
        if (!isMeta && (group.leftGroup || view.descriptorOf(group.groupId)?.replicas.some((r) => r.nodeId === nodeId) !== true)) continue;
        const what = isMeta ? 'the meta group' : `partition ${group.groupId}`;
        if (group.leader === 0) return waiting(`a leader of ${what}`);
        if (group.commit - group.applied > READY_APPLY_LAG) return waiting(`${what} to apply ${group.commit - group.applied} committed entries`);
      }
      return { ready: true };
    };
    const ready = (): boolean => readiness().ready;
    const health = (): StorageNodeHealth =>
      raftHost.failure === undefined ? { healthy: true } : { healthy: false, problem: `the Raft host stopped (${String(raftHost.failure)}): restart the node` };
    let closing: Promise<void> | undefined;
    return {
      nodeId,
      address,
      isReady: () => ready(),
      readiness,
      health,
      metrics: (): StorageNodeMetrics => {
        const status = raftHost.status();
        const groups = status.map((group): RaftGroupMetrics => {
          // A group being removed may have left the log store already: no follower lag then.
          const lastIndex = group.role === 'leader' && logStore.hasGroup(group.groupId) ? logStore.group(group.groupId).lastIndex() : undefined;
          return {
            partitionId: group.groupId,
            term: group.term,
            leader: group.role === 'leader' ? 1 : 0,
            leaderChanges: group.leaderChanges,
            proposals: group.proposals,
            applyLag: Math.max(0, group.commit - group.applied),
            voters: group.voters.length,
            learners: group.learners.length,
            followerLag:
              lastIndex === undefined
                ? []
                : (raftHost.progress(group.groupId) ?? []).filter((p) => p.nodeId !== nodeId).map((p) => ({ nodeId: p.nodeId, entries: Math.max(0, lastIndex - p.match) })),
          };
        });
        const t = transport.metrics;
        const s = partitionServer.stats;
        return {
          ready: ready() ? 1 : 0,
          draining: view.isDraining(nodeId) ? 1 : 0,
          mapVersion: view.version,
          raftGroups: status.length,
          raftLeaders: status.filter((g) => g.role === 'leader').length,
          partitionReplicas: replicas.size,
          raftRounds: raftHost.stats.rounds,
          raftEntriesApplied: raftHost.stats.entriesApplied,
          raftPersistCalls: raftHost.stats.persistCalls,
          raftLeadersElected: raftHost.stats.leadersElected,
          raftLeadersLost: raftHost.stats.leadersLost,
          raftTickStalls: raftHost.stats.tickStalls,
          raftEmptyAppendsHeld: raftHost.stats.emptyAppendsHeld,
          raftEmptyAppendsSuperseded: raftHost.stats.emptyAppendsSuperseded,
          raftLogBatches: logStore.stats.batches,
          raftLogSyncedBatches: logStore.stats.syncedBatches,
          transportMessagesSent: t.messagesSent,
          transportMessagesReceived: t.messagesReceived,
          transportBytesSent: t.bytesSent,
          transportBytesReceived: t.bytesReceived,
          transportStreamFailures: t.streamFailures,
          partitionWrites: s.writes,
          partitionConsistentReads: s.consistentReads,
          partitionEventualReads: s.eventualReads,
          partitionReadsWaited: s.replicaWaits,
          partitionReadsReplicaBehind: s.replicaBehind,
          partitionRequestsRefused: s.refused,
          replicasCreated: reconciler.stats.replicasCreated,
          replicasRemoved: reconciler.stats.replicasRemoved,
          membershipChanges: reconciler.stats.membershipChanges,
          heartbeatsSent: clusterAgent.stats.heartbeatsSent,
          heartbeatFailures: clusterAgent.stats.heartbeatFailures,
          mapUpdates: clusterAgent.stats.mapUpdates,
          snapshotsSent: t.snapshotsSent,
          snapshotSendFailures: t.snapshotsFailed,
          snapshotsReceived: t.snapshotsReceived,
          snapshotsRestored: raftHost.stats.snapshotsRestored,
          throttledReads: s.throttledReads,
          throttledWrites: s.throttledWrites,
          ...(driver?.splitStats ?? { splitsForSize: 0, splitsForHeat: 0, splitFailures: 0, hotKeysReported: 0 }),
          adminSplits: metaServices?.stats.adminSplits ?? 0,
          indexOutboxRecords: shipper.stats.outboxRecords,
          indexRecordsShipped: shipper.stats.recordsShipped,
          indexRecordsDropped: shipper.stats.recordsDropped,
          indexShipCallsFailed: shipper.stats.callsFailed,
          indexBatchesHeld: shipper.stats.batchesHeld,
          indexBacklogThrottledWrites: s.indexBacklogRefusals,
          indexEntryCallsThrottled: s.throttledIndexEntries,
          indexEntriesApplied: s.indexEntriesApplied,
          indexEntriesSkipped: s.indexEntriesSkipped,
          indexBackfillChunks: backfills.stats.chunksApplied,
          indexBackfillItems: backfills.stats.itemsWalked,
          indexBackfillsOfDeletedIndexes: backfills.stats.backfillsOfDeletedIndexes,
          indexBackfillPauses: backfills.stats.pausesForBacklog,
          indexOutboxMoveSteps: shipper.stats.outboxMoveSteps,
          indexOutboxRecordsMoved: shipper.stats.outboxRecordsMoved,
          indexOutboxMovesEnded: shipper.stats.outboxMovesEnded,
          groups,
          raftLogSyncSeconds: { buckets: SYNC_SECONDS_BUCKETS, counts: [...logStore.stats.syncSeconds.counts], sum: logStore.stats.syncSeconds.sum },
        };
      },
      close: () => {
        closing ??= (async () => {
          log.info('storage node stopping', { node: nodeId });
          await stopAll();
        })();
        return closing;
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Asks every group this node leads to hand leadership to a caught-up voter elsewhere, and waits
 * (at most `maxWaitMs`) until it leads none: closing then costs the groups no election timeout.
 */
async function handOverLeadership(host: MultiRaftHost, log: NodeLog, maxWaitMs: number): Promise<void> {
  const led = (): GroupStatus[] => host.status().filter((g) => g.role === 'leader' && g.voters.length > 1);
  const deadline = performance.now() + maxWaitMs;
  const asked = new Set<number>();
  for (let groups = led(); groups.length > 0 && performance.now() < deadline; groups = led()) {
    for (const group of groups) {
      if (asked.has(group.groupId)) continue;
      const to = host.progress(group.groupId)?.find((p) => p.nodeId !== host.nodeId && !p.isLearner && p.state === 'replicate' && p.match >= group.commit);
      if (to === undefined) continue;
      host.transferLeadership(group.groupId, to.nodeId);
      asked.add(group.groupId);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const kept = led().map((g) => g.groupId);
  log.info('leadership handed over before stopping', { groups: asked.size, stillLed: kept });
}

