export {
  StorageNodeServer,
  type StorageNodeServerLog,
  type StorageNodeServerOptions,
  type StorageNodeServerStats,
} from './storage-node-server.ts';
