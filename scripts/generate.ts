/**
 * Regenerates packages/proto/src/gen from proto/ with buf and protoc-gen-es (both from node_modules,
 * so it works offline), after linting the contract.
 *
 *   node scripts/generate.ts             regenerate in place
 *   node scripts/generate.ts --out DIR   generate under DIR instead (DIR/packages/proto/src/gen),
 *                                        which the staleness test compares with the committed code
 */
import { execFileSync } from 'node:child_process';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { out: { type: 'string' } } });

// protoc-gen-es is a `#!/usr/bin/env node` script: put this Node (24) and the local bins first.
const path = [dirname(process.execPath), join(root, 'node_modules', '.bin'), process.env.PATH ?? ''].join(delimiter);
const buf = join(root, 'node_modules', '.bin', 'buf');
const run = (args: string[]): void => {
  execFileSync(buf, args, { cwd: root, stdio: 'inherit', env: { ...process.env, PATH: path } });
};

run(['lint']);
run(['generate', ...(values.out === undefined ? [] : ['--output', values.out])]);
