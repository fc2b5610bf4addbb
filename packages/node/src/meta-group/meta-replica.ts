/**
 * The meta group's replicated state machine: MetaState (tables, partition map, nodes) in memory,
 * changed by the meta commands of the group's Raft log. The state is not persisted apart from the
 * log: its snapshot is the whole state (small: JSON), which the host records every so many entries
 * before compacting the log, and a restarted replica restores it, then replays the entries after it.
 */
import {
  applyMetaCommand,
  decodeMetaCommand,
  decodeMetaSnapshot,
  emptyMetaState,
  encodeMetaSnapshot,
  MetaCommandError,
  type MetaApplyResult,
  type MetaState,
} from '@shoal/meta';
import type { ReplicaStateMachine } from '../host/index.ts';

/** The meta group's Raft group id; partition ids start at 1. */
export const META_GROUP_ID = 0;

/**
 * What applying one command gave its proposer: the result, or the MetaCommandError that refused it
 * (every replica refuses it alike, so a refusal is an outcome, not a failure of the replica).
 */
export type MetaOutcome = MetaApplyResult | MetaCommandError;

/** Called after every applied command and every restored snapshot, with the state now. */
export type MetaStateListener = (state: MetaState) => void;

export interface MetaReplicaOptions {
  /**
   * Replicas per partition the placement driver aims for (default 3). It is part of the state the
   * group is bootstrapped with, so every meta peer must be given the same.
   */
  replicationFactor?: number;
}

export class MetaReplica implements ReplicaStateMachine {
  #state: MetaState;
  #applied = 0;
  readonly #listeners = new Set<MetaStateListener>();

  constructor(options: MetaReplicaOptions = {}) {
    this.#state = emptyMetaState(options.replicationFactor ?? 3);
  }

  /** The state as of the last applied command (on a follower it may lag the leader's). */
  get state(): MetaState {
    return this.#state;
  }

  /**
   * Applies one logged command. A command the state refuses leaves the state as it was and is the
   * result the proposer gets. So is a command that makes applyMetaCommand throw anything else (a
   * malformed command the checks missed): applying is pure, so every replica refuses it alike, and
   * a poisoned entry must not stop every meta peer at every replay. An entry that does not decode
   * (a command type this version does not know) throws and stops the host.
   */
  apply(data: Uint8Array, index: number): MetaOutcome {
    const command = decodeMetaCommand(data);
    let outcome: MetaOutcome;
    try {
      outcome = applyMetaCommand(this.#state, command);
      this.#state = outcome.state;
    } catch (error) {
      outcome = error instanceof MetaCommandError ? error : new MetaCommandError(command.type, `refused: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.#applied = index;
    this.#notify();
    return outcome;
  }

  snapshot(): Uint8Array {
    return encodeMetaSnapshot(this.#state);
  }

  /** The state as of entry `index`: the host applies only the entries past it. */
  restore(data: Uint8Array, index: number): void {
    this.#state = decodeMetaSnapshot(data);
    this.#applied = index;
    this.#notify();
  }

  appliedIndex(): number {
    return this.#applied;
  }

  /** Calls `listener` after every change of the state; returns the function that stops it. */
  onApplied(listener: MetaStateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener(this.#state);
  }
}
