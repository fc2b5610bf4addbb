import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { Model } from '@kubernetes-models/base';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import * as appsV1 from 'kubernetes-models/apps/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import * as policyV1 from 'kubernetes-models/policy/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import * as coreV1 from 'kubernetes-models/v1';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import { freePort } from '@shoal/proto';
import { eventually } from './helpers/cluster.ts';

/**
 * The Kubernetes manifests in deploy/kubernetes, checked as data: `kubectl kustomize` builds them as
 * `kubectl apply -k` would, every object is validated against the Kubernetes (and Prometheus
 * Operator) schemas, and the wiring is checked against the real processes: each container's start
 * script runs under a pod's environment, and the command line it would exec must use only flags that
 * `shoal node --help` / `shoal router --help` list, with ports, names and paths that agree with the
 * containers, probes, Services and ServiceMonitor. Then the pods are played by the real processes
 * those commands start, on loopback: a StatefulSet that forms, scales to 4 and back, and restarts pod
 * by pod under writes. The image (deploy/Dockerfile) is checked the same way: its entry point runs the
 * real CLI, its build context and production-only install hold every module the processes import.
 */

const REPO = resolve(import.meta.dirname, '..');
const execFileAsync = promisify(execFile);
const KUSTOMIZATION_DIR = join(REPO, 'deploy', 'kubernetes');
const SHOAL = join(REPO, 'deploy', 'bin', 'shoal');
const COMMAND_TIMEOUT_MS = 60_000;
/** How long a process played as a pod may take to become ready, and to stop after SIGTERM. */
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** Bound of a wait for the cluster to reach a state (tables active, replicas moved). */
const SETTLE_TIMEOUT_MS = 60_000;
const SETTLE_POLL_MS = 250;
/** Bound of each step of the StatefulSet played below (several pods start, stop or settle in one). */
const STEP_TIMEOUT_MS = 240_000;

interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}

/** The models of the API groups the manifests may use, by apiVersion: their classes and their declarations. */
const API_GROUPS: Record<string, { models: Record<string, unknown>; declarations: string }> = {
  v1: { models: coreV1, declarations: 'kubernetes-models/v1' },
  'apps/v1': { models: appsV1, declarations: 'kubernetes-models/apps/v1' },
  'policy/v1': { models: policyV1, declarations: 'kubernetes-models/policy/v1' },
  'monitoring.coreos.com/v1': { models: monitoringV1, declarations: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1' },
};

function modelOf(object: KubernetesObject): new (data: object) => Model<unknown> {
  const model = API_GROUPS[object.apiVersion]?.models[object.kind];
  if (typeof model !== 'function') throw new Error(`no schema for ${object.apiVersion} ${object.kind}`);
  return model as new (data: object) => Model<unknown>;
}

/**
 * The fields each object type declares, read from the models' TypeScript declarations. The JSON
 * schemas accept unknown fields, but the API server rejects them (kubectl's strict field validation),
 * so a misspelt field must fail here too.
 */
type FieldType =
  | { kind: 'leaf' }
  | { kind: 'object'; fields: () => Map<string, FieldType> }
  | { kind: 'array' | 'map'; of: FieldType };

const LEAF: FieldType = { kind: 'leaf' };
const declarationCache = new Map<string, Map<string, FieldType> | undefined>();

/** The text between the brace at `open` and its match. */
function braced(text: string, open: number): string {
  let depth = 0;
  for (let index = open; index < text.length; index++) {
    if (text[index] === '{') depth++;
    else if (text[index] === '}' && --depth === 0) return text.slice(open + 1, index);
  }
  throw new Error('unbalanced braces in a declaration');
}

/** `"name"?: Type;` members of an interface or inline object type; `[key: string]: T` as key `*`. */
function membersOf(body: string, typeOf: (text: string) => FieldType): Map<string, FieldType> {
  const members = new Map<string, FieldType>();
  const text = body.replace(/\/\*[\s\S]*?\*\//g, '');
  const member = /\s*(?:"([^"]+)"|(\w+)|\[key: string\])\??:\s*/y;
  let at = 0;
  while (text.slice(at).trim() !== '') {
    member.lastIndex = at;
    const match = member.exec(text);
    if (match === null) throw new Error(`unreadable declaration: ${text.slice(at, at + 80)}`);
    let end = member.lastIndex;
    for (let depth = 0; end < text.length && !(depth === 0 && text[end] === ';'); end++) {
      if ('{<('.includes(text[end])) depth++;
      else if ('}>)'.includes(text[end])) depth--;
    }
    members.set(match[1] ?? match[2] ?? '*', typeOf(text.slice(member.lastIndex, end).trim()));
    at = end + 1;
  }
  return members;
}

/** The fields of interface (or alias of one) `name` declared in `file`; undefined for a type alias. */
function declaredFields(file: string, name: string): Map<string, FieldType> | undefined {
  const key = `${file}#${name}`;
  if (declarationCache.has(key)) return declarationCache.get(key);
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const [, names, from] of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";/gm)) {
    const target = from.startsWith('.') ? join(dirname(file), from.replace(/\.js$/, '.d.ts')) : join(REPO, 'node_modules', `${from}.d.ts`);
    for (const imported of names.split(',')) imports.set(imported.trim(), target);
  }
  const local = new RegExp(`\\b(\\w+) as ${name}\\b`).exec(text)?.[1] ?? name;
  const start = text.search(new RegExp(`^export interface ${local}\\b`, 'm'));
  if (start < 0) {
    declarationCache.set(key, undefined);
    return undefined;
  }
  const typeOf = (type: string): FieldType => {
    const array = /^Array<([\s\S]+)>$/.exec(type);
    if (array !== null) return { kind: 'array', of: typeOf(array[1]) };
    if (type.startsWith('{')) {
      const members = membersOf(type.slice(1, -1), typeOf);
      const values = members.get('*');
      return values !== undefined ? { kind: 'map', of: values } : { kind: 'object', fields: () => members };
    }
    const reference = imports.get(type);
    if (reference !== undefined) {
      return { kind: 'object', fields: () => declaredFields(reference, type) ?? new Map() };
    }
    return LEAF;
  };
  const open = text.indexOf('{', start);
  const fields = membersOf(braced(text, open), typeOf);
  const bases = /\bextends ([\w, ]+)/.exec(text.slice(start, open))?.[1].split(',').map((base) => base.trim()) ?? [];
  for (const base of bases) {
    if (base === 'TypeMeta') continue; // apiVersion and kind, declared in the body as well
    const file = imports.get(base);
    if (file === undefined) throw new Error(`${name} extends ${base}, whose declaration is not imported`);
    for (const [field, type] of declaredFields(file, base) ?? []) fields.set(field, type);
  }
  declarationCache.set(key, fields);
  return fields;
}

