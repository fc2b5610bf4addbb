/**
 * DynamoDB's expression languages. `compileExpressions` checks all expressions of a request together
 * (DynamoDB's messages, placeholder use across expressions) and returns closures to evaluate conditions
 * and filters, apply updates and projections, and resolve key conditions. Parsed trees are cached by
 * text, so a request that repeats known expressions only binds placeholders.
 */
export { compileExpressions, MAX_EXPRESSION_BYTES } from './compile.ts';
export type { CompiledCondition, CompiledExpressions, ExpressionRequest } from './compile.ts';
export { compilePartitionExpressions } from './partition.ts';
export { checkUpdateKeys } from './update.ts';
export type { CompiledUpdate } from './update.ts';
export type { CompiledProjection } from './projection.ts';
export { projectItem } from './projection.ts';
export type { CompiledKeyCondition } from './key-condition.ts';
export { formatPath, valueAtPath } from './paths.ts';
export type { DocumentPath, PathSegment } from './paths.ts';
export { isReservedWord } from './reserved-words.ts';
export { attributeUpdatesMessage, legacyToExpressions, rejectMixedParameters } from './legacy.ts';
export type { LegacyParameters } from './legacy.ts';
