/** Terse builders for hand-written histories: `ret` undefined makes the operation indeterminate. */
import type { KvOperation } from '../src/index.ts';

type Timing = { process: number; key: string; call: number; return?: number };

function timing(process: number, key: string, call: number, ret: number | undefined): Timing {
  return ret === undefined ? { process, key, call } : { process, key, call, return: ret };
}

export const put = (process: number, key: string, call: number, ret: number | undefined, value: string): KvOperation => ({
  ...timing(process, key, call, ret),
  type: 'put',
  value,
});

export const get = (process: number, key: string, call: number, ret: number | undefined, output?: string | null): KvOperation =>
  ret === undefined ? { ...timing(process, key, call, ret), type: 'get' } : { ...timing(process, key, call, ret), type: 'get', output };

export const cas = (
  process: number,
  key: string,
  call: number,
  ret: number | undefined,
  expected: string | null,
  value: string,
  ok?: boolean,
): KvOperation =>
  ret === undefined
    ? { ...timing(process, key, call, ret), type: 'cas', expected, value }
    : { ...timing(process, key, call, ret), type: 'cas', expected, value, ok };

export const append = (process: number, key: string, call: number, ret: number | undefined, value: string): KvOperation => ({
  ...timing(process, key, call, ret),
  type: 'append',
  value,
});

export const readList = (process: number, key: string, call: number, ret: number | undefined, output?: string[]): KvOperation =>
  ret === undefined
    ? { ...timing(process, key, call, ret), type: 'read-list' }
    : { ...timing(process, key, call, ret), type: 'read-list', output };
