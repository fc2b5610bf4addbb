/**
 * Turns untrusted request JSON into valid attribute values, items and keys, with DynamoDB's errors.
 *
 * Like DynamoDB, it works in two phases: deserialization first (a value of the wrong JSON shape is a
 * SerializationException, whatever else is wrong in the request), then validation (empty sets,
 * duplicates, numbers, nesting: ValidationException). Unknown members of an attribute value and
 * members set to null are ignored, as DynamoDB's deserializer does.
 *
 * Messages follow DynamoDB's as recorded by DynamoDB emulators tested against the service (dynalite,
 * moto); the few that had to be guessed say so where they are produced.
 */
import type { AttributeValue, Item, KeyAttributeType } from './attribute-value.ts';
import { DynamoDbError, serializationError, validationError } from './errors.ts';
import { normalizeNumber } from './number.ts';
import { getOwn } from './records.ts';
import type { IndexSchema, KeyAttribute, TableSchema } from './schema.ts';

/** Deepest level a value may sit at; a top-level attribute value is level 1. */
export const MAX_NESTING_DEPTH = 32;
export const MAX_PARTITION_KEY_BYTES = 2048;
export const MAX_SORT_KEY_BYTES = 1024;

/** The key attributes of a table or an index. */
export interface KeySchema {
  hashKey: KeyAttribute;
  rangeKey?: KeyAttribute;
}

const ATTRIBUTE_VALUE_CLASS = 'com.amazonaws.dynamodb.v20120810.AttributeValue';
const MAP_COLLECTION = `java.util.Map<java.lang.String, ${ATTRIBUTE_VALUE_CLASS}>`;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: deserialization (JSON shape), SerializationException.

function numberToken(value: number): string {
  return Number.isInteger(value) ? 'NUMBER_VALUE' : 'DECIMAL_VALUE';
}

function expectString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') throw serializationError(`${value ? 'TRUE_VALUE' : 'FALSE_VALUE'} cannot be converted to String`);
  if (typeof value === 'number') throw serializationError(`${numberToken(value)} cannot be converted to String`);
  if (Array.isArray(value)) throw serializationError('Unrecognized collection type class java.lang.String');
  throw serializationError('Start of structure or map found where not expected');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function expectBinary(value: unknown): string {
  if (typeof value === 'boolean' || typeof value === 'number') {
    throw serializationError('only base-64-encoded strings are convertible to bytes');
  }
  if (Array.isArray(value)) throw serializationError('Unrecognized collection type class java.nio.ByteBuffer');
  if (typeof value !== 'string') throw serializationError('Start of structure or map found where not expected');
  if (value.length % 4 !== 0) {
    throw serializationError(`Base64 encoded length is expected a multiple of 4 bytes but found: ${value.length}`);
  }
  // Guessed: DynamoDB's exact text for bad characters is not recorded; this one (typo included) is
  // what it says for a non-canonical last character.
  if (!BASE64.test(value) || Buffer.from(value, 'base64').toString('base64') !== value) {
    throw serializationError('Invalid last non-pad Base64 character dectected');
  }
  return value;
}

function expectBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') throw serializationError(`${numberToken(value)} cannot be converted to Boolean`);
  if (typeof value === 'string') {
    // DynamoDB's deserializer converts these strings.
    const word = value.toUpperCase();
    if (word === 'TRUE' || word === '1' || word === 'YES') return true;
    if (word === 'FALSE' || word === '0' || word === 'NO') return false;
    throw serializationError('Unexpected token received from parser');
  }
  if (Array.isArray(value)) throw serializationError('Unrecognized collection type class java.lang.Boolean');
  throw serializationError('Start of structure or map found where not expected');
}

function expectList(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (isObject(value)) throw serializationError('Start of structure or map found where not expected');
  throw serializationError('Unexpected field type');
}

function expectMap(value: unknown): JsonObject {
  if (isObject(value)) return value;
  if (Array.isArray(value)) throw serializationError(`Unrecognized collection type ${MAP_COLLECTION}`);
  throw serializationError('Unexpected field type');
}

/** A deserialized attribute value: its members of known type, not yet validated. */
type RawValue = {
  S?: string;
  N?: string;
  B?: string;
  BOOL?: boolean;
  NULL?: boolean;
  M?: Record<string, RawValue | undefined>;
  L?: (RawValue | undefined)[];
  SS?: (string | undefined)[];
  NS?: (string | undefined)[];
  BS?: (string | undefined)[];
};

