import { checkKvHistory, type CheckResult, type KvOperation } from '@shoal/linearizability';
import { MemoryStorage, type ConfChange, type ConfState, type Config, type Message, type NodeId } from '@shoal/raft';
import { SimNode, describeConf, type CrashPoint, type HostBugs, type NodeWorld, type SnapshotPolicy } from './host.ts';
import { InvariantChecker, type Violation } from './invariants.ts';
import { KvStateMachine, encodeCommand, type ApplyResult, type KvCommand } from './kv.ts';
import { MIXES, type FaultKind, type MixName, type MixSpec } from './mixes.ts';
import { SimNetwork, type NetworkProfile } from './network.ts';
import { Prng } from './prng.ts';
import { Scheduler } from './scheduler.ts';
import { Workload, type ReadMode } from './workload.ts';

export interface SimulationOptions {
  seed: number;
  mix: MixName;
  /** Length of the faulty phase, in ticks (one tick = TICK_MS of simulated time). */
  steps: number;
  reads?: ReadMode;
  /**
   * How initial members get their membership: 'snapshot' (default) `MemoryStorage.bootstrap`, a
   * snapshot at index 1; 'initial-conf' `new MemoryStorage(conf)`, a snapshot at index 0 that a
   * leader never sends: a newcomer caught up from index 1 never learns the initial members and its
   * membership diverges (the membership-agreement invariant reports it).
   */
  bootstrap?: 'snapshot' | 'initial-conf';
  bugs?: HostBugs;
  /** Print a readable event trace through `log`. */
  verbose?: boolean;
  log?: (line: string) => void;
  /** Wall-clock bound for the linearizability check. */
  checkTimeoutMs?: number;
  /** Only the invariants and liveness (faster sweeps); the history is still recorded. */
  skipLinearizability?: boolean;
}

export interface SimulationResult {
  ok: boolean;
  /** One line per problem found: invariant violations, liveness, linearizability, a thrown error. */
  problems: string[];
  violations: Violation[];
  linearizability: CheckResult | undefined;
  history: KvOperation[];
  /** The command that replays this run with a trace. */
  replay: string;
  stats: SimulationStats;
}

export interface SimulationStats {
  voters: number;
  nodes: number;
  events: number;
  simulatedMs: number;
  messagesSent: number;
  messagesDropped: number;
  operations: number;
  completed: number;
  indeterminate: number;
  refused: number;
  /** Writes proposed a second time after a timeout. */
  retried: number;
  /** Snapshots sent to followers that were too far behind. */
  snapshotsSent: number;
  leaderElections: number;
  crashes: number;
  confChangesApplied: number;
  committedIndex: number;
  /** Simulated ms from healing all faults to a commit applied on every member. */
  recoveryMs: number | undefined;
}

export const TICK_MS = 10;
const ELECTION_TICK = 10;
/** After the faults heal, the cluster must elect a leader and commit everywhere within this. */
export const LIVENESS_BOUND_MS = 50 * ELECTION_TICK * TICK_MS;
const MAX_NODES = 7;
/** Relative tick-rate error of a node's clock. */
const MAX_CLOCK_DRIFT = 0.02;
const QUIET_NETWORK: NetworkProfile = { minDelayMs: 1, maxDelayMs: 10, dropRate: 0, duplicateRate: 0, slowRate: 0, slowDelayMs: 0 };

export function replayCommand(options: SimulationOptions): string {
  const parts = ['npx node scripts/sim-raft.ts', `--seed ${options.seed}`, `--mix ${options.mix}`, `--steps ${options.steps}`];
  if (options.reads === 'lease') parts.push('--reads lease');
  if (options.bootstrap === 'initial-conf') parts.push('--bootstrap initial-conf');
  const bugs = options.bugs ?? {};
  if (bugs.sendBeforePersist) parts.push('--bug send-before-persist');
  if (bugs.loseUnsyncedTail) parts.push('--bug lose-unsynced-tail');
  if (bugs.localReads) parts.push('--bug local-reads');
  if (bugs.dropTicksWhilePaused) parts.push('--bug drop-ticks-while-paused');
  parts.push('--verbose');
  return parts.join(' ');
}

