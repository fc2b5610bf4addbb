/**
 * The cluster as the meta leader sees it (AdminService.Status, as `shoal admin status` reads it):
 * which node leads each partition, from the replicas' own heartbeat reports.
 */
import { MetaClient } from '@shoal/node';
import { spaceLabel, spaceOwners, type PartitionDescriptor } from '@shoal/model';
import { AdminService, createClient, partitionDescriptorFromWire, RpcError, Status, tableRecordFromWire } from '@shoal/proto';
import type { ClientOf, StatusResponse } from '@shoal/proto';

const CALL_TIMEOUT_MS = 2_000;
/** Redirects and retries of one status call (the meta group may be electing). */
const ATTEMPTS = 8;
/**
 * A report older than this is not believed: a killed leader's last heartbeat still says "leader"
 * until the meta leader hears from the node again (heartbeats every second).
 */
const FRESH_REPORT_SECONDS = 2.5;

export interface PartitionView {
  id: number;
  table: string;
  /**
   * The leader by the fresh reports: the node claiming leadership, or the leader its followers
   * name, at the highest term reported; undefined when none.
   */
  leader: number | undefined;
  /** Whether a majority of the replicas reported recently (else "no leader" means "unknown"). */
  known: boolean;
  replicas: number[];
  /** As the map holds it (key range, epoch). */
  descriptor: PartitionDescriptor;
}

export interface ClusterSnapshot {
  /** performance.now() when the answer arrived. */
  at: number;
  metaLeader: number;
  partitions: PartitionView[];
}

export function partitionsOf(status: StatusResponse, tableNames: ReadonlyMap<number, string>): PartitionView[] {
  const leaders = new Map<bigint, { nodeId: number; term: bigint }>();
  const reporters = new Map<bigint, Set<number>>();
  for (const node of status.nodes) {
    if (node.secondsSinceHeartbeat > FRESH_REPORT_SECONDS) continue;
    const nodeId = Number(node.node?.id ?? 0n);
    for (const load of node.reportedReplicas) {
      const seen = reporters.get(load.partitionId) ?? new Set<number>();
      seen.add(nodeId);
      reporters.set(load.partitionId, seen);
      const named = load.leader ? nodeId : Number(load.leaderId);
      if (named === 0) continue;
      const current = leaders.get(load.partitionId);
      if (current === undefined || load.term > current.term || (load.term === current.term && load.leader)) {
        leaders.set(load.partitionId, { nodeId: named, term: load.term });
      }
    }
  }
  return status.partitions.map((partition) => {
    const replicas = partition.replicas.map((replica) => Number(replica.nodeId));
    const reported = replicas.filter((id) => reporters.get(partition.id)?.has(id) === true).length;
    return {
      id: Number(partition.id),
      table: tableNames.get(partition.tableId) ?? `#${partition.tableId}`,
      leader: leaders.get(partition.id)?.nodeId,
      known: reported * 2 > replicas.length,
      replicas,
      descriptor: partitionDescriptorFromWire(partition),
    };
  });
}

export class ClusterObserver {
  readonly #meta: MetaClient;
  readonly #admins = new Map<string, ClientOf<typeof AdminService>>();
  readonly #tableNames = new Map<number, string>();
  readonly #tableIds = new Map<string, number>();

  constructor(metaAddresses: readonly string[]) {
    this.#meta = new MetaClient({
      peers: metaAddresses.map((address, index) => ({ nodeId: index + 1, address })),
      callTimeoutMs: CALL_TIMEOUT_MS,
    });
  }

  /** One status answer from the meta leader (NotLeader hints followed as MetaClient does). */
  async snapshot(): Promise<ClusterSnapshot> {
    const status = await this.#adminCall((admin) => admin.status({}, { timeoutMs: CALL_TIMEOUT_MS }));
    if (status.partitions.some((partition) => !this.#tableNames.has(partition.tableId))) await this.#loadTableNames();
    return { at: performance.now(), metaLeader: Number(status.metaLeaderId), partitions: partitionsOf(status, this.#tableNames) };
  }

  /**
   * `shoal admin split <table> --at <hashValue>` (AdminService.Split on the meta leader): resolves
   * with the halves' ids once the split is recorded.
   */
  async split(table: string, hashValue: string, timeoutMs: number): Promise<{ left: number; right: number }> {
    const answer = await this.#adminCall((admin) => admin.split({ table, hashValue }, { timeoutMs }));
    return { left: Number(answer.left?.id ?? 0n), right: Number(answer.right?.id ?? 0n) };
  }

  /** AdminService.Drain: the placement driver moves the node's replicas away. */
  async drain(nodeId: number): Promise<void> {
    await this.#adminCall((admin) => admin.drain({ nodeId: BigInt(nodeId) }, { timeoutMs: CALL_TIMEOUT_MS }));
  }

  /** AdminService.Undrain: the node takes replicas again. */
  async undrain(nodeId: number): Promise<void> {
    await this.#adminCall((admin) => admin.undrain({ nodeId: BigInt(nodeId) }, { timeoutMs: CALL_TIMEOUT_MS }));
  }

  async #adminCall<T>(invoke: (admin: ClientOf<typeof AdminService>) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const address = this.#meta.leaderAddress;
      try {
        return await invoke(this.#admin(address));
      } catch (error) {
        lastError = error;
        const redirect = this.#meta.redirect(error);
        if (redirect === undefined) throw error;
        if ('next' in redirect) await new Promise((done) => setTimeout(done, 100));
      }
    }
    throw lastError instanceof Error ? lastError : new RpcError(Status.UNAVAILABLE, String(lastError));
  }

  async #loadTableNames(): Promise<void> {
    const { records } = await this.#meta.call((client, options) => client.listTables({}, options));
    const tables = records.map(tableRecordFromWire);
    // Every space a partition may hold: a table's, and a GSI's (named table/index).
    for (const [spaceId, owner] of spaceOwners(tables)) this.#tableNames.set(spaceId, spaceLabel(owner));
    for (const record of tables) this.#tableIds.set(record.schema.name, record.schema.tableId);
  }

  /** The id of a table seen in a snapshot (its key space's, for key encoding). */
  tableId(name: string): number | undefined {
    return this.#tableIds.get(name);
  }

  #admin(address: string): ClientOf<typeof AdminService> {
    let client = this.#admins.get(address);
    if (client === undefined) {
      client = createClient(AdminService, address, {
        channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 },
      });
      this.#admins.set(address, client);
    }
    return client;
  }

  close(): void {
    this.#meta.close();
    for (const client of this.#admins.values()) client.close();
    this.#admins.clear();
  }
}

