/**
 * Update expressions: SET (with + and -, if_not_exists, list_append), REMOVE, ADD and DELETE, with
 * DynamoDB's checks and semantics. Every value on the right-hand side is read from the item as it was
 * before the update, and list indexes always mean positions in the original list, so the actions of one
 * expression never see each other's effects.
 */
import type { AttributeType, AttributeValue, Item } from '../attribute-value.ts';
import { validationError } from '../errors.ts';
import { addNumbers, normalizeNumber, subtractNumbers } from '../number.ts';
import { attributeTypeOf, decodeBinary } from '../values.ts';
import type { CallNode, OperandNode, SetValueNode, UpdateNode } from './ast.ts';
import { bindPath, bindValue, type Placeholders, type Problems } from './bind.ts';
import { UPDATE_FUNCTIONS } from './condition.ts';
import { getOwn, setOwn } from '../records.ts';
import { checkPathsIndependent, valueAtPath, type DocumentPath } from './paths.ts';
import type { TableSchema } from '../schema.ts';

export const UPDATE_PROBLEM_ORDER = [
  'reserved',
  'unknownFunction',
  'misusedFunction',
  'section',
  'undefinedName',
  'undefinedValue',
  'pathOverlap',
  'pathConflict',
  'operand',
  'function',
] as const;

const CONDITION_ONLY_FUNCTIONS = new Set(['attribute_exists', 'attribute_not_exists', 'attribute_type', 'begins_with', 'contains', 'size']);

const MISSING_ATTRIBUTE = 'The provided expression refers to an attribute that does not exist in the item';
/** An ADD, DELETE, `+`, `-` or list_append meeting an item attribute of a type it cannot take. */
export const WRONG_DATA_TYPE = 'An operand in the update expression has an incorrect data type';
const INVALID_PATH = 'The document path provided in the update expression is invalid for update';

/** Names DynamoDB uses for value types in ADD/DELETE operand messages. */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  S: 'STRING',
  N: 'NUMBER',
  B: 'BINARY',
  BOOL: 'BOOLEAN',
  NULL: 'NULL',
  L: 'LIST',
  M: 'MAP',
};

export interface CompiledUpdate {
  /**
   * The item after the update. `existing` undefined means there is no item yet: the update starts from
   * `key`, except that an update which only removes (REMOVE, DELETE) leaves no item: undefined.
   * Throws validationError with DynamoDB's message when the update cannot apply to this item.
   */
  apply(existing: Item | undefined, key: Item): Item | undefined;
  /** Top-level attribute names the update touches, in expression order (for ReturnValues UPDATED_*). */
  readonly updatedAttributes: string[];
  /** The document paths the update writes or removes. */
  readonly updatedPaths: DocumentPath[];
  /** Top-level names under which the update reads or writes a nested path (a.b, a[1]). */
  readonly nestedAttributes: ReadonlySet<string>;
  /**
   * The type the update gives top-level `attribute` when that is known before reading the item (a
   * value, `+` or `-`, list_append, an ADD or DELETE operand); undefined when it depends on the item.
   */
  staticTypeOf(attribute: string): AttributeType | undefined;
}

type ValueComputer = (item: Item) => AttributeValue;

function wrongOperandType(name: string, value: AttributeValue, problems: Problems): void {
  problems.report(
    'function',
    `Incorrect operand type for operator or function; operator or function: ${name}, operand type: ${attributeTypeOf(value)}`,
  );
}

/**
 * Only if_not_exists may be nested in an update: a call inside another call's arguments or inside `+`/`-`
 * (list_append(list_append(:a, :b), :c), if_not_exists(a, list_append(b, :c))) is refused.
 */
const NESTABLE_UPDATE_FUNCTIONS = new Set(['if_not_exists']);

/** Whether `name` may be called here; reports why not. */
function checkUpdateCall(name: string, nested: boolean, problems: Problems): boolean {
  if (!Object.hasOwn(UPDATE_FUNCTIONS, name)) {
    if (CONDITION_ONLY_FUNCTIONS.has(name)) {
      problems.report('misusedFunction', `The function is not allowed in an update expression; function: ${name}`);
    } else {
      problems.report('unknownFunction', `Invalid function name; function: ${name}`);
    }
    return false;
  }
  if (nested && !NESTABLE_UPDATE_FUNCTIONS.has(name)) {
    problems.report('misusedFunction', `The function is not allowed to be used this way in an expression; function: ${name}`);
    return false;
  }
  return true;
}

