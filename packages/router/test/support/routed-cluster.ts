/**
 * Node processes, connectCluster and startRouter in this process, and an AWS SDK client pointed at
 * the router: the setup of the router's end-to-end cluster tests, closed in reverse order by `close()`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { connectCluster, startRouter, type ClusterBackend, type Router } from '../../src/index.ts';
import { eventually } from './eventually.ts';
import { startNodeProcesses, type NodeProcesses, type NodeProcessOptions } from './node-processes.ts';

export interface RoutedCluster {
  /** The nodes' gRPC addresses (every node is a meta peer). */
  metaAddresses: string[];
  backend: ClusterBackend;
  router: Router;
  client: DynamoDBClient;
  close(): Promise<void>;
}

export interface RoutedClusterOptions {
  initialPartitions: number;
  /** The SDK client's attempts (1: a request the router failed fails the test). */
  maxAttempts: number;
  nodes?: NodeProcessOptions;
}

/** Starts it all; resolves once every node has registered (tables are placed on the nodes registered when created). */
export async function startRoutedCluster(nodeIds: readonly number[], name: string, options: RoutedClusterOptions): Promise<RoutedCluster> {
  let nodes: NodeProcesses | undefined;
  let backend: ClusterBackend | undefined;
  let router: Router | undefined;
  let client: DynamoDBClient | undefined;
  const close = async (): Promise<void> => {
    client?.destroy();
    await router?.close();
    await backend?.close();
    await nodes?.stop();
  };
  try {
    nodes = await startNodeProcesses(nodeIds, name, options.nodes);
    const started = await connectCluster({ metaAddresses: nodes.metaAddresses, initialPartitions: options.initialPartitions, startTimeoutMs: 60_000 });
    backend = started;
    await eventually('all nodes registered', () => started.metrics().nodes === nodeIds.length);
    router = await startRouter({ partitions: started.partitions, catalog: started.catalog, port: 0, ttlSweepIntervalMs: 0 });
    client = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${router.port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'shoal', secretAccessKey: 'shoal' },
      maxAttempts: options.maxAttempts,
    });
    return { metaAddresses: nodes.metaAddresses, backend, router, client, close };
  } catch (error) {
    await close();
    throw error;
  }
}
