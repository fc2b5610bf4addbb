/**
 * Sequential specifications of the two key kinds. A model turns each operation into a transition
 * once, up front. States are interned: equal states are the same object with the same `id`, so the
 * search compares and memoizes states by a small integer whatever their size.
 */
import type { ListOperation, RegisterOperation } from './history.ts';

export interface ModelState {
  readonly id: number;
}

/** Next state, or undefined when the operation cannot take effect (with its recorded output) here. */
export type Transition<S extends ModelState> = (state: S) => S | undefined;

export interface SequentialModel<S extends ModelState, Op> {
  readonly initial: S;
  /**
   * The operation's effect. For an indeterminate operation (no return) the output is unknown; the
   * transition is its successful effect only, since "took no effect" is covered by never
   * linearizing it.
   */
  transition(op: Op): Transition<S>;
  describeState(state: S): string;
  /** Why the operation cannot take effect in this state, for failure reports. */
  explainRefusal(op: Op, state: S): string;
}

function quote(value: string | null): string {
  return value === null ? 'absent' : JSON.stringify(value);
}

export interface RegisterState extends ModelState {
  readonly value: string | null;
}

/** The id shared by all states holding a value that no operation reads (see createRegisterModel). */
const UNREAD_VALUE_ID = 1;

/**
 * A register. States holding a value that no get returns and no cas expects share one id: from
 * any of them every later get and cas behaves the same, so the memo may treat them as one state,
 * which lets it recognize far more configurations as already explored. (They keep their own value
 * for comparisons, which never match, and for failure reports.)
 */
export function createRegisterModel(observedValues: ReadonlySet<string>): SequentialModel<RegisterState, RegisterOperation> {
  const interned = new Map<string, RegisterState>();
  const describeState = (state: RegisterState): string => quote(state.value);
  const stateOf = (value: string): RegisterState => {
    let state = interned.get(value);
    if (state === undefined) {
      state = { id: observedValues.has(value) ? interned.size + 2 : UNREAD_VALUE_ID, value };
      interned.set(value, state);
    }
    return state;
  };
  return {
    initial: { id: 0, value: null },
    transition(op) {
      switch (op.type) {
        case 'put': {
          const written = stateOf(op.value);
          return () => written;
        }
        case 'get': {
          if (op.return === undefined) return (state) => state;
          const output = op.output ?? null;
          return (state) => (state.value === output ? state : undefined);
        }
        case 'cas': {
          const written = stateOf(op.value);
          if (op.return === undefined || op.ok === true) return (state) => (state.value === op.expected ? written : undefined);
          return (state) => (state.value === op.expected ? undefined : state);
        }
      }
    },
    describeState,
    explainRefusal(op, state) {
      const holds = `the register holds ${describeState(state)}`;
      if (op.type === 'get') return `it returned ${quote(op.output ?? null)}, but ${holds}`;
      if (op.type === 'cas' && op.ok === false) return `it failed, but ${holds}, which is what it expected`;
      if (op.type === 'cas') return `it expected ${quote(op.expected)}, but ${holds}`;
      return 'it cannot take effect here';
    },
  };
}

/** A list as a chain of appends: a step costs O(1) whatever the list's length. */
export interface ListState extends ModelState {
  readonly last: string | undefined;
  readonly previous: ListState | undefined;
}

export function listElements(list: ListState): string[] {
  const elements: string[] = [];
  for (let node: ListState | undefined = list; node?.last !== undefined; node = node.previous) elements.push(node.last);
  return elements.reverse();
}

/**
 * An append-only list register (absent = empty), set up with the outputs of the completed reads.
 *
 * An element appended exactly once that some completed read shows has a known prefix: whenever it
 * was appended, the list was exactly what that read showed before it (lists only grow, and the
 * read saw it right there), so its append is allowed only then. Without this, concurrent appends
 * that no read separates would be tried in every order.
 */
export function createListModel(
  completedReads: readonly (readonly string[])[],
  appendedOnce: ReadonlySet<string>,
): SequentialModel<ListState, ListOperation> {
  const empty: ListState = { id: 0, last: undefined, previous: undefined };
  // `${previous id}:${element}` is unambiguous: the id has no ':'.
  const interned = new Map<string, ListState>();
  const append = (list: ListState, element: string): ListState => {
    const internKey = `${list.id}:${element}`;
    let state = interned.get(internKey);
    if (state === undefined) {
      state = { id: interned.size + 1, last: element, previous: list };
      interned.set(internKey, state);
    }
    return state;
  };
  const describeState = (state: ListState): string => JSON.stringify(listElements(state));
  const readStates = new Map<readonly string[], ListState>();
  const knownPrefixes = new Map<string, ListState>();
  for (const output of completedReads) {
    let state = empty;
    for (const element of output) {
      if (appendedOnce.has(element) && !knownPrefixes.has(element)) knownPrefixes.set(element, state);
      state = append(state, element);
    }
    readStates.set(output, state);
  }
  return {
    initial: empty,
    transition(op) {
      if (op.type === 'append') {
        const prefix = knownPrefixes.get(op.value);
        if (prefix === undefined) return (state) => append(state, op.value);
        return (state) => (state === prefix ? append(state, op.value) : undefined);
      }
      if (op.return === undefined || op.output === undefined) return (state) => state;
      const expected = readStates.get(op.output) ?? op.output.reduce(append, empty);
      return (state) => (state === expected ? state : undefined);
    },
    describeState,
    explainRefusal(op, state) {
      const here = `the list is ${describeState(state)} here`;
      if (op.type === 'read-list') return `it returned ${JSON.stringify(op.output)}, but ${here}`;
      const prefix = knownPrefixes.get(op.value);
      if (prefix === undefined) return 'it cannot take effect here';
      return `a completed read shows it right after ${describeState(prefix)}, but ${here}`;
    },
  };
}
