/**
 * Retry rules of the cluster client: what a failed node or meta call proves, and the bounded backoff
 * between attempts. A write is retried only when the failure proves it was not proposed (contracts
 * #10); a read may be retried after any transient failure. Every loop is bounded by attempts and time.
 */
import { DynamoDbError, internalError, type PartitionDescriptor } from '@shoal/model';
import { ErrorDetailSchema, RpcError, Status, dynamoDbErrorFromRpc, partitionDescriptorFromWire } from '@shoal/proto';
import { RequestNotSent } from './coalescer.ts';

export interface RetryPolicy {
  /** Most attempts of one call, the first included. */
  attempts: number;
  /** Most time spent on one call, retries included. */
  totalMs: number;
  /** First backoff delay; it doubles up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Long enough to ride out a leader election (1-2 s) a few times over. Delays stay short (at most
 * 250 ms) so that a request waiting out an election goes again soon after the new leader is up,
 * rather than up to a second later.
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 64, totalMs: 15_000, baseDelayMs: 20, maxDelayMs: 250 };

/** The delay before retry number `retry` (1-based): exponential, with jitter so that callers spread out. */
export function backoffDelay(policy: RetryPolicy, retry: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(retry - 1, 20));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** What a failed call to a storage node or to the meta group tells the caller. */
export type CallFailure =
  /** The node does not lead the group; `leader` is the one it knows of. */
  | { kind: 'notLeader'; leader?: { id: number; address: string } }
  /** The request's epoch is stale (staleEpoch) or its key left the partition (keyOutOfRange). */
  | { kind: 'staleEpoch' | 'keyOutOfRange'; current: PartitionDescriptor }
  | { kind: 'partitionNotFound' }
  /** A DynamoDB error for the client, final. */
  | { kind: 'dynamodb'; error: DynamoDbError }
  /**
   * The request was never sent: the connection could not be established, or it was held behind the
   * node's earlier calls past its deadline or while one of them failed (RequestNotSent).
   */
  | { kind: 'unreachable'; message: string }
  /** The node's map is older than the request's epoch: refused before anything was proposed. */
  | { kind: 'nodeMapBehind'; message: string }
  /**
   * An eventual read's replica had not applied the router's own writes in time: nothing was served;
   * `appliedIndex` is what it had applied.
   */
  | { kind: 'replicaBehind'; message: string; appliedIndex: bigint }
  /** A transient failure after the request may have been received (UNAVAILABLE, a deadline...). */
  | { kind: 'transient'; message: string }
  /** Anything else: a bug on one side or the other, not worth retrying. */
  | { kind: 'broken'; message: string };

/** A failure in words, for logs and error messages. */
export function describeFailure(failure: CallFailure): string {
  switch (failure.kind) {
    case 'notLeader':
      return failure.leader === undefined ? 'not the leader, none known' : `not the leader, node ${failure.leader.id} is`;
    case 'staleEpoch':
    case 'keyOutOfRange':
      return `${failure.kind}, partition ${failure.current.id} is at epoch ${failure.current.epoch}`;
    case 'partitionNotFound':
      return 'partition not hosted there';
    case 'dynamodb':
      return `${failure.error.type}: ${failure.error.message}`;
    default:
      return failure.message;
  }
}

/** grpc-js's picker answers this when no connection could be made, before anything is sent. */
const NO_CONNECTION = 'No connection established';
/**
 * StorageNodeServer's UNAVAILABLE for a request routed at an epoch newer than the node knows, which
 * it checks before proposing (it carries no typed detail yet, so its words are the signal).
 */
const NODE_MAP_BEHIND = 'its map is behind';

const TRANSIENT_CODES = new Set<Status>([
  Status.UNAVAILABLE,
  Status.DEADLINE_EXCEEDED,
  Status.ABORTED,
  Status.CANCELLED,
  Status.UNKNOWN,
  Status.INTERNAL,
  Status.RESOURCE_EXHAUSTED,
]);

export function classifyFailure(error: unknown): CallFailure {
  if (error instanceof DynamoDbError) return { kind: 'dynamodb', error };
  if (error instanceof RequestNotSent) return notSentFailure(error);
  if (!(error instanceof RpcError)) return { kind: 'broken', message: error instanceof Error ? error.message : String(error) };
  const detail = error.detail(ErrorDetailSchema)?.kind;
  switch (detail?.case) {
    case 'notLeader': {
      const leader = detail.value.leader;
      if (leader === undefined || leader.id === 0n || leader.id > BigInt(Number.MAX_SAFE_INTEGER)) return { kind: 'notLeader' };
      return { kind: 'notLeader', leader: { id: Number(leader.id), address: leader.address } };
    }
    case 'staleEpoch':
    case 'keyOutOfRange':
      try {
        return { kind: detail.case, current: partitionDescriptorFromWire(detail.value.current) };
      } catch {
        return { kind: 'broken', message: `undecodable ${detail.case} detail: ${error.message}` };
      }
    case 'partitionNotFound':
      return { kind: 'partitionNotFound' };
    case 'replicaBehind':
      return { kind: 'replicaBehind', message: error.message, appliedIndex: detail.value.appliedIndex };
    case 'dynamodb':
      return { kind: 'dynamodb', error: dynamoDbErrorFromRpc(error) ?? internalError(error.message) };
    case undefined:
      break;
  }
  if (error.code === Status.UNAVAILABLE && error.message.includes(NO_CONNECTION)) return { kind: 'unreachable', message: error.message };
  if (error.code === Status.UNAVAILABLE && error.message.includes(NODE_MAP_BEHIND)) return { kind: 'nodeMapBehind', message: error.message };
  if (TRANSIENT_CODES.has(error.code)) return { kind: 'transient', message: `${Status[error.code]}: ${error.message}` };
  return { kind: 'broken', message: `${Status[error.code]}: ${error.message}` };
}

/**
 * A request given back unsent: a redirect the failed call before it got (NotLeader, StaleEpoch...)
 * is followed as for that call; any other cause (a deadline, a lost connection), or none (held past
 * its deadline), makes it a request to a node that could not be reached.
 */
function notSentFailure(error: RequestNotSent): CallFailure {
  const cause = error.cause === undefined ? undefined : classifyFailure(error.cause);
  if (cause === undefined || cause.kind === 'transient' || cause.kind === 'broken' || cause.kind === 'dynamodb') {
    return { kind: 'unreachable', message: error.message };
  }
  return cause;
}

/** DynamoDB's answer when the cluster could not serve a request within the retry bound: retry later. */
export function serviceUnavailable(message: string): DynamoDbError {
  return new DynamoDbError('ServiceUnavailable', message, {}, 503);
}

/**
 * DynamoDB's answer to a write whose fate is unknown (sent, then failed without proof that it was not
 * applied): clients treat InternalServerError as "maybe applied", as on DynamoDB.
 */
export function ambiguousWrite(message: string): DynamoDbError {
  return internalError(`Internal server error: the write may or may not have been applied (${message})`);
}

/** A bounded attempt loop's budget: attempts and elapsed time, both checked before each attempt. */
export class RetryBudget {
  readonly #policy: RetryPolicy;
  readonly #started = Date.now();
  #attempts = 0;
  #delays = 0;

  constructor(policy: RetryPolicy) {
    this.#policy = policy;
  }

  /** Counts an attempt; false when the budget is spent. */
  next(): boolean {
    if (this.#attempts >= this.#policy.attempts || Date.now() - this.#started > this.#policy.totalMs) return false;
    this.#attempts++;
    return true;
  }

  get attempts(): number {
    return this.#attempts;
  }

  /** Waits the next backoff delay, never past the time budget. */
  async pause(signal?: AbortSignal): Promise<void> {
    const left = this.#policy.totalMs - (Date.now() - this.#started);
    if (left <= 0) return;
    await sleep(Math.min(left, backoffDelay(this.#policy, ++this.#delays)), signal);
  }
}
