/**
 * `npm run heat -- [options]` (and `shoal heat` once the CLI wires it): `main(argv)` runs the heat
 * tool with the arguments after `heat`; run directly, this file calls it with its own.
 */
import { parseHeatArgs, USAGE } from './options.ts';
import { runHeat } from './run.ts';

/** Resolves to the exit status: 0 done, 2 bad arguments or a failed run. */
export async function main(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseHeatArgs(argv, process.stdout.isTTY === true);
  } catch (error) {
    console.error(`shoal heat: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.once('SIGINT', onSigint);
  try {
    const { summary, reportPath } = await runHeat(options, {
      print: (text) => console.log(text),
      draw: (frame) => process.stdout.write(`\x1b[H\x1b[2J${frame}\n`),
      signal: interrupt.signal,
    });
    console.log(
      `served ${summary.ok} requests (${summary.okPerSecond.toFixed(1)} ops/s), throttled ${summary.throttled} (${(summary.throttleRate * 100).toFixed(2)}%), ` +
        `errors ${summary.errors}, p50 ${summary.p50Ms.toFixed(1)} ms, p99 ${summary.p99Ms.toFixed(1)} ms, splits ${summary.splits}, moves ${summary.moves}` +
        (reportPath === undefined ? '' : `\nreport: ${reportPath}`),
    );
    return 0;
  } catch (error) {
    console.error(`shoal heat: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 2;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
