/**
 * Faults from a seeded schedule, injected one at a time into the cluster's processes. The plan (when,
 * which kind, how long, which target by rank) depends only on the seed and the options; the concrete
 * target of the faults aimed at a partition's leader depends on which node leads at that moment.
 *
 * Network partitions, disk faults and leadership transfers go through each node's test-only
 * FaultInjectionService (the chaos cluster starts its nodes with --enable-fault-injection). A network
 * partition cuts Raft traffic only (every group, the meta group included): routers still reach every
 * node, so a leader cut off from its peers is still asked to serve and must refuse by itself.
 */
import { seededRandom } from '@shoal/linearizability';
import { encodeCollectionPrefix, partitionContains } from '@shoal/model';
import { createClient, DiskFault, FaultInjectionService, PartitionDirection } from '@shoal/proto';
import type { ClientOf } from '@shoal/proto';
import type { ChaosCluster, Member } from './cluster.ts';
import { sleep } from './cluster.ts';
import type { ClusterObserver, PartitionView, WatchedPartitions } from './observer.ts';
import { KV_TABLE } from './workload.ts';

export const FAULT_KINDS = [
  'kill',
  'kill-leader',
  'pause',
  'kill-router',
  'partition',
  'kill-during-split',
  'kill-during-transfer',
  'kill-during-move',
  'disk-slow',
  'disk-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Names that stand for several kinds (`--faults disk`). */
export const FAULT_GROUPS: Readonly<Record<string, readonly FaultKind[]>> = {
  disk: ['disk-slow', 'disk-full'],
};


export interface PlannedFault {
  /** ms after the workload's start. */
  at: number;
  kind: FaultKind;
  /** How long the target stays down or paused. */
  durationMs: number;
  /** A number in [0, 1) choosing the target among the candidates. */
  pick: number;
}

export interface FaultPlanOptions {
  seed: number;
  kinds: readonly FaultKind[];
  durationMs: number;
  /** Mean time between the starts of two faults. */
  intervalMs: number;
}

/** Share of the run before the first fault and after the last one: the "before" and "after" phases. */
const QUIET_BEFORE = 0.2;
const QUIET_AFTER = 0.25;

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const result = [...items];
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [result[i], result[j]] = [result[j], result[i]];
  }
  return result;
}

export function planFaults(options: FaultPlanOptions): PlannedFault[] {
  if (options.kinds.length === 0) return [];
  const random = seededRandom(options.seed);
  const first = options.durationMs * QUIET_BEFORE;
  const last = options.durationMs * (1 - QUIET_AFTER);
  const plan: PlannedFault[] = [];
  // Rounds of every kind once, each round in a seeded order: a short run still sees every kind.
  let round: FaultKind[] = [];
  for (let at = first; ; ) {
    if (round.length === 0) round = shuffled(options.kinds, random);
    const kind = round.pop()!;
    const durationMs = Math.round(Math.min(options.intervalMs * 0.6, 1_500 + random() * 3_500));
    const pick = random();
    if (at + durationMs > last) break;
    plan.push({ at: Math.round(at), kind, durationMs, pick });
    at += options.intervalMs * (0.75 + random() * 0.5);
  }
  return plan;
}

/**
 * What a fault took from the cluster, for the leaderless bound (which counts only once a majority
 * of a partition's replicas is back): nodes out of service, and the sides of a network partition
 * (a one-way cut counts as a cut both ways).
 */
export interface Outage {
  down: number[];
  sides?: number[][];
}

/**
 * Whether a group with these replicas keeps a majority of them up and able to talk to each other
 * under all these outages at once (faults overlap when a target is slow to come back).
 */
export function keepsMajority(replicas: readonly number[], outages: readonly Outage[]): boolean {
  let groups = [replicas.filter((id) => outages.every((outage) => !outage.down.includes(id)))];
  for (const { sides } of outages) {
    if (sides !== undefined) groups = groups.flatMap((group) => sides.map((side) => group.filter((id) => side.includes(id))));
  }
  return groups.some((group) => group.length * 2 > replicas.length);
}

