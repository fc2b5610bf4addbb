/**
 * Binding a parsed expression to one request's ExpressionAttributeNames and ExpressionAttributeValues:
 * placeholders become names and values, and every placeholder used is recorded so that unused ones can
 * be reported across all of the request's expressions.
 */
import type { AttributeValue } from '../attribute-value.ts';
import type { PathNode, ValueNode } from './ast.ts';
import type { ProblemCollector } from './expression-error.ts';
import type { DocumentPath, PathSegment } from './paths.ts';
import { isReservedWord } from './reserved-words.ts';

/** Every category of problem an expression can have; each expression kind ranks the ones it can have. */
export type ProblemCategory =
  | 'parens'
  | 'unknownFunction'
  | 'misusedFunction'
  | 'reserved'
  | 'section'
  | 'undefinedName'
  | 'undefinedValue'
  | 'pathOverlap'
  | 'pathConflict'
  | 'operand'
  | 'distinct'
  | 'function';

export type Problems = ProblemCollector<ProblemCategory>;

export interface Placeholders {
  readonly names: Readonly<Record<string, string>> | undefined;
  readonly values: Readonly<Record<string, AttributeValue>> | undefined;
  readonly usedNames: Set<string>;
  readonly usedValues: Set<string>;
  /** When present, every bound path is added to it. */
  readonly paths?: DocumentPath[];
}

export function bindPath(node: PathNode, placeholders: Placeholders, problems: Problems): DocumentPath {
  const path: PathSegment[] = [];
  for (const element of node.elements) {
    if (element.kind === 'index') {
      path.push(element.index);
    } else if (element.kind === 'attribute') {
      if (isReservedWord(element.name)) {
        problems.report('reserved', `Attribute name is a reserved keyword; reserved keyword: ${element.name}`);
      }
      path.push(element.name);
    } else {
      const names = placeholders.names;
      if (names !== undefined && Object.hasOwn(names, element.name)) {
        placeholders.usedNames.add(element.name);
        path.push(names[element.name]);
      } else {
        problems.report(
          'undefinedName',
          `An expression attribute name used in the document path is not defined; attribute name: ${element.name}`,
        );
        path.push(element.name);
      }
    }
  }
  placeholders.paths?.push(path);
  return path;
}

/** The value of a placeholder, or undefined (with a problem reported) when the request lacks it. */
export function bindValue(node: ValueNode, placeholders: Placeholders, problems: Problems): AttributeValue | undefined {
  const values = placeholders.values;
  if (values !== undefined && Object.hasOwn(values, node.name)) {
    placeholders.usedValues.add(node.name);
    return values[node.name];
  }
  problems.report(
    'undefinedValue',
    `An expression attribute value used in expression is not defined; attribute value: ${node.name}`,
  );
  return undefined;
}
