/**
 * `shoal chaos` / `npm run chaos -- [options]`. `main(argv)` is what the CLI calls with the
 * arguments after `chaos`; run directly, this file calls it with its own.
 */
import { parseChaosArgs, USAGE } from './options.ts';
import { runChaos } from './run.ts';

/** Runs chaos as the command line asks; resolves to the exit status (0 clean, 1 safety violations, 2 no verdict, 3 safe but a liveness bound exceeded). */
export async function main(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseChaosArgs(argv);
  } catch (error) {
    console.error(`shoal chaos: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  try {
    const { report } = await runChaos({ ...options, print: (text) => console.log(text), progress: process.stdout.isTTY === true });
    return report.ok ? 0 : report.safe ? 3 : 1;
  } catch (error) {
    console.error(`shoal chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 2;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
