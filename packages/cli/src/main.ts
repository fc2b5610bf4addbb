#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { startRouter } from '@shoal/router';
import { openLocalStore } from '@shoal/storage';

/** The `shoal` command. */

function portNumber(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return port;
}

interface DevOptions {
  port: number;
  host: string;
  dataDir: string;
  inMemory?: boolean;
  sync?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** The credentials requests must be signed with, or undefined for an open endpoint. */
function credentialsOf(options: DevOptions): { accessKeyId: string; secretAccessKey: string }[] | undefined {
  const { accessKeyId, secretAccessKey } = options;
  if (accessKeyId === undefined && secretAccessKey === undefined) return undefined;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new Error('--access-key-id and --secret-access-key go together');
  }
  return [{ accessKeyId, secretAccessKey }];
}

/** One process serving the DynamoDB API over a local store until SIGINT or SIGTERM. */
async function dev(options: DevOptions): Promise<void> {
  const credentials = credentialsOf(options);
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
      credentials,
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

const program = new Command('shoal')
  .description('Shoal: a distributed database with the Amazon DynamoDB data model and API')
  .showHelpAfterError();

program
  .command('dev')
  .description(
    'Run a local Shoal: the DynamoDB API on one process over a local LevelDB store. ' +
      'The cluster form (3 storage nodes and a router) comes with the cluster work.',
  )
  .option('--port <port>', 'port of the DynamoDB endpoint', portNumber, 8000)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--data-dir <dir>', 'directory of the data files', './.shoal')
  .option('--in-memory', 'keep all data in memory (nothing survives exit)')
  .option('--sync', 'fsync every write before acknowledging it (slower; survives power loss)')
  .addOption(
    new Option('--access-key-id <id>', 'require SigV4 signatures by this access key (default: no authentication)').env(
      'SHOAL_ACCESS_KEY_ID',
    ),
  )
  .addOption(new Option('--secret-access-key <secret>', 'the secret of --access-key-id').env('SHOAL_SECRET_ACCESS_KEY'))
  .action(async (options: DevOptions) => {
    await dev(options);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`shoal: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
