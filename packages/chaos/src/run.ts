/**
 * One chaos run: a fresh cluster of real processes, the workload and the fault schedule side by
 * side, every fault healed, a final strong read of every key, the verdict and the reports.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChaosCluster } from './cluster.ts';
import { DynamoDbClient } from './dynamodb-client.ts';
import { NodeFaultClients, planFaults, runFaults } from './faults.ts';
import type { FaultKind, FaultRecord } from './faults.ts';
import { computeFigures } from './figures.ts';
import { ClusterObserver, leaderlessWindows, sampleLeadership, WatchedPartitions } from './observer.ts';
import { formatSummary, renderHtml } from './report.ts';
import type { ChaosReport } from './report.ts';
import { judge } from './verdict.ts';
import { createTables, KV_TABLE, readFinalState, Recorder, runWorkload, TXN_TABLE } from './workload.ts';

export interface ChaosOptions {
  seed: number;
  durationMs: number;
  faults: FaultKind[];
  /** Mean time between two faults' starts. Default 8 s. */
  faultIntervalMs?: number;
  /** Storage nodes (the first 3 form the meta group). Default 5. */
  nodes?: number;
  /** Default 2. */
  routers?: number;
  /** Initial partitions of each table. Default 4. */
  partitions?: number;
  /** Concurrent clients. Default 8. */
  clients?: number;
  /** Keys of each kind. Default 6. */
  keys?: number;
  /** A request unanswered this long is indeterminate. Default 10 s. */
  requestTimeoutMs?: number;
  /** Longest tolerated stretch without a leader. Default 15 s. */
  leaderlessBoundMs?: number;
  /** Time given to the linearizability checker. Default 120 s. */
  checkTimeoutMs?: number;
  /** TEST ONLY: strong reads sent as eventual ones (see WorkloadOptions). */
  unsafeEventualAsStrong?: boolean;
  /** Directory of the cluster's data, its logs and the reports. Default: a new temporary directory. */
  dir?: string;
  /** Keep the nodes' data after a clean run (it is always kept after a failed one). */
  keepData?: boolean;
  /** Progress and summary lines (default: none). */
  print?: (text: string) => void;
  /** Draw a progress bar (only meaningful on a terminal). */
  progress?: boolean;
}

export interface ChaosResult {
  report: ChaosReport;
  jsonPath: string;
  htmlPath: string;
}

const PROGRESS_INTERVAL_MS = 250;
const BAR_WIDTH = 30;

/** How long the replica layout must stay unchanged, with every partition led, before the workload starts. */
const SETTLED_FOR_MS = 5_000;
const SETTLE_TIMEOUT_MS = 120_000;

/**
 * Waits until the tables' partitions all have a leader and placement has stopped moving replicas
 * (new nodes get replicas moved to them after registering), so that the first faults do not land
 * on a cluster still rebalancing. Returns the partition ids, and whether it settled in time.
 */
async function waitSettled(observer: ClusterObserver): Promise<{ partitionIds: number[]; settled: boolean }> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let layout = '';
  let stableSince = Date.now();
  let partitionIds: number[] = [];
  while (Date.now() < deadline) {
    try {
      const snapshot = await observer.snapshot();
      const ours = snapshot.partitions.filter((view) => view.table === KV_TABLE || view.table === TXN_TABLE).sort((a, b) => a.id - b.id);
      partitionIds = ours.map((view) => view.id);
      const current = JSON.stringify(ours.map((view) => [view.id, [...view.replicas].sort()]));
      if (current !== layout || ours.length === 0 || ours.some((view) => view.leader === undefined)) {
        layout = current;
        stableSince = Date.now();
      } else if (Date.now() - stableSince >= SETTLED_FOR_MS) {
        return { partitionIds, settled: true };
      }
    } catch {
      stableSince = Date.now();
    }
    await new Promise((done) => setTimeout(done, 1_000));
  }
  if (partitionIds.length === 0) throw new Error("the tables' partitions were not in the partition map after 120 s");
  return { partitionIds, settled: false };
}