function bindUpdateCall(node: CallNode, nested: boolean, placeholders: Placeholders, problems: Problems, reads: DocumentPath[]): ValueComputer {
  const name = node.name;
  // The call is checked before its arguments, as DynamoDB walks the expression from the outside in.
  const usable = checkUpdateCall(name, nested, problems);
  const args = node.args.map((arg) => bindUpdateOperand(arg, true, placeholders, problems, reads));
  const unusable: ValueComputer = () => {
    throw new Error('unreachable: an expression with problems is never applied');
  };
  if (!usable) return unusable;
  if (args.length !== UPDATE_FUNCTIONS[name]) {
    problems.report(
      'function',
      `Incorrect number of operands for operator or function; operator or function: ${name}, number of operands: ${args.length}`,
    );
    return unusable;
  }
  const [first, second] = args;
  if (name === 'if_not_exists') {
    const target = node.args[0];
    if (target.type !== 'path') {
      problems.report('function', `Operator or function requires a document path; operator or function: ${name}`);
      return unusable;
    }
    const path = bindPath(target, placeholders, problems);
    reads.push(path);
    const fallback = second.compute;
    return (item) => valueAtPath(item, path) ?? fallback(item);
  }
  for (const arg of args) {
    if (arg.literal !== undefined && !('L' in arg.literal)) wrongOperandType(name, arg.literal, problems);
  }
  const [left, right] = [first.compute, second.compute];
  return (item) => {
    const a = left(item);
    const b = right(item);
    if (!('L' in a) || !('L' in b)) throw validationError(WRONG_DATA_TYPE);
    return { L: [...a.L, ...b.L] };
  };
}

interface BoundUpdateOperand {
  compute: ValueComputer;
  literal?: AttributeValue;
}

/**
 * `nested`: the operand is a function argument or an operand of `+`/`-`, not a whole SET value.
 * Every path the operand reads is added to `reads`.
 */
function bindUpdateOperand(
  node: OperandNode,
  nested: boolean,
  placeholders: Placeholders,
  problems: Problems,
  reads: DocumentPath[],
): BoundUpdateOperand {
  if (node.type === 'value') {
    const literal = bindValue(node, placeholders, problems);
    return literal === undefined ? { compute: () => ({ NULL: true }) } : { compute: () => literal, literal };
  }
  if (node.type === 'path') {
    const path = bindPath(node, placeholders, problems);
    reads.push(path);
    return {
      compute: (item) => {
        const value = valueAtPath(item, path);
        if (value === undefined) throw validationError(MISSING_ATTRIBUTE);
        return value;
      },
    };
  }
  return { compute: bindUpdateCall(node, nested, placeholders, problems, reads) };
}

/** A SET value: how to compute it, and its type when known before reading the item. */
interface BoundSetValue {
  compute: ValueComputer;
  staticType?: AttributeType;
}

function bindSetValue(node: SetValueNode, placeholders: Placeholders, problems: Problems, reads: DocumentPath[]): BoundSetValue {
  if (node.type !== 'arithmetic') {
    const operand = bindUpdateOperand(node, false, placeholders, problems, reads);
    const staticType =
      operand.literal !== undefined ? attributeTypeOf(operand.literal) : node.type === 'call' && node.name === 'list_append' ? 'L' : undefined;
    return { compute: operand.compute, staticType };
  }
  const operands = [node.left, node.right].map((operand) => bindUpdateOperand(operand, true, placeholders, problems, reads));
  for (const operand of operands) {
    if (operand.literal !== undefined && !('N' in operand.literal)) wrongOperandType(node.op, operand.literal, problems);
  }
  const [left, right] = [operands[0].compute, operands[1].compute];
  const combine = node.op === '+' ? addNumbers : subtractNumbers;
  const compute: ValueComputer = (item) => {
    const a = left(item);
    const b = right(item);
    if (!('N' in a) || !('N' in b)) throw validationError(WRONG_DATA_TYPE);
    return { N: combine(a.N, b.N) };
  };
  return { compute, staticType: 'N' };
}

