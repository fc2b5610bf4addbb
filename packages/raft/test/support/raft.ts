/** Helpers for tests that drive the Raft state machine directly, message by message. */
import { makeMessage, Raft } from '../../src/raft.ts';
import { MemoryStorage } from '../../src/storage.ts';
import type { Config, Entry, EntryType, HardState, Message, MessageType, NodeId } from '../../src/types.ts';
import { testConfig } from './cluster.ts';

export interface RaftOptions extends Partial<Omit<Config, 'id' | 'storage'>> {
  storage?: MemoryStorage;
  learners?: NodeId[];
}

/** A Raft for `id` in a group of `voters`, paper defaults: no pre-vote, no check-quorum. */
export function newRaft(id: NodeId, voters: NodeId[], options: RaftOptions = {}): Raft {
  const { storage, learners, ...config } = options;
  return new Raft(
    testConfig(id, storage ?? new MemoryStorage({ voters, learners: learners ?? [] }), {
      maxSizePerMsg: Infinity,
      checkQuorum: false,
      preVote: false,
      seed: id,
      ...config,
    }),
  );
}

export const msg = makeMessage;

/** Proposes one normal entry holding `data`, as a local MsgProp; the refusal reason if refused. */
export function propose(r: Raft, data: string): string | undefined {
  return r.step(msg('MsgProp', r.id, r.id, { entries: [entry(0, 0, data)] }));
}

const enc = new TextEncoder();

export function entry(term: number, index: number, data = '', type: EntryType = 'normal'): Entry {
  return { term, index, type, data: enc.encode(data) };
}

/** Entries at indexes 1.. with the given terms. */
export function entriesOfTerms(...terms: number[]): Entry[] {
  return terms.map((t, i) => entry(t, i + 1));
}

/** A storage holding `entries` (from index 1) and `hardState`, for group `voters`. */
export function storageWith(voters: NodeId[], entries: Entry[], hardState?: HardState): MemoryStorage {
  const s = new MemoryStorage({ voters });
  s.append(entries);
  if (hardState !== undefined) s.setHardState(hardState);
  return s;
}

/** The types of `msgs`, in order. */
export function types(msgs: Message[]): MessageType[] {
  return msgs.map((m) => m.type);
}

/** Mirrors the host: persists unstable entries to `storage`, returns newly committed entries. */
export function persistAndApply(r: Raft, storage: MemoryStorage): Entry[] {
  const unstable = r.raftLog.nextUnstableEntries();
  storage.append(unstable);
  if (unstable.length > 0) r.raftLog.stableTo(unstable[unstable.length - 1].index, unstable[unstable.length - 1].term);
  const committed = r.raftLog.nextCommittedEntries();
  if (committed.length > 0) r.appliedTo(committed[committed.length - 1].index);
  return committed;
}

/**
 * A network of Raft state machines stepping each other's messages synchronously until quiet
 * (like etcd's test network). Links can be dropped; persistence is not modelled.
 */
export class RaftNetwork {
  readonly peers = new Map<NodeId, Raft>();
  private readonly dropped = new Set<string>();

  constructor(rafts: Raft[]) {
    for (const r of rafts) this.peers.set(r.id, r);
  }

  peer(id: NodeId): Raft {
    return this.peers.get(id)!;
  }

  cut(a: NodeId, b: NodeId): void {
    this.dropped.add(`${a}-${b}`);
    this.dropped.add(`${b}-${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.peers.keys()) if (other !== id) this.cut(id, other);
  }

  recover(): void {
    this.dropped.clear();
  }

  /** Steps `msgs` and every message they cause, breadth first, bounded. */
  send(...msgs: Message[]): void {
    const queue = [...msgs];
    for (let steps = 0; queue.length > 0; steps++) {
      if (steps > 100_000) throw new Error('network did not quiesce');
      const m = queue.shift()!;
      const p = this.peers.get(m.to);
      if (p === undefined || this.dropped.has(`${m.from}-${m.to}`)) continue;
      p.step(m);
      queue.push(...p.takeMessages());
    }
  }

  /** Makes `id` campaign (no pre-vote) and delivers everything. */
  campaign(id: NodeId): void {
    const r = this.peer(id);
    r.hup(r.preVote ? 'preElection' : 'election');
    this.send(...r.takeMessages());
  }

  propose(id: NodeId, data: string): void {
    const r = this.peer(id);
    r.step(msg('MsgProp', id, id, { entries: [entry(0, 0, data)] }));
    this.send(...r.takeMessages());
  }
}
