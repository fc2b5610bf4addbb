/**
 * The linearizability search for one key: Wing & Gong's backtracking search over the call/return
 * event list, with Lowe's two improvements, as Porcupine does it:
 *
 * - memoization: a configuration is (set of operations already linearized, model state). Reaching a
 *   configuration seen before cannot lead anywhere new, so that branch is cut. A set is encoded
 *   compactly as "all operations before the latest linearized one except these few".
 * - just-in-time linearization: operations are linearized only when the earliest pending return
 *   forces it. At that point the candidates are the operations called before that return and not
 *   yet linearized: the forced one when it can take effect, else the others that may have to take
 *   effect before it (see openFrame for the order and for the read-only shortcut).
 *
 * Optional operations (indeterminate ones: no return) have only a call event: they may be
 * linearized at any point after their call, or never; the search succeeds once every operation
 * with a return is linearized. Interchangeable and expiring optional operations (see
 * SearchOperation) keep them from multiplying the configurations.
 */
import type { ModelState, Transition } from './models.ts';

export interface SearchOperation<S extends ModelState> {
  readonly call: number;
  /** undefined: optional, may take effect any time after the call or never. */
  readonly return: number | undefined;
  readonly transition: Transition<S>;
  /** Never changes the state (a read, a failed cas): see openFrame. */
  readonly readOnly: boolean;
  /**
   * Optional operations marked interchangeable all have the same effect, so once called any of them
   * can stand for any other: only the earliest available one is tried, and having used fewer of
   * them is never worse (see `remember`).
   */
  readonly interchangeable?: boolean;
  /**
   * For an optional operation: once an operation returning at this time is linearized, it can no
   * longer take effect (e.g. a cas whose expected value can never come back), so it is dropped.
   */
  readonly expires?: number;
}

export type SearchVerdict = 'linearizable' | 'violation' | 'timeout';

export interface SearchOutcome<S extends ModelState> {
  verdict: SearchVerdict;
  /** Indices of the longest linearizable prefix found (the full linearization when linearizable). */
  longestPrefix: number[];
  /** Model state after that prefix. */
  stateAfterPrefix: S;
  /** The operation that had to take effect next but could not (absent when linearizable). */
  blocked: number | undefined;
  /** Other operations that were pending at that point and were tried before it. */
  pendingAtBlock: number[];
}

interface EventNode {
  readonly op: number;
  readonly isReturn: boolean;
  prev: EventNode | null;
  next: EventNode | null;
}

interface Frame<S> {
  /** Call events that may be linearized here, the forced operation first. */
  readonly candidates: EventNode[];
  next: number;
  chosen: EventNode | undefined;
  readonly stateBefore: S;
  /** Highest index of a linearized operation that is not interchangeable (-1 for none). */
  readonly highestLinearized: number;
  /** How many interchangeable operations are linearized. */
  readonly interchangeableUsed: number;
  /** The operation whose return is the earliest pending one. */
  readonly forced: number;
}

/** How many search steps between clock reads. */
const DEADLINE_CHECK_INTERVAL = 1024;

/**
 * Builds the doubly linked event list: calls and returns ordered by time. On equal times a call
 * sorts before a return, so operations touching at an instant count as concurrent (the reading
 * that never reports a false violation).
 */
function buildEventList<S extends ModelState>(
  ops: readonly SearchOperation<S>[],
): { head: EventNode; returns: (EventNode | undefined)[]; interchangeable: EventNode[] } {
  const events: { node: EventNode; time: number }[] = [];
  const returns: (EventNode | undefined)[] = [];
  // Interchangeable operations stay out of the list: at most one of them is a candidate at a time.
  const interchangeable: EventNode[] = [];
  ops.forEach((op, index) => {
    if (index > 0 && op.call < ops[index - 1].call) throw new Error('searchLinearization needs operations in call order');
    const call: EventNode = { op: index, isReturn: false, prev: null, next: null };
    if (op.interchangeable === true) interchangeable.push(call);
    else events.push({ node: call, time: op.call });
    if (op.return === undefined) {
      returns.push(undefined);
    } else {
      const ret: EventNode = { op: index, isReturn: true, prev: null, next: null };
      returns.push(ret);
      events.push({ node: ret, time: op.return });
    }
  });
  events.sort((a, b) => a.time - b.time || Number(a.node.isReturn) - Number(b.node.isReturn) || a.node.op - b.node.op);
  const head: EventNode = { op: -1, isReturn: false, prev: null, next: null };
  let last = head;
  for (const { node } of events) {
    last.next = node;
    node.prev = last;
    last = node;
  }
  return { head, returns, interchangeable };
}