export function cloneValue(value: AttributeValue): AttributeValue {
  if ('M' in value) {
    const map: Record<string, AttributeValue> = {};
    for (const key of Object.keys(value.M)) setOwn(map, key, cloneValue(value.M[key]));
    return { M: map };
  }
  if ('L' in value) return { L: value.L.map(cloneValue) };
  if ('SS' in value) return { SS: [...value.SS] };
  if ('NS' in value) return { NS: [...value.NS] };
  if ('BS' in value) return { BS: [...value.BS] };
  return { ...value };
}

type SetType = 'SS' | 'NS' | 'BS';

function setTypeOf(value: AttributeValue): SetType | undefined {
  if ('SS' in value) return 'SS';
  if ('NS' in value) return 'NS';
  if ('BS' in value) return 'BS';
  return undefined;
}

function setElements(value: AttributeValue, type: SetType): string[] {
  return (value as Record<SetType, string[]>)[type];
}

/** Set elements are the same element when equal as values: numbers by value, binaries by bytes. */
const ELEMENT_IDENTITY: Readonly<Record<SetType, (element: string) => string>> = {
  SS: (s) => s,
  NS: normalizeNumber,
  BS: (b) => decodeBinary(b).toString('base64'),
};

function setUnion(type: SetType, current: string[], added: string[]): string[] {
  const identity = ELEMENT_IDENTITY[type];
  const seen = new Set(current.map(identity));
  const result = [...current];
  for (const element of added) {
    const id = identity(element);
    if (!seen.has(id)) {
      seen.add(id);
      result.push(element);
    }
  }
  return result;
}

function setDifference(type: SetType, current: string[], removed: string[]): string[] {
  const identity = ELEMENT_IDENTITY[type];
  const gone = new Set(removed.map(identity));
  return current.filter((element) => !gone.has(identity(element)));
}

/** Removals and appends of one list, by original position, applied when all actions are done. */
interface ListEdit {
  removed: Set<number>;
  appended: Map<number, AttributeValue>;
}

/** The item being built by one application of an update. */
class UpdateTarget {
  readonly item: Item;
  private readonly copied = new Set<string>();
  private readonly listEdits = new Map<{ L: AttributeValue[] }, ListEdit>();

  constructor(base: Item) {
    this.item = { ...base };
  }

  /** The container that holds the last segment of `path`, copied so that it can be changed. */
  private parent(path: DocumentPath): AttributeValue | undefined {
    const head = path[0] as string;
    if (!this.copied.has(head)) {
      this.copied.add(head);
      if (Object.hasOwn(this.item, head)) setOwn(this.item, head, cloneValue(this.item[head]));
    }
    if (path.length === 1) return undefined;
    let value: AttributeValue | undefined = getOwn(this.item, head);
    for (let i = 1; i < path.length - 1 && value !== undefined; i++) {
      const segment = path[i];
      if (typeof segment === 'number') value = 'L' in value ? value.L[segment] : undefined;
      else value = 'M' in value ? getOwn(value.M, segment) : undefined;
    }
    const last = path[path.length - 1];
    if (value === undefined || (typeof last === 'number' ? !('L' in value) : !('M' in value))) {
      throw validationError(INVALID_PATH);
    }
    return value;
  }

  private edit(list: { L: AttributeValue[] }): ListEdit {
    let edit = this.listEdits.get(list);
    if (edit === undefined) {
      edit = { removed: new Set(), appended: new Map() };
      this.listEdits.set(list, edit);
    }
    return edit;
  }

  read(path: DocumentPath): AttributeValue | undefined {
    const parent = this.parent(path);
    const last = path[path.length - 1];
    if (parent === undefined) return getOwn(this.item, last as string);
    if (typeof last === 'number') {
      const list = parent as { L: AttributeValue[] };
      return last < list.L.length ? list.L[last] : this.listEdits.get(list)?.appended.get(last);
    }
    const map = (parent as { M: Record<string, AttributeValue> }).M;
    return getOwn(map, last);
  }

