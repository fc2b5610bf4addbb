/**
 * @shoal/proto: the generated shoal.v1 messages and service descriptors, and the grpc-js adapter that
 * serves and calls them.
 */
export * from './gen/shoal/v1/raft_pb.ts';
export * from './gen/shoal/v1/meta_pb.ts';
export * from './gen/shoal/v1/errors_pb.ts';
export * from './gen/shoal/v1/node_pb.ts';
export * from './gen/shoal/v1/admin_pb.ts';
export * from './gen/shoal/v1/client_pb.ts';
export * from './gen/shoal/v1/fault_pb.ts';
export {
  RpcError,
  Metadata,
  Server,
  Status,
  addService,
  listen,
  shutdown,
  createClient,
  ClientPool,
  EncodedMessage,
  DirectStream,
  servesDirectly,
  FRAME_HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  SERVER_OPTIONS,
} from './grpc.ts';
export type {
  CallContext,
  CallOptions,
  AnswerDecoders,
  AnswerDecodersOf,
  ClientOptions,
  ServiceImplementation,
  ServiceClient,
  ClientOf,
  ServerMethod,
  ClientMethod,
  UnaryHandler,
  ServerStreamingHandler,
  ClientStreamingHandler,
  BidiStreamingHandler,
  UnaryCall,
  ServerStreamingCall,
  ClientStreamingCall,
  BidiStreamingCall,
  EncodedUnaryHandler,
  EncodedBidiHandler,
  EncodedMethod,
  EncodedImplementation,
  DirectStreamHandlers,
  DirectStreamOptions,
} from './grpc.ts';
export { MessageQueue } from './message-queue.ts';
export { messageToWire, messageFromWire, confChangeToWire, confChangeFromWire } from './raft-codec.ts';
export {
  messageTypeToWire,
  encodeGroupMessages,
  decodeGroupMessages,
  messageWireSize,
  groupMessageWireSize,
  batchHeaderWireSize,
  encodeRaftBatchFrame,
  decodeRaftBatch,
} from './raft-codec.ts';
export type { DecodedRaftBatch } from './raft-codec.ts';
export {
  tableSchemaToWire,
  tableSchemaFromWire,
  tableRecordToWire,
  tableRecordFromWire,
  writeRequestToWire,
  writeRequestFromWire,
  writeResultToWire,
  writeResultFromWire,
  appliedWriteFromWire,
  getRequestToWire,
  getRequestFromWire,
  getResultToWire,
  getResultFromWire,
  rangeReadRequestToWire,
  rangeReadRequestFromWire,
  rangeReadResultToWire,
  rangeReadResultFromWire,
  statisticsToWire,
  statisticsFromWire,
  statisticsRequestToWire,
  statisticsRequestFromWire,
  backfillIndexRequestToWire,
  backfillIndexRequestFromWire,
  dropIndexRequestToWire,
  dropIndexRequestFromWire,
  writeManyRequestToWire,
  writeManyRequestFromWire,
  writeManyResultsToWire,
  writeManyResultsFromWire,
  getManyRequestToWire,
  getManyRequestFromWire,
  getManyResultsToWire,
  getManyResultsFromWire,
  applyIndexEntriesRequestToWire,
  applyIndexEntriesRequestFromWire,
} from './partition-codec.ts';
export type { RoutedTo, GetResult, IndexRequest, BackfillIndexRequest, StatisticsRequest, AppliedWrite, PartitionReadOptions, IndexEntriesBatch, IndexEntryRecord, IndexSourceFence } from './partition-codec.ts';
export { encodeWriteRequest, encodeWriteManyRequest, encodeWriteManyCalls, encodeGetRequest, encodeGetManyRequest, type WriteManyCall } from './partition-requests.ts';
export type { EncodedReadOptions } from './partition-requests.ts';
export { decodeWriteRequest, decodeWriteManyRequest, decodeGetRequest, decodeGetManyRequest, encodeWriteResponse, encodeWriteManyResponse, encodeGetResponse, encodeGetManyResponse } from './partition-answers.ts';
export { decodeWriteResponse, decodeWriteManyResponse, decodeGetResponse, decodeGetManyResponse } from './partition-results.ts';
export { dynamoDbStatus, dynamoDbErrorToRpc, dynamoDbErrorFromRpc } from './dynamodb-errors.ts';
export { freePort, freePorts } from './free-ports.ts';
export { answersReady } from './readiness.ts';
export { partitionDescriptorToWire, partitionDescriptorFromWire, partitionMapResponseToWire, partitionMapResponseFromWire } from './meta-codec.ts';
export type { PartitionMapAnswer } from './meta-codec.ts';
export {
  prepareTransactionRequestToWire,
  prepareTransactionRequestFromWire,
  resolveTransactionRequestToWire,
  resolveTransactionRequestFromWire,
  beginTransactionRequestToWire,
  beginTransactionRequestFromWire,
  decideTransactionRequestToWire,
  decideTransactionRequestFromWire,
  forgetTransactionRequestToWire,
  forgetTransactionRequestFromWire,
  transactionStateToWire,
  transactionStateFromWire,
  type TransactionRefData,
  type TransactionStateName,
} from './transaction-codec.ts';
