import { describeOperation } from './format.ts';
import { isListOperation, isRegisterOperation, partitionByKey } from './history.ts';
import type { CheckFailure, CheckOptions, CheckResult, KvOperation, ListOperation, RegisterOperation } from './history.ts';
import { createListModel, createRegisterModel } from './models.ts';
import type { ListState, ModelState, RegisterState } from './models.ts';
import { searchLinearization } from './search.ts';
import type { SearchOperation, SearchOutcome, SearchVerdict } from './search.ts';

/** Prefix lines shown in a failure explanation; earlier ones are summarized. */
const EXPLAINED_PREFIX_LINES = 25;

/** An operation as searched: possibly reinterpreted (see below), with the one it came from. */
interface PreparedOperation<S extends ModelState, Op extends KvOperation> extends SearchOperation<S> {
  readonly original: Op;
}

interface PreparedKey<S extends ModelState, Op extends KvOperation> {
  readonly ops: PreparedOperation<S, Op>[];
  readonly initial: S;
  describeState(state: S): string;
  /** Why the operation cannot take effect in the state (see SequentialModel). */
  explainRefusal(op: Op, state: S): string;
}

/**
 * An indeterminate write of a value that exactly one operation writes and that a completed read
 * saw: it certainly took effect, before that read returned. Returns the latest time it can have
 * taken effect (never before its call: if the read returned earlier, the search reports that), or
 * undefined when the write is not forced.
 */
function forcedBy(write: KvOperation, writers: number, observerReturns: number[] | undefined): number | undefined {
  if (writers !== 1 || observerReturns === undefined) return undefined;
  return Math.max(write.call, minimum(observerReturns));
}

/** Math.min without spreading, which overflows the stack on very long arrays. */
function minimum(values: number[]): number {
  return values.reduce((least, value) => Math.min(least, value), Infinity);
}

function addTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const values = map.get(key);
  if (values === undefined) map.set(key, [value]);
  else values.push(value);
}

