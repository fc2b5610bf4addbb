/**
 * Recursive-descent parsers for condition (also filter and key condition), update and projection
 * expressions. They check syntax only and report it the way DynamoDB does; meaning is checked when the
 * tree is bound to a request's placeholders (see bind.ts).
 */
import type {
  CallNode,
  Comparator,
  ConditionNode,
  OperandNode,
  PathNode,
  ProjectionNode,
  RawPathElement,
  SetValueNode,
  UpdateActionNode,
  UpdateNode,
  ValueNode,
} from './ast.ts';
import { ExpressionError } from './expression-error.ts';
import { syntaxErrorMessage, tokenize, type Token } from './lexer.ts';

const COMPARATORS = new Set<string>(['=', '<>', '<', '<=', '>', '>=']);
/** Words that are syntax, never attribute names, in condition expressions. */
const CONDITION_KEYWORDS = new Set(['AND', 'OR', 'NOT', 'BETWEEN', 'IN']);
const UPDATE_SECTIONS = new Set(['SET', 'REMOVE', 'ADD', 'DELETE']);
/**
 * Deeper nesting (parentheses, NOT, function calls) is refused as a syntax error rather than left to
 * overflow the stack; a 4 KB expression of real use never comes near it.
 */
const MAX_NESTING = 400;

class Parser {
  private readonly source: string;
  private readonly tokens: Token[];
  /** For each `(`, the index of its `)`, or -1 when unbalanced. */
  private readonly closing: Int32Array;
  private pos = 0;
  private depth = 0;

  constructor(source: string) {
    this.source = source;
    this.tokens = tokenize(source);
    this.closing = new Int32Array(this.tokens.length).fill(-1);
    const open: number[] = [];
    this.tokens.forEach((token, i) => {
      if (token.kind !== 'punct') return;
      if (token.text === '(') open.push(i);
      else if (token.text === ')' && open.length > 0) this.closing[open.pop() as number] = i;
    });
  }

  /** The token after the `)` that closes the `(` at the current position, if it is closed. */
  afterClosingParen(): Token | undefined {
    const close = this.closing[this.pos];
    return close < 0 ? undefined : this.tokens[close + 1];
  }

  /** Runs one level of nesting. */
  nested<T>(parse: () => T): T {
    if (++this.depth > MAX_NESTING) this.fail();
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)];
  }

  next(): Token {
    const token = this.tokens[this.pos];
    if (this.pos < this.tokens.length - 1) this.pos++;
    return token;
  }

  fail(): never {
    throw new ExpressionError(syntaxErrorMessage(this.source, this.tokens, this.pos));
  }

  atPunct(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token.kind === 'punct' && token.text === text;
  }

  atWord(upper: string): boolean {
    const token = this.peek();
    return token.kind === 'word' && token.text.toUpperCase() === upper;
  }

  expectPunct(text: string): void {
    if (!this.atPunct(text)) this.fail();
    this.next();
  }

  expectEnd(): void {
    if (this.peek().kind !== 'eof') this.fail();
  }

  /** a, #n, a.b, a[0], #n[1].c ... */
  path(keywords: ReadonlySet<string>): PathNode {
    const elements: RawPathElement[] = [this.pathName(keywords)];
    for (;;) {
      if (this.atPunct('.')) {
        this.next();
        elements.push(this.pathName(keywords));
      } else if (this.atPunct('[')) {
        this.next();
        const digits = this.peek();
        if (digits.kind !== 'digits') this.fail();
        this.next();
        this.expectPunct(']');
        elements.push({ kind: 'index', index: Number(digits.text) });
      } else {
        return { type: 'path', elements };
      }
    }
  }

  private pathName(keywords: ReadonlySet<string>): RawPathElement {
    const token = this.peek();
    if (token.kind === 'name') {
      this.next();
      return { kind: 'placeholder', name: token.text };
    }
    if (token.kind === 'word' && !keywords.has(token.text.toUpperCase())) {
      this.next();
      return { kind: 'attribute', name: token.text };
    }
    return this.fail();
  }

  value(): ValueNode {
    const token = this.peek();
    if (token.kind !== 'value') this.fail();
    this.next();
    return { type: 'value', name: token.text };
  }

  /** A path, a value or a function call, whose arguments are parsed by `argument`. */
  operand(keywords: ReadonlySet<string>, argument: () => OperandNode): OperandNode {
    const token = this.peek();
    if (token.kind === 'value') return this.value();
    if (token.kind === 'word' && this.atPunct('(', 1) && !keywords.has(token.text.toUpperCase())) {
      this.next();
      this.next();
      const args = this.nested(() => {
        const list = [argument()];
        while (this.atPunct(',')) {
          this.next();
          list.push(argument());
        }
        return list;
      });
      this.expectPunct(')');
      return { type: 'call', name: token.text, args } satisfies CallNode;
    }
    return this.path(keywords);
  }
}

// ---- condition expressions ----

function conditionOperand(p: Parser): OperandNode {
  return p.operand(CONDITION_KEYWORDS, () => conditionOperand(p));
}

function orCondition(p: Parser): ConditionNode {
  let left = andCondition(p);
  while (p.atWord('OR')) {
    p.next();
    left = { type: 'or', left, right: andCondition(p) };
  }
  return left;
}

