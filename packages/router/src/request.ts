import { getOwn, serializationError, setOwn, validationError } from '@shoal/model';
import type { EngineContext } from './operation.ts';

/**
 * Reading request parameters the way DynamoDB does. A request passes three gates, each with its own
 * error: the JSON type of each member (SerializationException, raised by the readers below), the
 * member constraints (one ValidationException listing up to ten violations, collected by
 * `Constraints`), then the operation's own rules (one ValidationException each, thrown by the handler).
 */

export type RequestBody = Record<string, unknown>;

/** The Java-side class DynamoDB's deserializer names when a JSON value has the wrong type. */
function javaClassOf(value: unknown): string {
  if (typeof value === 'string') return 'java.lang.String';
  if (typeof value === 'number') return 'com.amazon.coral.value.json.numbers.TruncatingBigNumber';
  if (typeof value === 'boolean') return 'java.lang.Boolean';
  if (Array.isArray(value)) return 'java.util.ArrayList';
  return 'java.util.LinkedHashMap';
}

function typeMismatch(value: unknown, expected: string): never {
  // Reached for null only inside lists and maps: a null member is treated as absent before this.
  if (value === null) throw serializationError(`Unexpected null value where an ${expected} was expected`);
  throw serializationError(`class ${javaClassOf(value)} can not be converted to an ${expected}`);
}

/** A member that is absent or JSON null (DynamoDB treats both as not set). */
function memberOf(body: RequestBody, field: string): unknown {
  const value = getOwn(body, field);
  return value === null ? undefined : value;
}

export function isStruct(value: unknown): value is RequestBody {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a value (a member, a list element, a map value) is a JSON string. */
export function asString(value: unknown): string {
  if (typeof value !== 'string') typeMismatch(value, 'String');
  return value;
}

export function asBoolean(value: unknown): boolean {
  if (typeof value !== 'boolean') typeMismatch(value, 'Boolean');
  return value;
}

/** Integer and Long members: DynamoDB truncates a fractional JSON number. */
export function asInteger(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) typeMismatch(value, 'Integer');
  return Math.trunc(value);
}

/** A structure or a map: a JSON object. */
export function asStruct(value: unknown): RequestBody {
  if (!isStruct(value)) {
    if (Array.isArray(value)) throw serializationError('Start of list found where not expected');
    throw serializationError('Unexpected value type in payload');
  }
  return value;
}

export function asList(value: unknown): unknown[] {
  if (!Array.isArray(value)) {
    if (isStruct(value)) throw serializationError('Start of structure or map found where not expected');
    throw serializationError('Unexpected field type');
  }
  return value;
}

export function optionalString(body: RequestBody, field: string): string | undefined {
  const value = memberOf(body, field);
  return value === undefined ? undefined : asString(value);
}

export function optionalBoolean(body: RequestBody, field: string): boolean | undefined {
  const value = memberOf(body, field);
  return value === undefined ? undefined : asBoolean(value);
}

export function optionalInteger(body: RequestBody, field: string): number | undefined {
  const value = memberOf(body, field);
  return value === undefined ? undefined : asInteger(value);
}

export function optionalStruct(body: RequestBody, field: string): RequestBody | undefined {
  const value = memberOf(body, field);
  return value === undefined ? undefined : asStruct(value);
}

/** A JSON object used as a map (e.g. ExpressionAttributeNames): same wire type as a structure. */
export const optionalMap = optionalStruct;

export function optionalList(body: RequestBody, field: string): unknown[] | undefined {
  const value = memberOf(body, field);
  return value === undefined ? undefined : asList(value);
}

/** A list whose elements must all be structures. */
export function optionalStructList(body: RequestBody, field: string): RequestBody[] | undefined {
  return optionalList(body, field)?.map(asStruct);
}

export function optionalStringList(body: RequestBody, field: string): string[] | undefined {
  return optionalList(body, field)?.map(asString);
}

/** A map whose values must all be strings (e.g. ExpressionAttributeNames). */
export function optionalStringMap(body: RequestBody, field: string): Record<string, string> | undefined {
  const map = optionalMap(body, field);
  if (map === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(map)) setOwn(out, key, asString(value));
  return out;
}

/** DynamoDB names a member in messages by its path with each segment's first letter lower-cased. */
export function memberPath(...segments: (string | number)[]): string {
  return segments
    .map((segment) => (typeof segment === 'number' ? String(segment) : segment.charAt(0).toLowerCase() + segment.slice(1)))
    .join('.');
}

function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `'[${value.map((element) => describeValue(element).replace(/^'|'$/g, '')).join(', ')}]'`;
  if (typeof value === 'object') return `'${JSON.stringify(value)}'`;
  return `'${String(value)}'`;
}

/** The prefix of most of DynamoDB's semantic ValidationException messages. */
export const INVALID_PARAMETERS = 'One or more parameter values were invalid: ';

export const TABLE_NAME_PATTERN = '[a-zA-Z0-9_.-]+';

/**
 * A table's ARN, which DynamoDB takes wherever the API reference says "You can also provide the Amazon
 * Resource Name (ARN) of the table in this parameter" (item operations, batches, transactions,
 * DescribeTable...). Any account and region are taken: Shoal has one of each.
 */
const TABLE_ARN = /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]*:[0-9]{12}:table\/([^/]+)$/;