/** One look at the cluster during the run: which partitions had no leader (times in ms since the start). */
export interface LeadershipSample {
  at: number;
  /** False when no meta leader answered: nothing is known about the partitions then. */
  metaAnswered: boolean;
  leaderless: number[];
  /** Partitions too few of whose replicas reported recently to tell: their windows neither open nor close. */
  unknown: number[];
  /** The replicas of each partition watched, by the map (absent when the meta group did not answer). */
  replicas?: Record<number, number[]>;
}

/**
 * The partitions of the given tables, as the latest snapshot showed them (splits add some): read by
 * the faults that choose a partition, updated by sampleLeadership.
 */
export class WatchedPartitions {
  readonly tables: readonly string[];
  #views: PartitionView[] = [];

  constructor(tables: readonly string[]) {
    this.tables = tables;
  }

  /** Ascending ids. */
  get ids(): number[] {
    return this.#views.map((view) => view.id);
  }

  get views(): readonly PartitionView[] {
    return this.#views;
  }

  /** Keeps the partitions of the watched tables (ids only grow: a split's left half keeps its parent's id). */
  update(snapshot: ClusterSnapshot): PartitionView[] {
    this.#views = snapshot.partitions.filter((view) => this.tables.includes(view.table)).sort((a, b) => a.id - b.id);
    return this.#views;
  }
}

/** Samples leadership every `intervalMs` until `stop` aborts. */
export async function sampleLeadership(
  observer: ClusterObserver,
  watched: WatchedPartitions,
  now: () => number,
  stop: AbortSignal,
  intervalMs = 1_000,
): Promise<LeadershipSample[]> {
  const samples: LeadershipSample[] = [];
  while (!stop.aborted) {
    const started = now();
    try {
      const views = watched.update(await observer.snapshot());
      const leaderless = views.filter((view) => view.leader === undefined && view.known).map((view) => view.id);
      const unknown = views.filter((view) => !view.known).map((view) => view.id);
      samples.push({ at: now(), metaAnswered: true, leaderless, unknown, replicas: Object.fromEntries(views.map((view) => [view.id, view.replicas])) });
    } catch {
      samples.push({ at: now(), metaAnswered: false, leaderless: [], unknown: watched.ids });
    }
    const wait = intervalMs - (now() - started);
    if (wait > 0) await new Promise((done) => setTimeout(done, wait));
  }
  return samples;
}

export interface LeaderlessWindow {
  /** Partition id, or 0 for the meta group (no meta leader answered). */
  partition: number;
  start: number;
  end: number;
  /** The partition's replicas when the window opened (the meta peers for the meta group). */
  replicas: number[];
}

/**
 * Stretches during which a partition had no leader (or the meta group none): from the first sample
 * without one to the first sample with one again (or the last sample).
 */
export function leaderlessWindows(samples: readonly LeadershipSample[], metaPeers: readonly number[]): LeaderlessWindow[] {
  const windows: LeaderlessWindow[] = [];
  const open = new Map<number, { start: number; replicas: number[] }>();
  const close = (partition: number, end: number): void => {
    const opened = open.get(partition);
    if (opened === undefined) return;
    windows.push({ partition, start: opened.start, end, replicas: opened.replicas });
    open.delete(partition);
  };
  for (const sample of samples) {
    if (!sample.metaAnswered) {
      if (!open.has(0)) open.set(0, { start: sample.at, replicas: [...metaPeers] });
      continue;
    }
    close(0, sample.at);
    for (const [key, replicas] of Object.entries(sample.replicas ?? {})) {
      const id = Number(key);
      if (sample.unknown.includes(id)) continue;
      if (sample.leaderless.includes(id)) {
        if (!open.has(id)) open.set(id, { start: sample.at, replicas });
      } else close(id, sample.at);
    }
  }
  const last = samples.at(-1)?.at ?? 0;
  for (const partition of [...open.keys()]) close(partition, last);
  return windows.sort((a, b) => a.start - b.start);
}
