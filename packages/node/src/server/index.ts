export {
  StorageNodeServer,
  type PartitionServiceFaults,
  type StorageNodeServerLog,
  type StorageNodeServerOptions,
  type StorageNodeServerStats,
} from './storage-node-server.ts';
