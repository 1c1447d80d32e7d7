// Structured JSON logs, one line per event, to stderr.
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  with(fields: Fields): Logger;
}

const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof levels;

export function createLogger(
  options: { level?: Level; base?: Fields; write?: (line: string) => void } = {},
): Logger {
  const min = levels[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const base = options.base ?? {};
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (levels[level] < min) return;
    write(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields })}\n`,
    );
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    with: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}
