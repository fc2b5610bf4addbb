/** Addresses given on the command line. */

/** A `host:port` split, the port checked. */
export function parseHostPort(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) throw new Error(`"${text}" is not host:port`);
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`"${text}" has no valid port`);
  return { host, port };
}

/** `1=127.0.0.1:7001,2=127.0.0.1:7002` → the meta group's members. */
export function parseMetaPeers(text: string): { nodeId: number; address: string }[] {
  const peers = text.split(',').map((entry) => {
    const equals = entry.indexOf('=');
    const nodeId = Number(entry.slice(0, equals));
    const address = entry.slice(equals + 1).trim();
    if (equals <= 0 || !Number.isSafeInteger(nodeId) || nodeId < 1) throw new Error(`meta peer "${entry}" is not <node id>=<host:port>`);
    parseHostPort(address);
    return { nodeId, address };
  });
  if (new Set(peers.map((peer) => peer.nodeId)).size !== peers.length) throw new Error('meta peers name a node id twice');
  return peers;
}