/** A fault as it happened; times in ms since the workload's start. */
export interface FaultRecord {
  kind: FaultKind;
  /** e.g. "node 3", "nodes 1,4 | 2,3,5". */
  target: string;
  /** The partition a fault was aimed at (its leader, its split, its leadership transfer). */
  partition?: number;
  /** What the target was to that partition and what was done, e.g. "leader of partition 3". */
  detail?: string;
  start: number;
  /** Restarted, resumed or healed. */
  healed?: number;
  /** The target answered /readyz again. */
  ready?: number;
  /** Faults aimed at a leader: when another node was reported leading the partition. */
  newLeaderAt?: number;
  /** What the operation the fault interrupted (a split) came to. */
  outcome?: string;
  /** Why the fault was skipped or did not complete. */
  note?: string;
  outage?: Outage;
}

type FaultClient = ClientOf<typeof FaultInjectionService>;

/** FaultInjectionService clients of the cluster's nodes. */
export class NodeFaultClients {
  readonly #addresses: readonly string[];
  readonly #clients = new Map<number, FaultClient>();

  /** `addresses[id - 1]` is node id's gRPC address. */
  constructor(addresses: readonly string[]) {
    this.#addresses = addresses;
  }

  of(nodeId: number): FaultClient {
    let client = this.#clients.get(nodeId);
    if (client === undefined) {
      client = createClient(FaultInjectionService, this.#addresses[nodeId - 1], {
        channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 },
      });
      this.#clients.set(nodeId, client);
    }
    return client;
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

export interface FaultContext {
  cluster: ChaosCluster;
  observer: ClusterObserver;
  /** Partitions of the workload's tables (the targets of faults aimed at a partition). */
  partitions: WatchedPartitions;
  faults: NodeFaultClients;
  now: () => number;
  /** Called when a fault starts and when it ends (progress display). */
  onChange?: (active: FaultRecord | undefined) => void;
}

const READY_AFTER_HEAL_MS = 60_000;
const NEW_LEADER_TIMEOUT_MS = 30_000;
const FAULT_CALL_TIMEOUT_MS = 5_000;
const HEAL_ATTEMPTS = 10;
const SPLIT_TIMEOUT_MS = 20_000;
/** The longest a fault waits for the previous one's target to be ready again. */
const RECOVERY_WAIT_MS = 20_000;
/** How long a drain may take to start moving a replica. */
const MOVE_START_TIMEOUT_MS = 15_000;

function choose<T>(candidates: readonly T[], pick: number): T {
  return candidates[Math.floor(pick * candidates.length)];
}

/** Random numbers derived from a fault's pick, for the choices beyond its first. */
function choices(pick: number): () => number {
  return seededRandom(Math.floor(pick * 2 ** 31));
}

function errorLine(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

/**
 * A fresh view of the watched partitions, or undefined when the meta group does not answer within
 * about `attempts` quarter-seconds (one snapshot may take several seconds: it follows redirects).
 */
async function currentPartitions(context: FaultContext, attempts: number): Promise<readonly PartitionView[] | undefined> {
  const deadline = performance.now() + attempts * 250;
  for (let attempt = 0; attempt < attempts && performance.now() < deadline; attempt++) {
    try {
      return context.partitions.update(await context.observer.snapshot());
    } catch {
      // The meta group may be electing: ask again.
    }
    await sleep(250);
  }
  return undefined;
}

/** A partition chosen by `pick` among the watched ones, with its leader (within 5 s). */
async function ledPartition(context: FaultContext, pick: number): Promise<{ view: PartitionView; leader: number } | string> {
  const views = await currentPartitions(context, 20);
  if (views === undefined || views.length === 0) return 'no partition map within 5 s';
  const view = choose(views, pick);
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = (await currentPartitions(context, 1))?.find((candidate) => candidate.id === view.id);
    if (current?.leader !== undefined) return { view: current, leader: current.leader };
    await sleep(250);
  }
  return `no leader of partition ${view.id} reported within 5 s`;
}

