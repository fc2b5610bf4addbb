#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { enableCompileCache } from 'node:module';
import type { Credentials } from '@shoal/router';
import { parseMetaPeers } from './addresses.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';
import type { NodeCommandOptions } from './commands/node.ts';

/** The `shoal` command. Each subcommand loads its modules when run, so one never pays for the others. */

// Type stripping and compiling every module again costs each start about a second of CPU (more on a
// loaded machine: node restarts in chaos runs, pods). Node's on-disk compile cache (keyed by source
// content; NODE_COMPILE_CACHE or the OS temp directory) takes a quarter off for the modules loaded
// from here on (NODE_COMPILE_CACHE set before the start caches these too: nearly half). When the
// directory is not writable it is simply off.
enableCompileCache();

function portNumber(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return port;
}

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return value;
}

function wholeNumber(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError('must be a whole number of at least 0');
  return value;
}

function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('must be a number above 0');
  return value;
}

function addressList(text: string): string[] {
  const addresses = text.split(',').map((address) => address.trim()).filter(Boolean);
  if (addresses.length === 0) throw new InvalidArgumentError('must name at least one host:port');
  return addresses;
}

function metaPeerList(text: string): { nodeId: number; address: string }[] {
  try {
    return parseMetaPeers(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

interface CredentialOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** The credentials requests must be signed with, or undefined for an open endpoint. */
function credentialsOf(options: CredentialOptions): Credentials[] | undefined {
  const { accessKeyId, secretAccessKey } = options;
  if (accessKeyId === undefined && secretAccessKey === undefined) return undefined;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new Error('--access-key-id and --secret-access-key go together');
  }
  return [{ accessKeyId, secretAccessKey }];
}

function credentialOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--access-key-id <id>', 'require SigV4 signatures by this access key (default: no authentication)').env(
        'SHOAL_ACCESS_KEY_ID',
      ),
    )
    .addOption(new Option('--secret-access-key <secret>', 'the secret of --access-key-id').env('SHOAL_SECRET_ACCESS_KEY'));
}

/** `--log-level`, SHOAL_LOG_LEVEL by default (an unknown level is refused rather than ignored). */
function logLevelOption(): Option {
  return new Option('--log-level <level>', 'lowest level logged (JSON lines on stderr; default info)').choices(LOG_LEVELS).env('SHOAL_LOG_LEVEL');
}

const program = new Command('shoal')
  .description('Shoal: a distributed database with the Amazon DynamoDB data model and API')
  .showHelpAfterError();

/** What each partition admits a second, in capacity units, as DynamoDB's partitions do. */
const DEFAULT_PARTITION_UNITS = { read: 3000, write: 1000 } as const;

/** A partition admission limit: `shoal node`'s own, and `shoal dev`'s for the nodes it starts. */
function partitionUnitsOption(kind: 'read' | 'write', defaultText = ''): Option {
  return new Option(`--${kind}-units-per-partition <units>`, `${kind} capacity units a second each partition admits${defaultText}`).argParser(positiveNumber);
}

interface DevOptions extends CredentialOptions {
  readUnitsPerPartition?: number;
  writeUnitsPerPartition?: number;
  single?: boolean;
  nodes: number;
  routers: number;
  partitions?: number;
  port: number;
  host: string;
  dataDir: string;
  inMemory?: boolean;
  sync?: boolean;
  logLevel?: LogLevel;
}

