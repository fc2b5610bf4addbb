import type { ConfState, Entry, HardState, Message, NodeId } from '@shoal/raft';

/** One broken safety property, with enough context to start reading the trace. */
export interface Violation {
  time: number;
  invariant: string;
  detail: string;
}

/** What the checkers may read of a node's persisted log. */
export interface LogView {
  firstIndex(): number;
  lastIndex(): number;
  /** Term at `index`, or undefined when compacted away or past the end. */
  termAt(index: number): number | undefined;
  entryAt(index: number): Entry | undefined;
}

interface RecordedEntry {
  payload: string;
  prevTerm: number | undefined;
}

interface CommittedEntry {
  term: number;
  payload: string;
  /** Who established that it was committed (for the report). */
  source: string;
}

/**
 * Raft's safety properties, checked incrementally as the hosts persist and apply, so a violation is
 * reported at the event that caused it:
 * - election safety: at most one leader per term;
 * - vote safety: a node's persisted vote never changes within a term, its term never decreases;
 * - log matching: one (index, term) names one entry, whose predecessor has one term, so equal
 *   (index, term) pairs imply identical prefixes (by induction over the recorded predecessors);
 * - leader completeness: a new leader's log holds every entry known committed;
 * - state machine safety: every node applies the same entry at each index, in index order, and
 *   equal applied indexes mean equal state and equal membership;
 * - durability: a committed entry is never replaced, and a restarted node's persisted log still
 *   matches every committed entry up to its persisted commit index;
 * - persist before acknowledging: no message leaves a node with a term, vote or log position
 *   that is not yet on its disk, and an acknowledged entry survives a restart.
 */
export class InvariantChecker {
  readonly violations: Violation[] = [];
  private readonly clock: () => number;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entries = new Map<string, RecordedEntry>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly hardStates = new Map<NodeId, HardState>();
  private readonly applied = new Map<NodeId, number>();
  private readonly stateAtIndex = new Map<number, { state: string; node: NodeId }>();
  private readonly confAtIndex = new Map<number, { conf: string; node: NodeId }>();
  /** The last entry each node acknowledged to a leader, while no truncation has superseded it. */
  private readonly acknowledged = new Map<NodeId, { index: number; term: number }>();
  private maxCommittedIndex = 0;

  constructor(clock: () => number) {
    this.clock = clock;
  }

  get ok(): boolean {
    return this.violations.length === 0;
  }

  /** The highest index known committed so far. */
  get committedIndex(): number {
    return this.maxCommittedIndex;
  }

  onHardStatePersisted(node: NodeId, hardState: HardState, log: LogView): void {
    const previous = this.hardStates.get(node);
    if (previous) {
      if (hardState.term < previous.term) {
        this.fail('term monotonic', `node ${node} persisted term ${hardState.term} after term ${previous.term}`);
      } else if (hardState.term === previous.term && previous.vote !== 0 && hardState.vote !== previous.vote) {
        this.fail('vote safety', `node ${node} changed its vote in term ${hardState.term} from ${previous.vote} to ${hardState.vote}`);
      }
      if (hardState.commit < previous.commit) {
        this.fail('commit monotonic', `node ${node} persisted commit ${hardState.commit} after ${previous.commit}`);
      }
    }
    this.hardStates.set(node, { ...hardState });
    const from = Math.max((previous?.commit ?? 0) + 1, log.firstIndex());
    for (let index = from; index <= hardState.commit; index++) {
      const entry = log.entryAt(index);
      if (entry === undefined) {
        this.fail('commit within log', `node ${node} persisted commit ${hardState.commit} but has no entry ${index} (log ${log.firstIndex()}..${log.lastIndex()})`);
        return;
      }
      this.recordCommitted(entry, `commit index of node ${node}`);
    }
  }