async function watchNewLeader(context: FaultContext, partition: number, old: number, record: FaultRecord): Promise<void> {
  const deadline = Date.now() + NEW_LEADER_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const leader = (await currentPartitions(context, 1))?.find((view) => view.id === partition)?.leader;
    if (leader !== undefined && leader !== old) {
      record.newLeaderAt = context.now();
      return;
    }
    await sleep(100);
  }
}

function skipped(kind: FaultKind, note: string, context: FaultContext, partition?: number): Injected {
  const record: FaultRecord = { kind, target: '-', start: context.now(), note: `${note}: skipped`, ...(partition === undefined ? {} : { partition }) };
  return { record, recovered: Promise.resolve() };
}

/**
 * Keeps the target down (or paused) for the planned time, then restarts (or resumes) it. Its
 * readiness is watched in the background: the next fault keeps to the schedule, so a node still
 * catching up may be hit again, as in life.
 */
async function downAndUp(context: FaultContext, member: Member, planned: PlannedFault, record: FaultRecord, extra?: Promise<void>): Promise<Injected> {
  await sleep(planned.durationMs);
  if (planned.kind === 'pause') member.resume();
  else member.start();
  record.healed = context.now();
  return { record, recovered: watchReady(context, [member], record, extra) };
}

/** Sets `ready` once every member answers /readyz (after `extra`), or a note if one does not. */
async function watchReady(context: FaultContext, members: readonly Member[], record: FaultRecord, extra?: Promise<void>): Promise<void> {
  await extra;
  try {
    await Promise.all(members.map((member) => member.waitReady(READY_AFTER_HEAL_MS)));
    record.ready = context.now();
  } catch (error) {
    record.note = errorLine(error);
  }
}

/** A fault injected and healed, and the promise of its target's readiness (which sets `ready`). */
interface Injected {
  record: FaultRecord;
  recovered: Promise<void>;
}

/**
 * A node's network faults removed, again and again until it answers (bounded). A node that is not
 * running holds none (they live in memory): nothing to do.
 */
async function healNetwork(context: FaultContext, nodeId: number): Promise<string | undefined> {
  let last: unknown;
  for (let attempt = 0; attempt < HEAL_ATTEMPTS; attempt++) {
    if (!context.cluster.node(nodeId).running()) return undefined;
    try {
      await context.faults.of(nodeId).heal({}, { timeoutMs: FAULT_CALL_TIMEOUT_MS });
      return undefined;
    } catch (error) {
      last = error;
      await sleep(250);
    }
  }
  return `node ${nodeId} not healed: ${errorLine(last)}`;
}

interface Cut {
  node: number;
  peers: number[];
  direction: PartitionDirection;
}

const OPPOSITE: Partial<Record<PartitionDirection, PartitionDirection>> = {
  [PartitionDirection.OUTBOUND]: PartitionDirection.INBOUND,
  [PartitionDirection.INBOUND]: PartitionDirection.OUTBOUND,
  [PartitionDirection.BOTH]: PartitionDirection.BOTH,
};

/**
 * The cuts of `side` from `others` (`direction` as `side` sees it), made on both ends: the cut holds
 * even if a node of one end is down at the start (its faults unset) or restarts during the fault.
 */
function cutsBetween(side: readonly number[], others: readonly number[], direction: PartitionDirection): Cut[] {
  return [
    ...side.map((node) => ({ node, peers: [...others], direction })),
    ...others.map((node) => ({ node, peers: [...side], direction: OPPOSITE[direction]! })),
  ];
}

/**
 * Network partitions of three shapes, by the pick: the leader of a partition isolated from every
 * peer (the classic minority leader); the nodes split into a minority and a majority; the leader of
 * a partition losing only what it sends, or only what it receives (one-way).
 */
