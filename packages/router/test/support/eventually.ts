/** Polls `check` every `intervalMs` until it holds, at most `attempts` times (a cluster's state settles asynchronously). */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, attempts = 600, intervalMs = 50): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}
