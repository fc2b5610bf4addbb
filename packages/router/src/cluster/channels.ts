/**
 * One gRPC client per service and address, created on first use and reused. Partition calls, the
 * router's hot path, go straight onto an HTTP/2 connection of their own (directUnary: less than half
 * grpc-js's client CPU per call), their hot answers decoded by hand (partition-results.ts); meta calls
 * and streams go through grpc-js.
 */
import {
  MetaService,
  PartitionService,
  createClient,
  decodeGetManyResponse,
  decodeGetResponse,
  decodeWriteManyResponse,
  decodeWriteResponse,
  type AnswerDecodersOf,
  type ClientOf,
} from '@shoal/proto';

const PARTITION_ANSWERS: AnswerDecodersOf<typeof PartitionService> = {
  write: decodeWriteResponse,
  writeMany: decodeWriteManyResponse,
  get: decodeGetResponse,
  getMany: decodeGetManyResponse,
};

export class ChannelPool {
  readonly #partitionClients = new Map<string, ClientOf<typeof PartitionService>>();
  readonly #metaClients = new Map<string, ClientOf<typeof MetaService>>();
  #closed = false;

  partition(address: string): ClientOf<typeof PartitionService> {
    return this.#reuse(this.#partitionClients, address, () => createClient(PartitionService, address, { directUnary: true }, PARTITION_ANSWERS));
  }

  meta(address: string): ClientOf<typeof MetaService> {
    return this.#reuse(this.#metaClients, address, () => createClient(MetaService, address));
  }

  #reuse<C>(clients: Map<string, C>, address: string, create: () => C): C {
    if (this.#closed) throw new Error('the cluster client is closed');
    let client = clients.get(address);
    if (client === undefined) {
      client = create();
      clients.set(address, client);
    }
    return client;
  }

  /** Addresses the pool holds a client for. */
  get addresses(): number {
    return new Set([...this.#partitionClients.keys(), ...this.#metaClients.keys()]).size;
  }

  close(): void {
    this.#closed = true;
    for (const client of [...this.#partitionClients.values(), ...this.#metaClients.values()]) client.close();
    this.#partitionClients.clear();
    this.#metaClients.clear();
  }
}
