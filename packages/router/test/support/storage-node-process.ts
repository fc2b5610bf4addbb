/**
 * A storage node in a child process for the router's cluster tests: startStorageNode with the options
 * given as one JSON argument. Prints one JSON line `{ "address": ..., "ready": ... }` on stdout once the
 * node is ready (or after 60 s); stops cleanly on SIGTERM.
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
