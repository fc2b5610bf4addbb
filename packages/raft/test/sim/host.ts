import {
  ConfChangeError,
  MemoryStorage,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Config,
  type Entry,
    type Message,
  type NodeId,
  type Ready,
  type StateRole,
} from '@shoal/raft';
import type { InvariantChecker, LogView } from './invariants.ts';
import { KvStateMachine, decodeCommand, type ApplyResult, type KvCommand } from './kv.ts';

/**
 * Deliberate host bugs, only for proving that the checkers can fail. A correct host uses none.
 * - sendBeforePersist: sends a Ready's messages before writing its entries and hard state, so a
 *   crash in between loses votes and entries that others already counted;
 * - loseUnsyncedTail: on restart the disk has lost the entries after its persisted commit index
 *   (as if appends were acknowledged without fsync);
 * - localReads: gets are answered from the contacted node's applied state, without ReadIndex;
 * - dropTicksWhilePaused: after a process pause the host resumes without the ticks it missed
 *   (a plain interval timer), so the core believes less time passed than did.
 */
export interface HostBugs {
  sendBeforePersist?: boolean;
  loseUnsyncedTail?: boolean;
  localReads?: boolean;
  dropTicksWhilePaused?: boolean;
}

/** Where in handling a Ready an injected crash strikes. */
export type CrashPoint = 'midReady' | 'beforeApply';

export interface SnapshotPolicy {
  /** Applied entries between snapshots. */
  every: number;
  /** Entries kept in the log behind a snapshot. */
  keep: number;
  /** Also snapshot as soon as a membership change is applied. */
  afterConfChange: boolean;
}

/** What a node needs from the simulated world around it. */
export interface NodeWorld {
  readonly invariants: InvariantChecker;
  readonly bugs: HostBugs;
  /** Tracing is on: worth building trace lines on hot paths. */
  readonly verbose: boolean;
  trace(text: string): void;
  send(message: Message): void;
  raftConfig(id: NodeId, storage: MemoryStorage, applied: number): Config;
  onCommandApplied(node: SimNode, command: KvCommand, result: ApplyResult): void;
  onReadReady(node: SimNode, context: string): void;
  onConfApplied(node: SimNode, conf: ConfState): void;
  onBecameLeader(node: SimNode): void;
  snapshotPolicy(node: NodeId): SnapshotPolicy;
}

export type NodeState = 'up' | 'down' | 'retired';

const decoder = new TextDecoder();

/**
 * One simulated server: a RawNode plus its disk (a MemoryStorage, written only while handling a
 * Ready, so whatever a crash interrupts is lost) and a volatile key-value state machine rebuilt
 * from the disk's snapshot on restart.
 */
export class SimNode {
  readonly id: NodeId;
  state: NodeState = 'down';
  disk: MemoryStorage;
  raw: RawNode | undefined;
  kv = new KvStateMachine();
  confState: ConfState;
  applied = 0;
  role: StateRole = 'follower';
  leader: NodeId = 0;
  term = 0;
  /** Restarts so far; lets callbacks from an earlier life be told apart. */
  incarnation = 0;
  /** An injected crash waiting for the next Ready. */
  crashAt: CrashPoint | undefined;
  /** A process pause (GC, VM stall) lasts until this time; 0 when running. */
  pausedUntil = 0;
  /** Ticks that fell inside the current pause. */
  missedTicks = 0;
  private readonly world: NodeWorld;
  private pendingReads: { index: number; context: string }[] = [];
  private lastSnapshotIndex = 0;
  /** A membership change was applied since the last snapshot. */
  private confChangedSinceSnapshot = false;
  private handlingReady = false;
  readonly log: LogView;

  constructor(id: NodeId, disk: MemoryStorage, world: NodeWorld) {
    this.id = id;
    this.disk = disk;
    this.world = world;
    this.confState = disk.initialState().confState;
    this.log = storageView(() => this.disk);
  }

  get isUp(): boolean {
    return this.state === 'up' && this.raw !== undefined;
  }