credentialOptions(
  program
    .command('dev')
    .description(
      'Run a local Shoal cluster on loopback: 3 storage node processes (the meta group) and a router ' +
        'serving the DynamoDB API, data under --data-dir. Ctrl-C stops them all. ' +
        '--single runs the one-process engine instead.',
    )
    .option('--nodes <count>', 'storage nodes (the first 3 form the meta group)', positiveInteger, 3)
    .option('--routers <count>', 'routers, on --port and the ports after it', positiveInteger, 1)
    .option('--partitions <count>', 'initial partitions of a new table', positiveInteger)
    .option('--port <port>', 'port of the (first) DynamoDB endpoint; 0 lets the OS choose', portNumber, 8000)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data-dir <dir>', 'directory of the data files', './.shoal')
    .addOption(partitionUnitsOption('read', ` (default ${DEFAULT_PARTITION_UNITS.read}, DynamoDB's)`))
    .addOption(partitionUnitsOption('write', ` (default ${DEFAULT_PARTITION_UNITS.write}, DynamoDB's)`))
    .option('--single', 'one process over a local store instead of a cluster')
    .option('--in-memory', 'with --single: keep all data in memory (nothing survives exit)')
    .option('--sync', 'with --single: fsync every write before acknowledging it (slower; survives power loss)')
    .addOption(logLevelOption()),
).action(async (options: DevOptions) => {
  const credentials = credentialsOf(options);
  if (options.single && (options.readUnitsPerPartition !== undefined || options.writeUnitsPerPartition !== undefined)) {
    throw new Error('--read-units-per-partition and --write-units-per-partition apply to the cluster only (the one-process engine admits every request)');
  }
  if (options.single) {
    const { runDevSingle } = await import('./commands/dev-single.ts');
    await runDevSingle({ ...options, credentials });
    return;
  }
  if (options.inMemory || options.sync) throw new Error('--in-memory and --sync apply to --single only');
  const { runDevCluster } = await import('./commands/dev-cluster.ts');
  await runDevCluster({ ...options, accessKeyId: credentials?.[0].accessKeyId, secretAccessKey: credentials?.[0].secretAccessKey });
});

/** The command's flags: the node's options, with the admission limits given one flag each. */
interface NodeOptions extends Omit<NodeCommandOptions, 'admissionLimits' | 'splitting' | 'sizeMeasureIntervalMs' | 'logCompaction' | 'raftTiming'> {
  logCompactionEvery: number;
  logCompactionKeep: number;
  raftTickMs: number;
  raftElectionTicks: number;
  readUnitsPerPartition: number;
  writeUnitsPerPartition: number;
  burstSeconds: number;
  split: boolean;
  splitSizeBytes?: number;
  splitHeatShare: number;
  splitHeatSeconds: number;
  sizeMeasureSeconds: number;
}

program
  .command('node')
  .description('Run a storage node: partition replicas, and a member of the meta group when listed in --meta-peers')
  .requiredOption('--node-id <id>', 'this node\'s id (fixed, at least 1; the Raft member id)', positiveInteger)
  .requiredOption('--listen <host:port>', 'address of the node\'s gRPC server')
  .requiredOption('--data-dir <dir>', 'directory of the node\'s data and Raft logs')
  .requiredOption('--meta-peers <id=host:port,...>', 'the meta group\'s members, the same on every node', metaPeerList)
  .option('--advertise <host:port>', 'address other processes reach this node at (default: --listen)')
  .option('--ops-host <host>', 'address of /metrics, /healthz and /readyz', '127.0.0.1')
  .option('--ops-port <port>', 'port of /metrics, /healthz and /readyz; 0 lets the OS choose (logged)', portNumber, 0)
  .option('--default-partitions <count>', 'initial partitions of a new table (meta group setting)', positiveInteger)
  .addOption(partitionUnitsOption('read').default(DEFAULT_PARTITION_UNITS.read))
  .addOption(partitionUnitsOption('write').default(DEFAULT_PARTITION_UNITS.write))
  .option('--burst-seconds <seconds>', 'seconds of unused capacity a partition can spend at once', positiveNumber, 30)
  .option('--index-outbox-limit <records>', 'GSI records a partition holds for its GSIs before it refuses writes of tables with a GSI (ProvisionedThroughputExceededException) until they drain', positiveInteger, 100_000)
  // Test only (shoal chaos): never on a real cluster.
  .addOption(new Option('--enable-fault-injection', 'TEST ONLY: serve FaultInjectionService (network partitions, disk faults)').hideHelp())
  .option('--no-split', 'no splits for size or heat (meta peers; a table\'s shoal:split tag overrides it)')
  .option('--split-size-bytes <bytes>', 'a partition holding more bytes splits (meta peers; default 536870912, 512 MiB; at most 2147483648, 2 GiB)', positiveNumber)
  .option('--split-heat-share <fraction>', 'load at this share of a partition\'s read or write unit limit counts as heat (meta peers)', positiveNumber, 0.5)
  .option('--split-heat-seconds <seconds>', 'a partition hot this long splits (meta peers)', positiveNumber, 10)
  .option('--size-measure-seconds <seconds>', 'between measures of the sizes of the partitions led here', positiveNumber, 30)
  .option('--log-compaction-every <entries>', 'snapshot a replica and compact its Raft log every this many applied entries (0: never)', wholeNumber, 10_000)
  .option('--log-compaction-keep <entries>', 'entries kept behind a compaction for followers slightly behind', wholeNumber, 2_000)
  .option('--quiesce-idle-groups', 'idle Raft groups stop ticking and heartbeating until a request wakes them (a hung leader is then seen dead in seconds, not one election timeout)')
  .option('--raft-tick-ms <ms>', 'the Raft tick', positiveInteger, 50)
  .option('--raft-election-ticks <ticks>', 'ticks without a leader before an election (randomized up to twice that)', positiveInteger, 20)
  .option('--index-backfill-chunk-items <items>', 'items one chunk of a GSI backfill walks at most (and 1 MiB; its apply holds the node\'s other groups that long; default 1000)', positiveInteger)
  .addOption(logLevelOption())
  .action(async (options: NodeOptions) => {
    const { runNode } = await import('./commands/node.ts');
    const { readUnitsPerPartition, writeUnitsPerPartition, burstSeconds, split, splitSizeBytes, splitHeatShare, splitHeatSeconds, sizeMeasureSeconds, ...rest } = options;
    const { logCompactionEvery, logCompactionKeep, raftTickMs, raftElectionTicks, ...node } = rest;
    await runNode({
      ...node,
      logCompaction: { every: logCompactionEvery, keep: logCompactionKeep },
      raftTiming: { tickMs: raftTickMs, electionTick: raftElectionTicks },
      admissionLimits: { readUnitsPerSecond: readUnitsPerPartition, writeUnitsPerSecond: writeUnitsPerPartition, burstSeconds },
      splitting: { enabled: split, ...(splitSizeBytes === undefined ? {} : { maxSizeBytes: splitSizeBytes }), heatShare: splitHeatShare, heatMs: splitHeatSeconds * 1000 },
      sizeMeasureIntervalMs: sizeMeasureSeconds * 1000,
    });
  });

