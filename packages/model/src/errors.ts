/**
 * DynamoDB's error model. Every client mistake becomes one of these with DynamoDB's own type name,
 * so an SDK maps it to the same exception class it would get from AWS.
 */

/** Error types DynamoDB reports under the coral service namespace rather than the DynamoDB one. */
const CORAL_TYPES = new Set([
  'SerializationException',
  'UnknownOperationException',
  'MissingAuthenticationTokenException',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'UnrecognizedClientException',
  'AccessDeniedException',
  'RequestExpired',
]);

export class DynamoDbError extends Error {
  /** The short type name, e.g. `ValidationException`. */
  readonly type: string;
  /** HTTP status: 400 for client errors, 500 for InternalServerError, 503 for ServiceUnavailable. */
  readonly statusCode: number;
  /** Extra body fields DynamoDB sends with some errors (`CancellationReasons`, `Item`). */
  readonly fields: Readonly<Record<string, unknown>>;

  constructor(type: string, message: string, fields: Record<string, unknown> = {}, statusCode = 400) {
    super(message);
    this.name = type;
    this.type = type;
    this.statusCode = statusCode;
    this.fields = fields;
  }

  /** The `__type` of the JSON error body. */
  get qualifiedType(): string {
    const ns = CORAL_TYPES.has(this.type) ? 'com.amazon.coral.service' : 'com.amazonaws.dynamodb.v20120810';
    return `${ns}#${this.type}`;
  }
}

export function validationError(message: string): DynamoDbError {
  return new DynamoDbError('ValidationException', message);
}

export function serializationError(message: string): DynamoDbError {
  return new DynamoDbError('SerializationException', message);
}

export function resourceNotFound(message = 'Requested resource not found'): DynamoDbError {
  return new DynamoDbError('ResourceNotFoundException', message);
}

export function resourceInUse(message: string): DynamoDbError {
  return new DynamoDbError('ResourceInUseException', message);
}

export function conditionalCheckFailed(item?: Record<string, unknown>): DynamoDbError {
  return new DynamoDbError(
    'ConditionalCheckFailedException',
    'The conditional request failed',
    item ? { Item: item } : {},
  );
}

/** A write of an item a transaction in progress holds (DynamoDB's answer to a plain write then). */
export function transactionConflict(): DynamoDbError {
  return new DynamoDbError('TransactionConflictException', 'Transaction is ongoing for the item');
}

export function internalError(message = 'Internal server error'): DynamoDbError {
  return new DynamoDbError('InternalServerError', message, {}, 500);
}
