/**
 * Resolves the intents a transaction left behind once its deadline passed (its router died, or could
 * not reach a participant): the coordinator partition is asked to abort the transaction unless it is
 * decided (a PENDING record past its deadline is aborted there, a decided one keeps its decision),
 * then the transaction's intents in each partition this node leads are committed or released through
 * that partition's log. Every partition leader runs one, so a transaction ends all or nothing without
 * any client.
 */
import { ErrorDetailSchema, PartitionService, RpcError, ClientPool, decideTransactionRequestToWire, transactionStateFromWire } from '@shoal/proto';
import { partitionContains, type PartitionDescriptor } from '@shoal/model';
import type { PartitionStore, TransactionState } from '@shoal/storage';
import type { MultiRaftHost } from '../host/index.ts';
import { PeriodicPass } from './periodic-pass.ts';
import { proposeDecideTransaction, proposeResolveTransaction } from './transaction-commands.ts';

export interface TransactionResolverLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface TransactionResolverOptions {
  store: PartitionStore;
  host: MultiRaftHost;
  /** The partitions held here: an intent belongs to the one whose range holds its item. */
  partitions(): PartitionDescriptor[];
  /** A partition's descriptor in this node's view (the coordinator partition may be held elsewhere). */
  descriptorOf(partitionId: number): PartitionDescriptor | undefined;
  /** The gRPC address of a node (to reach a coordinator partition led elsewhere). */
  nodeAddress(nodeId: number): string | undefined;
  /** Between passes (default 1 s). */
  intervalMs?: number;
  /** Epoch milliseconds (default Date.now). */
  now?: () => number;
  log?: TransactionResolverLog;
}

const DEFAULT_INTERVAL_MS = 1_000;
/** Nodes tried when asking a coordinator partition for its decision: its voters and a leader hint or two. */
const DECIDE_ATTEMPTS = 6;
const DECIDE_TIMEOUT_MS = 5_000;

export class TransactionResolver {
  readonly #options: TransactionResolverOptions;
  readonly #clients = new ClientPool(PartitionService);
  readonly #pass: PeriodicPass<number>;

  constructor(options: TransactionResolverOptions) {
    this.#options = options;
    this.#pass = new PeriodicPass(() => this.#resolveExpired(), {
      intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
      onError: (error) => options.log?.warn('a pass resolving expired transactions failed', { error: String(error) }),
    });
  }

  start(): void {
    this.#pass.start();
  }

  async close(): Promise<void> {
    await this.#pass.close();
    this.#clients.close();
  }

  /** One pass (joined when one runs): resolves every expired transaction's intents in the partitions led here; answers how many partitions it resolved. */
  resolveExpired(): Promise<number> {
    return this.#pass.run();
  }

  async #resolveExpired(): Promise<number> {
    const { store, host } = this.#options;
    const now = (this.#options.now ?? Date.now)();
    let resolved = 0;
    for (const { transaction, itemKeys } of await store.transactionsWithIntents()) {
      if (this.#pass.closed) break;
      if (transaction.deadline > now) continue;
      const led = this.#options.partitions().filter((partition) => host.leaderOf(partition.id) === host.nodeId && itemKeys.some((key) => partitionContains(partition, key)));
      if (led.length === 0) continue;
      try {
        // A read-only transaction has no record and nothing to commit: its reads just go.
        const state = transaction.readOnly ? 'ABORTED' : await this.#abortUnlessDecided(transaction.coordinator, transaction.id);
        for (const partition of led) {
          await proposeResolveTransaction(host, partition, transaction.id, state === 'COMMITTED');
          resolved++;
        }
      } catch (error) {
        // Tried again at the next pass.
        this.#options.log?.warn('could not resolve an expired transaction', { transaction: transaction.id, coordinator: transaction.coordinator, error: String(error) });
      }
    }
    return resolved;
  }

  /** DecideTransaction(ABORTED) on the coordinator partition: here when led here, else on its leader elsewhere. */
  async #abortUnlessDecided(coordinator: number, transactionId: string): Promise<TransactionState> {
    const { host } = this.#options;
    if (host.leaderOf(coordinator) === host.nodeId) return proposeDecideTransaction(host, coordinator, transactionId, 'ABORTED');
    const partition = this.#options.descriptorOf(coordinator);
    const voters = partition?.replicas.filter((replica) => replica.role === 'voter').map((replica) => replica.nodeId) ?? [];
    const hint = host.leaderOf(coordinator) ?? partition?.leaderHint;
    const candidates = [...new Set([...(hint === undefined ? [] : [hint]), ...voters])];
    if (partition === undefined || candidates.length === 0) throw new Error(`coordinator partition ${coordinator} is not known here`);
    let last: unknown;
    for (let attempt = 0; attempt < DECIDE_ATTEMPTS && candidates.length > 0; attempt++) {
      const nodeId = candidates.shift() as number;
      const address = this.#options.nodeAddress(nodeId);
      if (address === undefined) continue;
      try {
        const target = { partitionId: BigInt(coordinator), epoch: BigInt(partition.epoch) };
        const response = await this.#clients.get(address).decideTransaction(decideTransactionRequestToWire(target, transactionId, 'ABORTED'), { timeoutMs: DECIDE_TIMEOUT_MS });
        return transactionStateFromWire(response);
      } catch (error) {
        last = error;
        const leader = error instanceof RpcError ? error.detail(ErrorDetailSchema)?.kind : undefined;
        if (leader?.case === 'notLeader' && leader.value.leader !== undefined) candidates.unshift(Number(leader.value.leader.id));
      }
    }
    throw new Error(`coordinator partition ${coordinator} did not answer: ${String(last)}`);
  }

}
