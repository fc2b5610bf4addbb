/**
 * Coalescing of single-item requests: requests for the same partition (same node, partition and
 * epoch, and for reads the same consistency) made within one event-loop turn go to the node as ONE
 * call (WriteMany / GetMany), which the node serves as one Raft entry (writes) or after one ReadIndex
 * (reads). A lone request goes as it always did (Write / Get).
 *
 * With `maxInFlight`, a group has at most that many calls out at once: requests made while they are
 * out wait (are held), and go together once one is answered (writes: bigger Raft entries under load,
 * and no more calls than the leader can take in). A held request is bounded like a sent one:
 * - its deadline (`timeoutMs`) runs from its submission: held until MIN_HELD_SEND_MS or less is
 *   left of it, it fails with RequestNotSent, and once sent, its call gets only what is left of it;
 * - when a call of its group fails (the node did not serve it: a redirect, a lost connection, a
 *   deadline), it fails with RequestNotSent carrying that error: the node is not serving the group;
 * - a group holds fewer than MAX_COALESCED: a full call's worth goes at once, past `maxInFlight`.
 *   Holding more would gain nothing (the call is as big as it gets) and only make writes wait a round
 *   more each; refusing them instead would bounce writes off a busy but healthy leader.
 * RequestNotSent proves the request was not sent, so a write failing with it may be sent again
 * (retry.ts classifyFailure, contracts #10).
 *
 * Each request keeps its own fate: the node answers one result or error per request, and a failure
 * of the whole call (a redirect before anything was proposed, a lost connection, a deadline) fails
 * every request in it with that same error. The caller's retry loop (partition-client.ts) then
 * decides for each request alone, by the rules of a single request: every write of a call refused
 * before proposing (NotLeader, StaleEpoch...) is provably unproposed and is sent again, possibly in
 * another call; every write of a call that failed ambiguously is ambiguous.
 */
import type { CallOptions, RoutedTo } from '@shoal/proto';

/** How many requests one call carries at most (more in one turn go as several calls). */
export const MAX_COALESCED = 128;

/**
 * A held request is given back unsent once no more than this is left of its deadline: sent with a few
 * milliseconds, it would likely time out after leaving, and a write's fate would then be unknown.
 */
export const MIN_HELD_SEND_MS = 50;

/**
 * A request given back without having been sent: held past its deadline behind its group's calls,
 * or while a call of its group failed (`cause`, that call's error).
 */
export class RequestNotSent extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RequestNotSent';
  }
}

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
  /** When its deadline passes, on the coalescer's clock (infinite without `timeoutMs`). */
  expiresAt: number;
  /** Held behind its group's calls at least once (so given back when too little time is left to send it). */
  held: boolean;
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
  /** Fails held requests whose deadline passed (at `expiryAt`); set while requests are held. */
  expiry: ReturnType<typeof setTimeout> | undefined;
  expiryAt: number;
}

export interface CoalescerCalls<Rpc, Request, Result> {
  /** One request alone (the plain RPC). */
  one(rpc: Rpc, target: RoutedTo, request: Request, options: CallOptions): Promise<Result>;
  /**
   * Several requests in one call: one result, or the error of that request alone (an RpcError, or the
   * failure of the part of the call that carried it when it went as several), each in order.
   */
  many(rpc: Rpc, target: RoutedTo, requests: Request[], options: CallOptions): Promise<Array<Result | Error>>;
}

export interface CoalescerOptions {
  /**
   * Calls of one group (node, partition, epoch, kind) in flight at once; requests made meanwhile wait
   * for one of them to be answered and then go together. Unbounded when absent: each turn's requests
   * go at the end of the turn.
   */
  maxInFlight?: number;
  /**
   * Whether an error a call failed with is a failure of the call (the node did not serve it), which
   * gives back the group's held requests, rather than its lone request's own answer (a DynamoDB
   * error). Default: every error is.
   */
  isCallFailure?: (error: unknown) => boolean;
  /** Milliseconds, monotonic (default performance.now): deadlines of held requests. */
  clock?: () => number;
}

export class RequestCoalescer<Rpc extends object, Request, Result> {
  readonly stats: CoalescerStats = { coalescedCalls: 0, coalescedRequests: 0, singleCalls: 0 };
  readonly #calls: CoalescerCalls<Rpc, Request, Result>;
  readonly #maxInFlight: number;
  readonly #isCallFailure: (error: unknown) => boolean;
  readonly #clock: () => number;
  /** Groups with requests waiting or calls in flight, by node client, then by partition, epoch and `kind`. */
  readonly #groups = new Map<Rpc, Map<string, Group<Rpc, Request, Result>>>();
  /** Groups given requests this turn. */
  readonly #fed = new Set<Group<Rpc, Request, Result>>();
  #scheduled = false;