/** Runs one seeded simulation to the end and reports every problem found. */
export function runSimulation(options: SimulationOptions): SimulationResult {
  const simulation = new Simulation(options);
  return simulation.run();
}

/** The parameters a seed draws before anything runs. */
interface ClusterShape {
  voters: number;
  learners: number;
  heartbeatTick: number;
  checkQuorum: boolean;
  preVote: boolean;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number | undefined;
  maxUncommittedEntriesSize: number | undefined;
}

class Simulation implements NodeWorld {
  readonly invariants: InvariantChecker;
  readonly bugs: HostBugs;
  readonly verbose: boolean;
  private readonly options: SimulationOptions;
  private readonly mix: MixSpec;
  private readonly scheduler = new Scheduler();
  private readonly network: SimNetwork;
  private readonly faultPrng: Prng;
  private readonly nodePrng: Prng;
  private readonly shape: ClusterShape;
  private readonly readMode: ReadMode;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly snapshotPolicies = new Map<NodeId, SnapshotPolicy>();
  private readonly workload: Workload;
  private readonly everMember = new Set<NodeId>();
  /** Where the liveness probe committed, once some node applied it. */
  private probeIndex: number | undefined;
  private nextNodeId: NodeId;
  private faultsActive = true;
  private leaderElections = 0;
  private crashes = 0;
  private snapshotsSent = 0;
  private confChangesApplied = 0;
  private readonly log: (line: string) => void;

  constructor(options: SimulationOptions) {
    this.options = options;
    this.mix = MIXES[options.mix];
    this.bugs = options.bugs ?? {};
    this.verbose = options.verbose ?? false;
    this.log = options.log ?? ((line) => console.log(line));
    this.readMode = options.reads ?? 'readIndex';
    const root = new Prng(options.seed);
    const shapePrng = root.fork();
    this.faultPrng = root.fork();
    this.nodePrng = root.fork();
    const networkPrng = root.fork();
    const clientPrng = root.fork();
    this.invariants = new InvariantChecker(() => this.scheduler.now);
    this.network = new SimNetwork(networkPrng, this.scheduler, this.mix.network);
    const maxSizePerMsg = shapePrng.pick([256, 4096, Infinity]);
    this.shape = {
      voters: shapePrng.int(3, 6),
      learners: shapePrng.int(0, 2),
      heartbeatTick: shapePrng.int(1, 4),
      // Lease reads are only safe when a leader that lost its quorum steps down.
      checkQuorum: this.readMode === 'lease' || shapePrng.chance(0.5),
      preVote: shapePrng.chance(0.5),
      maxSizePerMsg,
      maxInflightMsgs: shapePrng.pick([1, 4, 256]),
      maxInflightBytes: maxSizePerMsg !== Infinity && shapePrng.chance(0.5) ? 2 * maxSizePerMsg : undefined,
      maxUncommittedEntriesSize: shapePrng.pick([undefined, 600]),
    };
    this.nextNodeId = this.shape.voters + this.shape.learners + 1;
    this.workload = new Workload(
      {
        clients: 3,
        registerKeys: ['x', 'y'],
        listKeys: ['l'],
        timeoutMs: 40 * TICK_MS,
        maxThinkMs: 30,
        localReads: this.bugs.localReads ?? false,
        writeAttempts: 2,
      },
      {
        scheduler: this.scheduler,
        chooseNode: (prng) => this.chooseNode(prng),
        whenRunning: (node, action) => this.whenRunning(node, action),
        trace: (text) => this.trace(text),
      },
      clientPrng,
    );
  }