async function injectPartition(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const random = choices(planned.pick);
  const shape = Math.floor(random() * 3);
  const ids = context.cluster.nodes.map((node) => node.id);
  const cuts: Cut[] = [];
  /** The minority, or the leader: whose readiness ends the fault. */
  let targets: number[];
  let record: FaultRecord;
  let watched: Promise<void> | undefined;
  if (shape === 1) {
    const minority = shuffled(ids, random).slice(0, Math.floor((ids.length - 1) / 2)).sort((a, b) => a - b);
    const majority = ids.filter((id) => !minority.includes(id));
    cuts.push(...cutsBetween(minority, majority, PartitionDirection.BOTH));
    targets = minority;
    record = {
      kind: 'partition',
      target: `nodes ${minority.join(',')} | ${majority.join(',')}`,
      detail: 'minority and majority cut off from each other',
      start: context.now(),
      outage: { down: [], sides: [minority, majority] },
    };
  } else {
    const led = await ledPartition(context, random());
    if (typeof led === 'string') return skipped('partition', led, context);
    const { view, leader } = led;
    const others = ids.filter((id) => id !== leader);
    const oneWay = shape === 2 ? (random() < 0.5 ? PartitionDirection.OUTBOUND : PartitionDirection.INBOUND) : undefined;
    cuts.push(...cutsBetween([leader], others, oneWay ?? PartitionDirection.BOTH));
    targets = [leader];
    const how = oneWay === undefined ? 'isolated from every peer' : oneWay === PartitionDirection.OUTBOUND ? 'what it sends to its peers lost' : 'what it receives from its peers lost';
    record = {
      kind: 'partition',
      target: `node ${leader}`,
      partition: view.id,
      detail: `leader of partition ${view.id}, ${how}`,
      start: context.now(),
      outage: { down: [], sides: [[leader], others] },
    };
    watched = watchNewLeader(context, view.id, leader, record);
  }
  context.onChange?.(record);
  // A node down (or still restarting) takes no cut: the other end holds it.
  const applied = await Promise.allSettled(
    cuts.map((cut) => context.faults.of(cut.node).partition({ peers: cut.peers.map(BigInt), direction: cut.direction }, { timeoutMs: FAULT_CALL_TIMEOUT_MS })),
  );
  const failed = applied.flatMap((result, index) => (result.status === 'rejected' ? [cuts[index].node] : []));
  if (failed.length > 0) record.note = `cut applied only by the other end at node(s) ${failed.join(',')} (not answering)`;
  await sleep(planned.durationMs);
  const notes = (await Promise.all(cuts.map((cut) => healNetwork(context, cut.node)))).filter((note) => note !== undefined);
  if (notes.length > 0) record.note = [record.note, ...notes].filter((note) => note !== undefined).join('; ');
  record.healed = context.now();
  const members = targets.map((id) => context.cluster.node(id));
  return { record, recovered: watchReady(context, members, record, watched) };
}

/**
 * A split of a partition of the busy key-value table asked for (AdminService.Split at a random
 * partition key value), and, while it is in flight, a replica of that partition (its leader or a
 * follower) killed; restarted after the fault's duration. The split's own outcome is recorded.
 */
