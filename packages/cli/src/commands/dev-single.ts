import { startRouter } from '@shoal/router';
import type { Credentials } from '@shoal/router';
import { openLocalStore } from '@shoal/storage';

/** `shoal dev --single`: one process serving the DynamoDB API over a local store, no cluster. */

export interface DevSingleOptions {
  port: number;
  host: string;
  dataDir: string;
  inMemory?: boolean;
  sync?: boolean;
  credentials?: Credentials[];
}

/** Serves until SIGINT or SIGTERM. */
export async function runDevSingle(options: DevSingleOptions): Promise<void> {
  const store = await openLocalStore(
    options.inMemory ? { inMemory: true } : { dataDir: options.dataDir, sync: options.sync ?? false },
  );
  let router;
  try {
    router = await startRouter({
      partitions: store.partitions,
      catalog: store.catalog,
      host: options.host,
      port: options.port,
      credentials: options.credentials,
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  const data = options.inMemory ? 'in memory' : options.dataDir;
  console.log(`shoal dev listening on http://${options.host}:${router.port} (data: ${data})`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    router
      .close()
      .then(() => store.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error('shoal dev: shutdown failed:', error);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
