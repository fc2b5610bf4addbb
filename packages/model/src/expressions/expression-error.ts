/**
 * A problem found in one expression, without the `Invalid <Kind>Expression: ` prefix, which depends on
 * where the expression came from and is added by compileExpressions.
 */
export class ExpressionError extends Error {
  override readonly name = 'ExpressionError';
}

/**
 * DynamoDB reports one problem per expression, and when there are several it picks by category, not
 * by position (an undefined placeholder wins over a wrong operand type wherever they stand). Checks
 * record the first problem of each category; `throwFirst` reports the one DynamoDB would.
 */
export class ProblemCollector<Category extends string> {
  private readonly order: readonly Category[];
  private readonly found = new Map<Category, string>();

  constructor(order: readonly Category[]) {
    this.order = order;
  }

  report(category: Category, message: string): void {
    if (!this.found.has(category)) this.found.set(category, message);
  }

  has(category: Category): boolean {
    return this.found.has(category);
  }

  throwFirst(): void {
    for (const category of this.order) {
      const message = this.found.get(category);
      if (message !== undefined) throw new ExpressionError(message);
    }
  }
}
