/**
 * The binary encoding of a ConfChange inside a confChange entry:
 * version(1) flags(1) count(uvarint) [type(1) nodeId(uvarint)]* [contextLength(uvarint) context]
 * flags: bit 0 `joint` present, bit 1 its value, bit 2 context present.
 */
import type { ConfChange, ConfChangeSingle, ConfChangeType } from './types.ts';

const VERSION = 1;
const TYPES: readonly ConfChangeType[] = ['addNode', 'removeNode', 'addLearner'];

function pushUvarint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n}`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out: number[] = [VERSION];
  let flags = 0;
  if (cc.joint !== undefined) flags |= 1;
  if (cc.joint === true) flags |= 2;
  if (cc.context !== undefined) flags |= 4;
  out.push(flags);
  pushUvarint(out, cc.changes.length);
  for (const c of cc.changes) {
    out.push(TYPES.indexOf(c.type));
    pushUvarint(out, c.nodeId);
  }
  if (cc.context !== undefined) {
    pushUvarint(out, cc.context.length);
    for (const b of cc.context) out.push(b);
  }
  return Uint8Array.from(out);
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let pos = 0;
  const byte = (): number => {
    if (pos >= data.length) throw new RangeError('truncated ConfChange');
    return data[pos++];
  };
  const uvarint = (): number => {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
      if (scale > 2 ** 56) throw new RangeError('ConfChange varint too long');
    }
  };
  const version = byte();
  if (version !== VERSION) throw new RangeError(`unknown ConfChange encoding version ${version}`);
  const flags = byte();
  const count = uvarint();
  const changes: ConfChangeSingle[] = [];
  for (let i = 0; i < count; i++) {
    const type = TYPES[byte()];
    if (type === undefined) throw new RangeError('unknown ConfChange type');
    changes.push({ type, nodeId: uvarint() });
  }
  const cc: ConfChange = { changes };
  if (flags & 1) cc.joint = (flags & 2) !== 0;
  if (flags & 4) {
    const len = uvarint();
    if (pos + len > data.length) throw new RangeError('truncated ConfChange context');
    cc.context = data.slice(pos, pos + len);
    pos += len;
  }
  if (pos !== data.length) throw new RangeError('trailing bytes after ConfChange');
  return cc;
}
