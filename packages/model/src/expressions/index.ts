export { compileExpressions, MAX_EXPRESSION_BYTES } from './compile.ts';
export type { CompiledCondition, CompiledExpressions, ExpressionRequest } from './compile.ts';
export type { CompiledUpdate } from './update.ts';
export type { CompiledProjection } from './projection.ts';
export { projectItem } from './projection.ts';
export type { CompiledKeyCondition } from './key-condition.ts';
export { formatPath, valueAtPath } from './paths.ts';
export type { DocumentPath, PathSegment } from './paths.ts';
export { isReservedWord } from './reserved-words.ts';
