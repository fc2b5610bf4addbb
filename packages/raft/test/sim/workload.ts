import type { KvOperation } from '@shoal/linearizability';
import type { SimNode } from './host.ts';
import { encodeCommand, type ApplyResult, type KvCommand } from './kv.ts';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';

export type ReadMode = 'readIndex' | 'lease';

export interface WorkloadOptions {
  clients: number;
  registerKeys: readonly string[];
  listKeys: readonly string[];
  /** After this long without an answer an operation's outcome is unknown. */
  timeoutMs: number;
  maxThinkMs: number;
  /** Serve gets from the contacted node's state without ReadIndex (a deliberate bug). */
  localReads: boolean;
  /** Attempts per write: a timed-out write is proposed again, same (client, seq), to another node. */
  writeAttempts: number;
}

/** How clients reach the cluster. */
export interface ClientPort {
  readonly scheduler: Scheduler;
  /** A node to send a request to: usually the one that believes it leads, sometimes any live node. */
  chooseNode(prng: Prng): SimNode | undefined;
  /** Runs `action` as soon as the node's process runs (at once unless it is paused). */
  whenRunning(node: SimNode, action: () => void): void;
  trace(text: string): void;
}

type PendingOperation = {
  node: SimNode;
  incarnation: number;
  seq: number;
  call: number;
  context: string;
  operation: KvOperation;
  /** The proposal of a write, kept to retry it unchanged. */
  command: KvCommand | undefined;
  attempts: number;
};

/**
 * Sequential clients issuing put, get, compare-and-set, append and read-list, and the history of
 * what they were told. Times are a logical clock advanced at every call and return, so real-time
 * order in the history is exactly the order of events in the simulation.
 */
export class Workload {
  readonly history: KvOperation[] = [];
  private readonly options: WorkloadOptions;
  private readonly port: ClientPort;
  private readonly prng: Prng;
  private readonly pending = new Map<number, PendingOperation>();
  private readonly seqs = new Map<number, number>();
  /** The last value each client saw per register: what its compare-and-sets expect. */
  private readonly seen = new Map<string, string | null>();
  private running = false;
  private clock = 0;
  completed = 0;
  indeterminate = 0;
  refused = 0;
  retried = 0;

  constructor(options: WorkloadOptions, port: ClientPort, prng: Prng) {
    this.options = options;
    this.port = port;
    this.prng = prng;
  }

  start(): void {
    this.running = true;
    for (let client = 1; client <= this.options.clients; client++) this.scheduleNext(client);
  }

  /** No new operations; those in flight finish or time out. */
  stop(): void {
    this.running = false;
  }

  /** Ends every operation still waiting: writes become indeterminate, reads are dropped. */
  abandonPending(): void {
    for (const client of [...this.pending.keys()]) this.timeOut(client);
  }

  onCommandApplied(node: SimNode, command: KvCommand, result: ApplyResult): void {
    if (command.kind === 'noop' || result.kind === 'noop' || result.ok === undefined) return;
    const op = this.pending.get(command.client);
    if (!op || op.seq !== command.seq || op.node !== node) return;
    const operation = op.operation;
    if (operation.type === 'cas') operation.ok = result.ok;
    if (operation.type === 'put' || (operation.type === 'cas' && result.ok)) this.seen.set(`${command.client}/${operation.key}`, operation.value);
    this.finish(command.client, op);
  }

  onReadReady(node: SimNode, context: string): void {
    const client = Number(context.slice(0, context.indexOf(':')));
    const op = this.pending.get(client);
    if (!op || op.context !== context || op.node !== node || op.incarnation !== node.incarnation) return;
    this.answerRead(client, op);
  }

  private scheduleNext(client: number): void {
    if (!this.running) return;
    this.port.scheduler.after(this.prng.int(0, this.options.maxThinkMs + 1), () => this.invoke(client));
  }

  private invoke(client: number): void {
    if (!this.running) return;
    const node = this.port.chooseNode(this.prng);
    if (!node) return this.scheduleNext(client);
    const seq = (this.seqs.get(client) ?? 0) + 1;
    this.seqs.set(client, seq);
    const operation = this.nextOperation(client, seq);
    const isRead = operation.type === 'get' || operation.type === 'read-list';
    const op: PendingOperation = {
      node,
      incarnation: node.incarnation,
      seq,
      call: ++this.clock,
      context: `${client}:${seq}`,
      operation,
      command: isRead ? undefined : this.commandFor(client, seq, operation),
      attempts: 1,
    };
    operation.call = op.call;
    this.pending.set(client, op);
    this.armTimeout(client, op);
    this.port.trace(`client ${client} -> node ${node.id}: ${describeOperation(operation)}`);
    // A paused node takes the request when it resumes, unless the client gave up or retried elsewhere by then.
    this.port.whenRunning(node, () => {
      if (this.pending.get(client) === op && op.attempts === 1) this.submit(client, op);
    });
  }