async function injectKillDuringSplit(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const random = choices(planned.pick);
  const views = await currentPartitions(context, 20);
  const tableId = context.observer.tableId(KV_TABLE);
  if (views === undefined || tableId === undefined) return skipped('kill-during-split', 'no partition map within 5 s', context);
  const at = `split-${Math.floor(random() * 1e9)}`;
  const key = encodeCollectionPrefix(tableId, { S: at });
  const parent = views.find((view) => view.table === KV_TABLE && partitionContains(view.descriptor, key));
  if (parent === undefined) return skipped('kill-during-split', `no partition of ${KV_TABLE} holds ${at}`, context);
  const killLeader = random() < 0.5 && parent.leader !== undefined;
  const followers = parent.replicas.filter((id) => id !== parent.leader);
  const victim = killLeader ? parent.leader! : choose(followers.length > 0 ? followers : parent.replicas, random());
  const node = context.cluster.node(victim);
  const record: FaultRecord = {
    kind: 'kill-during-split',
    target: node.name,
    partition: parent.id,
    detail: `${killLeader ? 'leader' : 'replica'} of partition ${parent.id}, killed while it splits at ${at}`,
    start: context.now(),
    outage: { down: [victim] },
  };
  context.onChange?.(record);
  const split = context.observer.split(KV_TABLE, JSON.stringify({ S: at }), SPLIT_TIMEOUT_MS).then(
    ({ left, right }) => {
      record.outcome = `split into ${left} and ${right}`;
    },
    (error: unknown) => {
      record.outcome = `split failed: ${errorLine(error)}`;
    },
  );
  // The split's command is proposed within a few ms of the request: the kill lands before, during
  // or just after its commit.
  await sleep(Math.floor(random() * 150));
  await node.kill();
  const watched = killLeader ? watchNewLeader(context, parent.id, victim, record) : undefined;
  return downAndUp(context, node, planned, record, Promise.all([split, watched]).then(() => undefined));
}

/**
 * A leadership transfer asked of a partition's leader directly (Raft's TimeoutNow handover, through
 * the fault service: AdminService.TransferLeader reaches the leader only with its next heartbeat
 * answer, too late to time a kill), and, while it is in flight, the target or the leader killed;
 * restarted after the fault's duration.
 */
async function injectKillDuringTransfer(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const random = choices(planned.pick);
  const led = await ledPartition(context, random());
  if (typeof led === 'string') return skipped('kill-during-transfer', led, context);
  const { view, leader } = led;
  const followers = view.replicas.filter((id) => id !== leader);
  if (followers.length === 0) return skipped('kill-during-transfer', `partition ${view.id} has one replica`, context, view.id);
  const to = choose(followers, random());
  try {
    await context.faults.of(leader).transferLeadership({ groupId: BigInt(view.id), toNode: BigInt(to) }, { timeoutMs: FAULT_CALL_TIMEOUT_MS });
  } catch (error) {
    return skipped('kill-during-transfer', `transfer of partition ${view.id} from node ${leader} refused (${errorLine(error)})`, context, view.id);
  }
  const killTarget = random() < 0.5;
  const victim = killTarget ? to : leader;
  const node = context.cluster.node(victim);
  const record: FaultRecord = {
    kind: 'kill-during-transfer',
    target: node.name,
    partition: view.id,
    detail: killTarget ? `target of partition ${view.id}'s leadership transfer from node ${leader}` : `leader of partition ${view.id}, transferring to node ${to}`,
    start: context.now(),
    outage: { down: [victim] },
  };
  context.onChange?.(record);
  // A transfer completes within a round trip or two once the target has the log: kill within that.
  await sleep(Math.floor(random() * 50));
  await node.kill();
  const watched = watchNewLeader(context, view.id, victim, record);
  return downAndUp(context, node, planned, record, watched);
}

/**
 * A node drained (AdminService.Drain: the placement driver moves its replicas away, one change at a
 * time), and, once a partition's replicas change, the new member, the node leaving or the
 * partition's leader SIGKILLed; restarted after the fault's duration, and the node undrained.
 */
