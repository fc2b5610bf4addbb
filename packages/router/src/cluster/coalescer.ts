/**
 * Coalescing of single-item requests: requests for the same partition (same node, partition and
 * epoch, and for reads the same consistency) made within one event-loop turn go to the node as ONE
 * call (WriteMany / GetMany), which the node serves as one Raft entry (writes) or after one ReadIndex
 * (reads). A lone request goes as it always did (Write / Get).
 *
 * With `maxInFlight`, a group has at most that many calls out at once: requests made while they are
 * out wait, and go together once one is answered (writes: bigger Raft entries under load, and no
 * more calls than the leader can take in).
 *
 * Each request keeps its own fate: the node answers one result or error per request, and a failure
 * of the whole call (a redirect before anything was proposed, a lost connection, a deadline) fails
 * every request in it with that same error. The caller's retry loop (partition-client.ts) then
 * decides for each request alone, by the rules of a single request: every write of a call refused
 * before proposing (NotLeader, StaleEpoch...) is provably unproposed and is sent again, possibly in
 * another call; every write of a call that failed ambiguously is ambiguous.
 */
import { RpcError, type CallOptions, type RoutedTo } from '@shoal/proto';

/** How many requests one call carries at most (more in one turn go as several calls). */
export const MAX_COALESCED = 128;

/** Calls made and requests they carried, for tests and metrics. */
export interface CoalescerStats {
  /** Calls carrying several requests (WriteMany / GetMany). */
  coalescedCalls: number;
  /** Requests sent in those calls. */
  coalescedRequests: number;
  /** Requests sent alone. */
  singleCalls: number;
}

interface Pending<Request, Result> {
  request: Request;
  options: CallOptions;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

interface Group<Rpc, Request, Result> {
  rpc: Rpc;
  target: RoutedTo;
  key: string;
  pending: Array<Pending<Request, Result>>;
  /** Calls of this group sent and not yet answered. */
  inFlight: number;
}

export interface CoalescerCalls<Rpc, Request, Result> {
  /** One request alone (the plain RPC). */
  one(rpc: Rpc, target: RoutedTo, request: Request, options: CallOptions): Promise<Result>;
  /** Several requests in one call: one result, or the RpcError of that request alone, each in order. */
  many(rpc: Rpc, target: RoutedTo, requests: Request[], options: CallOptions): Promise<Array<Result | RpcError>>;
}

export interface CoalescerOptions {
  /**
   * Calls of one group (node, partition, epoch, kind) in flight at once; requests made meanwhile wait
   * for one of them to be answered and then go together. Unbounded when absent: each turn's requests
   * go at the end of the turn.
   */
  maxInFlight?: number;
}

export class RequestCoalescer<Rpc extends object, Request, Result> {
  readonly stats: CoalescerStats = { coalescedCalls: 0, coalescedRequests: 0, singleCalls: 0 };
  readonly #calls: CoalescerCalls<Rpc, Request, Result>;
  readonly #maxInFlight: number;
  /** Groups with requests waiting or calls in flight, by node client, then by partition, epoch and `kind`. */
  readonly #groups = new Map<Rpc, Map<string, Group<Rpc, Request, Result>>>();
  /** Groups given requests this turn. */
  readonly #fed = new Set<Group<Rpc, Request, Result>>();
  #scheduled = false;

  constructor(calls: CoalescerCalls<Rpc, Request, Result>, options: CoalescerOptions = {}) {
    this.#calls = calls;
    this.#maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  }

  /** Groups with requests waiting or calls in flight (a group is dropped once it has neither). */
  get activeGroups(): number {
    let count = 0;
    for (const byPartition of this.#groups.values()) count += byPartition.size;
    return count;
  }

  /** Sends `request` with the others of this turn for the same node, partition, epoch and `kind`. */
  submit(rpc: Rpc, target: RoutedTo, request: Request, options: CallOptions, kind = ''): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      let byPartition = this.#groups.get(rpc);
      if (byPartition === undefined) {
        byPartition = new Map();
        this.#groups.set(rpc, byPartition);
      }
      const key = `${target.partitionId}/${target.epoch}/${kind}`;
      let group = byPartition.get(key);
      if (group === undefined) {
        group = { rpc, target, key, pending: [], inFlight: 0 };
        byPartition.set(key, group);
      }
      group.pending.push({ request, options, resolve, reject });
      this.#fed.add(group);
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the I/O callbacks of this turn: every request parsed in it joins its group.
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const fed = [...this.#fed];
    this.#fed.clear();
    for (const group of fed) this.#drain(group);
  }

  /** Sends what waits in a group, as far as its calls in flight allow; forgets a group with nothing left. */
  #drain(group: Group<Rpc, Request, Result>): void {
    while (group.pending.length > 0 && group.inFlight < this.#maxInFlight) {
      const batch = group.pending.splice(0, MAX_COALESCED);
      group.inFlight++;
      this.#send(group, batch).finally(() => {
        group.inFlight--;
        this.#drain(group);
      });
    }
    if (group.pending.length === 0 && group.inFlight === 0) {
      const byPartition = this.#groups.get(group.rpc);
      if (byPartition?.get(group.key) === group) byPartition.delete(group.key);
      if (byPartition?.size === 0) this.#groups.delete(group.rpc);
    }
  }

  /** One call for `pending`; settles once every request of it is settled. */
  #send({ rpc, target }: Group<Rpc, Request, Result>, pending: Array<Pending<Request, Result>>): Promise<void> {
    const [only] = pending;
    if (pending.length === 1 && only !== undefined) {
      this.stats.singleCalls++;
      return this.#calls.one(rpc, target, only.request, only.options).then(only.resolve, only.reject);
    }
    this.stats.coalescedCalls++;
    this.stats.coalescedRequests += pending.length;
    // One deadline for the call: every request of a client asks for the same (its rpcTimeoutMs).
    return this.#calls.many(rpc, target, pending.map((entry) => entry.request), pending[0]?.options ?? {}).then(
      (results) =>
        pending.forEach((entry, position) => {
          const result = results[position] as Result | RpcError;
          if (result instanceof RpcError) entry.reject(result);
          else entry.resolve(result);
        }),
      (error: unknown) => {
        for (const entry of pending) entry.reject(error);
      },
    );
  }
}
