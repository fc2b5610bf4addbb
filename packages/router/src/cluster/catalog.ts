/**
 * The table catalog in the cluster: reads from the router's cache of the meta group's tables (the
 * partition map carries them; DynamoDB's control plane is eventually consistent as well), changes
 * through the meta group's RPCs. A router sees its own changes at once: the answer goes into the
 * cache, then the map is fetched so that a new table's partitions are known before the call returns.
 */
import type { TableCatalog, TableRecord, TableSchema } from '@shoal/model';
import { tableRecordFromWire, tableRecordToWire } from '@shoal/proto';
import type { ClusterView } from './cluster-view.ts';
import type { MetaClient } from './meta-client.ts';
import type { ClusterLogger } from './metrics.ts';

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
   * CreateTable for a name the cache does not know, UpdateTable otherwise. A new table is returned
   * once its partitions (and its GSIs') have leaders: Shoal reports a table ACTIVE from the start, so
   * it must be. A GSI added by UpdateTable: once its partitions (the meta group created them with the
   * change) have leaders, so that its backfill ships to partitions able to take it.
   */
  async put(record: TableRecord): Promise<void> {
    const wire = tableRecordToWire(record);
    const previous = this.#view.table(record.schema.name);
    const answer = previous === undefined
      ? await this.#meta.call('CreateTable', 'change', (client) => client.createTable({ record: wire, initialPartitions: this.#initialPartitions }))
      : await this.#meta.call('UpdateTable', 'change', (client) => client.updateTable({ record: wire }));
    const stored = answer.record === undefined ? record : tableRecordFromWire(answer.record);
    this.#view.putTable(stored);
    await this.#catchUp();
    let added: string[] | undefined;
    if (previous !== undefined) {
      const before = new Set(previous.schema.indexes.filter((index) => index.kind === 'GSI').map((index) => index.indexId));
      added = stored.schema.indexes.filter((index) => index.kind === 'GSI' && !before.has(index.indexId)).map((index) => index.name);
      if (added.length === 0) return;
    }
    try {
      await this.#tableReady(stored.schema, added);
    } catch (error) {
      // The table exists: its first requests wait for the leaders themselves (bounded).
      this.#log?.warn('a new table or index has partitions without a leader yet', { table: stored.schema.name, error: error instanceof Error ? error.message : String(error) });
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