  /** A message is leaving `node`, whose disk holds `hardState` and `log`. */
  onSend(node: NodeId, message: Message, hardState: HardState, log: LogView): void {
    const preVote = message.type === 'MsgPreVote' || message.type === 'MsgPreVoteResp';
    if (!preVote && message.term > hardState.term) {
      this.fail('persist before send', `node ${node} sent ${message.type} of term ${message.term} with term ${hardState.term} on disk`);
    }
    if (message.type === 'MsgVoteResp' && !message.reject && (hardState.term !== message.term || hardState.vote !== message.to)) {
      this.fail('persist before send', `node ${node} granted its vote in term ${message.term} to ${message.to} with ${JSON.stringify(hardState)} on disk`);
    }
    if (message.type === 'MsgAppResp' && !message.reject) {
      const term = log.termAt(message.index);
      if (message.index > log.lastIndex() || (term === undefined && message.index >= log.firstIndex())) {
        this.fail('persist before send', `node ${node} acknowledged index ${message.index} with its disk log at ${log.firstIndex()}..${log.lastIndex()}`);
      } else if (term !== undefined) {
        this.acknowledged.set(node, { index: message.index, term });
      }
    }
  }

  /** After the host appended `appended` to its log (which may have truncated a conflicting tail). */
  onEntriesPersisted(node: NodeId, appended: readonly Entry[], log: LogView): void {
    const acknowledged = this.acknowledged.get(node);
    if (acknowledged && appended.length > 0 && appended[0].index <= acknowledged.index) this.acknowledged.delete(node);
    for (const entry of appended) {
      const key = `${entry.index}/${entry.term}`;
      const payload = payloadOf(entry);
      const prevTerm = log.termAt(entry.index - 1);
      const known = this.entries.get(key);
      if (known === undefined) {
        this.entries.set(key, { payload, prevTerm });
        continue;
      }
      if (known.payload !== payload) {
        this.fail('log matching', `node ${node} persisted a different entry at index ${entry.index} term ${entry.term}: ${describe(payload)} vs ${describe(known.payload)}`);
      } else if (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm) {
        this.fail('log matching', `node ${node} has entry ${entry.index}/${entry.term} after term ${prevTerm}, elsewhere after term ${known.prevTerm}`);
      } else if (known.prevTerm === undefined && prevTerm !== undefined) {
        known.prevTerm = prevTerm;
      }
    }
    const committed = this.committed;
    for (const entry of appended) {
      const expected = committed.get(entry.index);
      if (expected && expected.term !== entry.term) {
        const hardState = this.hardStates.get(node);
        // A lagging follower may hold a stale uncommitted entry; it only matters once it counts as committed there.
        if (hardState && hardState.commit >= entry.index) {
          this.fail('durability', `node ${node} replaced committed entry ${entry.index} (term ${expected.term}) with term ${entry.term}`);
        }
      }
    }
  }