/** The paths of the fields `value` has that its type does not declare. */
function undeclaredFields(value: unknown, type: FieldType, path: string): string[] {
  if (type.kind === 'array' && Array.isArray(value)) return value.flatMap((item, index) => undeclaredFields(item, type.of, `${path}[${index}]`));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const entries = Object.entries(value);
  if (type.kind === 'map') return entries.flatMap(([field, inner]) => undeclaredFields(inner, type.of, `${path}.${field}`));
  if (type.kind !== 'object') return [];
  const fields = type.fields();
  return entries.flatMap(([field, inner]) => {
    const declared = fields.get(field);
    return declared === undefined ? [`${path}.${field}`] : undeclaredFields(inner, declared, `${path}.${field}`);
  });
}

function objectType(object: KubernetesObject): FieldType {
  const group = API_GROUPS[object.apiVersion];
  const file = join(REPO, 'node_modules', group.declarations, `${object.kind}.d.ts`);
  return { kind: 'object', fields: () => declaredFields(file, `I${object.kind}`) ?? new Map() };
}

/** The objects `kubectl apply -k <dir>` would send, built by kubectl's own kustomize. */
function kustomizeBuild(dir = KUSTOMIZATION_DIR): KubernetesObject[] {
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'kubectl is not installed (these tests need its built-in kustomize)' : String(error);
    throw new Error(`kubectl kustomize ${dir} failed: ${reason}`);
  }
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw new Error(`kustomize output is not YAML: ${document.errors[0].message}`);
    return document.toJS() as KubernetesObject;
  });
}

function shoal(args: string[]): string {
  return execFileSync(SHOAL, args, {
    encoding: 'utf8',
    timeout: COMMAND_TIMEOUT_MS,
    env: { ...process.env, SHOAL_HOME: REPO, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
  });
}

/** An option of a `shoal` subcommand as its --help lists it. */
interface CliOption {
  flag: string;
  takesValue: boolean;
}

/** The options `shoal <command> --help` lists, run through the image's entry point. */
function helpOptions(command: string): Map<string, CliOption> {
  const help = shoal([command, '--help']);
  const options = new Map<string, CliOption>();
  for (const line of help.split('\n')) {
    // Commander indents each option by two spaces; wrapped description lines by more.
    const match = /^  (?:-\w, )?(--[a-z0-9-]+)( [<[])?/.exec(line);
    if (match !== null) options.set(match[1], { flag: match[1], takesValue: match[2] !== undefined });
  }
  if (!options.has('--help')) throw new Error(`shoal ${command} --help printed no option list:\n${help}`);
  return options;
}

/** A command line `shoal <command> --flag value ...` split into its command and option values. */
interface ShoalInvocation {
  command: string;
  options: Map<string, string>;
}

/** Parses argv against the options the real process lists; an option it does not know fails. */
function parseInvocation(argv: string[], known: Map<string, CliOption>): ShoalInvocation {
  const [command, ...rest] = argv;
  const options = new Map<string, string>();
  for (let index = 0; index < rest.length; index++) {
    const option = known.get(rest[index]);
    if (option === undefined) throw new Error(`shoal ${command} does not accept ${rest[index]}`);
    if (options.has(option.flag)) throw new Error(`${option.flag} given twice`);
    const value = option.takesValue ? rest[++index] : 'true';
    if (value === undefined) throw new Error(`${option.flag} has no value`);
    options.set(option.flag, value);
  }
  return { command, options };
}

function required(invocation: ShoalInvocation, flag: string): string {
  const value = invocation.options.get(flag);
  if (value === undefined) throw new Error(`shoal ${invocation.command} is started without ${flag}`);
  return value;
}

function hostPort(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

function matchesSelector(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels?.[key] === value);
}

async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** The metrics of a Prometheus text exposition by name, with their type (`# TYPE` lines: a metric with labels has no sample until it is observed). */
function exposedMetrics(exposition: string): Map<string, string> {
  return new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1], match[2]]));
}

const readme = readFileSync(join(REPO, 'deploy', 'README.md'), 'utf8');

interface MetricRow {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** Whether the processes export it now, or the dashboard waits for it. */
  status: 'exported' | 'planned';
}

