/**
 * The shape of a recorded key-value history: what clients asked, when, and what they were told.
 */

type OperationTiming = {
  /** Client id; only used to make reports readable (real-time order comes from the timestamps). */
  process: number;
  key: string;
  /** Invocation time, on any monotonic clock shared by all clients. */
  call: number;
  /**
   * Completion time. `undefined` means the outcome is unknown (timeout, lost connection): the
   * operation may have taken effect at any moment after `call`, or never.
   */
  return?: number;
};

export type PutOperation = OperationTiming & { type: 'put'; value: string };
/** `output: null` = the key was absent; `undefined` only when indeterminate. */
export type GetOperation = OperationTiming & { type: 'get'; output?: string | null };
/** Compare-and-set; `expected: null` = succeed only if absent. `ok` undefined only when indeterminate. */
export type CasOperation = OperationTiming & {
  type: 'cas';
  expected: string | null;
  value: string;
  ok?: boolean;
};
/** List-append register: appends one element, unique across the history. */
export type AppendOperation = OperationTiming & { type: 'append'; value: string };
/** Reads the whole list register (absent = empty list). */
export type ReadListOperation = OperationTiming & { type: 'read-list'; output?: string[] };

export type KvOperation = PutOperation | GetOperation | CasOperation | AppendOperation | ReadListOperation;

export type RegisterOperation = PutOperation | GetOperation | CasOperation;
export type ListOperation = AppendOperation | ReadListOperation;

export interface CheckOptions {
  /** Give up after this long (wall clock) and report `timedOut`; default: no limit. */
  timeoutMs?: number;
}

export interface CheckFailure {
  key: string;
  /** The longest linearizable prefix found and the operation that could not follow it. */
  explanation: string;
  /** Every operation on the failing key, in call order. */
  operations: KvOperation[];
}

export interface CheckResult {
  /** True only when every key was shown linearizable (false on a violation or a timeout). */
  ok: boolean;
  /** The time limit ran out before a verdict; `failure` is then absent unless a violation was already found. */
  timedOut: boolean;
  /** Keys whose sub-history was fully decided. */
  keysChecked: number;
  failure?: CheckFailure;
}

export function isListOperation(op: KvOperation): op is ListOperation {
  return op.type === 'append' || op.type === 'read-list';
}

export function isRegisterOperation(op: KvOperation): op is RegisterOperation {
  return !isListOperation(op);
}

/** Rejects histories the checker cannot interpret, rather than returning a meaningless verdict. */
export function validateOperation(op: KvOperation, position: number): void {
  const where = `history[${position}] (${op.type} on key ${JSON.stringify(op.key)})`;
  if (!Number.isFinite(op.call)) throw new Error(`${where}: call time must be a finite number`);
  if (op.return === undefined) return;
  if (!Number.isFinite(op.return)) throw new Error(`${where}: return time must be a finite number or undefined`);
  if (op.return < op.call) throw new Error(`${where}: returns (${op.return}) before it is called (${op.call})`);
  if (op.type === 'get' && op.output === undefined) {
    throw new Error(`${where}: a completed get needs an output (null when the key was absent)`);
  }
  if (op.type === 'cas' && op.ok === undefined) throw new Error(`${where}: a completed cas needs ok`);
  if (op.type === 'read-list' && op.output === undefined) throw new Error(`${where}: a completed read-list needs an output`);
}

/**
 * Splits a history by key. Linearizability is compositional (Herlihy & Wing's locality), so the
 * whole history is linearizable exactly when every key's sub-history is, and each is searched alone.
 */
export function partitionByKey(history: readonly KvOperation[]): Map<string, KvOperation[]> {
  const byKey = new Map<string, KvOperation[]>();
  history.forEach((op, position) => {
    validateOperation(op, position);
    let ops = byKey.get(op.key);
    if (ops === undefined) {
      ops = [];
      byKey.set(op.key, ops);
    } else if (isListOperation(ops[0]) !== isListOperation(op)) {
      throw new Error(`key ${JSON.stringify(op.key)} is used both as a register and as a list (history[${position}])`);
    }
    ops.push(op);
  });
  return byKey;
}
