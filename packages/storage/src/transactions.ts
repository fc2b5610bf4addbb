/**
 * The store's part of a cross-partition transaction (two-phase commit, coordinated by a router):
 *
 * - intents: a prepared transaction's operation on one item, kept until the transaction resolves.
 *   An intent holds the item image the transaction writes there (or its deletion, or nothing for a
 *   condition check), the transaction's id and its coordinator partition, and its deadline. While it
 *   is there, every other write of the item is refused (TransactionConflict); reads ignore it. Intents
 *   of condition checks (a TransactGetItems' reads among them) only read the item: they share it with
 *   other checks, and refuse writes only.
 * - transaction records: kept by the transaction's coordinator partition, PENDING until decided
 *   COMMITTED or ABORTED (only a PENDING record is ever decided).
 *
 * Both live in the metadata space of the store, written in the same batch as the rest of the command
 * that makes them, so a restart keeps them. An in-memory index of the intents (by item key and by
 * transaction), loaded from the store on first use, answers the conflict check of every write
 * without a read.
 *
 *   00000000 06 <item key> <utf8 transaction id>  -> JSON StoredIntent (with the item key, hex)
 *   00000000 07 <utf8 transaction id>      -> JSON TransactionRecord
 */
import { prefixEnd, type Item, type TableSchema } from '@shoal/model';
import type { ByteLevel, Mutation } from './database.ts';
import type { StateReader } from './commit-queue.ts';
import { boundContains, decodeJson, encodeJson, mapKey, type PartitionBound } from './layout.ts';

const INTENT_TAG = 6;
const TRANSACTION_RECORD_TAG = 7;
const utf8 = new TextEncoder();

function metaKey(tag: number, rest: Uint8Array): Uint8Array {
  const key = new Uint8Array(5 + rest.length);
  key[4] = tag;
  key.set(rest, 5);
  return key;
}

function intentKey(itemKey: Uint8Array, transactionId: string): Uint8Array {
  const id = utf8.encode(transactionId);
  const rest = new Uint8Array(itemKey.length + id.length);
  rest.set(itemKey, 0);
  rest.set(id, itemKey.length);
  return metaKey(INTENT_TAG, rest);
}

export function transactionRecordKey(transactionId: string): Uint8Array {
  return metaKey(TRANSACTION_RECORD_TAG, utf8.encode(transactionId));
}

/** What a participant knows of the transaction an intent belongs to. */
export interface TransactionRef {
  /** Unique per transaction (random 128 bits, hex). */
  id: string;
  /** The partition (Raft group) holding the transaction record. */
  coordinator: number;
  /** Epoch milliseconds: past it, a PENDING transaction may be aborted by anyone resolving its intents. */
  deadline: number;
  /** Condition checks only, without a record (TransactGetItems): its intents are reads, which yield to writes. */
  readOnly?: boolean;
}

/**
 * What committing an intent does to its item: write it, delete it, or nothing (a condition check of
 * a write transaction: it keeps writes out; a read of a read-only transaction: it yields to them).
 */
export type IntentChange = { kind: 'put'; item: Item } | { kind: 'delete' } | { kind: 'check' } | { kind: 'read' };

/** How an operation meets the intents on its item. */
export type IntentAccess = 'write' | 'check' | 'read';

export interface StoredIntent {
  transaction: TransactionRef;
  table: TableSchema;
  change: IntentChange;
  /** A read a write went through: its transaction did not read at one instant, and is cancelled. */
  wounded?: boolean;
}

export type TransactionState = 'PENDING' | 'COMMITTED' | 'ABORTED';

export interface TransactionRecord {
  id: string;
  state: TransactionState;
  /** The partitions holding its intents. */
  participants: number[];
  deadline: number;
}

interface IndexedIntent {
  itemKey: Uint8Array;
  intent: StoredIntent;
}

/** An intent as stored: its item key travels in the value (the key's end is the transaction id). */
interface StoredIntentEntry extends StoredIntent {
  itemKey: string;
}

/**
 * The intents of the store, indexed in memory. Every method runs under the store's commit lock (the
 * caller holds it), so the index changes in the order of the batches that change the store.
 */
export class IntentIndex {
  readonly #level: ByteLevel;
  /** By item key, then by transaction id. */
  #byItem: Map<string, Map<string, IndexedIntent>> | undefined;
  readonly #byTransaction = new Map<string, Set<string>>();

  constructor(level: ByteLevel) {
    this.#level = level;
  }