function deserializeSet<T>(value: unknown, element: (v: unknown) => T): (T | undefined)[] {
  return expectList(value).map((v) => (v === null || v === undefined ? undefined : element(v)));
}

function deserializeValue(value: unknown): RawValue | undefined {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) throw serializationError(`Unrecognized collection type class ${ATTRIBUTE_VALUE_CLASS}`);
  if (!isObject(value)) throw serializationError('Unexpected value type in payload');
  const raw: RawValue = {};
  // Members in DynamoDB's declaration order, so the first shape error found is DynamoDB's.
  if (value.S != null) raw.S = expectString(value.S);
  if (value.N != null) raw.N = expectString(value.N);
  if (value.B != null) raw.B = expectBinary(value.B);
  if (value.SS != null) raw.SS = deserializeSet(value.SS, expectString);
  if (value.NS != null) raw.NS = deserializeSet(value.NS, expectString);
  if (value.BS != null) raw.BS = deserializeSet(value.BS, expectBinary);
  if (value.M != null) raw.M = deserializeMap(value.M);
  if (value.L != null) raw.L = expectList(value.L).map(deserializeValue);
  if (value.NULL != null) raw.NULL = expectBoolean(value.NULL);
  if (value.BOOL != null) raw.BOOL = expectBoolean(value.BOOL);
  return raw;
}

function deserializeMap(value: unknown): Record<string, RawValue | undefined> {
  // fromEntries defines own properties, so a member named "__proto__" stays an ordinary member.
  return Object.fromEntries(Object.entries(expectMap(value)).map(([name, member]) => [name, deserializeValue(member)]));
}

// ---------------------------------------------------------------------------------------------
// Phase 2: validation and normalization, ValidationException.

const EMPTY_VALUE = 'Supplied AttributeValue is empty, must contain exactly one of the supported datatypes';
const MULTIPLE_TYPES =
  'Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes';
const INVALID = 'One or more parameter values were invalid:';

function nestingError() {
  return validationError(
    'Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit',
  );
}

// Guessed message: DynamoDB's text for a null element inside a set is not recorded.
function nullSetElement() {
  return validationError(`${INVALID} Set may not contain null elements`);
}

function presentElement(element: string | undefined): string {
  if (element === undefined) throw nullSetElement();
  return element;
}

/** A non-empty set of distinct elements, each checked (and normalized) by `element`. */
function validateSet(
  elements: (string | undefined)[],
  emptyMessage: string,
  element: (e: string | undefined) => string,
  duplicatesMessage: (elements: string[]) => string,
): string[] {
  if (elements.length === 0) throw validationError(emptyMessage);
  const out = elements.map(element);
  if (new Set(out).size !== out.length) throw validationError(duplicatesMessage(out));
  return out;
}

const validateStringSet = (elements: (string | undefined)[]) =>
  validateSet(
    elements,
    `${INVALID} An string set  may not be empty`,
    presentElement,
    (out) => `${INVALID} Input collection [${out.join(', ')}] contains duplicates.`,
  );

// Numbers are normalized first, so duplicates are judged by value ("1" and "1.0" are one number).
const validateNumberSet = (elements: (string | undefined)[]) =>
  validateSet(
    elements,
    `${INVALID} An number set  may not be empty`,
    (e) => normalizeNumber(e ?? ''),
    () => 'Input collection contains duplicates',
  );

// Base64 was checked to be canonical, so equal strings are exactly equal bytes.
const validateBinarySet = (elements: (string | undefined)[]) =>
  validateSet(
    elements,
    `${INVALID} Binary sets should not be empty`,
    presentElement,
    (out) => `${INVALID} Input collection [${out.join(', ')}]of type BS contains duplicates.`,
  );

