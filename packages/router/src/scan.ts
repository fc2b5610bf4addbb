import { validationError } from '@shoal/model';
import type { ExpressionParameters } from './item-expressions.ts';
import type { OperationHandler } from './operation.ts';
import { prepareRangeRead, readPage, readRangeParameters } from './read-range.ts';
import { Constraints, optionalInteger } from './request.ts';

/** Scan: every item of the table or an index, optionally one segment of a parallel scan. */

const SCAN_EXPRESSIONS: ExpressionParameters = {
  expressions: ['ProjectionExpression', 'FilterExpression'],
  legacy: ['AttributesToGet', 'ScanFilter', 'ConditionalOperator'],
};

const MAX_TOTAL_SEGMENTS = 1_000_000;

const scan: OperationHandler = async (body, ctx) => {
  const constraints = new Constraints();
  const parameters = readRangeParameters(body, constraints);
  const segment = optionalInteger(body, 'Segment');
  const totalSegments = optionalInteger(body, 'TotalSegments');
  constraints.range('segment', segment, 0, MAX_TOTAL_SEGMENTS - 1);
  constraints.range('totalSegments', totalSegments, 1, MAX_TOTAL_SEGMENTS);
  constraints.throwIfAny();
  if (segment !== undefined && totalSegments === undefined) {
    throw validationError(
      'The TotalSegments parameter is required but was not present in the request when Segment parameter is present',
    );
  }
  if (totalSegments !== undefined && segment === undefined) {
    throw validationError(
      'The Segment parameter is required but was not present in the request when parameter TotalSegments is present',
    );
  }
  if (segment !== undefined && totalSegments !== undefined && segment >= totalSegments) {
    throw validationError(
      `The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: ${segment} is not less than TotalSegments: ${totalSegments}`,
    );
  }

  const prepared = await prepareRangeRead(body, ctx, parameters, SCAN_EXPRESSIONS);
  if (segment !== undefined && totalSegments !== undefined && totalSegments > 1) {
    prepared.request.segment = { segment, total: totalSegments };
  }
  return readPage(ctx, prepared);
};

export const scanOperations: Record<string, OperationHandler> = { Scan: scan };
