/**
 * Network faults for chaos tests, injected into a RaftTransport built with `faults: true`: dropped
 * traffic to or from given peers (a partition, possibly one-way) and delayed traffic to them. A
 * transport built without it holds no NetworkFaults and pays nothing for the feature.
 */
import type { NodeId } from '@shoal/raft';

/** `outbound`: what this node sends to the peer is lost; `inbound`: what it receives from the peer. */
export type PartitionDirection = 'outbound' | 'inbound' | 'both';

export class NetworkFaults {
  readonly #droppedTo = new Set<NodeId>();
  readonly #droppedFrom = new Set<NodeId>();
  readonly #delayMsTo = new Map<NodeId, number>();

  /** Cuts this node off from `peer` in the given direction (both by default). */
  partition(peer: NodeId, direction: PartitionDirection = 'both'): void {
    if (direction !== 'inbound') this.#droppedTo.add(peer);
    if (direction !== 'outbound') this.#droppedFrom.add(peer);
  }

  /** Delays every batch and snapshot to `peer` by `ms` (0 removes the delay); order is kept. */
  delay(peer: NodeId, ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`delay must be a non-negative number of milliseconds, got ${ms}`);
    if (ms === 0) this.#delayMsTo.delete(peer);
    else this.#delayMsTo.set(peer, ms);
  }

  /** Removes every fault concerning `peer`, or every fault when no peer is given. */
  heal(peer?: NodeId): void {
    if (peer === undefined) {
      this.#droppedTo.clear();
      this.#droppedFrom.clear();
      this.#delayMsTo.clear();
      return;
    }
    this.#droppedTo.delete(peer);
    this.#droppedFrom.delete(peer);
    this.#delayMsTo.delete(peer);
  }

  dropsTo(peer: NodeId): boolean {
    return this.#droppedTo.has(peer);
  }

  dropsFrom(peer: NodeId): boolean {
    return this.#droppedFrom.has(peer);
  }

  /** Peers this node's traffic to is dropped, ascending. */
  droppedTo(): NodeId[] {
    return [...this.#droppedTo].sort((a, b) => a - b);
  }

  /** Peers whose traffic to this node is dropped, ascending. */
  droppedFrom(): NodeId[] {
    return [...this.#droppedFrom].sort((a, b) => a - b);
  }

  delayMsTo(peer: NodeId): number {
    return this.#delayMsTo.get(peer) ?? 0;
  }
}
