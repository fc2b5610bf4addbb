/**
 * The partition replicas of a storage node, which its MultiRaftHost asks for synchronously: each is
 * opened (reading its applied index from the node's store) before its group starts.
 *
 * For each replica it remembers the last descriptor and table schema the map gave, in a small file
 * (`<dataDir>/partitions.json`) so that they outlive a restart: a replica's bound is right from the
 * start (entries replayed before the map arrives apply within it), and the data of a replica can be
 * deleted even when its table was deleted while the node was down. A replica whose log is gone but
 * whose data may remain (a crash between deleting one and the other) has its data deleted at start.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { PartitionDescriptor, TableSchema } from '@shoal/model';
import { partitionBound, type LocalStore } from '@shoal/storage';
import { PartitionReplica } from '../partition/index.ts';
import type { ClusterView } from './cluster-view.ts';
import type { NodeLog } from './log.ts';
import type { PartitionReplicas } from './replica-reconciler.ts';

interface KnownPartition {
  descriptor: PartitionDescriptor;
  /** Unknown when the map never listed the table while this node held the replica. */
  table: TableSchema | undefined;
}

/** The file's JSON: keys in base64. */
interface KnownPartitionsFile {
  partitions: Array<{ descriptor: Omit<PartitionDescriptor, 'startKey' | 'endKey'> & { startKey: string; endKey: string }; table?: TableSchema }>;
}

const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const fromBase64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

export class PartitionReplicaSet implements PartitionReplicas {
  readonly #store: LocalStore;
  readonly #view: ClusterView;
  readonly #log: NodeLog;
  readonly #path: string;
  readonly #replicas = new Map<number, PartitionReplica>();
  readonly #known = new Map<number, KnownPartition>();
  #saving: Promise<void> = Promise.resolve();

  private constructor(store: LocalStore, view: ClusterView, log: NodeLog, path: string) {
    this.#store = store;
    this.#view = view;
    this.#log = log;
    this.#path = path;
  }

  /**
   * Loads what the file at `path` remembers, opens the replica of every group in `hostedGroups`
   * (the partition groups of the Raft log store), and deletes the data of remembered replicas whose
   * group is gone.
   */
  static async open(store: LocalStore, view: ClusterView, log: NodeLog, path: string, hostedGroups: readonly number[]): Promise<PartitionReplicaSet> {
    const set = new PartitionReplicaSet(store, view, log, path);
    await set.#load();
    for (const id of hostedGroups) set.#replicas.set(id, await set.#openReplica(id));
    const orphans = [...set.#known.keys()].filter((id) => !set.#replicas.has(id));
    for (const id of orphans) {
      log.warn('deleting the data of a replica whose Raft log is gone', { partition: id });
      await set.drop(id);
    }
    return set;
  }

  get size(): number {
    return this.#replicas.size;
  }

  get(partitionId: number): PartitionReplica | undefined {
    return this.#replicas.get(partitionId);
  }

  /**
   * A new replica about to be created here starts from no data: what an earlier replica of the
   * partition left (a crash between deleting its log and deleting its data) would otherwise count
   * as applied, and the new replica would skip those entries of the log.
   */
  async open(partition: PartitionDescriptor): Promise<void> {
    if (this.#replicas.has(partition.id)) return;
    this.#remember(partition);
    await this.#save();
    if ((await this.#store.partitions.appliedIndex(partition.id)) > 0) {
      this.#log.warn('deleting the data an earlier replica of the partition left', { partition: partition.id });
      await this.#dropData(partition.id);
    }
    this.#replicas.set(partition.id, await this.#openReplica(partition.id));
  }

  /** Takes the descriptors and schemas of the replicas here from a new map. */
  async noteMap(): Promise<void> {
    let changed = false;
    for (const id of this.#replicas.keys()) {
      const descriptor = this.#view.descriptorOf(id);
      if (descriptor !== undefined) changed = this.#remember(descriptor) || changed;
    }
    if (changed) await this.#save();
  }

  async drop(partitionId: number): Promise<void> {
    this.#replicas.delete(partitionId);
    await this.#dropData(partitionId);
    this.#known.delete(partitionId);
    await this.#save();
  }

  /** Waits for the file writes in flight. */
  async flush(): Promise<void> {
    await this.#saving;
  }

  #openReplica(partitionId: number): Promise<PartitionReplica> {
    return PartitionReplica.open(partitionId, this.#store.partitions, {
      boundOf: () => {
        const known = this.#known.get(partitionId);
        return known === undefined ? undefined : partitionBound(known.descriptor);
      },
    });
  }

  async #dropData(partitionId: number): Promise<void> {
    const known = this.#known.get(partitionId);
    if (known?.table === undefined) {
      this.#log.warn('partition data left in the store: its table schema is unknown here', { partition: partitionId });
      return;
    }
    await this.#store.partitions.dropPartitionData(known.table, partitionBound(known.descriptor), partitionId);
  }

  /** Returns whether anything changed. */
  #remember(descriptor: PartitionDescriptor): boolean {
    const previous = this.#known.get(descriptor.id);
    const table = this.#view.tableOf(descriptor.tableId) ?? previous?.table;
    if (previous !== undefined && previous.descriptor.epoch === descriptor.epoch && JSON.stringify(previous.table) === JSON.stringify(table)) return false;
    this.#known.set(descriptor.id, { descriptor, table });
    return true;
  }

  async #load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const file = JSON.parse(text) as KnownPartitionsFile;
    for (const { descriptor, table } of file.partitions) {
      this.#known.set(descriptor.id, { descriptor: { ...descriptor, startKey: fromBase64(descriptor.startKey), endKey: fromBase64(descriptor.endKey) }, table });
    }
  }

  /** Writes the file (a new one renamed over the old: never half written), after the writes before. */
  #save(): Promise<void> {
    const write = async (): Promise<void> => {
      const file: KnownPartitionsFile = {
        partitions: [...this.#known.values()].map(({ descriptor, table }) => ({
          descriptor: { ...descriptor, startKey: toBase64(descriptor.startKey), endKey: toBase64(descriptor.endKey) },
          ...(table === undefined ? {} : { table }),
        })),
      };
      await writeFile(`${this.#path}.new`, JSON.stringify(file));
      await rename(`${this.#path}.new`, this.#path);
    };
    this.#saving = this.#saving.then(write, write);
    return this.#saving;
  }
}
