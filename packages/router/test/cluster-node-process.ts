/**
 * A storage node in a child process for the router's end-to-end tests. Arguments: node id, data
 * directory, port, meta peers as `id=host:port,...`. Prints one JSON line `{ "address": ... }` on
 * stdout once the node is ready; stops cleanly on SIGTERM.
 */
import { startStorageNode } from '@shoal/node';

const [nodeIdText, dataDir, portText, peersText] = process.argv.slice(2);
const metaPeers = peersText.split(',').map((entry) => {
  const [id, address] = entry.split('=');
  return { nodeId: Number(id), address };
});

const node = await startStorageNode({
  nodeId: Number(nodeIdText),
  dataDir,
  host: '127.0.0.1',
  port: Number(portText),
  metaPeers,
});
for (let i = 0; i < 600 && !node.isReady(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
process.stdout.write(`${JSON.stringify({ address: node.address, ready: node.isReady() })}\n`);
process.once('SIGTERM', () => {
  node.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
