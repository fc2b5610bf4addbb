import { DynamoDbError } from '../src/errors.ts';

/** The DynamoDB error `run` throws (its type and message), or undefined when it returns. */
export function errorOf(run: () => unknown): { type: string; message: string } | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (!(error instanceof DynamoDbError)) throw error;
    return { type: error.type, message: error.message };
  }
}
