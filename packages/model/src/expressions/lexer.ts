/**
 * Tokens of DynamoDB's expression languages. Every expression kind shares one lexer; the parsers decide
 * which tokens are keywords where.
 */

export type TokenKind =
  /** A bare word: an attribute name, a keyword or a function name. */
  | 'word'
  /** `#name`, an expression attribute name placeholder. */
  | 'name'
  /** `:value`, an expression attribute value placeholder. */
  | 'value'
  /** A run of digits (list indexes). */
  | 'digits'
  /** Punctuation and operators: ( ) [ ] , . = <> < <= > >= + - */
  | 'punct'
  /** A character no rule accepts. The parser reports it as soon as it reaches it. */
  | 'invalid'
  | 'eof';

export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

/** Placeholder names after `#` or `:`. */
const PLACEHOLDER_CHAR = /[A-Za-z0-9_]/;
const WORD_START = /[A-Za-z]/;
const WORD_CHAR = /[A-Za-z0-9_]/;

function isWhitespace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = source.length;
  const push = (kind: TokenKind, start: number, end: number) => {
    tokens.push({ kind, text: source.slice(start, end), start, end });
  };
  while (i < n) {
    const c = source[i];
    if (isWhitespace(c)) {
      i++;
      continue;
    }
    const start = i;
    if (WORD_START.test(c)) {
      i++;
      while (i < n && WORD_CHAR.test(source[i])) i++;
      push('word', start, i);
    } else if (c >= '0' && c <= '9') {
      i++;
      while (i < n && source[i] >= '0' && source[i] <= '9') i++;
      push('digits', start, i);
    } else if ((c === '#' || c === ':') && i + 1 < n && PLACEHOLDER_CHAR.test(source[i + 1])) {
      i += 2;
      while (i < n && PLACEHOLDER_CHAR.test(source[i])) i++;
      push(c === '#' ? 'name' : 'value', start, i);
    } else if (c === '<' && (source[i + 1] === '>' || source[i + 1] === '=')) {
      i += 2;
      push('punct', start, i);
    } else if (c === '>' && source[i + 1] === '=') {
      i += 2;
      push('punct', start, i);
    } else if ('()[],.=<>+-'.includes(c)) {
      i++;
      push('punct', start, i);
    } else {
      // One code point, so a surrogate pair is reported whole.
      i += (c.codePointAt(0) ?? 0) > 0xffff ? 2 : 1;
      push('invalid', start, i);
    }
  }
  tokens.push({ kind: 'eof', text: '', start: n, end: n });
  return tokens;
}

/**
 * DynamoDB's syntax error: the offending token, and the source from the token before it to the token
 * after it (`Syntax error; token: ":", near: "hits : incr"`). The end of input is the token `<EOF>`.
 */
export function syntaxErrorMessage(source: string, tokens: Token[], index: number): string {
  const token = tokens[index];
  const from = index > 0 ? tokens[index - 1].start : token.start;
  const next = tokens[index + 1];
  const to = next && next.kind !== 'eof' ? next.end : token.end;
  const text = token.kind === 'eof' ? '<EOF>' : token.text;
  return `Syntax error; token: "${text}", near: "${source.slice(from, to)}"`;
}