  get isLeader(): boolean {
    return this.isUp && this.role === 'leader';
  }

  start(): void {
    if (this.world.bugs.loseUnsyncedTail && this.incarnation > 0) this.disk = withoutUnsyncedTail(this.disk);
    const { hardState, confState } = this.disk.initialState();
    const snapshot = this.disk.snapshot();
    this.world.invariants.onRestart(this.id, hardState, this.log);
    this.kv = KvStateMachine.restore(snapshot.data);
    this.confState = confState;
    this.applied = snapshot.metadata.index;
    this.lastSnapshotIndex = snapshot.metadata.index;
    this.confChangedSinceSnapshot = false;
    this.world.invariants.onStateRestored(this.id, this.applied);
    this.role = 'follower';
    this.leader = 0;
    this.term = hardState.term;
    this.pendingReads = [];
    this.crashAt = undefined;
    this.incarnation++;
    this.state = 'up';
    this.raw = new RawNode(this.world.raftConfig(this.id, this.disk, this.applied));
    this.world.trace(`node ${this.id} start #${this.incarnation} term=${hardState.term} vote=${hardState.vote} commit=${hardState.commit} log=${this.disk.firstIndex()}..${this.disk.lastIndex()} applied=${this.applied}`);
    this.processReady();
  }

  /** Loses everything not on disk. */
  crash(reason: string): void {
    if (!this.isUp) return;
    this.world.trace(`node ${this.id} CRASH (${reason}) term=${this.term} role=${this.role}`);
    this.state = 'down';
    this.raw = undefined;
    this.pendingReads = [];
    this.crashAt = undefined;
    this.pausedUntil = 0;
    this.missedTicks = 0;
    this.role = 'follower';
    this.leader = 0;
  }

  isPausedAt(now: number): boolean {
    return this.pausedUntil > 0 && now <= this.pausedUntil;
  }

  /** Removed from the group and stopped for good. */
  retire(): void {
    this.crash('retired');
    this.state = 'retired';
  }

  tick(): void {
    if (!this.raw) return;
    this.raw.tick();
    this.processReady();
  }

  step(message: Message): void {
    if (!this.raw) return;
    try {
      this.raw.step(message);
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
    }
    this.processReady();
  }

  /** Returns false when the proposal was refused (it will then never be applied). */
  propose(data: Uint8Array): boolean {
    if (!this.raw) return false;
    try {
      this.raw.propose(data);
    } catch (error) {
      if (error instanceof ProposalDroppedError) return false;
      throw error;
    }
    this.processReady();
    return true;
  }

  proposeConfChange(change: ConfChange): boolean {
    if (!this.raw) return false;
    try {
      this.raw.proposeConfChange(change);
    } catch (error) {
      if (error instanceof ProposalDroppedError || error instanceof ConfChangeError) return false;
      throw error;
    }
    this.processReady();
    return true;
  }

  readIndex(context: string): boolean {
    if (!this.raw) return false;
    try {
      this.raw.readIndex(new TextEncoder().encode(context));
    } catch (error) {
      if (error instanceof ProposalDroppedError) return false;
      throw error;
    }
    this.processReady();
    return true;
  }

  transferLeadership(to: NodeId): void {
    if (!this.raw) return;
    this.raw.transferLeadership(to);
    this.processReady();
  }

  reportUnreachable(to: NodeId): void {
    if (!this.raw) return;
    this.raw.reportUnreachable(to);
    this.processReady();
  }

  reportSnapshot(to: NodeId, ok: boolean): void {
    if (!this.raw) return;
    this.raw.reportSnapshot(to, ok);
    this.processReady();
  }

  private processReady(): void {
    // A callback from inside handleReady must not start a second Ready before advance: the outer loop drains it.
    if (this.handlingReady) return;
    this.handlingReady = true;
    try {
      for (let round = 0; round < 1000; round++) {
        const raw = this.raw;
        if (!raw || !raw.hasReady()) return;
        this.handleReady(raw, raw.ready());
      }
      throw new Error(`node ${this.id}: Ready never drained`);
    } finally {
      this.handlingReady = false;
    }
  }