  /** Loads the stored intents once (staged changes made durable first, so the walk sees them all). */
  async load(state: StateReader): Promise<void> {
    if (this.#byItem !== undefined) return;
    await state.durable();
    const start = metaKey(INTENT_TAG, new Uint8Array(0));
    const stored = await this.#level.iterator({ gte: start, lt: prefixEnd(start) }).all();
    this.#byItem = new Map();
    for (const [, value] of stored) {
      const { itemKey, ...intent } = decodeJson<StoredIntentEntry>(value);
      this.#add(new Uint8Array(Buffer.from(itemKey, 'hex')), intent);
    }
  }

  #loaded(): Map<string, Map<string, IndexedIntent>> {
    if (this.#byItem === undefined) throw new Error('IntentIndex used before load()');
    return this.#byItem;
  }

  #add(itemKey: Uint8Array, intent: StoredIntent): void {
    const id = mapKey(itemKey);
    const byItem = this.#loaded();
    const holders = byItem.get(id) ?? new Map<string, IndexedIntent>();
    holders.set(intent.transaction.id, { itemKey, intent });
    byItem.set(id, holders);
    const keys = this.#byTransaction.get(intent.transaction.id) ?? new Set<string>();
    keys.add(id);
    this.#byTransaction.set(intent.transaction.id, keys);
  }

  /**
   * Whether another transaction's intent stops an operation on the item: a write is stopped by any
   * intent but reads (which it wounds: `wounds`), a check or a read only by the intent of a write.
   */
  conflicts(itemKey: Uint8Array, access: IntentAccess): boolean {
    const byItem = this.#loaded();
    // Most of the time no transaction is prepared: no key to build.
    if (byItem.size === 0) return false;
    const holders = byItem.get(mapKey(itemKey));
    if (holders === undefined) return false;
    const kinds = [...holders.values()].map(({ intent }) => intent.change.kind);
    return access === 'write' ? kinds.some((kind) => kind !== 'read') : kinds.some((kind) => kind === 'put' || kind === 'delete');
  }

  /** The reads on the item a write goes through, marked wounded (to store with the write: `put`). */
  wounds(itemKey: Uint8Array): IndexedIntent[] {
    const byItem = this.#loaded();
    if (byItem.size === 0) return [];
    const holders = byItem.get(mapKey(itemKey));
    return [...(holders?.values() ?? [])]
      .filter(({ intent }) => intent.change.kind === 'read' && intent.wounded !== true)
      .map(({ intent }) => ({ itemKey, intent: { ...intent, wounded: true } }));
  }

  /** Records new intents: the mutations storing them. */
  put(intents: IndexedIntent[]): Mutation[] {
    return intents.map(({ itemKey, intent }) => {
      this.#add(itemKey, intent);
      const entry: StoredIntentEntry = { ...intent, itemKey: Buffer.from(itemKey).toString('hex') };
      return { key: intentKey(itemKey, intent.transaction.id), value: encodeJson(entry) };
    });
  }

  /** The intents of one transaction on the items in `bound` (all of them without one), in no particular order. */
  of(transactionId: string, bound?: PartitionBound): IndexedIntent[] {
    const byItem = this.#loaded();
    const intents = [...(this.#byTransaction.get(transactionId) ?? [])].map((id) => byItem.get(id)?.get(transactionId) as IndexedIntent);
    return bound === undefined ? intents : intents.filter(({ itemKey }) => boundContains(bound, itemKey));
  }

  /** Forgets a transaction's intents in `bound` (all without one): the mutations deleting them. */
  release(transactionId: string, bound?: PartitionBound): Mutation[] {
    const released = this.of(transactionId, bound);
    const byItem = this.#loaded();
    const keys = this.#byTransaction.get(transactionId);
    for (const { itemKey } of released) {
      const id = mapKey(itemKey);
      const holders = byItem.get(id);
      holders?.delete(transactionId);
      if (holders?.size === 0) byItem.delete(id);
      keys?.delete(id);
    }
    if (keys?.size === 0) this.#byTransaction.delete(transactionId);
    return released.map(({ itemKey }) => ({ key: intentKey(itemKey, transactionId), value: undefined }));
  }

  /** The transactions with an intent here, each with the item keys it holds. */
  transactions(): Array<{ transaction: TransactionRef; itemKeys: Uint8Array[] }> {
    return [...this.#byTransaction.keys()].map((id) => {
      const intents = this.of(id);
      return { transaction: intents[0].intent.transaction, itemKeys: intents.map(({ itemKey }) => itemKey) };
    });
  }
}

/** The record of a transaction, read from the latest state (staged changes included). */
export function readTransactionRecord(state: StateReader, transactionId: string): TransactionRecord | undefined {
  const stored = state.read(transactionRecordKey(transactionId));
  return stored === undefined ? undefined : decodeJson<TransactionRecord>(stored);
}

export function transactionRecordMutation(record: TransactionRecord): Mutation {
  return { key: transactionRecordKey(record.id), value: encodeJson(record) };
}
