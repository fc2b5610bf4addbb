/**
 * The router as the coordinator of a transaction whose operations fall in several partitions
 * (two-phase commit; the participants' side is @shoal/storage transactions.ts):
 *
 * 1. begin: a PENDING transaction record in the coordinator partition (that of the first operation),
 *    naming the participants and a deadline;
 * 2. prepare, every participant at once: its operations evaluated as a write would be and, when all
 *    succeed, stored as intents (another transaction's intent on an item refuses it: TransactionConflict);
 * 3. all prepared: decide COMMITTED in the record, then resolve: each participant writes its intents'
 *    images and drops them. Any refusal: decide ABORTED, and the participants release their intents.
 *
 * The decision is the record's: once COMMITTED the transaction is applied, even when a resolve call
 * fails (the participants' resolvers finish it); a record that stays PENDING past its deadline (this
 * router died) is aborted by the first participant resolving an intent of it. So the transaction
 * ends all or nothing whatever fails, without its client.
 *
 * A transaction of condition checks only (TransactGetItems) has nothing to commit: its checks hold
 * their items (shared with other checks) while every partition answers, then go; it has no record.
 *
 * Every call is a command of a partition's log. Begin, decide and resolve keep their effect when sent
 * twice, so they are retried like reads; a prepare sent is ambiguous when it fails, so the
 * transaction is then aborted (which releases whatever it may have prepared) and the failure answered.
 */
import { randomBytes } from 'node:crypto';
import type { PartitionDescriptor, PartitionWrite, PartitionWriteResult, WriteOperation, WriteOutcome } from '@shoal/model';
import {
  beginTransactionRequestToWire,
  decideTransactionRequestToWire,
  forgetTransactionRequestToWire,
  prepareTransactionRequestToWire,
  resolveTransactionRequestToWire,
  transactionStateFromWire,
  writeResultFromWire,
  type CallOptions,
  type ClientOf,
  type PartitionService,
  type RoutedTo,
  type TransactionRefData,
  type TransactionStateName,
  type TransactionStateResponse,
} from '@shoal/proto';
import { CLIENT_TOKEN_TABLE } from '../client-request-tokens.ts';
import type { ClusterLogger } from './metrics.ts';
import { ambiguousWrite } from './retry.ts';

type PartitionRpc = ClientOf<typeof PartitionService>;

/**
 * How the coordinator reaches a partition: the cluster client's routed call, following redirects.
 * `write` is sent again only when a failure proves it was not proposed, `leader` after any transient one.
 */
export type PartitionCall = <T>(
  mode: 'write' | 'leader',
  locate: () => PartitionDescriptor | undefined,
  call: (rpc: PartitionRpc, target: RoutedTo, options: CallOptions) => Promise<T>,
) => Promise<T>;

export interface TransactionCoordinatorOptions {
  /** How long a transaction may stay PENDING before resolvers may abort it (default 10 s). */
  deadlineMs?: number;
  /**
   * Test-only fault points: when one rejects, the coordinator stops right there, leaving the
   * transaction as a router dying at that point would (recovery then falls to the partitions).
   */
  faults?: {
    afterPrepare?(transactionId: string): Promise<void>;
    afterCommit?(transactionId: string): Promise<void>;
  };
}

/** Longer than a loaded cluster takes for the steps of one transaction (a proposal times out after 5 s). */
const DEFAULT_DEADLINE_MS = 10_000;

export class TransactionCoordinator {
  readonly #call: PartitionCall;
  readonly #partition: (id: number) => PartitionDescriptor | undefined;
  readonly #deadlineMs: number;
  readonly #faults: NonNullable<TransactionCoordinatorOptions['faults']>;
  readonly #log: ClusterLogger | undefined;

  constructor(
    call: PartitionCall,
    partition: (id: number) => PartitionDescriptor | undefined,
    options: TransactionCoordinatorOptions = {},
    log?: ClusterLogger,
  ) {
    this.#call = call;
    this.#partition = partition;
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#faults = options.faults ?? {};
    this.#log = log;
  }

