/**
 * The router's client of the meta group: calls go to the meta leader, found by following NotLeader
 * hints over the configured meta addresses (any peer may answer with the leader's address), and a
 * WatchPartitionMap stream keeps the ClusterView current, re-established with bounded backoff.
 */
import { partitionMapResponseFromWire, type ClientOf, type MetaService } from '@shoal/proto';
import type { ChannelPool } from './channels.ts';
import type { ClusterView } from './cluster-view.ts';
import type { ClusterCounters, ClusterLogger } from './metrics.ts';
import { internalError } from '@shoal/model';
import { ambiguousWrite, backoffDelay, classifyFailure, describeFailure, RetryBudget, serviceUnavailable, sleep, type RetryPolicy } from './retry.ts';

type MetaClientOf = ClientOf<typeof MetaService>;

/** Whether a failed call may be sent again: reads always, changes only when provably not received. */
export type MetaCallKind = 'read' | 'change';

/** Backoff of the watch stream's re-establishment: fast at first, then at most every 2 s. */
const WATCH_RETRY: RetryPolicy = { attempts: Infinity, totalMs: Infinity, baseDelayMs: 50, maxDelayMs: 2_000 };

export class MetaClient {
  readonly #addresses: readonly string[];
  readonly #channels: ChannelPool;
  readonly #policy: RetryPolicy;
  readonly #counters: ClusterCounters;
  readonly #log: ClusterLogger | undefined;
  /** Where the next call goes: the last leader heard of, else the next configured address. */
  #preferred: string;
  #next = 0;

  constructor(options: { addresses: readonly string[]; channels: ChannelPool; policy: RetryPolicy; counters: ClusterCounters; log?: ClusterLogger }) {
    if (options.addresses.length === 0) throw new RangeError('at least one meta address is required');
    this.#addresses = options.addresses;
    this.#channels = options.channels;
    this.#policy = options.policy;
    this.#counters = options.counters;
    this.#log = options.log;
    this.#preferred = options.addresses[0];
  }

  #client(): MetaClientOf {
    return this.#channels.meta(this.#preferred);
  }

  /** Moves on to the next configured address other than the one that failed or knows no leader. */
  #rotate(): void {
    const failed = this.#preferred;
    for (let step = 0; step < this.#addresses.length; step++) {
      this.#next = (this.#next + 1) % this.#addresses.length;
      this.#preferred = this.#addresses[this.#next];
      if (this.#preferred !== failed) return;
    }
  }

  /** Follows a NotLeader answer: true when it named a leader to go to at once. */
  #follow(leader: { address: string } | undefined): boolean {
    if (leader !== undefined && leader.address !== '' && leader.address !== this.#preferred) {
      this.#preferred = leader.address;
      return true;
    }
    this.#rotate();
    return false;
  }

  /**
   * One MetaService call at the meta leader. DynamoDB errors the meta group answers are thrown as
   * they are; after the retry bound, ServiceUnavailable; a change that failed ambiguously,
   * InternalServerError.
   */
  async call<T>(method: string, kind: MetaCallKind, invoke: (client: MetaClientOf) => Promise<T>): Promise<T> {
    const budget = new RetryBudget(this.#policy);
    let last = 'no attempt made';
    while (budget.next()) {
      this.#counters.metaRequestsTotal++;
      const address = this.#preferred;
      try {
        return await invoke(this.#client());
      } catch (error) {
        const failure = classifyFailure(error);
        switch (failure.kind) {
          case 'dynamodb':
            throw failure.error;
          case 'notLeader':
            last = `meta peer ${address} is not the leader`;
            if (this.#follow(failure.leader)) continue;
            break;
          case 'unreachable':
            last = failure.message;
            this.#rotate();
            break;
          case 'transient':
            last = failure.message;
            if (kind === 'change') throw ambiguousWrite(`meta ${method} at ${address}: ${failure.message}`);
            this.#rotate();
            break;
          default: {
            const message = `meta ${method} at ${address}: ${describeFailure(failure)}`;
            throw kind === 'change' ? ambiguousWrite(message) : internalError(message);
          }
        }
        this.#log?.debug('meta call failed, retrying', { method, address, reason: last, attempt: budget.attempts });
      }
      await budget.pause();
    }
    this.#counters.exhaustedRetriesTotal++;
    throw serviceUnavailable(`The meta group did not answer ${method} after ${budget.attempts} attempts: ${last}`);
  }

  /** Fetches the map if it changed since the view's version; resolves once the view holds it. */
  async refresh(view: ClusterView): Promise<void> {
    this.#counters.mapRefreshesTotal++;
    const answer = await this.call('GetPartitionMap', 'read', (client) => client.getPartitionMap({ knownVersion: BigInt(view.version) }));
    view.apply(partitionMapResponseFromWire(answer));
  }

  /**
   * Keeps `view` current from a WatchPartitionMap stream until `signal` aborts: a broken stream is
   * opened again at the leader (or the next peer) after a growing delay, reset by every message.
   */
  async watch(view: ClusterView, signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const address = this.#preferred;
      try {
        this.#counters.watchStreamsTotal++;
        for await (const message of this.#client().watchPartitionMap({ knownVersion: BigInt(view.version) }, { signal })) {
          failures = 0;
          view.apply(partitionMapResponseFromWire(message));
        }
        // The server ended the stream (shutting down): open it again, elsewhere if need be.
        this.#rotate();
      } catch (error) {
        if (signal.aborted) return;
        const failure = classifyFailure(error);
        if (failure.kind === 'notLeader') this.#follow(failure.leader);
        else this.#rotate();
        this.#log?.debug('partition map watch broke, reopening', { address, reason: describeFailure(failure) });
      }
      await sleep(backoffDelay(WATCH_RETRY, ++failures), signal);
    }
  }
}
