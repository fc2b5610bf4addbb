/**
 * The table catalog in the cluster: reads from the router's cache of the meta group's tables (the
 * partition map carries them; DynamoDB's control plane is eventually consistent as well), changes
 * through the meta group's RPCs. A router sees its own changes at once: the answer goes into the
 * cache, then the map is fetched so that a new table's partitions are known before the call returns.
 */
import { DynamoDbError, resourceInUse, resourceNotFound, type TableCatalog, type TableChange, type TableRecord, type TableSchema } from '@shoal/model';
import { tableRecordFromWire, tableRecordToWire } from '@shoal/proto';
import type { ClusterView } from './cluster-view.ts';
import type { MetaClient } from './meta-client.ts';
import type { ClusterLogger } from './metrics.ts';
import { sleep } from './retry.ts';

/** Tries of a table change that another router's changes keep overtaking, before ResourceInUse reaches the client. */
const UPDATE_ATTEMPTS = 10;
/** The longest pause before trying again, times the attempt (a random part of it is waited). */
const UPDATE_PAUSE_MS = 20;

export class ClusterCatalog implements TableCatalog {
  readonly #view: ClusterView;
  readonly #meta: MetaClient;
  readonly #initialPartitions: number;
  readonly #tableReady: (table: TableSchema, indexNames?: readonly string[]) => Promise<void>;
  readonly #log: ClusterLogger | undefined;

  constructor(options: {
    view: ClusterView;
    meta: MetaClient;
    initialPartitions: number;
    /**
     * Resolves once a new table's partitions (and its GSIs') can serve requests; with `indexNames`,
     * those of the GSIs named only (added by UpdateTable).
     */
    tableReady: (table: TableSchema, indexNames?: readonly string[]) => Promise<void>;
    log?: ClusterLogger;
  }) {
    this.#view = options.view;
    this.#meta = options.meta;
    this.#initialPartitions = options.initialPartitions;
    this.#tableReady = options.tableReady;
    this.#log = options.log;
  }

  async get(name: string): Promise<TableRecord | undefined> {
    return this.#view.table(name);
  }

  async list(): Promise<TableRecord[]> {
    return this.#view.tables();
  }

  /**
   * A new table, returned once its partitions (and its GSIs') have leaders: Shoal reports a table
   * ACTIVE from the start, so it must be.
   */
  async create(record: TableRecord): Promise<void> {
    const answer = await this.#meta.call('CreateTable', 'change', (client) =>
      client.createTable({ record: tableRecordToWire(record), initialPartitions: this.#initialPartitions }),
    );
    const stored = answer.record === undefined ? record : tableRecordFromWire(answer.record);
    this.#view.putTable(stored);
    await this.#catchUp();
    await this.#ready(stored.schema);
  }

  /**
   * UpdateTable in the meta group, compare-and-set on the revision of the record `change` was given:
   * another router's change in between (its watch ahead of ours) is refused with ResourceInUse, and
   * `change` runs again on the record of a fresh map, so it is never undone. A GSI the change added is
   * returned once its partitions (the meta group created them with the change) have leaders, so that
   * its backfill ships to partitions able to take it.
   */
  async update(name: string, change: TableChange): Promise<TableRecord | undefined> {
    for (let attempt = 1; ; attempt++) {
      const current = this.#view.table(name);
      if (current === undefined) throw resourceNotFound(`Requested resource not found: Table: ${name} not found`);
      const next = await change(current);
      if (next === undefined) return undefined;
      let answer;
      try {
        // Always a revision (0 for a record from before revisions were kept): the meta group checks only records that carry one.
        const record = tableRecordToWire({ ...next, revision: current.revision ?? 0 });
        answer = await this.#meta.call('UpdateTable', 'change', (client) => client.updateTable({ record }));
      } catch (error) {
        if (!(error instanceof DynamoDbError && error.type === 'ResourceInUseException')) throw error;
        if (attempt === UPDATE_ATTEMPTS) throw resourceInUse(`Attempt to change a resource which is still in use: Table is being updated: ${name}`);
        this.#log?.debug('table changed meanwhile by another router: reading it again', { table: name, attempt, error: error.message });
        await this.#meta.refresh(this.#view);
        // A random pause, growing, so that two routers changing one table do not keep overtaking each other.
        await sleep(Math.random() * UPDATE_PAUSE_MS * attempt);
        continue;
      }
      const stored = answer.record === undefined ? next : tableRecordFromWire(answer.record);
      this.#view.putTable(stored);
      await this.#catchUp();
      const before = new Set(current.schema.indexes.filter((index) => index.kind === 'GSI').map((index) => index.indexId));
      const added = stored.schema.indexes.filter((index) => index.kind === 'GSI' && !before.has(index.indexId)).map((index) => index.name);
      if (added.length > 0) await this.#ready(stored.schema, added);
      return stored;
    }
  }

  async #ready(table: TableSchema, indexNames?: readonly string[]): Promise<void> {
    try {
      await this.#tableReady(table, indexNames);
    } catch (error) {
      // The table exists: its first requests wait for the leaders themselves (bounded).
      this.#log?.warn('a new table or index has partitions without a leader yet', { table: table.name, error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Deletes the table in the meta group, which removes its partitions and their data (contracts #9). */
  async delete(name: string): Promise<void> {
    await this.#meta.call('DeleteTable', 'change', (client) => client.deleteTable({ name }));
    this.#view.removeTable(name);
    await this.#catchUp();
  }

  async allocateSpaceId(): Promise<number> {
    const answer = await this.#meta.call('AllocateSpaceId', 'change', (client) => client.allocateSpaceId({}));
    return answer.spaceId;
  }

  /** Fetches the map holding the change just made; the watch brings it later if this fails. */
  async #catchUp(): Promise<void> {
    try {
      await this.#meta.refresh(this.#view);
    } catch (error) {
      this.#log?.warn('partition map refresh after a table change failed', { error: error instanceof Error ? error.message : String(error) });
    }
  }
}
