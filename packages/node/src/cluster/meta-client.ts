/**
 * A storage node's client of the meta group's MetaService. Only the meta leader answers; any other
 * meta peer answers FAILED_PRECONDITION with a NotLeader detail naming the leader it knows of
 * (contracts #4). A call follows that hint, else tries the next peer, and gives up after a bounded
 * number of attempts: the caller's loop (registration, heartbeat, watch) retries later.
 */
import { ErrorDetailSchema, MetaService, RpcError, Status, ClientPool, type CallOptions, type ClientOf } from '@shoal/proto';
import type { NodeId } from '@shoal/raft';

/** A meta group member, as given on the command line (`--meta-peers 1=host:port,...`). */
export interface MetaPeer {
  nodeId: NodeId;
  address: string;
}

export type MetaServiceClient = ClientOf<typeof MetaService>;

export interface MetaClientOptions {
  peers: readonly MetaPeer[];
  /** Each unary attempt's deadline. Default 2,000 ms. */
  callTimeoutMs?: number;
  /** Attempts of one call before it fails. Default: twice the peers, plus one. */
  maxAttempts?: number;
  /** Pause before trying again once no peer knows a leader (an election). Default 50 ms, doubling to 500. */
  retryDelayMs?: number;
}

/** Where to go after a failed attempt: the hinted leader, the next peer, or nowhere (a real error). */
type Redirect = { to: string } | { next: true } | undefined;

export class MetaClient {
  readonly #peers: readonly MetaPeer[];
  readonly #clients = new ClientPool(MetaService, {
    channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 },
  });
  readonly #callTimeoutMs: number;
  readonly #maxAttempts: number;
  readonly #retryDelayMs: number;
  /** The address believed to be the meta leader's. */
  #current: string;
  #closed = false;

  constructor(options: MetaClientOptions) {
    if (options.peers.length === 0) throw new Error('MetaClient needs at least one meta peer');
    this.#peers = options.peers;
    this.#current = options.peers[0].address;
    this.#callTimeoutMs = options.callTimeoutMs ?? 2_000;
    this.#maxAttempts = options.maxAttempts ?? 2 * options.peers.length + 1;
    this.#retryDelayMs = options.retryDelayMs ?? 50;
  }

  /** The address of the peer calls go to first (the leader, once one answered or was hinted). */
  get leaderAddress(): string {
    return this.#current;
  }

  /** Runs a unary call on the meta leader, following NotLeader hints and moving past unreachable peers. */
  async call<T>(invoke: (client: MetaServiceClient, options: CallOptions) => Promise<T>): Promise<T> {
    let lastError: unknown;
    let delayMs = this.#retryDelayMs;
    for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
      if (this.#closed) throw new RpcError(Status.CANCELLED, 'meta client closed');
      try {
        return await invoke(this.#clients.get(this.#current), { timeoutMs: this.#callTimeoutMs });
      } catch (error) {
        lastError = error;
        const redirect = this.redirect(error);
        if (redirect === undefined) throw error;
        if ('to' in redirect) continue;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(500, delayMs * 2);
      }
    }
    throw lastError;
  }

  /**
   * The leader's client for a stream the caller reads (WatchPartitionMap); when the stream fails,
   * the caller passes its error to `redirect` and opens the stream again.
   */
  leaderClient(): MetaServiceClient {
    return this.#clients.get(this.#current);
  }

  /**
   * Moves on after a failed call (the next one goes elsewhere): to the hinted leader, or to the next
   * peer when the answering peer knows no leader or could not be reached. Undefined for an error of
   * the call itself.
   */
  redirect(error: unknown): Redirect {
    if (!(error instanceof RpcError)) return undefined;
    if (error.code === Status.FAILED_PRECONDITION) {
      const detail = error.detail(ErrorDetailSchema);
      if (detail?.kind.case !== 'notLeader') return undefined;
      const address = detail.kind.value.leader?.address ?? '';
      if (address !== '' && address !== this.#current) {
        this.#current = address;
        return { to: address };
      }
      this.#current = this.#nextPeer(this.#current);
      return { next: true };
    }
    if (error.code === Status.UNAVAILABLE || error.code === Status.DEADLINE_EXCEEDED || error.code === Status.CANCELLED) {
      this.#current = this.#nextPeer(this.#current);
      return { next: true };
    }
    return undefined;
  }

  close(): void {
    this.#closed = true;
    this.#clients.close();
  }

  #nextPeer(address: string): string {
    const at = this.#peers.findIndex((peer) => peer.address === address);
    return this.#peers[(at + 1) % this.#peers.length].address;
  }

}
