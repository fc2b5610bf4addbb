/**
 * A storage node in a child process for the admission control tests: startStorageNode with the
 * options given as one JSON argument (admission limits included). Prints one JSON line once ready;
 * stops cleanly on SIGTERM.
 */
import { startStorageNode, type StorageNodeOptions } from '@shoal/node';

const options = JSON.parse(process.argv[2]) as Omit<StorageNodeOptions, 'log'>;
const node = await startStorageNode(options);
for (let i = 0; i < 600 && !node.isReady(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
process.stdout.write(`${JSON.stringify({ address: node.address, ready: node.isReady() })}\n`);
process.once('SIGTERM', () => {
  node.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