async function injectKillDuringMove(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const random = choices(planned.pick);
  const before = await currentPartitions(context, 20);
  if (before === undefined) return skipped('kill-during-move', 'no partition map within 5 s', context);
  const holders = context.cluster.nodes.filter((member) => member.running() && before.some((view) => view.replicas.includes(member.id)));
  if (holders.length === 0) return skipped('kill-during-move', 'no running node holds a replica', context);
  const drained = choose(holders, random()).id;
  const start = context.now();
  try {
    await context.observer.drain(drained);
  } catch (error) {
    return skipped('kill-during-move', `drain of node ${drained} refused (${errorLine(error)})`, context);
  }
  const undrain = async (): Promise<string | undefined> => {
    let last: unknown;
    for (let attempt = 0; attempt < HEAL_ATTEMPTS; attempt++) {
      try {
        await context.observer.undrain(drained);
        return undefined;
      } catch (error) {
        last = error;
        await sleep(500);
      }
    }
    return `node ${drained} not undrained: ${errorLine(last)}`;
  };
  // A move shows as a partition of the drained node gaining a member.
  const replicasBefore = new Map(before.filter((view) => view.replicas.includes(drained)).map((view) => [view.id, view.replicas]));
  let moving: { view: PartitionView; to: number } | undefined;
  for (const deadline = Date.now() + MOVE_START_TIMEOUT_MS; moving === undefined && Date.now() < deadline; ) {
    await sleep(200);
    for (const view of (await currentPartitions(context, 1)) ?? []) {
      const was = replicasBefore.get(view.id);
      const added = was === undefined ? undefined : view.replicas.find((id) => !was.includes(id));
      if (added !== undefined) {
        moving = { view, to: added };
        break;
      }
    }
  }
  if (moving === undefined) {
    const note = await undrain();
    return skipped('kill-during-move', `no replica of node ${drained} moving within ${MOVE_START_TIMEOUT_MS / 1000} s of its drain${note === undefined ? '' : `; ${note}`}`, context);
  }
  const { view, to } = moving;
  const roll = random();
  const victim = roll < 1 / 3 || view.leader === undefined ? to : roll < 2 / 3 ? drained : view.leader;
  const role = victim === to ? 'new member' : victim === drained ? 'member leaving' : 'leader';
  const node = context.cluster.node(victim);
  const leaderKilled = victim === view.leader;
  const record: FaultRecord = {
    kind: 'kill-during-move',
    target: node.name,
    partition: view.id,
    detail: `${role} of partition ${view.id}, whose replica moves from node ${drained} (drained) to node ${to}`,
    start,
    outage: { down: [victim] },
  };
  context.onChange?.(record);
  await node.kill();
  const watched = leaderKilled ? watchNewLeader(context, view.id, victim, record) : undefined;
  await sleep(planned.durationMs);
  node.start();
  const note = await undrain();
  if (note !== undefined) record.note = note;
  record.healed = context.now();
  return { record, recovered: watchReady(context, [node], record, watched) };
}

/**
 * A slow disk (every Raft log write of the node waits 50..250 ms, a disk etcd would call very slow) or a full one (every write fails
 * with ENOSPC: the node's log store and Raft host stop, so it acknowledges nothing more; once space
 * is back the node is restarted, as an operator would).
 */
async function injectDiskFault(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const random = choices(planned.pick);
  // Among the running nodes: a disk fault of a node down would vanish with its restart.
  const running = context.cluster.nodes.filter((member) => member.running());
  const node = choose(running.length > 0 ? running : context.cluster.nodes, random());
  const full = planned.kind === 'disk-full';
  const delayMs = full ? 0 : 50 + Math.floor(random() * 200);
  const record: FaultRecord = {
    kind: planned.kind,
    target: node.name,
    detail: full ? 'every Raft log write fails with ENOSPC; restarted once space is back' : `every Raft log write (and fsync) waits ${delayMs} ms`,
    start: context.now(),
    ...(full ? { outage: { down: [node.id] } } : {}),
  };
  context.onChange?.(record);
  const client = context.faults.of(node.id);
  // A node restarting answers once it listens.
  for (let attempt = 0; ; attempt++) {
    try {
      await client.setDiskFault({ fault: full ? DiskFault.FULL : DiskFault.SLOW, delayMs }, { timeoutMs: FAULT_CALL_TIMEOUT_MS });
      break;
    } catch (error) {
      if (attempt === HEAL_ATTEMPTS - 1) {
        record.note = `disk fault not set: ${errorLine(error)}`;
        return { record, recovered: Promise.resolve() };
      }
      await sleep(500);
    }
  }
  await sleep(planned.durationMs);
  for (let attempt = 0; attempt < HEAL_ATTEMPTS; attempt++) {
    try {
      await client.setDiskFault({ fault: DiskFault.NONE }, { timeoutMs: FAULT_CALL_TIMEOUT_MS });
      break;
    } catch (error) {
      if (attempt === HEAL_ATTEMPTS - 1) record.note = `disk not healed: ${errorLine(error)}`;
      await sleep(250);
    }
  }
  if (full) {
    // Its log store stopped at the first failed write: only a restart (which re-reads the log) brings it back.
    await node.kill();
    node.start();
  }
  record.healed = context.now();
  return { record, recovered: watchReady(context, [node], record) };
}

