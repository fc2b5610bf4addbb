import type { Logger } from './log.ts';

/** The ports a process bound, as it tells a `shoal dev` parent. */
export interface Listening {
  /** host:port of a storage node's gRPC server, or a router's DynamoDB endpoint URL. */
  address: string;
  opsPort: number;
}

/**
 * Tells the parent of a process started by `shoal dev` (an IPC channel) the ports it bound, whatever
 * the log level (the `listening` log line is info).
 */
export function reportListening(listening: Listening): void {
  process.send?.({ type: 'listening', ...listening });
}

/** Whether an IPC message is reportListening's. */
export function isListening(message: unknown): message is Listening & { type: 'listening' } {
  if (typeof message !== 'object' || message === null) return false;
  const { type, address, opsPort } = message as Record<string, unknown>;
  return type === 'listening' && typeof address === 'string' && typeof opsPort === 'number';
}

/** How long a process may take to stop cleanly before it gives up and exits anyway. */
const STOP_TIMEOUT_MS = 15_000;

/**
 * Runs `stop` once on SIGINT or SIGTERM, then exits (0 when it stopped cleanly). A process started
 * by `shoal dev` (an IPC channel to its parent) also stops when that parent is gone, so that a
 * killed `shoal dev` leaves no storage node behind.
 */
export function stopOnSignal(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    const timer = setTimeout(() => {
      log.error('stop timed out', { timeoutMs: STOP_TIMEOUT_MS });
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    timer.unref();
    stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  if (process.send !== undefined) process.on('disconnect', () => shutdown('parent gone'));
}
