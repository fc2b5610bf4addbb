/**
 * The replicated key-value state machine. Commands carry (client, seq); a client's seq only grows, so
 * a command whose seq is not above the client's last applied one is a duplicate (a retried or
 * network-duplicated proposal, or one overtaken by its successor after a timeout) and is skipped.
 * The last result per client is kept, so a retry of the last command is answered with it.
 */
export type KvCommand =
  | { kind: 'put'; client: number; seq: number; key: string; value: string }
  | { kind: 'cas'; client: number; seq: number; key: string; expected: string | null; value: string }
  | { kind: 'append'; client: number; seq: number; key: string; value: string }
  /** Carries no state change; the liveness probe proposes these. */
  | { kind: 'noop'; token: string };

export type ApplyResult =
  | { kind: 'applied'; ok: boolean }
  /** `ok` is the original outcome when this is the client's last command, else unknown. */
  | { kind: 'duplicate'; ok: boolean | undefined }
  | { kind: 'noop'; token: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

interface KvSnapshot {
  registers: [string, string][];
  lists: [string, string[]][];
  lastResults: [client: number, seq: number, ok: boolean][];
}

export class KvStateMachine {
  private readonly registers = new Map<string, string>();
  private readonly lists = new Map<string, string[]>();
  private readonly lastResults = new Map<number, { seq: number; ok: boolean }>();

  static restore(data: Uint8Array): KvStateMachine {
    const machine = new KvStateMachine();
    if (data.length === 0) return machine;
    const snapshot = JSON.parse(decoder.decode(data)) as KvSnapshot;
    for (const [key, value] of snapshot.registers) machine.registers.set(key, value);
    for (const [key, values] of snapshot.lists) machine.lists.set(key, [...values]);
    for (const [client, seq, ok] of snapshot.lastResults) machine.lastResults.set(client, { seq, ok });
    return machine;
  }

  /** Deterministic bytes: equal states serialize equally. */
  serialize(): Uint8Array {
    const snapshot: KvSnapshot = {
      registers: [...this.registers].sort(byKey),
      lists: [...this.lists].sort(byKey).map(([key, values]) => [key, [...values]]),
      lastResults: [...this.lastResults].sort((a, b) => a[0] - b[0]).map(([client, last]) => [client, last.seq, last.ok]),
    };
    return encoder.encode(JSON.stringify(snapshot));
  }

  apply(command: KvCommand): ApplyResult {
    if (command.kind === 'noop') return { kind: 'noop', token: command.token };
    const last = this.lastResults.get(command.client);
    if (last && last.seq >= command.seq) return { kind: 'duplicate', ok: last.seq === command.seq ? last.ok : undefined };
    const ok = this.execute(command);
    this.lastResults.set(command.client, { seq: command.seq, ok });
    return { kind: 'applied', ok };
  }

  private execute(command: Exclude<KvCommand, { kind: 'noop' }>): boolean {
    switch (command.kind) {
      case 'put':
        this.registers.set(command.key, command.value);
        return true;
      case 'cas': {
        const current = this.registers.get(command.key) ?? null;
        if (current !== command.expected) return false;
        this.registers.set(command.key, command.value);
        return true;
      }
      case 'append': {
        const list = this.lists.get(command.key) ?? [];
        list.push(command.value);
        this.lists.set(command.key, list);
        return true;
      }
    }
  }

  get(key: string): string | null {
    return this.registers.get(key) ?? null;
  }

  readList(key: string): string[] {
    return [...(this.lists.get(key) ?? [])];
  }
}

function byKey<T>(a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}
