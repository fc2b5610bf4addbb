/**
 * Faults from a seeded schedule, injected one at a time into the cluster's processes. The plan (when,
 * which kind, how long, which target by rank) depends only on the seed and the options; the concrete
 * target of kill-leader depends on which node leads at that moment.
 */
import { seededRandom } from '@shoal/linearizability';
import type { ChaosCluster, Member } from './cluster.ts';
import { sleep } from './cluster.ts';
import type { ClusterObserver } from './observer.ts';

export const FAULT_KINDS = ['kill', 'kill-leader', 'pause', 'kill-router'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Fault kinds of the issue that are not built yet, refused with this explanation. */
export const FAULTS_NOT_BUILT: Readonly<Record<string, string>> = {
  partition: 'network partitions need a fault hook in the node processes (NetworkFaults exists in the Raft transport but no node flag or RPC reaches it yet)',
  disk: 'full or slow disks are not simulated yet',
  'kill-during-split': 'kills during a split are not built into the chaos tool yet',
  'kill-during-move': 'kills during a replica move are not built into the chaos tool yet',
  'kill-during-transfer': 'kills during a leadership transfer are not built into the chaos tool yet',
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

export function planFaults(options: FaultPlanOptions): PlannedFault[] {
  if (options.kinds.length === 0) return [];
  const random = seededRandom(options.seed);
  const first = options.durationMs * QUIET_BEFORE;
  const last = options.durationMs * (1 - QUIET_AFTER);
  const plan: PlannedFault[] = [];
  for (let at = first; ; ) {
    const kind = options.kinds[Math.floor(random() * options.kinds.length)];
    const durationMs = Math.round(Math.min(options.intervalMs * 0.6, 1_500 + random() * 3_500));
    const pick = random();
    if (at + durationMs > last) break;
    plan.push({ at: Math.round(at), kind, durationMs, pick });
    at += options.intervalMs * (0.75 + random() * 0.5);
  }
  return plan;
}

/** A fault as it happened; times in ms since the workload's start. */
export interface FaultRecord {
  kind: FaultKind;
  /** e.g. "node 3". */
  target: string;
  /** kill-leader: the partition whose leader was killed. */
  partition?: number;
  start: number;
  /** Restarted or resumed. */
  healed?: number;
  /** The target answered /readyz again. */
  ready?: number;
  /** kill-leader: when another node was reported leading the partition. */
  newLeaderAt?: number;
  /** Why the fault was skipped or did not complete. */
  note?: string;
}

export interface FaultContext {
  cluster: ChaosCluster;
  observer: ClusterObserver;
  /** Partitions of the workload's tables (kill-leader targets). */
  partitionIds: number[];
  now: () => number;
  /** Called when a fault starts and when it ends (progress display). */
  onChange?: (active: FaultRecord | undefined) => void;
}

const READY_AFTER_HEAL_MS = 60_000;
const NEW_LEADER_TIMEOUT_MS = 30_000;

function choose<T>(candidates: readonly T[], pick: number): T {
  return candidates[Math.floor(pick * candidates.length)];
}

async function leaderOf(context: FaultContext, partition: number, attempts: number): Promise<number | undefined> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      const snapshot = await context.observer.snapshot();
      const leader = snapshot.partitions.find((view) => view.id === partition)?.leader;
      if (leader !== undefined) return leader;
    } catch {
      // The meta group may be electing: ask again.
    }
    await sleep(250);
  }
  return undefined;
}

async function watchNewLeader(context: FaultContext, partition: number, killed: number, record: FaultRecord): Promise<void> {
  const deadline = Date.now() + NEW_LEADER_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const leader = await leaderOf(context, partition, 1);
    if (leader !== undefined && leader !== killed) {
      record.newLeaderAt = context.now();
      return;
    }
  }
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
  const recovered = (async (): Promise<void> => {
    await extra;
    try {
      await member.waitReady(READY_AFTER_HEAL_MS);
      record.ready = context.now();
    } catch (error) {
      record.note = error instanceof Error ? error.message.split('\n')[0] : String(error);
    }
  })();
  return { record, recovered };
}

/** A fault injected and healed, and the promise of its target's readiness (which sets `ready`). */
interface Injected {
  record: FaultRecord;
  recovered: Promise<void>;
}

/** Injects one fault and heals it after its duration. */
export async function injectFault(context: FaultContext, planned: PlannedFault): Promise<Injected> {
  const { cluster } = context;
  switch (planned.kind) {
    case 'kill':
    case 'pause': {
      const node = choose(cluster.nodes, planned.pick);
      const record: FaultRecord = { kind: planned.kind, target: node.name, start: context.now() };
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
      const partition = choose(context.partitionIds, planned.pick);
      const leader = await leaderOf(context, partition, 20);
      if (leader === undefined) {
        const record = { kind: planned.kind, target: '-', partition, start: context.now(), note: `no leader of partition ${partition} reported within 5 s: skipped` };
        return { record, recovered: Promise.resolve() };
      }
      const node = cluster.node(leader);
      const record: FaultRecord = { kind: planned.kind, target: node.name, partition, start: context.now() };
      context.onChange?.(record);
      await node.kill();
      // The new leader is watched while the old one is down, and after its restart if need be.
      const watched = watchNewLeader(context, partition, leader, record);
      return downAndUp(context, node, planned, record, watched);
    }
  }
}

/**
 * Runs the plan; stops starting new faults once `stop` aborts (the one in progress is healed).
 * Resolves once every target has come back (or failed to within its time).
 */
export async function runFaults(context: FaultContext, plan: readonly PlannedFault[], stop: AbortSignal): Promise<FaultRecord[]> {
  const injected: Injected[] = [];
  for (const planned of plan) {
    const wait = planned.at - context.now();
    if (wait > 0) await sleepUnless(wait, stop);
    if (stop.aborted) break;
    injected.push(await injectFault(context, planned));
    context.onChange?.(undefined);
  }
  await Promise.all(injected.map((fault) => fault.recovered));
  return injected.map((fault) => fault.record);
}

function sleepUnless(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      stop.removeEventListener('abort', finish);
      done();
    }
    stop.addEventListener('abort', finish);
  });
}
