import { randomFillSync } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { DynamoDbError, serializationError } from '@shoal/model';
import type { RequestBody } from './request.ts';

/** The DynamoDB JSON protocol: targets, content types, request ids, checksums and error bodies. */

export const TARGET_PREFIX = 'DynamoDB_20120810.';
export const RESPONSE_CONTENT_TYPE = 'application/x-amz-json-1.0';
/** DynamoDB accepts both AWS JSON protocol versions (and plain JSON, which some old clients send). */
export const ACCEPTED_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'application/x-amz-json-1.0',
  'application/x-amz-json-1.1',
  'application/json',
]);
/** DynamoDB's request size limit. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/** JSON deeper than this cannot be a valid request (items nest at most 32 levels). */
const MAX_JSON_DEPTH = 100;

const REQUEST_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const REQUEST_ID_LENGTH = 52;
/** Random bytes for this many ids are drawn at once: one call into the CSPRNG per id cost more than the rest of a GetItem. */
const REQUEST_IDS_PER_DRAW = 256;
const requestIdBytes = Buffer.alloc(REQUEST_ID_LENGTH * REQUEST_IDS_PER_DRAW);
let requestIdOffset = requestIdBytes.length;
/** Each byte value's character of the alphabet (byte modulo 36), as a character code. */
const REQUEST_ID_CODES = Uint8Array.from({ length: 256 }, (_, byte) => REQUEST_ID_ALPHABET.charCodeAt(byte % REQUEST_ID_ALPHABET.length));

/**
 * A response body already serialized: an operation returns it when it holds the JSON text of most of
 * its answer (a stored item), which is then sent without being parsed and serialized again.
 */
export class JsonText {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  /** `{"<name>":<json>, ...rest}`: the members of `rest` follow the spliced one, in their order. */
  static withMember(name: string, json: string, rest: RequestBody): JsonText {
    const head = `{${JSON.stringify(name)}:${json}`;
    const others = JSON.stringify(rest);
    return new JsonText(others === '{}' ? `${head}}` : `${head},${others.slice(1)}`);
  }
}

/** A 52-character request id in DynamoDB's format (upper-case letters and digits). */
export function newRequestId(): string {
  if (requestIdOffset === requestIdBytes.length) {
    randomFillSync(requestIdBytes);
    // Turned into characters in place, so that each id is one slice of the buffer.
    for (let i = 0; i < requestIdBytes.length; i++) requestIdBytes[i] = REQUEST_ID_CODES[requestIdBytes[i]];
    requestIdOffset = 0;
  }
  const id = requestIdBytes.toString('latin1', requestIdOffset, requestIdOffset + REQUEST_ID_LENGTH);
  requestIdOffset += REQUEST_ID_LENGTH;
  return id;
}

/** The last short text body checksummed and its checksum: every PutItem without ReturnValues answers `{}`. */
const MEMO_BODY_LENGTH = 64;
let lastBody = '';
let lastChecksum = String(crc32(lastBody));

/** The `x-amz-crc32` header: CRC32 of the response body bytes (a string counts as UTF-8), as an unsigned decimal. */
export function bodyChecksum(body: Buffer | string): string {
  if (typeof body !== 'string' || body.length > MEMO_BODY_LENGTH) return String(crc32(body));
  if (body !== lastBody) {
    lastChecksum = String(crc32(body));
    lastBody = body;
  }
  return lastChecksum;
}

/** The operation named by `X-Amz-Target`, or undefined when the header is absent or malformed. */
export function operationOf(target: string | undefined): string | undefined {
  if (target === undefined || !target.startsWith(TARGET_PREFIX)) return undefined;
  const operation = target.slice(TARGET_PREFIX.length);
  return /^[A-Za-z]+$/.test(operation) ? operation : undefined;
}

export function mediaTypeOf(contentType: string | undefined): string {
  // What every SDK sends, as is: no split, trim or lower-casing.
  if (contentType === RESPONSE_CONTENT_TYPE) return contentType;
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/** Depth of nested arrays/objects, measured without recursion so hostile input cannot blow the stack. */
function jsonDepthExceeds(value: unknown, limit: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > limit) return true;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/**
 * Whether the text holds at least `count` opening brackets (inside strings or not). Searched in the
 * decoded text: a string's indexOf is a builtin, a Buffer's a JS wrapper costing more than its search.
 */
function bracketsReach(text: string, count: number): boolean {
  let seen = 0;
  for (const bracket of ['{', '[']) {
    for (let at = text.indexOf(bracket); at >= 0; at = text.indexOf(bracket, at + 1)) {
      if (++seen >= count) return true;
    }
  }
  return false;
}

/** Parses a request body; anything but a JSON object is a SerializationException, as in DynamoDB. */
export function parseRequestBody(raw: Buffer): RequestBody {
  const text = raw.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw serializationError('Unable to parse the request body as JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw serializationError('Unexpected value type in payload: the request body must be a JSON object');
  }
  if (Array.isArray(parsed)) throw serializationError('Start of list found where not expected');
  // Only a body with that many brackets can nest that deep: most skip the walk.
  if (bracketsReach(text, MAX_JSON_DEPTH) && jsonDepthExceeds(parsed, MAX_JSON_DEPTH)) {
    throw serializationError('Nesting Levels have exceeded supported limits');
  }
  return parsed as RequestBody;
}

/** The JSON error body DynamoDB sends: `__type`, `message`, and any extra fields of the error. */
export function errorBody(error: DynamoDbError): Record<string, unknown> {
  return { __type: error.qualifiedType, message: error.message, ...error.fields };
}

/** DynamoDB operations Shoal does not build yet: named as such, so nobody mistakes them for typos. */
const UNBUILT_OPERATIONS: ReadonlySet<string> = new Set([
  'BatchExecuteStatement', 'ExecuteStatement', 'ExecuteTransaction',
  'CreateBackup', 'DeleteBackup', 'DescribeBackup', 'ListBackups', 'RestoreTableFromBackup',
  'RestoreTableToPointInTime', 'DescribeContinuousBackups', 'UpdateContinuousBackups',
  'CreateGlobalTable', 'DescribeGlobalTable', 'DescribeGlobalTableSettings', 'ListGlobalTables',
  'UpdateGlobalTable', 'UpdateGlobalTableSettings', 'DescribeTableReplicaAutoScaling',
  'UpdateTableReplicaAutoScaling', 'DescribeContributorInsights', 'ListContributorInsights',
  'UpdateContributorInsights', 'DescribeExport', 'ExportTableToPointInTime', 'ListExports',
  'DescribeImport', 'ImportTable', 'ListImports', 'DescribeKinesisStreamingDestination',
  'EnableKinesisStreamingDestination', 'DisableKinesisStreamingDestination',
  'UpdateKinesisStreamingDestination', 'GetResourcePolicy', 'PutResourcePolicy', 'DeleteResourcePolicy',
]);

export function unknownOperation(operation?: string): DynamoDbError {
  let message = 'Missing or malformed X-Amz-Target header';
  if (operation !== undefined) {
    message = UNBUILT_OPERATIONS.has(operation)
      ? `Shoal does not support the DynamoDB operation ${operation} yet`
      : `Unknown operation: ${operation}`;
  }
  return new DynamoDbError('UnknownOperationException', message);
}

export function requestTooLarge(): DynamoDbError {
  return new DynamoDbError(
    'RequestEntityTooLargeException',
    `Request size exceeded the limit of ${MAX_REQUEST_BYTES} bytes`,
    {},
    413,
  );
}
