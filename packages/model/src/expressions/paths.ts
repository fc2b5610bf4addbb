/**
 * Document paths bound to real attribute names: `a.b[2].c` is ['a', 'b', 2, 'c'].
 */
import type { AttributeValue, Item } from '../attribute-value.ts';
import { getOwn } from '../records.ts';

export type PathSegment = string | number;
/** The first segment is always a top-level attribute name. */
export type DocumentPath = readonly PathSegment[];

/** DynamoDB's way of printing a path in messages: `[a, b, [2], c]`. */
export function formatPath(path: DocumentPath): string {
  return `[${path.map((s) => (typeof s === 'number' ? `[${s}]` : s)).join(', ')}]`;
}

/** The value at a path, or undefined when any step is missing or of the wrong type. */
export function valueAtPath(item: Item | undefined, path: DocumentPath): AttributeValue | undefined {
  if (item === undefined) return undefined;
  const head = path[0] as string;
  let value = getOwn(item, head);
  for (let i = 1; i < path.length && value !== undefined; i++) {
    const segment = path[i];
    if (typeof segment === 'number') {
      value = 'L' in value ? value.L[segment] : undefined;
    } else {
      value = 'M' in value ? getOwn(value.M, segment) : undefined;
    }
  }
  return value;
}

export type PathRelation = 'independent' | 'overlap' | 'conflict';

/**
 * Two paths overlap when one is a prefix of the other (or they are equal); they conflict when at the
 * same depth one indexes a list and the other names a map key. Either makes an update or projection
 * ambiguous, so DynamoDB rejects it.
 */
export function relatePaths(a: DocumentPath, b: DocumentPath): PathRelation {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (typeof a[i] !== typeof b[i]) return 'conflict';
    if (a[i] !== b[i]) return 'independent';
  }
  return 'overlap';
}

/** Reports the first pair of paths that overlap or conflict, in DynamoDB's words. */
export function checkPathsIndependent(
  paths: readonly DocumentPath[],
  report: (category: 'pathOverlap' | 'pathConflict', message: string) => void,
): void {
  for (let j = 1; j < paths.length; j++) {
    for (let i = 0; i < j; i++) {
      const relation = relatePaths(paths[i], paths[j]);
      if (relation === 'independent') continue;
      const which = relation === 'overlap' ? 'overlap' : 'conflict';
      report(
        relation === 'overlap' ? 'pathOverlap' : 'pathConflict',
        `Two document paths ${which} with each other; must remove or rewrite one of these paths; ` +
          `path one: ${formatPath(paths[i])}, path two: ${formatPath(paths[j])}`,
      );
    }
  }
}
