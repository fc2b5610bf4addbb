/**
 * The leader's view of one follower's log: how far it matches (`match`), what to send next
 * (`next`), and how to send:
 * - probe: one MsgApp at a time until the follower's position is known;
 * - replicate: optimistic pipelining, bounded by the inflights window;
 * - snapshot: a snapshot is on its way; nothing else is sent until it is reported.
 */
import { Inflights } from './inflights.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match: number;
  next: number;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The leader's tick count when it last heard from this member in its term (for the lease). */
  lastResponseTick = -Infinity;
  /** In probe state: a probe is outstanding, wait for its answer (or a heartbeat response). */
  probeSent = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(match: number, next: number, inflights: Inflights, isLearner: boolean) {
    this.match = match;
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  /** A copy sharing the inflights window, for building a new configuration from this one. */
  shallowCopy(): Progress {
    const copy = new Progress(this.match, this.next, this.inflights, this.isLearner);
    copy.state = this.state;
    copy.pendingSnapshot = this.pendingSnapshot;
    copy.recentActive = this.recentActive;
    copy.lastResponseTick = this.lastResponseTick;
    copy.probeSent = this.probeSent;
    return copy;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, the follower has at least the snapshot: probe right after it.
    if (this.state === 'snapshot') {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records that a MsgApp with `entries` entries (of `bytes` payload) was sent. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** The follower acknowledged `n`; false when that is old news. */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    this.next = Math.max(this.next, n + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * The follower rejected a MsgApp at index `rejected`, hinting that its log may match up to
   * `matchHint`. Returns false when the rejection is stale (an answer to an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending MsgApp to this follower is throttled right now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