interface RouterOptions extends CredentialOptions {
  meta: string[];
  port: number;
  host: string;
  opsHost: string;
  opsPort: number;
  routers: number;
  routerId?: number;
  logLevel?: LogLevel;
}

credentialOptions(
  program
    .command('router')
    .description('Run a router: the DynamoDB HTTP API over the cluster whose meta group is at --meta')
    .requiredOption('--meta <host:port,...>', 'addresses of the meta group\'s nodes', addressList)
    .option('--port <port>', 'port of the DynamoDB endpoint; 0 lets the OS choose', portNumber, 8000)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--ops-host <host>', 'address of /metrics, /healthz and /readyz', '127.0.0.1')
    .option('--ops-port <port>', 'port of /metrics, /healthz and /readyz; 0 lets the OS choose (logged)', portNumber, 0)
    .option('--routers <count>', 'routers sharing the cluster: each admits this share of a PROVISIONED table\'s throughput', positiveInteger, 1)
    .addOption(new Option('--router-id <n>', 'number of this router in its logs').argParser(positiveInteger).hideHelp())
    .addOption(logLevelOption()),
).action(async (options: RouterOptions) => {
  const { runRouter } = await import('./commands/router.ts');
  await runRouter({ ...options, credentials: credentialsOf(options) });
});

/** The options of a command that reaches a running cluster: its meta group, or a `shoal dev` cluster's. */
interface ClusterTargetOptions {
  meta?: string[];
  dataDir: string;
  json?: boolean;
}

/** `--meta`, `--data-dir` (where a `shoal dev` cluster records its meta addresses) and `--json`. */
function clusterTargetOptions(command: Command, jsonDescription = 'print JSON'): Command {
  return command
    .option('--meta <host:port,...>', 'addresses of the meta group\'s nodes (default: those of the `shoal dev` cluster in --data-dir)', addressList)
    .option('--data-dir <dir>', 'data directory of a `shoal dev` cluster', './.shoal')
    .option('--json', jsonDescription);
}

/** The meta group's addresses: --meta, else those of the `shoal dev` cluster in --data-dir. */
async function metaAddressesOf(options: ClusterTargetOptions): Promise<string[]> {
  if (options.meta !== undefined) return options.meta;
  const { devClusterMetaAddresses } = await import('./commands/dev-cluster.ts');
  return devClusterMetaAddresses(options.dataDir);
}

const admin = program.command('admin').description('Inspect and operate a running cluster');