  /**
   * Runs `request` as one transaction over the partitions of `positions` (partition id -> positions
   * of its operations in the request, the first operation's partition first); answers as a partition
   * write does: applied with every outcome, or not applied with the outcomes that refused it.
   */
  async run(request: PartitionWrite, positions: Map<number, number[]>): Promise<PartitionWriteResult> {
    const participants = [...positions.keys()];
    // Condition checks only (a TransactGetItems): nothing to commit, so no record: its reads hold
    // their items while every partition answers, then go (a resolver finding no record releases them).
    // A write may go through a read meanwhile (reads yield to writes, as on DynamoDB): the reader is
    // then cancelled with TransactionConflict, its items not read at one instant.
    const readOnly = request.operations.every((operation) => operation.kind === 'ConditionCheck');
    const transaction: TransactionRefData = {
      id: randomBytes(16).toString('hex'),
      coordinator: participants[0],
      deadline: Date.now() + this.#deadlineMs,
      ...(readOnly ? { readOnly } : {}),
    };
    if (!readOnly) {
      const begun = await this.#onRecord(transaction.coordinator, (rpc, target, options) =>
        rpc.beginTransaction(beginTransactionRequestToWire(target, transaction, participants), options),
      );
      if (begun !== 'PENDING') return conflicted(request);
    }