function andCondition(p: Parser): ConditionNode {
  let left = notCondition(p);
  while (p.atWord('AND')) {
    p.next();
    left = { type: 'and', left, right: notCondition(p) };
  }
  return left;
}

function notCondition(p: Parser): ConditionNode {
  if (p.atWord('NOT')) {
    p.next();
    return { type: 'not', operand: p.nested(() => notCondition(p)) };
  }
  return predicate(p);
}

function startsComparison(token: Token | undefined): boolean {
  if (token === undefined) return false;
  if (token.kind === 'punct') return COMPARATORS.has(token.text);
  const word = token.kind === 'word' ? token.text.toUpperCase() : '';
  return word === 'BETWEEN' || word === 'IN';
}

function predicate(p: Parser): ConditionNode {
  if (p.atPunct('(')) {
    // `(a) = :v` puts an operand in parentheses, `(a = :v)` a condition: what follows the `)` tells.
    const operandInParentheses = startsComparison(p.afterClosingParen());
    p.next();
    if (operandInParentheses) {
      const operand = p.nested(() => conditionOperand(p));
      p.expectPunct(')');
      return comparison(p, { ...operand, parenthesized: true });
    }
    const inner = p.nested(() => orCondition(p));
    p.expectPunct(')');
    return { type: 'parens', inner };
  }
  const operand = conditionOperand(p);
  if (startsComparison(p.peek())) return comparison(p, operand);
  if (operand.type === 'call') return { type: 'function', call: operand };
  return p.fail();
}

function comparison(p: Parser, left: OperandNode): ConditionNode {
  const token = p.peek();
  if (token.kind === 'punct') {
    p.next();
    return { type: 'compare', op: token.text as Comparator, left, right: conditionOperand(p) };
  }
  if (p.atWord('BETWEEN')) {
    p.next();
    const low = conditionOperand(p);
    if (!p.atWord('AND')) p.fail();
    p.next();
    return { type: 'between', operand: left, low, high: conditionOperand(p) };
  }
  p.next(); // IN
  p.expectPunct('(');
  const list = [conditionOperand(p)];
  while (p.atPunct(',')) {
    p.next();
    list.push(conditionOperand(p));
  }
  p.expectPunct(')');
  return { type: 'in', operand: left, list };
}

export function parseCondition(source: string): ConditionNode {
  const p = new Parser(source);
  const node = orCondition(p);
  p.expectEnd();
  return node;
}

// ---- update expressions ----

/** Words that are syntax, never attribute names, in update expressions. */
const UPDATE_KEYWORDS = UPDATE_SECTIONS;

/** An operand, optionally in one pair of parentheses: `(a)`, `(:v)`. */
function updateOperand(p: Parser): OperandNode {
  if (!p.atPunct('(')) return p.operand(UPDATE_KEYWORDS, () => updateOperand(p));
  p.next();
  const operand = p.nested(() => p.operand(UPDATE_KEYWORDS, () => updateOperand(p)));
  p.expectPunct(')');
  return operand;
}

function arithmetic(p: Parser): SetValueNode {
  const left = updateOperand(p);
  if (p.atPunct('+') || p.atPunct('-')) {
    const op = p.next().text as '+' | '-';
    return { type: 'arithmetic', op, left, right: updateOperand(p) };
  }
  return left;
}

/** `a`, `a + b`, or either in one pair of parentheses: `(a + b)`. */
function setValue(p: Parser): SetValueNode {
  const after = p.atPunct('(') ? p.afterClosingParen() : undefined;
  // `(a) + b` has a parenthesized operand; `(a + b)` a parenthesized value.
  if (after === undefined || (after.kind === 'punct' && (after.text === '+' || after.text === '-'))) return arithmetic(p);
  p.next();
  const value = p.nested(() => arithmetic(p));
  p.expectPunct(')');
  return value;
}

export interface ParsedUpdate extends UpdateNode {
  /** A section given twice; DynamoDB reports it after syntax errors. */
  repeatedSection?: string;
}

export function parseUpdate(source: string): ParsedUpdate {
  const p = new Parser(source);
  const actions: UpdateActionNode[] = [];
  const seen = new Set<string>();
  let repeatedSection: string | undefined;
  do {
    const token = p.peek();
    const section = token.kind === 'word' ? token.text.toUpperCase() : '';
    if (!UPDATE_SECTIONS.has(section)) p.fail();
    p.next();
    if (seen.has(section)) repeatedSection ??= section;
    seen.add(section);
    for (;;) {
      const path = p.path(UPDATE_KEYWORDS);
      if (section === 'SET') {
        p.expectPunct('=');
        actions.push({ action: 'SET', path, value: setValue(p) });
      } else if (section === 'REMOVE') {
        actions.push({ action: 'REMOVE', path });
      } else {
        actions.push({ action: section as 'ADD' | 'DELETE', path, value: p.value() });
      }
      if (!p.atPunct(',')) break;
      p.next();
    }
  } while (p.peek().kind !== 'eof');
  return repeatedSection === undefined ? { actions } : { actions, repeatedSection };
}

// ---- projection expressions ----

const NO_KEYWORDS: ReadonlySet<string> = new Set();

export function parseProjection(source: string): ProjectionNode {
  const p = new Parser(source);
  const paths = [p.path(NO_KEYWORDS)];
  while (p.atPunct(',')) {
    p.next();
    paths.push(p.path(NO_KEYWORDS));
  }
  p.expectEnd();
  return { paths };
}
