/**
 * Projection expressions: which attributes, or parts of documents, a read returns.
 */
import type { AttributeValue, Item } from '../attribute-value.ts';
import type { ProjectionNode } from './ast.ts';
import { bindPath, type Placeholders, type Problems } from './bind.ts';
import { setOwn } from '../records.ts';
import { checkPathsIndependent, type DocumentPath, type PathSegment } from './paths.ts';

export const PROJECTION_PROBLEM_ORDER = ['reserved', 'undefinedName', 'pathOverlap', 'pathConflict'] as const;

export interface CompiledProjection {
  /** The parts of `item` the projection names; absent parts are left out. */
  apply(item: Item): Item;
  readonly paths: readonly DocumentPath[];
  /** The top-level attribute names the projection reads. */
  readonly attributes: readonly string[];
}

/** The projected paths as a tree; a leaf takes the whole value found there. */
interface ProjectionTree {
  children: Map<PathSegment, ProjectionTree>;
}

function buildTree(paths: readonly DocumentPath[]): ProjectionTree {
  const root: ProjectionTree = { children: new Map() };
  for (const path of paths) {
    let node = root;
    for (const segment of path) {
      let child = node.children.get(segment);
      if (child === undefined) {
        child = { children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
  }
  return root;
}

function projectValue(value: AttributeValue, tree: ProjectionTree): AttributeValue | undefined {
  if (tree.children.size === 0) return value;
  if ('M' in value) {
    const map: Record<string, AttributeValue> = {};
    let any = false;
    for (const [segment, child] of tree.children) {
      if (typeof segment !== 'string' || !Object.hasOwn(value.M, segment)) continue;
      const projected = projectValue(value.M[segment], child);
      if (projected !== undefined) {
        setOwn(map, segment, projected);
        any = true;
      }
    }
    return any ? { M: map } : undefined;
  }
  if ('L' in value) {
    // Projected list elements come back compacted, in list order.
    const indexes = [...tree.children.keys()].filter((s): s is number => typeof s === 'number').sort((a, b) => a - b);
    const list: AttributeValue[] = [];
    for (const index of indexes) {
      if (index >= value.L.length) continue;
      const projected = projectValue(value.L[index], tree.children.get(index) as ProjectionTree);
      if (projected !== undefined) list.push(projected);
    }
    return list.length > 0 ? { L: list } : undefined;
  }
  return undefined;
}

/** The parts of an item at the given paths (which must not overlap). */
export function projectItem(item: Item, paths: readonly DocumentPath[]): Item {
  return projectWithTree(item, buildTree(paths));
}

function projectWithTree(item: Item, tree: ProjectionTree): Item {
  const result: Item = {};
  for (const [segment, child] of tree.children) {
    const name = segment as string;
    if (!Object.hasOwn(item, name)) continue;
    const projected = projectValue(item[name], child);
    if (projected !== undefined) setOwn(result, name, projected);
  }
  return result;
}

export function bindProjection(node: ProjectionNode, placeholders: Placeholders, problems: Problems): CompiledProjection {
  const paths = node.paths.map((path) => bindPath(path, placeholders, problems));
  checkPathsIndependent(paths, (category, message) => problems.report(category, message));
  const tree = buildTree(paths);
  const attributes = [...new Set(paths.map((p) => p[0] as string))];
  return { apply: (item) => projectWithTree(item, tree), paths, attributes };
}
