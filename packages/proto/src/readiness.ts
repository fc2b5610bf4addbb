/**
 * The readiness probe of a Shoal process (storage node or router): its ops endpoint answers
 * GET /readyz with 200 once it serves (what a Kubernetes readiness probe asks too).
 */

/** Whether the ops endpoint at `host`:`opsPort` answers /readyz with 200 within `timeoutMs`; no answer counts as not ready. */
export async function answersReady(host: string, opsPort: number, timeoutMs = 2_000): Promise<boolean> {
  try {
    const response = await fetch(`http://${host}:${opsPort}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    // Read to the end, so that the connection is free again.
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}
