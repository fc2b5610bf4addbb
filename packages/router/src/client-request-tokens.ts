/**
 * TransactWriteItems' ClientRequestToken, kept durably wherever the request runs (one store, or the
 * cluster through any router): the token is claimed by an item of a hidden table, put by the
 * transaction itself as one more of its operations. So the claim exists iff the transaction
 * committed, survives what the transaction's writes survive, and is found by every router (in the
 * cluster the item lives in the partition its key hashes to, like any other item):
 *
 *   table `shoal:client-request-tokens` (a name no client can use), hash key `token` (S):
 *   { token, request: sha256 of the request without its token (hex), expiresAt: epoch seconds }
 *
 * The claim is a Put with the condition "no claim, or an expired one", so that, in the same
 * evaluation as the transaction's own operations:
 * - an unexpired claim refuses it (conditionFailed, with the claim): the same request is answered
 *   as done (nothing applied again), another one is IdempotentParameterMismatchException;
 * - a claim still held by a transaction in flight (a cross-partition transaction's intent on the
 *   claim item) refuses it with TransactionConflict: TransactionInProgressException.
 * Expired claims are deleted by the router's TTL sweeper (the table has TTL on `expiresAt`); until
 * then the condition treats them as absent.
 */
import { createHash } from 'node:crypto';
import { DynamoDbError, type Item, type TableCatalog, type TableRecord, type TableSchema, type WriteOperation, type WriteOutcome } from '@shoal/model';

/** Not a valid DynamoDB table name (the colon), so no request can name it. */
export const CLIENT_TOKEN_TABLE = 'shoal:client-request-tokens';
/** How long a ClientRequestToken is remembered after its transaction. */
export const TOKEN_LIFETIME_MS = 10 * 60 * 1000;

const TOKEN = 'token';
const REQUEST = 'request';
const EXPIRES_AT = 'expiresAt';

/** Tables of Shoal's own, not listed to clients. */
export function isHiddenTable(name: string): boolean {
  return name === CLIENT_TOKEN_TABLE;
}

/** JSON with object keys sorted, so two encodings of one request are equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What identifies a request's parameters: the digest of its canonical JSON (the token left out by the caller). */
export function requestDigest(request: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}

function tokenTableRecord(tableId: number, now: number): TableRecord {
  return {
    schema: { name: CLIENT_TOKEN_TABLE, tableId, hashKey: { name: TOKEN, type: 'S' }, indexes: [] },
    status: 'ACTIVE',
    createdAt: now / 1000,
    billingMode: 'PAY_PER_REQUEST',
    ttl: { attributeName: EXPIRES_AT, enabled: true },
    tags: {},
  };
}

/** How often, and how long apart, a router looks for the table another router created first. */
const CREATED_ELSEWHERE_CHECKS = 100;
const CREATED_ELSEWHERE_PAUSE_MS = 100;

/** Creations under way, per catalog: the concurrent first requests of one router create the table once. */
const creating = new WeakMap<TableCatalog, Promise<TableSchema>>();

/** The schema of the token table, created on first use. */
export async function clientTokenTable(catalog: TableCatalog, now: () => number): Promise<TableSchema> {
  const existing = await catalog.get(CLIENT_TOKEN_TABLE);
  if (existing !== undefined) return existing.schema;
  let created = creating.get(catalog);
  if (created === undefined) {
    created = createTokenTable(catalog, now).finally(() => creating.delete(catalog));
    creating.set(catalog, created);
  }
  return created;
}

async function createTokenTable(catalog: TableCatalog, now: () => number): Promise<TableSchema> {
  try {
    await catalog.create(tokenTableRecord(await catalog.allocateSpaceId(), now()));
  } catch (error) {
    // Another router created it first (the meta group refused the second creation): this router's
    // catalog learns of it from the meta group shortly.
    if (!(error instanceof DynamoDbError && error.type === 'ResourceInUseException')) throw error;
    for (let check = 0; check < CREATED_ELSEWHERE_CHECKS; check++) {
      const record = await catalog.get(CLIENT_TOKEN_TABLE);
      if (record !== undefined) return record.schema;
      await new Promise((resolve) => setTimeout(resolve, CREATED_ELSEWHERE_PAUSE_MS));
    }
    throw error;
  }
  const record = await catalog.get(CLIENT_TOKEN_TABLE);
  if (record === undefined) throw new Error(`table ${CLIENT_TOKEN_TABLE} created but not in the catalog`);
  return record.schema;
}

/** A number attribute of `milliseconds` as epoch seconds (the TTL sweeper's unit), to the millisecond. */
function epochSeconds(milliseconds: number): { N: string } {
  return { N: String(milliseconds / 1000) };
}

/** The operation claiming `token` for the request of `digest` at `now`: put, unless claimed and unexpired. */
export function claimOperation(table: TableSchema, token: string, digest: string, now: number): WriteOperation {
  const item: Item = { [TOKEN]: { S: token }, [REQUEST]: { S: digest }, [EXPIRES_AT]: epochSeconds(now + TOKEN_LIFETIME_MS) };
  return {
    table,
    kind: 'Put',
    key: { [TOKEN]: { S: token } },
    item,
    expressions: {
      condition: 'attribute_not_exists(#token) OR #expiresAt < :now',
      names: { '#token': TOKEN, '#expiresAt': EXPIRES_AT },
      values: { ':now': epochSeconds(now) },
    },
  };
}

/**
 * What the claim's outcome says: `claimed` (the transaction ran as a new one: its own outcomes
 * decide), `replay` (the same request committed before: answer success, nothing applied now),
 * `mismatch` (another request holds the token), `inProgress` (a transaction holding it is in flight).
 */
export type ClaimState = 'claimed' | 'replay' | 'mismatch' | 'inProgress';

export function claimState(outcome: WriteOutcome, digest: string): ClaimState {
  switch (outcome.status) {
    case 'ok':
      return 'claimed';
    case 'conditionFailed': {
      const claimed = outcome.item?.[REQUEST];
      return claimed !== undefined && 'S' in claimed && claimed.S === digest ? 'replay' : 'mismatch';
    }
    case 'transactionConflict':
      return 'inProgress';
    case 'invalid':
      throw new Error(`the claim of a ClientRequestToken was refused: ${outcome.message}`);
  }
}

export function idempotentParameterMismatch(): DynamoDbError {
  return new DynamoDbError('IdempotentParameterMismatchException', 'The request uses the same client token as a previous, but non-identical request.');
}

export function transactionInProgress(): DynamoDbError {
  return new DynamoDbError('TransactionInProgressException', 'The transaction with the given request token is already in progress.');
}
