import { describe, expect, it } from 'vitest';
import { DynamoDbError, conditionalCheckFailed, internalError, resourceNotFound, validationError } from '@shoal/model';
import { ErrorDetailSchema, RpcError, Status, dynamoDbErrorFromRpc, dynamoDbErrorToRpc, dynamoDbStatus } from '../src/index.ts';

describe('DynamoDB errors over gRPC', () => {
  it('map to the gRPC code a generic client can act on', () => {
    expect(dynamoDbStatus(validationError('bad'))).toBe(Status.INVALID_ARGUMENT);
    expect(dynamoDbStatus(resourceNotFound())).toBe(Status.NOT_FOUND);
    expect(dynamoDbStatus(conditionalCheckFailed())).toBe(Status.FAILED_PRECONDITION);
    expect(dynamoDbStatus(new DynamoDbError('TransactionConflictException', 'conflict'))).toBe(Status.FAILED_PRECONDITION);
    expect(dynamoDbStatus(new DynamoDbError('ProvisionedThroughputExceededException', 'slow down'))).toBe(Status.RESOURCE_EXHAUSTED);
    expect(dynamoDbStatus(new DynamoDbError('UnrecognizedClientException', 'who'))).toBe(Status.UNAUTHENTICATED);
    expect(dynamoDbStatus(new DynamoDbError('AccessDeniedException', 'no'))).toBe(Status.PERMISSION_DENIED);
    expect(dynamoDbStatus(internalError())).toBe(Status.INTERNAL);
    expect(dynamoDbStatus(new DynamoDbError('ServiceUnavailable', 'later', {}, 503))).toBe(Status.UNAVAILABLE);
  });

  it('round-trip whole: type, message, HTTP status and extra fields', () => {
    const item = { pk: { S: 'a' } };
    for (const original of [conditionalCheckFailed(item), internalError('disk on fire'), validationError('One or more parameter values were invalid')]) {
      const decoded = dynamoDbErrorFromRpc(dynamoDbErrorToRpc(original));
      expect(decoded).toBeInstanceOf(DynamoDbError);
      expect(decoded?.type).toBe(original.type);
      expect(decoded?.message).toBe(original.message);
      expect(decoded?.statusCode).toBe(original.statusCode);
      expect(decoded?.fields).toEqual(original.fields);
      expect(decoded?.qualifiedType).toBe(original.qualifiedType);
    }
  });

  it('are absent from errors that carry none, and undecodable fields become an InternalServerError', () => {
    expect(dynamoDbErrorFromRpc(new RpcError(Status.UNAVAILABLE, 'connection refused'))).toBeUndefined();
    const routing = RpcError.withDetail(Status.FAILED_PRECONDITION, 'moved', ErrorDetailSchema, { kind: { case: 'partitionNotFound', value: { partitionId: 1n } } });
    expect(dynamoDbErrorFromRpc(routing)).toBeUndefined();
    const garbled = RpcError.withDetail(Status.INVALID_ARGUMENT, 'x', ErrorDetailSchema, {
      kind: { case: 'dynamodb', value: { type: 'ValidationException', message: 'x', httpStatus: 400, fields: new Uint8Array([0x7b]) } },
    });
    expect(dynamoDbErrorFromRpc(garbled)?.type).toBe('InternalServerError');
  });
});