function countBy<K>(keys: K[]): Map<K, number> {
  const counts = new Map<K, number>();
  for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

/**
 * Indeterminate register operations, reduced so the search does not explore every subset of them
 * (each would otherwise stay a candidate until the end):
 *
 * - a get with an unknown output constrains nothing: dropped;
 * - a write whose value some completed get returned or successful cas expected, when nothing else
 *   writes that value, took effect before that read returned: it gets that return time;
 * - a write whose value nobody reads or expects, when no completed failed cas returns after (or as) its
 *   call: dropped. Between it and the next write nothing can observe the register (a get would
 *   return the value; no cas expects it; a failing cas, the one operation that can depend on the
 *   register *not* holding the old value, does not exist), so removing it from a linearization
 *   leaves a linearization. Such puts otherwise all have the same effect (see createRegisterModel)
 *   and are interchangeable.
 */
function prepareRegisterKey(ops: RegisterOperation[]): PreparedKey<RegisterState, RegisterOperation> {
  const readsOrExpects = new Set<string>();
  const forcingReturns = new Map<string, number[]>();
  let lastFailedCasReturn = -Infinity;
  for (const op of ops) {
    if (op.type === 'cas' && op.expected !== null) readsOrExpects.add(op.expected);
    if (op.return === undefined) continue;
    if (op.type === 'get' && op.output !== null && op.output !== undefined) {
      readsOrExpects.add(op.output);
      addTo(forcingReturns, op.output, op.return);
    }
    if (op.type === 'cas' && op.ok === true && op.expected !== null) addTo(forcingReturns, op.expected, op.return);
    if (op.type === 'cas' && op.ok === false) lastFailedCasReturn = Math.max(lastFailedCasReturn, op.return);
  }
  const writers = countBy(ops.flatMap((op) => (op.type === 'get' ? [] : [op.value])));
  const model = createRegisterModel(readsOrExpects);
  const prepared: PreparedOperation<RegisterState, RegisterOperation>[] = [];
  for (const op of ops) {
    const readOnly = op.type === 'get' || (op.type === 'cas' && op.ok === false);
    const base = { call: op.call, transition: model.transition(op), readOnly, original: op };
    if (op.return !== undefined) {
      prepared.push({ ...base, return: op.return });
    } else if (op.type !== 'get') {
      const forcedReturn = forcedBy(op, writers.get(op.value) ?? 0, forcingReturns.get(op.value));
      const observable = readsOrExpects.has(op.value) || lastFailedCasReturn >= op.call;
      if (forcedReturn !== undefined) prepared.push({ ...base, return: forcedReturn });
      else if (observable && op.type === 'put' && !readsOrExpects.has(op.value)) {
        prepared.push({ ...base, return: undefined, interchangeable: true });
      } else if (observable) prepared.push({ ...base, return: undefined });
    }
  }
  return {
    ops: prepared.flatMap((op) => withExpiry(op, prepared, writers)),
    initial: model.initial,
    describeState: model.describeState,
    explainRefusal: model.explainRefusal,
  };
}

/** A write that certainly happened, by its (possibly forced) return time. */
function isCertainWrite(op: PreparedOperation<RegisterState, RegisterOperation>): boolean {
  const original = op.original;
  return op.return !== undefined && (original.type === 'put' || (original.type === 'cas' && original.ok !== false));
}

/**
 * An optional cas can take effect only while the register holds its expected value. With no
 * deletes, "absent" ends at the first certain write; a value with a single writer ends at the first
 * certain write called after that writer returned (it must follow it, and nothing writes the value
 * again). Past that point the cas is dead, and the search drops it. A cas expecting a value nobody
 * writes can never take effect at all.
 */
function withExpiry(
  op: PreparedOperation<RegisterState, RegisterOperation>,
  prepared: PreparedOperation<RegisterState, RegisterOperation>[],
  writers: Map<string, number>,
): PreparedOperation<RegisterState, RegisterOperation>[] {
  const original = op.original;
  if (op.return !== undefined || original.type !== 'cas') return [op];
  const earliestCertainWriteReturn = (calledAfter: number): number =>
    minimum(prepared.filter((other) => isCertainWrite(other) && other.call > calledAfter).map((other) => other.return!));
  if (original.expected === null) return [{ ...op, expires: earliestCertainWriteReturn(-Infinity) }];
  const writerCount = writers.get(original.expected) ?? 0;
  if (writerCount === 0) return [];
  const writer = prepared.find((other) => 'value' in other.original && other.original.value === original.expected);
  if (writerCount > 1 || writer === undefined || !isCertainWrite(writer)) return [op];
  return [{ ...op, expires: earliestCertainWriteReturn(writer.return!) }];
}

/**
 * Indeterminate list operations, reduced the same way: read-lists with unknown output are dropped;
 * an append of an element no completed read-list contains is dropped (in a linearization applying
 * it no read follows it, or the read would contain the unique element); an append whose element a
 * read saw, when nothing else appends that element, took effect before that read returned.
 */
function prepareListKey(ops: ListOperation[]): PreparedKey<ListState, ListOperation> {
  const forcingReturns = new Map<string, number[]>();
  for (const op of ops) {
    if (op.type === 'read-list' && op.return !== undefined) for (const element of op.output!) addTo(forcingReturns, element, op.return);
  }
  const appenders = countBy(ops.flatMap((op) => (op.type === 'append' ? [op.value] : [])));
  const completedReads = ops.flatMap((op) => (op.type === 'read-list' && op.return !== undefined ? [op.output!] : []));
  const appendedOnce = new Set([...appenders].filter(([, count]) => count === 1).map(([element]) => element));
  const model = createListModel(completedReads, appendedOnce);
  const prepared: PreparedOperation<ListState, ListOperation>[] = [];
  for (const op of ops) {
    const base = { call: op.call, transition: model.transition(op), readOnly: op.type === 'read-list', original: op };
    if (op.return !== undefined) {
      prepared.push({ ...base, return: op.return });
    } else if (op.type === 'append' && forcingReturns.has(op.value)) {
      const forcedReturn = forcedBy(op, appenders.get(op.value) ?? 0, forcingReturns.get(op.value));
      prepared.push({ ...base, return: forcedReturn });
    }
  }
  return {
    ops: prepared,
    initial: model.initial,
    describeState: model.describeState,
    explainRefusal: model.explainRefusal,
  };
}

function describeWithTimes(op: KvOperation): string {
  return `${describeOperation(op)}  [${op.call} .. ${op.return ?? '?'}]`;
}

function explainViolation<S extends ModelState, Op extends KvOperation>(
  key: string,
  prepared: PreparedKey<S, Op>,
  outcome: SearchOutcome<S>,
): string {
  const searched = prepared.ops;
  const completed = searched.filter((op) => op.original.return !== undefined).length;
  const lines = [
    `Key ${JSON.stringify(key)}: no linearization exists for its ${completed} completed operations` +
      ` (with the ${searched.length - completed} indeterminate ones that matter).`,
    `Longest linearizable prefix found: ${outcome.longestPrefix.length} operation(s).`,
  ];
  const shownFrom = Math.max(0, outcome.longestPrefix.length - EXPLAINED_PREFIX_LINES);
  if (shownFrom > 0) lines.push(`  … ${shownFrom} earlier operation(s) omitted`);
  outcome.longestPrefix.slice(shownFrom).forEach((index, i) => {
    lines.push(`  ${String(shownFrom + i + 1).padStart(4)}. ${describeWithTimes(searched[index].original)}`);
  });
  lines.push(`State after the prefix: ${prepared.describeState(outcome.stateAfterPrefix)}.`);
  if (outcome.blocked !== undefined) {
    const blocked = searched[outcome.blocked];
    const deadline = blocked.original.return === undefined ? ` (it must precede a read of its value, by ${blocked.return})` : '';
    const direct = blocked.transition(outcome.stateAfterPrefix) === undefined ? prepared.explainRefusal(blocked.original, outcome.stateAfterPrefix) : undefined;
    const then = `Then ${describeWithTimes(blocked.original)}${deadline} must take effect next`;
    lines.push(
      direct === undefined
        ? `${then}, but no order of it and the other operations pending at that point leads to a linearization.`
        : `${then}, but cannot: ${direct}; nor can it after any of the other operations pending at that point.`,
    );
    if (outcome.pendingAtBlock.length > 0) {
      lines.push('Pending operations tried before it:');
      for (const index of outcome.pendingAtBlock) lines.push(`        ${describeWithTimes(searched[index].original)}`);
    }
  }
  return lines.join('\n');
}

function checkKey<S extends ModelState, Op extends KvOperation>(
  key: string,
  ops: KvOperation[],
  prepared: PreparedKey<S, Op>,
  deadline: number,
): { verdict: SearchVerdict; failure?: CheckFailure } {
  const outcome = searchLinearization(prepared.ops, prepared.initial, deadline);
  if (outcome.verdict !== 'violation') return { verdict: outcome.verdict };
  return { verdict: 'violation', failure: { key, explanation: explainViolation(key, prepared, outcome), operations: ops } };
}

/**
 * Decides whether a history of single-key operations is linearizable. Keys are checked one by one
 * in order of first appearance; the first violation stops the check.
 */
export function checkKvHistory(history: readonly KvOperation[], options: CheckOptions = {}): CheckResult {
  const deadline = options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs;
  let keysChecked = 0;
  for (const [key, unordered] of partitionByKey(history)) {
    const ops = [...unordered].sort((a, b) => a.call - b.call);
    const result = ops.every(isListOperation)
      ? checkKey(key, ops, prepareListKey(ops), deadline)
      : checkKey(key, ops, prepareRegisterKey(ops.filter(isRegisterOperation)), deadline);
    if (result.verdict === 'timeout') return { ok: false, timedOut: true, keysChecked };
    keysChecked++;
    if (result.failure !== undefined) return { ok: false, timedOut: false, keysChecked, failure: result.failure };
  }
  return { ok: true, timedOut: false, keysChecked };
}