function validateRaw(raw: RawValue | undefined, level: number): AttributeValue {
  if (level > MAX_NESTING_DEPTH) throw nestingError();
  if (raw === undefined) throw validationError(EMPTY_VALUE);
  const results: AttributeValue[] = [];
  if (raw.S !== undefined) results.push({ S: raw.S });
  if (raw.N !== undefined) results.push({ N: normalizeNumber(raw.N) });
  if (raw.B !== undefined) results.push({ B: raw.B });
  if (raw.BOOL !== undefined) results.push({ BOOL: raw.BOOL });
  if (raw.NULL !== undefined) {
    if (!raw.NULL) throw validationError(`${INVALID} Null attribute value types must have the value of true`);
    results.push({ NULL: true });
  }
  if (raw.SS !== undefined) results.push({ SS: validateStringSet(raw.SS) });
  if (raw.NS !== undefined) results.push({ NS: validateNumberSet(raw.NS) });
  if (raw.BS !== undefined) results.push({ BS: validateBinarySet(raw.BS) });
  if (raw.M !== undefined) {
    const members = Object.entries(raw.M).map(([name, member]) => [name, validateRaw(member, level + 1)] as const);
    results.push({ M: Object.fromEntries(members) });
  }
  if (raw.L !== undefined) results.push({ L: raw.L.map((member) => validateRaw(member, level + 1)) });
  if (results.length === 0) throw validationError(EMPTY_VALUE);
  if (results.length > 1) throw validationError(MULTIPLE_TYPES);
  return results[0];
}

function nullMember(path: string) {
  return validationError(
    `1 validation error detected: Value null at '${path}' failed to satisfy constraint: Member must not be null`,
  );
}

/**
 * Validates one attribute value from a request and returns a normalized copy (canonical numbers,
 * strings "true"/"false" of BOOL and NULL converted). `path` names where the value sits in the
 * request (e.g. `item.a`): when given, a null value is reported as DynamoDB reports a missing
 * member there; without it, a null value is an empty attribute value.
 */
export function validateAttributeValue(value: unknown, path?: string): AttributeValue {
  if ((value === null || value === undefined) && path !== undefined) throw nullMember(path);
  return validateRaw(deserializeValue(value), 1);
}

// Guessed message: DynamoDB's exact text for an empty attribute name is not recorded.
const EMPTY_ATTRIBUTE_NAME = `${INVALID} An attribute name cannot be empty`;

/**
 * Validates a map of attribute values (an Item, a Key, an ExclusiveStartKey): deserialization of
 * every value first, then validation. `parameter` names the request member for a null map.
 */
export function validateItem(value: unknown, parameter = 'item'): Item {
  if (value === null || value === undefined) throw nullMember(parameter);
  const members = Object.entries(deserializeMap(value)).map(([name, member]) => {
    if (name === '') throw validationError(EMPTY_ATTRIBUTE_NAME);
    return [name, validateRaw(member, 1)] as const;
  });
  return Object.fromEntries(members);
}

// ---------------------------------------------------------------------------------------------
// Keys.

/** The value of a key-typed attribute value, or undefined when it has another type. */
function keyScalar(value: AttributeValue, type: KeyAttributeType): string | undefined {
  if (type === 'S') return 'S' in value ? value.S : undefined;
  if (type === 'N') return 'N' in value ? value.N : undefined;
  return 'B' in value ? value.B : undefined;
}

function typeName(value: AttributeValue): string {
  return Object.keys(value)[0];
}

function keyBytes(scalar: string, type: KeyAttributeType): number {
  return type === 'B' ? Buffer.from(scalar, 'base64').length : Buffer.byteLength(scalar, 'utf8');
}

function emptyWord(type: KeyAttributeType): string {
  return type === 'S' ? 'string' : 'binary';
}

/** Checks a key attribute's value (type already matched) for emptiness and size. */
function checkKeyScalar(name: string, scalar: string, type: KeyAttributeType, isHash: boolean): void {
  if (type !== 'N' && scalar === '') {
    throw validationError(
      `One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty ${emptyWord(type)} value. Key: ${name}`,
    );
  }
  checkKeySize(scalar, type, isHash);
}

/** DynamoDB's limits on key values: 2048 bytes for a partition key, 1024 for a sort key. */
function checkKeySize(scalar: string, type: KeyAttributeType, isHash: boolean): void {
  if (type === 'N') return; // 38 digits always fit
  const bytes = keyBytes(scalar, type);
  // The missing space in "of2048" is DynamoDB's.
  if (isHash && bytes > MAX_PARTITION_KEY_BYTES) {
    throw validationError(`${INVALID} Size of hashkey has exceeded the maximum size limit of2048 bytes`);
  }
  if (!isHash && bytes > MAX_SORT_KEY_BYTES) {
    throw validationError(`${INVALID} Aggregated size of all range keys has exceeded the size limit of 1024 bytes`);
  }
}