/** The table a name or a table ARN names. */
export function tableNameOf(nameOrArn: string): string {
  return TABLE_ARN.exec(nameOrArn)?.[1] ?? nameOrArn;
}
const MAX_REPORTED_VIOLATIONS = 10;

/** Compiled member patterns by source; the patterns are constants of this code, so the map stays small. */
const compiledPatterns = new Map<string, RegExp>();

function compiledPattern(pattern: string): RegExp {
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    compiled = new RegExp(`^(?:${pattern})$`, 'u');
    compiledPatterns.set(pattern, compiled);
  }
  return compiled;
}

/**
 * Collects member constraint violations and throws them as DynamoDB's single message
 * "N validation error(s) detected: Value 'v' at 'path' failed to satisfy constraint: ...; ...".
 */
export class Constraints {
  private readonly violations: string[] = [];

  private add(path: string, value: unknown, constraint: string): void {
    if (this.violations.length >= MAX_REPORTED_VIOLATIONS) return;
    this.violations.push(`Value ${describeValue(value)} at '${path}' failed to satisfy constraint: ${constraint}`);
  }

  /** A violation DynamoDB words its own way (a map value's constraint, a member named without its value). */
  violation(text: string): void {
    if (this.violations.length < MAX_REPORTED_VIOLATIONS) this.violations.push(text);
  }

  /** False (and a violation) when the value is absent. */
  notNull(path: string, value: unknown): boolean {
    if (value !== undefined && value !== null) return true;
    this.add(path, value, 'Member must not be null');
    return false;
  }

  pattern(path: string, value: string | undefined, pattern: string): void {
    if (value === undefined) return;
    if (!compiledPattern(pattern).test(value)) {
      this.add(path, value, `Member must satisfy regular expression pattern: ${pattern}`);
    }
  }

  /** Length of a string, a list or a map (its number of entries). */
  length(path: string, value: string | unknown[] | RequestBody | undefined, min?: number, max?: number): void {
    if (value === undefined) return;
    const length = typeof value === 'string' || Array.isArray(value) ? value.length : Object.keys(value).length;
    if (min !== undefined && length < min) this.add(path, value, `Member must have length greater than or equal to ${min}`);
    if (max !== undefined && length > max) this.add(path, value, `Member must have length less than or equal to ${max}`);
  }

  range(path: string, value: number | undefined, min?: number, max?: number): void {
    if (value === undefined) return;
    if (min !== undefined && value < min) this.add(path, value, `Member must have value greater than or equal to ${min}`);
    if (max !== undefined && value > max) this.add(path, value, `Member must have value less than or equal to ${max}`);
  }

  oneOf(path: string, value: string | undefined, allowed: readonly string[]): void {
    if (value === undefined) return;
    if (!allowed.includes(value)) this.add(path, value, `Member must satisfy enum value set: [${allowed.join(', ')}]`);
  }

  /** Table and index names: 3 to 255 characters of [a-zA-Z0-9_.-]. */
  name(path: string, value: string | undefined): void {
    this.pattern(path, value, TABLE_NAME_PATTERN);
    this.length(path, value, 3, 255);
  }

  /** A required table name. */
  tableName(path: string, value: string | undefined): void {
    if (this.notNull(path, value)) this.name(path, value);
  }

  /**
   * A required table name or table ARN (whose name part must be a table name). An empty one breaks
   * only the member's minimum length of 1 (paritysuite/dynamodb-conformance tier3 putItem and
   * validation-ordering updateItem, captured from DynamoDB).
   */
  tableNameOrArn(path: string, value: string | undefined): void {
    if (!this.notNull(path, value)) return;
    if (value === '') this.add(path, value, 'Member must have length greater than or equal to 1');
    else this.name(path, tableNameOf(value as string));
  }

  get count(): number {
    return this.violations.length;
  }

  throwIfAny(): void {
    const count = this.violations.length;
    if (count === 0) return;
    throw validationError(`${count} validation error${count > 1 ? 's' : ''} detected: ${this.violations.join('; ')}`);
  }
}

/** The enum values of `ReturnConsumedCapacity`, shared by every data operation. */
export const RETURN_CONSUMED_CAPACITY = ['INDEXES', 'TOTAL', 'NONE'] as const;

/**
 * Reads and validates a required `TableName` member (a name or a table ARN) on its own, and answers the
 * table's name (for operations with no other
 * constrained member); operations with more constraints pass the name to their own `Constraints`.
 */
export function requireTableName(body: RequestBody, field = 'TableName'): string {
  const name = optionalString(body, field);
  const constraints = new Constraints();
  constraints.tableNameOrArn(memberPath(field), name);
  constraints.throwIfAny();
  return tableNameOf(name as string);
}

/** What the router gives an operation besides the engine: the client's view of it and shared work. */
export interface RequestInfo {
  /** The Host header the client used (DescribeEndpoints answers with it). */
  host: string;
  /** Region in ARNs and endpoint names. */
  region: string;
  /** Serializes table management (create, update, delete) so two requests never race on one record. */
  tableLock: <T>(work: () => Promise<T>) => Promise<T>;
  /** Runs work after the response (index backfills); `stop` aborts when the router closes, which waits for the work. */
  background: (work: (stop: AbortSignal) => Promise<void>) => void;
}

/**
 * A handler of the router's own operations. Every `OperationHandler` (body, engine) fits this type,
 * so item operations written against the engine contract plug into the same table.
 */
export type RouterOperationHandler = (body: RequestBody, ctx: EngineContext, request: RequestInfo) => Promise<unknown>;
