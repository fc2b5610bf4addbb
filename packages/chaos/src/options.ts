/** Command-line options of `shoal chaos` (commander-free, so the CLI can hand it its arguments as they are). */
import { parseArgs } from 'node:util';
import { FAULT_GROUPS, FAULT_KINDS } from './faults.ts';
import type { FaultKind } from './faults.ts';
import type { ChaosOptions } from './run.ts';

export const USAGE = `usage: shoal chaos [options]     (npm run chaos -- [options])

Starts a cluster of real processes on loopback, runs a recorded workload through the routers'
DynamoDB API while injecting faults from a seeded schedule, then checks the history.

  --duration <time>         workload duration, e.g. 60s, 10m (default 60s)
  --faults <list>           comma-separated: ${FAULT_KINDS.join(', ')}, or none (default kill,kill-leader)
                            kill: SIGKILL a random storage node, restart it; kill-leader: SIGKILL the
                            leader of a partition chosen by the seed, restart it; pause: SIGSTOP a
                            node, SIGCONT it; kill-router: SIGKILL a router, restart it;
                            partition: cut Raft traffic (routers still reach every node): a
                            partition's leader isolated, a minority/majority split, or a leader's
                            traffic lost one way; kill-during-split: split a partition and kill its
                            leader or a replica meanwhile; kill-during-transfer: ask a partition's
                            leader to hand over and kill it or the target meanwhile;
                            kill-during-move: drain a node and, once one of its replicas moves,
                            kill the new member, the node leaving or the leader (the node is
                            undrained after); disk-slow: a node's Raft log writes wait 50-250 ms;
                            disk-full: they fail (ENOSPC), the node stops acknowledging, then is
                            restarted; disk: both.
  --seed <n>                schedule and workload seed (default: random, printed)
  --fault-interval <time>   mean time between faults (default 8s)
  --nodes <n>               storage nodes, the first 3 forming the meta group (default 5)
  --routers <n>             routers (default 2)
  --partitions <n>          initial partitions of each table (default 4)
  --clients <n>             concurrent clients (default 8)
  --keys <n>                keys of each kind: registers, counters, lists, transaction groups (default 6)
  --request-timeout <time>  a request unanswered this long is indeterminate (default 10s)
  --leaderless-bound <time> longest tolerated time without a partition leader once a majority of
                            its replicas is back (default 15s)
  --check-timeout <time>    time given to the linearizability checker (default 120s)
  --dir <dir>               directory for data, logs and reports (default: a new temporary one)
  --keep-data               keep the nodes' data after a clean run (always kept after a failed one)
  --unsafe-eventual-as-strong
                            TEST ONLY, deliberately unsafe: strong reads are sent as eventually
                            consistent ones (through the last router, which then serves no write)
                            and recorded as strong, to show the checker catches it (needs --routers 2+)
  -h, --help                this text

Exit status: 0 clean verdict, 1 safety violations found, 2 the run could not be carried out,
3 safe but a liveness bound (--leaderless-bound) exceeded.`;

/** "60s", "10m", "500ms", "1h", or plain seconds. */
export function parseDuration(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new Error(`--${what} must be a duration such as 60s, 10m or 500ms, got "${text}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] ?? 's'] ?? 1_000;
  const value = Number(match[1]) * unit;
  if (!(value > 0)) throw new Error(`--${what} must be positive`);
  return value;
}

function positiveInteger(text: string, what: string, minimum = 1): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < minimum) throw new Error(`--${what} must be a whole number of at least ${minimum}, got "${text}"`);
  return value;
}

export function parseFaults(text: string): FaultKind[] {
  if (text.trim() === 'none') return [];
  const kinds = text
    .split(',')
    .map((kind) => kind.trim())
    .filter((kind) => kind !== '')
    .flatMap((kind) => FAULT_GROUPS[kind] ?? [kind]);
  for (const kind of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown fault "${kind}" (expected ${FAULT_KINDS.join(', ')})`);
  }
  return [...new Set(kinds as FaultKind[])];
}

/** The options of a run, or 'help'. Throws with a message naming the bad option. */
export function parseChaosArgs(argv: readonly string[]): ChaosOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      duration: { type: 'string', default: '60s' },
      faults: { type: 'string', default: 'kill,kill-leader' },
      seed: { type: 'string' },
      'fault-interval': { type: 'string', default: '8s' },
      nodes: { type: 'string', default: '5' },
      routers: { type: 'string', default: '2' },
      partitions: { type: 'string', default: '4' },
      clients: { type: 'string', default: '8' },
      keys: { type: 'string', default: '6' },
      'request-timeout': { type: 'string', default: '10s' },
      'leaderless-bound': { type: 'string', default: '15s' },
      'check-timeout': { type: 'string', default: '120s' },
      dir: { type: 'string' },
      'keep-data': { type: 'boolean', default: false },
      'unsafe-eventual-as-strong': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const nodes = positiveInteger(values.nodes, 'nodes', 3);
  return {
    seed: values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : positiveInteger(values.seed, 'seed', 0),
    durationMs: parseDuration(values.duration, 'duration'),
    faults: parseFaults(values.faults),
    faultIntervalMs: parseDuration(values['fault-interval'], 'fault-interval'),
    nodes,
    routers: positiveInteger(values.routers, 'routers'),
    partitions: positiveInteger(values.partitions, 'partitions'),
    clients: positiveInteger(values.clients, 'clients'),
    keys: positiveInteger(values.keys, 'keys', 2),
    requestTimeoutMs: parseDuration(values['request-timeout'], 'request-timeout'),
    leaderlessBoundMs: parseDuration(values['leaderless-bound'], 'leaderless-bound'),
    checkTimeoutMs: parseDuration(values['check-timeout'], 'check-timeout'),
    dir: values.dir,
    keepData: values['keep-data'],
    unsafeEventualAsStrong: values['unsafe-eventual-as-strong'],
  };
}
