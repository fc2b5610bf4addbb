/**
 * A deterministic in-test cluster of RawNodes over MemoryStorage. Each node runs the host loop
 * by the Ready contract (persist, send, apply, advance); messages go through a queue delivered in
 * order, with links that can be cut. The state machine is the list of applied payloads.
 */
import { RawNode } from '../../src/rawnode.ts';
import { MemoryStorage } from '../../src/storage.ts';
import { decodeConfChange } from '../../src/codec.ts';
import { ConfChangeError } from '../../src/errors.ts';
import { Prng } from '../../src/prng.ts';
import type { Config, ConfState, Message, NodeId, ReadState, Ready } from '../../src/types.ts';

const text = new TextDecoder();
const bytes = new TextEncoder();

export interface ClusterNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Applied normal entries' payloads, in order (empty entries skipped). */
  applied: string[];
  appliedIndex: number;
  confState: ConfState;
  readStates: ReadState[];
  /** Conf change entries whose application was refused as invalid. */
  refusedConfChanges: number;
}

export type ConfigOverrides = Partial<Omit<Config, 'id' | 'storage'>>;

export function testConfig(id: NodeId, storage: MemoryStorage, overrides: ConfigOverrides = {}): Config {
  return {
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    maxSizePerMsg: 1024 * 1024,
    maxInflightMsgs: 256,
    checkQuorum: true,
    preVote: true,
    readOnlyOption: 'safe',
    seed: id * 7919,
    ...overrides,
  };
}

export class Cluster {
  readonly nodes = new Map<NodeId, ClusterNode>();
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  readonly overrides: ConfigOverrides;
  /** Every message ever sent, for assertions on traffic. */
  readonly sent: Message[] = [];
  /** Fraction of messages lost in transit, decided by a seeded PRNG. */
  lossRate = 0;
  private readonly lossPrng = new Prng(12345);

  constructor(voters: NodeId[], overrides: ConfigOverrides = {}, learners: NodeId[] = []) {
    this.overrides = overrides;
    for (const id of [...voters, ...learners]) this.addNode(id, new MemoryStorage({ voters, learners }));
  }

  /** Adds a node with the given storage (a new, empty member joins with an empty ConfState). */
  addNode(id: NodeId, storage: MemoryStorage = new MemoryStorage()): ClusterNode {
    const node: ClusterNode = {
      id,
      raw: new RawNode(testConfig(id, storage, this.overrides)),
      storage,
      applied: [],
      appliedIndex: 0,
      confState: storage.initialState().confState,
      readStates: [],
      refusedConfChanges: 0,
    };
    this.nodes.set(id, node);
    return node;
  }

  /** Restarts a node from its storage (a crash loses only what was not persisted). */
  restart(id: NodeId): void {
    const old = this.node(id);
    const raw = new RawNode(testConfig(id, old.storage, { ...this.overrides, applied: old.appliedIndex }));
    this.nodes.set(id, { ...old, raw });
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
  }

  node(id: NodeId): ClusterNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  leader(): ClusterNode | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.raw.status().softState.role === 'leader');
    // The leader of the highest term (a partitioned stale leader may still think it leads).
    leaders.sort((a, b) => b.raw.status().hardState.term - a.raw.status().hardState.term);
    return leaders[0];
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  /** Cuts every link between the two groups. */
  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut.add(`${x}->${y}`);
        this.cut.add(`${y}->${x}`);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Runs every node's Ready loop and delivers messages until nothing moves (bounded). */
  settle(maxRounds = 200): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of [...this.nodes.keys()].sort((a, b) => a - b)) {
        const node = this.nodes.get(id)!;
        while (node.raw.hasReady()) {
          this.handleReady(node, node.raw.ready());
          moved = true;
        }
      }
      if (this.queue.length > 0) {
        moved = true;
        const batch = this.queue;
        this.queue = [];
        for (const m of batch) this.deliver(m);
      }
      if (!moved) return;
    }
    throw new Error('cluster did not settle');
  }

  private handleReady(node: ClusterNode, rd: Ready): void {
    // 1. persist
    if (rd.snapshot !== undefined) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState !== undefined) node.storage.setHardState(rd.hardState);
    // 2. send
    for (const m of rd.messages) {
      this.sent.push(m);
      this.queue.push(m);
    }
    // 3. apply
    if (rd.snapshot !== undefined) {
      node.applied = JSON.parse(text.decode(rd.snapshot.data)) as string[];
      node.appliedIndex = rd.snapshot.metadata.index;
      node.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) {
      if (e.type === 'confChange') {
        try {
          node.confState = node.raw.applyConfChange(decodeConfChange(e.data));
        } catch (err) {
          if (!(err instanceof ConfChangeError)) throw err;
          node.refusedConfChanges++;
        }
      } else if (e.data.length > 0) {
        node.applied.push(text.decode(e.data));
      }
      node.appliedIndex = e.index;
    }
    node.readStates.push(...rd.readStates);
    node.raw.advance(rd);
  }

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    const linkCut = this.cut.has(`${m.from}->${m.to}`) || (this.lossRate > 0 && this.lossPrng.intBelow(1000) < this.lossRate * 1000);
    if (to === undefined || linkCut) {
      if (m.type === 'MsgSnap') this.nodes.get(m.from)?.raw.reportSnapshot(m.to, false);
      return;
    }
    to.raw.step(m);
    if (m.type === 'MsgSnap') this.nodes.get(m.from)?.raw.reportSnapshot(m.to, true);
  }

  /** Ticks every node (or the given ones) `n` times, settling after each tick. */
  tick(n = 1, ids: NodeId[] = [...this.nodes.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) this.node(id).raw.tick();
      this.settle();
    }
  }

  /** Ticks until some node is leader, at most `max` ticks. */
  elect(max = 100): ClusterNode {
    for (let i = 0; i < max; i++) {
      const l = this.leader();
      if (l !== undefined && this.quorumFollows(l)) return l;
      this.tick();
    }
    throw new Error('no leader elected');
  }

  private quorumFollows(l: ClusterNode): boolean {
    const term = l.raw.status().hardState.term;
    const voters = l.raw.status().confState.voters;
    const following = voters.filter((id) => {
      const s = this.nodes.get(id)?.raw.status();
      return s !== undefined && s.hardState.term === term && s.softState.leader === l.id;
    });
    return following.length > voters.length / 2;
  }

  propose(id: NodeId, payload: string): void {
    this.node(id).raw.propose(bytes.encode(payload));
    this.settle();
  }

  /** Snapshots node `id`'s state machine at its applied index and compacts its log up to there. */
  compact(id: NodeId): void {
    const n = this.node(id);
    n.storage.createSnapshot(n.appliedIndex, n.confState, bytes.encode(JSON.stringify(n.applied)));
    n.storage.compact(n.appliedIndex);
  }
}

export function payload(s: string): Uint8Array {
  return bytes.encode(s);
}