function progressLine(elapsedMs: number, durationMs: number, recorder: Recorder, fault: FaultRecord | undefined): string {
  const done = Math.min(1, elapsedMs / durationMs);
  const filled = Math.round(done * BAR_WIDTH);
  let ok = 0;
  let errors = 0;
  for (const request of recorder.requests) {
    if (request.completion === 'ok' || request.error === 'ConditionalCheckFailedException') ok++;
    else errors++;
  }
  const what = fault === undefined ? '' : `  ${fault.kind} ${fault.target}`;
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${Math.floor(elapsedMs / 1000)}/${Math.round(durationMs / 1000)} s  ok ${ok}  errors ${errors}${what}`;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const print = options.print ?? (() => {});
  const dir = resolve(options.dir ?? (await mkdtemp(join(tmpdir(), `shoal-chaos-${options.seed}-`))));
  await mkdir(dir, { recursive: true });
  const dataDir = join(dir, 'cluster');
  const nodes = options.nodes ?? 5;
  const routers = options.routers ?? 2;
  const partitions = options.partitions ?? 4;
  const workloadOptions = {
    seed: options.seed,
    clients: options.clients ?? 8,
    keys: options.keys ?? 6,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    unsafeEventualAsStrong: options.unsafeEventualAsStrong ?? false,
  };
  const plan = planFaults({ seed: options.seed, kinds: options.faults, durationMs: options.durationMs, intervalMs: options.faultIntervalMs ?? 8_000 });

  print(`shoal chaos: seed ${options.seed}, ${nodes} nodes, ${routers} routers, ${partitions} partitions a table, ${plan.length} faults planned (${options.faults.join(', ') || 'none'}), in ${dir}`);
  const cluster = await ChaosCluster.start({ nodes, routers, partitions, dir: dataDir });
  // Ctrl-C: heal and stop every process (a paused one would never see its parent go), then leave.
  const interrupt = (): void => {
    print('\nshoal chaos: interrupted, stopping the cluster');
    void cluster.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const observer = new ClusterObserver(cluster.metaAddresses);
  const faultClients = new NodeFaultClients(cluster.nodeAddresses);
  try {
    const setup = new DynamoDbClient({ endpoints: cluster.routerEndpoints, preferred: 0, timeoutMs: 10_000 });
    try {
      await createTables(setup);
    } finally {
      setup.close();
    }
    const { partitionIds, settled } = await waitSettled(observer);
    print(
      settled
        ? `cluster settled: partitions ${partitionIds.join(', ')} of ${KV_TABLE} and ${TXN_TABLE} led, replicas in place`
        : `cluster NOT settled after ${SETTLE_TIMEOUT_MS / 1000} s (replicas still moving or partitions leaderless); running anyway`,
    );

    const origin = performance.now();
    const recorder = new Recorder(origin);
    const now = (): number => recorder.now();
    const stopWorkload = new AbortController();
    const stopFaults = new AbortController();
    const stopSampling = new AbortController();
    let activeFault: FaultRecord | undefined;
    const watched = new WatchedPartitions([KV_TABLE, TXN_TABLE]);
    watched.update(await observer.snapshot());
    const faultsDone = runFaults({ cluster, observer, partitions: watched, faults: faultClients, now, onChange: (fault) => (activeFault = fault) }, plan, stopFaults.signal);
    const sampled = sampleLeadership(observer, watched, now, stopSampling.signal);
    const workloadDone = runWorkload(cluster.routerEndpoints, recorder, workloadOptions, stopWorkload.signal);
    const progress =
      options.progress === true
        ? setInterval(() => process.stdout.write(`\r${progressLine(now(), options.durationMs, recorder, activeFault)}`), PROGRESS_INTERVAL_MS)
        : undefined;
    await new Promise((done) => setTimeout(done, options.durationMs));
    // No new fault from now on; the one in progress (if any) is healed while the workload stops.
    stopFaults.abort();
    stopWorkload.abort();
    await workloadDone;
    const workloadMs = now();
    const faults = await faultsDone;
    if (progress !== undefined) {
      clearInterval(progress);
      process.stdout.write(`\r${progressLine(workloadMs, options.durationMs, recorder, undefined)}\n`);
    }

    // Every member back and ready before the final reads (a fault's member may have failed to come back).
    for (const member of cluster.members()) {
      if (member.paused) member.resume();
      if (!member.running()) member.start();
    }
    // One that does not come back is a finding, not the end of the run: the verdict still comes.
    const notReady: string[] = [];
    await Promise.all(
      cluster.members().map((member) =>
        member.waitReady().catch((error: unknown) => notReady.push(error instanceof Error ? error.message.split('\n')[0] : String(error))),
      ),
    );
    if (notReady.length > 0) print(`not ready after the faults: ${notReady.join('; ')} (see their logs in ${dataDir})`);
    const final = await readFinalState(cluster.routerEndpoints, recorder, workloadOptions);
    stopSampling.abort();
    const samples = await sampled;
    const leaderless = leaderlessWindows(samples, cluster.metaPeers);
    print('checking the history…');
    const checks = judge({
      recorder,
      final,
      leaderless,
      faults,
      leaderlessBoundMs: options.leaderlessBoundMs ?? 15_000,
      checkTimeoutMs: options.checkTimeoutMs ?? 120_000,
      crashes: cluster.unexpectedExits(),
      notReady,
    });
    const report: ChaosReport = {
      seed: options.seed,
      startedAt: new Date(Date.now() - performance.now() + origin).toISOString(),
      dir,
      cluster: { nodes, routers, partitions, partitionIds, settled },
      workload: { ...workloadOptions, durationMs: options.durationMs, faultKinds: options.faults },
      workloadMs: Math.round(workloadMs),
      plannedFaults: plan.length,
      faults,
      leaderless,
      figures: computeFigures(recorder.requests, faults, leaderless, workloadMs),
      checks,
      safe: checks.every((check) => check.ok || check.kind !== 'safety'),
      ok: checks.every((check) => check.ok),
    };
    const jsonPath = join(dir, 'report.json');
    const htmlPath = join(dir, 'report.html');
    await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(htmlPath, renderHtml(report));
    // The raw record, for a second look at a violation (checkKvHistory takes `history` as it is).
    const record = {
      history: recorder.history,
      eventualReads: recorder.eventualReads,
      transactionReads: recorder.transactionReads,
      adds: Object.fromEntries(recorder.adds),
      requests: recorder.requests,
    };
    await writeFile(join(dir, 'history.json'), JSON.stringify(record));
    print(formatSummary(report));
    print(`reports: ${jsonPath}\n         ${htmlPath}\n         ${join(dir, 'history.json')} (every operation)`);
    await cluster.stop();
    if (report.ok && options.keepData !== true) {
      // The logs stay; the nodes' data goes.
      for (const node of cluster.nodes) await rm(join(dataDir, `node-${node.id}`), { recursive: true, force: true, maxRetries: 3 });
    }
    return { report, jsonPath, htmlPath };
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    observer.close();
    faultClients.close();
    await cluster.stop();
  }
}