function keyAttributes(schema: KeySchema): { attribute: KeyAttribute; isHash: boolean }[] {
  const list = [{ attribute: schema.hashKey, isHash: true }];
  if (schema.rangeKey) list.push({ attribute: schema.rangeKey, isHash: false });
  return list;
}

const KEY_MISMATCH = 'The provided key element does not match the schema';

/**
 * A key or index key attribute present with the wrong type (or a set, list or map). Thrown as the
 * ValidationException it is everywhere, except that TransactWriteItems reports it as the action's
 * cancellation reason, not as the request's error: DynamoDB finds it while the transaction runs
 * (paritysuite/dynamodb-conformance tier3 transactWriteItems tests, captured in four AWS regions).
 */
export class KeyTypeMismatchError extends DynamoDbError {
  constructor(message: string) {
    super('ValidationException', message);
  }
}

/**
 * Validates a primary key from a request (GetItem, DeleteItem, UpdateItem Key, and the like): valid
 * attribute values, exactly the key attributes with their types, non-empty, within size limits.
 * Returns the normalized key.
 */
export function validateKey(value: unknown, schema: KeySchema, parameter = 'key'): Item {
  const key = validateItem(value, parameter);
  const attributes = keyAttributes(schema);
  if (Object.keys(key).length !== attributes.length) throw validationError(KEY_MISMATCH);
  for (const { attribute, isHash } of attributes) {
    const member = getOwn(key, attribute.name);
    if (member === undefined) throw validationError(KEY_MISMATCH);
    const scalar = keyScalar(member, attribute.type);
    if (scalar === undefined) throw new KeyTypeMismatchError(KEY_MISMATCH);
    checkKeyScalar(attribute.name, scalar, attribute.type, isHash);
  }
  return key;
}

function checkIndexKey(item: Item, index: IndexSchema, attribute: KeyAttribute, isHash: boolean): void {
  if (!Object.hasOwn(item, attribute.name)) return; // sparse: the item is just not in the index
  const member = item[attribute.name];
  const scalar = keyScalar(member, attribute.type);
  if (scalar === undefined) {
    throw new KeyTypeMismatchError(
      `${INVALID} Type mismatch for Index Key ${attribute.name} Expected: ${attribute.type} Actual: ${typeName(member)} IndexName: ${index.name}`,
    );
  }
  if (attribute.type !== 'N' && scalar === '') {
    throw validationError(
      `One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty ${emptyWord(attribute.type)} value. IndexName: ${index.name}, IndexKey: ${attribute.name}`,
    );
  }
  // Index keys have the table's size limits. Guessed: DynamoDB's message for an oversized index key
  // in a PutItem is not recorded; the table key's is used.
  checkKeySize(scalar, attribute.type, isHash);
}

/**
 * Checks a whole new item (PutItem, or the result of an UpdateItem) against the table: its key
 * attributes present, of the right type, non-empty and within size limits; the key attributes of
 * every index, where present, of the right type and non-empty.
 */
export function validateItemKeyAttributes(item: Item, schema: TableSchema): void {
  for (const { attribute, isHash } of keyAttributes(schema)) {
    if (!Object.hasOwn(item, attribute.name)) {
      throw validationError(`${INVALID} Missing the key ${attribute.name} in the item`);
    }
    const member = item[attribute.name];
    const scalar = keyScalar(member, attribute.type);
    if (scalar === undefined) {
      throw new KeyTypeMismatchError(
        `${INVALID} Type mismatch for key ${attribute.name} expected: ${attribute.type} actual: ${typeName(member)}`,
      );
    }
    checkKeyScalar(attribute.name, scalar, attribute.type, isHash);
  }
  if (schema.indexes.length === 0) return;
  const tableKeys = new Set(keyAttributes(schema).map(({ attribute }) => attribute.name));
  for (const index of schema.indexes) {
    for (const { attribute, isHash } of keyAttributes(index)) {
      if (!tableKeys.has(attribute.name)) checkIndexKey(item, index, attribute, isHash);
    }
  }
}

/** The key attributes of an item (which must have them, e.g. after validateItemKeyAttributes). */
export function extractKey(item: Item, schema: KeySchema): Item {
  const members = keyAttributes(schema).map(({ attribute }) => {
    if (!Object.hasOwn(item, attribute.name)) throw validationError(KEY_MISMATCH);
    return [attribute.name, item[attribute.name]] as const;
  });
  return Object.fromEntries(members);
}
