/** Structured logging: one JSON object per line on stderr, so that log collectors need no parsing rules. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines also carry `fields` (e.g. the component that logs). */
  child(fields: LogFields): Logger;
}

/** Errors become their message (and code), since JSON.stringify turns an Error into `{}`. */
function serializable(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    return code === undefined ? value.message : { message: value.message, code };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

function isLogLevel(text: string | undefined): text is LogLevel {
  return text !== undefined && Object.hasOwn(RANK, text);
}

/**
 * A logger writing JSON lines `{time, level, msg, ...base, ...fields}` to `write` (default: stderr),
 * from `minLevel` up (default: SHOAL_LOG_LEVEL, else info).
 */
export function createLogger(
  base: LogFields = {},
  options: { write?: (line: string) => void; minLevel?: LogLevel } = {},
): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const configured = process.env.SHOAL_LOG_LEVEL;
  const minimum = RANK[options.minLevel ?? (isLogLevel(configured) ? configured : 'info')];
  const emit = (level: LogLevel, message: string, fields: LogFields = {}): void => {
    if (RANK[level] < minimum) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg: message, ...base };
    for (const [key, value] of Object.entries(fields)) record[key] = serializable(value);
    write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger({ ...base, ...fields }, options),
  };
}