  /** The first attempt reaches its node; if refused, the operation never happened. */
  private submit(client: number, op: PendingOperation): void {
    const node = op.node;
    let accepted: boolean;
    if (op.command === undefined) {
      if (this.options.localReads) {
        this.answerRead(client, op);
        return;
      }
      accepted = node.readIndex(op.context);
    } else {
      accepted = node.propose(encodeCommand(op.command));
    }
    if (!accepted && this.pending.get(client) === op) {
      // Refused outright: it never happened, so it is left out of the history.
      this.refused++;
      this.port.trace(`client ${client}: refused by node ${node.id}`);
      this.pending.delete(client);
      this.scheduleNext(client);
    }
  }

  private armTimeout(client: number, op: PendingOperation): void {
    const attempt = op.attempts;
    this.port.scheduler.after(this.options.timeoutMs, () => {
      if (this.pending.get(client) === op && op.attempts === attempt) this.timeOut(client);
    });
  }

  /** Proposes a timed-out write again; the state machine applies it at most once. */
  private retry(client: number, op: PendingOperation, command: KvCommand): boolean {
    const node = this.port.chooseNode(this.prng);
    if (!node || node.isPausedAt(this.port.scheduler.now) || !node.propose(encodeCommand(command))) return false;
    op.node = node;
    op.incarnation = node.incarnation;
    op.attempts++;
    this.retried++;
    this.armTimeout(client, op);
    this.port.trace(`client ${client} -> node ${node.id}: retry ${describeOperation(op.operation)}`);
    return true;
  }

  private nextOperation(client: number, seq: number): KvOperation {
    const { registerKeys, listKeys } = this.options;
    const value = `${client}.${seq}`;
    const roll = this.prng.float();
    if (listKeys.length > 0 && roll < 0.25) {
      const key = this.prng.pick(listKeys);
      return this.prng.chance(0.5) ? { process: client, key, call: 0, type: 'append', value } : { process: client, key, call: 0, type: 'read-list' };
    }
    const key = this.prng.pick(registerKeys);
    if (roll < 0.5) return { process: client, key, call: 0, type: 'put', value };
    if (roll < 0.8) return { process: client, key, call: 0, type: 'get' };
    const expected = this.seen.get(`${client}/${key}`) ?? null;
    return { process: client, key, call: 0, type: 'cas', expected, value };
  }

  private commandFor(client: number, seq: number, operation: KvOperation): KvCommand {
    switch (operation.type) {
      case 'put':
        return { kind: 'put', client, seq, key: operation.key, value: operation.value };
      case 'cas':
        return { kind: 'cas', client, seq, key: operation.key, expected: operation.expected, value: operation.value };
      case 'append':
        return { kind: 'append', client, seq, key: operation.key, value: operation.value };
      default:
        throw new Error(`${operation.type} is not a write`);
    }
  }

  private answerRead(client: number, op: PendingOperation): void {
    const operation = op.operation;
    if (operation.type === 'get') {
      operation.output = op.node.kv.get(operation.key);
      this.seen.set(`${client}/${operation.key}`, operation.output);
    } else if (operation.type === 'read-list') {
      operation.output = op.node.kv.readList(operation.key);
    }
    this.finish(client, op);
  }

  private finish(client: number, op: PendingOperation): void {
    op.operation.return = ++this.clock;
    this.history.push(op.operation);
    this.completed++;
    this.pending.delete(client);
    this.port.trace(`client ${client} <- node ${op.node.id}: ${describeOperation(op.operation)}`);
    this.scheduleNext(client);
  }

  private timeOut(client: number): void {
    const op = this.pending.get(client);
    if (!op) return;
    if (this.running && op.command && op.attempts < this.options.writeAttempts && this.retry(client, op, op.command)) return;
    this.pending.delete(client);
    const type = op.operation.type;
    if (type === 'put' || type === 'cas' || type === 'append') {
      // It may still take effect at any later time: recorded without a return.
      this.history.push(op.operation);
      this.indeterminate++;
    }
    this.port.trace(`client ${client}: timeout ${describeOperation(op.operation)} (node ${op.node.id})`);
    this.scheduleNext(client);
  }
}

export function describeOperation(operation: KvOperation): string {
  switch (operation.type) {
    case 'put':
      return `put ${operation.key}=${operation.value}`;
    case 'get':
      return `get ${operation.key}${operation.return === undefined ? '' : ` = ${operation.output === null ? 'nil' : operation.output}`}`;
    case 'cas':
      return `cas ${operation.key} ${operation.expected ?? 'nil'}->${operation.value}${operation.ok === undefined ? '' : operation.ok ? ' ok' : ' failed'}`;
    case 'append':
      return `append ${operation.key} ${operation.value}`;
    case 'read-list':
      return `read-list ${operation.key}${operation.output === undefined ? '' : ` = [${operation.output.join(' ')}]`}`;
  }
}
