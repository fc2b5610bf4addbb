export { StorageNodeServer, type StorageNodeServerOptions, type StorageNodeServerStats } from './storage-node-server.ts';
