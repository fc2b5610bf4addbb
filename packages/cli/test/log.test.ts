import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';

describe('createLogger', () => {
  it('writes one JSON object a line with the base and child fields, errors as their message', () => {
    const lines: string[] = [];
    const log = createLogger({ role: 'node' }, { write: (line) => lines.push(line) }).child({ nodeId: 2 });
    log.info('listening', { opsPort: 9000 });
    log.warn('failed', { error: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), index: 7n });
    expect(lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n'))).toBe(true);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toMatchObject({ level: 'info', msg: 'listening', role: 'node', nodeId: 2, opsPort: 9000 });
    expect(typeof first.time).toBe('string');
    expect(second).toMatchObject({ level: 'warn', error: { message: 'refused', code: 'ECONNREFUSED' }, index: '7' });
  });

  it('drops lines below the minimum level', () => {
    const lines: string[] = [];
    const log = createLogger({}, { write: (line) => lines.push(line), minLevel: 'warn' });
    log.debug('a');
    log.info('b');
    log.error('c');
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['c']);
  });
});