    const prepareOn = async (partitionId: number): Promise<PartitionWriteResult> => {
      const operations = (positions.get(partitionId) as number[]).map((position) => request.operations[position]);
      const write: PartitionWrite = { operations, ...(request.returnItems ? { returnItems: true } : {}) };
      const value = await this.#call('write', () => this.#partition(partitionId), (rpc, target, options) =>
        rpc.prepareTransaction(prepareTransactionRequestToWire(target, transaction, write), options),
      );
      return writeResultFromWire(value);
    };
    const claims = participants.filter((partitionId) => (positions.get(partitionId) as number[]).some((position) => isClaim(request.operations[position])));
    const prepared = readOnly ? await Promise.allSettled(participants.map(prepareOn)) : await this.#prepareInOrder(participants, claims, prepareOn);
    const failure = prepared.find((result) => result.status === 'rejected');
    const refused = prepared.some((result) => result.status === 'fulfilled' && !result.value.applied);
    if (readOnly) {
      const released = await this.#release(transaction, participants, false);
      if (failure !== undefined) throw failure.reason;
      if (refused) return { applied: false, outcomes: merge(request, positions, prepared) };
      // A partition that could not say whether a write went through counts as one that did.
      if (released.some((resolved) => resolved === undefined || resolved.wounded > 0)) return conflicted(request);
      return { applied: true, outcomes: merge(request, positions, prepared) };
    }
    if (failure !== undefined || refused) {
      await this.#finish(transaction, participants, 'ABORTED');
      if (failure !== undefined) throw failure.reason;
      return { applied: false, outcomes: merge(request, positions, prepared) };
    }

    await this.#faults.afterPrepare?.(transaction.id);
    // Unanswered, the commit may have been recorded: the outcome is unknown to the client (the resolvers settle it).
    const decided = await this.#decide(transaction, 'COMMITTED').catch((error: unknown) => {
      throw ambiguousWrite(`transaction ${transaction.id}: the commit decision was not answered (${error instanceof Error ? error.message : String(error)})`);
    });
    if (decided !== 'COMMITTED') {
      // Aborted meanwhile by a resolver (the deadline passed): nothing was applied.
      await this.#release(transaction, participants, false);
      await this.#forget(transaction);
      return conflicted(request);
    }
    await this.#faults.afterCommit?.(transaction.id);
    const resolved = await this.#release(transaction, participants, true);
    if (participants.every((partitionId, at) => resolved[at]?.intents === positions.get(partitionId)?.length)) await this.#forget(transaction);
    return { applied: true, outcomes: merge(request, positions, prepared) };
  }

  /**
   * Prepares the participants one at a time in partition id order, as every transaction does: of
   * two transactions wanting the same items, the one that loses the first partition stops there
   * (TransactionConflict) instead of taking the next one from the winner, so one of them commits.
   * A condition failure does not stop it: every partition's reasons are reported. Answers in the
   * order of `participants` (a participant not asked: not settled, as if it had nothing to say).
   *
   * The partitions of `claims` (the claim of a ClientRequestToken: client-request-tokens.ts) go
   * first: a retry of a transaction in flight meets its claim there before any of its items
   * (TransactionInProgress, not a conflict on an item), and a claim refused (done before, or by
   * another request) stops the prepare, the other partitions having nothing to do then. Claims of
   * distinct tokens are distinct items, so the id order still decides between transactions.
   */
  async #prepareInOrder(
    participants: number[],
    claims: number[],
    prepareOn: (partitionId: number) => Promise<PartitionWriteResult>,
  ): Promise<Array<PromiseSettledResult<PartitionWriteResult>>> {
    const results = new Map<number, PromiseSettledResult<PartitionWriteResult>>();
    const byId = (a: number, b: number): number => a - b;
    const order = [...claims.toSorted(byId), ...participants.filter((partitionId) => !claims.includes(partitionId)).toSorted(byId)];
    for (const partitionId of order) {
      const result = await prepareOn(partitionId).then(
        (value): PromiseSettledResult<PartitionWriteResult> => ({ status: 'fulfilled', value }),
        (reason: unknown): PromiseSettledResult<PartitionWriteResult> => ({ status: 'rejected', reason }),
      );
      results.set(partitionId, result);
      if (result.status === 'rejected' || result.value.outcomes.some((outcome) => outcome.status === 'transactionConflict')) break;
      if (claims.includes(partitionId) && !result.value.applied) break;
    }
    return participants.map((partitionId) => results.get(partitionId) ?? { status: 'fulfilled', value: { applied: false, outcomes: [] } });
  }

  /** Decides the transaction, then resolves its intents accordingly. */
  async #finish(transaction: TransactionRefData, participants: number[], decision: 'ABORTED'): Promise<void> {
    try {
      await this.#decide(transaction, decision);
    } catch (error) {
      // The record stays PENDING: its deadline lets the participants' resolvers abort it.
      this.#log?.warn('transaction abort not recorded; resolvers will abort it after its deadline', { transaction: transaction.id, error: String(error) });
      return;
    }
    await this.#release(transaction, participants, false);
    await this.#forget(transaction);
  }

  #decide(transaction: TransactionRefData, decision: 'COMMITTED' | 'ABORTED'): Promise<TransactionStateName> {
    return this.#onRecord(transaction.coordinator, (rpc, target, options) =>
      rpc.decideTransaction(decideTransactionRequestToWire(target, transaction.id, decision), options),
    );
  }

  /**
   * Resolves the intents everywhere; a participant that cannot be reached now is left to its
   * resolver. Answers what each participant resolved (undefined for one that failed).
   */
  async #release(transaction: TransactionRefData, participants: number[], commit: boolean): Promise<Array<{ intents: number; wounded: number } | undefined>> {
    const results = await Promise.allSettled(
      participants.map((partitionId) =>
        this.#call('leader', () => this.#partition(partitionId), (rpc, target, options) =>
          rpc.resolveTransaction(resolveTransactionRequestToWire(target, transaction.id, commit), options),
        ),
      ),
    );
    return results.map((result) => {
      if (result.status === 'fulfilled') return { intents: result.value.intents, wounded: result.value.wounded };
      this.#log?.warn('transaction intents not resolved; the partition resolver will', { transaction: transaction.id, commit, error: String(result.reason) });
      return undefined;
    });
  }

  /**
   * Deletes the record once no intent can ask for it any more. An intent finding no record is
   * aborted, so an aborted transaction's record may always go, a committed one's only when every
   * participant resolved all of its operations (none left for a resolver, e.g. beyond a split).
   */
  async #forget(transaction: TransactionRefData): Promise<void> {
    try {
      await this.#call('leader', () => this.#partition(transaction.coordinator), (rpc, target, options) =>
        rpc.forgetTransaction(forgetTransactionRequestToWire(target, transaction.id), options),
      );
    } catch (error) {
      // A decided record left behind costs its bytes only.
      this.#log?.warn('transaction record not forgotten', { transaction: transaction.id, error: String(error) });
    }
  }

  async #onRecord(
    coordinator: number,
    call: (rpc: PartitionRpc, target: RoutedTo, options: CallOptions) => Promise<TransactionStateResponse>,
  ): Promise<TransactionStateName> {
    return transactionStateFromWire(await this.#call('leader', () => this.#partition(coordinator), call));
  }
}

/** The outcomes of the participants in request order. */
function merge(request: PartitionWrite, positions: Map<number, number[]>, prepared: PromiseSettledResult<PartitionWriteResult>[]): WriteOutcome[] {
  const outcomes: WriteOutcome[] = request.operations.map(() => ({ status: 'ok' }));
  [...positions.values()].forEach((at, participant) => {
    const result = prepared[participant];
    if (result.status !== 'fulfilled') return;
    at.forEach((position, index) => {
      outcomes[position] = result.value.outcomes[index] ?? { status: 'ok' };
    });
  });
  return outcomes;
}

/**
 * Not applied because another party decided the transaction first (a resolver, its deadline past).
 * A token's claim was not refused by anyone: it says nothing of another transaction holding the token.
 */
function conflicted(request: PartitionWrite): PartitionWriteResult {
  return {
    applied: false,
    outcomes: request.operations.map((operation): WriteOutcome => ({ status: isClaim(operation) ? 'ok' : 'transactionConflict' })),
  };
}

/** The claim of a ClientRequestToken (client-request-tokens.ts), an operation of the transaction it claims the token for. */
function isClaim(operation: WriteOperation): boolean {
  return operation.table.name === CLIENT_TOKEN_TABLE;
}
