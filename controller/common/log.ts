// The one logger of every program in this package: one JSON object per line
// on stderr, `{ts, level, msg, ...fields}`. Callers pass operational facts
// (names, counts, reasons, rule paths) — never label values, upstream bodies
// or secrets.
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

export function isLevel(text: string): text is Level {
  return Object.hasOwn(levels, text);
}

export function createLogger(
  options: { level?: Level; base?: Fields; write?: (line: string) => void } = {},
): Logger {
  const min = levels[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const base = options.base ?? {};
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (levels[level] < min) return;
    write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields })}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    with: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (benchmarks, tests that do not read logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with: () => silentLogger,
};