  /** The Ready contract: persist, then send, then apply, then advance. */
  private handleReady(raw: RawNode, rd: Ready): void {
    const bugs = this.world.bugs;
    if (bugs.sendBeforePersist) this.send(rd);
    else this.persist(rd);
    if (this.crashAt === 'midReady') return this.crash('injected between persist and send');
    if (bugs.sendBeforePersist) this.persist(rd);
    else this.send(rd);
    if (this.crashAt === 'beforeApply') return this.crash('injected before apply');
    this.apply(raw, rd);
    raw.advance(rd);
    this.maybeSnapshot();
  }

  private persist(rd: Ready): void {
    const invariants = this.world.invariants;
    if (rd.snapshot) {
      this.disk.applySnapshot(rd.snapshot);
      invariants.onSnapshotPersisted(this.id);
      this.world.trace(`node ${this.id} persist snapshot @${rd.snapshot.metadata.index}/${rd.snapshot.metadata.term}`);
    }
    if (rd.entries.length > 0) {
      this.disk.append(rd.entries);
      invariants.onEntriesPersisted(this.id, rd.entries, this.log);
      if (this.world.verbose) this.world.trace(`node ${this.id} persist entries ${rd.entries[0].index}..${rd.entries[rd.entries.length - 1].index} (terms ${describeTerms(rd.entries)})`);
    }
    if (rd.hardState) {
      this.disk.setHardState(rd.hardState);
      this.term = rd.hardState.term;
      invariants.onHardStatePersisted(this.id, rd.hardState, this.log);
    }
    if (rd.softState) {
      const wasLeader = this.role === 'leader';
      if (rd.softState.role !== this.role || rd.softState.leader !== this.leader) {
        this.world.trace(`node ${this.id} ${rd.softState.role} term=${this.term} leader=${rd.softState.leader}`);
      }
      this.role = rd.softState.role;
      this.leader = rd.softState.leader;
      if (this.role === 'leader' && !wasLeader) {
        invariants.onLeader(this.id, this.term, this.log);
        this.world.onBecameLeader(this);
      }
    }
  }

  private send(rd: Ready): void {
    const { hardState } = this.disk.initialState();
    for (const message of rd.messages) {
      this.world.invariants.onSend(this.id, message, hardState, this.log);
      this.world.send(message);
    }
  }

  private apply(raw: RawNode, rd: Ready): void {
    const invariants = this.world.invariants;
    if (rd.snapshot) {
      const { index, confState } = rd.snapshot.metadata;
      this.kv = KvStateMachine.restore(rd.snapshot.data);
      this.confState = confState;
      this.applied = index;
      this.lastSnapshotIndex = index;
      invariants.onStateRestored(this.id, index);
      invariants.onStateAt(this.id, index, rd.snapshot.data);
    }
    if (this.world.verbose && rd.committedEntries.length > 0) {
      this.world.trace(`node ${this.id} apply ${rd.committedEntries[0].index}..${rd.committedEntries[rd.committedEntries.length - 1].index}`);
    }
    for (const entry of rd.committedEntries) {
      invariants.onApply(this.id, entry);
      this.applied = entry.index;
      this.applyEntry(raw, entry);
    }
    for (const read of rd.readStates) {
      this.pendingReads.push({ index: read.index, context: decoder.decode(read.context) });
    }
    if (this.pendingReads.length > 0) {
      const ready = this.pendingReads.filter((read) => read.index <= this.applied);
      this.pendingReads = this.pendingReads.filter((read) => read.index > this.applied);
      for (const read of ready) this.world.onReadReady(this, read.context);
    }
  }

