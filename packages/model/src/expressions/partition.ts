import type { AttributeValue } from '../attribute-value.ts';
import { compileExpressions, type CompiledExpressions, type ExpressionRequest } from './compile.ts';

const PLACEHOLDER = /[#:][0-9A-Za-z_]+/g;

/**
 * Compiles the expressions a partition evaluates (or a router merging partitions' pages). The router
 * checked the whole request already and sends every placeholder of it, including those only its key
 * condition uses; a partition compiles just its own expressions, so it keeps the placeholders those
 * mention (the compiler would reject the others as unused).
 */
export function compilePartitionExpressions(request: Omit<ExpressionRequest, 'keyCondition'>): CompiledExpressions {
  const texts = [request.condition, request.update, request.filter, request.projection];
  const used = new Set(texts.flatMap((text) => text?.match(PLACEHOLDER) ?? []));
  return compileExpressions({
    ...request,
    names: usedOnly(request.names, used),
    values: usedOnly(request.values, used),
  });
}

function usedOnly<T extends string | AttributeValue>(map: Record<string, T> | undefined, used: Set<string>): Record<string, T> | undefined {
  if (map === undefined) return undefined;
  const entries = Object.entries(map).filter(([placeholder]) => used.has(placeholder));
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}