clusterTargetOptions(
  admin
    .command('status')
    .description('Nodes and partitions as the meta group\'s leader sees them'),
  'print JSON instead of tables',
).action(async (options: ClusterTargetOptions) => {
  const { runAdminStatus } = await import('./commands/admin-status.ts');
  await runAdminStatus({ meta: await metaAddressesOf(options), json: options.json });
});

clusterTargetOptions(
  admin
    .command('split <table>')
    .description('Split a partition of a table, or of its GSI named <table>/<index>, through its Raft log (no data copied); default: the widest partition, in the middle of its hash range')
    .option('--at <key>', 'where to split: a partition key value (of the GSI, for table/index) as DynamoDB JSON ({"S":"k"}) or an encoded key in hex'),
).action(async (table: string, options: { at?: string } & ClusterTargetOptions) => {
  const { runAdminSplit } = await import('./commands/admin-split.ts');
  await runAdminSplit({ meta: await metaAddressesOf(options), table, at: options.at, json: options.json });
});

clusterTargetOptions(
  admin
    .command('drain')
    .argument('<node-id>', 'the node to empty', positiveInteger)
    .description('Move every partition replica (and leadership) off a node, e.g. before scaling down; --wait follows the move until the node can be stopped')
    .option('--wait', 'wait until the node holds no replica')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveNumber, 600),
).action(async (id: number, options: { wait?: boolean; timeout: number } & ClusterTargetOptions) => {
  const { runAdminDrain } = await import('./commands/admin-drain.ts');
  await runAdminDrain({ meta: await metaAddressesOf(options), nodeId: id, wait: options.wait, timeoutSeconds: options.timeout, json: options.json });
});

clusterTargetOptions(
  admin
    .command('undrain')
    .argument('<node-id>', 'the node that takes replicas again', positiveInteger)
    .description('Cancel a drain: the node takes replicas again'),
).action(async (id: number, options: ClusterTargetOptions) => {
  const { runAdminUndrain } = await import('./commands/admin-drain.ts');
  await runAdminUndrain({ meta: await metaAddressesOf(options), nodeId: id, json: options.json });
});

clusterTargetOptions(
  admin
    .command('move')
    .argument('<partition-id>', 'the partition whose replica moves', positiveInteger)
    .description('Move one replica of a partition to another node (added, caught up, promoted, then the old one removed); --wait follows it until done')
    .requiredOption('--from <node-id>', 'the node holding the replica', positiveInteger)
    .requiredOption('--to <node-id>', 'an up node without a replica of the partition', positiveInteger)
    .option('--wait', 'wait until the target serves the replica and the source let it go')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveNumber, 600),
).action(async (id: number, options: { from: number; to: number; wait?: boolean; timeout: number } & ClusterTargetOptions) => {
  const { runAdminMove } = await import('./commands/admin-move.ts');
  await runAdminMove({
    meta: await metaAddressesOf(options),
    partitionId: id,
    from: options.from,
    to: options.to,
    wait: options.wait,
    timeoutSeconds: options.timeout,
    json: options.json,
  });
});

clusterTargetOptions(
  admin
    .command('transfer-leader')
    .argument('<partition-id>', 'the partition whose leadership moves', positiveInteger)
    .argument('<node-id>', 'a voter of the partition', positiveInteger)
    .description('Hand a partition\'s leadership to one of its voters; --wait until the node reports leading it')
    .option('--wait', 'wait until the node leads the partition')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveNumber, 60),
).action(async (id: number, nodeId: number, options: { wait?: boolean; timeout: number } & ClusterTargetOptions) => {
  const { runAdminTransferLeader } = await import('./commands/admin-move.ts');
  await runAdminTransferLeader({
    meta: await metaAddressesOf(options),
    partitionId: id,
    nodeId,
    wait: options.wait,
    timeoutSeconds: options.timeout,
    json: options.json,
  });
});

// The chaos and heat tools parse their own options (`shoal chaos --help`), so commander passes them through.
const tools = {
  chaos: { description: 'Start a cluster, run a workload under node kills and pauses, and give a linearizability verdict', load: () => import('@shoal/chaos') },
  heat: { description: 'Drive a skewed workload against a cluster and show a live heat map of its partitions', load: () => import('@shoal/heat') },
};
for (const [name, tool] of Object.entries(tools)) {
  program
    .command(name)
    .description(`${tool.description} (shoal ${name} --help)`)
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options...]')
    .action(async (args: string[]) => {
      const { main } = await tool.load();
      process.exitCode = await main(args);
    });
}

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`shoal: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
