/** The storage node's structured log: one JSON object per line (on stderr by default). */

export type LogFields = Record<string, unknown>;

/** What the node logs through; the CLI's logger fits it. */
export interface NodeLog {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

type Level = keyof NodeLog;

/** Errors become their message: JSON.stringify turns an Error into `{}`. */
function plain(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** A NodeLog writing `{time, level, msg, ...base, ...fields}` lines to stderr. */
export function stderrLog(base: LogFields = {}): NodeLog {
  const emit = (level: Level) => (message: string, fields: LogFields = {}): void => {
    const record: LogFields = { time: new Date().toISOString(), level, msg: message, ...base };
    for (const [key, value] of Object.entries(fields)) record[key] = plain(value);
    process.stderr.write(`${JSON.stringify(record)}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
