import type { KvOperation } from './history.ts';

function quote(value: string | null): string {
  return value === null ? 'absent' : JSON.stringify(value);
}

/** One operation in words, e.g. `p3 cas "a" → "b" ok` or `p1 get → ? (indeterminate)`. */
export function describeOperation(op: KvOperation): string {
  const unknown = op.return === undefined;
  let body: string;
  switch (op.type) {
    case 'put':
      body = `put ${quote(op.value)}`;
      break;
    case 'get':
      body = `get → ${unknown ? '?' : quote(op.output ?? null)}`;
      break;
    case 'cas':
      body = `cas ${quote(op.expected)} → ${quote(op.value)} ${unknown ? '?' : op.ok ? 'ok' : 'failed'}`;
      break;
    case 'append':
      body = `append ${quote(op.value)}`;
      break;
    case 'read-list':
      body = `read-list → ${unknown || op.output === undefined ? '?' : JSON.stringify(op.output)}`;
      break;
  }
  return `p${op.process} ${body}${unknown ? ' (indeterminate)' : ''}`;
}

function timeSpan(op: KvOperation): string {
  return `[${op.call} .. ${op.return ?? '?'}]`;
}

/** A readable dump, one operation a line in call order, for failure reports. */
export function formatHistory(ops: readonly KvOperation[]): string {
  const sorted = [...ops].sort((a, b) => a.call - b.call || (a.return ?? Infinity) - (b.return ?? Infinity));
  const spans = sorted.map(timeSpan);
  // Reduce, not Math.max(...): spreading a long history overflows the stack.
  const spanWidth = spans.reduce((widest, span) => Math.max(widest, span.length), 0);
  const keyWidth = sorted.reduce((widest, op) => Math.max(widest, JSON.stringify(op.key).length), 0);
  return sorted
    .map((op, i) => `${spans[i].padEnd(spanWidth)}  ${JSON.stringify(op.key).padEnd(keyWidth)}  ${describeOperation(op)}`)
    .join('\n');
}