/** The table of deploy/README.md's section "Metrics the dashboard reads". */
function documentedMetrics(): MetricRow[] {
  const section = readme.slice(readme.indexOf('## Metrics the dashboard reads'));
  return [...section.matchAll(/^\| `(shoal_[a-z0-9_]+)` \| (counter|gauge|histogram) \| (exported|planned) \|/gm)].map((match) => ({
    name: match[1],
    type: match[2] as MetricRow['type'],
    status: match[3] as MetricRow['status'],
  }));
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  let objects: KubernetesObject[];
  let scratch: string;
  let nodeOptions: Map<string, CliOption>;
  let routerOptions: Map<string, CliOption>;

  const find = <T>(kind: string, name: string): T => {
    const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
    if (object === undefined) throw new Error(`the manifests have no ${kind} ${name}`);
    return object as T;
  };
  const configMap = (name: string): IConfigMap => find<IConfigMap>('ConfigMap', name);
  const storage = (): IStatefulSet => find<IStatefulSet>('StatefulSet', 'shoal-storage');
  const router = (): IDeployment => find<IDeployment>('Deployment', 'shoal-router');
  const containerOf = (template: IPodTemplateSpec | undefined): IContainer => {
    const containers = template?.spec?.containers ?? [];
    expect(containers).toHaveLength(1);
    return containers[0];
  };
  const containerPort = (container: IContainer, name: string): number => {
    const port = container.ports?.find((candidate) => candidate.name === name);
    if (port === undefined) throw new Error(`container ${container.name} has no port named ${name}`);
    return port.containerPort;
  };
  /** The container port a Service or probe port (a number or a container port's name) reaches. */
  const resolvePort = (container: IContainer, port: string | number | undefined): number =>
    typeof port === 'number' ? port : containerPort(container, port ?? '');

  /**
   * The environment of the container in pod `podName`: ConfigMap entries, downward API fields, the
   * pod's HOSTNAME; `override` stands for ConfigMap entries changed.
   */
  const podEnvironment = (template: IPodTemplateSpec | undefined, namespace: string, podName: string, override: Record<string, string>): Record<string, string> => {
    const container = containerOf(template);
    const env: Record<string, string> = { HOSTNAME: podName };
    for (const source of container.envFrom ?? []) {
      // An optional Secret the manifests do not create is absent from a fresh install.
      if (source.secretRef?.optional === true && !objects.some((object) => object.kind === 'Secret' && object.metadata.name === source.secretRef?.name)) continue;
      Object.assign(env, configMap(source.configMapRef?.name ?? '').data);
    }
    for (const variable of container.env ?? []) {
      const field = variable.valueFrom?.fieldRef?.fieldPath;
      if (field === 'metadata.name') env[variable.name] = podName;
      else if (field === 'metadata.namespace') env[variable.name] = namespace;
      else if (variable.value !== undefined) env[variable.name] = variable.value;
      else throw new Error(`env ${variable.name}: the test knows no such source`);
    }
    return Object.assign(env, override);
  };

  /**
   * Runs a container's command as the kubelet would in pod `podName`, in its environment, its script
   * read through its ConfigMap volume, and `shoal` on PATH replaced by a recorder of the argv it
   * would be started with.
   */
  const startCommandOf = (template: IPodTemplateSpec | undefined, namespace: string, podName: string, override: Record<string, string> = {}): string[] => {
    const container = containerOf(template);
    const env = podEnvironment(template, namespace, podName, override);
    const [shell, script, ...args] = container.command ?? [];
    expect(shell).toBe('/bin/sh');
    const mount = container.volumeMounts?.find((candidate) => script.startsWith(`${candidate.mountPath}/`));
    if (mount === undefined) throw new Error(`${script} is on no volume of the container`);
    const volume = template?.spec?.volumes?.find((candidate) => candidate.name === mount.name);
    const path = script.slice(mount.mountPath.length + 1);
    const key = volume?.configMap?.items?.find((item) => item.path === path)?.key ?? path;
    const text = configMap(volume?.configMap?.name ?? '').data?.[key];
    if (text === undefined) throw new Error(`${script}: no ConfigMap entry ${key}`);

    const dir = mkdtempSync(join(scratch, 'pod-'));
    writeFileSync(join(dir, 'start.sh'), text);
    writeFileSync(join(dir, 'shoal'), '#!/bin/sh\nprintf \'%s\\0\' "$@"\n');
    chmodSync(join(dir, 'shoal'), 0o755);
    const argv = execFileSync('/bin/sh', [join(dir, 'start.sh'), ...args], {
      encoding: 'utf8',
      timeout: COMMAND_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, PATH: `${dir}:/usr/bin:/bin` },
    });
    return argv.split('\0').slice(0, -1);
  };

  const namespaceOf = (object: KubernetesObject): string => {
    if (object.metadata.namespace === undefined) throw new Error(`${object.kind} ${object.metadata.name} has no namespace`);
    return object.metadata.namespace;
  };
  const storagePod = (ordinal: number): ShoalInvocation => {
    const set = storage();
    return parseInvocation(startCommandOf(set.spec?.template, namespaceOf(set as KubernetesObject), `shoal-storage-${ordinal}`), nodeOptions);
  };
  const routerPod = (): ShoalInvocation => {
    const deployment = router();
    return parseInvocation(startCommandOf(deployment.spec?.template, namespaceOf(deployment as KubernetesObject), 'shoal-router-7d4b9c-x2x9q'), routerOptions);
  };

  interface PlayedPod {
    name: string;
    child: ChildProcess;
    opsPort: number;
    /** The last lines the process logged, for the failure message. */
    log: string[];
    /** How many lines it logged at each level; lines that are no JSON log record count as `unstructured`. */
    levels: Map<string, number>;
    exited: Promise<number | null>;
  }
  /** Every process played as a pod, stopped at the end whatever happened. */
  const played: PlayedPod[] = [];

  /**
   * The pod's command line on loopback: the wildcard address becomes 127.0.0.1, and the DNS name of
   * storage pod N (with the port every pod shares in Kubernetes) resolves to 127.0.0.1 and that
   * pod's own port, `grpcPorts[N]`.
   */
  const onLoopback = (argv: string[], grpcPorts: readonly number[]): string[] =>
    argv.map((arg) =>
      arg
        .replace(/\bshoal-storage-(\d+)\.shoal-storage(?:\.[a-z0-9.-]+)?:\d+/g, (name: string, ordinal: string) => {
          const port = grpcPorts[Number(ordinal)];
          if (port === undefined) throw new Error(`${name}: no pod plays shoal-storage-${ordinal}`);
          return `127.0.0.1:${port}`;
        })
        .replace(/^0\.0\.0\.0(?=:|$)/, '127.0.0.1'),
    );

  /** Starts the real process a pod of `template` named `name` would run, the ConfigMap entries in `settings` changed. */
  const play = (name: string, template: IPodTemplateSpec | undefined, known: Map<string, CliOption>, settings: Record<string, string>, grpcPorts: readonly number[]): PlayedPod => {
    const argv = startCommandOf(template, 'shoal', name, settings);
    parseInvocation(argv, known);
    const child = spawn(SHOAL, onLoopback(argv, grpcPorts), {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The pod's environment only, with what the image provides: Node on PATH, SHOAL_HOME.
      env: { ...podEnvironment(template, 'shoal', name, settings), SHOAL_HOME: REPO, PATH: `${dirname(process.execPath)}:/usr/bin:/bin` },
    });
    const pod: PlayedPod = {
      name,
      child,
      opsPort: Number(settings.SHOAL_OPS_PORT),
      log: [],
      levels: new Map(),
      exited: new Promise((exited) => child.once('exit', (code) => exited(code))),
    };
    const levelOf = (line: string): string => {
      try {
        const record = JSON.parse(line) as { time?: unknown; level?: unknown; msg?: unknown };
        return typeof record.time === 'string' && typeof record.msg === 'string' && typeof record.level === 'string' ? record.level : 'unstructured';
      } catch {
        return 'unstructured';
      }
    };
    // A chunk may end mid-line: only whole lines are counted.
    let partial = '';
    const keep = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines.filter((candidate) => candidate !== '')) {
        const level = levelOf(line);
        pod.levels.set(level, (pod.levels.get(level) ?? 0) + 1);
        pod.log.push(line);
      }
      pod.log.splice(0, Math.max(0, pod.log.length - 20));
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    played.push(pod);
    return pod;
  };

  const untilReady = async (pod: PlayedPod): Promise<void> => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (pod.child.exitCode !== null) throw new Error(`${pod.name} exited (${pod.child.exitCode}):\n${pod.log.join('\n')}`);
      const ready = await httpGet(pod.opsPort, '/readyz').then(
        (answer) => answer.status === 200,
        () => false,
      );
      if (ready) return;
      await new Promise((tick) => setTimeout(tick, 200));
    }
    throw new Error(`${pod.name} not ready within ${READY_TIMEOUT_MS} ms:\n${pod.log.join('\n')}`);
  };

  /** SIGTERM, as the kubelet stops a pod; the exit code, or 'still running' after STOP_TIMEOUT_MS. */
  const stop = async (pod: PlayedPod): Promise<number | null | 'still running'> => {
    pod.child.kill('SIGTERM');
    return Promise.race([pod.exited, new Promise<'still running'>((late) => setTimeout(() => late('still running'), STOP_TIMEOUT_MS).unref())]);
  };

  beforeAll(() => {
    objects = kustomizeBuild();
    scratch = mkdtempSync(join(tmpdir(), 'shoal-deploy-'));
    nodeOptions = helpOptions('node');
    routerOptions = helpOptions('router');
  });
  afterAll(async () => {
    for (const pod of played) if (pod.child.exitCode === null) pod.child.kill('SIGKILL');
    await Promise.all(played.map((pod) => pod.exited));
    rmSync(scratch, { recursive: true, force: true });
  });

  it('builds with kustomize into objects that all validate against their schemas', () => {
    expect(objects.map((object) => `${object.kind}/${object.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/shoal-grafana-dashboard',
        `ConfigMap/${objects.find((object) => object.metadata.name.startsWith('shoal-config-'))?.metadata.name}`,
        'Deployment/shoal-router',
        'Namespace/shoal',
        'PodDisruptionBudget/shoal-router',
        'PodDisruptionBudget/shoal-storage',
        'Service/shoal-router',
        'Service/shoal-storage',
        'ServiceMonitor/shoal',
        'StatefulSet/shoal-storage',
      ].sort(),
    );
    for (const object of objects) {
      const Model = modelOf(object);
      expect(() => new Model(object).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('sets no field the Kubernetes API does not declare (strict field validation)', () => {
    expect(objects.flatMap((object) => undeclaredFields(object, objectType(object), `${object.kind}/${object.metadata.name}`))).toEqual([]);
  });

  it('finds a misspelt field (the field check is live)', () => {
    const misspelt = structuredClone(storage()) as IStatefulSet & KubernetesObject;
    const container = misspelt.spec!.template.spec!.containers[0] as IContainer & Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    (misspelt.spec!.volumeClaimTemplates![0].spec!.resources as Record<string, unknown>).request = {};
    expect(undeclaredFields(misspelt, objectType(misspelt), 'StatefulSet')).toEqual([
      'StatefulSet.spec.template.spec.containers[0].readinesProbe',
      'StatefulSet.spec.volumeClaimTemplates[0].spec.resources.request',
    ]);
  });

  it('rejects an object that breaks its schema (the validation is live)', () => {
    const broken = structuredClone(storage()) as IStatefulSet & KubernetesObject;
    (broken.spec as unknown as Record<string, unknown>).replicas = 'three';
    const Model = modelOf(broken);
    expect(() => new Model(broken).validate()).toThrow(/replicas/);
  });

  it('uses every file of deploy/kubernetes in the kustomization', () => {
    const kustomization = readFileSync(join(KUSTOMIZATION_DIR, 'kustomization.yaml'), 'utf8');
    const named = new Set(kustomization.match(/[\w.-]+\.(?:yaml|json|env|sh)\b/g));
    for (const file of readdirSync(KUSTOMIZATION_DIR)) {
      if (file !== 'kustomization.yaml') expect(named, file).toContain(file);
    }
  });

  it('changes the storage size with the overlay deploy/README.md shows', () => {
    const knob = readme.slice(readme.indexOf('- Storage size'));
    const overlay = /```yaml\n([\s\S]*?)```/.exec(knob)?.[1].replace(/^ {2}/gm, '');
    expect(overlay).toBeDefined();
    const dir = mkdtempSync(join(scratch, 'overlay-'));
    writeFileSync(join(dir, 'kustomization.yaml'), overlay!.replace('../path/to/shoal/deploy/kubernetes', relative(dir, KUSTOMIZATION_DIR)));
    const size = /value: (\S+)/.exec(overlay!)?.[1];
    const set = kustomizeBuild(dir).find((object) => object.kind === 'StatefulSet') as IStatefulSet | undefined;
    expect(set?.spec?.volumeClaimTemplates?.[0].spec?.resources?.requests?.storage).toBe(size);
    expect(size).not.toBe(storage().spec?.volumeClaimTemplates?.[0].spec?.resources?.requests?.storage);
  });

  it('ships the Grafana dashboard in a ConfigMap labelled for Grafana\'s dashboard sidecar', () => {
    const dashboard = configMap('shoal-grafana-dashboard');
    expect(dashboard.metadata?.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard.data?.['shoal.json'] ?? '')).toEqual(JSON.parse(readFileSync(join(KUSTOMIZATION_DIR, 'grafana-dashboard.json'), 'utf8')));
  });

  it('puts every namespaced object in the one namespace', () => {
    for (const object of objects) {
      if (object.kind !== 'Namespace') expect(namespaceOf(object), `${object.kind} ${object.metadata.name}`).toBe('shoal');
    }
  });

  it('sets nothing in shoal.env that neither start.sh nor the processes read', () => {
    const script = readFileSync(join(KUSTOMIZATION_DIR, 'start.sh'), 'utf8');
    const settings = readFileSync(join(KUSTOMIZATION_DIR, 'shoal.env'), 'utf8').match(/^\w+(?==)/gm) ?? [];
    expect(settings.length).toBeGreaterThan(0);
    const unread = settings.filter((setting) => !script.includes(`\${${setting}}`) && !script.includes(`$${setting}`));
    // What the processes read from their environment, shown by the pods played below.
    expect(unread).toEqual(['SHOAL_LOG_LEVEL']);
  });

  describe('storage nodes', () => {
    it('run as a StatefulSet of parallel pods with a volume claim each, spread across hosts', () => {
      const set = storage();
      const spec = set.spec!;
      const pod = spec.template.metadata?.labels;
      expect(spec.podManagementPolicy).toBe('Parallel');
      expect(spec.replicas).toBeGreaterThanOrEqual(3);
      expect(matchesSelector(spec.selector.matchLabels, pod)).toBe(true);
      expect(spec.volumeClaimTemplates).toHaveLength(1);
      expect(spec.volumeClaimTemplates![0].spec?.resources?.requests?.storage).toMatch(/^\d+(Gi|Ti)$/);
      const antiAffinity = spec.template.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      expect(antiAffinity.some((term) => term.topologyKey === 'kubernetes.io/hostname' && matchesSelector(term.labelSelector?.matchLabels, pod))).toBe(true);
    });

    it('start as node ordinal + 1, listening and advertised on the gRPC port of the headless Service', () => {
      const set = storage();
      const container = containerOf(set.spec?.template);
      const grpc = containerPort(container, 'grpc');
      const service = find<IService>('Service', set.spec!.serviceName!);
      expect(service.spec?.clusterIP).toBe('None');
      expect(service.spec?.publishNotReadyAddresses).toBe(true);
      expect(matchesSelector(service.spec?.selector, set.spec?.template.metadata?.labels)).toBe(true);
      const servicePort = service.spec?.ports?.find((port) => port.name === 'grpc');
      expect(servicePort?.port).toBe(grpc);
      expect(resolvePort(container, servicePort?.targetPort)).toBe(grpc);

      // Pods beyond the configured replicas are what scaling up creates.
      for (const ordinal of [0, 1, 2, set.spec!.replicas!]) {
        const node = storagePod(ordinal);
        expect(node.command).toBe('node');
        expect(required(node, '--node-id')).toBe(String(ordinal + 1));
        expect(hostPort(required(node, '--listen'))).toEqual({ host: '0.0.0.0', port: grpc });
        expect(required(node, '--advertise')).toBe(`shoal-storage-${ordinal}.${service.metadata!.name}.shoal.svc.cluster.local:${grpc}`);
      }
    });

    it('name the first three pods as the meta group, by the addresses those pods advertise', () => {
      const peers = required(storagePod(4), '--meta-peers').split(',');
      expect(peers).toEqual([0, 1, 2].map((ordinal) => `${ordinal + 1}=${required(storagePod(ordinal), '--advertise')}`));
      expect(storage().spec!.replicas).toBeGreaterThanOrEqual(peers.length);
    });

    it('keep their data on the volume claimed for the pod', () => {
      const set = storage();
      const container = containerOf(set.spec?.template);
      const claim = set.spec!.volumeClaimTemplates![0].metadata!.name;
      const mount = container.volumeMounts?.find((candidate) => candidate.name === claim);
      expect(mount?.readOnly).not.toBe(true);
      expect(required(storagePod(1), '--data-dir')).toBe(mount?.mountPath);
    });

    it('refuse to start in a pod whose name carries no ordinal', () => {
      const set = storage();
      expect(() => startCommandOf(set.spec?.template, 'shoal', 'shoal-storage')).toThrow(/does not end in a StatefulSet ordinal/);
    });

    it('keep a Raft majority through voluntary disruptions', () => {
      const budget = find<IPodDisruptionBudget>('PodDisruptionBudget', 'shoal-storage');
      expect(matchesSelector(budget.spec?.selector?.matchLabels, storage().spec?.template.metadata?.labels)).toBe(true);
      // Each Raft group has three voters, so at most one may be down for a majority (two) to remain.
      expect(budget.spec?.minAvailable).toBeUndefined();
      expect(budget.spec?.maxUnavailable).toBe(1);
    });
  });

  describe('routers', () => {
    it('run as a Deployment behind a Service on the DynamoDB port the process listens on', () => {
      const deployment = router();
      const container = containerOf(deployment.spec?.template);
      const dynamodb = containerPort(container, 'dynamodb');
      const service = find<IService>('Service', 'shoal-router');
      expect(matchesSelector(service.spec?.selector, deployment.spec?.template.metadata?.labels)).toBe(true);
      expect(matchesSelector(deployment.spec?.selector.matchLabels, deployment.spec?.template.metadata?.labels)).toBe(true);
      const servicePort = service.spec?.ports?.find((port) => port.name === 'dynamodb');
      expect(resolvePort(container, servicePort?.targetPort)).toBe(dynamodb);

      const started = routerPod();
      expect(started.command).toBe('router');
      expect(required(started, '--host')).toBe('0.0.0.0');
      expect(Number(required(started, '--port'))).toBe(dynamodb);
      expect(deployment.spec?.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    });

    it('each admit their share of a PROVISIONED table: --routers is the Deployment\'s replica count, in an overlay too', () => {
      expect(Number(required(routerPod(), '--routers'))).toBe(router().spec?.replicas);
      const knob = readme.slice(readme.indexOf('- Router count'));
      const overlay = /```yaml\n([\s\S]*?)```/.exec(knob)?.[1].replace(/^ {2}/gm, '');
      expect(overlay).toBeDefined();
      const dir = mkdtempSync(join(scratch, 'overlay-'));
      writeFileSync(join(dir, 'kustomization.yaml'), overlay!.replace('../path/to/shoal/deploy/kubernetes', relative(dir, KUSTOMIZATION_DIR)));
      const count = Number(/count: (\d+)/.exec(overlay!)?.[1]);
      expect(count).not.toBe(router().spec?.replicas);
      const deployment = kustomizeBuild(dir).find((object) => object.kind === 'Deployment') as (IDeployment & KubernetesObject) | undefined;
      expect(deployment?.spec?.replicas).toBe(count);
      const started = parseInvocation(startCommandOf(deployment?.spec?.template, 'shoal', 'shoal-router-5c9f7-abcde'), routerOptions);
      expect(Number(required(started, '--routers'))).toBe(count);
    });

    it('reach the meta group at the addresses the meta peers advertise', () => {
      const metaPeers = required(storagePod(0), '--meta-peers')
        .split(',')
        .map((peer) => peer.slice(peer.indexOf('=') + 1));
      expect(required(routerPod(), '--meta').split(',')).toEqual(metaPeers);
    });
  });

  describe('every process', () => {
    const pods = (): { name: string; template: IPodTemplateSpec | undefined; invocation: () => ShoalInvocation }[] => [
      { name: 'storage', template: storage().spec?.template, invocation: () => storagePod(0) },
      { name: 'router', template: router().spec?.template, invocation: routerPod },
    ];

    it('serves /metrics and the probes on the ops port the probes and the ServiceMonitor use', () => {
      const monitor = find<IServiceMonitor>('ServiceMonitor', 'shoal');
      const services = objects.filter(
        (object): object is IService & KubernetesObject => object.kind === 'Service' && matchesSelector(monitor.spec.selector.matchLabels, object.metadata.labels),
      );
      expect(services.map((service) => service.metadata.name).sort()).toEqual(['shoal-router', 'shoal-storage']);
      for (const { name, template, invocation } of pods()) {
        const container = containerOf(template);
        const ops = Number(required(invocation(), '--ops-port'));
        expect(required(invocation(), '--ops-host'), name).toBe('0.0.0.0');
        expect(containerPort(container, 'ops'), name).toBe(ops);

        const probe = (kind: string, found: IProbe | undefined): void => {
          expect(found?.httpGet, `${name} ${kind}`).toBeDefined();
          expect(resolvePort(container, found?.httpGet?.port), `${name} ${kind}`).toBe(ops);
        };
        probe('readiness', container.readinessProbe);
        expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
        probe('liveness', container.livenessProbe);
        expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
        probe('startup', container.startupProbe);
        expect(container.startupProbe?.httpGet?.path).toBe('/healthz');

        const service = services.find((candidate) => matchesSelector(candidate.spec?.selector, template?.metadata?.labels));
        expect(service, `${name}: the Service the ServiceMonitor scrapes`).toBeDefined();
        for (const endpoint of monitor.spec.endpoints ?? []) {
          expect(endpoint.path).toBe('/metrics');
          const servicePort = service?.spec?.ports?.find((port) => port.name === endpoint.port);
          expect(resolvePort(container, servicePort?.targetPort), `${name} ${endpoint.port}`).toBe(ops);
        }
      }
    });

    it('runs the same image as a non-root user with requested resources and a graceful stop', () => {
      for (const { name, template } of pods()) {
        const container = containerOf(template);
        expect(container.image, name).toBe('shoal:0.1.0');
        expect(template?.spec?.securityContext?.runAsNonRoot, name).toBe(true);
        expect(template?.spec?.securityContext?.runAsUser, name).toBeGreaterThan(0);
        expect(container.securityContext?.allowPrivilegeEscalation, name).toBe(false);
        expect(container.resources?.requests?.cpu, name).toBeDefined();
        expect(container.resources?.requests?.memory, name).toBeDefined();
        expect(container.resources?.limits?.memory, name).toBe(container.resources?.requests?.memory);
        expect(template?.spec?.terminationGracePeriodSeconds, name).toBeGreaterThanOrEqual(30);
      }
      // The storage pods' volume must be writable by that user.
      expect(storage().spec?.template.spec?.securityContext?.fsGroup).toBe(storage().spec?.template.spec?.securityContext?.runAsGroup);
    });
  });

  describe('a StatefulSet of storage pods played by real processes on loopback, with a router pod', () => {
    const TABLES = ['orders', 'events'];
    const grpcPorts: number[] = [];
    const opsPorts: number[] = [];
    /** The pods' claims: a data directory each, which outlives the pod's process. */
    const claims: string[] = [];
    const storagePods = new Map<number, PlayedPod>();
    let routerPod: PlayedPod;
    let client: DynamoDBClient;

    const startStoragePod = (ordinal: number): PlayedPod => {
      const settings = { SHOAL_GRPC_PORT: String(grpcPorts[ordinal]), SHOAL_OPS_PORT: String(opsPorts[ordinal]), SHOAL_DATA_DIR: claims[ordinal] };
      const pod = play(`shoal-storage-${ordinal}`, storage().spec?.template, nodeOptions, settings, grpcPorts);
      storagePods.set(ordinal, pod);
      return pod;
    };
    /** A metric of storage pod N's node, read from its /metrics. */
    const nodeMetric = async (ordinal: number, name: string): Promise<number> => {
      const exposition = (await httpGet(opsPorts[ordinal], '/metrics')).body;
      const sample = exposition.split('\n').find((line) => line.startsWith(`${name}{node_id="${ordinal + 1}"} `));
      if (sample === undefined) throw new Error(`shoal-storage-${ordinal} exports no ${name} for node ${ordinal + 1}`);
      return Number(sample.slice(sample.lastIndexOf(' ') + 1));
    };
    const put = (table: string, key: string): Promise<unknown> =>
      client.send(new PutItemCommand({ TableName: table, Item: { pk: { S: key }, written: { S: key } } }));
    const stored = async (table: string, key: string): Promise<boolean> =>
      (await client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: key } }, ConsistentRead: true }))).Item?.written?.S === key;

    /** The README's metrics of one process (by prefix) export as documented: exported ones present, planned ones absent. */
    const expectDocumentedMetrics = (exposition: string, prefix: string): void => {
      const exposed = exposedMetrics(exposition);
      const rows = documentedMetrics().filter((row) => row.name.startsWith(prefix));
      expect(rows.length).toBeGreaterThan(0);
      const exported = rows.filter((row) => row.status === 'exported');
      expect(exported.map((row) => `${row.name} ${exposed.get(row.name) ?? 'missing'}`), 'the README\'s exported metrics, as /metrics has them').toEqual(exported.map((row) => `${row.name} ${row.type}`));
      expect(rows.filter((row) => row.status === 'planned' && [...exposed.keys()].some((name) => name.startsWith(row.name))).map((row) => row.name), 'exported now: mark them so in the README').toEqual([]);
    };

    beforeAll(async () => {
      for (let ordinal = 0; ordinal < storage().spec!.replicas! + 1; ordinal++) {
        grpcPorts.push(await freePort());
        opsPorts.push(await freePort());
        claims.push(mkdtempSync(join(scratch, `data-shoal-storage-${ordinal}-`)));
      }
      // podManagementPolicy Parallel: the pods start together, none waits for another to be ready.
      const initial = Array.from({ length: storage().spec!.replicas! }, (_, ordinal) => startStoragePod(ordinal));
      await Promise.all(initial.map(untilReady));
      const dynamodbPort = await freePort();
      // The router logs from warn up (a ConfigMap change): the log level test below tells the difference.
      const routerSettings = { SHOAL_DYNAMODB_PORT: String(dynamodbPort), SHOAL_OPS_PORT: String(await freePort()), SHOAL_LOG_LEVEL: 'warn' };
      routerPod = play('shoal-router-5c9f7-fghij', router().spec?.template, routerOptions, routerSettings, grpcPorts);
      await untilReady(routerPod);
      // The SDK's own retries (standard mode, 3 attempts) are the only ones a client gets.
      client = new DynamoDBClient({
        endpoint: `http://127.0.0.1:${dynamodbPort}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'shoal', secretAccessKey: 'shoal' },
      });
    }, STEP_TIMEOUT_MS);

    afterAll(() => {
      client?.destroy();
    });

    it('forms one cluster: pod N is node N+1, and every node takes a replica of every table', { timeout: STEP_TIMEOUT_MS }, async () => {
      for (const ordinal of storagePods.keys()) expect(await nodeMetric(ordinal, 'shoal_node_ready')).toBe(1);
      for (const table of TABLES) {
        await client.send(
          new CreateTableCommand({
            TableName: table,
            KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
            AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
            BillingMode: 'PAY_PER_REQUEST',
          }),
        );
        await eventually(`${table} active`, async () => (await client.send(new DescribeTableCommand({ TableName: table }))).Table?.TableStatus === 'ACTIVE', SETTLE_TIMEOUT_MS, SETTLE_POLL_MS);
      }
      await eventually('2 replicas on each of nodes 1..3', async () => {
        const counts = await Promise.all([0, 1, 2].map((ordinal) => nodeMetric(ordinal, 'shoal_node_partition_replicas')));
        return counts.every((count) => count === TABLES.length);
      }, SETTLE_TIMEOUT_MS, SETTLE_POLL_MS);
      for (const table of TABLES) {
        await put(table, 'formed');
        expect(await stored(table, 'formed')).toBe(true);
      }
    });

    it('answer the probes on their ops port and export the documented metrics there', { timeout: STEP_TIMEOUT_MS }, async () => {
      for (const pod of [storagePods.get(0)!, routerPod]) {
        expect(await httpGet(pod.opsPort, '/healthz'), pod.name).toMatchObject({ status: 200 });
        expect(await httpGet(pod.opsPort, '/readyz'), pod.name).toMatchObject({ status: 200 });
      }
      expectDocumentedMetrics((await httpGet(storagePods.get(0)!.opsPort, '/metrics')).body, 'shoal_node_');
      expectDocumentedMetrics((await httpGet(routerPod.opsPort, '/metrics')).body, 'shoal_router_');
    });

    it('answer `shoal admin status` as deploy/README.md runs it in a pod', { timeout: STEP_TIMEOUT_MS }, () => {
      const command = /`kubectl -n shoal exec shoal-storage-0 -- shoal (admin status [^`]*)`/.exec(readme)?.[1];
      expect(command).toBeDefined();
      const status = JSON.parse(shoal([...onLoopback(command!.split(' '), grpcPorts), '--json'])) as { nodes: { id: number; state: string }[] };
      expect(status.nodes.map((node) => `${node.id}:${node.state}`).sort()).toEqual(['1:up', '2:up', '3:up']);
    });

    it('scaled to 4: pod shoal-storage-3 joins as node 4 and receives a replica', { timeout: STEP_TIMEOUT_MS }, async () => {
      await untilReady(startStoragePod(3));
      expect(await nodeMetric(3, 'shoal_node_ready')).toBe(1);
      await eventually('a replica moved to node 4', async () => (await nodeMetric(3, 'shoal_node_partition_replicas')) >= 1, SETTLE_TIMEOUT_MS, SETTLE_POLL_MS);
      for (const table of TABLES) await put(table, 'scaled-up');
    });

    it('scaled back to 3: drained as deploy/README.md says, the fourth pod stops cleanly, keeps its claim, and the tables keep taking writes', { timeout: STEP_TIMEOUT_MS }, async () => {
      const command = /kubectl -n shoal exec shoal-storage-0 -- shoal (admin drain 4 [^`\n]*)/.exec(readme)?.[1];
      expect(command).toBeDefined();
      // Not execFileSync: the pods' log pipes must keep draining while the replicas move.
      const { stdout } = await execFileAsync(SHOAL, onLoopback(command!.split(' '), grpcPorts), {
        encoding: 'utf8',
        timeout: STEP_TIMEOUT_MS / 2,
        env: { ...process.env, SHOAL_HOME: REPO, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      });
      expect(stdout).toMatch(/node 4: drained, no replica left/);
      expect(await nodeMetric(3, 'shoal_node_partition_replicas')).toBe(0);
      const pod = storagePods.get(3)!;
      expect(await stop(pod), pod.log.join('\n')).toBe(0);
      expect(readdirSync(claims[3]).length).toBeGreaterThan(0);
      for (const table of TABLES) {
        await put(table, 'scaled-down');
        expect(await stored(table, 'scaled-down')).toBe(true);
      }
    });

    it('restarted pod by pod, highest ordinal first, under writes: no failed request, no lost write', { timeout: STEP_TIMEOUT_MS }, async () => {
      const acknowledged: { table: string; key: string }[] = [];
      const failures: string[] = [];
      let writing = true;
      const writer = (async () => {
        for (let index = 0; writing && index < 100_000; index++) {
          const write = { table: TABLES[index % TABLES.length], key: `rolling-${index}` };
          try {
            await put(write.table, write.key);
            acknowledged.push(write);
          } catch (error) {
            failures.push(`${write.table}/${write.key}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
          }
        }
      })();
      try {
        // As a StatefulSet rolling update does it: stop a pod, start it again on its claim, wait until ready.
        for (const ordinal of [2, 1, 0]) {
          const before = acknowledged.length;
          const pod = storagePods.get(ordinal)!;
          expect(await stop(pod), pod.log.join('\n')).toBe(0);
          await untilReady(startStoragePod(ordinal));
          await eventually(`writes after shoal-storage-${ordinal} restarted`, async () => acknowledged.length > before + 10, SETTLE_TIMEOUT_MS, SETTLE_POLL_MS);
        }
      } finally {
        writing = false;
        await writer;
      }
      expect(failures).toEqual([]);
      const lost: string[] = [];
      for (const write of acknowledged) if (!(await stored(write.table, write.key))) lost.push(`${write.table}/${write.key}`);
      expect(lost).toEqual([]);
    });

    it('log JSON lines only, from the level shoal.env sets (info; warn for the router)', () => {
      for (const pod of storagePods.values()) {
        expect(pod.levels.get('unstructured'), pod.log.join('\n')).toBeUndefined();
        expect(pod.levels.get('info'), pod.name).toBeGreaterThan(0);
        expect(pod.levels.get('debug'), pod.name).toBeUndefined();
      }
      expect(routerPod.levels.get('unstructured'), routerPod.log.join('\n')).toBeUndefined();
      expect(routerPod.levels.get('info'), routerPod.log.join('\n')).toBeUndefined();
    });

    it('stop cleanly on SIGTERM, the router first', { timeout: STEP_TIMEOUT_MS }, async () => {
      expect(await stop(routerPod), routerPod.log.join('\n')).toBe(0);
      const running = [...storagePods.values()].filter((pod) => pod.child.exitCode === null);
      expect(running).toHaveLength(storage().spec!.replicas!);
      const codes = await Promise.all(running.map(stop));
      expect(codes, running.map((pod) => pod.log.join('\n')).join('\n')).toEqual(running.map(() => 0));
    });
  });
});

describe('Grafana dashboard (deploy/kubernetes/grafana-dashboard.json)', () => {
  interface Target {
    expr: string;
    datasource?: { uid?: string };
  }
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    datasource?: { uid?: string };
    targets?: Target[];
  }

  const dashboard = JSON.parse(readFileSync(join(KUSTOMIZATION_DIR, 'grafana-dashboard.json'), 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: { name: string; type: string }[] };
  };
  const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');

  /** The `shoal_` series an expression reads. */
  const seriesOf = (expr: string): string[] => [...expr.matchAll(/\bshoal_[a-z0-9_]+/g)].map((match) => match[0]);
  /** Whether the expression takes the rate (or increase) of the series itself. */
  const ratesOf = (expr: string, series: string): boolean => new RegExp(`\\b(?:rate|increase)\\(\\s*${series}\\b`).test(expr);

  it('has panels with unique ids, laid out on the 24-column grid without overlap', () => {
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
    const taken = new Set<string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          const cell = `${row}:${column}`;
          expect(taken.has(cell), `${panel.title} overlaps at ${cell}`).toBe(false);
          taken.add(cell);
        }
      }
    }
  });

  it('queries the data source chosen in its variable, in the chosen namespace', () => {
    expect(dashboard.templating.list.map((variable) => `${variable.name}:${variable.type}`)).toEqual(['datasource:datasource', 'namespace:query']);
    for (const panel of graphs) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      for (const target of panel.targets ?? []) {
        expect(target.expr, panel.title).toContain('namespace="$namespace"');
        expect(seriesOf(target.expr).length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
      }
    }
  });

  it('reads exactly the metrics deploy/README.md lists, each as its type requires', () => {
    const documented = documentedMetrics();
    expect(documented.length).toBeGreaterThan(0);
    const byName = new Map(documented.map((row) => [row.name, row]));
    const used = new Set<string>();
    for (const panel of graphs) {
      for (const target of panel.targets ?? []) {
        for (const series of seriesOf(target.expr)) {
          const histogram = byName.get(series.replace(/_bucket$/, ''));
          if (histogram?.type === 'histogram') {
            expect(series, `${panel.title}: a histogram is read through its buckets`).toMatch(/_bucket$/);
            expect(target.expr, panel.title).toMatch(/histogram_quantile\(/);
            expect(ratesOf(target.expr, series), `${panel.title}: buckets are counters, read as a rate`).toBe(true);
            used.add(histogram.name);
            continue;
          }
          const row = byName.get(series);
          expect(row, `${panel.title}: ${series} is not in deploy/README.md`).toBeDefined();
          used.add(series);
          if (row?.type === 'counter') {
            expect(series, 'counters end in _total').toMatch(/_total$/);
            expect(ratesOf(target.expr, series), `${panel.title}: a counter is read as a rate`).toBe(true);
          } else {
            expect(series, 'only counters end in _total').not.toMatch(/_total$/);
            expect(ratesOf(target.expr, series), `${panel.title}: a gauge is not a rate`).toBe(false);
          }
        }
      }
    }
    expect([...used].sort()).toEqual(documented.map((row) => row.name).sort());
    // Every panel shows data: what it reads is exported by a process (the pods played above check /metrics).
    expect(documented.filter((row) => row.status !== 'exported').map((row) => row.name), 'read by the dashboard, exported by no process').toEqual([]);
  });

  it('lists its panels in deploy/README.md, row by row', () => {
    const section = readme.slice(readme.indexOf('## Grafana dashboard'), readme.indexOf('## Metrics the dashboard reads'));
    const rows = new Map<string, string[]>();
    let row = '';
    for (const panel of dashboard.panels) {
      if (panel.type === 'row') rows.set((row = panel.title), []);
      else rows.get(row)?.push(panel.title);
    }
    expect([...rows.values()].flat()).toEqual(graphs.map((panel) => panel.title));
    for (const [title, panels] of rows) {
      const line = section.split('\n').find((candidate) => candidate.startsWith(`- ${title}: `));
      expect(line?.slice(`- ${title}: `.length).split(', '), title).toEqual(panels);
    }
  });
});

describe('Docker image (deploy/Dockerfile)', () => {
  interface Instruction {
    keyword: string;
    args: string;
  }
  /** The Dockerfile's instructions, continuation lines joined, comments dropped. */
  const instructions: Instruction[] = readFileSync(join(REPO, 'deploy', 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [, keyword, args] = /^\s*(\w+)\s+(.*)$/.exec(line) ?? ['', '', ''];
      return { keyword: keyword.toUpperCase(), args: args.trim() };
    });
  const stages = instructions.reduce<Instruction[][]>((all, instruction) => {
    if (instruction.keyword === 'FROM') all.push([]);
    all.at(-1)?.push(instruction);
    return all;
  }, []);
  const final = stages.at(-1) ?? [];
  const last = (keyword: string): string => {
    const found = final.filter((instruction) => instruction.keyword === keyword).at(-1);
    if (found === undefined) throw new Error(`the final stage has no ${keyword}`);
    return found.args;
  };
  const settings = Object.fromEntries(
    readFileSync(join(KUSTOMIZATION_DIR, 'shoal.env'), 'utf8')
      .split('\n')
      .filter((line) => /^\w+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

  it('builds in stages on Node 24, installing production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const engines = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    for (const stage of stages) expect(stage[0].args).toMatch(new RegExp(`^node:${engines.replace('>=', '')}\\b`));
    const installs = instructions.filter((instruction) => instruction.keyword === 'RUN' && /\bnpm (ci|install|i)\b/.test(instruction.args));
    expect(installs.map((instruction) => instruction.args)).toEqual([expect.stringMatching(/^npm ci .*--omit=dev/)]);
    const builder = /\bAS (\w+)$/i.exec(stages[0][0].args)?.[1];
    expect(final.some((instruction) => instruction.keyword === 'COPY' && instruction.args.startsWith(`--from=${builder} `))).toBe(true);
  });

  it('runs as the numeric non-root user the pods run as', () => {
    const [user, group] = last('USER').split(':').map(Number);
    expect(user).toBeGreaterThan(0);
    for (const file of ['storage-statefulset.yaml', 'router-deployment.yaml']) {
      const manifest = parseAllDocuments(readFileSync(join(KUSTOMIZATION_DIR, file), 'utf8'))[0].toJS() as IStatefulSet | IDeployment;
      expect(manifest.spec?.template.spec?.securityContext, file).toMatchObject({ runAsUser: user, runAsGroup: group });
    }
  });

  it('exposes the ports and the data volume the manifests use', () => {
    const exposed = last('EXPOSE').split(/\s+/).sort();
    expect(exposed).toEqual([settings.SHOAL_GRPC_PORT, settings.SHOAL_DYNAMODB_PORT, settings.SHOAL_OPS_PORT].sort());
    expect(JSON.parse(last('VOLUME'))).toEqual([settings.SHOAL_DATA_DIR]);
  });

  it('has the shoal entry point, which runs the real CLI', () => {
    expect(JSON.parse(last('ENTRYPOINT'))).toEqual(['shoal']);
    const copy = final.find((instruction) => instruction.keyword === 'COPY' && instruction.args.startsWith('deploy/bin/shoal '));
    expect(copy?.args).toBe('deploy/bin/shoal /usr/local/bin/shoal');
    expect(statSync(SHOAL).mode & 0o111).toBe(0o111);
    expect(last('ENV')).toContain(`SHOAL_HOME=${last('WORKDIR')}`);
    expect(shoal(['--help'])).toMatch(/^Usage: shoal /);
    // The default command (`docker run shoal`) uses only options `shoal dev` has.
    const [command, ...args] = JSON.parse(last('CMD')) as string[];
    const known = helpOptions(command);
    for (const arg of args.filter((value) => value.startsWith('--'))) expect(known.has(arg), `shoal ${command} ${arg}`).toBe(true);
  });

  it('sends the build every file the image needs and no tests', () => {
    const ignore = readFileSync(join(REPO, 'deploy', 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => {
        const negated = line.startsWith('!');
        const glob = negated ? line.slice(1) : line;
        const pattern = glob
          .split('/')
          .map((part) => (part === '**' ? '.*' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
          .join('/');
        // As in Docker, a pattern that matches a directory matches everything under it.
        return { negated, regex: new RegExp(`^${pattern}(/.*)?$`) };
      });
    const sent = (path: string): boolean => {
      let included = true;
      for (const rule of ignore) if (rule.regex.test(path)) included = rule.negated;
      return included;
    };
    const files = execFileSync('git', ['ls-files'], { cwd: REPO, encoding: 'utf8' }).split('\n').filter((file) => file !== '');
    const context = files.filter(sent);
    const needed = files.filter((file) => /^(package(-lock)?\.json|packages\/[^/]+\/package\.json|packages\/[^/]+\/src\/.*|deploy\/bin\/shoal)$/.test(file));
    expect(context.sort()).toEqual(needed.sort());
    for (const copy of instructions.filter((instruction) => instruction.keyword === 'COPY' && !instruction.args.startsWith('--from'))) {
      for (const source of copy.args.split(/\s+/).slice(0, -1)) {
        expect(context.some((file) => file === source || file.startsWith(`${source}/`)), `COPY ${source}`).toBe(true);
      }
    }
  });

  it('installs every package the processes import (npm ci --omit=dev --omit=optional)', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean; link?: boolean }>;
    };
    const installed = (packageDir: string, name: string): boolean => {
      // Resolution from packages/<pkg>/src: the workspace's own node_modules first, then the root's.
      const entry = lock.packages[`${packageDir}/node_modules/${name}`] ?? lock.packages[`node_modules/${name}`];
      return entry !== undefined && entry.dev !== true && entry.optional !== true && entry.devOptional !== true;
    };
    const sources = execFileSync('git', ['ls-files', ':(glob)packages/*/src/**/*.ts'], { cwd: REPO, encoding: 'utf8' }).split('\n').filter((file) => file !== '');
    expect(sources.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const file of sources) {
      const text = readFileSync(join(REPO, file), 'utf8');
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^;]*?\bfrom\s+'([^']+)'/gm),
        ...text.matchAll(/^\s*import\s+'([^']+)'/gm),
        ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
      ].map((match) => match[1]);
      for (const specifier of specifiers) {
        if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
        const packageDir = file.split('/').slice(0, 2).join('/');
        if (!installed(packageDir, name)) missing.push(`${file}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
