/**
 * Syntax trees of the expression languages as parsed, before placeholders are bound. They depend only on
 * the expression text, so one parse serves every request that sends the same text.
 */

/** A path element as written: a bare attribute name, a `#name` placeholder, or a list index. */
export type RawPathElement =
  | { kind: 'attribute'; name: string }
  | { kind: 'placeholder'; name: string }
  | { kind: 'index'; index: number };

export interface PathNode {
  type: 'path';
  elements: RawPathElement[];
  /** Written inside parentheses, e.g. `(a) = :v`: DynamoDB rejects the redundant parentheses. */
  parenthesized?: boolean;
}

export interface ValueNode {
  type: 'value';
  /** The placeholder, with its colon. */
  name: string;
  parenthesized?: boolean;
}

export interface CallNode {
  type: 'call';
  name: string;
  args: OperandNode[];
  parenthesized?: boolean;
}

export type OperandNode = PathNode | ValueNode | CallNode;

export type Comparator = '=' | '<>' | '<' | '<=' | '>' | '>=';

export type ConditionNode =
  | { type: 'compare'; op: Comparator; left: OperandNode; right: OperandNode }
  | { type: 'between'; operand: OperandNode; low: OperandNode; high: OperandNode }
  | { type: 'in'; operand: OperandNode; list: OperandNode[] }
  | { type: 'and' | 'or'; left: ConditionNode; right: ConditionNode }
  | { type: 'not'; operand: ConditionNode }
  /** A boolean function such as attribute_exists(a). */
  | { type: 'function'; call: CallNode }
  /** `( condition )`; kept so that doubled parentheses can be reported. */
  | { type: 'parens'; inner: ConditionNode };

/** The right-hand side of a SET action. */
export type SetValueNode =
  | OperandNode
  | { type: 'arithmetic'; op: '+' | '-'; left: OperandNode; right: OperandNode };

export type UpdateActionNode =
  | { action: 'SET'; path: PathNode; value: SetValueNode }
  | { action: 'REMOVE'; path: PathNode }
  | { action: 'ADD' | 'DELETE'; path: PathNode; value: ValueNode };

export interface UpdateNode {
  actions: UpdateActionNode[];
}

export interface ProjectionNode {
  paths: PathNode[];
}