  /** The node just became leader of `term`, with its log persisted. */
  onLeader(node: NodeId, term: number, log: LogView): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== node) {
      this.fail('election safety', `nodes ${other} and ${node} both leader in term ${term}`);
    }
    this.leaderOfTerm.set(term, node);
    const first = log.firstIndex();
    for (let index = first; index <= this.maxCommittedIndex; index++) {
      const expected = this.committed.get(index);
      if (expected === undefined || expected.term >= term) continue;
      const actual = log.termAt(index);
      if (actual !== expected.term) {
        this.fail('leader completeness', `node ${node} leads term ${term} but its entry ${index} has term ${actual ?? 'none'}, committed term ${expected.term} (${expected.source})`);
        return;
      }
    }
  }

  onApply(node: NodeId, entry: Entry): void {
    const last = this.applied.get(node) ?? 0;
    if (entry.index !== last + 1) {
      this.fail('apply order', `node ${node} applied index ${entry.index} after ${last}`);
    }
    this.applied.set(node, entry.index);
    this.recordCommitted(entry, `applied by node ${node}`);
  }

  /** The node's state machine now stands at `index` (restored from a snapshot, or restarted and replaying). */
  onStateRestored(node: NodeId, index: number): void {
    this.applied.set(node, index);
  }

  /** The state machine's serialized state after applying `index`; equal indexes must mean equal states. */
  onStateAt(node: NodeId, index: number, state: Uint8Array): void {
    const text = Buffer.from(state.buffer, state.byteOffset, state.byteLength).toString('latin1');
    const known = this.stateAtIndex.get(index);
    if (known === undefined) {
      this.stateAtIndex.set(index, { state: text, node });
    } else if (known.state !== text) {
      this.fail('state machine safety', `nodes ${known.node} and ${node} hold different states at applied index ${index}`);
    }
  }

  /** The membership a node holds after applying the conf change entry at `index`. */
  onConfApplied(node: NodeId, index: number, conf: ConfState): void {
    const text = JSON.stringify([conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext].map((ids) => [...ids].sort((a, b) => a - b)));
    const known = this.confAtIndex.get(index);
    if (known === undefined) {
      this.confAtIndex.set(index, { conf: text, node });
    } else if (known.conf !== text) {
      this.fail('membership agreement', `after the conf change at ${index} node ${known.node} has ${known.conf}, node ${node} has ${text}`);
    }
  }

  /** The node's disk now starts from a snapshot it received. */
  onSnapshotPersisted(node: NodeId): void {
    this.acknowledged.delete(node);
  }

  /**
   * A restarted node's disk must still hold its hard state, the last entry it acknowledged, and
   * every committed entry up to its persisted commit index.
   */
  onRestart(node: NodeId, hardState: HardState, log: LogView): void {
    const acknowledged = this.acknowledged.get(node);
    if (acknowledged && acknowledged.index >= log.firstIndex() - 1 && log.termAt(acknowledged.index) !== acknowledged.term) {
      this.fail('durability', `node ${node} restarted without entry ${acknowledged.index} (term ${acknowledged.term}) that it had acknowledged`);
    }
    const before = this.hardStates.get(node);
    if (before && (hardState.term < before.term || hardState.commit < before.commit || (hardState.term === before.term && hardState.vote !== before.vote))) {
      this.fail('durability', `node ${node} restarted with hard state ${JSON.stringify(hardState)}, had persisted ${JSON.stringify(before)}`);
    }
    for (let index = log.firstIndex(); index <= hardState.commit; index++) {
      const expected = this.committed.get(index);
      if (expected === undefined) continue;
      const entry = log.entryAt(index);
      if (entry === undefined || entry.term !== expected.term || payloadOf(entry) !== expected.payload) {
        this.fail('durability', `node ${node} restarted without committed entry ${index} (term ${expected.term})`);
        return;
      }
    }
  }

  fail(invariant: string, detail: string): void {
    this.violations.push({ time: this.clock(), invariant, detail });
  }

  private recordCommitted(entry: Entry, source: string): void {
    const payload = payloadOf(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, payload, source });
      if (entry.index > this.maxCommittedIndex) this.maxCommittedIndex = entry.index;
    } else if (known.term !== entry.term || known.payload !== payload) {
      this.fail('state machine safety', `${source}: entry ${entry.index} term ${entry.term} ${describe(payload)}, but committed was term ${known.term} ${describe(known.payload)} (${known.source})`);
    }
  }
}

/** Entries travel between nodes as shared objects, so their payload strings are worth caching. */
const payloads = new WeakMap<Entry, string>();

/** An entry's identity apart from its position: its type and bytes. */
export function payloadOf(entry: Entry): string {
  let payload = payloads.get(entry);
  if (payload === undefined) {
    const data = entry.data;
    payload = `${entry.type}:${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1')}`;
    payloads.set(entry, payload);
  }
  return payload;
}

function describe(payload: string): string {
  return payload.length > 80 ? `${payload.slice(0, 77)}...` : payload;
}
