/**
 * The nodes' addresses as the last partition map gave them, kept in a small file
 * (`<dataDir>/nodes.json`) so that a restarted node reaches, and accepts Raft traffic from, the
 * nodes beyond the meta peers before the meta group answers: without them, the replicas it shares
 * with storage-only nodes could not recover while meta is down.
 *
 * It is only a cache of the map: a file that cannot be read is logged and ignored.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { NodeId } from '@shoal/raft';
import type { NodeLog } from './log.ts';

/** The file's JSON. */
interface NodeAddressesFile {
  nodes: Array<{ id: NodeId; address: string }>;
}

export class NodeAddressBook {
  readonly #path: string;
  #nodes = new Map<NodeId, string>();
  #saving: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.#path = path;
  }

  /** Loads the addresses the file at `path` holds (none when it is missing or unreadable). */
  static async open(path: string, log: NodeLog): Promise<NodeAddressBook> {
    const book = new NodeAddressBook(path);
    try {
      const file = JSON.parse(await readFile(path, 'utf8')) as NodeAddressesFile;
      book.#nodes = new Map(file.nodes.map((n) => [n.id, n.address]));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('ignoring the node addresses file', { path, error });
    }
    return book;
  }

  address(nodeId: NodeId): string | undefined {
    return this.#nodes.get(nodeId);
  }

  /** Takes every node address of a map (those it no longer lists are forgotten); writes the file when they changed. */
  record(nodes: ReadonlyMap<NodeId, string>): Promise<void> {
    const same = nodes.size === this.#nodes.size && [...nodes].every(([id, address]) => this.#nodes.get(id) === address);
    if (same) return Promise.resolve();
    this.#nodes = new Map(nodes);
    const file: NodeAddressesFile = { nodes: [...this.#nodes].map(([id, address]) => ({ id, address })) };
    // A new file renamed over the old (never half written), after the writes before.
    const write = async (): Promise<void> => {
      await writeFile(`${this.#path}.new`, JSON.stringify(file));
      await rename(`${this.#path}.new`, this.#path);
    };
    this.#saving = this.#saving.then(write, write);
    return this.#saving;
  }

  /** Waits for the file writes in flight. */
  async flush(): Promise<void> {
    await this.#saving;
  }
}