  write(path: DocumentPath, value: AttributeValue): void {
    const parent = this.parent(path);
    const last = path[path.length - 1];
    if (parent === undefined) {
      setOwn(this.item, last as string, value);
    } else if (typeof last === 'number') {
      const list = parent as { L: AttributeValue[] };
      // Writing past the end of a list appends, in index order.
      if (last < list.L.length) list.L[last] = value;
      else this.edit(list).appended.set(last, value);
    } else {
      setOwn((parent as { M: Record<string, AttributeValue> }).M, last, value);
    }
  }

  remove(path: DocumentPath): void {
    const parent = this.parent(path);
    const last = path[path.length - 1];
    if (parent === undefined) {
      delete this.item[last as string];
    } else if (typeof last === 'number') {
      const list = parent as { L: AttributeValue[] };
      if (last < list.L.length) this.edit(list).removed.add(last);
      else this.listEdits.get(list)?.appended.delete(last);
    } else {
      delete (parent as { M: Record<string, AttributeValue> }).M[last];
    }
  }

  finish(): Item {
    for (const [list, edit] of this.listEdits) {
      const kept = edit.removed.size === 0 ? list.L : list.L.filter((_, i) => !edit.removed.has(i));
      const appended = [...edit.appended].sort((a, b) => a[0] - b[0]).map(([, value]) => value);
      list.L = appended.length === 0 ? kept : [...kept, ...appended];
    }
    return this.item;
  }
}

type BoundAction =
  | { action: 'SET'; path: DocumentPath; value: ValueComputer; staticType?: AttributeType }
  | { action: 'REMOVE'; path: DocumentPath }
  | { action: 'ADD' | 'DELETE'; path: DocumentPath; value: AttributeValue };

function applyAdd(target: UpdateTarget, path: DocumentPath, value: AttributeValue): void {
  const current = target.read(path);
  if ('N' in value) {
    if (current === undefined) target.write(path, { N: normalizeNumber(value.N) });
    else if ('N' in current) target.write(path, { N: addNumbers(current.N, value.N) });
    else throw validationError(WRONG_DATA_TYPE);
    return;
  }
  const type = setTypeOf(value) as SetType;
  const added = setElements(value, type);
  if (current === undefined) {
    target.write(path, { [type]: setUnion(type, [], added) } as AttributeValue);
  } else if (setTypeOf(current) === type) {
    target.write(path, { [type]: setUnion(type, setElements(current, type), added) } as AttributeValue);
  } else {
    throw validationError(WRONG_DATA_TYPE);
  }
}

function applyDelete(target: UpdateTarget, path: DocumentPath, value: AttributeValue): void {
  const current = target.read(path);
  if (current === undefined) return;
  const type = setTypeOf(value) as SetType;
  if (setTypeOf(current) !== type) throw validationError(WRONG_DATA_TYPE);
  const remaining = setDifference(type, setElements(current, type), setElements(value, type));
  // DynamoDB has no empty sets: deleting the last element removes the attribute.
  if (remaining.length === 0) target.remove(path);
  else target.write(path, { [type]: remaining } as AttributeValue);
}

class BoundUpdate implements CompiledUpdate {
  readonly updatedAttributes: string[];
  readonly updatedPaths: DocumentPath[];
  readonly nestedAttributes: ReadonlySet<string>;
  private readonly actions: readonly BoundAction[];
  private readonly removesOnly: boolean;

  constructor(actions: readonly BoundAction[], reads: readonly DocumentPath[]) {
    this.actions = actions;
    this.nestedAttributes = new Set([...actions.map((a) => a.path), ...reads].filter((path) => path.length > 1).map((path) => path[0] as string));
    this.removesOnly = actions.every((a) => a.action === 'REMOVE' || a.action === 'DELETE');
    this.updatedPaths = actions.map((a) => a.path);
    this.updatedAttributes = [...new Set(actions.map((a) => a.path[0] as string))];
  }

  staticTypeOf(attribute: string): AttributeType | undefined {
    const action = this.actions.find((a) => a.path.length === 1 && a.path[0] === attribute);
    if (action === undefined || action.action === 'REMOVE') return undefined;
    return action.action === 'SET' ? action.staticType : attributeTypeOf(action.value);
  }