  private applyEntry(raw: RawNode, entry: Entry): void {
    if (entry.data.length === 0) return;
    if (entry.type === 'confChange') {
      const change = decodeConfChange(entry.data);
      try {
        this.confState = raw.applyConfChange(change);
      } catch (error) {
        // Every member refuses the same invalid change, so it is a no-op everywhere.
        if (!(error instanceof ConfChangeError)) throw error;
        this.world.trace(`node ${this.id} ignores invalid conf change @${entry.index} ${describeChange(change)}: ${error.message}`);
      }
      this.world.invariants.onConfApplied(this.id, entry.index, this.confState);
      this.world.trace(`node ${this.id} apply conf change @${entry.index} ${describeChange(change)} -> ${describeConf(this.confState)}`);
      this.confChangedSinceSnapshot = true;
      this.world.onConfApplied(this, this.confState);
      return;
    }
    const command = decodeCommand(entry.data);
    const result = this.kv.apply(command);
    this.world.onCommandApplied(this, command, result);
  }

  /**
   * Takes a snapshot at the applied index now and then, and compacts the log behind it. Some
   * nodes also snapshot right after a membership change, so newcomers are offered snapshots both
   * from before and from after they joined.
   */
  private maybeSnapshot(): void {
    if (!this.isUp || this.applied <= this.lastSnapshotIndex || this.applied > this.disk.lastIndex()) return;
    const policy = this.world.snapshotPolicy(this.id);
    const afterConfChange = policy.afterConfChange && this.confChangedSinceSnapshot;
    if (this.applied - this.lastSnapshotIndex < policy.every && !afterConfChange) return;
    this.confChangedSinceSnapshot = false;
    const data = this.kv.serialize();
    this.disk.createSnapshot(this.applied, this.confState, data);
    this.world.invariants.onStateAt(this.id, this.applied, data);
    this.lastSnapshotIndex = this.applied;
    const compactTo = this.applied - policy.keep;
    if (compactTo >= this.disk.firstIndex()) this.disk.compact(compactTo);
    this.world.trace(`node ${this.id} snapshot @${this.applied}, log now ${this.disk.firstIndex()}..${this.disk.lastIndex()}`);
  }
}

/** A LogView over whatever disk a node has right now. */
function storageView(disk: () => MemoryStorage): LogView {
  return {
    firstIndex: () => disk().firstIndex(),
    lastIndex: () => disk().lastIndex(),
    termAt(index) {
      const storage = disk();
      if (index < storage.firstIndex() - 1 || index > storage.lastIndex()) return undefined;
      return storage.term(index);
    },
    entryAt(index) {
      const storage = disk();
      if (index < storage.firstIndex() || index > storage.lastIndex()) return undefined;
      return storage.entries(index, index + 1, Infinity)[0];
    },
  };
}

/** The loseUnsyncedTail bug: a copy of the disk without the entries past its persisted commit. */
function withoutUnsyncedTail(disk: MemoryStorage): MemoryStorage {
  const { hardState } = disk.initialState();
  const keepTo = Math.max(hardState.commit, disk.firstIndex() - 1);
  if (keepTo >= disk.lastIndex()) return disk;
  const snapshot = disk.snapshot();
  const copy = new MemoryStorage(snapshot.metadata.confState);
  if (snapshot.metadata.index > 0) copy.applySnapshot(snapshot);
  if (keepTo >= disk.firstIndex()) copy.append(disk.entries(disk.firstIndex(), keepTo + 1, Infinity));
  copy.setHardState(hardState);
  return copy;
}

function describeTerms(entries: readonly Entry[]): string {
  const terms = [...new Set(entries.map((entry) => entry.term))];
  return terms.join(',');
}

export function describeConf(conf: ConfState): string {
  const parts = [`voters=[${conf.voters.join(',')}]`];
  if (conf.votersOutgoing.length > 0) parts.push(`outgoing=[${conf.votersOutgoing.join(',')}]`);
  if (conf.learners.length > 0) parts.push(`learners=[${conf.learners.join(',')}]`);
  if (conf.learnersNext.length > 0) parts.push(`learnersNext=[${conf.learnersNext.join(',')}]`);
  return parts.join(' ');
}

function describeChange(change: ConfChange): string {
  if (change.changes.length === 0) return 'leave-joint';
  const body = change.changes.map((c) => `${c.type}(${c.nodeId})`).join(' ');
  return change.joint ? `joint ${body}` : body;
}