/** Injects one fault and heals it after its duration. */
export async function injectFault(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const { cluster } = context;
  switch (planned.kind) {
    case 'kill':
    case 'pause': {
      const node = choose(cluster.nodes, planned.pick);
      const record: FaultRecord = { kind: planned.kind, target: node.name, start: context.now(), outage: { down: [node.id] } };
      context.onChange?.(record);
      if (planned.kind === 'kill') await node.kill();
      else node.pause();
      return downAndUp(context, node, planned, record);
    }
    case 'kill-router': {
      const router = choose(cluster.routers, planned.pick);
      const record: FaultRecord = { kind: planned.kind, target: router.name, start: context.now() };
      context.onChange?.(record);
      await router.kill();
      return downAndUp(context, router, planned, record);
    }
    case 'kill-leader': {
      const led = await ledPartition(context, planned.pick);
      if (typeof led === 'string') return skipped('kill-leader', led, context);
      const { view, leader } = led;
      const node = cluster.node(leader);
      const record: FaultRecord = {
        kind: planned.kind,
        target: node.name,
        partition: view.id,
        detail: `leader of partition ${view.id}`,
        start: context.now(),
        outage: { down: [leader] },
      };
      context.onChange?.(record);
      await node.kill();
      // The new leader is watched while the old one is down, and after its restart if need be.
      const watched = watchNewLeader(context, view.id, leader, record);
      return downAndUp(context, node, planned, record, watched);
    }
    case 'partition':
      return injectPartition(context, planned);
    case 'kill-during-split':
      return injectKillDuringSplit(context, planned);
    case 'kill-during-transfer':
      return injectKillDuringTransfer(context, planned);
    case 'kill-during-move':
      return injectKillDuringMove(context, planned);
    case 'disk-slow':
    case 'disk-full':
      return injectDiskFault(context, planned);
  }
}

/** Faults that take no process down: they keep to the schedule while a restarted node recovers. */
const NOTHING_DOWN: ReadonlySet<FaultKind> = new Set(['partition', 'disk-slow']);

/**
 * Runs the plan; stops starting new faults once `stop` aborts (the one in progress is healed).
 * A fault starts at its planned time, but one that takes a process down not before the previous
 * fault's target is ready again (at most RECOVERY_WAIT_MS): a node still replaying its log is not
 * killed again, and two restarting meta peers do not take the meta group down between them.
 * Resolves once every target has come back (or failed to within its time).
 */
export async function runFaults(context: FaultContext, plan: readonly PlannedFault[], stop: AbortSignal): Promise<FaultRecord[]> {
  const injected: Injected[] = [];
  for (const planned of plan) {
    const previous = injected.at(-1)?.recovered;
    if (previous !== undefined && !NOTHING_DOWN.has(planned.kind)) await sleepUnless(RECOVERY_WAIT_MS, stop, previous);
    const wait = planned.at - context.now();
    if (wait > 0) await sleepUnless(wait, stop);
    if (stop.aborted) break;
    injected.push(await injectFault(context, planned));
    context.onChange?.(undefined);
  }
  await Promise.all(injected.map((fault) => fault.recovered));
  return injected.map((fault) => fault.record);
}

/** Sleeps `ms`, less if `stop` aborts or `until` settles first. */
function sleepUnless(ms: number, stop: AbortSignal, until?: Promise<void>): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      stop.removeEventListener('abort', finish);
      done();
    }
    stop.addEventListener('abort', finish);
    until?.then(finish, finish);
  });
}
