// Structured logs: one JSON object per line on stderr. Callers pass only
// operational facts (addresses, counts, reasons, rule paths) — never label
// values, upstream bodies or secrets.

export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(
  write: (line: string) => void = (l) => process.stderr.write(l),
  base: Record<string, unknown> = { component: "exporter" },
): Logger {
  const log = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields })}\n`);
  };
  return {
    log,
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { log() {}, info() {}, warn() {}, error() {} };