  constructor(calls: CoalescerCalls<Rpc, Request, Result>, options: CoalescerOptions = {}) {
    this.#calls = calls;
    this.#maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
    this.#isCallFailure = options.isCallFailure ?? (() => true);
    this.#clock = options.clock ?? (() => performance.now());
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
        group = { rpc, target, key, pending: [], inFlight: 0, expiry: undefined, expiryAt: Number.POSITIVE_INFINITY };
        byPartition.set(key, group);
      }
      const expiresAt = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : this.#clock() + options.timeoutMs;
      group.pending.push({ request, options, expiresAt, held: false, resolve, reject });
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

  /**
   * Sends what waits in a group, as far as its calls in flight allow (a full call's worth always);
   * watches the deadlines of what stays held; forgets a group with nothing left.
   */
  #drain(group: Group<Rpc, Request, Result>): void {
    this.#giveBackExpired(group);
    while (group.pending.length > 0 && (group.inFlight < this.#maxInFlight || group.pending.length >= MAX_COALESCED)) {
      const batch = group.pending.splice(0, MAX_COALESCED);
      group.inFlight++;
      this.#send(group, batch).finally(() => {
        group.inFlight--;
        this.#drain(group);
      });
    }
    if (group.pending.length > 0) {
      // Held: a timer at the earliest give-back time among them fails it (and any other due by then).
      // One armed earlier is kept: it only drains again, and arms the next.
      let earliest = Number.POSITIVE_INFINITY;
      for (const entry of group.pending) {
        entry.held = true;
        earliest = Math.min(earliest, entry.expiresAt - MIN_HELD_SEND_MS);
      }
      if (earliest < group.expiryAt) {
        clearTimeout(group.expiry);
        group.expiryAt = earliest;
        group.expiry = setTimeout(() => {
          group.expiry = undefined;
          group.expiryAt = Number.POSITIVE_INFINITY;
          this.#drain(group);
        }, Math.max(0, earliest - this.#clock()));
      }
      return;
    }
    if (group.expiry !== undefined) {
      clearTimeout(group.expiry);
      group.expiry = undefined;
      group.expiryAt = Number.POSITIVE_INFINITY;
    }
    if (group.inFlight === 0) {
      const byPartition = this.#groups.get(group.rpc);
      if (byPartition?.get(group.key) === group) byPartition.delete(group.key);
      if (byPartition?.size === 0) this.#groups.delete(group.rpc);
    }
  }

  /** Fails the requests whose deadline passed, and the held ones with too little of it left to be sent. */
  #giveBackExpired(group: Group<Rpc, Request, Result>): void {
    const now = this.#clock();
    const due = (entry: Pending<Request, Result>): boolean => entry.expiresAt <= now || (entry.held && entry.expiresAt - now <= MIN_HELD_SEND_MS);
    if (!group.pending.some(due)) return;
    const expired = new RequestNotSent(`not sent: held to its deadline while ${group.inFlight} earlier call(s) to the node were unanswered`);
    group.pending = group.pending.filter((entry) => {
      if (!due(entry)) return true;
      entry.reject(expired);
      return false;
    });
  }

  /** A call of the group failed (the node did not serve it): what it holds is given back unsent. */
  #callFailed(group: Group<Rpc, Request, Result>, error: unknown): void {
    if (group.pending.length === 0 || !this.#isCallFailure(error)) return;
    const notSent = new RequestNotSent(`not sent: an earlier call to the node failed (${error instanceof Error ? error.message : String(error)})`, error);
    for (const entry of group.pending.splice(0)) entry.reject(notSent);
  }

  /**
   * One call for `pending`; settles once every request of it is settled. Its deadline is what is
   * left of its requests' earliest one (they counted from submission while held).
   */
  #send(group: Group<Rpc, Request, Result>, pending: Array<Pending<Request, Result>>): Promise<void> {
    const { rpc, target } = group;
    const [first] = pending;
    if (first === undefined) return Promise.resolve();
    let expiresAt = first.expiresAt;
    for (const entry of pending) expiresAt = Math.min(expiresAt, entry.expiresAt);
    const options = expiresAt === Number.POSITIVE_INFINITY ? first.options : { ...first.options, timeoutMs: Math.max(1, expiresAt - this.#clock()) };
    if (pending.length === 1) {
      this.stats.singleCalls++;
      return this.#calls.one(rpc, target, first.request, options).then(first.resolve, (error: unknown) => {
        first.reject(error);
        this.#callFailed(group, error);
      });
    }
    this.stats.coalescedCalls++;
    this.stats.coalescedRequests += pending.length;
    return this.#calls.many(rpc, target, pending.map((entry) => entry.request), options).then(
      (results) =>
        pending.forEach((entry, position) => {
          const result = results[position] as Result | Error;
          if (result instanceof Error) entry.reject(result);
          else entry.resolve(result);
        }),
      (error: unknown) => {
        for (const entry of pending) entry.reject(error);
        this.#callFailed(group, error);
      },
    );
  }
}