  apply(existing: Item | undefined, key: Item): Item | undefined {
    rejectKeyUpdates(this.updatedAttributes, (name) => Object.hasOwn(key, name));
    // DynamoDB creates no item for an update that only removes, and finds no bad path in it either
    // (REMOVE a.b on a missing item succeeds; on an item without a, it is refused).
    if (existing === undefined && this.removesOnly) return undefined;
    const base = existing ?? key;
    // Every right-hand side sees the item as it was before the update.
    const computed = this.actions.map((a) => (a.action === 'SET' ? a.value(base) : undefined));
    const target = new UpdateTarget(base);
    this.actions.forEach((action, i) => {
      switch (action.action) {
        case 'SET':
          target.write(action.path, cloneValue(computed[i] as AttributeValue));
          break;
        case 'REMOVE':
          target.remove(action.path);
          break;
        case 'ADD':
          applyAdd(target, action.path, action.value);
          break;
        case 'DELETE':
          applyDelete(target, action.path, action.value);
          break;
      }
    });
    return target.finish();
  }
}

function rejectKeyUpdates(updatedAttributes: readonly string[], isKey: (name: string) => boolean): void {
  const name = updatedAttributes.find(isKey);
  if (name !== undefined) {
    throw validationError(`One or more parameter values were invalid: Cannot update attribute ${name}. This attribute is part of the key`);
  }
}

/**
 * DynamoDB's checks of an update against the table's keys before it reads the item (dynalite's
 * UpdateItem tests, captured from DynamoDB): no key attribute is written; an index key attribute is
 * not given a value of another type where that type is known from the request; no path reaches into
 * an index key attribute (d.b, d[1]), written or read.
 */
export function checkUpdateKeys(update: CompiledUpdate, table: TableSchema): void {
  const tableKeys = new Set([table.hashKey.name, ...(table.rangeKey ? [table.rangeKey.name] : [])]);
  rejectKeyUpdates(update.updatedAttributes, (name) => tableKeys.has(name));
  const indexKeys = table.indexes.flatMap((index) =>
    [index.hashKey, ...(index.rangeKey ? [index.rangeKey] : [])]
      .filter((attribute) => !tableKeys.has(attribute.name))
      .map((attribute) => ({ index, attribute })),
  );
  for (const { index, attribute } of indexKeys) {
    const type = update.staticTypeOf(attribute.name);
    if (type !== undefined && type !== attribute.type) {
      throw validationError(
        `One or more parameter values were invalid: Type mismatch for Index Key ${attribute.name} Expected: ${attribute.type} Actual: ${type} IndexName: ${index.name}`,
      );
    }
  }
  const reached = indexKeys.find(({ attribute }) => update.nestedAttributes.has(attribute.name));
  if (reached !== undefined) {
    throw validationError(
      `Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: IndexKey: ${reached.attribute.name}`,
    );
  }
}

export function bindUpdate(node: UpdateNode & { repeatedSection?: string }, placeholders: Placeholders, problems: Problems): CompiledUpdate {
  if (node.repeatedSection !== undefined) {
    problems.report('section', `The "${node.repeatedSection}" section can only be used once in an update expression;`);
  }
  const actions: BoundAction[] = [];
  const reads: DocumentPath[] = [];
  for (const action of node.actions) {
    const path = bindPath(action.path, placeholders, problems);
    if (action.action === 'SET') {
      const value = bindSetValue(action.value, placeholders, problems, reads);
      actions.push({ action: 'SET', path, value: value.compute, staticType: value.staticType });
    } else if (action.action === 'REMOVE') {
      actions.push({ action: 'REMOVE', path });
    } else {
      const value = bindValue(action.value, placeholders, problems);
      if (value === undefined) continue;
      const type = attributeTypeOf(value);
      const accepted = setTypeOf(value) !== undefined || (action.action === 'ADD' && type === 'N');
      if (!accepted) {
        problems.report(
          'operand',
          `Incorrect operand type for operator or function; operator: ${action.action}, operand type: ${TYPE_WORDS[type]}`,
        );
      }
      actions.push({ action: action.action, path, value });
    }
  }
  checkPathsIndependent(
    actions.map((a) => a.path),
    (category, message) => problems.report(category, message),
  );
  return new BoundUpdate(actions, reads);
}