  run(): SimulationResult {
    const problems: string[] = [];
    let linearizability: CheckResult | undefined;
    let recoveryMs: number | undefined;
    try {
      this.boot();
      this.workload.start();
      this.scheduleFault();
      const faultEnd = this.options.steps * TICK_MS;
      this.scheduler.runUntil(faultEnd, () => !this.invariants.ok);
      if (this.invariants.ok) {
        recoveryMs = this.healAndAwaitCommit();
        if (recoveryMs === undefined) {
          problems.push(`liveness: no leader committed on every member within ${LIVENESS_BOUND_MS}ms after healing (${this.describeCluster()})`);
        }
      }
      this.workload.abandonPending();
      if (this.invariants.ok && !this.options.skipLinearizability) {
        linearizability = checkKvHistory(this.workload.history, { timeoutMs: this.options.checkTimeoutMs ?? 20_000 });
        if (linearizability.failure) {
          problems.push(`linearizability: key ${linearizability.failure.key}: ${linearizability.failure.explanation}`);
        } else if (!linearizability.ok) {
          problems.push(`linearizability: check timed out after ${linearizability.keysChecked} keys`);
        }
      }
    } catch (error) {
      problems.push(`error at ${this.scheduler.now}ms: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
    for (const violation of this.invariants.violations) {
      problems.unshift(`invariant ${violation.invariant} at ${violation.time}ms: ${violation.detail}`);
    }
    return {
      ok: problems.length === 0,
      problems,
      violations: this.invariants.violations,
      linearizability,
      history: this.workload.history,
      replay: replayCommand(this.options),
      stats: {
        voters: this.shape.voters,
        nodes: this.nodes.size,
        events: this.scheduler.eventsRun,
        simulatedMs: this.scheduler.now,
        messagesSent: this.network.sent,
        messagesDropped: this.network.dropped,
        operations: this.workload.history.length,
        completed: this.workload.completed,
        indeterminate: this.workload.indeterminate,
        refused: this.workload.refused,
        retried: this.workload.retried,
        snapshotsSent: this.snapshotsSent,
        leaderElections: this.leaderElections,
        crashes: this.crashes,
        confChangesApplied: this.confChangesApplied,
        committedIndex: this.invariants.committedIndex,
        recoveryMs,
      },
    };
  }

  // ---- NodeWorld ----

  trace(text: string): void {
    if (this.verbose) this.log(`${String(this.scheduler.now).padStart(7)}ms  ${text}`);
  }

  send(message: Message): void {
    const sender = this.nodes.get(message.from);
    const incarnation = sender?.incarnation;
    const copy: Message = { ...message, entries: message.entries.slice() };
    if (message.type === 'MsgSnap') this.snapshotsSent++;
    if (this.verbose && message.type !== 'MsgHeartbeat' && message.type !== 'MsgHeartbeatResp') this.trace(`send ${describeMessage(message)}`);
    this.network.send(
      message.from,
      message.to,
      () => {
        const receiver = this.nodes.get(message.to);
        if (receiver) this.whenRunning(receiver, () => receiver.step(copy));
      },
      (outcome) => {
        if (!sender) return;
        this.whenRunning(sender, () => {
          if (sender.incarnation !== incarnation) return;
          if (message.type === 'MsgSnap') sender.reportSnapshot(message.to, outcome === 'delivered');
          else if (outcome === 'dropped' && message.type === 'MsgApp') sender.reportUnreachable(message.to);
        });
      },
    );
  }

  raftConfig(id: NodeId, storage: MemoryStorage, applied: number): Config {
    return {
      id,
      electionTick: ELECTION_TICK,
      heartbeatTick: this.shape.heartbeatTick,
      storage,
      applied,
      maxSizePerMsg: this.shape.maxSizePerMsg,
      maxInflightMsgs: this.shape.maxInflightMsgs,
      maxInflightBytes: this.shape.maxInflightBytes,
      maxUncommittedEntriesSize: this.shape.maxUncommittedEntriesSize,
      checkQuorum: this.shape.checkQuorum,
      preVote: this.shape.preVote,
      readOnlyOption: this.readMode === 'lease' ? 'leaseBased' : 'safe',
      seed: this.nodePrng.nextUint32(),
    };
  }

  onCommandApplied(node: SimNode, command: KvCommand, result: ApplyResult): void {
    if (result.kind === 'noop') {
      if (result.token === 'probe' && this.probeIndex === undefined) this.probeIndex = node.applied;
      return;
    }
    this.workload.onCommandApplied(node, command, result);
  }

  onReadReady(node: SimNode, context: string): void {
    this.workload.onReadReady(node, context);
  }

  onConfApplied(node: SimNode, conf: ConfState): void {
    this.confChangesApplied++;
    for (const id of membersOf(conf)) this.everMember.add(id);
    if (node.isLeader) this.retireRemoved(conf);
  }

  onBecameLeader(node: SimNode): void {
    this.trace(`node ${node.id} became leader of term ${node.term}`);
    this.leaderElections++;
  }

  snapshotPolicy(node: NodeId): SnapshotPolicy {
    let policy = this.snapshotPolicies.get(node);
    if (!policy) {
      policy = { every: this.nodePrng.int(5, 60), keep: this.nodePrng.int(0, 12), afterConfChange: this.nodePrng.chance(0.5) };
      this.snapshotPolicies.set(node, policy);
    }
    return policy;
  }

  // ---- the cluster ----

  private boot(): void {
    const voters = range(1, this.shape.voters);
    const learners = range(this.shape.voters + 1, this.shape.learners);
    this.trace(`boot seed=${this.options.seed} mix=${this.options.mix} reads=${this.readMode} ${JSON.stringify(this.shape)}`);
    for (const id of [...voters, ...learners]) {
      this.everMember.add(id);
      this.addNode(
        id,
        this.options.bootstrap === 'initial-conf'
          ? new MemoryStorage({ voters, learners })
          : MemoryStorage.bootstrap({ voters, learners }, new KvStateMachine().serialize()),
      );
    }
  }

  private addNode(id: NodeId, disk: MemoryStorage): SimNode {
    const node = new SimNode(id, disk, this);
    this.nodes.set(id, node);
    // Every node ticks from its own phase at its own rate: clocks drift by up to MAX_CLOCK_DRIFT,
    // well inside the margin lease reads keep (two ticks of an election timeout).
    const phase = this.nodePrng.int(0, TICK_MS);
    const interval = TICK_MS * (1 + (this.nodePrng.float() * 2 - 1) * MAX_CLOCK_DRIFT);
    const tick = (): void => {
      if (node.state === 'retired') return;
      if (node.isPausedAt(this.scheduler.now)) node.missedTicks++;
      else node.tick();
      this.scheduler.after(interval, tick);
    };
    this.scheduler.after(phase, tick);
    node.start();
    return node;
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.isUp);
  }

  /** The node that leads the highest term, if any node believes it leads. */
  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.isLeader && (!best || node.term > best.term)) best = node;
    }
    return best;
  }

  /** Like a client with a possibly stale leader cache: often the newest leader, sometimes any self-declared leader, else anyone. */
  private chooseNode(prng: Prng): SimNode | undefined {
    const roll = prng.float();
    const leader = this.currentLeader();
    if (leader && roll < 0.5) return leader;
    const leaders = this.liveNodes().filter((node) => node.isLeader);
    if (leaders.length > 0 && roll < 0.75) return prng.pick(leaders);
    const live = this.liveNodes();
    return live.length > 0 ? prng.pick(live) : undefined;
  }

  /** What reaches a paused process waits until it resumes. */
  private whenRunning(node: SimNode, action: () => void): void {
    if (node.isPausedAt(this.scheduler.now)) this.scheduler.at(node.pausedUntil, () => this.whenRunning(node, action));
    else action();
  }

  /** Freezes a node's process; on resume a correct host first catches up on the ticks it missed. */
  private pause(node: SimNode, durationMs: number): void {
    if (!node.isUp) return;
    node.pausedUntil = this.scheduler.now + durationMs;
    node.missedTicks = 0;
    this.trace(`fault: node ${node.id} paused until ${node.pausedUntil}ms`);
    this.scheduler.at(node.pausedUntil, () => {
      const missed = node.missedTicks;
      node.pausedUntil = 0;
      node.missedTicks = 0;
      this.trace(`node ${node.id} resumes, ${this.bugs.dropTicksWhilePaused ? 'dropping' : 'catching up'} ${missed} missed ticks`);
      if (!this.bugs.dropTicksWhilePaused) for (let i = 0; i < missed; i++) node.tick();
    });
  }

  /** Stops nodes the committed configuration no longer holds; removed ids are never reused. */
  private retireRemoved(conf: ConfState): void {
    const members = new Set(membersOf(conf));
    for (const node of this.nodes.values()) {
      if (node.state === 'retired' || members.has(node.id) || !this.everMember.has(node.id)) continue;
      this.trace(`node ${node.id} retired (removed from ${describeConf(conf)})`);
      // Not from inside the Ready that applied the change: stopping is the host's next step.
      this.scheduler.after(0, () => node.retire());
    }
  }

  // ---- faults ----

  private scheduleFault(): void {
    const [min, max] = this.mix.faultIntervalMs;
    this.scheduler.after(this.faultPrng.int(min, max + 1), () => {
      if (!this.faultsActive) return;
      this.leaveJointIfStuck();
      this.injectFault(weightedPick(this.faultPrng, this.mix.faults));
      this.scheduleFault();
    });
  }

  private faultDuration(): number {
    const [min, max] = this.mix.faultDurationMs;
    return this.faultPrng.int(min, max + 1);
  }

  /** Heals a fault later, unless everything was healed already. */
  private later(action: () => void): void {
    this.scheduler.after(this.faultDuration(), () => {
      if (this.faultsActive) action();
    });
  }

  private injectFault(kind: FaultKind): void {
    const prng = this.faultPrng;
    const leader = this.currentLeader();
    const others = (id: NodeId): NodeId[] => [...this.nodes.keys()].filter((other) => other !== id);
    switch (kind) {
      case 'heal':
        this.trace('fault: heal network');
        this.network.healAll();
        return;
      case 'partition-majority': {
        const ids = shuffle(prng, [...this.nodes.keys()]);
        const minoritySize = prng.int(1, Math.floor(ids.length / 2) + 1);
        const minority = ids.slice(0, minoritySize);
        const majority = ids.slice(minoritySize);
        this.trace(`fault: partition [${minority.join(',')}] | [${majority.join(',')}]`);
        this.network.partition(minority, majority);
        this.later(() => {
          for (const a of minority) for (const b of majority) this.unblockBoth(a, b);
          this.trace(`heal: partition [${minority.join(',')}] | [${majority.join(',')}]`);
        });
        return;
      }
      case 'isolate-leader': {
        if (!leader) return;
        this.trace(`fault: isolate leader ${leader.id}`);
        this.network.partition([leader.id], others(leader.id));
        this.later(() => {
          for (const other of others(leader.id)) this.unblockBoth(leader.id, other);
          this.trace(`heal: isolation of ${leader.id}`);
        });
        return;
      }
      case 'one-way-leader': {
        if (!leader) return;
        const outbound = prng.chance(0.5);
        this.trace(`fault: leader ${leader.id} can ${outbound ? 'not send' : 'not receive'}`);
        for (const other of others(leader.id)) {
          if (outbound) this.network.blockLink(leader.id, other);
          else this.network.blockLink(other, leader.id);
        }
        this.later(() => {
          for (const other of others(leader.id)) this.unblockBoth(leader.id, other);
          this.trace(`heal: one-way cut of ${leader.id}`);
        });
        return;
      }
      case 'flap-link': {
        const ids = [...this.nodes.keys()];
        if (ids.length < 2) return;
        const [a, b] = shuffle(prng, ids);
        const until = this.scheduler.now + this.faultDuration();
        this.trace(`fault: link ${a}<->${b} flaps until ${until}ms`);
        const flap = (): void => {
          if (!this.faultsActive) return;
          if (this.scheduler.now >= until) return this.unblockBoth(a, b);
          const up = this.network.isLinkUp(a, b) && this.network.isLinkUp(b, a);
          if (up) {
            const direction = prng.int(0, 3);
            if (direction !== 1) this.network.blockLink(a, b);
            if (direction !== 0) this.network.blockLink(b, a);
          } else {
            this.unblockBoth(a, b);
          }
          this.scheduler.after(prng.int(5, 80), flap);
        };
        flap();
        return;
      }
      case 'crash':
      case 'crash-leader': {
        const live = this.liveNodes();
        const victim = kind === 'crash-leader' ? leader : live.length > 0 ? prng.pick(live) : undefined;
        if (!victim) return;
        this.crashes++;
        victim.crash(kind);
        this.restartLater(victim);
        return;
      }
      case 'crash-mid-ready': {
        const live = this.liveNodes();
        if (live.length === 0) return;
        const victim = leader && prng.chance(0.5) ? leader : prng.pick(live);
        const point: CrashPoint = prng.chance(0.5) ? 'midReady' : 'beforeApply';
        this.crashes++;
        victim.crashAt = point;
        this.trace(`fault: node ${victim.id} will crash at ${point}`);
        this.restartLater(victim);
        return;
      }
      case 'pause-leader': {
        const live = this.liveNodes();
        const victim = leader && prng.chance(0.7) ? leader : live.length > 0 ? prng.pick(live) : undefined;
        if (!victim || victim.isPausedAt(this.scheduler.now)) return;
        const duration = this.faultDuration();
        if (prng.chance(0.5)) {
          // A stall that also cuts the node off: when it resumes, nothing from a newer term is waiting for it.
          this.trace(`fault: isolate node ${victim.id} while it is paused`);
          this.network.partition([victim.id], others(victim.id));
          this.scheduler.after(duration, () => {
            for (const other of others(victim.id)) this.unblockBoth(victim.id, other);
          });
        }
        this.pause(victim, duration);
        return;
      }
      case 'add-learner': {
        if (!leader || this.nodes.size >= MAX_NODES) return;
        const id = this.nextNodeId++;
        this.trace(`fault: add learner ${id} via leader ${leader.id}`);
        this.addNode(id, new MemoryStorage());
        this.proposeConfChange(leader, { changes: [{ type: 'addLearner', nodeId: id }] });
        return;
      }
      case 'promote-learner': {
        if (!leader || leader.confState.learners.length === 0) return;
        const learner = prng.pick(leader.confState.learners);
        this.proposeConfChange(leader, { changes: [{ type: 'addNode', nodeId: learner }] });
        return;
      }
      case 'remove-voter': {
        if (!leader || leader.confState.voters.length <= 3) return;
        const voter = prng.pick(leader.confState.voters);
        this.proposeConfChange(leader, { changes: [{ type: 'removeNode', nodeId: voter }] });
        return;
      }
      case 'joint-change': {
        if (!leader || leader.confState.learners.length === 0 || leader.confState.voters.length < 3) return;
        const learner = prng.pick(leader.confState.learners);
        const voter = prng.pick(leader.confState.voters);
        this.proposeConfChange(leader, {
          changes: [
            { type: 'addNode', nodeId: learner },
            { type: 'removeNode', nodeId: voter },
          ],
          joint: prng.chance(0.5),
        });
        return;
      }
      case 'transfer-leader':
      case 'transfer-then-deafen-leader': {
        if (!leader) return;
        const candidates = leader.confState.voters.filter((id) => id !== leader.id);
        if (candidates.length === 0) return;
        const to = prng.pick(candidates);
        this.trace(`fault: transfer leadership ${leader.id} -> ${to}`);
        leader.transferLeadership(to);
        if (kind === 'transfer-leader') return;
        // Once the transfer had time to start, the old leader hears nothing more.
        this.scheduler.after(prng.int(5, 40), () => {
          if (!this.faultsActive) return;
          this.trace(`fault: node ${leader.id} can not receive`);
          for (const other of others(leader.id)) this.network.blockLink(other, leader.id);
          this.later(() => {
            for (const other of others(leader.id)) this.network.unblockLink(other, leader.id);
            this.trace(`heal: node ${leader.id} hears again`);
          });
        });
        return;
      }
    }
  }

  private unblockBoth(a: NodeId, b: NodeId): void {
    this.network.unblockLink(a, b);
    this.network.unblockLink(b, a);
  }

  private restartLater(node: SimNode): void {
    this.later(() => {
      if (node.state === 'down') node.start();
      else node.crashAt = undefined;
    });
  }

  private proposeConfChange(leader: SimNode, change: ConfChange): void {
    const accepted = leader.proposeConfChange(change);
    this.trace(`fault: conf change ${JSON.stringify(change.changes)}${change.joint ? ' joint' : ''} via ${leader.id}: ${accepted ? 'proposed' : 'refused'}`);
  }

  /** An explicit joint configuration stays until someone proposes leaving it. */
  private leaveJointIfStuck(): void {
    const leader = this.currentLeader();
    if (leader && leader.confState.votersOutgoing.length > 0 && !leader.confState.autoLeave) {
      this.proposeConfChange(leader, { changes: [] });
    }
  }

  // ---- the end ----

  /** Heals everything and waits for a leader whose no-op commits on every member; returns how long it took. */
  private healAndAwaitCommit(): number | undefined {
    this.faultsActive = false;
    this.workload.stop();
    this.network.healAll();
    this.network.profile = QUIET_NETWORK;
    const healedAt = this.scheduler.now;
    this.trace('---- heal: network healed, crashed nodes restarted, awaiting a commit on every member ----');
    for (const node of this.nodes.values()) {
      node.crashAt = undefined;
      if (node.state === 'down') node.start();
    }
    const deadline = healedAt + LIVENESS_BOUND_MS;
    let probedBy: SimNode | undefined;
    let probeTerm = 0;
    while (this.scheduler.now < deadline && this.invariants.ok) {
      this.scheduler.runUntil(Math.min(deadline, this.scheduler.now + 5 * TICK_MS), () => !this.invariants.ok);
      const leader = this.currentLeader();
      if (!leader) continue;
      this.leaveJointIfStuck();
      if (probedBy !== leader || probeTerm !== leader.term) {
        this.probeIndex = undefined;
        if (leader.propose(encodeCommand({ kind: 'noop', token: 'probe' }))) {
          probedBy = leader;
          probeTerm = leader.term;
        }
        continue;
      }
      const conf = leader.confState;
      if (conf.votersOutgoing.length > 0) continue;
      const probeIndex = this.probeIndex;
      if (probeIndex === undefined) continue;
      // A member may have caught up through a snapshot that covers the probe rather than applying it.
      if (membersOf(conf).every((id) => (this.nodes.get(id)?.applied ?? 0) >= probeIndex)) {
        this.retireRemoved(conf);
        this.trace(`---- live: leader ${leader.id} term ${leader.term} committed on every member (${describeConf(conf)}) ----`);
        return this.scheduler.now - healedAt;
      }
    }
    return undefined;
  }

  private describeCluster(): string {
    return [...this.nodes.values()]
      .map((node) => `${node.id}:${node.state}/${node.role}/t${node.term}/applied ${node.applied}`)
      .join(' ');
  }
}

function membersOf(conf: ConfState): NodeId[] {
  return [...new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners, ...conf.learnersNext])];
}

function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

function shuffle<T>(prng: Prng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = prng.int(0, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function weightedPick<K extends string>(prng: Prng, weights: Partial<Record<K, number>>): K {
  const entries = Object.entries(weights) as [K, number][];
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = prng.float() * total;
  for (const [kind, weight] of entries) {
    roll -= weight;
    if (roll < 0) return kind;
  }
  return entries[entries.length - 1][0];
}

export function describeMessage(m: Message): string {
  let text = `${m.type} ${m.from}->${m.to} t${m.term}`;
  if (m.type === 'MsgApp') text += ` prev=${m.index}/${m.logTerm} n=${m.entries.length} commit=${m.commit}`;
  else if (m.type === 'MsgAppResp') text += ` index=${m.index}${m.reject ? ` REJECT hint=${m.rejectHint}` : ''}`;
  else if (m.type === 'MsgVote' || m.type === 'MsgPreVote') text += ` last=${m.index}/${m.logTerm}`;
  else if (m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') text += m.reject ? ' REJECT' : ' GRANT';
  else if (m.type === 'MsgSnap' && m.snapshot) text += ` snap=${m.snapshot.metadata.index}/${m.snapshot.metadata.term}`;
  return text;
}
