import { SHOAL_TARGET } from './shoal.ts';

/**
 * A read of a GSI, checked as DynamoDB's own GSIs allow: eventually consistent. `check` asserts on an
 * answer (throws when it is not the expected one); the read is made again until an answer passes,
 * for at most `timeoutMs`, then the last check's failure is thrown: it shows the last answer.
 *
 * On the local target GSIs are written with their items (a valid special case of "eventually"): the
 * first answer must pass (`once`, its default there), so a wrong index answer fails at once rather
 * than being retried.
 */
export async function eventuallyConsistent<T>(
  read: () => Promise<T>,
  check: (answer: T) => void,
  { timeoutMs = 20_000, intervalMs = 50, once = SHOAL_TARGET === 'local' }: { timeoutMs?: number; intervalMs?: number; once?: boolean } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await read();
    try {
      check(answer);
      return answer;
    } catch (failure) {
      if (once || Date.now() >= deadline) throw failure;
    }
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}
