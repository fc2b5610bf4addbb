/**
 * DynamoDB errors across gRPC, for the node's partition API and the router's client API alike: a
 * gRPC status code that a generic gRPC client can act on, and the whole error (type, message, HTTP
 * status, extra fields) as a DynamoDbError detail, so the far end raises exactly what DynamoDB would.
 */
import { DynamoDbError } from '@shoal/model';
import { ErrorDetailSchema } from './gen/shoal/v1/errors_pb.ts';
import { RpcError, Status } from './grpc.ts';

const STATUS_BY_TYPE: Record<string, Status> = {
  ResourceNotFoundException: Status.NOT_FOUND,
  ConditionalCheckFailedException: Status.FAILED_PRECONDITION,
  TransactionCanceledException: Status.FAILED_PRECONDITION,
  TransactionConflictException: Status.FAILED_PRECONDITION,
  TransactionInProgressException: Status.FAILED_PRECONDITION,
  ResourceInUseException: Status.FAILED_PRECONDITION,
  IdempotentParameterMismatchException: Status.FAILED_PRECONDITION,
  ProvisionedThroughputExceededException: Status.RESOURCE_EXHAUSTED,
  ThrottlingException: Status.RESOURCE_EXHAUSTED,
  RequestLimitExceeded: Status.RESOURCE_EXHAUSTED,
  LimitExceededException: Status.RESOURCE_EXHAUSTED,
  ItemCollectionSizeLimitExceededException: Status.RESOURCE_EXHAUSTED,
  MissingAuthenticationTokenException: Status.UNAUTHENTICATED,
  InvalidSignatureException: Status.UNAUTHENTICATED,
  IncompleteSignatureException: Status.UNAUTHENTICATED,
  UnrecognizedClientException: Status.UNAUTHENTICATED,
  RequestExpired: Status.UNAUTHENTICATED,
  AccessDeniedException: Status.PERMISSION_DENIED,
  UnknownOperationException: Status.UNIMPLEMENTED,
};

/** The gRPC code for a DynamoDB error: by type, else by HTTP status (5xx are server-side). */
export function dynamoDbStatus(error: DynamoDbError): Status {
  const byType = STATUS_BY_TYPE[error.type];
  if (byType !== undefined) return byType;
  if (error.statusCode === 503) return Status.UNAVAILABLE;
  if (error.statusCode >= 500) return Status.INTERNAL;
  return Status.INVALID_ARGUMENT;
}

export function dynamoDbErrorToRpc(error: DynamoDbError): RpcError {
  const fields = Object.keys(error.fields).length === 0 ? new Uint8Array() : new TextEncoder().encode(JSON.stringify(error.fields));
  return RpcError.withDetail(dynamoDbStatus(error), error.message, ErrorDetailSchema, {
    kind: { case: 'dynamodb', value: { type: error.type, message: error.message, httpStatus: error.statusCode, fields } },
  });
}

/** The DynamoDB error an RpcError carries, or undefined when it carries none. */
export function dynamoDbErrorFromRpc(error: RpcError): DynamoDbError | undefined {
  const detail = error.detail(ErrorDetailSchema)?.kind;
  if (detail?.case !== 'dynamodb') return undefined;
  const { type, message, httpStatus, fields } = detail.value;
  let extra: Record<string, unknown> = {};
  if (fields.length > 0) {
    try {
      extra = JSON.parse(new TextDecoder().decode(fields)) as Record<string, unknown>;
    } catch {
      return new DynamoDbError('InternalServerError', `undecodable fields of a ${type}`, {}, 500);
    }
  }
  return new DynamoDbError(type, message, extra, httpStatus === 0 ? 400 : httpStatus);
}
