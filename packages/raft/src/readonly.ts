/**
 * Pending ReadIndex requests on the leader under the safe option: each request records the commit
 * index at arrival and waits until a quorum has acknowledged a heartbeat carrying its context,
 * which proves that no newer leader existed when the request arrived.
 */
import type { Message, NodeId, ReadOnlyOption } from './types.ts';

export interface ReadIndexStatus {
  /** The request: local (from = self or 0) or forwarded by a follower. */
  request: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

/** A map key for a request context. */
export function contextKey(context: Uint8Array): string {
  let s = '';
  for (let i = 0; i < context.length; i++) s += String.fromCharCode(context[i]);
  return s;
}

export class ReadOnly {
  readonly option: ReadOnlyOption;
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(option: ReadOnlyOption) {
    this.option = option;
  }

  /** Adds a request whose read index is `index` (the leader's commit index at arrival). */
  addRequest(index: number, request: Message, context: Uint8Array): void {
    const key = contextKey(context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { request, index, acks: new Map() });
    this.queue.push(key);
  }

  /** Records a heartbeat acknowledgement for `context`; returns the acks so far, if pending. */
  recvAck(id: NodeId, context: Uint8Array): Map<NodeId, boolean> | undefined {
    const rs = this.pending.get(contextKey(context));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * Releases the request with `context` and every request queued before it (a quorum that
   * confirmed a later heartbeat confirmed the earlier ones too).
   */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1).map((k) => this.pending.get(k)!);
    for (const k of this.queue.slice(0, at + 1)) this.pending.delete(k);
    this.queue = this.queue.slice(at + 1);
    return released;
  }

  /** The context of the newest pending request, to piggyback on heartbeats. */
  lastPendingRequestContext(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    const rs = this.pending.get(this.queue[this.queue.length - 1])!;
    return rs.request.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