function unlink(node: EventNode): void {
  node.prev!.next = node.next;
  if (node.next !== null) node.next.prev = node.prev;
}

/** Undoes `unlink`; valid because removals are undone in reverse order (dancing links). */
function relink(node: EventNode): void {
  node.prev!.next = node;
  if (node.next !== null) node.next.prev = node;
}

export function searchLinearization<S extends ModelState>(
  ops: readonly SearchOperation<S>[],
  initial: S,
  deadline: number,
): SearchOutcome<S> {
  const { head, returns, interchangeable } = buildEventList(ops);
  /** Explored configurations, less the interchangeable operations: the fewest of those used. */
  const explored = new Map<string, number>();
  let state = initial;
  let unlinearizedCompleted = returns.filter((ret) => ret !== undefined).length;

  /** Whether optional `op` can no longer take effect once `forced` (a pending operation) is due. */
  const expired = (op: number, forced: number): boolean => (ops[op].expires ?? Infinity) < ops[forced].return!;
  const lift = (call: EventNode): void => {
    if (ops[call.op].interchangeable === true) return;
    unlink(call);
    const ret = returns[call.op];
    if (ret !== undefined) unlink(ret);
  };
  const unlift = (call: EventNode): void => {
    if (ops[call.op].interchangeable === true) return;
    const ret = returns[call.op];
    if (ret !== undefined) relink(ret);
    relink(call);
  };
  /**
   * Records the configuration reached from `frame` by linearizing `op`; false when it was explored
   * already. The linearized set is encoded as "every operation up to the highest linearized index,
   * except those whose call event is still listed" (those sit at the front of the list, so the key
   * stays short), and the number of interchangeable operations used, kept apart: a configuration
   * that differs only by having used more of them is dominated (it has fewer left, the same state,
   * the same obligations), so it needs no exploring once the one with fewer was explored.
   */
  const remember = (next: S, op: number, frame: Frame<S>): boolean => {
    const interchangeable = ops[op].interchangeable === true;
    const highest = interchangeable ? frame.highestLinearized : Math.max(op, frame.highestLinearized);
    const used = frame.interchangeableUsed + (interchangeable ? 1 : 0);
    let key = `${next.id}|${highest}|`;
    for (let node = head.next; node !== null; node = node.next) {
      if (node.isReturn || node.op === op || expired(node.op, frame.forced)) continue;
      if (node.op > highest) break;
      key += `${node.op},`;
    }
    const fewestUsed = explored.get(key);
    if (fewestUsed !== undefined && fewestUsed <= used) return false;
    explored.set(key, used);
    return true;
  };
  /**
   * The candidates at the current configuration. The earliest pending return forces its operation:
   * when it can take effect now, it goes first. When it cannot, some other pending operations must
   * go before it, and those after which it can go are tried first (a one-step lookahead that finds a
   * linearizable history's order with little backtracking). Optional operations go after completed
   * ones, as they are needed least often.
   *
   * A pending read-only operation that can take effect now is taken now, with no alternative: any
   * linearization from here places it later, at a point with the same state since it changes
   * nothing; moving it here keeps the order valid (whatever had to precede it is already
   * linearized, and nothing called after it returned is).
   */
  const openFrame = (stateBefore: S, highestLinearized: number, interchangeableUsed: number): Frame<S> => {
    const pending: EventNode[] = [];
    let node = head.next;
    for (; node !== null && !node.isReturn; node = node.next) pending.push(node);
    if (node === null) throw new Error('openFrame needs a pending return');
    const forcedOp = node.op;
    const harmless = pending.find((call) => ops[call.op].readOnly && ops[call.op].transition(stateBefore) !== undefined);
    if (harmless !== undefined) {
      return { candidates: [harmless], next: 0, chosen: undefined, stateBefore, highestLinearized, interchangeableUsed, forced: forcedOp };
    }
    const forcedTransition = ops[forcedOp].transition;
    const forcedFirst = forcedTransition(stateBefore) !== undefined;
    // Interchangeable ones are used in call order, so the next unused one is the only candidate.
    const nextInterchangeable = interchangeable[interchangeableUsed] as EventNode | undefined;
    if (nextInterchangeable !== undefined && ops[nextInterchangeable.op].call <= ops[forcedOp].return!) {
      pending.push(nextInterchangeable);
    }
    const enabling: EventNode[] = [];
    const definite: EventNode[] = [];
    const optional: EventNode[] = [];
    let forced: EventNode | undefined;
    for (const call of pending) {
      const op = ops[call.op];
      if (call.op === forcedOp) {
        forced = call;
        continue;
      }
      if (expired(call.op, forcedOp)) continue;
      const after = forcedFirst ? undefined : op.transition(stateBefore);
      if (after !== undefined && forcedTransition(after) !== undefined) enabling.push(call);
      else if (op.return !== undefined) definite.push(call);
      else optional.push(call);
    }
    const candidates = forcedFirst ? [forced!, ...definite, ...optional] : [...enabling, ...definite, ...optional];
    return { candidates, next: 0, chosen: undefined, stateBefore, highestLinearized, interchangeableUsed, forced: forcedOp };
  };

  const frames: Frame<S>[] = [];
  const longestPrefix: number[] = [];
  let prefixMatchesStack = 0; // longestPrefix[0, this) equals the ops chosen on the current stack
  let best = { depth: -1, state, blocked: undefined as number | undefined, pending: [] as number[] };
  const push = (highestLinearized: number, interchangeableUsed: number): void => {
    const frame = openFrame(state, highestLinearized, interchangeableUsed);
    frames.push(frame);
    const depth = frames.length - 1;
    if (depth <= best.depth) return;
    for (let k = prefixMatchesStack; k < depth; k++) longestPrefix[k] = frames[k].chosen!.op;
    longestPrefix.length = depth;
    prefixMatchesStack = depth;
    const pending = frame.candidates.map((call) => call.op).filter((op) => op !== frame.forced);
    best = { depth, state, blocked: frame.forced, pending };
  };
  const outcome = (verdict: SearchVerdict): SearchOutcome<S> =>
    verdict === 'linearizable'
      ? {
          verdict,
          longestPrefix: frames.map((frame) => frame.chosen!.op),
          stateAfterPrefix: state,
          blocked: undefined,
          pendingAtBlock: [],
        }
      : { verdict, longestPrefix, stateAfterPrefix: best.state, blocked: best.blocked, pendingAtBlock: best.pending };

  if (unlinearizedCompleted === 0) return outcome('linearizable');
  push(-1, 0);
  for (let steps = 1; ; steps++) {
    if (steps % DEADLINE_CHECK_INTERVAL === 0 && performance.now() > deadline) return outcome('timeout');
    const frame = frames[frames.length - 1];
    if (frame.next >= frame.candidates.length) {
      // Every candidate here failed or led to explored configurations: backtrack.
      frames.pop();
      if (frames.length === 0) return outcome('violation');
      const parent = frames[frames.length - 1];
      const undone = parent.chosen!;
      unlift(undone);
      if (returns[undone.op] !== undefined) unlinearizedCompleted++;
      state = parent.stateBefore;
      parent.chosen = undefined;
      prefixMatchesStack = Math.min(prefixMatchesStack, frames.length - 1);
      continue;
    }
    const candidate = frame.candidates[frame.next++];
    const next = ops[candidate.op].transition(state);
    if (next === undefined || !remember(next, candidate.op, frame)) continue;
    frame.chosen = candidate;
    lift(candidate);
    state = next;
    if (returns[candidate.op] !== undefined) unlinearizedCompleted--;
    if (unlinearizedCompleted === 0) return outcome('linearizable');
    if (ops[candidate.op].interchangeable === true) push(frame.highestLinearized, frame.interchangeableUsed + 1);
    else push(Math.max(frame.highestLinearized, candidate.op), frame.interchangeableUsed);
  }
}
